"""The decode stage: corpus rules on top of talkbench.media.read_av, on real and made clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import GRID_CLIPS, WILD

from talkbench.config import build
from talkbench.errors import ClipError, ConfigError
from talkbench.media import write_video
from talkbench.pipelines.core import STAGES, Clip, ClipRecord, WorkerContext
from talkbench.pipelines.stages.decode import DecodeConfig, decode, fit_length
from talkbench.schema import CLIPS_SCHEMA, ERROR_KINDS

SCHEMA_COLUMNS = set(CLIPS_SCHEMA.names)


def run_decode(path: Path, **cfg) -> Clip:
    record = ClipRecord(clip_id=Path(path).stem, dataset="test", source_path=str(path), speaker_id="s")
    return decode(Clip(record), DecodeConfig(**cfg), WorkerContext())


def decode_error(path: Path, **cfg) -> ClipError:
    with pytest.raises(ClipError) as e:
        run_decode(path, **cfg)
    assert e.value.kind in ERROR_KINDS
    return e.value


def tone_clip(path: Path, seconds: float, size: tuple[int, int] = (64, 64), audio: bool = True) -> Path:
    n = round(seconds * 25)
    frames = np.random.default_rng(1).integers(0, 256, (n, *size, 3), dtype=np.uint8)
    t = np.arange(round(seconds * 16_000)) / 16_000
    sound = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32) if audio else None
    return write_video(path, frames, 25.0, sound, 16_000)


@pytest.fixture(scope="session")
def grid_clips(fixtures_dir) -> dict[str, Clip]:
    return {p.stem: run_decode(p) for p in GRID_CLIPS}


def test_stage_is_registered():
    stage = STAGES.get("decode")
    assert stage is decode and stage.config is DecodeConfig


def test_grid_clips_through_the_stage(grid_clips):
    assert len(grid_clips) == 5
    for stem, clip in grid_clips.items():
        assert clip.video.shape == (75, 288, 360, 3), stem
        assert clip.fps == 25.0 and clip.sample_rate == 16_000 and clip.n_frames == 75
        assert clip.audio.shape == (48_000,) and clip.audio.dtype == np.float32
        ts = clip.frames_table["timestamp_s"]
        assert ts.dtype == np.float32 and ts.shape == (75,)
        np.testing.assert_allclose(ts, np.arange(75) / 25.0, atol=1e-6)
        info = clip.info
        assert set(info) <= SCHEMA_COLUMNS  # only clip-level columns of the output contract
        assert info["n_frames"] == 75 and info["duration_s"] == pytest.approx(3.0)
        assert (info["source_width"], info["source_height"], info["rotation"]) == (360, 288, 0)
        assert info["source_fps"] == pytest.approx(25.0) and info["source_duration_s"] == pytest.approx(3.0)


def test_short_audio_is_recorded_then_zero_padded(grid_clips):
    """GRID audio ends ~22 ms before the video: av_diff_s keeps that, the audio is padded to 3 s."""
    clip = grid_clips["bbaf2n"]
    diff = clip.info["av_diff_s"]
    assert -0.05 < diff < 0
    pad = round(-diff * 16_000)
    assert np.all(clip.audio[-pad + 2 :] == 0)
    assert np.abs(clip.audio[-pad - 400 : -pad - 2]).max() > 0


def test_vfr_clip_through_the_stage(fixtures_dir):
    clip = run_decode(WILD / "inthewild_vfr.mp4")
    assert clip.video.shape == (152, 700, 700, 3)
    assert clip.audio.shape == (152 * 640,)  # cut to exactly n_frames / fps
    assert clip.info["av_diff_s"] > 0  # the audio was longer before the cut
    assert clip.info["source_fps"] == pytest.approx(22.13, abs=0.01)


def test_max_frames(fixtures_dir):
    clip = run_decode(GRID_CLIPS[0], max_frames=30)
    assert clip.video.shape[0] == 30 and clip.audio.shape == (30 * 640,)
    assert clip.info["duration_s"] == pytest.approx(1.2) and clip.info["source_duration_s"] == pytest.approx(3.0)


def test_too_short(tmp_path):
    path = tone_clip(tmp_path / "half_second.mp4", 0.48)
    err = decode_error(path)
    assert err.kind == "too_short" and "0.48 s" in err.message  # 12 frames
    clip = run_decode(path, min_duration_s=0.4)  # the threshold is config, not a constant
    assert clip.n_frames == 12 and clip.audio.shape == (12 * 640,)


def test_no_audio(tmp_path):
    path = tone_clip(tmp_path / "silent.mp4", 1.2, audio=False)
    assert decode_error(path).kind == "no_audio"
    clip = run_decode(path, require_audio=False)
    assert clip.audio is None and clip.info["av_diff_s"] is None and clip.n_frames == 30


def test_frame_too_small(tmp_path):
    path = tone_clip(tmp_path / "tiny.mp4", 1.2, size=(16, 16))
    err = decode_error(path)
    assert err.kind == "bad_frame_size" and "16x16" in err.message
    assert run_decode(path, min_side_px=16).video.shape == (30, 16, 16, 3)


def test_file_level_errors_pass_through(tmp_path):
    assert decode_error(tmp_path / "missing.mpg").kind == "file_missing"
    (tmp_path / "empty.mpg").write_bytes(b"")
    assert decode_error(tmp_path / "empty.mpg").kind == "empty_file"


def test_fit_length():
    a = np.linspace(-0.9, 0.9, 10, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(a, 1, 25.0, 200), a[:8])  # 1 frame at 200 Hz = 8 samples
    padded = fit_length(a, 2, 25.0, 200)
    assert padded.shape == (16,) and padded.dtype == np.float32
    np.testing.assert_array_equal(padded[:10], a)
    np.testing.assert_array_equal(padded[10:], 0)
    loud = fit_length(np.array([1.07, -1.2, 0.5], np.float32), 1, 25.0, 75)  # resampler overshoot
    np.testing.assert_array_equal(loud, [1.0, -1.0, 0.5])


def test_config_is_strict():
    with pytest.raises(ConfigError, match="unknown key"):
        build(DecodeConfig, {"fsp": 30})
    with pytest.raises(ConfigError, match="min_duration_s"):
        build(DecodeConfig, overrides=["min_duration_s=-1"])
    assert build(DecodeConfig, overrides=["max_frames=50"]).max_frames == 50
