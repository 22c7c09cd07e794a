"""Seed 001's data: a video or the shards' clips through the pipeline's functions, as :class:`Target`
(landmarks, pose, MFCC, head crops), the 70-d face3d coefficients of a target, and :class:`ClipSlices`,
the dataset of in-memory clips the shared training loop reads for ``audio_to_pose``.

Its own module so that both the bundle (``yi2020``) and its trained parts (``audio_to_pose``) use it
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch.utils.data as tud

from talkbench.errors import TalkbenchError
from talkbench.models import face3d as f3
from talkbench.models import mesh_render
from talkbench.pipelines.stages.head import head_box_matrix  # one owner: the pipeline's head stage
from talkbench.schema import FPS, HOPS_PER_FRAME, MFCC_DIM, POSE_COLUMNS, SAMPLE_RATE


# ---------------------------------------------------------------------------- a prepared target
@dataclass
class Target:
    """One video through the pipeline's face and audio functions, with head crops."""

    landmarks: np.ndarray  # (T, 478, 3) source pixels
    pose: np.ndarray  # (T, 6)
    valid: np.ndarray  # (T,) bool
    mfcc: np.ndarray  # (T, 48) per-frame MFCC rows as the shards store them
    crops: np.ndarray  # (T, S, S, 3) uint8 head crops
    crop_matrix: np.ndarray  # (T, 2, 3) source -> crop (the same matrix on every frame for head crops)
    frame_hw: tuple[int, int]
    fov: float = 63.0
    audio: np.ndarray | None = None
    speaker: str = ""
    frames: np.ndarray | None = None  # full frames (only for a target video, to blend into)

    def __len__(self) -> int:
        return len(self.pose)

    def head(self, n: int) -> Target:
        """The first n frames."""
        sl = slice(0, n)
        return Target(self.landmarks[sl], self.pose[sl], self.valid[sl], self.mfcc[sl], self.crops[sl],
                      self.crop_matrix[sl], self.frame_hw, self.fov,
                      None if self.audio is None else self.audio[: round(n / FPS * SAMPLE_RATE)], self.speaker,
                      None if self.frames is None else self.frames[sl])


def prepare_target(video: str | Path, head_size: int, margin: float = 1.5, pipeline_config: dict | None = None,
                   keep_frames: bool = True, max_frames: int | None = None) -> Target:
    """Decode a video (its first ``max_frames`` frames) and run the pipeline's face tracking, pose and MFCC
    on it; cut head crops."""
    from talkbench.media import read_av

    av = read_av(video, max_frames=max_frames)
    if av.audio is None:
        raise TalkbenchError(f"{video}: no audio stream (the target's speech is needed to fine-tune)")
    return target_from_arrays(av.frames, av.audio, head_size, margin, pipeline_config, keep_frames, Path(video).stem)


def target_from_arrays(frames: np.ndarray, audio: np.ndarray, head_size: int, margin: float = 1.5,
                       pipeline_config: dict | None = None, keep_frames: bool = True, name: str = "target") -> Target:
    """(T, H, W, 3) uint8 frames at 25 fps + 16 kHz audio -> a :class:`Target` (the benchmark's
    ``personalize(frames, audio)`` entry uses this)."""
    from talkbench.pipelines.audio import mfcc_from_audio
    from talkbench.pipelines.face import FaceProcessor, FaceSettings, warp_crops

    pc = pipeline_config or {}
    settings = FaceSettings.model_validate({k: pc.get(k, {}) for k in ("landmarks", "pose")})
    pose_cfg = settings.pose
    with FaceProcessor(settings, FPS) as face:
        out = face.process(frames, aus=False).as_dict()
    valid = np.asarray(out["face_found"], bool)
    if not valid.any():
        raise TalkbenchError(f"{name}: no face found")
    m = head_box_matrix(out["landmarks"], valid, head_size, margin)
    mats = np.repeat(m[None], len(valid), 0)
    crops = warp_crops(frames, mats, (head_size, head_size))
    audio = np.asarray(audio, np.float32).reshape(-1)[: round(len(valid) / FPS * SAMPLE_RATE)]
    mfcc = mfcc_from_audio(audio, SAMPLE_RATE, len(valid), pc.get("audio_features"))
    return Target(out["landmarks"], out["pose"], valid, mfcc, crops, mats, tuple(frames.shape[1:3]),
                  pose_cfg.vertical_fov_deg, audio, name, frames if keep_frames else None)


def targets_from_shards(root: str | Path, split: str = "train", statuses: tuple[str, ...] = ("ok", "partial"),
                        max_clips: int | None = None, images: bool = True) -> list[Target]:
    """The shards' clips as Targets: the ``head`` crops when the shards have them (schema >= 1.1), else
    the aligned ``face`` crops with their per-frame ``align_matrix`` (pose then is invisible in the
    crops, but renders and crops still correspond pixel for pixel). ``images=False``: no crops decoded
    (empty (T, 0, 0, 3)), for the parts that need only landmarks, pose and audio."""
    import cv2
    import pyarrow.parquet as pq

    from talkbench.models.data import ShardIndex
    from talkbench.schema import frame_array, image_column

    index = ShardIndex(root)
    names = set(pq.read_schema(index.frame_files[0]).names)
    has_head = "head" in names and "head_matrix" in names  # schema >= 1.1; older shards: face crops only
    cols = ["face_found", "landmarks", *POSE_COLUMNS, "mfcc", "align_matrix"]
    cols += (["face"] if images else []) + (["head_matrix"] + (["head"] if images else []) if has_head else [])
    clips = {c["clip_id"]: c for c in index.reader.clips(["clip_id", "speaker_id", "source_height",
                                                           "source_width", "rotation"]).to_pylist()}
    fov = float((index.manifest.get("config") or {}).get("pose", {}).get("vertical_fov_deg", 63.0))
    out = []
    for unit in index.units(split, list(statuses))[:max_clips]:
        t = pq.ParquetFile(unit.path).read_row_group(unit.row_group, columns=cols)
        n = t.num_rows
        lm = frame_array(t.column("landmarks"), "landmarks")
        pose = np.stack([t.column(c).to_numpy(zero_copy_only=False) for c in POSE_COLUMNS], 1)
        valid = t.column("face_found").to_numpy(zero_copy_only=False).astype(bool) & np.isfinite(pose).all(1)
        valid &= np.isfinite(lm).all(axis=(1, 2))
        if valid.sum() < 2:
            continue
        use_head = has_head and t.column("head_matrix").null_count < n  # a clip prepared without the head stage
        img_col, mat_col = ("head", "head_matrix") if use_head else ("face", "align_matrix")
        mats = frame_array(t.column(mat_col), mat_col)
        blobs = image_column(t.column(img_col)) if images else []
        first = next((b for b in blobs if b is not None), None)
        size = cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR).shape[0] if first is not None else 0
        crops = np.zeros((n, size, size, 3), np.uint8)
        for i, b in enumerate(blobs):
            if b is not None:
                crops[i] = cv2.cvtColor(cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        c = clips.get(unit.clip_id, {})
        h, w = c.get("source_height"), c.get("source_width")
        if not h or not w:
            raise TalkbenchError(f"{root}: clip {unit.clip_id} has no source size (needed to undo the pose's camera)")
        if (c.get("rotation") or 0) in (90, 270):
            h, w = w, h
        try:
            mfcc = frame_array(t.column("mfcc"), "mfcc").reshape(n, HOPS_PER_FRAME * MFCC_DIM)
        except ValueError:  # null rows (no audio features)
            mfcc = np.zeros((n, HOPS_PER_FRAME * MFCC_DIM), np.float32)
        out.append(Target(lm.astype(np.float32), pose.astype(np.float32), valid, mfcc, crops, mats.astype(np.float64),
                          (int(h), int(w)), fov, None, c.get("speaker_id") or unit.clip_id))
    if not out:
        raise TalkbenchError(f"{root}: no usable clips in split {split!r}")
    return out


class ClipSlices(tud.IterableDataset):
    """Slices of ``length`` consecutive frames of in-memory clips (dicts of per-frame arrays) for the shared
    training loop: random slices, endless (train), or every consecutive slice once (evaluation).

    Sample ``k`` of rank ``r`` is drawn from its own seed ``(seed, r, k)``; loader worker ``w`` makes the
    global batches ``skip_batches + w, + nw, ...`` (the DataLoader takes workers' batches in turn), so a
    resumed run continues with exactly the samples an uninterrupted one would have drawn."""

    def __init__(self, clips: list[dict[str, np.ndarray]], length: int, train: bool, seed: int = 0, rank: int = 0,
                 batch_size: int = 1, skip_batches: int = 0):
        self.clips = [c for c in clips if len(next(iter(c.values()))) >= length]
        if not self.clips:
            raise TalkbenchError(f"no clip has {length} frames (data.seq_len)")
        self.length, self.train, self.seed, self.rank = length, train, seed, rank
        self.batch_size, self.skip_batches = batch_size, skip_batches

    def _slice(self, clip: dict[str, np.ndarray], start: int) -> dict[str, np.ndarray]:
        return {k: v[start : start + self.length] for k, v in clip.items()}

    def __iter__(self):
        info = tud.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        if not self.train:
            for c in self.clips[wid::nw]:
                n = len(next(iter(c.values())))
                yield from (self._slice(c, s) for s in range(0, n - self.length + 1, self.length))
            return
        g = self.skip_batches + wid
        while True:
            for i in range(self.batch_size):
                rng = np.random.default_rng([self.seed, self.rank, g * self.batch_size + i])
                c = self.clips[rng.integers(len(self.clips))]
                yield self._slice(c, int(rng.integers(0, len(next(iter(c.values()))) - self.length + 1)))
            g += nw


def clip_shapes(t: Target) -> f3.ClipShapes:
    v = t.valid
    return f3.ClipShapes("", f3.frontalise(t.landmarks[v], t.pose[v], t.frame_hw[0], t.fov), t.pose[v])


def coefficients(model: f3.Face3D, t: Target, neutral: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(T, 70) targets (expression from the frontalised landmarks, stored pose; invalid frames filled
    from the nearest valid one) and the neutral used."""
    cs = clip_shapes(t)
    neutral = cs.neutral if neutral is None else neutral
    exp = np.zeros((len(t), model.n_exp))
    exp[t.valid] = model.expression_coefficients(cs.shapes, neutral)
    pose = t.pose.astype(np.float64).copy()
    idx = np.flatnonzero(t.valid)
    nearest = idx[np.clip(np.searchsorted(idx, np.arange(len(t))), 0, len(idx) - 1)]
    exp, pose = exp[nearest], pose[nearest]
    return model.targets(exp, pose), neutral


def mfcc_blocks(mfcc: np.ndarray, hops: int) -> np.ndarray:
    """(T, 48) per-frame MFCC rows -> (T, 12, hops) ATC-net input blocks."""
    from talkbench.pipelines.audio import mfcc_windows

    return mfcc_windows(mfcc, n_hops=hops)  # (T, 12, hops)


# ---------------------------------------------------------------------------- rendering a target
@dataclass
class Appearance:
    """What the renderer needs of one person: neutral shape, vertex colours, camera and crop geometry."""

    neutral: np.ndarray  # (468, 3) head coordinates
    colours: np.ndarray  # (468, 3) RGB
    crop_matrix: np.ndarray  # (2, 3) source -> crop
    crop_size: int
    frame_hw: tuple[int, int]
    fov: float

    def save(self) -> dict[str, np.ndarray]:
        return {"neutral": self.neutral, "colours": self.colours, "crop_matrix": self.crop_matrix,
                "crop_size": np.array(self.crop_size), "frame_hw": np.array(self.frame_hw), "fov": np.array(self.fov)}

    @classmethod
    def load(cls, d: Any) -> Appearance:
        return cls(np.asarray(d["neutral"]), np.asarray(d["colours"]), np.asarray(d["crop_matrix"]),
                   int(d["crop_size"]), tuple(int(v) for v in d["frame_hw"]), float(d["fov"]))


def appearance_of(t: Target, neutral: np.ndarray, frames: int | None = None) -> Appearance:
    """Vertex colours = median over (up to 50 of) the frames of the crop pixel under each real landmark."""
    from talkbench.pipelines.face import apply_affine

    idx = np.flatnonzero(t.valid[:frames])
    idx = idx[np.linspace(0, len(idx) - 1, min(50, len(idx))).astype(int)]
    pts = apply_affine(t.crop_matrix[idx], t.landmarks[idx, : mesh_render.N_MESH, :2].astype(np.float64))
    colours = mesh_render.sample_vertex_colours(t.crops[idx], pts)
    return Appearance(neutral, colours, t.crop_matrix[idx[0]], t.crops.shape[1], t.frame_hw, t.fov)


def render(model: f3.Face3D, app: Appearance, targets70: np.ndarray, size: int, mode: str = "shaded",
           crop_matrices: np.ndarray | None = None) -> np.ndarray:
    """(T, 70) expression + pose -> (T, size, size, 3) uint8 renders in crop coordinates."""
    from talkbench.pipelines.face import apply_affine

    t70 = np.asarray(targets70, np.float64)
    shapes = model.reconstruct(app.neutral, t70[:, : model.n_exp])
    px = f3.to_pixels(shapes, t70[:, model.n_exp :], app.frame_hw, app.fov)
    mats = np.repeat(app.crop_matrix[None], len(t70), 0) if crop_matrices is None else np.asarray(crop_matrices)
    k = size / app.crop_size
    xy = apply_affine(mats.astype(np.float64), px[..., :2]) * k
    scale = np.sqrt(np.abs(np.linalg.det(mats[:, :, :2])))[:, None, None] * k
    verts = np.concatenate([xy, px[..., 2:] * scale], axis=-1)
    out = np.zeros((len(t70), size, size, 3), np.uint8)
    for i, v in enumerate(verts):
        out[i] = (mesh_render.render_sketch(v, (size, size)) if mode == "sketch"
                  else mesh_render.render_shaded(v, app.colours, (size, size)))[0]
    return out
