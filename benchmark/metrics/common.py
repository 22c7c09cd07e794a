"""Helpers every metric module shares: device choice, frame chunks, pairing the two sides of a clip, and
the correlation every agreement metric (AUs, head pose) uses."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from talkbench.benchmark.metrics.base import AlignedVideo, ClipPair

#: frames per batch sent to a network or a batched kernel; bounded so a long clip never exhausts memory
CHUNK = 64


def resolve_device(device: str | None) -> Any:
    """A torch.device: the given one, else CUDA when available, else CPU (torch imported lazily)."""
    import torch

    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def chunks(n: int, size: int = CHUNK) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def reference_of(pair: ClipPair) -> AlignedVideo:
    if pair.reference is None:
        raise ValueError(f"clip {pair.clip_id!r} has no reference video (unpaired task)")
    return pair.reference


def paired_mask(gen: AlignedVideo, ref: AlignedVideo) -> np.ndarray:
    """Frames compared by full-reference metrics: the common length, face found on both sides.

    Submissions of the wrong length are the harness's business (it errors or trims); here we only
    guarantee never to compare frame t of one side with frame t' != t of the other.
    """
    n = min(len(gen.faces), len(ref.faces))
    return np.asarray(gen.face_found[:n], bool) & np.asarray(ref.face_found[:n], bool)


def to_gray(frames: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB -> float64 luma on 0-255 with the ITU-R BT.601 weights (MATLAB rgb2gray)."""
    return frames[..., :3].astype(np.float64) @ np.array([0.2989, 0.5870, 0.1140])


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r; NaN when either side is constant (undefined, not zero)."""
    a = np.asarray(a, np.float64) - np.mean(a)
    b = np.asarray(b, np.float64) - np.mean(b)
    den = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else math.nan


def agreement_r(pred: np.ndarray, true: np.ndarray) -> float:
    """Pearson r of a prediction against the truth, with the no-silent-drop rule of every agreement metric.

    A constant prediction against a varying truth follows nothing: r = 0 (not NaN, so a frozen mouth or
    head is penalised, never dropped). Only a constant truth leaves r undefined (NaN), and callers count
    those cases beside the mean.
    """
    t = np.asarray(true, np.float64)
    if len(t) < 2 or np.ptp(t) == 0:
        return math.nan
    p = np.asarray(pred, np.float64)
    return 0.0 if np.ptp(p) == 0 else pearson(p, t)
