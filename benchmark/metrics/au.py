"""AU agreement between the AUs seen on generated and on real frames (speech AUs, OpenFace 0-5 scale)."""

from __future__ import annotations

import math

import numpy as np

from talkbench.benchmark.metrics.base import ClipPair, Metric, register_metric
from talkbench.benchmark.metrics.common import paired_mask, reference_of
from talkbench.schema import SPEECH_AUS

OCCURRENCE_THRESHOLD = 1.0  # intensity >= 1 on the 0-5 scale counts as present (OpenFace-like)


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


def occurrence_f1(pred: np.ndarray, true: np.ndarray, threshold: float = OCCURRENCE_THRESHOLD) -> float:
    """F1 of "AU present" (intensity >= threshold), generated vs real; NaN when neither side has any."""
    p = np.asarray(pred) >= threshold
    t = np.asarray(true) >= threshold
    tp = int((p & t).sum())
    denom = int(p.sum() + t.sum())
    return 2.0 * tp / denom if denom else math.nan


def au_agreement(gen: dict[str, np.ndarray], ref: dict[str, np.ndarray], mask: np.ndarray,
                 aus: tuple[str, ...] = SPEECH_AUS, threshold: float = OCCURRENCE_THRESHOLD) -> dict[str, float]:
    """Per AU ``{AU}_mae``, ``{AU}_r``, ``{AU}_f1`` and their means over AUs ``au_mae``, ``au_r``, ``au_f1``.

    ``{AU}_r`` follows :func:`agreement_r` (a constant generated AU scores 0). A mean is over the AUs where
    the value is defined, and ``au_r_undefined`` / ``au_f1_undefined`` count the AUs where it is not
    (real AU constant; AU absent on both sides), so nothing is left out silently.
    """
    out: dict[str, float] = {}
    n = len(mask)
    for au in aus:
        if au not in gen or au not in ref:
            raise ValueError(f"AU {au} is missing on the {'generated' if au not in gen else 'reference'} side")
        g = np.asarray(gen[au], np.float64)[:n][mask]
        r = np.asarray(ref[au], np.float64)[:n][mask]
        ok = np.isfinite(g) & np.isfinite(r)
        g, r = g[ok], r[ok]
        if len(g) == 0:
            out[f"{au}_mae"] = out[f"{au}_r"] = out[f"{au}_f1"] = math.nan
            continue
        out[f"{au}_mae"] = float(np.abs(g - r).mean())
        out[f"{au}_r"] = agreement_r(g, r)
        out[f"{au}_f1"] = occurrence_f1(g, r, threshold)
    for stat in ("mae", "r", "f1"):
        vals = np.array([out[f"{au}_{stat}"] for au in aus])
        out[f"au_{stat}"] = float(np.nanmean(vals)) if np.isfinite(vals).any() else math.nan
        if stat != "mae":
            out[f"au_{stat}_undefined"] = float((~np.isfinite(vals)).sum())
    return out


@register_metric("au-agreement")
class AUAgreement(Metric):
    """MAE, Pearson r and occurrence F1 (>= 1.0) of AU10/14/20/25/26, generated vs real frames."""

    variant = "speech-aus5-mae-pearson-f1thr1.0-const0-realbaseline"  # both sides from the real clip's neutral
    directions = {
        **{"au_mae": "lower", "au_r": "higher", "au_f1": "higher"},
        **{f"{au}_mae": "lower" for au in SPEECH_AUS},
        **{f"{au}_r": "higher" for au in SPEECH_AUS},
        **{f"{au}_f1": "higher" for au in SPEECH_AUS},
    }

    def score(self, pair: ClipPair) -> dict[str, float]:
        ref = reference_of(pair)
        return au_agreement(pair.generated.aus, ref.aus, paired_mask(pair.generated, ref))
