"""LSE-D / LSE-C / AV offset with the SyncNet protocol (Wav2Lip's evaluation of syncnet_python).

The math is generic over any pair of embedding functions: 5-frame video windows and the matching audio
windows are embedded; for every video window i the Euclidean distance to audio windows i-15 .. i+15
(zero vectors past either end, as syncnet_python pads) is taken; ``mdist`` = mean over i per offset;
LSE-D = min(mdist), LSE-C = median(mdist) - min(mdist), AV offset = 15 - argmin (positive = video
lags audio). Two metrics use it:

- ``lse``: the released ``syncnet_v2`` weights (benchmark/syncnet.py) on talkbench's aligned face crops
  upsampled to 224x224 (crop protocol ``lse-aligned128``);
- ``lse-pycrop``: the same network on syncnet_python's own face-box crop (paper-comparable protocol);
- ``tb-sync``: a sync expert trained by talkbench (models/sync_expert.py) on mouth crops. It is a
  different network, so it carries different names (GUIDE section 3) and its numbers never mix with LSE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from talkbench.benchmark.metrics.base import ClipPair, Metric, register_metric
from talkbench.benchmark.metrics.common import chunks, resolve_device
from talkbench.errors import WeightsMissingError

VSHIFT = 15  # offsets -15 .. +15 frames (Wav2Lip's evaluation setting)


@dataclass
class LSEResult:
    lse_d: float
    lse_c: float
    offset: int
    mean_dists: np.ndarray  # (2 * vshift + 1,), index j <-> offset vshift - j


def lse_from_embeddings(video_emb: Any, audio_emb: Any, vshift: int = VSHIFT) -> LSEResult:
    """LSE from (N, D) video and audio window embeddings where row i of both covers the same frames."""
    import torch
    import torch.nn.functional as F

    v = torch.as_tensor(video_emb, dtype=torch.float32)
    a = torch.as_tensor(audio_emb, dtype=torch.float32)
    if v.ndim != 2 or v.shape != a.shape or len(v) == 0:
        raise ValueError(f"need two non-empty (N, D) embeddings of one shape, got {tuple(v.shape)}, {tuple(a.shape)}")
    win = 2 * vshift + 1
    ap = F.pad(a, (0, 0, vshift, vshift))  # zero rows before and after, as syncnet_python's calc_pdist
    windows = ap.unfold(0, win, 1).permute(0, 2, 1)  # (N, win, D): audio i-vshift .. i+vshift
    dists = F.pairwise_distance(v[:, None, :].expand_as(windows), windows)  # (N, win), eps like the original
    mdist = dists.mean(0)
    minval, minidx = torch.min(mdist, 0)
    return LSEResult(lse_d=float(minval), lse_c=float(torch.median(mdist) - minval),
                     offset=int(vshift - int(minidx)), mean_dists=mdist.numpy())


def _values(prefix: str, r: LSEResult | None) -> dict[str, float]:
    if r is None:
        return {f"{prefix}_d": math.nan, f"{prefix}_c": math.nan, f"{prefix}_offset": math.nan,
                f"{prefix}_abs_offset": math.nan}
    return {f"{prefix}_d": r.lse_d, f"{prefix}_c": r.lse_c, f"{prefix}_offset": float(r.offset),
            f"{prefix}_abs_offset": float(abs(r.offset))}


@register_metric("lse")
class LSE(Metric):
    """LSE-D (lower), LSE-C (higher) and AV offset with the released SyncNet (syncnet_v2)."""

    variant = "lse-aligned128-syncnet_v2-up224bgr-vshift15"  # SyncNet sees the aligned 128² crop, upsampled
    directions = {"lse_d": "lower", "lse_c": "higher", "lse_abs_offset": "lower"}
    requires_reference = False
    weights = ("syncnet_v2",)
    batch = 16  # 5x224x224 windows per forward pass

    def setup(self) -> None:
        from talkbench.benchmark.syncnet import load_syncnet

        self._dev = resolve_device(self.device)
        self.net = load_syncnet(self._dev)

    def embed(self, faces: np.ndarray, audio: np.ndarray, sample_rate: int) -> tuple[Any, Any]:
        import torch

        from talkbench.benchmark import syncnet as sn

        n = sn.n_windows(len(faces), len(audio), sample_rate)
        if n == 0:
            raise ValueError(f"clip too short for SyncNet: {len(faces)} frames, {len(audio)} samples")
        aud = torch.as_tensor(sn.audio_windows(audio, n, sample_rate))
        v_out, a_out = [], []
        with torch.inference_mode():
            for s in chunks(n, self.batch):
                v_out.append(self.net.forward_lip(sn.face_windows(faces, s.start, s.stop, self._dev)).cpu())
                a_out.append(self.net.forward_aud(aud[s].to(self._dev)).cpu())
        return torch.cat(v_out), torch.cat(a_out)

    def score(self, pair: ClipPair) -> dict[str, float]:
        v, a = self.embed(pair.generated.faces, pair.audio, pair.sample_rate)
        return _values("lse", lse_from_embeddings(v, a))


@register_metric("lse-pycrop")
class LSEPyCrop(LSE):
    """LSE with SyncNet seeing syncnet_python's OWN crop (crop protocol ``lse-pycrop``), for numbers
    comparable with papers that ran its pipeline: the face box (here the face mesh's extent in frame
    pixels, standing in for its S3FD detector) median-filtered over 13 frames, scaled by crop_scale 0.4
    (a 2.8 s square, s = half the box size, from s above the box centre), grey 110 outside the frame,
    resized to 224² (``benchmark/syncnet.py: pycrop_faces``). Not reproduced: S3FD itself, and the XVID /
    JPEG re-encoding of its pipeline (see the codec-normalisation option for the latter's kind of effect).
    """

    variant = "lse-pycrop-meshbox-medfilt13-scale0.4-224bgr-syncnet_v2-vshift15"
    directions = {"lse_pycrop_d": "lower", "lse_pycrop_c": "higher", "lse_pycrop_abs_offset": "lower"}

    def score(self, pair: ClipPair) -> dict[str, float]:
        from talkbench.benchmark.syncnet import mesh_boxes, pycrop_faces

        g = pair.generated
        if pair.frames is None or g.align_matrix is None:
            raise ValueError("lse-pycrop needs the submission's frames and their face transforms")
        n = min(len(pair.frames), len(g.landmarks))
        boxes = mesh_boxes(g.landmarks[:n], g.align_matrix[:n], g.face_found[:n])
        v, a = self.embed(pycrop_faces(pair.frames[:n], boxes), pair.audio, pair.sample_rate)
        return _values("lse_pycrop", lse_from_embeddings(v, a))


def _load_sync_expert(device: Any) -> tuple[Any, Any]:
    """The talkbench sync expert from the weights store and the audio settings its checkpoint records."""
    from talkbench import weights

    path = weights.require("tb-sync-expert")
    try:
        from talkbench.models.sync_expert import load_sync_expert
    except ImportError as e:
        raise WeightsMissingError(f"tb-sync needs talkbench.models.sync_expert: {e}") from None
    net, audio_cfg = load_sync_expert(path)
    return net.to(device).eval(), audio_cfg


@register_metric("tb-sync")
class TBSync(Metric):
    """LSE-style distance/confidence/offset with talkbench's own sync expert on mouth crops (not SyncNet)."""

    variant = "tb-sync-expert-mouth-vshift15"
    directions = {"tb_sync_d": "lower", "tb_sync_c": "higher", "tb_sync_abs_offset": "lower"}
    requires_reference = False
    weights = ("tb-sync-expert",)
    batch = 64

    @classmethod
    def unavailable_reason(cls) -> str | None:
        reason = super().unavailable_reason()
        if reason:
            return reason
        try:
            from talkbench.models import sync_expert  # noqa: F401
        except ImportError as e:
            return f"talkbench.models.sync_expert cannot be imported: {e}"
        return None

    def setup(self) -> None:
        self._dev = resolve_device(self.device)
        self.net, self.audio_cfg = _load_sync_expert(self._dev)

    def score(self, pair: ClipPair) -> dict[str, float]:
        import torch
        import torch.nn.functional as F

        from talkbench.pipelines.audio import block_window, mfcc_from_audio

        cfg = self.net.cfg
        mouths = pair.generated.mouths
        t = min(len(mouths), len(pair.audio) // round(pair.sample_rate / pair.generated.fps))
        n = t - cfg.frames + 1
        if n <= 0:
            raise ValueError(f"clip too short for the sync expert: {t} frames")
        per_frame = mfcc_from_audio(pair.audio, pair.sample_rate, t, self.audio_cfg)  # the checkpoint's settings
        aud = torch.as_tensor(np.stack([block_window(per_frame, i, cfg.frames) for i in range(n)]))
        x = torch.as_tensor(mouths[:t]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        x = F.interpolate(x, size=(cfg.mouth_height, cfg.mouth_width), mode="bilinear", align_corners=False)
        win = x.unfold(0, cfg.frames, 1).permute(0, 4, 1, 2, 3)  # (n, frames, 3, h, w)
        v_out, a_out = [], []
        with torch.inference_mode():
            for s in chunks(n, self.batch):
                v_out.append(self.net.embed_video(win[s].to(self._dev)).cpu())
                a_out.append(self.net.embed_audio(aud[s].to(self._dev)).cpu())
        return _values("tb_sync", lse_from_embeddings(torch.cat(v_out), torch.cat(a_out)))
