"""Stage: a head crop per frame from ONE fixed box per clip (seed 001, personalised head pose).

The aligned face crop removes roll, scale and translation, so head pose is invisible in it. The head
crop keeps them: the box is the union of the face's landmark boxes over the clip's frames (every pose
of the clip stays inside), made square, enlarged by ``margin`` and fixed for the whole clip; its 2x3
matrix (source pixels -> head-crop pixels, a scale and a shift, no rotation) is stored per frame.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from talkbench.config import StrictModel
from talkbench.errors import TalkbenchError
from talkbench.pipelines.core import Clip, WorkerContext, register_stage


class HeadConfig(StrictModel):
    """One fixed head box per clip covering the face's motion (the ``head`` crop of seed 001)."""

    size: int = Field(128, ge=16, description="head crop side in pixels")
    margin: float = Field(1.5, gt=1.0, description="box side = margin x the side of the motion-covering face box")


def head_box_matrix(landmarks: np.ndarray, valid: np.ndarray, size: int, margin: float = 1.5) -> np.ndarray:
    """(2, 3) source -> head-crop matrix of one fixed square box: the union of the landmark boxes of the
    valid frames, centred, side x margin."""
    pts = np.asarray(landmarks, np.float64)[np.asarray(valid, bool), :, :2]
    if not len(pts):
        raise TalkbenchError("no frame with a face: cannot place a head box")
    lo, hi = np.nanmin(pts, axis=(0, 1)), np.nanmax(pts, axis=(0, 1))
    centre, side = (lo + hi) / 2, float((hi - lo).max()) * margin
    s = size / side
    return np.array([[s, 0, size / 2 - s * centre[0]], [0, s, size / 2 - s * centre[1]]], np.float64)


@register_stage("head", HeadConfig)
def head(clip: Clip, cfg: HeadConfig, ctx: WorkerContext) -> Clip:
    """Adds head_matrix (T, 6; the same box on every frame) and head_crop (T, S, S, 3) uint8."""
    from talkbench.pipelines.face import warp_crops

    ft = clip.frames_table
    if clip.video is None or "landmarks" not in ft:
        raise RuntimeError("the head stage needs decoded video and the landmarks stage before it")
    found = np.asarray(ft["face_found"], dtype=bool)
    n = len(found)
    if not found.any():  # the landmarks stage has already failed such a clip; keep the columns empty
        ft["head_matrix"] = np.full((n, 6), np.nan, np.float32)
        ft["head_crop"] = np.zeros((n, cfg.size, cfg.size, 3), np.uint8)
        return clip
    m = head_box_matrix(ft["landmarks"], found, cfg.size, cfg.margin)
    mats = np.repeat(m[None], n, axis=0)
    ft["head_matrix"] = mats.reshape(n, 6).astype(np.float32)
    ft["head_crop"] = warp_crops(clip.video, mats, (cfg.size, cfg.size))
    return clip
