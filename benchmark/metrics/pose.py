"""Head-pose similarity between generated and real pose sequences (the HS idea of arXiv 2002.10137).

We define (and name) our variant since the paper's exact formula is not reproducible from the text:
``hs`` = mean over frames of ``1 - min(||d||, 90) / 90`` where ``d`` is the (yaw, pitch, roll)
difference in degrees, so 1 = identical pose, 0 = 90 degrees or more apart; ``pose_corr`` = mean over
the three angles of the Pearson r of the two sequences (does the head move *together*); ``pose_err_deg``
= mean ||d||. Translations are ignored: they depend on the crop, not on the head's motion style.
"""

from __future__ import annotations

import math

import numpy as np

from talkbench.benchmark.metrics.base import ClipPair, Metric, register_metric
from talkbench.benchmark.metrics.common import agreement_r, paired_mask, pearson, reference_of

HS_SCALE_DEG = 90.0


def head_pose_similarity(gen_pose: np.ndarray, ref_pose: np.ndarray) -> dict[str, float]:
    """gen_pose, ref_pose: (N, >=3) with yaw, pitch, roll in degrees first."""
    if len(gen_pose) != len(ref_pose):
        raise ValueError(f"pose sequences differ in length: {len(gen_pose)} vs {len(ref_pose)}")
    if len(gen_pose) == 0:
        return {"hs": math.nan, "pose_corr": math.nan, "pose_corr_undefined": 3.0, "pose_err_deg": math.nan}
    g = np.asarray(gen_pose, np.float64)[:, :3]
    r = np.asarray(ref_pose, np.float64)[:, :3]
    err = np.linalg.norm(g - r, axis=1)
    corrs = np.array([agreement_r(g[:, k], r[:, k]) for k in range(3)])  # a frozen head: r = 0
    return {
        "hs": float((1.0 - np.minimum(err, HS_SCALE_DEG) / HS_SCALE_DEG).mean()),
        "pose_corr": float(np.nanmean(corrs)) if np.isfinite(corrs).any() else math.nan,
        "pose_corr_undefined": float((~np.isfinite(corrs)).sum()),  # angles where the real head is constant
        "pose_err_deg": float(err.mean()),
    }


@register_metric("head-pose")
class HeadPose(Metric):
    """HS (1 - angular distance / 90 deg), per-angle Pearson r and mean angular error, generated vs real."""

    variant = "hs-euler-l2-90deg+pearson-const0"
    directions = {"hs": "higher", "pose_corr": "higher", "pose_err_deg": "lower"}

    def score(self, pair: ClipPair) -> dict[str, float]:
        ref = reference_of(pair)
        m = paired_mask(pair.generated, ref)
        n = len(m)
        return head_pose_similarity(pair.generated.pose[:n][m], ref.pose[:n][m])


# ---------------------------------------------------------------------------------------------
# Distributional head-pose similarity (seed 001). Pose is one-to-many with respect to audio, so a
# frame-aligned comparison alone is unfair to any model that moves the head plausibly but differently.
# These are *named talkbench variants*, not the HS of arXiv 2002.10137 (its definition is not public).

ANGLES = ("yaw", "pitch", "roll")
HIST_RANGE_DEG = 30.0  # bins cover +-30 deg; values beyond fall into the edge bins (counted, never dropped)
HIST_BIN_DEG = 1.0
W1_SCALE_DEG = 10.0


def _angles(pose: np.ndarray) -> np.ndarray:
    p = np.asarray(pose, np.float64)
    if p.ndim != 2 or p.shape[1] < 3:
        raise ValueError(f"pose must be (N, >=3) with yaw, pitch, roll first, got {p.shape}")
    return p[:, :3]


def angle_histogram(values: np.ndarray) -> np.ndarray:
    """Normalised histogram on fixed 1-degree bins over +-30 deg, out-of-range values clipped into the edge bins."""
    edges = np.arange(-HIST_RANGE_DEG, HIST_RANGE_DEG + HIST_BIN_DEG / 2, HIST_BIN_DEG)
    v = np.clip(np.asarray(values, np.float64), edges[0], edges[-1])
    h, _ = np.histogram(v, bins=edges)
    return h / max(h.sum(), 1)


def wasserstein1(a: np.ndarray, b: np.ndarray) -> float:
    """W1 between two 1-D samples: the integral of |F_a - F_b| (exact for any sample sizes)."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    xs = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(a, xs[:-1], side="right") / len(a)
    fb = np.searchsorted(b, xs[:-1], side="right") / len(b)
    return float((np.abs(fa - fb) * np.diff(xs)).sum())


def pose_distribution_similarity(gen_pose: np.ndarray, ref_pose: np.ndarray) -> dict[str, float]:
    """hs_hist, hs_w1, hs_seq_r and pose diversity of generated vs real (N, >=3) pose sequences.

    * ``hs_hist``: mean over the three angles of the histogram intersection (fixed 1-degree bins) of
      the two angle distributions, in [0, 1];
    * ``hs_w1``: mean over angles of ``max(0, 1 - W1 / 10 deg)``;
    * ``hs_seq_r``: mean over angles of the frame-aligned Pearson r (secondary: pose is one-to-many);
      angles where either side is constant have no r: ``hs_seq_r_undefined`` counts them and the mean
      is over the rest (NaN when none is left), so a constant pose is visible, not silently dropped;
    * ``pose_std_gen`` / ``pose_std_real``: mean over angles of the standard deviation (degrees), and
      ``pose_std_log_ratio_abs`` = |log(std_gen / std_real)| (0 = the same amount of head motion).
    """
    g, r = _angles(gen_pose), _angles(ref_pose)
    nan = math.nan
    if len(g) == 0 or len(r) == 0:
        return {"hs_hist": nan, "hs_w1": nan, "hs_seq_r": nan, "hs_seq_r_undefined": 3.0,
                "pose_std_gen": nan, "pose_std_real": nan, "pose_std_log_ratio_abs": nan}
    hist = [np.minimum(angle_histogram(g[:, k]), angle_histogram(r[:, k])).sum() for k in range(3)]
    w1 = [max(0.0, 1.0 - wasserstein1(g[:, k], r[:, k]) / W1_SCALE_DEG) for k in range(3)]
    n = min(len(g), len(r))
    rs = np.array([pearson(g[:n, k], r[:n, k]) for k in range(3)])
    sg, sr = float(g.std(0).mean()), float(r.std(0).mean())
    ratio = abs(math.log(sg / sr)) if sg > 0 and sr > 0 else math.inf if sg != sr else 0.0
    return {"hs_hist": float(np.mean(hist)), "hs_w1": float(np.mean(w1)),
            "hs_seq_r": float(np.nanmean(rs)) if np.isfinite(rs).any() else nan,
            "hs_seq_r_undefined": float((~np.isfinite(rs)).sum()),
            "pose_std_gen": sg, "pose_std_real": sr, "pose_std_log_ratio_abs": ratio}


class _PoseDistribution(Metric):
    """Base of the distributional pose metrics: frames with a face on each side, counted."""

    key: str = ""

    def score(self, pair: ClipPair) -> dict[str, float]:
        ref = reference_of(pair)
        g_ok = np.asarray(pair.generated.face_found, bool) & np.isfinite(pair.generated.pose[:, :3]).all(1)
        r_ok = np.asarray(ref.face_found, bool) & np.isfinite(ref.pose[:, :3]).all(1)
        vals = pose_distribution_similarity(pair.generated.pose[g_ok], ref.pose[r_ok])
        out = {k: v for k, v in vals.items() if k == self.key or k.startswith(self.key + "_")}
        out["frames_dropped_generated"] = float((~g_ok).sum())  # no silent drops: what was left out is recorded
        out["frames_dropped_real"] = float((~r_ok).sum())
        return out


@register_metric("hs-hist")
class HSHist(_PoseDistribution):
    """Per-angle histogram intersection of generated vs real head-pose angles (talkbench variant, not the paper's HS)."""

    variant = "hist-1deg-pm30"
    key = "hs_hist"
    directions = {"hs_hist": "higher"}


@register_metric("hs-w1")
class HSW1(_PoseDistribution):
    """1 - Wasserstein-1 / 10 deg per angle, generated vs real (talkbench variant, not the paper's HS)."""

    variant = "w1-10deg"
    key = "hs_w1"
    directions = {"hs_w1": "higher"}


@register_metric("hs-seq-r")
class HSSeqR(_PoseDistribution):
    """Frame-aligned per-angle Pearson r (secondary; talkbench variant, not the paper's HS)."""

    variant = "pearson-per-angle"
    key = "hs_seq_r"
    directions = {"hs_seq_r": "higher"}


@register_metric("pose-diversity")
class PoseDiversity(_PoseDistribution):
    """Head-motion amount: std of the angles, generated vs real, and |log| of their ratio."""

    variant = "std-deg"
    key = "pose_std"
    directions = {"pose_std_log_ratio_abs": "lower"}
