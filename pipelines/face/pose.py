"""Head pose per frame: yaw, pitch, roll in degrees, tx, ty, tz in cm (see :func:`estimate_pose`)."""

from __future__ import annotations

import math

import numpy as np

from talkbench.facemesh import (
    LEFT_EYE_OUTER,
    LEFT_IRIS_CENTER,
    MOUTH_CORNERS,
    RIGHT_EYE_OUTER,
    RIGHT_IRIS_CENTER,
    RIGID_POINTS,
    SYMMETRIC_PAIRS,
)
from talkbench.pipelines.face.align import umeyama
from talkbench.pipelines.face.config import PoseConfig


def head_frame(shape: np.ndarray) -> np.ndarray:
    """(3, 3) rows = the head's x (subject right -> left, i.e. image right), y (eyes -> mouth, down)
    and z = x cross y (into the scene) axes for a (478, 3) shape: the frontal pose is the one where
    the plane of the outer eye corners and mouth corners faces the camera."""
    x = np.mean([shape[a] - shape[b] for a, b in SYMMETRIC_PAIRS], axis=0)
    x /= np.linalg.norm(x)
    down = shape[list(MOUTH_CORNERS)].mean(0) - shape[[RIGHT_EYE_OUTER, LEFT_EYE_OUTER]].mean(0)
    y = down - down.dot(x) * x
    y /= np.linalg.norm(y)
    return np.stack([x, y, np.cross(x, y)])


def reference_shape(landmarks: np.ndarray, valid: np.ndarray, interpupillary_cm: float) -> np.ndarray:
    """The clip's mean rigid shape in head coordinates (cm): frames are aligned to the first valid
    one by Umeyama on the rigid points, averaged (two rounds of generalised Procrustes), rotated
    into :func:`head_frame` and scaled to the given interpupillary distance."""
    pts = landmarks[valid].astype(np.float64)
    rigid = pts[:, list(RIGID_POINTS)]
    ref_rigid = _mean_on_reference(rigid[0], rigid, rigid)  # round 1 needs only the rigid points
    ref = _mean_on_reference(ref_rigid, rigid, pts)
    ref = (ref - ref[list(RIGID_POINTS)].mean(0)) @ head_frame(ref).T
    ipd = np.linalg.norm(ref[LEFT_IRIS_CENTER] - ref[RIGHT_IRIS_CENTER])
    return ref * (interpupillary_cm / ipd)


def _mean_on_reference(ref: np.ndarray, fit: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Mean over frames of ``pts`` (T, N, 3), each frame mapped onto ``ref`` by the similarity that
    fits its ``fit`` points to it: R^T (x - t) / s, with ``dst = s R ref + t`` from :func:`umeyama`."""
    s, rot, t = umeyama(ref, fit)
    return ((pts - t[:, None]) @ rot / s[:, None, None]).mean(0)


def estimate_pose(landmarks: np.ndarray, valid: np.ndarray, frame_hw: tuple[int, int], cfg: PoseConfig) -> np.ndarray:
    """(T, 6) yaw, pitch, roll (degrees), tx, ty, tz (cm); NaN where ``valid`` is False.

    No canonical 3-D face model ships with the mediapipe wheel, so the reference is the clip's own
    mean shape made frontal by :func:`head_frame` (see :func:`reference_shape`). Each frame's rigid
    points are fitted to it (Umeyama); rotations are intrinsic Y-X-Z Euler angles with signs:
    yaw > 0 face turned towards the image's right, pitch > 0 looking up, roll > 0 tilted clockwise
    in the image. Translation is of the rigid-point centroid in OpenCV camera coordinates (x right,
    y down, z forward) for a pinhole camera with ``cfg.vertical_fov_deg`` and principal point at the
    frame centre: tz = focal / (pixels per cm), where the scale comes from the reference's assumed
    interpupillary distance. Comparable between videos, not a calibrated metric distance.
    """
    from scipy.spatial.transform import Rotation

    out = np.full((len(landmarks), 6), np.nan, dtype=np.float32)
    if not valid.any():
        return out
    ref = reference_shape(landmarks, valid, cfg.interpupillary_cm)
    s, rot, t = umeyama(ref[list(RIGID_POINTS)], landmarks[valid][:, list(RIGID_POINTS)].astype(np.float64))
    ey, ex, ez = np.degrees(Rotation.from_matrix(rot).as_euler("YXZ")).T
    h, w = frame_hw
    focal = (h / 2) / math.tan(math.radians(cfg.vertical_fov_deg) / 2)
    tz = focal / s
    out[valid] = np.stack([-ey, -ex, ez, (t[:, 0] - w / 2) / s, (t[:, 1] - h / 2) / s, tz], axis=1)
    return out
