"""Landmark metrics: LMD on the mouth (full reference) and landmark jitter (no reference).

Landmarks are MediaPipe face-mesh points in aligned-crop pixels (x, y; z is ignored), so both sides
share one pixel scale: the aligned face crop of the task's preprocessing.
"""

from __future__ import annotations

import math

import numpy as np

from talkbench import facemesh as fm
from talkbench.benchmark.metrics.base import ClipPair, Metric, register_metric
from talkbench.benchmark.metrics.common import paired_mask, reference_of

# the point sets, by their names here; the indices are talkbench.facemesh's (one owner)
LIPS_OUTER, LIPS_INNER, LIPS = fm.LIPS_OUTER, fm.LIPS_INNER, fm.LIPS  # FACEMESH_LIPS: 20 + 20 contour points
INNER_UPPER, INNER_LOWER = fm.INNER_UPPER_LIP, fm.INNER_LOWER_LIP  # mid points of the inner upper and lower lip
#: vertically opposite inner-lip points: the mid pair and its neighbours on either side
INNER_LIP_PAIRS: tuple[tuple[int, int], ...] = ((INNER_UPPER, INNER_LOWER), *fm.LATERAL_INNER_LIP_PAIRS[:2])
MOUTH_LEFT, MOUTH_RIGHT = fm.MOUTH_CORNERS  # mouth corners (image left, right)
EYE_OUTER_RIGHT, EYE_OUTER_LEFT = fm.RIGHT_EYE_OUTER, fm.LEFT_EYE_OUTER  # the subject's right and left


def lmd_frames(gen: np.ndarray, ref: np.ndarray, reduce: str = "mean", points: tuple[int, ...] = LIPS) -> np.ndarray:
    """Per-frame landmark distance of (N, 478, >=2) arrays on ``points``, each set centred on its own mean.

    ``reduce="mean"``: mean over points of the Euclidean distance; ``"sum"``: sum over points.
    """
    if gen.shape != ref.shape:
        raise ValueError(f"landmark arrays differ in shape: {gen.shape} vs {ref.shape}")
    idx = list(points)
    a = gen[:, idx, :2].astype(np.float64)
    b = ref[:, idx, :2].astype(np.float64)
    a -= a.mean(axis=1, keepdims=True)
    b -= b.mean(axis=1, keepdims=True)
    d = np.linalg.norm(a - b, axis=2)
    if reduce == "mean":
        return d.mean(axis=1)
    if reduce == "sum":
        return d.sum(axis=1)
    raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")


def jitter(landmarks: np.ndarray, found: np.ndarray | None = None) -> tuple[float, float]:
    """(mean velocity, mean acceleration) of all landmarks in pixels/frame, over runs of found frames.

    Velocity |x[t+1] - x[t]| and acceleration |x[t+2] - 2 x[t+1] + x[t]| (Euclidean, x and y) use only
    windows whose frames all have a face, so a lost face never reads as a jump.
    """
    x = landmarks[..., :2].astype(np.float64)
    ok = np.ones(len(x), bool) if found is None else np.asarray(found, bool)
    vel = np.linalg.norm(x[1:] - x[:-1], axis=2).mean(axis=1)
    acc = np.linalg.norm(x[2:] - 2 * x[1:-1] + x[:-2], axis=2).mean(axis=1)
    v_ok = ok[1:] & ok[:-1]
    a_ok = ok[2:] & ok[1:-1] & ok[:-2]
    v = float(vel[v_ok].mean()) if v_ok.any() else math.nan
    a = float(acc[a_ok].mean()) if a_ok.any() else math.nan
    return v, a


def face_scale(landmarks: np.ndarray) -> float:
    """Median inter-ocular distance (outer eye corners) over the frames that have a face; NaN if none.

    One number per clip: unlike the mouth width it does not change while speaking (spread/rounded lips).
    """
    x = landmarks[..., :2].astype(np.float64)
    d = np.linalg.norm(x[:, EYE_OUTER_RIGHT] - x[:, EYE_OUTER_LEFT], axis=1)
    d = d[np.isfinite(d) & (d > 0)]
    return float(np.median(d)) if len(d) else math.nan


def mouth_opening(landmarks: np.ndarray, scale: float | None = None) -> np.ndarray:
    """Per-frame mouth opening: mean inner-lip vertical gap of :data:`INNER_LIP_PAIRS` / face scale.

    Three pairs rather than 13/14 alone average out landmark noise at the lip midline; ``scale``
    defaults to :func:`face_scale` of the clip. Frames without a face (NaN landmarks) give NaN.
    """
    x = landmarks[..., :2].astype(np.float64)
    gap = np.mean([np.linalg.norm(x[:, a] - x[:, b], axis=1) for a, b in INNER_LIP_PAIRS], axis=0)
    return gap / (face_scale(landmarks) if scale is None else scale)


class _LMDBase(Metric):
    reduce: str = "mean"
    key: str = "lmd"

    def score(self, pair: ClipPair) -> dict[str, float]:
        ref = reference_of(pair)
        m = paired_mask(pair.generated, ref)
        n = len(m)
        if not m.any():
            return {self.key: math.nan}
        d = lmd_frames(pair.generated.landmarks[:n][m], ref.landmarks[:n][m], self.reduce)
        return {self.key: float(d.mean())}


@register_metric("lmd")
class LMD(_LMDBase):
    """Mouth LMD: mean over frames of the mean per-point distance of the 40 lip points (crop pixels)."""

    variant = "lmd-mean"
    reduce = "mean"
    key = "lmd"
    directions = {"lmd": "lower"}


@register_metric("lmd-sum")
class LMDSum(_LMDBase):
    """Mouth LMD, sum variant: mean over frames of the summed per-point distance of the 40 lip points."""

    variant = "lmd-sum"
    reduce = "sum"
    key = "lmd_sum"
    directions = {"lmd_sum": "lower"}


def jitter_gap(gen: np.ndarray, gen_found: np.ndarray | None, ref: np.ndarray, ref_found: np.ndarray | None
               ) -> tuple[float, float]:
    """(|vel(gen) - vel(ref)|, |acc(gen) - acc(ref)|): motion judged against the real video's own motion.

    Speech moves the face, so raw motion is not a defect: a frozen face has the lowest raw jitter of all.
    The gap to the ground truth (as THEval reports motion) is 0 for the real motion, and grows both for
    a face that shakes more and for one that moves less than the real one.
    """
    gv, ga = jitter(gen, gen_found)
    rv, ra = jitter(ref, ref_found)
    return abs(gv - rv), abs(ga - ra)


@register_metric("landmark-jitter")
class LandmarkJitter(Metric):
    """Landmark motion (all 478 points, crop pixels per frame) and, on paired tasks, its gap to the ground truth.

    Ranked on the gap only (lower = moves like the real face); the raw velocity/acceleration are shown for
    reference (a still face has the lowest raw values, so they must not rank).
    """

    variant = "jitter-all478-vel-acc-gap-to-gt"
    directions = {"jitter_vel_gap": "lower", "jitter_acc_gap": "lower"}
    requires_reference = False  # raw motion exists on unpaired tasks too; the gaps only with a ground truth

    def score(self, pair: ClipPair) -> dict[str, float]:
        g = pair.generated
        v, a = jitter(g.landmarks, g.face_found)
        out = {"jitter_vel": v, "jitter_acc": a}
        if pair.reference is not None:
            out["jitter_vel_gap"], out["jitter_acc_gap"] = jitter_gap(
                g.landmarks, g.face_found, pair.reference.landmarks, pair.reference.face_found)
        return out


@register_metric("head-placement")
class HeadPlacement(Metric):
    """Head placement error of full-frame outputs: how far the generated face sits from the real one.

    Mean over frames of the mean distance, in aligned-crop pixels, between where the generated face's
    landmarks fall in the ground truth's crop and in their own (benchmark/geometry.py). Per-side
    alignment hides a misplaced head from the image metrics; this reports it. Undefined (NaN, counted)
    for outputs that are already aligned crops.
    """

    variant = "placement-gt-transform-all478-crop-px"
    directions = {"head_placement_px": "lower"}

    def score(self, pair: ClipPair) -> dict[str, float]:
        from talkbench.benchmark.geometry import ALIGN_GT, head_placement_error

        if pair.extra.get("geometry", ALIGN_GT) != ALIGN_GT:  # aligned crops / another frame size: no source frame
            return {"head_placement_px": math.nan}
        d = head_placement_error(pair.generated, reference_of(pair))
        return {"head_placement_px": float(np.nanmean(d)) if np.isfinite(d).any() else math.nan}
