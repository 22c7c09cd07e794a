"""Weight-free audio/video sync: cross-correlate the speech envelope with the mouth opening.

Sign convention (same as SyncNet's AV offset): a **positive offset means the video lags the audio**,
i.e. the mouth opens ``offset`` frames after the sound that goes with it. Ground truth delayed by k
frames (the harness's ``builtin:shifted?k=K``) reads as offset +k.
"""

from __future__ import annotations

import math

import numpy as np
from talkbench.benchmark.metrics.base import ClipPair, Metric, register_metric
from talkbench.benchmark.metrics.landmarks import mouth_opening

MAX_OFFSET = 15  # frames, the SyncNet search range
MIN_OVERLAP = 10  # frames; fewer make a correlation meaningless


def audio_envelope(audio: np.ndarray, sample_rate: int = 16_000, fps: float = 25.0) -> np.ndarray:
    """RMS per video frame (40 ms at 25 fps) of mono audio; trailing partial frame dropped."""
    hop = int(round(sample_rate / fps))
    n = len(audio) // hop
    if n == 0:
        return np.zeros(0)
    x = np.asarray(audio[: n * hop], np.float64).reshape(n, hop)
    return np.sqrt((x * x).mean(axis=1))


def xcorr_offset(envelope: np.ndarray, opening: np.ndarray, max_offset: int = MAX_OFFSET
                 ) -> tuple[int, float, np.ndarray]:
    """(best offset, its Pearson r, r for offsets -max..+max) between envelope[t] and opening[t + offset].

    Each offset correlates only the overlapping frames. Offsets with too little overlap or a constant
    side get NaN; the best offset is NaN-safe (raises when every offset is undefined).
    """
    n = min(len(envelope), len(opening))
    e = np.asarray(envelope[:n], np.float64)
    o = np.asarray(opening[:n], np.float64)
    offsets = np.arange(-max_offset, max_offset + 1)
    r = np.full(len(offsets), np.nan)
    for i, k in enumerate(offsets):
        a = e[max(0, -k): n - max(0, k)]
        b = o[max(0, k): n - max(0, -k)]
        if len(a) < MIN_OVERLAP:
            continue
        a = a - a.mean()
        b = b - b.mean()
        den = math.sqrt(float((a * a).sum() * (b * b).sum()))
        if den > 0:
            r[i] = float((a * b).sum() / den)
    if not np.isfinite(r).any():
        raise ValueError("no offset has enough overlap and variation to correlate")
    best = int(np.nanargmax(r))
    return int(offsets[best]), float(r[best]), r


@register_metric("av-xcorr")
class AVXCorr(Metric):
    """Offset (frames; + = video lags audio) and peak correlation of speech RMS vs mouth opening."""

    name = "av-xcorr"
    variant = "av-xcorr-rms40ms-innerlipgap-pm15"
    directions = {"av_xcorr_peak": "higher", "av_xcorr_abs_offset": "lower"}
    requires_reference = False

    def score(self, pair: ClipPair) -> dict[str, float]:
        g = pair.generated
        env = audio_envelope(pair.audio, pair.sample_rate, g.fps)
        opening = mouth_opening(g.landmarks)
        found = np.asarray(g.face_found, bool)
        if found.any() and not found.all():  # fill lost frames by interpolation so gaps do not correlate
            t = np.arange(len(opening))
            opening = np.interp(t, t[found], opening[found])
        try:
            offset, peak, _ = xcorr_offset(env, opening)
        except ValueError:
            return {"av_xcorr_offset": math.nan, "av_xcorr_abs_offset": math.nan, "av_xcorr_peak": math.nan}
        return {"av_xcorr_offset": float(offset), "av_xcorr_abs_offset": float(abs(offset)),
                "av_xcorr_peak": peak}
