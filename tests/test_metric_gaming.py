"""One test per known way to game the benchmark, showing it no longer works (issue 10), on hand-made cases.

Each case is small and hand-computed: the expected numbers are worked out in the comments, not by
calling the code under test twice.
"""

from __future__ import annotations

import dataclasses
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
    from talkbench.benchmark.metrics.au import au_agreement
    from talkbench.benchmark.metrics.common import agreement_r
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


def test_a_misplaced_head_is_measured_not_realigned_away() -> None:
    from talkbench.benchmark.geometry import head_placement_error, in_reference_geometry

    s, t = 0.65, np.array([[-40.0], [-30.0]])  # GRID-like crop scale: 0.65 crop px per source px
    real_m = np.tile(np.hstack([s * np.eye(2), t])[None], (4, 1, 1))
    gen_m = real_m.copy()
    gen_m[:, 0, 2] -= 12 * s  # the generated head sits 12 source px further right
    pts = np.random.default_rng(0).uniform(10, 100, (4, 478, 3)).astype(np.float32)  # own-crop landmarks
    real = dataclasses.replace(_video(4), align_matrix=real_m)
    gen = dataclasses.replace(_video(4, landmarks=pts), align_matrix=gen_m)
    # own crop -> source -> the real crop: every point moves by 12 px x 0.65 = 7.8 crop px
    assert head_placement_error(gen, real) == pytest.approx(np.full(4, 12 * s))
    assert head_placement_error(real, real) == pytest.approx(np.zeros(4))  # (landmarks 0: same transform)
    # an "aligned" task: S x S crops are compared as they are; a frame of another size falls back, named
    frames = np.random.default_rng(1).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    mouth_m = real_m.copy()
    mouth_m[:, :, 2] -= 5.0
    ref = dataclasses.replace(_video(4), align_matrix=real_m, mouth_matrix=mouth_m, frame_hw=(48, 64))
    out, same_ref, variant = in_reference_geometry(frames, _video(4), ref, "aligned")
    assert variant == "aligned-crop" and np.array_equal(out.faces, frames) and same_ref is ref
    # the mouth crop of an aligned output is the ground truth's mouth box in crop space: here a 5 px shift
    assert np.array_equal(out.mouths[:, :3, :3], frames[:, 5:8, 5:8])
    assert in_reference_geometry(frames, _video(4), ref, "full")[2] == "align-per-side"  # 16x16 != 48x64


def test_aligned_outputs_of_any_size_are_compared_with_a_ground_truth_crop_of_that_size() -> None:
    from talkbench.benchmark.geometry import in_reference_geometry

    # the task's 16x16 crop = source pixels x 10..25, y 20..35 (scale 1); an 8x8 output is the same
    # alignment at half scale: crop pixel (x, y) <- source (2x + 10, 2y + 20), exact on the pixel grid
    face_m = np.tile(np.array([[1.0, 0, -10], [0, 1.0, -20]])[None], (4, 1, 1))
    gt = np.random.default_rng(2).integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    ref = dataclasses.replace(_video(4), align_matrix=face_m, mouth_matrix=face_m.copy(), frame_hw=(48, 64))
    out8 = np.random.default_rng(3).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    gen, ref8, variant = in_reference_geometry(out8, _video(4), ref, "aligned", gt_frames=gt)
    assert variant == "aligned-crop-8" and np.array_equal(gen.faces, out8)
    assert np.array_equal(ref8.faces, gt[:, 20:36:2, 10:26:2]) and ref8.faces.shape == (4, 8, 8, 3)
    assert ref.faces.shape == (4, 16, 16, 3)  # the memoised ground truth itself is not changed
    # the mouth box (source x 10..17, y 20..27 at the task's 8x8 mouth size) is output pixels 0..3.5:
    # every second mouth pixel falls on an output pixel, the others between two
    assert np.array_equal(gen.mouths[:, ::2, ::2], out8[:, :4, :4])
    # without the ground truth's frames, or a non-square output: the named per-side fallback
    assert in_reference_geometry(out8, _video(4), ref, "aligned")[2] == "align-per-side"
    # full frames in an aligned task (the built-in references) are cropped with the ground truth's transform
    full, _, variant = in_reference_geometry(gt, _video(4), ref, "aligned", gt_frames=gt)
    assert variant == "align-gt" and np.array_equal(full.faces, gt[:, 20:36, 10:26])
    assert in_reference_geometry(out8[:, :, :6], _video(4), ref, "aligned", gt_frames=gt)[2] == "align-per-side"


def test_repeating_the_reference_image_no_longer_wins_identity() -> None:
    import torch

    from talkbench.benchmark.metrics.identity import CSIM

    def embed(x: torch.Tensor) -> torch.Tensor:  # toy identity: per-channel means (and a constant)
        return torch.cat([x.mean((2, 3)), torch.ones(len(x), 1)], 1)

    metric = CSIM(device="cpu")
    metric.net, metric._dev, metric._ready = embed, "cpu", True
    rng = np.random.default_rng(0)
    handed_out = rng.integers(0, 100, (112, 112, 3), dtype=np.uint8)  # a dark frame
    other_clip = rng.integers(100, 256, (112, 112, 3), dtype=np.uint8)  # the same person, elsewhere: lighter
    real = rng.integers(50, 200, (3, 112, 112, 3), dtype=np.uint8)
    static = np.repeat(handed_out[None], 3, axis=0)  # builtin:static-frame
    gen, ref = dataclasses.replace(_video(3), faces=static), dataclasses.replace(_video(3), faces=real)
    old = metric.update(ClipPair("c", gen, ref, np.zeros(1), reference_image=handed_out))
    assert old["csim"] == pytest.approx(1.0) and old["csim_identity_other_clip"] == 0.0  # the old gaming
    new = metric.update(ClipPair("c", gen, ref, np.zeros(1), reference_image=handed_out, identity_image=other_clip))

    def vec(img: np.ndarray) -> np.ndarray:
        return np.append(img.reshape(-1, 3).astype(np.float64).mean(0) / 127.5 - 1.0, 1.0)

    def cos(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    ident = vec(other_clip)
    assert new["csim"] == pytest.approx(cos(vec(handed_out), ident), abs=1e-5) and new["csim"] < 0.9
    assert new["csim_gt"] == pytest.approx(np.mean([cos(vec(f), ident) for f in real]), abs=1e-5)
    assert new["csim_rel"] == pytest.approx(new["csim"] - new["csim_gt"]) and new["csim_identity_other_clip"] == 1.0


def test_a_mouth_held_open_is_no_longer_normalised_away() -> None:
    from talkbench.benchmark.metrics.au import au_agreement
    from talkbench.pipelines.au import geometric

    rng = np.random.default_rng(0)
    face = rng.uniform(0, 100, (478, 3))  # a rigid face; the lower lip and chin move while "speaking"
    lower = [14, 17, 87, 317, 178, 402, 152]
    t = 60
    opening = 6.0 * np.abs(np.sin(np.arange(t) / 3.0))  # px
    real = np.repeat(face[None], t, axis=0)
    real[:, lower, 1] += opening[:, None]
    held = real.copy()
    held[:, lower, 1] += 4.0  # the mouth held 4 px further open on every frame
    found = np.ones(t, bool)
    cal = geometric.Calibration.load()
    real_aus = geometric.estimate_aus(real, found, cal)
    own = geometric.estimate_aus(held, found, cal)  # the old per-side baseline: the offset vanishes
    fair = geometric.estimate_aus(held, found, cal, baseline=geometric.feature_baselines(real, found, cal))
    aus = ("AU25", "AU26")
    mask = np.ones(t, bool)
    gamed = au_agreement(own, real_aus, mask, aus)
    honest = au_agreement(fair, real_aus, mask, aus)
    assert gamed["au_mae"] < 0.05  # what the audit measured: MAE 0.005, r 1.0 for a constant 4 px offset
    assert honest["au_mae"] > 5 * gamed["au_mae"] + 0.1
