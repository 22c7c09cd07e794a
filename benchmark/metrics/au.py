"""AU agreement between the AUs seen on generated and on real frames (speech AUs, OpenFace 0-5 scale)."""

from __future__ import annotations

import math

import numpy as np

from talkbench.benchmark.metrics.base import ClipPair, Metric, register_metric
from talkbench.benchmark.metrics.common import agreement_r, paired_mask, reference_of
from talkbench.schema import SPEECH_AUS

OCCURRENCE_THRESHOLD = 1.0  # intensity >= 1 on the 0-5 scale counts as present (OpenFace-like)


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


def predicted_vs_seen(predicted: dict[str, np.ndarray], seen: dict[str, np.ndarray], found: np.ndarray,
                      aus: tuple[str, ...] = SPEECH_AUS) -> dict[str, float]:
    """The generator's own Audio-to-AU prediction against the AUs measured on its generated frames.

    Per speech AU the model predicts: ``{AU}_pred_mae`` = mean |seen - predicted| and ``{AU}_pred_r`` =
    :func:`agreement_r` (seen, predicted), over the frames with a face. The prediction is the target here:
    a video that does not move while the prediction does scores r = 0 (penalised); a constant prediction
    leaves r undefined (NaN), counted in ``au_pred_r_undefined``, never dropped silently. ``au_pred_mae``
    and ``au_pred_r`` are the means over the AUs where defined; ``au_pred_n_aus`` says how many AUs the
    model predicts (predicted non-speech AUs are not scored).
    """
    common = [a for a in aus if a in predicted]
    if not common:
        raise ValueError(f"the predicted AUs ({', '.join(sorted(predicted))}) name none of the speech AUs "
                         f"{', '.join(aus)}")
    missing = [a for a in common if a not in seen]
    if missing:
        raise ValueError(f"AU {', '.join(missing)} predicted but not measured by the AU backend")
    n = min([len(found)] + [len(predicted[a]) for a in common] + [len(seen[a]) for a in common])
    mask = np.asarray(found[:n], bool)
    out: dict[str, float] = {}
    for au in common:
        p = np.asarray(predicted[au], np.float64)[:n][mask]
        s = np.asarray(seen[au], np.float64)[:n][mask]
        ok = np.isfinite(p) & np.isfinite(s)
        p, s = p[ok], s[ok]
        out[f"{au}_pred_mae"] = float(np.abs(s - p).mean()) if len(p) else math.nan
        out[f"{au}_pred_r"] = agreement_r(s, p) if len(p) else math.nan
    for stat in ("mae", "r"):
        vals = np.array([out[f"{au}_pred_{stat}"] for au in common])
        out[f"au_pred_{stat}"] = float(np.nanmean(vals)) if np.isfinite(vals).any() else math.nan
    out["au_pred_r_undefined"] = float((~np.isfinite([out[f"{au}_pred_r"] for au in common])).sum())
    out["au_pred_n_aus"] = float(len(common))
    return out


@register_metric("au-audio-consistency")
class AUAudioConsistency(Metric):
    """GUIDE §3: the generator's audio-predicted AUs vs the AUs seen on its generated video (MAE, r).

    Only for generators that expose their Audio-to-AU output (``generate_with_aus``, or a
    ``<clip_id>.aus.csv`` sidecar in an outputs-first folder); for the others the run records the metric
    as unavailable with that reason, never as 0. The seen AUs are measured by the task's AU backend from
    the REAL clip's neutral baseline, as for ``au-agreement``.
    """

    variant = "speech-aus-predicted-vs-seen-mae-pearson-const0-realbaseline"
    requires_reference = False
    directions = {
        "au_pred_mae": "lower", "au_pred_r": "higher",
        **{f"{au}_pred_mae": "lower" for au in SPEECH_AUS},
        **{f"{au}_pred_r": "higher" for au in SPEECH_AUS},
    }

    def update(self, pair: ClipPair) -> dict[str, float]:
        if pair.predicted_aus is None:  # nothing to compare: no value (counted as undefined), never a zero
            return {}
        return super().update(pair)

    def not_scored_reason(self) -> str | None:
        # asked only when no clip has a value (a cluster run merges per-clip values, not this object's state)
        return ("the submission exposes no predicted AUs (an adapter's generate_with_aus, or <clip_id>.aus.csv "
                "beside each video)")

    def score(self, pair: ClipPair) -> dict[str, float]:
        assert pair.predicted_aus is not None
        return predicted_vs_seen(pair.predicted_aus, pair.generated.aus, pair.generated.face_found)
