"""Similarity alignment to a template (GUIDE §1): source->crop matrices, face and mouth crops.

``align_matrix`` (T, 2, 3) maps source pixels to aligned-crop pixels; NaN where no face.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from talkbench.facemesh import LEFT_EYE, MOUTH_POINTS, NOSE_TIP, RIGHT_EYE
from talkbench.pipelines.face.config import AlignConfig

# ----------------------------------------------------------------------------------------------
# Similarity transforms


def umeyama(src: np.ndarray, dst: np.ndarray, scale: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ~ s * R @ src + t`` (Umeyama 1991), batched over frames.

    src (N, d), dst (T, N, d) -> s (T,), R (T, d, d), t (T, d). Hand-written rather than
    skimage's per-call estimator because one batched SVD does a whole clip at once.
    """
    mu_s, mu_d = src.mean(0), dst.mean(1)
    xs, xd = src - mu_s, dst - mu_d[:, None]
    cov = np.swapaxes(xd, 1, 2) @ xs / len(src)  # (T, d, d); matmul, not einsum: 10x faster here
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones_like(sig)
    d[:, -1] = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    rot = u @ (d[:, :, None] * vt)
    s = (sig * d).sum(1) / (xs**2).sum(1).mean() if scale else np.ones(len(dst))
    t = mu_d - s[:, None] * np.einsum("tij,j->ti", rot, mu_s)
    return s, rot, t


def smooth_over_time(x: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 that ignores invalid frames (normalised convolution), so
    frames without a face neither contribute nor get filled. ``sigma`` is in frames."""
    if sigma <= 0:
        return x.copy()
    w = valid.astype(np.float64).reshape((-1,) + (1,) * (x.ndim - 1))
    num = gaussian_filter1d(np.where(w > 0, x, 0.0).astype(np.float64), sigma, axis=0, mode="nearest")
    den = gaussian_filter1d(w, sigma, axis=0, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[~valid] = np.nan
    return out.astype(x.dtype)


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map (T, N, 2|3) points with (T, 2, 3) matrices; z is multiplied by the similarity scale."""
    xy = pts[..., :2] @ np.swapaxes(m[:, :, :2], 1, 2) + m[:, None, :, 2]
    if pts.shape[-1] == 2:
        return xy
    s = np.sqrt(np.abs(m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]))  # NaN-quiet determinant
    return np.concatenate([xy, pts[..., 2:] * s[:, None, None]], axis=-1)

# ----------------------------------------------------------------------------------------------
# Alignment


def template_points(cfg: AlignConfig) -> np.ndarray:
    """The (3, 2) template for [right-eye centre, left-eye centre, nose tip] in crop pixels."""
    s, e = cfg.crop_size, cfg.template_eye_distance
    return np.array([[0.5 - e / 2, cfg.template_eye_y], [0.5 + e / 2, cfg.template_eye_y],
                     [0.5, cfg.template_nose_y]], dtype=np.float64) * s


def _anchor_points(landmarks: np.ndarray) -> np.ndarray:
    """(T, 3, 2): eye centres (mean of the two corners) and the nose tip."""
    right = landmarks[:, list(RIGHT_EYE), :2].mean(1)
    left = landmarks[:, list(LEFT_EYE), :2].mean(1)
    return np.stack([right, left, landmarks[:, NOSE_TIP, :2]], axis=1)


def alignment_matrices(landmarks: np.ndarray, valid: np.ndarray, cfg: AlignConfig, fps: float) -> np.ndarray:
    """(T, 2, 3) source->crop similarity from eye and nose points, smoothed over time; NaN where
    ``valid`` is False. Smoothing acts on the anchor points only (``cfg.smoothing_sigma_s``)."""
    anchors = smooth_over_time(_anchor_points(landmarks).astype(np.float64), valid, cfg.smoothing_sigma_s * fps)
    m = np.full((len(landmarks), 2, 3), np.nan)
    if valid.any():
        s, rot, t = umeyama(template_points(cfg), anchors[valid])
        # invert dst = s R tpl + t  ->  tpl = R^T (dst - t) / s
        inv = np.transpose(rot, (0, 2, 1)) / s[:, None, None]
        m[valid] = np.concatenate([inv, -np.einsum("tij,tj->ti", inv, t)[:, :, None]], axis=2)
    return m


def mouth_matrices(face_m: np.ndarray, landmarks: np.ndarray, valid: np.ndarray, cfg: AlignConfig,
                   fps: float) -> np.ndarray:
    """(T, 2, 3) source->mouth-crop: a box of ``cfg.mouth_box`` x crop width around the (smoothed)
    mouth centre in the aligned face, scaled to the mouth crop size; composed with the face
    matrix so the source is resampled once."""
    mh, mw = cfg.mouth_shape
    box_w = cfg.mouth_box * cfg.crop_size
    box_h = box_w * mh / mw
    mouth = apply_affine(np.nan_to_num(face_m), landmarks[:, list(MOUTH_POINTS), :2].astype(np.float64)).mean(1)
    centre = smooth_over_time(mouth, valid, cfg.smoothing_sigma_s * fps)
    k = mw / box_w
    out = np.full_like(face_m, np.nan)
    out[:, :, :2] = face_m[:, :, :2] * k
    out[:, :, 2] = (face_m[:, :, 2] - centre + np.array([box_w / 2, box_h / 2])) * k
    return out


def warp_crops(frames: np.ndarray, matrices: np.ndarray, size_hw: tuple[int, int], antialias: bool = True) -> np.ndarray:
    """Warp each frame with its matrix to (T, h, w, 3) uint8 (bilinear); zeros where the matrix is NaN.

    Anti-aliasing is mip-mapping: bilinear sampling alone down to half size (crop scale s >= 0.5
    crop pixel per source pixel; GRID faces are at 0.6-0.7), and a face that shrinks more is first
    halved (2x2 pixel means) until it does not. The number of halvings is chosen once per clip, from
    its median scale, so sharpness does not flicker between frames; only the source box the crop
    samples is halved, so the cost does not grow with the frame size. A third of the cost of the
    earlier warp at 2x + area-downsample of every crop, which also blurred GRID crops for nothing.
    """
    h, w = size_hw
    out = np.zeros((len(frames), h, w, 3), dtype=np.uint8)
    valid = ~np.isnan(matrices).any(axis=(1, 2))
    levels = halvings(matrices[valid]) if antialias and valid.any() else 0
    for i in np.flatnonzero(valid):
        src, m = _halved_source(frames[i], matrices[i], size_hw, levels) if levels else (frames[i], matrices[i])
        out[i] = cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


def halvings(matrices: np.ndarray) -> int:
    """How often to halve the source so the median scale of (T, 2, 3) similarities is >= 0.5."""
    det = matrices[:, 0, 0] * matrices[:, 1, 1] - matrices[:, 0, 1] * matrices[:, 1, 0]
    scale = float(np.median(np.sqrt(np.abs(det))))
    return max(0, math.ceil(math.log2(0.5 / scale))) if scale > 0 else 0


def _halved_source(frame: np.ndarray, m: np.ndarray, size_hw: tuple[int, int], levels: int) -> tuple[np.ndarray, np.ndarray]:
    """(the source box the crop samples, halved ``levels`` times, its matrix to the crop)."""
    k = 2**levels  # source pixels per pixel of the halved box
    h, w = size_hw
    a, b = m[:, :2], m[:, 2]
    corners = (np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], float) - b) @ np.linalg.inv(a).T
    x0, y0 = (max(int(v), 0) for v in np.floor(corners.min(0)) - 2 * k)  # room for the bilinear neighbour
    x1, y1 = (int(v) for v in np.ceil(corners.max(0)) + 2 * k)
    x1, y1 = min(x1, frame.shape[1]), min(y1, frame.shape[0])
    x1, y1 = x1 - (x1 - x0) % k, y1 - (y1 - y0) % k  # whole k x k blocks: exact halvings
    if x1 - x0 < k or y1 - y0 < k:  # the crop lies outside the frame: all border anyway
        return frame, m
    src = frame[y0:y1, x0:x1]
    for _ in range(levels):
        src = cv2.resize(src, (src.shape[1] // 2, src.shape[0] // 2), interpolation=cv2.INTER_AREA)
    # box pixel q covers source pixels k q .. k q + k - 1: source = k q + (k - 1) / 2 + (x0, y0)
    offset = np.array([x0, y0], float) + (k - 1) / 2
    return src, np.concatenate([a * k, (a @ offset + b)[:, None]], axis=1)


def align_track(frames: np.ndarray, landmarks: np.ndarray, valid: np.ndarray, cfg: AlignConfig,
                fps: float) -> dict[str, np.ndarray]:
    """align_matrix (T, 2, 3) float32, face_crop, mouth_crop and landmarks_crop (T, 478, 3)."""
    face_m = alignment_matrices(landmarks, valid, cfg, fps)
    mouth_m = mouth_matrices(face_m, landmarks, valid, cfg, fps)
    return {
        "align_matrix": face_m.astype(np.float32),
        "face_crop": warp_crops(frames, face_m, (cfg.crop_size, cfg.crop_size), cfg.antialias),
        "mouth_crop": warp_crops(frames, mouth_m, cfg.mouth_shape, cfg.antialias),
        "landmarks_crop": apply_affine(face_m, landmarks.astype(np.float64)).astype(np.float32),
    }
