"""Raw face-quality numbers per frame: face size and blur (GUIDE §2: stored, never used to drop data)."""

from __future__ import annotations

import cv2
import numpy as np

from talkbench.facemesh import LEFT_EYE_OUTER, RIGHT_EYE_OUTER


def face_size(landmarks: np.ndarray) -> np.ndarray:
    """(T,) inter-ocular distance (outer eye corners, 2-D) in source pixels; NaN without a face."""
    return np.linalg.norm(landmarks[:, LEFT_EYE_OUTER, :2] - landmarks[:, RIGHT_EYE_OUTER, :2], axis=-1)


def blur_scores(crops: np.ndarray) -> np.ndarray:
    """(T,) variance of the Laplacian of each grey crop (higher = sharper)."""
    out = np.empty(len(crops), dtype=np.float64)
    for i, img in enumerate(crops):
        # int16 holds a 3x3 Laplacian of uint8 exactly; meanStdDev is one pass, ndarray.var() three
        _, std = cv2.meanStdDev(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_16S))
        out[i] = std[0, 0] ** 2
    return out
