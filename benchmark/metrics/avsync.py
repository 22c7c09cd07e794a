"""Weight-free audio/video sync: correlate how the sound changes with how the mouth moves.

Sign convention (same as SyncNet's AV offset): a **positive offset means the video lags the audio**,
i.e. the mouth moves ``offset`` frames after the sound that goes with it. Ground truth delayed by k
frames (the harness's ``builtin:shifted?k=K``) reads as offset +k.

Method ("av-xcorr-v2"). Per video frame (audio frame t = the 1/fps seconds that frame t is on
screen, analysed with an 80 ms Hann window centred on it), two cue pairs, each a Pearson correlation
computed for every offset in ±15 frames over the overlapping frames only (at least 1 s of them):

1. *signed*: rate of change of the speech-band log energy (300–3000 Hz) vs rate of change of the
   mouth opening (inner-lip gap / inter-ocular distance). Opening the mouth raises the energy,
   closing it (b, p, m) cuts it, so this cue is precise; but syllables recur every ~5-6 frames, so
   alone it also peaks a syllable or two away (on GRID it picked -12 instead of 0 on two clips).
2. *unsigned*: spectral flux (RMS over 24 mel bands in 300–3000 Hz of the rate of change of log
   power) vs lip speed (RMS velocity of the 40 lip points around their centroid). Any articulatory
   movement changes the spectrum, whatever its direction, and both are near zero in silence whatever
   the mouth's resting posture, so this cue finds the utterance; but it is broad (±3 frames).

The estimate is the argmax of the mean of the two curves. Rates of change are derivative-of-Gaussian
filters with sigma = 1 frame (zero phase, so no lag of their own; sigma 1 suppresses landmark jitter
while keeping syllables apart). Change signals are used rather than levels because a level carries
each speaker's resting posture (some rest with lips apart) and the breathing pauses; the log
energy and log mel powers are floored 60 dB below the clip's maximum so that silence hiss does not
produce flux. Frames without a face are interpolated for filtering and then left out of the
correlation (with 2 frames either side, the reach of the filter).

On the five real GRID clips (3 s) ground truth reads 0 or +1 and ground truth delayed by k in
{3, 5, 8} reads k or k+1; the signed cue alone or the unsigned cue alone misses by several frames on
some of them. Audiovisual physiology puts mouth movement 0–2 frames ahead of the sound; no
correction is applied for it. Values: ``av_xcorr_offset`` (frames), ``av_xcorr_abs_offset``,
``av_xcorr_peak`` (the fused correlation at that offset: how clearly mouth and sound co-vary,
whatever their offset) and ``av_xcorr_r0`` (the fused correlation at offset 0: how well the mouth
follows the audio as delivered, so it falls when the video is out of sync).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import binary_dilation, gaussian_filter1d

from talkbench.benchmark.metrics.base import ClipPair, Metric, register_metric
from talkbench.benchmark.metrics.landmarks import LIPS, face_scale, mouth_opening

MAX_OFFSET = 15  # frames, the SyncNet search range
MIN_OVERLAP_S = 1.0  # seconds of overlapping frames below which an offset is not scored
SPEECH_BAND_HZ = (300.0, 3000.0)
N_MELS = 24
FLOOR_DB = 60.0  # log powers are floored this far below the clip's maximum
SIGMA_FRAMES = 1.0  # derivative-of-Gaussian scale


def _rate(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Zero-phase smoothed rate of change per frame (derivative-of-Gaussian, sigma = SIGMA_FRAMES)."""
    return gaussian_filter1d(x, SIGMA_FRAMES, axis=axis, order=1, mode="nearest")


def _floored_db(power: np.ndarray) -> np.ndarray:
    ref = float(power.max()) if power.size else 0.0
    if ref <= 0:
        return np.zeros_like(power)
    return 10.0 * np.log10(np.maximum(power, ref * 10.0 ** (-FLOOR_DB / 10.0)))


def audio_cues(audio: np.ndarray, sample_rate: int = 16_000, fps: float = 25.0) -> tuple[np.ndarray, np.ndarray]:
    """(energy rate, spectral flux), one value per whole video frame of mono ``audio``.

    Frame t's analysis window is an 80 ms (2 frames) Hann window centred on the middle of the frame's
    1/fps seconds; a trailing partial frame is dropped.
    """
    import librosa  # lazily: slow to import, and only this metric needs it here

    hop = int(round(sample_rate / fps))
    n = len(audio) // hop
    if n == 0:
        return np.zeros(0), np.zeros(0)
    x = np.pad(np.asarray(audio[: n * hop], np.float32), (hop // 2, hop - hop // 2))
    power = np.abs(librosa.stft(x, n_fft=2 * hop, hop_length=hop, center=False, window="hann")) ** 2
    power = power[:, :n].astype(np.float64)
    lo, hi = SPEECH_BAND_HZ
    freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=2 * hop)
    energy = _floored_db(power[(freqs >= lo) & (freqs <= hi)].sum(axis=0))
    mel = librosa.filters.mel(sr=sample_rate, n_fft=2 * hop, n_mels=N_MELS, fmin=lo, fmax=hi)
    log_mel = _floored_db(mel @ power)
    flux = np.sqrt((_rate(log_mel, axis=1) ** 2).mean(axis=0))
    return _rate(energy), flux


def video_cues(landmarks: np.ndarray, face_found: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(opening rate, lip speed, valid) per frame of (T, 478, >=2) landmarks.

    Lip speed is the RMS over the 40 lip points of their velocity about the lips' centroid, in
    inter-ocular distances per frame (so head translation and face size do not count). ``valid`` is
    False on frames without a face and within 2 frames of one.
    """
    t = len(landmarks)
    found = np.ones(t, bool) if face_found is None else np.asarray(face_found, bool).copy()
    x = landmarks[..., :2].astype(np.float64)
    found &= np.isfinite(x).all(axis=(1, 2))
    if not found.any():
        return np.zeros(t), np.zeros(t), found
    scale = face_scale(landmarks[found])
    lips = x[:, list(LIPS)]
    lips = (lips - lips.mean(axis=1, keepdims=True)) / scale
    opening = mouth_opening(landmarks, scale)
    if not found.all():  # interpolate so the filters have input; those frames are dropped below
        idx = np.arange(t)
        opening = np.interp(idx, idx[found], opening[found])
        flat = lips.reshape(t, -1)
        lips = np.stack([np.interp(idx, idx[found], c[found]) for c in flat.T], axis=1).reshape(lips.shape)
    speed = np.sqrt((_rate(lips, axis=0) ** 2).sum(axis=2).mean(axis=1))
    valid = ~binary_dilation(~found, iterations=2)
    return _rate(opening), speed, valid


def xcorr_curve(a: np.ndarray, v: np.ndarray, valid: np.ndarray | None = None, max_offset: int = MAX_OFFSET,
                min_overlap: int = 25) -> np.ndarray:
    """Pearson r between a[t] and v[t + k] for k = -max_offset..+max_offset, on the overlap only.

    Frames t + k with ``valid`` False are left out. An offset with fewer than ``min_overlap`` pairs
    or a constant side gets NaN.
    """
    n = min(len(a), len(v))
    a = np.asarray(a[:n], np.float64)
    v = np.asarray(v[:n], np.float64)
    ok = np.ones(n, bool) if valid is None else np.asarray(valid[:n], bool)
    r = np.full(2 * max_offset + 1, np.nan)
    for i, k in enumerate(range(-max_offset, max_offset + 1)):
        ta = np.arange(max(0, -k), n - max(0, k))
        ta = ta[ok[ta + k]]
        if len(ta) < min_overlap:
            continue
        x = a[ta] - a[ta].mean()
        y = v[ta + k] - v[ta + k].mean()
        den = math.sqrt(float((x * x).sum() * (y * y).sum()))
        if den > 0:
            r[i] = float((x * y).sum() / den)
    return r


def best_offset(r: np.ndarray) -> tuple[int, float]:
    """(offset, r at it) of a curve over -m..+m; raises ValueError when every offset is NaN."""
    if not np.isfinite(r).any():
        raise ValueError("no offset has enough overlap and variation to correlate")
    i = int(np.nanargmax(r))
    return i - (len(r) - 1) // 2, float(r[i])


def sync_curve(audio: np.ndarray, landmarks: np.ndarray, face_found: np.ndarray | None = None,
               sample_rate: int = 16_000, fps: float = 25.0, max_offset: int = MAX_OFFSET) -> np.ndarray:
    """The fused curve: mean of the signed and the unsigned cue correlations per offset (module doc)."""
    energy_rate, flux = audio_cues(audio, sample_rate, fps)
    opening_rate, speed, valid = video_cues(landmarks, face_found)
    min_overlap = max(2, int(round(MIN_OVERLAP_S * fps)))
    signed = xcorr_curve(energy_rate, opening_rate, valid, max_offset, min_overlap)
    unsigned = xcorr_curve(flux, speed, valid, max_offset, min_overlap)
    return (signed + unsigned) / 2.0


@register_metric("av-xcorr")
class AVXCorr(Metric):
    """Offset (frames; + = video lags audio) and correlations of sound change vs mouth movement."""

    variant = "av-xcorr-v2-dog1-speech300-3000-dlogE~dgap+flux~lipspeed-pm15"
    directions = {"av_xcorr_peak": "higher", "av_xcorr_abs_offset": "lower", "av_xcorr_r0": "higher"}
    #: the peak hardly depends on the offset (GT 0.586 vs 5-frame shift 0.575 on GRID): it ranks nothing;
    #: sync ranks on the offset and on r0 (the correlation at the delivered alignment)
    unranked = frozenset({"av_xcorr_peak"})
    requires_reference = False

    def score(self, pair: ClipPair) -> dict[str, float]:
        g = pair.generated
        r = sync_curve(pair.audio, g.landmarks, g.face_found, pair.sample_rate, g.fps)
        try:
            offset, peak = best_offset(r)
        except ValueError:
            # nothing correlates. A mouth that does not move follows no sound: r0 = 0 (penalised, never
            # dropped). Otherwise (silence, too short) the values are undefined and counted as such.
            opening_rate, speed, valid = video_cues(g.landmarks, g.face_found)
            still = bool(valid.any()) and np.ptp(opening_rate[valid]) == 0 and np.ptp(speed[valid]) == 0
            zero = 0.0 if still else math.nan
            return {"av_xcorr_offset": math.nan, "av_xcorr_abs_offset": math.nan, "av_xcorr_peak": zero,
                    "av_xcorr_r0": zero}
        return {"av_xcorr_offset": float(offset), "av_xcorr_abs_offset": float(abs(offset)),
                "av_xcorr_peak": peak, "av_xcorr_r0": float(r[(len(r) - 1) // 2])}
