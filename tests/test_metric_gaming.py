"""One test per known way to game the benchmark, showing it no longer works (issue 10), on hand-made cases.

Each case is small and hand-computed: the expected numbers are worked out in the comments, not by
calling the code under test twice.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from talkbench.benchmark.integrity import SUSPECT_COPY_MOUTH_PSNR_DB, check_clip
from talkbench.benchmark.metrics.aggregate import aggregate
from talkbench.benchmark.metrics.avsync import AVXCorr
from talkbench.benchmark.metrics.base import AlignedVideo, ClipPair
from talkbench.benchmark.metrics.landmarks import LandmarkJitter, jitter_gap


def _video(t: int = 6, landmarks: np.ndarray | None = None, mouths: np.ndarray | None = None) -> AlignedVideo:
    return AlignedVideo(faces=np.zeros((t, 16, 16, 3), np.uint8),
                        mouths=np.zeros((t, 8, 8, 3), np.uint8) if mouths is None else mouths,
                        landmarks=np.zeros((t, 478, 3), np.float32) if landmarks is None else landmarks,
                        face_found=np.ones(t, bool), pose=np.zeros((t, 6), np.float32), aus={})


def test_a_still_face_no_longer_wins_the_jitter_metric() -> None:
    # real face: every point alternates x = 0, 1, 0, 1, ... -> velocity 1 px/frame, acceleration |1-0-0+...| = 2
    real = np.zeros((6, 478, 3), np.float32)
    real[1::2, :, 0] = 1.0
    still = np.zeros_like(real)  # raw jitter 0: the old "lower is better" ranked it best
    assert jitter_gap(still, None, real, None) == pytest.approx((1.0, 2.0))
    assert jitter_gap(real, None, real, None) == (0.0, 0.0)  # the real motion itself: no gap
    shaky = real * 3  # three times the real motion: velocity 3, acceleration 6 -> gaps 2 and 4
    assert jitter_gap(shaky, None, real, None) == pytest.approx((2.0, 4.0))
    metric = LandmarkJitter()
    vals = metric.update(ClipPair("c", _video(landmarks=still), _video(landmarks=real), np.zeros(10)))
    assert vals["jitter_vel"] == 0 and vals["jitter_vel_gap"] == pytest.approx(1.0)
    assert set(LandmarkJitter.directions) == {"jitter_vel_gap", "jitter_acc_gap"}  # raw motion never ranks


def test_a_copied_ground_truth_mouth_is_flagged() -> None:
    rng = np.random.default_rng(0)
    mouths = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    real = _video(mouths=mouths)
    copied = check_clip(ClipPair("c", _video(mouths=mouths.copy()), real, np.zeros(10)))
    assert copied["flag.suspect_copy"] and copied["integrity.mouth_psnr"] == 100.0  # identical: capped
    # every pixel off by 8 grey levels: MSE 64 -> PSNR 10 log10(255^2 / 64) = 30.07 dB, below the line
    off = np.clip(mouths.astype(int) + np.where(mouths < 128, 8, -8), 0, 255).astype(np.uint8)
    other = check_clip(ClipPair("c", _video(mouths=off), real, np.zeros(10)))
    assert other["integrity.mouth_psnr"] == pytest.approx(10 * math.log10(255**2 / 64))
    assert not other["flag.suspect_copy"] and SUSPECT_COPY_MOUTH_PSNR_DB > 31
    unpaired = check_clip(ClipPair("c", _video(mouths=mouths), None, np.zeros(10)))
    assert math.isnan(unpaired["integrity.mouth_psnr"]) and not unpaired["flag.suspect_copy"]


def test_sync_peak_no_longer_ranks_and_undefined_clips_are_counted() -> None:
    metric = AVXCorr()
    metric.per_clip = {"a": {"av_xcorr_peak": 0.6, "av_xcorr_r0": 0.5, "av_xcorr_offset": 0.0,
                             "av_xcorr_abs_offset": 0.0},
                       "b": {"av_xcorr_peak": math.nan, "av_xcorr_r0": math.nan, "av_xcorr_offset": math.nan,
                             "av_xcorr_abs_offset": math.nan}}  # a frozen face: nothing to correlate
    rows = [{"clip_id": c, "status": "ok", **{f"av-xcorr/{k}": v for k, v in vals.items()}}
            for c, vals in metric.per_clip.items()]
    agg = aggregate({"av-xcorr": metric}, rows, [])
    ranks = agg.metrics["av-xcorr"].ranks
    assert ranks["av_xcorr_r0"] and ranks["av_xcorr_abs_offset"]
    assert not ranks["av_xcorr_peak"] and not ranks["av_xcorr_offset"]  # peak: shown, never ranks
    r0 = agg.aggregates["av_xcorr_r0"]
    assert r0.value == 0.5 and r0.n == 1 and r0.n_undefined == 1  # the undefined clip is counted, not hidden


def test_a_frozen_mouth_or_head_scores_zero_correlation_instead_of_being_dropped() -> None:
    from talkbench.benchmark.metrics.au import agreement_r, au_agreement
    from talkbench.benchmark.metrics.pose import head_pose_similarity

    real = np.array([0.0, 1.0, 3.0, 1.0])
    frozen = np.full(4, 2.0)
    assert agreement_r(frozen, real) == 0.0  # was NaN, and the clip's AU dropped out of au_r
    assert math.isnan(agreement_r(real, np.ones(4)))  # a constant TRUTH leaves r undefined...
    out = au_agreement({"AU25": frozen, "AU26": real}, {"AU25": real, "AU26": np.ones(4)}, np.ones(4, bool),
                       ("AU25", "AU26"))
    # ...and is counted: AU25 r = 0 (frozen), AU26 r undefined (real side constant) -> au_r = 0 over 1 AU
    assert out["AU25_r"] == 0.0 and math.isnan(out["AU26_r"])
    assert out["au_r"] == 0.0 and out["au_r_undefined"] == 1.0
    # head pose: a frozen generated head against a real one that nods (pitch 0, 2, 4, 2): r = 0 per
    # moving angle; yaw and roll are constant in the real clip, so undefined and counted (2 of 3)
    real_pose = np.zeros((4, 3))
    real_pose[:, 1] = [0.0, 2.0, 4.0, 2.0]
    hs = head_pose_similarity(np.zeros((4, 3)), real_pose)
    assert hs["pose_corr"] == 0.0 and hs["pose_corr_undefined"] == 2.0
    assert hs["pose_err_deg"] == pytest.approx(2.0)  # mean |pitch| = (0 + 2 + 4 + 2) / 4
