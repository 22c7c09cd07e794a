"""Stage 3: temporal smoothing of landmarks, similarity alignment to a template, face and mouth crops."""

from __future__ import annotations

import numpy as np

from talkbench.pipelines.core import Clip, WorkerContext, register_stage
from talkbench.pipelines.face.config import AlignConfig

__all__ = ["AlignConfig", "align"]


@register_stage("align", AlignConfig)
def align(clip: Clip, cfg: AlignConfig, ctx: WorkerContext) -> Clip:
    """Adds align_matrix (T, 6), face_crop (T, S, S, 3) and mouth_crop (T, h, w, 3) uint8 (zeros and
    NaN where no face) and clip.info["identity_frame"] (first detected, not interpolated, frame)."""
    from talkbench.pipelines.face import FaceProcessor, FaceSettings

    ft = clip.frames_table
    if clip.video is None or "landmarks" not in ft:
        raise RuntimeError("the align stage needs decoded video and the landmarks stage before it")
    found = np.asarray(ft["face_found"], dtype=bool)
    out = FaceProcessor(FaceSettings(align=cfg), clip.fps, ctx).align(clip.video, ft["landmarks"], found)
    ft["align_matrix"] = out["align_matrix"].reshape(len(found), 6)
    ft["face_crop"] = out["face_crop"]
    ft["mouth_crop"] = out["mouth_crop"]
    detected = np.flatnonzero(found & ~np.asarray(ft["face_interpolated"], dtype=bool))
    clip.info["identity_frame"] = int(detected[0]) if len(detected) else None
    return clip
