"""PSNR and SSIM on the aligned face crops both sides share (full reference).

The math is batched torch (CPU or GPU) but reproduces scikit-image exactly: SSIM crops the border of
half a window before averaging, so a "valid" filter sees the same pixels skimage's reflect-padded
filter keeps (tests compare against ``skimage.metrics`` frame by frame). Computed in float64; the
separable window is applied as two banded matrix products (fast BLAS), not a grouped convolution.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from talkbench.benchmark.metrics.base import ClipPair, Metric, register_metric
from talkbench.benchmark.metrics.common import CHUNK, chunks, paired_mask, reference_of, resolve_device

PSNR_CAP_DB = 100.0  # value for identical frames (MSE = 0), where PSNR is infinite


def psnr_frames(gen: np.ndarray, ref: np.ndarray, data_range: float = 255.0, cap: float = PSNR_CAP_DB
                ) -> np.ndarray:
    """Per-frame PSNR in dB of (N, H, W, C) arrays, capped at ``cap`` (also used when MSE = 0).

    numpy, not torch: the math is memory-bound, so a device copy would cost more than it saves.
    """
    _check_shapes(gen, ref)
    out = np.empty(len(gen), np.float64)
    for s in chunks(len(gen), CHUNK):
        diff = gen[s].astype(np.float64) - ref[s]
        mse = np.einsum("nhwc,nhwc->n", diff, diff) / diff[0].size
        with np.errstate(divide="ignore"):
            out[s] = np.minimum(10.0 * np.log10(data_range**2 / mse), cap)
    return out


#: variant -> (window, gaussian sigma or None for uniform, sample covariance)
SSIM_VARIANTS: dict[str, tuple[int, float | None, bool]] = {
    "ssim-gauss11-s1.5": (11, 1.5, False),  # Wang et al. 2004; skimage gaussian_weights=True
    "ssim-uniform7": (7, None, True),  # skimage defaults
}


def _window_1d(win: int, sigma: float | None) -> np.ndarray:
    if sigma is None:
        return np.full(win, 1.0 / win)
    x = np.arange(win) - (win - 1) / 2
    w = np.exp(-0.5 * (x / sigma) ** 2)  # scipy.ndimage.gaussian_filter, truncate 3.5 -> radius 5
    return w / w.sum()


def ssim_frames(gen: np.ndarray, ref: np.ndarray, variant: str = "ssim-gauss11-s1.5", data_range: float = 255.0,
                device: str | None = None) -> np.ndarray:
    """Per-frame mean SSIM of (N, H, W, C) arrays, averaged over channels like skimage's channel_axis."""
    import torch

    _check_shapes(gen, ref)
    try:
        win, sigma, sample_cov = SSIM_VARIANTS[variant]
    except KeyError:
        raise ValueError(f"unknown SSIM variant {variant!r}; known: {sorted(SSIM_VARIANTS)}") from None
    if gen.shape[1] < win or gen.shape[2] < win:
        raise ValueError(f"frames of {gen.shape[1]}x{gen.shape[2]} are smaller than the {win}x{win} SSIM window")
    dev = resolve_device(device)
    h, w = gen.shape[1], gen.shape[2]
    w1 = _window_1d(win, sigma)
    # valid separable filtering as two banded matrix products: BLAS-fast in float64, unlike grouped conv
    kh = torch.as_tensor(_band(h, w1), device=dev)  # (H, H - win + 1)
    kw = torch.as_tensor(_band(w, w1), device=dev)
    cov_norm = win * win / (win * win - 1.0) if sample_cov else 1.0
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    out = np.empty(len(gen), np.float64)
    for s in chunks(len(gen), CHUNK):
        x = torch.as_tensor(gen[s], device=dev).double().permute(0, 3, 1, 2)
        y = torch.as_tensor(ref[s], device=dev).double().permute(0, 3, 1, 2)
        stack = torch.stack([x, y, x * x, y * y, x * y])  # (5, n, C, H, W)
        ux, uy, uxx, uyy, uxy = kh.T @ stack @ kw  # valid region = skimage's border crop
        vx = cov_norm * (uxx - ux * ux)
        vy = cov_norm * (uyy - uy * uy)
        vxy = cov_norm * (uxy - ux * uy)
        smap = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        out[s] = smap.mean(dim=(1, 2, 3)).cpu().numpy()
    return out


def _band(n: int, w1: np.ndarray) -> np.ndarray:
    """(n, n - k + 1) matrix M with M[j + i, j] = w1[i]: ``x @ M`` is a valid 1-D correlation along x's last axis."""
    k = len(w1)
    m = np.zeros((n, n - k + 1))
    for i in range(k):
        m[np.arange(n - k + 1) + i, np.arange(n - k + 1)] = w1[i]
    return m


def _check_shapes(gen: np.ndarray, ref: np.ndarray) -> None:
    if gen.shape != ref.shape or gen.ndim != 4:
        raise ValueError(f"expected two (N, H, W, C) arrays of one shape, got {gen.shape} and {ref.shape}")


def _clip_mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else math.nan


@register_metric("psnr")
class PSNR(Metric):
    """Mean over frames of per-frame PSNR (RGB, 0-255) on the aligned face crops; 100 dB when identical."""

    name = "psnr"
    variant = "psnr-rgb-face-framemean-cap100"
    directions = {"psnr": "higher"}

    def score(self, pair: ClipPair) -> dict[str, float]:
        ref = reference_of(pair)
        m = paired_mask(pair.generated, ref)
        n = len(m)
        return {"psnr": _clip_mean(psnr_frames(pair.generated.faces[:n][m], ref.faces[:n][m]))}


class _SSIMBase(Metric):
    key: str = "ssim"

    def score(self, pair: ClipPair) -> dict[str, float]:
        ref = reference_of(pair)
        m = paired_mask(pair.generated, ref)
        n = len(m)
        values = ssim_frames(pair.generated.faces[:n][m], ref.faces[:n][m], self.variant, device=self.device)
        return {self.key: _clip_mean(values)}


@register_metric("ssim")
class SSIM(_SSIMBase):
    """Wang et al. SSIM: 11x11 Gaussian window, sigma 1.5, population covariance; RGB channel mean."""

    name = "ssim"
    variant = "ssim-gauss11-s1.5"
    key = "ssim"
    directions: Any = {"ssim": "higher"}


@register_metric("ssim-uniform7")
class SSIMUniform7(_SSIMBase):
    """scikit-image's default SSIM: 7x7 uniform window, sample covariance; RGB channel mean."""

    name = "ssim-uniform7"
    variant = "ssim-uniform7"
    key = "ssim_uniform7"
    directions: Any = {"ssim_uniform7": "higher"}
