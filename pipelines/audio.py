"""Audio features: the GUIDE §1 MFCC, the 80-bin log-mel, their per-frame rows and the model windows.

The one public audio module: the preparation stage (``stages/audio_features.py``) stores what these
functions compute, the training loader and generation rebuild windows with them, and the tb-sync metric
computes its input with them from the settings its checkpoint records.

Time convention (shared by everything here): audio hop ``k`` is the analysis frame *centred* on sample
``k * hop`` (10 ms), so at 25 fps video frame ``i`` (covering [40 i, 40 i + 40) ms) owns the 4 hops
``4 i .. 4 i + 3``. Those 4 hops are stored on the frame's row (``frames_table["mfcc"]`` (T, 48) =
4 x 12 row-major, ``["logmel"]`` (T, 320) = 4 x 80); a model's longer window (350 ms = 35 hops for the
Audio-to-AU net) is rebuilt from neighbouring rows by :func:`mfcc_windows`, a SyncNet-style block of whole frames by
:func:`block_window`.

The MFCC is computed from librosa's STFT and mel filters with the rest written out, because
``librosa.feature.mfcc`` cannot express the reference exactly: it takes the log as dB with an 80 dB
floor, uses a periodic Hamming window, and its lifter is shifted by one index (it scales c0 by
``1 + L/2 sin(pi/L)``; HTK and python_speech_features leave c0 alone and scale c_n by
``1 + L/2 sin(pi n/L)``). What is used: pre-emphasis, symmetric Hamming window, |FFT|^2 / n_fft, HTK-mel
triangular filters (peak 1, no area normalisation), natural log, orthonormal DCT-II, HTK lifter, c0
dropped. By default the filter edges are continuous (``filterbank="continuous"``, librosa's filters);
``filterbank="fft_bins"`` snaps them to FFT bins as python_speech_features (the usual tool in this
paper family's code) does; with its log floor (2.2e-16) that reproduces the package's coefficients to
1e-12 apart from the framing (its frames start at k * hop; ours are centred on it).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from talkbench.config import StrictModel
from talkbench.errors import ConfigError
from talkbench.schema import HOPS_PER_FRAME, MEL_BINS, SAMPLE_RATE, from_pcm16, to_pcm16


class AudioFeaturesConfig(StrictModel):
    """MFCC (GUIDE §1 reference) and 80-bin log-mel aligned to video frames; raw audio kept."""

    # MFCC: GUIDE §1 reference values
    preemphasis: float = Field(0.97, ge=0.0, lt=1.0, description="y[n] - a y[n-1]; 0 disables")
    win_ms: float = Field(25.0, gt=0, description="analysis window length")
    hop_ms: float = Field(10.0, gt=0, description="hop; 4 hops must make one video frame")
    n_fft: int = Field(512, ge=16, description="FFT size of the MFCC")
    window: str = Field("hamming", description="scipy.signal window name, symmetric")
    n_filters: int = Field(13, ge=1, description="mel filters")
    fmin: float = Field(300.0, ge=0, description="lowest MFCC filter edge in Hz")
    fmax: float = Field(3700.0, gt=0, description="highest MFCC filter edge in Hz")
    filterbank: Literal["continuous", "fft_bins"] = Field(
        "continuous", description="triangle edges exact (librosa) or on FFT bins (python_speech_features)"
    )
    n_ceps: int = Field(13, ge=2, description="DCT coefficients kept, c0 included")
    lifter: float = Field(22.0, ge=0, description="HTK sinusoidal lifter; 0 disables")
    drop_c0: bool = Field(True, description="drop the energy coefficient c0 (GUIDE: 12 coefficients remain)")
    log_floor: float = Field(1e-10, gt=0, description="power floor before the log")
    # log-mel
    logmel_bins: int = Field(MEL_BINS, ge=1, description="log-mel bins")
    logmel_window: str = Field("hann", description="log-mel STFT window")
    logmel_fmin: float = Field(0.0, ge=0, description="log-mel lowest frequency in Hz")
    logmel_fmax: float | None = Field(None, gt=0, description="None: sample_rate / 2")
    logmel_norm: Literal["slaney"] | None = Field("slaney", description="mel filter normalisation (librosa)")
    logmel_floor: float = Field(1e-10, gt=0, description="power floor before the log of the log-mel")


def _stft_power(y: np.ndarray, sr: int, cfg: AudioFeaturesConfig, window: str, center: bool) -> np.ndarray:
    """|STFT|^2 / n_fft, (n_fft // 2 + 1, n_hops); hop k is centred on sample k * hop when center."""
    import librosa
    from scipy.signal import get_window

    win_length, hop = n_samples(cfg.win_ms, sr), n_samples(cfg.hop_ms, sr)
    if win_length > cfg.n_fft:
        raise ConfigError(f"audio_features: window {win_length} samples is longer than n_fft={cfg.n_fft}")
    win = get_window(window, win_length, fftbins=False)  # symmetric, as np.hamming
    spec = librosa.stft(y, n_fft=cfg.n_fft, hop_length=hop, win_length=win_length, window=win,
                        center=center, pad_mode="constant")
    return (spec.real**2 + spec.imag**2) / cfg.n_fft


def n_samples(ms: float, sr: int) -> int:
    """Samples in ``ms`` milliseconds at ``sr`` Hz; a ConfigError unless whole."""
    n = ms * sr / 1000.0
    if abs(n - round(n)) > 1e-6:
        raise ConfigError(f"audio_features: {ms} ms is not a whole number of samples at {sr} Hz")
    return round(n)


def reference_mfcc(audio: np.ndarray, sr: int = 16_000, cfg: AudioFeaturesConfig | None = None,
                   center: bool = True) -> np.ndarray:
    """The GUIDE §1 MFCC of ``audio``: (12, n_hops) float64 (13 x n_hops with ``drop_c0=False``).

    ``center=True``: hop k is centred on sample k * hop, the signal zero-padded by n_fft / 2 at both
    ends (what the stage stores). ``center=False``: hop k covers samples [k * hop, k * hop + n_fft), the
    window centred in it; used to compute one window directly from a slice of audio.
    """
    from scipy.fft import dct
    from scipy.signal import lfilter

    cfg = cfg or AudioFeaturesConfig()
    y = np.asarray(audio, dtype=np.float64).reshape(-1)
    if cfg.preemphasis:
        y = lfilter([1.0, -cfg.preemphasis], [1.0], y)  # y[0] kept as is
    power = _stft_power(y, sr, cfg, cfg.window, center)
    fb = mfcc_filterbank(sr, cfg)
    log_mel = np.log(np.maximum(fb @ power, cfg.log_floor))
    ceps = dct(log_mel, type=2, axis=0, norm="ortho")[: cfg.n_ceps]
    if cfg.lifter > 0:
        n = np.arange(cfg.n_ceps)
        ceps *= (1.0 + cfg.lifter / 2.0 * np.sin(np.pi * n / cfg.lifter))[:, None]
    return ceps[1:] if cfg.drop_c0 else ceps


def mfcc_filterbank(sr: int, cfg: AudioFeaturesConfig) -> np.ndarray:
    """(n_filters, n_fft // 2 + 1) HTK-mel triangles with peak 1 over [fmin, fmax]."""
    import librosa

    if cfg.filterbank == "continuous":
        return librosa.filters.mel(sr=sr, n_fft=cfg.n_fft, n_mels=cfg.n_filters, fmin=cfg.fmin, fmax=cfg.fmax,
                                   htk=True, norm=None, dtype=np.float64)
    # python_speech_features.get_filterbanks: filter edges floored to FFT bin indices
    mels = np.linspace(librosa.hz_to_mel(cfg.fmin, htk=True), librosa.hz_to_mel(cfg.fmax, htk=True),
                       cfg.n_filters + 2)
    edges = np.floor((cfg.n_fft + 1) * librosa.mel_to_hz(mels, htk=True) / sr).astype(int)
    fb = np.zeros((cfg.n_filters, cfg.n_fft // 2 + 1))
    for j, (lo, mid, hi) in enumerate(zip(edges[:-2], edges[1:-1], edges[2:], strict=True)):
        fb[j, lo:mid] = (np.arange(lo, mid) - lo) / max(mid - lo, 1)
        fb[j, mid:hi] = (hi - np.arange(mid, hi)) / max(hi - mid, 1)
    return fb


def log_mel(audio: np.ndarray, sr: int = 16_000, cfg: AudioFeaturesConfig | None = None) -> np.ndarray:
    """80-bin log-mel power spectrogram, (80, n_hops) float64, on the same centred hops as the MFCC."""
    import librosa

    cfg = cfg or AudioFeaturesConfig()
    y = np.asarray(audio, dtype=np.float64).reshape(-1)
    power = _stft_power(y, sr, cfg, cfg.logmel_window, center=True)
    fb = librosa.filters.mel(sr=sr, n_fft=cfg.n_fft, n_mels=cfg.logmel_bins, fmin=cfg.logmel_fmin,
                             fmax=cfg.logmel_fmax, norm=cfg.logmel_norm, dtype=np.float64)
    return np.log(np.maximum(fb @ power, cfg.logmel_floor))


def window_start(i: int | np.ndarray, n_hops: int) -> int | np.ndarray:
    """First hop of frame i's window: the window is centred on hop 4 i + 2 (the frame's midpoint)."""
    return HOPS_PER_FRAME * i + HOPS_PER_FRAME // 2 - n_hops // 2


def mfcc_windows(mfcc_per_frame: np.ndarray, n_hops: int = 35) -> np.ndarray:
    """Every frame's window at once: (T, 4 * C) stored rows -> (T, C, n_hops) float32, e.g. (T, 48) MFCC
    rows -> (T, 12, n_hops); log-mel rows (T, 320) give (T, 80, n_hops) the same way.

    Frame i's window is hops ``4 i + 2 - n_hops // 2`` .. that + n_hops - 1, i.e. centred on the
    frame's midpoint (hop 4 i + 2, at 40 i + 20 ms); for even ``n_hops`` the extra hop is on the left.
    With the default 35 hops that is hops 4 i - 15 .. 4 i + 19 (350 ms). Hops before the clip's first
    or after its last are the edge hop repeated (``np.pad(mode="edge")``).
    """
    rows = np.asarray(mfcc_per_frame)
    if rows.ndim != 2 or rows.shape[1] % HOPS_PER_FRAME:
        raise ValueError(f"expected (T, {HOPS_PER_FRAME} * n_coeffs) rows, got {rows.shape}")
    if n_hops < 1:
        raise ValueError(f"n_hops must be >= 1, got {n_hops}")
    t = rows.shape[0]
    hops = rows.reshape(t * HOPS_PER_FRAME, -1)  # (4T, 12): row-major 4 x 12 per frame
    idx = window_start(np.arange(t), n_hops)[:, None] + np.arange(n_hops)[None, :]
    idx = np.clip(idx, 0, len(hops) - 1)  # edge padding
    return np.ascontiguousarray(hops[idx].transpose(0, 2, 1), dtype=np.float32)


def mfcc_window(mfcc_per_frame: np.ndarray, i: int, n_hops: int = 35) -> np.ndarray:
    """Frame i's (12, n_hops) MFCC window from stored rows; same convention as :func:`mfcc_windows`."""
    rows = np.asarray(mfcc_per_frame)
    t = rows.shape[0]
    if not 0 <= i < t:
        raise IndexError(f"frame {i} out of range for {t} frames")
    hops = rows.reshape(t * HOPS_PER_FRAME, -1)
    idx = np.clip(window_start(i, n_hops) + np.arange(n_hops), 0, len(hops) - 1)
    return np.ascontiguousarray(hops[idx].T, dtype=np.float32)


def reference_window(audio: np.ndarray, i: int, sr: int = 16_000, n_hops: int = 35,
                     cfg: AudioFeaturesConfig | None = None, fps: float = 25.0) -> np.ndarray:
    """Frame i's (12, n_hops) MFCC window computed directly from the audio around it.

    Equals :func:`mfcc_window` on the stored rows wherever the window lies inside the clip; outside
    it this sees zeros (the stored rows repeat the edge hop instead).
    """
    cfg = cfg or AudioFeaturesConfig()
    hop = n_samples(cfg.hop_ms, sr)
    if abs(sr / fps / hop - HOPS_PER_FRAME) > 1e-9:
        raise ConfigError(f"{HOPS_PER_FRAME} hops of {cfg.hop_ms} ms must make one frame at {fps} fps")
    y = np.asarray(audio, dtype=np.float64).reshape(-1)
    if cfg.preemphasis:  # on the whole signal, as the stage does, so the slice's first sample is right
        y = np.concatenate([y[:1], y[1:] - cfg.preemphasis * y[:-1]])
    first = int(window_start(i, n_hops)) * hop - cfg.n_fft // 2  # hop k is centred on sample k * hop
    stop = first + (n_hops - 1) * hop + cfg.n_fft
    padded = np.zeros(stop - first)
    lo, hi = max(first, 0), min(stop, len(y))
    if hi > lo:
        padded[lo - first : hi - first] = y[lo:hi]
    return reference_mfcc(padded, sr, cfg.model_copy(update={"preemphasis": 0.0}), center=False)


def per_frame(features: np.ndarray, n_frames: int) -> np.ndarray:
    """(D, n_hops) -> (T, 4 * D): frame i gets hops 4 i .. 4 i + 3, row-major 4 x D, float32."""
    need = n_frames * HOPS_PER_FRAME
    if features.shape[1] < need:  # centred framing yields len // hop + 1 hops; pad defensively
        features = np.pad(features, ((0, 0), (0, need - features.shape[1])), mode="edge")
    hops = features[:, :need].T  # (4T, D)
    return np.ascontiguousarray(hops.reshape(n_frames, -1), dtype=np.float32)


def block_window(per_frame_rows: np.ndarray, start: int, frames: int) -> np.ndarray:
    """The hops of frames [start, start + frames) as one (C, frames * 4) window (the sync expert's input)."""
    block = np.asarray(per_frame_rows[start : start + frames], dtype=np.float32)
    if len(block) != frames:
        raise ValueError(f"block [{start}, {start + frames}) is outside the {len(per_frame_rows)} frames")
    return np.ascontiguousarray(block.reshape(frames * HOPS_PER_FRAME, -1).T)


def as_stored(audio: np.ndarray) -> np.ndarray:
    """Float audio as the shards store it (through PCM16 and back), so features computed from it can be
    recomputed from a shard exactly."""
    return from_pcm16(to_pcm16(np.asarray(audio, dtype=np.float32).reshape(-1)))


def mfcc_from_audio(audio: np.ndarray, sample_rate: int, n_frames: int,
                    cfg: AudioFeaturesConfig | dict | None = None) -> np.ndarray:
    """Per-frame MFCC rows (n_frames, 48) from raw audio, exactly as the preparation stage stores them.

    ``cfg`` is the shards' ``audio_features`` settings (a checkpoint records them), so generation and the
    sync metric use the features their model was trained on.
    """
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"audio must be {SAMPLE_RATE} Hz mono, got {sample_rate} Hz")
    if not isinstance(cfg, AudioFeaturesConfig):
        cfg = AudioFeaturesConfig.model_validate(cfg or {})
    return per_frame(reference_mfcc(as_stored(audio), sample_rate, cfg), n_frames)
