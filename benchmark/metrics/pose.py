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

from talkbench.benchmark.metrics.au import pearson
from talkbench.benchmark.metrics.base import ClipPair, Metric, register_metric
from talkbench.benchmark.metrics.common import paired_mask, reference_of

HS_SCALE_DEG = 90.0


def head_pose_similarity(gen_pose: np.ndarray, ref_pose: np.ndarray) -> dict[str, float]:
    """gen_pose, ref_pose: (N, >=3) with yaw, pitch, roll in degrees first."""
    if len(gen_pose) != len(ref_pose):
        raise ValueError(f"pose sequences differ in length: {len(gen_pose)} vs {len(ref_pose)}")
    if len(gen_pose) == 0:
        return {"hs": math.nan, "pose_corr": math.nan, "pose_err_deg": math.nan}
    g = np.asarray(gen_pose, np.float64)[:, :3]
    r = np.asarray(ref_pose, np.float64)[:, :3]
    err = np.linalg.norm(g - r, axis=1)
    corrs = np.array([pearson(g[:, k], r[:, k]) for k in range(3)])
    return {
        "hs": float((1.0 - np.minimum(err, HS_SCALE_DEG) / HS_SCALE_DEG).mean()),
        "pose_corr": float(np.nanmean(corrs)) if np.isfinite(corrs).any() else math.nan,
        "pose_err_deg": float(err.mean()),
    }


@register_metric("head-pose")
class HeadPose(Metric):
    """HS (1 - angular distance / 90 deg), per-angle Pearson r and mean angular error, generated vs real."""

    name = "head-pose"
    variant = "hs-euler-l2-90deg+pearson"
    directions = {"hs": "higher", "pose_corr": "higher", "pose_err_deg": "lower"}

    def score(self, pair: ClipPair) -> dict[str, float]:
        ref = reference_of(pair)
        m = paired_mask(pair.generated, ref)
        n = len(m)
        return head_pose_similarity(pair.generated.pose[:n][m], ref.pose[:n][m])
