"""The metric math: hand-computed small cases, scikit-image equality, planted offsets (no weights needed)."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest
from conftest import GRID
from scipy.ndimage import gaussian_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from talkbench.benchmark.metrics import METRICS, AlignedVideo, ClipPair
from talkbench.benchmark.metrics.au import au_agreement, occurrence_f1
from talkbench.benchmark.metrics.avsync import best_offset, xcorr_curve
from talkbench.benchmark.metrics.bootstrap import bootstrap_ci
from talkbench.benchmark.metrics.common import pearson
from talkbench.benchmark.metrics.cpbd import (
    cpbd_frames,
    cpbd_frames_naive,
    cpbd_gray,
    cpbd_gray_naive,
    marziliano_widths,
    marziliano_widths_naive,
    sobel_vertical_edges,
)
from talkbench.benchmark.metrics.fid import frechet_distance
from talkbench.benchmark.metrics.image import PSNR_CAP_DB, _ssim_torch, psnr_frames, ssim_frames
from talkbench.benchmark.metrics.landmarks import INNER_LIP_PAIRS, LIPS, jitter, lmd_frames, mouth_opening
from talkbench.benchmark.metrics.lse import lse_from_embeddings
from talkbench.benchmark.metrics.pose import head_pose_similarity


@pytest.fixture(scope="session")
def grid_faces() -> np.ndarray:
    """12 real GRID frames, a 128x128 crop around the speaker's face (RGB uint8)."""
    path = GRID / "bbaf2n.mpg"
    if not path.is_file():
        pytest.fail(f"fixture {path} missing")
    frames = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24")[40:168, 116:244])
            if len(frames) == 12:
                break
    return np.stack(frames)


def _degraded(frames: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    blurred = gaussian_filter(frames.astype(np.float64), sigma=(0, 1.0, 1.0, 0))
    return np.clip(blurred + rng.normal(0, 6, frames.shape), 0, 255).astype(np.uint8)


# --- PSNR / SSIM against scikit-image ------------------------------------------------------------------


def test_psnr_matches_skimage_and_caps_identical(grid_faces: np.ndarray) -> None:
    other = _degraded(grid_faces)
    ours = psnr_frames(other, grid_faces)
    ref = [peak_signal_noise_ratio(grid_faces[i], other[i], data_range=255) for i in range(len(other))]
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)
    assert np.all(psnr_frames(grid_faces, grid_faces) == PSNR_CAP_DB)


def _ssim_gemm_on_cpu(gen: np.ndarray, ref: np.ndarray, variant: str) -> np.ndarray:
    """The GPU backend (torch banded GEMMs), run on CPU so this machine checks it too."""
    import torch

    return _ssim_torch(gen, ref, variant, 255.0, torch.device("cpu"))


@pytest.mark.parametrize("backend", ["opencv", "torch-gemm"])
@pytest.mark.parametrize(
    ("variant", "kwargs"),
    [
        ("ssim-gauss11-s1.5", {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False}),
        ("ssim-uniform7", {}),
    ],
)
def test_ssim_matches_skimage(grid_faces: np.ndarray, variant: str, kwargs: dict, backend: str) -> None:
    ssim = (lambda g, r, v: ssim_frames(g, r, v, device="cpu")) if backend == "opencv" else _ssim_gemm_on_cpu
    other = _degraded(grid_faces, seed=1)
    ours = ssim(other, grid_faces, variant)
    ref = [structural_similarity(other[i], grid_faces[i], data_range=255, channel_axis=-1, **kwargs)
           for i in range(len(other))]
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)  # float32 maps vs skimage's float64
    assert np.allclose(ssim(grid_faces, grid_faces, variant), 1.0)
    assert 0.2 < ours.mean() < 0.99


def test_ssim_chunks_and_odd_sizes_match_skimage(grid_faces: np.ndarray) -> None:
    """More frames than one chunk (frames stacked into one tall image per chunk must not leak into each
    other) and a non-square, single-channel crop."""
    from talkbench.benchmark.metrics.common import CHUNK

    frames = np.concatenate([grid_faces] * (CHUNK // len(grid_faces) + 1))[:, 3:100, 5:120, 1:2]
    other = _degraded(frames, seed=2)
    ours = ssim_frames(other, frames, "ssim-uniform7", device="cpu")
    assert len(ours) > CHUNK
    for i in (0, CHUNK - 1, CHUNK, len(frames) - 1):
        assert ours[i] == pytest.approx(structural_similarity(other[i, ..., 0], frames[i, ..., 0], data_range=255),
                                        abs=1e-5)


def test_image_metrics_reject_bad_input(grid_faces: np.ndarray) -> None:
    with pytest.raises(ValueError, match="one shape"):
        psnr_frames(grid_faces, grid_faces[:, :64])
    with pytest.raises(ValueError, match="unknown SSIM variant"):
        ssim_frames(grid_faces, grid_faces, "ssim-bogus")
    with pytest.raises(ValueError, match="smaller than"):
        ssim_frames(grid_faces[:, :5, :5], grid_faces[:, :5, :5])


# --- CPBD -----------------------------------------------------------------------------------------------


def test_cpbd_edge_widths_match_the_per_pixel_scan(grid_faces: np.ndarray) -> None:
    gray = grid_faces[0].astype(np.float64).mean(axis=2)
    gray = gaussian_filter(gray, 1.2)[:48, :60]
    edges = sobel_vertical_edges(gray)
    assert edges.sum() > 20
    np.testing.assert_array_equal(marziliano_widths(gray, edges), marziliano_widths_naive(gray, edges))
    batch = np.stack([gray, gray[::-1, ::-1]])  # the batched form sees each image on its own
    np.testing.assert_array_equal(marziliano_widths(batch, sobel_vertical_edges(batch))[1],
                                  marziliano_widths_naive(batch[1], sobel_vertical_edges(batch[1])))


def test_cpbd_batched_equals_the_plain_published_loops(grid_faces: np.ndarray) -> None:
    """The batched CPBD (the benchmark's path) and the per-pixel reference-style one (its perf baseline)
    agree exactly on real frames, sharp and degraded, and on a larger photograph."""
    from skimage import data

    frames = np.concatenate([grid_faces[:3], _degraded(grid_faces[3:6])])
    fast = cpbd_frames(frames)
    assert np.isfinite(fast).all() and len(np.unique(fast)) > 1
    np.testing.assert_array_equal(fast, cpbd_frames_naive(frames))
    camera = gaussian_filter(data.camera().astype(np.float64), 0.7)[:320, 64:448]  # 5x6 blocks
    assert cpbd_gray(camera) == cpbd_gray_naive(camera)
    with pytest.raises(ValueError, match="2-D"):
        cpbd_gray(frames[0])


def test_cpbd_decreases_with_blur(grid_faces: np.ndarray) -> None:
    from skimage import data

    for image in (data.camera().astype(np.float64), grid_faces[:, :, :, 1].astype(np.float64)[0]):
        scores = [cpbd_gray(gaussian_filter(image, s) if s else image) for s in (0, 0.5, 1.0, 1.5)]
        assert np.all(np.diff(scores) < 0), scores
    assert cpbd_gray(data.camera().astype(np.float64)) > 0.5  # a sharp photograph
    assert math.isnan(cpbd_gray(np.full((64, 64), 128.0)))  # flat image: no edges to judge


# --- landmarks: LMD, jitter -------------------------------------------------------------------------------


def _landmarks(t: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(20, 100, (t, 478, 3)).astype(np.float32)


def test_lmd_zero_for_identical_and_translation() -> None:
    lm = _landmarks()
    assert np.all(lmd_frames(lm, lm) == 0)
    assert np.allclose(lmd_frames(lm + np.float32(7.0), lm), 0, atol=1e-5)  # each set centred on its own mean


def test_lmd_known_value_for_one_moved_point() -> None:
    lm = _landmarks()
    moved = lm.copy()
    moved[:, LIPS[0], 0] += 3.0
    moved[:, LIPS[0], 1] += 4.0  # |d| = 5; the mean moves by d/40
    # moved point: 5 * 39/40; each of the 39 others: 5/40  ->  mean (2 * 39 * 5 / 40) / 40, sum x 40
    np.testing.assert_allclose(lmd_frames(moved, lm, "mean"), 0.24375, atol=1e-5)
    np.testing.assert_allclose(lmd_frames(moved, lm, "sum"), 9.75, atol=1e-4)
    with pytest.raises(ValueError, match="reduce"):
        lmd_frames(moved, lm, "max")


def test_lmd_naive_baseline_computes_the_same_values() -> None:
    from talkbench.benchmark.perf_metrics import naive_lmd_frames

    a, b = _landmarks(6, seed=1), _landmarks(6, seed=2)
    np.testing.assert_allclose(naive_lmd_frames(a, b), lmd_frames(a, b), rtol=1e-12)


def test_jitter_of_linear_motion() -> None:
    t = np.arange(10, dtype=np.float64)
    lm = np.zeros((10, 478, 3))
    lm[:, :, 0] = 2.0 * t[:, None]  # 2 px/frame, no acceleration
    v, a = jitter(lm)
    assert v == pytest.approx(2.0) and a == pytest.approx(0.0)
    lm[5, :, 1] += 1.0  # one frame jumps 1 px in y
    found = np.ones(10, bool)
    assert jitter(lm)[1] > 0
    found[5] = False  # ...but a frame without a face never counts as a jump
    assert jitter(lm, found)[1] == pytest.approx(0.0)


# --- AU agreement -----------------------------------------------------------------------------------------


def test_au_agreement_small_arrays() -> None:
    gen = np.array([0.0, 1.0, 2.0, 3.0])
    ref = np.array([0.0, 2.0, 2.0, 0.5])
    assert occurrence_f1(gen, ref) == pytest.approx(2 * 2 / (3 + 2))  # present: gen 1,2,3; ref 1,2 -> tp 2
    assert math.isnan(occurrence_f1(np.zeros(3), np.zeros(3)))  # undefined, not 0 or 1
    assert pearson(gen, 2 * gen + 1) == pytest.approx(1.0)
    assert math.isnan(pearson(gen, np.ones(4)))
    aus = ("AU25", "AU26")
    out = au_agreement({"AU25": gen, "AU26": gen}, {"AU25": ref, "AU26": gen}, np.ones(4, bool), aus)
    assert out["AU25_mae"] == pytest.approx((0 + 1 + 0 + 2.5) / 4)
    assert out["AU26_mae"] == 0 and out["AU26_r"] == pytest.approx(1.0) and out["AU26_f1"] == 1.0
    assert out["au_mae"] == pytest.approx((0.875 + 0) / 2)
    r = np.corrcoef(gen, ref)[0, 1]
    assert out["AU25_r"] == pytest.approx(r)
    with pytest.raises(ValueError, match="AU26 is missing"):
        au_agreement({"AU25": gen}, {"AU25": ref}, np.ones(4, bool), aus)


# --- A/V sync: cross-correlation and the LSE math ------------------------------------------------------


def _smooth_noise(n: int, seed: int) -> np.ndarray:
    return gaussian_filter(np.random.default_rng(seed).random(n), 1.5)


@pytest.mark.parametrize("k", [-4, 0, 3, 7])
def test_xcorr_recovers_planted_shift(k: int) -> None:
    env = _smooth_noise(120, seed=k + 10)
    opening = np.roll(env, k) + 0.02 * np.random.default_rng(1).standard_normal(120)  # video lags by k
    r = xcorr_curve(env, opening)
    offset, peak = best_offset(r)
    assert abs(offset - k) <= 1
    assert peak > 0.8 and len(r) == 31


def test_xcorr_uses_the_overlap_and_skips_invalid_frames() -> None:
    a = np.arange(40, dtype=float) % 7
    r = xcorr_curve(a, a, max_offset=15, min_overlap=30)
    assert r[15] == pytest.approx(1.0)
    assert np.isnan(r[:5]).all() and np.isnan(r[-5:]).all()  # 40 - |k| < 30 pairs
    v = a.copy()
    v[10:20] = 100.0  # junk on frames marked invalid must not count
    valid = np.ones(40, bool)
    valid[10:20] = False
    assert xcorr_curve(a, v, valid, max_offset=2, min_overlap=10)[2] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no offset"):
        best_offset(np.full(5, np.nan))


def _lip_landmarks(gap: np.ndarray) -> np.ndarray:
    """A face whose 40 lip points sit on an ellipse and whose inner lips part by ``gap`` pixels."""
    t = len(gap)
    lm = np.zeros((t, 478, 3), np.float32)
    lm[:, 33, :2], lm[:, 263, :2] = (40.0, 50.0), (100.0, 50.0)  # outer eye corners: 60 px apart
    angles = np.linspace(0, 2 * np.pi, len(LIPS), endpoint=False)
    lm[:, list(LIPS), 0] = 70.0 + 25.0 * np.cos(angles)
    lm[:, list(LIPS), 1] = 100.0 + 8.0 * np.sin(angles)
    for (upper, lower), x in zip(INNER_LIP_PAIRS, (70.0, 65.0, 75.0), strict=True):
        lm[:, [upper, lower], 0] = x
        lm[:, upper, 1] = 100.0 - gap / 2
        lm[:, lower, 1] = 100.0 + gap / 2
    return lm


def _synthetic_pair(k: int, t: int = 100, lost: slice | None = None) -> ClipPair:
    """Noise whose 40 ms loudness follows a random envelope; lips that part with it k frames later."""
    env = 0.05 + _smooth_noise(t, seed=3)
    rng = np.random.default_rng(4)
    audio = np.concatenate([env[i] * rng.standard_normal(640) for i in range(t)]).astype(np.float32)
    lm = _lip_landmarks(20.0 * np.roll(env, k))
    found = np.ones(t, bool)
    if lost is not None:
        lm[lost] = np.nan
        found[lost] = False
    faces = np.zeros((t, 16, 16, 3), np.uint8)
    video = AlignedVideo(faces=faces, mouths=faces, landmarks=lm, face_found=found,
                         pose=np.zeros((t, 6), np.float32), aus={})
    return ClipPair(clip_id=f"shift{k}", generated=video, reference=None, audio=audio)


def test_mouth_opening_is_inner_gap_over_eye_distance() -> None:
    gap = np.array([0.0, 6.0, 12.0], np.float32)
    np.testing.assert_allclose(mouth_opening(_lip_landmarks(gap)), gap / 60.0, atol=1e-6)


def test_av_xcorr_metric_on_synthetic_clip() -> None:
    metric = METRICS.get("av-xcorr")()
    for k in (0, 5, -3):
        values = metric.update(_synthetic_pair(k))
        assert abs(values["av_xcorr_offset"] - k) <= 1, values
        assert values["av_xcorr_peak"] > 0.5
        if k != 0:  # out of sync: the correlation at offset 0 is well below the peak
            assert values["av_xcorr_r0"] < values["av_xcorr_peak"] - 0.2, values
    assert set(metric.compute()) == {"av_xcorr_offset", "av_xcorr_abs_offset", "av_xcorr_peak", "av_xcorr_r0"}


def test_av_xcorr_ignores_frames_without_a_face() -> None:
    metric = METRICS.get("av-xcorr")()
    values = metric.update(_synthetic_pair(4, lost=slice(40, 52)))
    assert abs(values["av_xcorr_offset"] - 4) <= 1 and np.isfinite(values["av_xcorr_peak"]), values
    none = metric.update(_synthetic_pair(0, lost=slice(0, 100)))
    assert all(math.isnan(v) for v in none.values()), none


#: Real GRID clips for the sync regression; the other two fixtures are covered by tests/test_bench.py.
SYNC_CLIPS = ("bbaf2n", "brbk7n", "lbbc2a")
SYNC_K = 5


@pytest.fixture(scope="session")
def grid_sync_clips() -> dict[str, dict[int, ClipPair]]:
    """Per real GRID clip: {0: ground truth, SYNC_K: delayed like builtin:shifted}, each face-processed
    with the real MediaPipe pipeline at 25 fps, with the clip's 16 kHz audio."""
    from talkbench.benchmark.submissions import ItemInputs, Shifted
    from talkbench.media import read_av
    from talkbench.pipelines.face import FaceMeshTracker, process_frames
    from talkbench.pipelines.stages.landmarks import LandmarksConfig

    out: dict[str, dict[int, ClipPair]] = {}
    with FaceMeshTracker.from_config(LandmarksConfig()) as tracker:
        for name in SYNC_CLIPS:
            path = GRID / f"{name}.mpg"
            if not path.is_file():
                pytest.fail(f"fixture {path} missing")
            decoded = read_av(path, fps=25.0, sample_rate=16_000)
            gt = decoded.frames
            shifted = Shifted(SYNC_K).generate_item(ItemInputs(item=None, reference_image=gt[0],
                                                               ground_truth=lambda gt=gt: gt))
            out[name] = {}
            for k, frames in ((0, gt), (SYNC_K, shifted)):
                res = process_frames(frames, 25.0, tracker=tracker)
                video = AlignedVideo(faces=res["face_crop"], mouths=res["mouth_crop"],
                                     landmarks=res["landmarks_crop"], face_found=res["face_found"],
                                     pose=res["pose"], aus={})
                out[name][k] = ClipPair(clip_id=name, generated=video, reference=None, audio=decoded.audio)
    return out


@pytest.mark.parametrize("clip", SYNC_CLIPS)
def test_av_xcorr_on_real_grid_clip(grid_sync_clips: dict[str, dict[int, ClipPair]], clip: str) -> None:
    """Untouched ground truth reads in sync (within one frame); delayed by k it reads k (within one)."""
    metric = METRICS.get("av-xcorr")()
    gt = metric.update(grid_sync_clips[clip][0])
    shifted = metric.update(grid_sync_clips[clip][SYNC_K])
    assert abs(gt["av_xcorr_offset"]) <= 1, gt
    assert abs(shifted["av_xcorr_offset"] - SYNC_K) <= 1, shifted
    assert shifted["av_xcorr_r0"] < gt["av_xcorr_r0"], (gt, shifted)


@pytest.mark.parametrize("k", [-3, 0, 4])
def test_lse_math_finds_planted_offset(k: int) -> None:
    rng = np.random.default_rng(0)
    n, d = 60, 32
    video = rng.standard_normal((n + 20, d))
    audio = np.roll(video, -k, axis=0) + 0.1 * rng.standard_normal((n + 20, d))  # a[j] ~ v[j + k]
    r = lse_from_embeddings(video[10:10 + n], audio[10:10 + n])
    assert r.offset == k  # + = video lags audio, as syncnet_python's "AV offset"
    assert r.lse_c > 1.0 and r.lse_d < np.median(r.mean_dists)
    assert r.mean_dists.shape == (31,)
    with pytest.raises(ValueError, match="one shape"):
        lse_from_embeddings(video[:5], audio[:4])


# --- head pose, bootstrap, Frechet distance -------------------------------------------------------------


def test_head_pose_similarity() -> None:
    rng = np.random.default_rng(0)
    pose = rng.normal(0, 5, (50, 6))
    same = head_pose_similarity(pose, pose)
    assert same == {"hs": 1.0, "pose_corr": pytest.approx(1.0), "pose_corr_undefined": 0.0, "pose_err_deg": 0.0}
    shifted = pose.copy()
    shifted[:, 0] += 9.0  # 9 degrees of yaw -> 1 - 9/90
    out = head_pose_similarity(shifted, pose)
    assert out["hs"] == pytest.approx(0.9) and out["pose_err_deg"] == pytest.approx(9.0)
    assert out["pose_corr"] == pytest.approx(1.0)


def test_bootstrap_ci_contains_mean_and_shrinks() -> None:
    rng = np.random.default_rng(0)
    widths = []
    for n in (10, 100, 1000):
        x = rng.normal(3.0, 1.0, n)
        ci = bootstrap_ci(x)
        assert ci.low <= ci.mean <= ci.high and ci.mean == pytest.approx(x.mean())
        assert bootstrap_ci(x) == ci  # fixed seed: deterministic
        widths.append(ci.high - ci.low)
    assert widths[0] > widths[1] > widths[2]
    assert bootstrap_ci([1.0, np.nan, 3.0]).mean == 2.0  # undefined clips are dropped
    assert bootstrap_ci([5.0]) == (5.0, 5.0, 5.0)
    assert all(math.isnan(v) for v in bootstrap_ci([]))


def test_frechet_distance_of_gaussians() -> None:
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    # ||mu1-mu2||^2 + sum (sqrt(a) - sqrt(b))^2 for diagonal covariances
    expected = 5.0 + (1 - 2) ** 2 + 0 + (3 - 1) ** 2
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)


# --- Metric classes on a real-frame clip pair -------------------------------------------------------------


def _video(faces: np.ndarray, seed: int = 0) -> AlignedVideo:
    t = len(faces)
    rng = np.random.default_rng(seed)
    return AlignedVideo(faces=faces, mouths=faces[:, 64:, 32:96], landmarks=_landmarks(t, seed),
                        face_found=np.ones(t, bool), pose=rng.normal(0, 3, (t, 6)).astype(np.float32),
                        aus={au: rng.uniform(0, 3, t).astype(np.float32)
                             for au in ("AU10", "AU14", "AU20", "AU25", "AU26")})


def test_weight_free_metrics_on_ground_truth_and_degraded(grid_faces: np.ndarray) -> None:
    gt = _video(grid_faces[:6])
    bad = _video(_degraded(grid_faces[:6]), seed=1)
    # every registered metric that needs no weights and scores per clip (a new one is tested here at once)
    names = [name for name, cls in METRICS.items() if not cls.weights and not cls.corpus_level]
    assert {"psnr", "ssim", "cpbd", "lmd", "au-agreement", "head-pose"} <= set(names)
    audio = np.zeros(16000, np.float32)
    for name in names:
        cls = METRICS.get(name)
        assert cls.available() and cls.variant != "default"
        # the generator's own AU prediction (au-audio-consistency): the AUs seen on the real clip
        perfect = cls().update(ClipPair("gt", gt, gt, audio, predicted_aus=gt.aus))
        worse = cls().update(ClipPair("bad", bad, gt, audio, predicted_aus=gt.aus))
        assert set(perfect) == set(worse) and set(cls.directions) <= set(perfect)
        for key, direction in cls.directions.items():
            if cls.requires_reference and np.isfinite(worse[key]):
                better = perfect[key] >= worse[key] if direction == "higher" else perfect[key] <= worse[key]
                assert better, (name, key, perfect[key], worse[key])
    assert METRICS.get("psnr")().update(ClipPair("gt", gt, gt, np.zeros(1)))["psnr"] == PSNR_CAP_DB


def test_the_decorator_is_the_one_place_a_metric_is_named() -> None:
    from talkbench.benchmark.metrics import Metric, register_metric

    assert all(cls.name == name for name, cls in METRICS.items())
    with METRICS.isolated():
        @register_metric("toy-metric")
        class Toy(Metric):
            pass

        assert Toy.name == "toy-metric" and METRICS.get("toy-metric") is Toy
        with pytest.raises(ValueError, match="sets name='other'"):
            @register_metric("toy-2")
            class Toy2(Metric):
                name = "other"


def test_full_reference_metric_refuses_unpaired_clip(grid_faces: np.ndarray) -> None:
    with pytest.raises(ValueError, match="needs a reference"):
        METRICS.get("ssim")().update(ClipPair("x", _video(grid_faces), None, np.zeros(1)))


def test_weighted_metrics_report_unavailable_without_weights(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(tmp_path))
    weighted = {name: cls for name, cls in METRICS.items() if cls.weights}
    assert {"lpips", "fid", "lse", "csim", "tb-sync"} <= set(weighted)
    for cls in weighted.values():
        assert not cls.available()
        assert all(needs in cls.unavailable_reason() for needs in cls.weights)


# --- the perf benchmark's structure (never its timings) ----------------------------------------------------


def test_perf_metrics_times_every_metric_beside_a_naive_baseline(grid_faces: np.ndarray) -> None:
    from talkbench.benchmark.perf_metrics import measure

    res = measure(grid_faces[:6], ["cpu"], networks=False)
    assert set(res["metrics"]) == {"psnr", "ssim-gauss11-s1.5", "ssim-uniform7", "cpbd", "lmd"}
    for name, r in res["metrics"].items():
        assert r["baseline"], name
        for key in ("naive", "cpu"):
            assert r[key]["seconds"] > 0 and r[key]["frames_per_s"] > 0, (name, key)
        assert r["speedup_cpu"] == pytest.approx(r["cpu"]["frames_per_s"] / r["naive"]["frames_per_s"])
