"""talkbench.media reading on the real fixtures: constant fps by timestamps, audio, rotation, bad files."""

from __future__ import annotations

import hashlib
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import AUDIO, GRID, GRID_CLIPS, WILD
from scipy.io import wavfile
from scipy.signal import resample_poly

from talkbench.errors import ClipError
from talkbench.media import read_audio, read_av, write_video
from talkbench.schema import ERROR_KINDS

VFR = WILD / "inthewild_vfr.mp4"
VOX = WILD / "voxceleb_741400163.mp4"


def encode(path: Path, frames: np.ndarray, codec: str = "libx264", pix_fmt: str = "yuv420p",
           display_rotation: int | None = None, tags: dict[str, str] | None = None) -> Path:
    """Write test media write_video cannot: odd sizes, rotation side data, stream tags."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        if display_rotation is not None:
            stream.set_display_rotation(display_rotation)
        for key, value in (tags or {}).items():
            stream.metadata[key] = value
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def corner_frames(t: int = 10, h: int = 48, w: int = 64) -> np.ndarray:
    """Black frames with a white block in the top-left corner: shows which way a frame was turned."""
    frames = np.zeros((t, h, w, 3), np.uint8)
    frames[:, : h // 4, : w // 4] = 255
    return frames


def white_box(frame: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(frame[..., 0] > 128)
    return int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())


@pytest.fixture(scope="session")
def grid_decoded(fixtures_dir) -> dict[str, object]:
    return {p.stem: read_av(p) for p in GRID_CLIPS}


@pytest.fixture(scope="session")
def vfr_decoded(fixtures_dir):
    return read_av(VFR)


# --- real clips -------------------------------------------------------------------------------------

def test_grid_clips_decode_to_75_frames_and_16k_mono(grid_decoded):
    assert len(grid_decoded) == 5
    for stem, d in grid_decoded.items():
        assert d.frames.shape == (75, 288, 360, 3), stem
        assert d.frames.dtype == np.uint8 and d.fps == 25.0 and d.sample_rate == 16_000
        np.testing.assert_allclose(d.timestamps_s, np.arange(75) / 25.0)
        assert d.audio.dtype == np.float32 and d.audio.ndim == 1
        info = d.info
        assert (info["source_width"], info["source_height"], info["rotation"]) == (360, 288, 0)
        assert info["source_fps"] == pytest.approx(25.0) and info["source_duration_s"] == pytest.approx(3.0)
        assert info["n_source_frames"] == 75 and info["source_audio_rate"] == 44_100
        # the GRID audio track is ~22 ms shorter than the video: measured, not hidden
        assert info["av_diff_s"] == pytest.approx(len(d.audio) / 16_000 - 3.0)
        assert -0.05 < info["av_diff_s"] < 0


def test_constant_rate_source_maps_one_to_one_onto_plain_decoding(grid_decoded):
    path = GRID / "bbaf2n.mpg"
    with av.open(str(path)) as c:
        plain = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    d = grid_decoded["bbaf2n"]
    np.testing.assert_array_equal(d.source_index, np.arange(75))
    np.testing.assert_array_equal(d.frames, plain)


def test_audio_is_the_channel_mean_resampled_in_sync(grid_decoded):
    """Against an independent path: native 44.1 kHz stereo decode, channel mean, scipy polyphase."""
    with av.open(str(GRID / "id2_vcd_swwp2s.mpg")) as c:
        native = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)  # s16p planar
    ref = resample_poly(native.astype(np.float64).mean(axis=0) / 32768.0, 160, 441)
    ours = grid_decoded["id2_vcd_swwp2s"].audio.astype(np.float64)
    n = min(len(ref), len(ours)) - 400
    seg = slice(200, n)
    lags = range(-8, 9)
    corr = [np.corrcoef(ours[seg], np.roll(ref, lag)[seg])[0, 1] for lag in lags]
    assert lags[int(np.argmax(corr))] == 0  # no time shift between the two paths
    assert max(corr) > 0.99
    assert abs(ours.std() / ref.std() - 1) < 0.02  # channel mean, not swresample's 0.707 * (L + R)


def test_vfr_clip_resampled_to_25fps_by_timestamps(vfr_decoded):
    d = vfr_decoded
    with av.open(str(VFR)) as c:
        stream = c.streams.video[0]
        times, durations, digests = [], [], []
        rgb = av.video.reformatter.VideoReformatter()
        for f in c.decode(stream):
            times.append(Fraction(f.pts) * stream.time_base)
            durations.append(float(f.duration * stream.time_base))
            pixels = rgb.reformat(f, format="rgb24").to_ndarray()
            digests.append(hashlib.blake2b(pixels.tobytes(), digest_size=16).digest())
    source_duration = float(times[-1] - times[0]) + durations[-1]
    assert len(times) == 135 and source_duration == pytest.approx(6.1, abs=1e-3)
    assert d.info["source_duration_s"] == pytest.approx(source_duration)
    assert d.info["n_source_frames"] == 135 and d.info["source_fps"] == pytest.approx(135 / 6.1)
    # duration kept within one frame, never past the source's end
    assert d.fps == 25.0 and d.n_frames == 152
    assert 0 <= source_duration - d.n_frames / 25 < 1 / 25
    # output frame i = the last source frame whose time is <= i / 25
    rel = np.array([float(t - times[0]) for t in times])
    expected = np.searchsorted(rel, np.arange(d.n_frames) / 25 + 1e-9, side="right") - 1
    np.testing.assert_array_equal(d.source_index, expected)
    for i in range(d.n_frames):
        assert hashlib.blake2b(d.frames[i].tobytes(), digest_size=16).digest() == digests[expected[i]]
    # a frame lasting 1/15 s spans two output instants (repeated); some 1/30 s frames are never shown
    steps = np.diff(d.source_index)
    repeated = d.source_index[1:][steps == 0]
    assert len(repeated) > 10 and all(durations[j] == pytest.approx(1 / 15) for j in repeated)
    assert (steps == 2).any()


def test_wild_clip_16k_mono_source(fixtures_dir):
    d = read_av(VOX)
    assert d.frames.shape == (346, 224, 224, 3) and d.info["source_audio_channels"] == 1
    assert d.info["av_diff_s"] == pytest.approx(len(d.audio) / 16_000 - 13.84)


def test_max_frames_keeps_the_start_and_still_measures_the_source(grid_decoded):
    d = read_av(GRID / "brbk7n.mpg", max_frames=40)
    full = grid_decoded["brbk7n"]
    assert d.n_frames == 40
    np.testing.assert_array_equal(d.frames, full.frames[:40])
    for key in ("source_duration_s", "n_source_frames", "av_diff_s"):
        assert d.info[key] == pytest.approx(full.info[key]), key


def test_read_audio_stereo_wav_is_the_channel_mean(fixtures_dir):
    path = AUDIO / "hdtf_radio31.wav"
    rate, pcm = wavfile.read(path)
    assert rate == 16_000 and pcm.ndim == 2 and pcm.shape[1] == 2
    audio = read_audio(path)
    assert audio.dtype == np.float32 and audio.shape == (pcm.shape[0],)
    np.testing.assert_allclose(audio, pcm.mean(axis=1) / 32768.0, atol=1e-6)


def test_read_audio_resamples_any_container(grid_decoded):
    audio = read_audio(GRID / "bbaf2n.mpg")
    np.testing.assert_allclose(audio, grid_decoded["bbaf2n"].audio, atol=1e-6)


def test_audio_lines_up_with_video_after_aac_round_trip(tmp_path):
    """A click at 1.0 s written with the video must come back at sample 16000 (AAC priming handled)."""
    audio = np.zeros(32_000, np.float32)
    audio[16_000:16_160] = 0.8
    path = write_video(tmp_path / "click.mp4", corner_frames(50), 25.0, audio, 16_000)
    d = read_av(path)
    assert d.n_frames == 50
    assert abs(int(np.argmax(np.abs(d.audio) > 0.3)) - 16_000) <= 16  # within 1 ms


# --- made media: rotation, odd sizes, unicode paths ------------------------------------------------

@pytest.mark.parametrize(
    ("ccw", "cw", "box"),
    [
        (-90, 90, (0, 15, 36, 47)),  # phone portrait ("rotate=90"): turn clockwise, block top-right
        (90, 270, (48, 63, 0, 11)),  # counter-clockwise: block bottom-left
        (180, 180, (36, 47, 48, 63)),
    ],
)
def test_display_matrix_rotation_is_applied(tmp_path, ccw, cw, box):
    path = encode(tmp_path / "rot.mp4", corner_frames(), display_rotation=ccw)
    d = read_av(path)
    assert d.info["rotation"] == cw
    assert (d.info["source_width"], d.info["source_height"]) == (64, 48)  # as stored in the file
    assert d.frames.shape[1:3] == ((64, 48) if cw in (90, 270) else (48, 64))
    assert d.frames.flags.c_contiguous
    assert white_box(d.frames[0]) == box


def test_legacy_rotate_tag_is_applied(tmp_path):
    path = encode(tmp_path / "tag.mkv", corner_frames(), codec="ffv1", pix_fmt="yuv444p",
                  tags={"rotate": "90"})
    d = read_av(path)
    assert d.info["rotation"] == 90 and white_box(d.frames[0]) == (0, 15, 36, 47)


def test_odd_frame_size(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (10, 49, 65, 3), dtype=np.uint8)
    d = read_av(encode(tmp_path / "odd.mkv", frames, codec="ffv1", pix_fmt="yuv444p"))
    assert d.frames.shape == (10, 49, 65, 3)
    assert np.abs(d.frames.astype(int) - frames).mean() < 2  # only YUV rounding


def test_non_ascii_path(tmp_path, grid_decoded):
    path = tmp_path / "vidéo_测试.mpg"
    shutil.copy(GRID / "lbax4n.mpg", path)
    d = read_av(path)
    np.testing.assert_array_equal(d.frames, grid_decoded["lbax4n"].frames)
    np.testing.assert_array_equal(d.audio, grid_decoded["lbax4n"].audio)


def test_video_without_audio(tmp_path):
    path = write_video(tmp_path / "silent.mp4", corner_frames(30), 25.0, audio=None)
    d = read_av(path)
    assert d.audio is None and d.info["av_diff_s"] is None and d.n_frames == 30
    with pytest.raises(ClipError) as e:
        read_audio(path)
    assert e.value.kind == "no_audio"


# --- bad files -------------------------------------------------------------------------------------

def kind_of(path: Path, reader=read_av) -> str:
    with pytest.raises(ClipError) as e:
        reader(path)
    assert e.value.kind in ERROR_KINDS
    assert str(path.name) in str(e.value)  # the message says which file
    return e.value.kind


def test_missing_empty_and_not_video(tmp_path):
    assert kind_of(tmp_path / "nope.mp4") == "file_missing"
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert kind_of(tmp_path / "empty.mp4") == "empty_file"
    (tmp_path / "text.mp4").write_text("this is a text file, not a video\n" * 20)
    assert kind_of(tmp_path / "text.mp4") == "not_video"
    assert kind_of(tmp_path / "text.mp4", read_audio) == "not_video"
    assert kind_of(AUDIO / "hdtf_radio31.wav") == "not_video"  # audio only: no video stream


def test_truncated_mpeg_ps_decodes_what_is_there(tmp_path):
    """MPEG-PS declares no length: a cut file is a shorter clip, with what was found recorded."""
    data = (GRID / "bbaf2n.mpg").read_bytes()
    path = tmp_path / "cut.mpg"
    path.write_bytes(data[: len(data) // 2])
    d = read_av(path)
    assert 30 < d.n_frames < 45
    assert d.info["n_source_frames"] == d.n_frames
    assert d.info["source_duration_s"] == pytest.approx(d.n_frames / 25)
    assert d.info["av_diff_s"] == pytest.approx(len(d.audio) / 16_000 - d.n_frames / 25)


def test_truncated_mp4_raises(tmp_path):
    data = VOX.read_bytes()  # index (moov) at the end: the cut removes it
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    assert kind_of(tmp_path / "cut.mp4") == "truncated"
    (tmp_path / "head.mp4").write_bytes(data[:100])
    assert kind_of(tmp_path / "head.mp4") == "truncated"
    # index first ("faststart"): opens, but fewer frames decode than the index declares
    fast = tmp_path / "fast.mp4"
    with av.open(str(VOX)) as src, av.open(str(fast), "w", options={"movflags": "faststart"}) as dst:
        out = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = out[packet.stream.index]
                dst.mux(packet)
    assert read_av(fast).n_frames == 346
    data = fast.read_bytes()
    (tmp_path / "fast_cut.mp4").write_bytes(data[: len(data) // 2])
    assert kind_of(tmp_path / "fast_cut.mp4") == "truncated"
