"""Face stages (landmarks, align, pose, quality, encode) and talkbench.pipelines.face on real clips.

Every fixture clip is decoded and processed once per session (MediaPipe is the slow part); the tests
then check the shared results. Derived clips (blanked frames, two faces, upscaled, rotated,
mirrored) are short so the whole file stays within a few tens of seconds on 2 cores.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import GRID_CLIPS, OPENFACE, WILD
from PIL import Image

from talkbench import facemesh
from talkbench.errors import ClipError
from talkbench.media import read_av
from talkbench.pipelines import face
from talkbench.pipelines.core import Clip, ClipRecord, WorkerContext
from talkbench.pipelines.stages.align import AlignConfig, align
from talkbench.pipelines.stages.encode import EncodeConfig, encode
from talkbench.pipelines.stages.landmarks import LandmarksConfig, landmarks
from talkbench.pipelines.stages.pose import PoseConfig, pose
from talkbench.pipelines.stages.quality import QualityConfig, quality
from talkbench.schema import POSE_COLUMNS, frame_columns

FPS = 25.0


@pytest.fixture(scope="session")
def tracker():
    with face.FaceMeshTracker() as t:
        yield t


@pytest.fixture(scope="session")
def grid_frames(fixtures_dir) -> dict[str, np.ndarray]:
    return {p.stem: read_av(p).frames for p in GRID_CLIPS}


@pytest.fixture(scope="session")
def grid_results(grid_frames, tracker) -> dict[str, dict]:
    """Every GRID clip through process_frames, one tracker reused (as a worker would)."""
    return {stem: face.process_frames(frames, FPS, tracker=tracker) for stem, frames in grid_frames.items()}


@pytest.fixture(scope="session")
def wild_results(fixtures_dir, tracker) -> dict[str, tuple[np.ndarray, dict]]:
    out = {}
    for stem, max_frames in (("voxceleb_741400163", None), ("inthewild_vfr", 75)):
        frames = read_av(WILD / f"{stem}.mp4", max_frames=max_frames).frames
        out[stem] = (frames, face.process_frames(frames, FPS, tracker=tracker))
    return out


def make_clip(frames: np.ndarray, clip_id: str = "c") -> Clip:
    record = ClipRecord(clip_id=clip_id, dataset="test", source_path="-", speaker_id="s")
    clip = Clip(record=record, video=frames, fps=FPS, info={"status": "ok"})
    clip.frames_table["timestamp_s"] = np.arange(len(frames), dtype=np.float32) / FPS
    return clip


def run_stages(clip: Clip, ctx: WorkerContext, names=("landmarks", "align", "pose", "quality")) -> Clip:
    stages = {"landmarks": (landmarks, LandmarksConfig()), "align": (align, AlignConfig()),
              "pose": (pose, PoseConfig()), "quality": (quality, QualityConfig()),
              "encode": (encode, EncodeConfig())}
    for name in names:
        fn, cfg = stages[name]
        clip = fn(clip, cfg, ctx)
    return clip


@pytest.fixture(scope="session")
def ctx():
    c = WorkerContext()
    yield c
    c.close()


@pytest.fixture(scope="session")
def first_grid(grid_frames) -> np.ndarray:
    return grid_frames[GRID_CLIPS[0].stem]


# -- detection ------------------------------------------------------------------------------------


def test_every_grid_frame_has_a_face_inside_the_frame(grid_results, grid_frames):
    assert len(grid_results) == 5
    for stem, r in grid_results.items():
        frames = grid_frames[stem]
        assert r["landmarks"].shape == (75, 478, 3) and r["landmarks"].dtype == np.float32
        assert r["face_found"].all() and not r["face_interpolated"].any(), stem
        assert (r["n_faces"] == 1).all()
        h, w = frames.shape[1:3]
        xy = r["landmarks"][..., :2]
        assert (xy[..., 0] >= 0).all() and (xy[..., 0] < w).all() and (xy[..., 1] >= 0).all() and (xy[..., 1] < h).all()
        assert ((r["det_conf"] > 0.5) & (r["det_conf"] <= 1)).all()


def test_tracker_reset_makes_results_independent_of_clip_order(grid_results, grid_frames):
    stem = GRID_CLIPS[2].stem  # processed after two other clips in grid_results
    alone = face.process_frames(grid_frames[stem][:20], FPS)
    np.testing.assert_array_equal(alone["landmarks"], face.process_frames(grid_frames[stem][:20], FPS)["landmarks"])
    np.testing.assert_allclose(alone["landmarks"][:5], grid_results[stem]["landmarks"][:5], atol=1e-4)


def test_no_face_clip_is_a_clip_error(ctx):
    with pytest.raises(ClipError) as e:
        run_stages(make_clip(np.zeros((6, 120, 160, 3), np.uint8)), ctx, ["landmarks"])
    assert e.value.kind == "no_face"


def test_bad_frames_argument_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\) uint8"):
        face.process_frames(np.zeros((4, 32, 32), np.float32), FPS)


def test_short_gap_is_interpolated_and_flagged(first_grid, ctx):
    frames = first_grid.copy()
    frames[30:33] = 0
    clip = run_stages(make_clip(frames), ctx, ["landmarks"])
    ft = clip.frames_table
    assert ft["face_found"].all()
    assert np.flatnonzero(ft["face_interpolated"]).tolist() == [30, 31, 32]
    assert clip.info["status"] == "ok" and clip.info["n_interpolated"] == 3
    # interpolated points lie between the neighbours' points
    lm = ft["landmarks"]
    assert np.isfinite(lm[30:33]).all()
    lo, hi = np.minimum(lm[29], lm[33]), np.maximum(lm[29], lm[33])
    assert ((lm[31] >= lo - 1e-3) & (lm[31] <= hi + 1e-3)).all()


def test_long_gap_makes_the_clip_partial(first_grid, ctx):
    frames = first_grid.copy()
    frames[40:60] = 0
    clip = run_stages(make_clip(frames), ctx, ["landmarks", "align", "pose", "quality"])
    ft, info = clip.frames_table, clip.info
    assert info["status"] == "partial" and info["error_kind"] == "face_gaps"
    assert "20 of 75 frames" in info["error"]
    assert info["face_found_ratio"] == pytest.approx(55 / 75)
    assert not ft["face_found"][40:60].any() and ft["face_found"][:40].all() and ft["face_found"][60:].all()
    assert np.isnan(ft["landmarks"][40:60]).all() and np.isnan(ft["align_matrix"][40:60]).all()
    assert not ft["face_crop"][40:60].any() and ft["face_crop"][:40].any(axis=(1, 2, 3)).all()
    assert np.isnan(ft["yaw"][40:60]).all() and np.isfinite(ft["yaw"][:40]).all()
    assert np.isnan(ft["blur"][40:60]).all() and np.isfinite(info["blur_mean"])


@pytest.fixture(scope="session")
def two_faces(first_grid) -> np.ndarray:
    """A GRID frame with a half-size copy on its left: (12, 288, 540, 3)."""
    big = first_grid[:12]
    small = np.stack([cv2.resize(f, (180, 144), interpolation=cv2.INTER_AREA) for f in big])
    small = np.pad(small, ((0, 0), (72, 72), (0, 0), (0, 0)))
    return np.ascontiguousarray(np.concatenate([small, big], axis=2))


def test_two_faces_main_face_is_the_large_central_one(two_faces, first_grid, tracker):
    r = face.process_frames(two_faces, FPS, tracker=tracker)
    assert (r["n_faces"] == 2).all()
    assert (r["landmarks"][..., 0] > 180).all()  # every point on the big copy
    alone = face.process_frames(first_grid[:12], FPS, tracker=tracker)
    np.testing.assert_allclose(face.face_size(r["landmarks"]), face.face_size(alone["landmarks"]), rtol=0.05)


def test_stock_mediapipe_gating_finds_the_same_main_face(two_faces):
    with face.FaceMeshTracker(detect_while_tracking=True) as stock:
        r = face.process_frames(two_faces[:4], FPS, tracker=stock)
    assert (r["n_faces"] == 2).all() and (r["landmarks"][..., 0] > 180).all()


def test_main_face_is_not_swapped_while_it_is_briefly_missing(two_faces, tracker):
    frames = two_faces.copy()
    frames[4:7, :, 180:] = 0  # the main face disappears for 3 frames; the small one stays
    r = face.process_frames(frames, FPS, tracker=tracker)
    assert r["face_interpolated"][4:7].all() and r["face_found"].all()
    assert (r["landmarks"][..., 0] > 180).all()  # never the small face, interpolation included
    assert (r["n_faces"][4:7] == 1).all() and (r["n_faces"][7:] == 2).all()  # re-acquired after the gap


def test_main_face_choice_rules():
    def square(cx: float, cy: float, half: float) -> np.ndarray:
        lm = np.zeros((478, 3), np.float32)
        lm[:, :2] = [cx, cy]
        lm[:2, :2] = [[cx - half, cy - half], [cx + half, cy + half]]
        return lm

    big, small = square(300, 200, 80), square(80, 200, 30)
    assert face.choose_main_face([small, big], (400, 400), previous=None) == 1
    # the tracked face is the small one: it stays the main face even though the big one is larger
    assert face.choose_main_face([small, big], (400, 400), previous=square(85, 205, 30)) == 0
    # the tracked face is elsewhere: neither is taken for it
    assert face.choose_main_face([small, big], (400, 400), previous=square(200, 380, 20)) is None
    assert face.choose_main_face([], (400, 400), previous=None) is None


def test_large_frame_is_detected_on_a_downscaled_copy(first_grid, grid_results, tracker):
    frames = np.stack([cv2.resize(f, (1920, 1536), interpolation=cv2.INTER_CUBIC) for f in first_grid[:6]])
    r = face.process_frames(frames, FPS, tracker=tracker)
    assert tracker.detect_max_side == 640 and r["face_found"].all()
    ref = grid_results[GRID_CLIPS[0].stem]
    scale = 1920 / 360
    assert np.nanmax(r["landmarks"][..., 0]) > 640  # source pixels, not the detection size
    np.testing.assert_allclose(face.face_size(r["landmarks"]) / scale, face.face_size(ref["landmarks"][:6]), rtol=0.05)
    # the aligned crop is (nearly) the same picture whatever the source resolution
    diff = np.abs(r["face_crop"].astype(int) - ref["face_crop"][:6].astype(int)).mean()
    assert diff < 12, diff


def test_wild_clips_work(wild_results):
    for stem, (frames, r) in wild_results.items():
        assert len(frames) == len(r["face_found"]) >= 75, stem
        assert r["face_found"].mean() > 0.95, stem
        assert r["face_crop"].shape == (len(frames), 128, 128, 3)
        assert np.isfinite(r["pose"][r["face_found"]]).all()


# -- alignment ------------------------------------------------------------------------------------


def test_crops_have_the_configured_size_and_the_face_is_centred(grid_results):
    cfg = AlignConfig()
    tpl = face.template_points(cfg)
    for stem, r in grid_results.items():
        assert r["face_crop"].shape == (75, 128, 128, 3) and r["face_crop"].dtype == np.uint8
        assert r["mouth_crop"].shape == (75, 64, 64, 3)
        assert r["align_matrix"].shape == (75, 2, 3)
        anchors = face.align._anchor_points(r["landmarks_crop"])
        err = np.linalg.norm(anchors - tpl, axis=-1)
        assert err[:, :2].max() < 0.04 * cfg.crop_size, (stem, err.max())  # eyes on the template
        lc = r["landmarks_crop"]
        assert (lc[..., :2] > 0).all() and (lc[..., :2] < cfg.crop_size).all()  # whole face inside
        centre = (lc[:, 10, :2] + lc[:, 152, :2]) / 2  # forehead top and chin
        assert np.abs(centre - cfg.crop_size / 2).max() < 0.08 * cfg.crop_size, stem


def test_custom_crop_sizes_and_mouth_in_the_mouth_crop(grid_frames, grid_results):
    stem = GRID_CLIPS[1].stem
    frames, r = grid_frames[stem], grid_results[stem]
    cfg = AlignConfig(crop_size=96, mouth_size=96, mouth_height=48)
    out = face.align_track(frames, r["landmarks"], r["face_found"], cfg, FPS)
    assert out["face_crop"].shape == (75, 96, 96, 3) and out["mouth_crop"].shape == (75, 48, 96, 3)
    mouth_m = face.mouth_matrices(out["align_matrix"].astype(np.float64), r["landmarks"], r["face_found"], cfg, FPS)
    lips = face.apply_affine(mouth_m, r["landmarks"][:, list(facemesh.MOUTH_POINTS), :2].astype(np.float64))
    assert (lips[..., 0] > 0).all() and (lips[..., 0] < 96).all() and (lips[..., 1] > 0).all() and (lips[..., 1] < 48).all()
    np.testing.assert_allclose(lips.mean(1), [[48, 24]] * 75, atol=4)


def test_halvings_keep_the_crop_scale_at_least_one_half():
    def sim(scale):
        return np.array([[[scale, 0, 0], [0, scale, 0]]] * 3)

    assert [face.halvings(sim(s)) for s in (1.5, 1.0, 0.6, 0.5, 0.4, 0.2, 0.1)] == [0, 0, 0, 0, 1, 2, 3]


def test_a_large_face_is_halved_before_the_warp_without_moving_it(first_grid, grid_results):
    # 4x the GRID frame: the face shrinks ~6x into the crop, so the source is halved twice first
    frames = np.stack([cv2.resize(f, (1440, 1152), interpolation=cv2.INTER_CUBIC) for f in first_grid[:4]])
    lm = grid_results[GRID_CLIPS[0].stem]["landmarks"][:4] * 4
    m = face.alignment_matrices(lm, np.ones(4, bool), AlignConfig(), FPS)
    assert face.halvings(m) == 2
    crops = face.warp_crops(frames, m, (128, 128))
    # reference: the same low-pass as a Gaussian of the whole frame, then a plain warp (exact geometry)
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 2.0) for f in frames])
    ref = face.warp_crops(blurred, m, (128, 128), antialias=False)
    for a, b in zip(crops, ref, strict=True):
        (dx, dy), _ = cv2.phaseCorrelate(a.mean(-1), b.mean(-1))
        assert abs(dx) < 0.1 and abs(dy) < 0.1, (dx, dy)  # the 2x2-mean pixel centres are accounted for
    assert np.abs(crops.astype(int) - ref).mean() < 3


def test_smoothing_skips_missing_frames():
    x = np.arange(10, dtype=np.float64)[:, None]
    valid = np.ones(10, bool)
    valid[4] = False
    x[4] = 1e6  # must not leak into its neighbours
    out = face.smooth_over_time(x, valid, sigma=1.0)
    assert np.isnan(out[4, 0]) and np.abs(out[[2, 3, 5, 6], 0] - x[[2, 3, 5, 6], 0]).max() < 1.0


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(30, 3))
    rot = cv2.Rodrigues(np.array([0.1, -0.3, 0.2]))[0]
    dst = (2.5 * src @ rot.T + [1.0, -2.0, 3.0])[None]
    s, r, t = face.umeyama(src, dst)
    np.testing.assert_allclose([s[0]], [2.5], rtol=1e-9)
    np.testing.assert_allclose(r[0], rot, atol=1e-9)
    np.testing.assert_allclose(t[0], [1.0, -2.0, 3.0], atol=1e-9)


# -- pose -----------------------------------------------------------------------------------------


def test_grid_pose_is_frontal_and_smooth(grid_results):
    for stem, r in grid_results.items():
        p = r["pose"]
        assert p.shape == (75, 6) and np.isfinite(p).all()
        assert (np.abs(p[:, :3]) < 30).all(), (stem, np.abs(p[:, :3]).max(0))
        steps = np.abs(np.diff(p[:, :3], axis=0))
        assert np.median(steps) < 1.0 and steps.max() < 6.0, (stem, steps.max(0))
        assert (p[:, 5] > 5).all() and (p[:, 5] < 200).all()  # tz: a face in front of the camera (cm)


def test_pose_follows_openface_on_the_moving_voxceleb_clip(wild_results):
    """Our angles against real OpenFace 2.2 output (its successful frames): same motion, yaw and pitch
    with the opposite sign convention, roll with the same one."""
    frames, r = wild_results["voxceleb_741400163"]
    of = pd.read_csv(OPENFACE / "voxceleb_741400163.csv")
    of.columns = [c.strip() for c in of.columns]
    n = min(len(of), len(frames))
    ok = (of["success"].to_numpy()[:n] == 1) & r["face_found"][:n]
    for col, theirs, sign in (("yaw", "pose_Ry", -1), ("pitch", "pose_Rx", -1), ("roll", "pose_Rz", 1)):
        ours = r["pose"][:n, POSE_COLUMNS.index(col)][ok]
        ref = np.degrees(of[theirs].to_numpy()[:n][ok])
        assert sign * np.corrcoef(ours, ref)[0, 1] > 0.75, col
        assert 0.6 < np.ptp(ours) / np.ptp(ref) < 1.5, col  # same range of motion in degrees


@pytest.mark.parametrize(("axis", "angle", "column"), [("y", -20, "yaw"), ("x", -15, "pitch"), ("z", 10, "roll")])
def test_pose_recovers_a_known_3d_rotation_of_real_landmarks(grid_results, axis, angle, column):
    """Rotate a real clip's 3-D landmarks about the face centre (camera axes: x right, y down, z away
    from the camera): yaw -20 deg about y moves the nose to the image's right, pitch -15 deg about x
    moves it up, 10 deg about z tilts the head clockwise; each shows up in its own column."""
    r = grid_results[GRID_CLIPS[0].stem]
    lm = r["landmarks"].astype(np.float64)
    rot = cv2.Rodrigues(np.radians(angle) * np.eye(3)["xyz".index(axis)])[0]
    centre = lm.mean(1, keepdims=True)
    turned = ((lm - centre) @ rot.T + centre).astype(np.float32)
    found = r["face_found"]
    before = face.estimate_pose(r["landmarks"], found, (288, 360), PoseConfig())
    after = face.estimate_pose(turned, found, (288, 360), PoseConfig())
    change = np.median(after[:, :3] - before[:, :3], axis=0)
    expected = np.zeros(3)
    expected[POSE_COLUMNS.index(column)] = abs(angle)
    np.testing.assert_allclose(change, expected, atol=2.5)


def test_pose_signs_under_image_rotation_and_mirroring(first_grid, grid_results, tracker):
    frames = first_grid[:10]
    base = grid_results[GRID_CLIPS[0].stem]["pose"][:10]
    h, w = frames.shape[1:3]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 12, 1.0)  # 12 degrees counter-clockwise
    rotated = np.stack([cv2.warpAffine(f, m, (w, h), borderMode=cv2.BORDER_REFLECT) for f in frames])
    rp = face.process_frames(rotated, FPS, tracker=tracker)["pose"]
    assert np.median(rp[:, 2] - base[:, 2]) == pytest.approx(-12, abs=2)
    mirrored = np.ascontiguousarray(frames[:, :, ::-1])
    mp_ = face.process_frames(mirrored, FPS, tracker=tracker)["pose"]
    for k in (0, 2):  # yaw and roll change sign, pitch does not
        assert np.median(mp_[:, k] + base[:, k]) == pytest.approx(0, abs=3), POSE_COLUMNS[k]
    assert np.median(mp_[:, 1] - base[:, 1]) == pytest.approx(0, abs=3)


# -- the stages end to end ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def staged_clip(ctx) -> Clip:
    """A GRID clip through the real decode stage, then the face stages (encode left to the tests)."""
    from talkbench.pipelines.stages.decode import DecodeConfig, decode

    path = GRID_CLIPS[0]
    clip = Clip(ClipRecord(clip_id="grid0", dataset="grid", source_path=str(path), speaker_id="s"))
    clip = decode(clip, DecodeConfig(), ctx)
    return run_stages(clip, ctx, ["landmarks", "align", "pose", "quality"])


def _copy(clip: Clip) -> Clip:
    return Clip(record=clip.record, video=clip.video, audio=clip.audio, fps=clip.fps, info=dict(clip.info),
                frames_table=dict(clip.frames_table))


def test_stage_columns_match_the_schema(staged_clip):
    ft, info = staged_clip.frames_table, staged_clip.info
    schema_cols = set(frame_columns())
    for col in ("face_found", "face_interpolated", "n_faces", "landmarks", "align_matrix", *POSE_COLUMNS,
                "face_size", "det_conf", "blur"):
        assert col in schema_cols and len(ft[col]) == 75, col
    assert ft["align_matrix"].shape == (75, 6) and ft["align_matrix"].dtype == np.float32
    assert info["identity_frame"] == 0 and info["n_faces_max"] == 1 and info["n_interpolated"] == 0
    assert info["face_found_ratio"] == 1.0 and info.get("status", "ok") == "ok"
    # face size: outer eye corners of a 360x288 GRID speaker, tens of pixels
    assert 20 < info["face_size_mean"] < 150 and 0.5 < info["det_conf_mean"] <= 1
    assert info["blur_mean"] > 0


def test_blur_is_lower_on_a_blurred_copy(staged_clip, first_grid):
    ft = staged_clip.frames_table
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 2.0) for f in first_grid])
    crops = face.align_track(blurred, ft["landmarks"], ft["face_found"], AlignConfig(), FPS)["face_crop"]
    assert (face.blur_scores(crops) < ft["blur"]).all()


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_encode_stage_writes_images_and_frees_memory(staged_clip, fmt):
    clip = _copy(staged_clip)
    crops = clip.frames_table["face_crop"]
    clip = encode(clip, EncodeConfig(image_format=fmt), WorkerContext())
    assert clip.video is None and "face_crop" not in clip.frames_table and "mouth_crop" not in clip.frames_table
    face_bytes, mouth_bytes = clip.frames_table["face"], clip.frames_table["mouth"]
    assert len(face_bytes) == len(mouth_bytes) == 75
    img = np.asarray(Image.open(io.BytesIO(face_bytes[10])).convert("RGB"))
    assert Image.open(io.BytesIO(face_bytes[10])).format == fmt.upper()
    assert img.shape == (128, 128, 3)
    assert np.abs(img.astype(int) - crops[10].astype(int)).mean() < (3 if fmt == "jpeg" else 1e-9)
    assert Image.open(io.BytesIO(mouth_bytes[0])).size == (64, 64)


def test_stage_output_builds_a_frames_table_with_the_schema(staged_clip):
    from talkbench.pipelines.tables import frames_table

    clip = encode(_copy(staged_clip), EncodeConfig(), WorkerContext())
    table = frames_table(clip)
    assert table.num_rows == 75
    for col in ("landmarks", "align_matrix", "yaw", "face", "mouth", "face_size", "det_conf", "blur", "face_found"):
        assert table.column(col).null_count == 0, col
    lm = np.asarray(table.column("landmarks")[5].as_py(), np.float32).reshape(478, 3)
    np.testing.assert_array_equal(lm, staged_clip.frames_table["landmarks"][5])


def test_fill_gaps_rules():
    lm = np.arange(12, dtype=np.float32)[:, None, None] * np.ones((12, 478, 3), np.float32)
    lm[:2] = np.nan  # leading gap of 2: held at the first detected frame
    lm[5:7] = np.nan  # inner gap of 2: linear
    lm[9:] = np.nan  # trailing gap of 3 > max_gap 2: left empty
    filled, found, interp = face.fill_gaps(lm, max_gap=2)
    assert filled[:2, 0, 0].tolist() == [2, 2] and filled[5:7, 0, 0].tolist() == pytest.approx([5, 6])
    assert np.flatnonzero(interp).tolist() == [0, 1, 5, 6]
    assert found.tolist() == [True] * 9 + [False] * 3 and np.isnan(filled[9:]).all()
