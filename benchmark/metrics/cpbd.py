"""CPBD sharpness (no reference): Narvekar & Karam, IEEE TIP 2011, to the reference MATLAB code.

Why our own: the ``cpbd`` PyPI package fails to import on SciPy >= 1.2 (GUIDE section 3), and it uses
Octave's automatic Sobel threshold, not the reference's. The steps, as the reference ``CPBD_compute.m``:

1. Canny edges, MATLAB's ``edge(I, 'canny')`` (an even-length, half-pixel-offset derivative-of-Gaussian
   gradient with sigma sqrt(2), replicate borders, high threshold where the 64-bin histogram of the normalised magnitude passes 70 %
   of the pixels, low = 0.4 x high, interpolated non-maximum suppression, 8-connected hysteresis),
   decide which 64x64 blocks are *edge blocks* (> 0.2 % edge pixels).
2. Edge widths (Marziliano et al. 2002) are measured at MATLAB's ``edge(I, 'sobel', 2, 'vertical')``
   edges: horizontal gradient with the Sobel kernel / 8 and replicate borders, a FIXED threshold
   (squared gradient > 2^2 on 0-255 input), then MATLAB's edge thinning (a horizontal local maximum of
   the squared gradient where the horizontal response dominates, or a vertical one). From the edge pixel,
   count pixels left and right while the intensity keeps rising/falling (at most 101 each way), along
   the row, for gradient angles quantised to 0 or +-180.
3. Per edge block, the just-noticeable-blur width is 5 when the block contrast (max - min) <= 50, else
   3; an edge of width w is detected as blurred with probability 1 - exp(-(w / w_JNB) ** 3.6).
4. The score is the share of all measured edges whose blur probability (rounded to 0.01) is <= 0.63.

Checked against the reference MATLAB arrays (``../shared/fixtures/cpbd``, tests/test_cpbd_reference.py):
the Sobel edge map is identical (21,150 edges, 0 pixels differ), the Canny edge map is identical (28,051
edges, 0 pixels differ), the widths are exact, the pooling gives 0.1349 from MATLAB's maps, and end to end
this code gives MATLAB's 0.1349 on the reference image.

Two implementations: :func:`cpbd_frames` is batched over frames (run lengths of monotone steps by
cumulative maxima, block statistics by reshapes), and :func:`cpbd_gray_naive` is the published
algorithm's width and pooling loops written plainly (per-pixel loops, as the ``cpbd`` package's
``compute.py``) on the same edge maps: the perf baseline, and a check of the batched width/pooling code.
"""

from __future__ import annotations

import math

import numpy as np

from talkbench.benchmark.metrics.base import ClipPair, Metric, register_metric
from talkbench.benchmark.metrics.common import chunks, to_gray

BLOCK = 64
EDGE_BLOCK_SHARE = 0.002
BETA = 3.6
JNB_LOW_CONTRAST, JNB_HIGH_CONTRAST, CONTRAST_SPLIT = 5.0, 3.0, 50
P_JNB = 0.63
SHARP_BUCKET = round(P_JNB * 100)  # histogram buckets 0..63 of 0.01 count as "not blurred"
MAX_MARGIN = 100  # the reference implementation scans at most 101 pixels each way
#: frames per batched call: 16 measured fastest at 128x128 (about 23 MiB of temporaries; 64 was ~30 %
#: slower at 4x the memory)
FRAMES_PER_BATCH = 16


#: MATLAB's ``edge(I, 'sobel', SOBEL_THRESHOLD, 'vertical')`` as called by the reference CPBD code
SOBEL_THRESHOLD = 2.0
CANNY_SIGMA = math.sqrt(2.0)  # MATLAB's default for edge(I, 'canny') since R2011a
CANNY_NOT_EDGES, CANNY_LOW_RATIO = 0.7, 0.4  # MATLAB's automatic threshold rule


def _shifted(a: np.ndarray, dr: int, dc: int, fill: float) -> np.ndarray:
    """out[..., r, c] = a[..., r + dr, c + dc], ``fill`` outside the image."""
    out = np.full_like(a, fill)
    h, w = a.shape[-2:]
    out[..., max(0, -dr): h - max(0, dr), max(0, -dc): w - max(0, dc)] = \
        a[..., max(0, dr): h - max(0, -dr), max(0, dc): w - max(0, -dc)]
    return out


def sobel_vertical_edges(image: np.ndarray, threshold: float = SOBEL_THRESHOLD) -> np.ndarray:
    """MATLAB ``edge(I, 'sobel', threshold, 'vertical')`` of (..., H, W) images on 0-255 (thinned, bool).

    Gradients by correlation with the Sobel kernel / 8 (replicate borders); the strength is bx^2 (the
    vertical-edge direction factor kx = 1, ky = 0); an edge pixel has strength > threshold^2 and is a
    local maximum of the strength along the row (where |bx| >= |by|) or along the column, comparing
    ``<=`` on the left/top and ``>`` on the right/bottom; a neighbour outside the image always passes.
    """
    from scipy.ndimage import correlate

    kernel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float64) / 8.0
    lead = (1,) * (image.ndim - 2)
    bx = correlate(image, kernel.reshape(lead + kernel.shape), mode="nearest")
    by = correlate(image, kernel.T.reshape(lead + kernel.shape), mode="nearest")
    b = bx * bx
    bx, by = np.abs(bx), np.abs(by)
    tol = 100 * np.finfo(np.float64).eps
    row_max = (_shifted(b, 0, -1, -np.inf) <= b) & (b > _shifted(b, 0, 1, -np.inf))
    col_max = (_shifted(b, -1, 0, -np.inf) <= b) & (b > _shifted(b, 1, 0, -np.inf))
    return (b > threshold**2) & (((bx >= by - tol) & row_max) | ((by >= -tol) & col_max))


def _matlab_smooth_gradient(image: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's ``smoothGradient`` of ``edge(I, 'canny')``: an EVEN-length separable derivative of Gaussian.

    The kernels have 8 ceil(sigma) taps sampled at half-integer positions -n..n, n = (taps - 1) / 2 (16 taps
    at -7.5..7.5 for sigma sqrt(2)); the Gaussian sums to one, its ``gradient`` is scaled so its positive and
    its negative parts each sum to one in magnitude. Both are applied as ``imfilter(.., 'conv', 'replicate')``:
    an even kernel's centre is tap (taps + 1) // 2 (1-based), so the gradient sits half a pixel off the pixel
    grid in both axes. That half pixel moves a third of the edge pixels by one; an odd kernel agreed with
    MATLAB's edge map on 94 % of pixels, this one on all of them (tests/test_cpbd_reference.py).
    """
    from scipy.ndimage import correlate1d

    taps = 8 * math.ceil(sigma)
    half = (taps - 1) / 2
    x = np.arange(taps, dtype=np.float64) - half
    gauss = np.exp(-(x**2) / (2 * sigma**2))
    gauss /= gauss.sum()
    deriv = np.gradient(gauss)
    pos, neg = deriv > 0, deriv < 0
    deriv[pos] /= deriv[pos].sum()
    deriv[neg] /= abs(deriv[neg].sum())
    # MATLAB conv = correlation with the kernel reversed, centred on tap (taps + 1) // 2 - 1 (0-based);
    # scipy centres an even kernel on tap taps // 2 + origin
    origin = (taps + 1) // 2 - 1 - taps // 2

    def conv(a: np.ndarray, k: np.ndarray, axis: int) -> np.ndarray:
        return correlate1d(a, k[::-1], axis=axis, mode="nearest", origin=origin)

    gx = conv(conv(image, gauss, -2), deriv, -1)
    gy = conv(conv(image, gauss, -1), deriv, -2)
    return gx, gy


def canny_edges(image: np.ndarray, sigma: float = CANNY_SIGMA) -> np.ndarray:
    """MATLAB ``edge(I, 'canny')`` (automatic thresholds) of (..., H, W) images, each image on its own."""
    from scipy.ndimage import label

    gx, gy = _matlab_smooth_gradient(np.asarray(image, np.float64), sigma)
    mag = np.hypot(gx, gy)
    peak = mag.max(axis=(-2, -1), keepdims=True)
    mag = np.divide(mag, peak, out=np.zeros_like(mag), where=peak > 0)
    h, w = mag.shape[-2:]
    flat = mag.reshape(-1, h * w)
    bins = np.floor(flat * 63 + 0.5).astype(np.int64)  # imhist(mag, 64): bin centres 0, 1/63, ..., 1
    counts = np.stack([np.bincount(b, minlength=64)[:64] for b in bins])
    high = (np.argmax(np.cumsum(counts, axis=1) > CANNY_NOT_EDGES * h * w, axis=1) + 1) / 64.0
    high = high.reshape(mag.shape[:-2] + (1, 1))
    low = CANNY_LOW_RATIO * high
    # interpolated non-maximum suppression in four gradient sectors (MATLAB's cannyFindLocalMaxima)
    ix, iy = gx, gy
    m = {(dr, dc): _shifted(mag, dr, dc, 0.0) for dr in (-1, 0, 1) for dc in (-1, 0, 1)}
    with np.errstate(divide="ignore", invalid="ignore"):
        d_y, d_x = np.abs(iy / ix), np.abs(ix / iy)
        sectors = [
            (((iy <= 0) & (ix > -iy)) | ((iy >= 0) & (ix < -iy)), d_y, (0, 1), (-1, 1), (0, -1), (1, -1)),
            (((ix > 0) & (-iy >= ix)) | ((ix < 0) & (-iy <= ix)), d_x, (-1, 0), (-1, 1), (1, 0), (1, -1)),
            (((ix <= 0) & (ix > iy)) | ((ix >= 0) & (ix < iy)), d_x, (-1, 0), (-1, -1), (1, 0), (1, 1)),
            (((iy < 0) & (ix <= iy)) | ((iy > 0) & (ix >= iy)), d_y, (0, -1), (-1, -1), (0, 1), (1, 1)),
        ]
        local_max = np.zeros(mag.shape, bool)
        taken = np.zeros(mag.shape, bool)  # MATLAB tests the sectors in this order, first match wins
        for sel, d, a1, b1, a2, b2 in sectors:
            sel = sel & ~taken
            taken |= sel
            g1 = m[a1] * (1 - d) + m[b1] * d
            g2 = m[a2] * (1 - d) + m[b2] * d
            local_max |= sel & (mag >= g1) & (mag >= g2)
    interior = np.zeros((h, w), bool)
    interior[1:-1, 1:-1] = True
    weak = local_max & interior & (mag > low)
    strong = weak & (mag > high)
    # hysteresis: weak edges 8-connected (within one image) to a strong one
    structure = np.zeros((3,) * weak.ndim, bool)
    structure[(1,) * (weak.ndim - 2)] = True
    labels, _ = label(weak, structure=structure)
    keep = np.zeros(labels.max() + 1, bool)
    keep[labels[strong]] = True
    keep[0] = False
    return keep[labels]


def _runs_ending(step: np.ndarray) -> np.ndarray:
    """r[..., k] = number of consecutive True in step[..., :k + 1] ending at column k."""
    idx = np.arange(step.shape[-1])
    last_false = np.maximum.accumulate(np.where(step, -1, idx), axis=-1)
    return idx - last_false


def marziliano_widths(image: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Edge width at each edge pixel of (..., H, W) images whose gradient angle quantises to 0 or +-180
    degrees (0 elsewhere)."""
    h, w = image.shape[-2:]
    gy, gx = np.gradient(image, axis=(-2, -1))
    angle = np.where(gx != 0, np.degrees(np.arctan2(gy, gx)), 0.0)  # reference quirk: gx == 0 -> 0
    q = 45.0 * np.round(angle / 45.0)
    out = np.zeros(image.shape, np.float64)
    if w < 3:
        return out

    def width(step: np.ndarray) -> np.ndarray:
        # step[..., k]: I[k] -> I[k+1] continues the edge. From the edge at column c the left scan
        # counts steps c-2, c-3, ... (a run ending at c-2), the right scan c+1, c+2, ... (starting at c+1)
        ending = _runs_ending(step)
        starting = _runs_ending(step[..., ::-1])[..., ::-1]
        left = np.zeros(image.shape, np.int64)
        right = np.zeros(image.shape, np.int64)
        left[..., 2:] = ending[..., : w - 2]
        right[..., : w - 2] = starting[..., 1:]
        return np.minimum(left, MAX_MARGIN) + 1 + np.minimum(right, MAX_MARGIN) + 1

    interior = np.zeros((h, w), bool)
    interior[1:-1, 1:-1] = True
    sel0 = edges & interior & (q == 0)  # intensity rises left to right
    sel180 = edges & interior & (np.abs(q) == 180)  # falls left to right
    out[sel0] = width(image[..., 1:] > image[..., :-1])[sel0]
    out[sel180] = width(image[..., 1:] < image[..., :-1])[sel180]
    return out


def cpbd_batch(gray: np.ndarray) -> np.ndarray:
    """CPBD of (N, H, W) grayscale images on 0-255; NaN for an image without an edge block."""
    gray = np.asarray(gray, np.float64)
    if gray.ndim != 3:
        raise ValueError(f"cpbd_batch expects (N, H, W) grayscale images, got shape {gray.shape}")
    n, h, w = gray.shape
    canny = canny_edges(gray) if n else np.zeros(gray.shape, bool)
    widths = marziliano_widths(gray, sobel_vertical_edges(gray))
    bh, bw = h // BLOCK, w // BLOCK

    def blocks(a: np.ndarray) -> np.ndarray:  # (N, bh, BLOCK, bw, BLOCK): trailing partial blocks dropped
        return a[:, : bh * BLOCK, : bw * BLOCK].reshape(n, bh, BLOCK, bw, BLOCK)

    edge_block = np.count_nonzero(blocks(canny), axis=(2, 4)) > BLOCK * BLOCK * EDGE_BLOCK_SHARE
    g = blocks(gray)
    contrast = np.floor(g.max(axis=(2, 4)) - g.min(axis=(2, 4)))  # int() of a non-negative value
    jnb = np.where(contrast <= CONTRAST_SPLIT, JNB_LOW_CONTRAST, JNB_HIGH_CONTRAST)
    measured = (blocks(widths) != 0) & edge_block[:, :, None, :, None]
    frame, bi, _, bj, _ = np.nonzero(measured)  # the few edge pixels only, not every pixel
    p_blur = 1.0 - np.exp(-np.abs(blocks(widths)[measured] / jnb[frame, bi, bj]) ** BETA)
    sharp = np.rint(p_blur * 100) <= SHARP_BUCKET  # half to even, as round()
    total = np.bincount(frame, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.bincount(frame[sharp], minlength=n) / total, math.nan)


def cpbd_gray(image: np.ndarray) -> float:
    """CPBD of one grayscale image on 0-255; NaN when the image has no edge block (no edges to judge)."""
    image = np.asarray(image, np.float64)
    if image.ndim != 2:
        raise ValueError(f"cpbd_gray expects a 2-D grayscale image, got shape {image.shape}")
    return float(cpbd_batch(image[None])[0])


def cpbd_frames(frames: np.ndarray) -> np.ndarray:
    """Per-frame CPBD of (N, H, W, 3) uint8 RGB frames (luma as MATLAB's rgb2gray), batched in chunks."""
    out = np.empty(len(frames), np.float64)
    for s in chunks(len(frames), FRAMES_PER_BATCH):
        out[s] = cpbd_batch(to_gray(frames[s]))
    return out


# --- the published algorithm, written plainly ------------------------------------------------------------


def marziliano_widths_naive(image: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Edge widths of one 2-D image by the published code's per-pixel scan: at each edge pixel the
    quantised gradient angle, then a pixel-by-pixel walk left and right along the row. (The published
    code also loops over every pixel for the angle; here only edge pixels, a kinder baseline.)"""
    h, w = image.shape
    gy, gx = np.gradient(image)
    out = np.zeros_like(image, np.float64)
    for r in range(1, h - 1):
        for c in range(1, w - 1):
            if not edges[r, c]:
                continue
            ang = math.degrees(math.atan2(gy[r, c], gx[r, c])) if gx[r, c] != 0 else 0.0
            q = 45 * np.round(ang / 45)
            if q not in (0, 180, -180):
                continue
            sign = 1 if q == 0 else -1  # 0: intensity rises left to right
            m = 0
            while m <= MAX_MARGIN and c - 2 - m >= 0 and sign * (image[r, c - 1 - m] - image[r, c - 2 - m]) > 0:
                m += 1
            left = min(m, MAX_MARGIN) + 1
            m = 0
            while m <= MAX_MARGIN and c + 2 + m < w and sign * (image[r, c + 2 + m] - image[r, c + 1 + m]) > 0:
                m += 1
            right = min(m, MAX_MARGIN) + 1
            out[r, c] = left + right
    return out


def cpbd_gray_naive(image: np.ndarray) -> float:
    """:func:`cpbd_gray` by the plain per-pixel / per-block / per-edge loops of the published code."""
    image = np.asarray(image, np.float64)
    canny = canny_edges(image)
    widths = marziliano_widths_naive(image, sobel_vertical_edges(image))
    hist = np.zeros(101)
    for i in range(image.shape[0] // BLOCK):
        for j in range(image.shape[1] // BLOCK):
            rows, cols = slice(i * BLOCK, (i + 1) * BLOCK), slice(j * BLOCK, (j + 1) * BLOCK)
            if np.count_nonzero(canny[rows, cols]) <= BLOCK * BLOCK * EDGE_BLOCK_SHARE:
                continue
            block = image[rows, cols]
            jnb = JNB_LOW_CONTRAST if int(block.max() - block.min()) <= CONTRAST_SPLIT else JNB_HIGH_CONTRAST
            for width in widths[rows, cols].ravel():
                if width != 0:
                    hist[round((1.0 - math.exp(-((width / jnb) ** BETA))) * 100)] += 1
    total = hist.sum()
    return float(hist[: SHARP_BUCKET + 1].sum() / total) if total else math.nan


def cpbd_frames_naive(frames: np.ndarray) -> np.ndarray:
    """Per-frame :func:`cpbd_gray_naive` of (N, H, W, 3) uint8 RGB frames."""
    return np.array([cpbd_gray_naive(g) for g in to_gray(frames)], np.float64)


@register_metric("cpbd")
class CPBD(Metric):
    """Sharpness of the generated face crops (mean over frames with edges; higher = sharper)."""

    variant = "cpbd-matlab-narvekar2011-luma601"  # the reference MATLAB edge steps (was thr 4x mean: not it)
    directions = {"cpbd": "higher"}
    requires_reference = False

    def score(self, pair: ClipPair) -> dict[str, float]:
        g = pair.generated
        values = cpbd_frames(g.faces[np.asarray(g.face_found, bool)])
        return {"cpbd": float(np.nanmean(values)) if np.isfinite(values).any() else math.nan}
