"""Face regions derived from the stored MediaPipe landmarks and ``align_matrix`` (no shard schema change):
the 68-point subset, the authors' upper-face landmarks, the lower-face polygon (jaw points 2–14 + nose
tip 33) as a mask, and the masked ground truth (rows below the nose tip zeroed).

The MediaPipe -> 68-point map is fixed (one face-mesh vertex per iBUG-68 point); it is checked against
OpenFace's own 68 landmarks on the GRID fixtures (tests/test_mftfg.py).
"""

from __future__ import annotations

import numpy as np

from talkbench.schema import N_LANDMARKS

#: iBUG-68 point i = MediaPipe face-mesh vertex MP_TO_68[i]
MP_TO_68: tuple[int, ...] = (
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,  # jaw 0-16
    70, 63, 105, 66, 107,  # right brow 17-21
    336, 296, 334, 293, 300,  # left brow 22-26
    168, 197, 5, 4,  # nose bridge 27-30
    75, 97, 2, 326, 305,  # nostrils 31-35
    33, 160, 158, 133, 153, 144,  # right eye 36-41
    362, 385, 387, 263, 373, 380,  # left eye 42-47
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,  # outer lip 48-59
    78, 82, 13, 312, 308, 317, 14, 87,  # inner lip 60-67
)
#: the authors' upper-face landmarks: jaw sides, brows, nose, eyes (no mouth, no chin)
UPPER_FACE_68: tuple[int, ...] = (0, 1, 2, 3, *range(13, 48))
#: the authors' lower-face polygon: jaw points 2..14 then the nose tip 33
LOWER_FACE_POLYGON_68: tuple[int, ...] = (*range(2, 15), 33)
NOSE_TIP_68 = 33


def landmarks68(landmarks: np.ndarray, align_matrix: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """(N, 478*3) or (N, 478, 3) source-frame landmarks + (N, 6) or (N, 2, 3) crop matrices -> (N, 68, 2)
    in aligned-crop pixels (times ``scale``, for crops resized from the stored size)."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(-1, N_LANDMARKS, 3)[:, MP_TO_68, :2]
    m = np.asarray(align_matrix, dtype=np.float64).reshape(-1, 2, 3)
    out = np.einsum("nij,nkj->nki", m[:, :, :2], lm) + m[:, None, :, 2]
    return (out * scale).astype(np.float32)


def has_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """(N,) whether a row holds real landmarks (stored zeros or NaNs mean none)."""
    lm = np.asarray(landmarks, dtype=np.float32).reshape(len(landmarks), -1)
    return np.isfinite(lm).all(axis=1) & (np.abs(lm).sum(axis=1) > 0)


def template68(size: int) -> np.ndarray:
    """A frontal 68-point layout in crop pixels for the pipeline's default template (eyes at 0.36, 0.25
    apart, nose tip 0.53): the stand-in for frames without stored landmarks (synthetic shards)."""
    s = float(size)
    jaw_t = np.linspace(np.pi, 0, 17)
    jaw = np.stack([0.5 + 0.36 * np.cos(jaw_t), 0.36 + 0.52 * np.sin(jaw_t)], 1)  # ears at eye height, chin 0.88
    brow_r = np.stack([np.linspace(0.22, 0.44, 5), np.full(5, 0.27)], 1)
    brow_l = np.stack([np.linspace(0.56, 0.78, 5), np.full(5, 0.27)], 1)
    bridge = np.stack([np.full(4, 0.5), np.linspace(0.38, 0.53, 4)], 1)
    nostrils = np.stack([np.linspace(0.44, 0.56, 5), np.full(5, 0.57)], 1)

    def eye(cx: float) -> np.ndarray:
        a = np.linspace(np.pi, -np.pi, 7)[:-1]
        return np.stack([cx + 0.05 * np.cos(a), 0.36 - 0.015 * np.sin(a)], 1)

    outer = np.stack([0.5 + 0.1 * np.cos(np.linspace(np.pi, -np.pi, 13)[:-1]),
                      0.70 - 0.04 * np.sin(np.linspace(np.pi, -np.pi, 13)[:-1])], 1)
    inner = np.stack([0.5 + 0.07 * np.cos(np.linspace(np.pi, -np.pi, 9)[:-1]),
                      0.70 - 0.015 * np.sin(np.linspace(np.pi, -np.pi, 9)[:-1])], 1)
    pts = np.concatenate([jaw, brow_r, brow_l, bridge, nostrils, eye(0.375), eye(0.625), outer, inner])
    return (pts * s).astype(np.float32)


def polygon_mask(points: np.ndarray, size: int) -> np.ndarray:
    """(N, 68, 2) crop-pixel landmarks -> (N, size, size) float32, 1 inside the lower-face polygon."""
    import cv2

    out = np.zeros((len(points), size, size), np.uint8)
    for i, p in enumerate(np.asarray(points)):
        poly = np.round(p[list(LOWER_FACE_POLYGON_68)] * 16).astype(np.int32)  # 4 fractional bits
        cv2.fillPoly(out[i], [poly], 1, lineType=cv2.LINE_8, shift=4)
    return out.astype(np.float32)


def masked_frames(faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 3, S, S) faces with every row below the nose tip zeroed (the authors' masked ground truth)."""
    out = np.array(faces, copy=True)
    rows = np.arange(out.shape[-2])
    for i, p in enumerate(np.asarray(points)):
        out[i, :, rows > p[NOSE_TIP_68, 1]] = 0
    return out


def upper_face(points: np.ndarray, size: int) -> np.ndarray:
    """(N, 68, 2) crop pixels -> (N, 39, 2) upper-face landmarks in [0, 1] crop units."""
    return (np.asarray(points)[:, list(UPPER_FACE_68)] / float(size)).astype(np.float32)
