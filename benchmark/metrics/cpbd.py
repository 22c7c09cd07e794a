"""CPBD sharpness (no reference): our implementation of Narvekar & Karam, IEEE TIP 2011.

Why our own: the ``cpbd`` PyPI package fails to import on SciPy >= 1.2 (GUIDE section 3). The steps:

1. Canny edges (skimage, sigma 1) decide which 64x64 blocks are *edge blocks* (> 0.2 % edge pixels).
2. Edge widths (Marziliano et al. 2002) are measured at vertical Sobel edges (horizontal gradient,
   MATLAB's ``edge(I, 'sobel', 'vertical')`` rule: squared gradient above 4x its mean, thinned to
   horizontal local maxima): from the edge pixel, count pixels left and right while the intensity keeps
   rising/falling (at most 101 each way), along the row, for gradient angles quantised to 0 or +-180.
3. Per edge block, the just-noticeable-blur width is 5 when the block contrast (max - min) <= 50, else
   3; an edge of width w is detected as blurred with probability 1 - exp(-(w / w_JNB) ** 3.6).
4. The score is the share of all measured edges whose blur probability (rounded to 0.01) is <= 0.63.

The width scan is vectorised per image column (run lengths of monotone steps), not a per-pixel loop.
"""

from __future__ import annotations

import math

import numpy as np

from talkbench.benchmark.metrics.base import ClipPair, Metric, register_metric
from talkbench.benchmark.metrics.common import to_gray

BLOCK = 64
EDGE_BLOCK_SHARE = 0.002
BETA = 3.6
JNB_LOW_CONTRAST, JNB_HIGH_CONTRAST, CONTRAST_SPLIT = 5.0, 3.0, 50
P_JNB = 0.63
MAX_MARGIN = 100  # the reference implementation scans at most 101 pixels each way


def sobel_vertical_edges(image: np.ndarray) -> np.ndarray:
    """Thin vertical edges: squared horizontal Sobel response above 4x its mean, horizontal local maxima."""
    from scipy.ndimage import correlate

    kernel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float64) / 8.0
    strength = correlate(image, kernel, mode="nearest") ** 2
    cutoff = 4.0 * strength.mean()
    left = np.pad(strength, ((0, 0), (1, 0)))[:, :-1]
    right = np.pad(strength, ((0, 0), (0, 1)))[:, 1:]
    return (strength > cutoff) & (strength > left) & (strength > right)


def _runs_left(step: np.ndarray) -> np.ndarray:
    """r[:, k] = number of consecutive True in step[:, :k] ending at column k-1."""
    h, w = step.shape
    r = np.zeros((h, w + 1), np.int64)
    for k in range(w):
        r[:, k + 1] = np.where(step[:, k], r[:, k] + 1, 0)
    return r[:, :w]  # r[:, k] counts steps ending at k-1


def _runs_right(step: np.ndarray) -> np.ndarray:
    """r[:, k] = number of consecutive True in step[:, k:]."""
    h, w = step.shape
    r = np.zeros((h, w + 1), np.int64)
    for k in range(w - 1, -1, -1):
        r[:, k] = np.where(step[:, k], r[:, k + 1] + 1, 0)
    return r[:, :w]


def marziliano_widths(image: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Edge width at each edge pixel whose gradient angle quantises to 0 or +-180 degrees (0 elsewhere)."""
    h, w = image.shape
    gy, gx = np.gradient(image)
    angle = np.where(gx != 0, np.degrees(np.arctan2(gy, gx)), 0.0)  # reference quirk: gx == 0 -> 0
    q = 45.0 * np.round(angle / 45.0)
    rising = image[:, 1:] > image[:, :-1]  # rising[:, k]: I[k+1] > I[k]
    falling = image[:, 1:] < image[:, :-1]
    cols = np.arange(w)

    def width(step: np.ndarray) -> np.ndarray:
        # left scan from the edge at c: steps k = c-2, c-3, ...; right scan: steps k = c+1, c+2, ...
        left_runs = _runs_left(step)  # (h, w-1): runs ending at k-1
        right_runs = _runs_right(step)
        left = np.zeros((h, w), np.int64)
        right = np.zeros((h, w), np.int64)
        c = cols[2:]  # left needs c-2 >= 0; steps ending at c-2 = left_runs[:, c-1]
        left[:, 2:] = left_runs[:, c - 1]
        c = cols[: w - 2]  # right needs c+2 <= w-1
        right[:, : w - 2] = right_runs[:, c + 1]
        return np.minimum(left, MAX_MARGIN) + 1 + np.minimum(right, MAX_MARGIN) + 1

    out = np.zeros((h, w), np.float64)
    interior = np.zeros((h, w), bool)
    interior[1:-1, 1:-1] = True
    sel0 = edges & interior & (q == 0)  # intensity rises left to right
    sel180 = edges & interior & (np.abs(q) == 180)  # falls left to right
    if w >= 3:
        out[sel0] = width(rising)[sel0]
        out[sel180] = width(falling)[sel180]
    return out


def cpbd_gray(image: np.ndarray) -> float:
    """CPBD of one grayscale image on 0-255; NaN when the image has no edge block (no edges to judge)."""
    from skimage.feature import canny

    image = np.asarray(image, np.float64)
    if image.ndim != 2:
        raise ValueError(f"cpbd_gray expects a 2-D grayscale image, got shape {image.shape}")
    canny_edges = canny(image)
    widths = marziliano_widths(image, sobel_vertical_edges(image))
    hist = np.zeros(101)
    for i in range(image.shape[0] // BLOCK):
        for j in range(image.shape[1] // BLOCK):
            rows, cols = slice(i * BLOCK, (i + 1) * BLOCK), slice(j * BLOCK, (j + 1) * BLOCK)
            if np.count_nonzero(canny_edges[rows, cols]) <= BLOCK * BLOCK * EDGE_BLOCK_SHARE:
                continue
            bw = widths[rows, cols]
            bw = bw[bw != 0]
            block = image[rows, cols]
            contrast = int(block.max() - block.min())
            jnb = JNB_LOW_CONTRAST if contrast <= CONTRAST_SPLIT else JNB_HIGH_CONTRAST
            p_blur = 1.0 - np.exp(-np.abs(bw / jnb) ** BETA)
            np.add.at(hist, np.rint(p_blur * 100).astype(int), 1)  # half to even, as round()
    total = hist.sum()
    if total == 0:
        return math.nan
    return float(hist[: int(P_JNB * 100) + 1].sum() / total)


def cpbd_frames(frames: np.ndarray) -> np.ndarray:
    """Per-frame CPBD of (N, H, W, 3) uint8 RGB frames (luma as MATLAB's rgb2gray)."""
    gray = to_gray(frames)
    return np.array([cpbd_gray(g) for g in gray], np.float64)


@register_metric("cpbd")
class CPBD(Metric):
    """Sharpness of the generated face crops (mean over frames with edges; higher = sharper)."""

    name = "cpbd"
    variant = "cpbd-narvekar2011-block64-luma601"
    directions = {"cpbd": "higher"}
    requires_reference = False

    def score(self, pair: ClipPair) -> dict[str, float]:
        g = pair.generated
        values = cpbd_frames(g.faces[np.asarray(g.face_found, bool)])
        return {"cpbd": float(np.nanmean(values)) if np.isfinite(values).any() else math.nan}
