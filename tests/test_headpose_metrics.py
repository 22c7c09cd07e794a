"""The distributional head-pose metrics (hs-hist, hs-w1, hs-seq-r, pose diversity): reference maths and ranking."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import wasserstein_distance
from yi2020_fixtures import VOX, tracked_clips

from talkbench.benchmark.metrics import METRICS, AlignedVideo, ClipPair
from talkbench.benchmark.metrics.pose import (
    _PoseDistribution,
    angle_histogram,
    pose_distribution_similarity,
    wasserstein1,
)

#: every registered distributional head-pose metric (a new one is tested here without a line more)
NAMES = [name for name, cls in METRICS.items() if issubclass(cls, _PoseDistribution)]


def test_w1_equals_scipy_for_unequal_samples():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 3, 37), rng.normal(2, 5, 81)
    assert wasserstein1(a, b) == pytest.approx(wasserstein_distance(a, b), rel=1e-12)


def test_histogram_intersection_by_hand():
    g = np.zeros((4, 3))
    g[:, 0] = [0.5, 0.5, 1.5, 40.0]  # 40 deg is clipped into the last bin: counted, not dropped
    r = np.zeros((4, 3))
    r[:, 0] = [0.5, 1.5, 1.5, 1.5]
    h = angle_histogram(g[:, 0])
    assert h.sum() == pytest.approx(1.0) and h[-1] == pytest.approx(0.25)
    out = pose_distribution_similarity(g, r)
    # yaw: bins {30: .5, 31: .25, 59: .25} vs {30: .25, 31: .75} -> .25 + .25; pitch and roll identical
    assert out["hs_hist"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert out["hs_seq_r_undefined"] == 2.0  # pitch and roll are constant: r undefined, counted
    assert math.isfinite(out["hs_seq_r"])


def _video(pose: np.ndarray) -> AlignedVideo:
    t = len(pose)
    return AlignedVideo(faces=np.zeros((t, 4, 4, 3), np.uint8), mouths=np.zeros((t, 2, 2, 3), np.uint8),
                        landmarks=np.zeros((t, 478, 3), np.float32), face_found=np.isfinite(pose).all(1),
                        pose=pose.astype(np.float32), aus={})


def test_ground_truth_ranks_first_on_the_fixture_pose(fixtures_dir):
    clips = tracked_clips()
    real = clips[VOX.stem]["pose"].astype(np.float64)
    other = next(d["pose"] for k, d in clips.items() if k != VOX.stem).astype(np.float64)
    n = len(real)
    candidates = {
        "ground_truth": real,
        "first_pose_held": np.repeat(real[:1], n, 0),
        "other_speaker": np.resize(other, (n, 6)),
        "exaggerated": real.mean(0) + 2.5 * (real - real.mean(0)),
        "reversed": real[::-1],
    }
    audio = np.zeros(16000, np.float32)
    assert {"hs-hist", "hs-w1", "hs-seq-r", "pose-diversity"} <= set(NAMES)
    for name in NAMES:
        cls = METRICS.get(name)
        assert "paper" not in cls.variant.lower()
        key, direction = next(iter(cls.directions.items()))
        scores = {c: cls().update(ClipPair(c, _video(p), _video(real), audio))[key] for c, p in candidates.items()}
        best = max if direction == "higher" else min
        finite = {c: v for c, v in scores.items() if np.isfinite(v)}
        assert best(finite, key=finite.get) == "ground_truth" or finite["ground_truth"] == best(finite.values()), (name, scores)
        for c in ("first_pose_held", "other_speaker", "exaggerated"):
            if name == "hs-seq-r" and c == "first_pose_held":
                continue  # a constant pose has no correlation: NaN, counted below
            worse = scores[c] < scores["ground_truth"] if direction == "higher" else scores[c] > scores["ground_truth"]
            assert worse, (name, c, scores)
    held = METRICS.get("hs-seq-r")().update(ClipPair("h", _video(candidates["first_pose_held"]), _video(real), audio))
    assert math.isnan(held["hs_seq_r"]) and held["hs_seq_r_undefined"] == 3.0


def test_frames_without_a_face_are_counted_not_silently_dropped():
    rng = np.random.default_rng(1)
    real = rng.normal(0, 4, (50, 6))
    gen = real.copy()
    gen[:7] = np.nan
    out = METRICS.get("hs-w1")().update(ClipPair("x", _video(gen), _video(real), np.zeros(1, np.float32)))
    assert out["frames_dropped_generated"] == 7.0 and out["frames_dropped_real"] == 0.0
