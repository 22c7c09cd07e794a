"""The dubbing task's lower-face mask (MFTFG-AU's inpainting protocol, the one Wav2Lip, LatentSync and
MuseTalk are evaluated under).

Per ground-truth frame, the lower-face polygon (68-point jaw points 2–14 and the nose tip 33, from the
MediaPipe landmarks through the fixed MediaPipe -> 68 map) is filled in source pixels. The adapter gets
the frames with that region zeroed plus the masks and the audio, and returns full frames; before
scoring, everything outside the mask is replaced by the ground truth, so every full-reference metric
(and the suspect-copy rule) judges only the region a dubbing model controls.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from talkbench.errors import ClipError

#: recorded in the task manifest (selection.dubbing_mask): what the adapter is given and how it is made
MASK_SPEC: dict[str, Any] = {
    "region": "lower-face polygon",
    "points_68": [*range(2, 15), 33],
    "landmarks": "MediaPipe face mesh on the ground-truth frames, fixed MediaPipe->68 map "
                 "(talkbench.models.face_regions.MP_TO_68)",
    "masked_value": 0,
    "frames_without_face": "whole frame masked",
    "scored": "outside the mask the ground truth replaces the submission's pixels",
    "version": 1,
}


def lower_face_masks(frames: np.ndarray, pre: Any) -> np.ndarray:
    """(T, H, W, 3) ground-truth frames -> (T, H, W) bool, True inside the lower-face polygon."""
    import cv2

    from talkbench.models.face_regions import LOWER_FACE_POLYGON_68, MP_TO_68
    track = pre.face.process(frames, aus=False)  # the task's face settings, the run's MediaPipe graph
    t, h, w = frames.shape[:3]
    masks = np.ones((t, h, w), np.uint8)
    lm = np.asarray(track.landmarks, np.float64)
    for i in range(t):
        pts = lm[i, list(MP_TO_68)][list(LOWER_FACE_POLYGON_68), :2]
        if np.isfinite(pts).all():
            masks[i] = 0
            cv2.fillPoly(masks[i], [np.round(pts * 16).astype(np.int32)], 1, shift=4)
    return masks.astype(bool)


def masked_frames(frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
    return np.where(masks[..., None], np.uint8(0), frames)


def composite(generated: np.ndarray, ground_truth: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The submission's pixels inside the mask, the ground truth outside (what a dubbing task scores)."""
    generated = np.asarray(generated)
    if generated.shape != ground_truth.shape:
        raise ClipError("bad_output", f"a dubbing submission returns full frames of the target's size "
                                      f"{ground_truth.shape}, got {generated.shape}")
    return np.where(masks[..., None], generated, ground_truth)
