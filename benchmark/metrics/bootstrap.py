"""Percentile bootstrap confidence interval of a mean over per-clip values (every aggregate uses it)."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

N_BOOT = 1000
SEED = 0


class CI(NamedTuple):
    low: float
    high: float
    mean: float


def bootstrap_ci(values: np.ndarray | list[float], n_boot: int = N_BOOT, level: float = 0.95, seed: int = SEED
                 ) -> CI:
    """CI(low, high, mean): percentile bootstrap of the mean, fixed seed, vectorised.

    NaN values (clips where the metric is undefined) are dropped first; with no value left the result
    is all NaN, with one value the interval has zero width.
    """
    x = np.asarray(values, np.float64).ravel()
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return CI(math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if len(x) == 1:
        return CI(mean, mean, mean)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    means = x[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return CI(float(low), float(high), mean)
