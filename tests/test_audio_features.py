"""Audio features stage: the GUIDE §1 MFCC, log-mel, per-frame storage and window reconstruction."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
from conftest import GRID

from talkbench.errors import ClipError, ConfigError
from talkbench.pipelines.audio import (
    AudioFeaturesConfig,
    log_mel,
    mfcc_window,
    mfcc_windows,
    reference_mfcc,
    reference_window,
)
from talkbench.pipelines.core import STAGES, Clip, ClipRecord, WorkerContext
from talkbench.pipelines.stages.audio_features import audio_features
from talkbench.pipelines.stages.decode import DecodeConfig, decode
from talkbench.schema import from_pcm16

CLIP = GRID / "id2_vcd_swwp2s.mpg"


def run(path, cfg: AudioFeaturesConfig | None = None) -> Clip:
    record = ClipRecord(clip_id=path.stem, dataset="grid", source_path=str(path), speaker_id="s")
    ctx = WorkerContext()
    clip = decode(Clip(record), DecodeConfig(), ctx)
    return audio_features(clip, cfg or AudioFeaturesConfig(), ctx)


@pytest.fixture(scope="session")
def clip(fixtures_dir) -> Clip:
    return run(CLIP)


@pytest.fixture(scope="session")
def stored_audio(clip) -> np.ndarray:
    return from_pcm16(clip.info["audio_pcm16"])


def speech_mask(n: int, step_s: float, offset_s: float = 0.0) -> np.ndarray:
    """True where the GRID word alignment (units of 1/25000 s) has a word rather than ``sil``."""
    t = np.arange(n) * step_s + offset_s
    mask = np.zeros(n, bool)
    for line in (GRID / "swwp2s.align").read_text().split("\n"):
        if line.strip():
            start, end, word = line.split()
            if word != "sil":
                mask |= (t >= int(start) / 25_000) & (t < int(end) / 25_000)
    return mask


def test_stage_is_registered():
    stage = STAGES.get("audio_features")
    assert stage is audio_features and stage.config is AudioFeaturesConfig


def test_shapes_types_and_raw_audio(clip, stored_audio):
    mfcc, logmel = clip.frames_table["mfcc"], clip.frames_table["logmel"]
    assert mfcc.shape == (75, 48) and logmel.shape == (75, 320)
    assert mfcc.dtype == np.float32 and logmel.dtype == np.float32
    assert np.isfinite(mfcc).all() and np.isfinite(logmel).all()
    assert mfcc.std() > 1 and logmel.std() > 1  # not constant
    pcm = clip.info["audio_pcm16"]
    assert isinstance(pcm, bytes) and len(pcm) == 48_000 * 2
    np.testing.assert_allclose(stored_audio, clip.audio, atol=1 / 32767)


def test_rows_are_the_centred_hops_of_the_reference(clip, stored_audio):
    """Row i holds hops 4i..4i+3 (hop k centred on sample 160 k) of the MFCC of the whole clip."""
    full = reference_mfcc(stored_audio)  # (12, 301)
    assert full.shape == (12, 48_000 // 160 + 1)
    np.testing.assert_allclose(clip.frames_table["mfcc"], full[:, :300].T.reshape(75, 48), rtol=1e-5, atol=1e-4)
    mel = log_mel(stored_audio)
    assert mel.shape == (80, 301)
    np.testing.assert_allclose(clip.frames_table["logmel"], mel[:, :300].T.reshape(75, 320), rtol=1e-5, atol=1e-4)


def test_one_hop_by_hand(stored_audio):
    """The reference MFCC written out with numpy for hop 100: pins the window, DCT and lifter conventions."""
    cfg = AudioFeaturesConfig()
    y = np.concatenate([stored_audio[:1], stored_audio[1:] - 0.97 * stored_audio[:-1]]).astype(np.float64)
    y = np.pad(y, 256)
    k = 100
    window = np.zeros(512)
    window[56:456] = np.hamming(400)  # 25 ms, centred in the 512-point frame
    power = np.abs(np.fft.rfft(y[160 * k : 160 * k + 512] * window)) ** 2 / 512
    fb = librosa.filters.mel(sr=16_000, n_fft=512, n_mels=13, fmin=300, fmax=3700, htk=True, norm=None)
    log_energy = np.log(np.maximum(fb @ power, 1e-10))
    n = np.arange(13)
    dct = np.sqrt(2 / 13) * np.cos(np.pi * n[:, None] * (2 * n[None, :] + 1) / 26)
    dct[0] /= np.sqrt(2)
    ceps = (dct @ log_energy) * (1 + 11 * np.sin(np.pi * n / 22))
    np.testing.assert_allclose(reference_mfcc(stored_audio, cfg=cfg)[:, k], ceps[1:], rtol=1e-6, atol=1e-6)


def test_windows_rebuilt_from_rows_equal_direct_computation(clip, stored_audio):
    rows = clip.frames_table["mfcc"]
    windows = mfcc_windows(rows)
    assert windows.shape == (75, 12, 35) and windows.dtype == np.float32
    # every frame whose 350 ms window lies inside the clip: hops 4i-15 .. 4i+19 within 0 .. 299
    for i in range(4, 71):
        direct = reference_window(stored_audio, i)
        assert direct.shape == (12, 35)
        np.testing.assert_allclose(windows[i], direct, rtol=1e-5, atol=1e-4, err_msg=f"frame {i}")
        np.testing.assert_array_equal(mfcc_window(rows, i), windows[i])


def test_window_edges_repeat_the_edge_hop(clip):
    rows = clip.frames_table["mfcc"]
    hops = rows.reshape(300, 12)
    first, last = mfcc_windows(rows)[0], mfcc_windows(rows)[74]
    np.testing.assert_array_equal(first[:, :15], np.repeat(hops[0][:, None], 15, axis=1))  # hops -15..-1
    np.testing.assert_array_equal(first[:, 15:], hops[:20].T)
    np.testing.assert_array_equal(last[:, :19], hops[281:300].T)
    np.testing.assert_array_equal(last[:, 19:], np.repeat(hops[299][:, None], 16, axis=1))  # hops 300..315


@pytest.mark.parametrize(("n_hops", "first_hop"), [(25, 4 * 10 + 2 - 12), (28, 4 * 10 + 2 - 14)])
def test_other_window_lengths(clip, n_hops, first_hop):
    """The diffusion variant's 12 x 25 and the head-pose paper's 12 x 28 windows, frame 10."""
    hops = clip.frames_table["mfcc"].reshape(300, 12)
    window = mfcc_windows(clip.frames_table["mfcc"], n_hops=n_hops)[10]
    np.testing.assert_array_equal(window, hops[first_hop : first_hop + n_hops].T)


def test_speech_and_silence_differ(clip):
    """Word timings of swwp2s.align: speech hops are louder and their MFCCs move more than silence's."""
    speech = speech_mask(300, 0.01)
    assert 0.4 < speech.mean() < 0.7
    energy = clip.frames_table["logmel"].reshape(300, 80).mean(axis=1)
    assert energy[speech].mean() > energy[~speech].mean() + 3.0  # nats
    threshold = (energy[speech].mean() + energy[~speech].mean()) / 2
    assert ((energy > threshold) == speech).mean() > 0.8
    mfcc = clip.frames_table["mfcc"].reshape(300, 12)
    assert mfcc[speech].std(axis=0).mean() > 1.3 * mfcc[~speech].std(axis=0).mean()


def test_fft_bin_filterbank_option(stored_audio):
    """python_speech_features-style filters: the same kind of numbers, not the same numbers."""
    ours = reference_mfcc(stored_audio)
    binned = reference_mfcc(stored_audio, cfg=AudioFeaturesConfig(filterbank="fft_bins"))
    assert binned.shape == ours.shape and not np.allclose(binned, ours)
    assert all(np.corrcoef(ours[c], binned[c])[0, 1] > 0.9 for c in range(12))


def test_bad_inputs():
    rows = np.zeros((10, 48), np.float32)
    with pytest.raises(ValueError):
        mfcc_windows(np.zeros((10, 47)))
    with pytest.raises(IndexError):
        mfcc_window(rows, 10)
    record = ClipRecord(clip_id="x", dataset="t", source_path="x.mp4", speaker_id="s")
    silent = Clip(record, video=np.zeros((25, 8, 8, 3), np.uint8), audio=None)
    with pytest.raises(ClipError) as e:
        audio_features(silent, AudioFeaturesConfig(), WorkerContext())
    assert e.value.kind == "no_audio"
    talking = Clip(record, video=np.zeros((25, 8, 8, 3), np.uint8), audio=np.zeros(16_000, np.float32))
    with pytest.raises(ConfigError, match="hops per video frame"):
        audio_features(talking, AudioFeaturesConfig(hop_ms=20), WorkerContext())
    with pytest.raises(ConfigError, match="whole number of samples"):
        audio_features(talking, AudioFeaturesConfig(win_ms=25.03), WorkerContext())
