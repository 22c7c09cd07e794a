"""CSIM: ArcFace cosine similarity between the identity (reference) image and each generated frame.

Convention "csim-arcface-ref-vs-frame": the task's aligned reference image against every generated
face crop, each resized to ArcFace's 112x112. Our alignment is talkbench's eye/nose template, not
insightface's 5-point one, so absolute values are comparable across submissions of one task, not with
numbers in papers.
"""

from __future__ import annotations

import numpy as np

from talkbench.benchmark.metrics.base import ClipPair, Metric, register_metric
from talkbench.benchmark.metrics.common import CHUNK, chunks, resolve_device

ARCFACE_SIZE = 112


def _prep(frames: np.ndarray, device: object) -> object:
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(frames, device=device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if x.shape[-1] != ARCFACE_SIZE or x.shape[-2] != ARCFACE_SIZE:
        x = F.interpolate(x, size=(ARCFACE_SIZE, ARCFACE_SIZE), mode="bilinear", align_corners=False,
                          antialias=True)
    return x


def cosine_to_reference(embed: object, reference: np.ndarray, frames: np.ndarray, device: object) -> np.ndarray:
    """Per-frame cosine similarity of ``embed`` features: (S, S, 3) reference vs (N, S', S', 3) frames."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        ref = F.normalize(embed(_prep(reference[None], device)), dim=-1)
        out = []
        for s in chunks(len(frames), CHUNK):
            f = F.normalize(embed(_prep(frames[s], device)), dim=-1)
            out.append((f @ ref.T)[:, 0].cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


@register_metric("csim")
class CSIM(Metric):
    """Identity similarity (ArcFace iresnet50 cosine) of an identity reference vs each generated frame.

    The identity reference is a frame of ANOTHER clip of the same speaker when the task has one
    (``identity_image``), else the handed-out reference image (``csim_identity_other_clip`` = 0): against
    the handed-out image, repeating it scores ~1, above the real video. On paired tasks ``csim_gt`` is the
    same similarity for the ground-truth video and ``csim_rel`` = csim - csim_gt (0 = as the real video).
    """

    variant = "csim-arcface-identity-other-clip-vs-frame"
    directions = {"csim": "higher", "csim_rel": "higher"}
    requires_reference = False  # needs the reference *image*, which unpaired tasks also have
    weights = ("arcface-iresnet50",)

    def setup(self) -> None:
        from talkbench.models.arcface import load_arcface

        self._dev = resolve_device(self.device)
        self.net = load_arcface(self._dev)

    def score(self, pair: ClipPair) -> dict[str, float]:
        if pair.reference_image is None:
            raise ValueError(f"clip {pair.clip_id!r} has no reference image for CSIM")
        identity = pair.identity_image if pair.identity_image is not None else pair.reference_image
        g = pair.generated
        frames = g.faces[np.asarray(g.face_found, bool)]
        out = {"csim": float("nan"), "csim_identity_other_clip": float(pair.identity_image is not None)}
        if len(frames):
            out["csim"] = float(cosine_to_reference(self.net, identity, frames, self._dev).mean())
        if pair.reference is not None:
            real = pair.reference.faces[np.asarray(pair.reference.face_found, bool)]
            out["csim_gt"] = float(cosine_to_reference(self.net, identity, real, self._dev).mean()) if len(real) \
                else float("nan")
            out["csim_rel"] = out["csim"] - out["csim_gt"]
        return out
