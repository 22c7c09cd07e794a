"""PSNR and SSIM on the aligned face crops both sides share (full reference).

The math is batched and reproduces scikit-image's variants: SSIM crops the border of half a window
before averaging, so a "valid" filter sees the same pixels skimage's reflect-padded filter keeps (tests
compare against ``skimage.metrics`` frame by frame, to 1e-5). SSIM runs in float32 on data centred at
data_range/2 (agrees with skimage's float64 to ~2e-7). Two backends for the local means: on CPU
OpenCV's separable filters (O(window) per pixel, a running sum for the box), on GPUs two large banded
GEMMs in torch -- on CPU those do H/window times the needed arithmetic and lost to skimage's
per-frame loop, while torch's depthwise convolutions measured 3-5x slower still.
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
        # float32 squares of 0-255 differences are exact; summing them in float64 keeps the MSE exact
        diff = (gen[s].astype(np.float32) - ref[s]).reshape(s.stop - s.start, -1)
        mse = np.add.reduce(diff * diff, axis=1, dtype=np.float64) / diff.shape[1]
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
    """Per-frame mean SSIM of (N, H, W, C) arrays, averaged over channels like skimage's channel_axis.

    On CPU the window runs through OpenCV's separable filters (a running-sum box for the uniform
    window), on other devices through torch banded GEMMs: one formula, two backends, both tested
    against skimage.
    """
    _check_shapes(gen, ref)
    try:
        win, sigma, _ = SSIM_VARIANTS[variant]
    except KeyError:
        raise ValueError(f"unknown SSIM variant {variant!r}; known: {sorted(SSIM_VARIANTS)}") from None
    if gen.shape[1] < win or gen.shape[2] < win:
        raise ValueError(f"frames of {gen.shape[1]}x{gen.shape[2]} are smaller than the {win}x{win} SSIM window")
    dev = resolve_device(device)
    if dev.type == "cpu":
        return _ssim_cpu(gen, ref, variant, data_range)
    return _ssim_torch(gen, ref, variant, data_range, dev)


def _constants(variant: str, data_range: float) -> tuple[float, float, float]:
    """(c1, c2 / cov_norm, shift). cov_norm (sample covariance) cancels in the cs ratio, so it goes into c2."""
    win, _, sample_cov = SSIM_VARIANTS[variant]
    cov_norm = win * win / (win * win - 1.0) if sample_cov else 1.0
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return c1, c2 / cov_norm, data_range / 2  # centring shrinks E[x^2] - mu^2 cancellation in float32 ~4x


def _ssim_cpu(gen: np.ndarray, ref: np.ndarray, variant: str, data_range: float) -> np.ndarray:
    """numpy + OpenCV. Frames are stacked into one tall (n*H, W, C) image per moment: a vertical window
    only bleeds across frames into the border rows the "valid" crop drops, so one call filters a chunk.
    Float32 throughout (agrees with skimage's float64 to ~2e-7); the arithmetic is in place because
    it, not the filtering, is the cost (memory-bound), and torch's CPU elementwise ops measured ~1.7x
    slower than numpy's on these arrays.
    """
    import cv2

    win, sigma, _ = SSIM_VARIANTS[variant]
    c1, c2, shift = _constants(variant, data_range)
    w1 = _window_1d(win, sigma)
    _, h, w, c = gen.shape
    r = win // 2
    out = np.empty(len(gen), np.float64)
    for s in chunks(len(gen), CHUNK):
        n = s.stop - s.start

        def local_mean(a: np.ndarray, n: int = n) -> np.ndarray:
            m = cv2.blur(a, (win, win)) if sigma is None else cv2.sepFilter2D(a, -1, w1, w1)
            return np.ascontiguousarray(m.reshape(n, h, w, c)[:, r: h - r, r: w - r])  # "valid" part

        x = gen[s].reshape(n * h, w, c).astype(np.float32)
        y = ref[s].reshape(n * h, w, c).astype(np.float32)
        x -= np.float32(shift)
        y -= np.float32(shift)
        ux, uy = local_mean(x), local_mean(y)
        prod = x * x
        vx = local_mean(prod)
        vy = local_mean(np.multiply(y, y, out=prod))
        vxy = local_mean(np.multiply(x, y, out=prod))
        tmp = ux * ux
        vx -= tmp
        vx += np.subtract(vy, np.multiply(uy, uy, out=tmp), out=vy)
        vx += c2  # vx := var_x + var_y + c2
        vxy -= np.multiply(ux, uy, out=tmp)
        vxy *= 2
        vxy += c2  # vxy := 2 cov + c2
        ux += shift
        uy += shift
        lum_den = np.multiply(ux, ux, out=tmp)
        lum_den += np.multiply(uy, uy, out=vy)
        lum_den += c1
        lum_den *= vx
        smap = ux
        smap *= uy
        smap *= 2
        smap += c1
        smap *= vxy
        smap /= lum_den
        out[s] = smap.reshape(n, -1).mean(axis=1, dtype=np.float64)
    return out


def _ssim_torch(gen: np.ndarray, ref: np.ndarray, variant: str, data_range: float, dev: Any) -> np.ndarray:
    """torch, for GPUs: the separable window as two large banded GEMMs in an (H, W, maps*frames*channels)
    layout (on CPU this does ~18x the window's arithmetic and lost to skimage's loop; see _ssim_cpu)."""
    import torch

    win, sigma, _ = SSIM_VARIANTS[variant]
    c1, c2, shift = _constants(variant, data_range)
    h, w = gen.shape[1], gen.shape[2]
    w1 = _window_1d(win, sigma)
    kh = torch.as_tensor(_band(h, w1), dtype=torch.float32, device=dev)  # (H, H - win + 1)
    kw = torch.as_tensor(_band(w, w1), dtype=torch.float32, device=dev)
    out = np.empty(len(gen), np.float64)
    for s in chunks(len(gen), CHUNK):
        # (H, W, n, C) layout: the H pass is one GEMM and the W pass one batched GEMM, no transposes
        x = torch.as_tensor(gen[s], device=dev).permute(1, 2, 0, 3).contiguous().float().sub_(shift)
        y = torch.as_tensor(ref[s], device=dev).permute(1, 2, 0, 3).contiguous().float().sub_(shift)
        stack = torch.stack([x, y, x * x, y * y, x * y], dim=2)  # (H, W, 5, n, C)
        t = (kh.T @ stack.reshape(h, -1)).reshape(h - win + 1, w, -1)  # (H', W, 5nC)
        maps = (kw.T @ t).reshape(-1, *stack.shape[2:])  # (H'W', 5, n, C); valid = skimage's crop
        ux, uy, vx, vy, vxy = maps.unbind(1)
        # in place, memory-bound: E[x^2] -> var etc.
        vx.sub_(ux * ux).add_(vy.sub_(uy * uy)).add_(c2)  # vx := var_x + var_y + c2
        vxy.sub_(ux * uy).mul_(2).add_(c2)  # vxy := 2 cov + c2
        ux.add_(shift)
        uy.add_(shift)
        lum_den = (ux * ux).add_(uy * uy).add_(c1)
        smap = ux.mul_(uy).mul_(2).add_(c1).mul_(vxy).div_(lum_den.mul_(vx))  # (H'W', n, C)
        out[s] = smap.sum(0).double().mean(-1).cpu().numpy() / smap.shape[0]
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

    variant = "ssim-gauss11-s1.5"
    key = "ssim"
    directions: Any = {"ssim": "higher"}


@register_metric("ssim-uniform7")
class SSIMUniform7(_SSIMBase):
    """scikit-image's default SSIM: 7x7 uniform window, sample covariance; RGB channel mean."""

    variant = "ssim-uniform7"
    key = "ssim_uniform7"
    directions: Any = {"ssim_uniform7": "higher"}
