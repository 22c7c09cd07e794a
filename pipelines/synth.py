"""A small synthetic talking-face corpus, generated offline and deterministically from a seed.

Why: the demo and the tests need talking faces with *known, real* lip sync and no download. One
timeline of phones drives both modalities:

- audio: source-filter synthesis at 16 kHz (a glottal pulse train at a speaker-specific f0 with jitter
  and shimmer, through cascaded formant resonators per vowel; noise for /s/ and the release bursts of
  /p b/; a voiced murmur for /m/; silence between words);
- video: a real portrait (``skimage.data.astronaut()``, shipped inside scikit-image) whose mouth is
  warped per frame by the phone active at that time (open vowel: jaw drop with a dark mouth cavity;
  spread: wider; round: narrower and protruded; bilabial closure: lips pressed together), with a small
  smooth head motion. Speakers differ by crop, mirror, colour and voice.

The mouth trajectory and the loudness envelope are both smoothed with zero-phase filters of the same
timeline, so the mouth opening correlates with the audio envelope at lag 0 (tests measure it with
MediaPipe on the written files). Every random draw comes from ``numpy.random.default_rng([seed,
speaker, clip])``, so a clip does not depend on how many others are generated.

Output: ``OUTPUT/<speaker>/<clip>.mp4`` (H.264 + AAC, 25 fps), ``<clip>.json`` (phones and words with
times, transcript, per-frame mouth parameters) and ``OUTPUT/corpus.json`` (seed, parameters, package
versions), written last as the completion marker.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from talkbench.errors import TalkbenchError
from talkbench.io import atomic_path, atomic_write, package_versions

log = logging.getLogger(__name__)

FPS = 25
SAMPLE_RATE = 16_000
FRAME_SIZE = 256

# --- the phone inventory -------------------------------------------------------------------------

#: phone -> mouth class (what the face does)
PHONE_CLASS = {
    "sil": "silence", "p": "closure", "b": "closure", "m": "closure", "s": "fricative",
    "a": "open", "e": "spread", "i": "spread", "o": "round", "u": "round",
}
VOWELS = ("a", "e", "i", "o", "u")
VOWEL_P = (0.3, 0.15, 0.2, 0.15, 0.2)
ONSETS = ("", "p", "b", "m", "s")
ONSET_P = (0.25, 0.2, 0.15, 0.2, 0.2)
#: phone -> (min, max) duration in seconds
DURATION = {"p": (0.06, 0.09), "b": (0.05, 0.08), "m": (0.06, 0.10), "s": (0.08, 0.13),
            "a": (0.13, 0.22), "e": (0.11, 0.19), "i": (0.11, 0.18), "o": (0.12, 0.20), "u": (0.11, 0.18)}
#: mouth target per phone: (inner-lip gap in source pixels of the 512² photo, width scale, protrusion)
MOUTH_TARGET = {
    "sil": (0.5, 1.0, 0.0), "p": (0.0, 0.97, 0.0), "b": (0.0, 0.97, 0.0), "m": (0.0, 0.97, 0.0),
    "s": (2.5, 1.08, 0.0), "a": (17.0, 0.97, 0.0), "e": (10.0, 1.12, 0.0), "i": (6.0, 1.22, 0.0),
    "o": (12.0, 0.82, 0.7), "u": (6.0, 0.72, 1.0),
}
#: vowel formants F1-F3 (Hz, Peterson & Barney 1952 adult male averages) and loudness
FORMANTS = {"a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (270, 2290, 3010),
            "o": (570, 840, 2410), "u": (300, 870, 2240), "m": (250, 1100, 2300)}
BANDWIDTHS = (80.0, 100.0, 140.0)
NEUTRAL_FORMANTS = (500, 1500, 2500)
#: voiced loudness per phone (open vowels are intrinsically louder: the envelope follows the jaw)
VOICE_GAIN = {"a": 1.0, "o": 0.8, "e": 0.75, "i": 0.55, "u": 0.5, "m": 0.15, "b": 0.05}
FRICATIVE_GAIN = 0.22
BURST_GAIN = {"p": 0.6, "b": 0.3}

# --- the face ------------------------------------------------------------------------------------

#: mouth geometry of skimage.data.astronaut() in its 512² pixels, read once from MediaPipe face-mesh
#: landmarks (13/14 inner lips, 61/291 corners, 152 chin): the photo is fixed, so constants are exact.
MOUTH = {"cx": 223.4, "cy": 146.6, "half_width": 21.6, "rest_gap": 7.0, "corner_lift": 6.5}
FACE_CENTRE = (224.0, 122.0)
#: mouth region that the warp may change (x0, y0, x1, y1) in source pixels; displacements vanish at its edge
MOUTH_ROI = (163, 104, 284, 240)
CAVITY_RGB = np.array([48.0, 14.0, 18.0], dtype=np.float32)


@dataclass(frozen=True)
class SpeakerLook:
    """What makes one synthetic speaker look and sound different from another."""

    name: str
    crop: float  # side of the square crop in source pixels
    centre: tuple[float, float]
    flip: bool
    aspect: float  # face width / height stretch: a slimmer or broader face
    hue_shift: float  # degrees
    saturation: float
    brightness: float
    f0: float  # Hz
    formant_scale: float


@dataclass
class SynthClip:
    """One generated clip in memory."""

    speaker: str
    name: str
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    audio: np.ndarray  # float32 mono at SAMPLE_RATE
    phones: list[tuple[float, float, str]]
    words: list[tuple[float, float, str]]
    mouth_gap: np.ndarray  # per-frame inner-lip gap driven into the face, output pixels
    mouth_width: np.ndarray  # per-frame width scale

    @property
    def transcript(self) -> str:
        return " ".join(w for _, _, w in self.words if w != "sil")


def speaker_look(seed: int, index: int) -> SpeakerLook:
    rng = np.random.default_rng([seed, index, 0x5EED])
    return SpeakerLook(
        name=f"spk{index:02d}",
        crop=float(rng.uniform(200, 250)),
        centre=(FACE_CENTRE[0] + float(rng.uniform(-8, 8)), FACE_CENTRE[1] + float(rng.uniform(-6, 6))),
        flip=bool(rng.random() < 0.5),
        aspect=float(rng.uniform(0.9, 1.1)),
        hue_shift=float(rng.uniform(-12, 12)),
        saturation=float(rng.uniform(0.75, 1.2)),
        brightness=float(rng.uniform(0.85, 1.12)),
        f0=float(rng.uniform(95, 230)),
        formant_scale=float(rng.uniform(0.95, 1.15)),
    )


# --- timeline ------------------------------------------------------------------------------------


def phone_timeline(rng: np.random.Generator, duration_s: float
                   ) -> tuple[list[tuple[float, float, str]], list[tuple[float, float, str]]]:
    """Random pseudo-words of CV syllables separated by silences: (phones, words), times in seconds."""
    phones: list[tuple[float, float, str]] = []
    words: list[tuple[float, float, str]] = []
    t = float(rng.uniform(0.15, 0.35))
    end_limit = duration_s - 0.2
    while True:
        word_phones = []
        for _ in range(int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))):
            onset = str(rng.choice(ONSETS, p=ONSET_P))
            if onset:
                word_phones.append(onset)
            word_phones.append(str(rng.choice(VOWELS, p=VOWEL_P)))
        durations = [float(rng.uniform(*DURATION[p])) for p in word_phones]
        if t + sum(durations) > end_limit:
            if words:
                break
            word_phones, durations = word_phones[-1:], durations[-1:]  # every clip says something
        start = t
        for p, d in zip(word_phones, durations, strict=True):
            phones.append((t, t + d, p))
            t += d
        words.append((start, t, "".join(word_phones)))
        t += float(rng.uniform(0.08, 0.30))
    # silences fill every gap so phones and words tile [0, duration]
    return _with_silences(phones, duration_s), _with_silences(words, duration_s)


def _with_silences(items: list[tuple[float, float, str]], duration_s: float) -> list[tuple[float, float, str]]:
    out: list[tuple[float, float, str]] = []
    t = 0.0
    for start, end, label in items:
        if start > t:
            out.append((t, start, "sil"))
        out.append((start, end, label))
        t = end
    if t < duration_s:
        out.append((t, duration_s, "sil"))
    return [(round(s, 5), round(e, 5), w) for s, e, w in out]


def _per_sample(phones: list[tuple[float, float, str]], n: int, rate: float, values: dict[str, Any],
                default: Any) -> np.ndarray:
    """A piecewise-constant track: ``values[phone]`` over each phone's samples."""
    first = np.asarray(default, dtype=np.float64)
    track = np.broadcast_to(first, (n, *first.shape)).copy()
    for start, end, p in phones:
        a, b = int(round(start * rate)), int(round(end * rate))
        track[a:b] = values.get(p, default)
    return track


# --- audio ---------------------------------------------------------------------------------------


def _formant_filter(signal: np.ndarray, formants: np.ndarray, block: int = 160) -> np.ndarray:
    """Three cascaded 2-pole resonators (Klatt 1980) whose centres follow ``formants`` (n, 3).

    Coefficients are updated every ``block`` samples (10 ms; the formant tracks are smoothed over
    12 ms) and the three resonators run as one 6th-order filter per block, carrying its state.
    """
    from scipy.signal import lfilter

    out = np.empty_like(signal)
    zi = np.zeros(6)
    radius = np.exp(-np.pi * np.asarray(BANDWIDTHS) / SAMPLE_RATE)
    for a in range(0, len(signal), block):
        freqs = formants[min(a + block // 2, len(formants) - 1)]
        b1 = 2 * radius * np.cos(2 * np.pi * freqs / SAMPLE_RATE)
        c = -radius**2
        den = np.array([1.0])
        for k in range(3):
            den = np.convolve(den, [1.0, -b1[k], -c[k]])
        gain = float(np.prod(1.0 - b1 - c))  # unity gain at DC
        out[a:a + block], zi = lfilter([gain], den, signal[a:a + block], zi=zi)
    return out


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Zero-phase Gaussian smoothing along axis 0 (edges held), by FFT: the kernels here are long
    (hundreds of samples), where scipy.ndimage's direct convolution is ~10x slower."""
    from scipy.signal import fftconvolve

    radius = int(4 * sigma + 0.5)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel = (kernel / kernel.sum()).reshape(-1, *([1] * (x.ndim - 1)))
    padded = np.pad(x, [(radius, radius)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    return fftconvolve(padded, kernel, mode="valid", axes=0)


def _unit_rms(x: np.ndarray, sigma_s: float) -> np.ndarray:
    """``x`` divided by its local RMS, so a gain track alone sets the loudness."""
    power = _smooth(x * x, sigma_s * SAMPLE_RATE)
    return x / np.sqrt(np.maximum(power, 0.0) + 1e-12)


def synthesize_audio(rng: np.random.Generator, phones: list[tuple[float, float, str]], look: SpeakerLook,
                     duration_s: float) -> np.ndarray:
    from scipy.signal import butter, lfilter, sosfilt

    n = int(round(duration_s * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    # glottal source: impulses at a slowly falling, gently modulated f0, with jitter and shimmer
    f0 = look.f0 * (1.05 - 0.1 * t / duration_s) * (1 + 0.04 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6.3)))
    pulses = np.zeros(n)
    pos = 0.0
    while pos < n:
        pulses[int(pos)] = 1.0 + 0.05 * rng.standard_normal()
        pos += SAMPLE_RATE / f0[int(pos)] * (1 + 0.01 * rng.standard_normal())
    glottal = lfilter([1.0], [1.0, -1.9, 0.9025], pulses)  # -12 dB/octave glottal spectrum
    source = np.diff(glottal, prepend=0.0) + 0.02 * rng.standard_normal(n)  # lip radiation + breath

    formants = _per_sample(phones, n, SAMPLE_RATE, {p: f for p, f in FORMANTS.items()}, NEUTRAL_FORMANTS)
    formants = _smooth(formants * look.formant_scale, 0.012 * SAMPLE_RATE)
    voiced = _formant_filter(source, formants)
    voiced = _unit_rms(sosfilt(butter(2, 70, "highpass", fs=SAMPLE_RATE, output="sos"), voiced), 0.008)

    fric = sosfilt(butter(4, 3500, "highpass", fs=SAMPLE_RATE, output="sos"), rng.standard_normal(n))
    fric /= np.sqrt(np.mean(fric * fric))
    burst_noise = sosfilt(butter(2, [500, 6000], "bandpass", fs=SAMPLE_RATE, output="sos"), rng.standard_normal(n))
    burst_noise /= np.sqrt(np.mean(burst_noise * burst_noise))

    smooth = 0.005 * SAMPLE_RATE  # 5 ms ramps: no clicks at phone boundaries
    voice_gain = _smooth(_per_sample(phones, n, SAMPLE_RATE, VOICE_GAIN, 0.0), smooth)
    fric_gain = _smooth(_per_sample(phones, n, SAMPLE_RATE, {"s": FRICATIVE_GAIN}, 0.0), smooth)
    burst_gain = np.zeros(n)
    for _, end, p in phones:
        if p in BURST_GAIN:  # the release at the end of the closure
            a = int(round(end * SAMPLE_RATE))
            m = min(n - a, int(0.02 * SAMPLE_RATE))
            burst_gain[a:a + m] = BURST_GAIN[p] * np.exp(-np.arange(m) / (0.005 * SAMPLE_RATE))
    audio = voice_gain * voiced + fric_gain * fric + burst_gain * burst_noise
    audio = 0.15 * audio + 1e-4 * rng.standard_normal(n)  # a faint noise floor, like a quiet room
    peak = float(np.max(np.abs(audio)))
    if peak > 0.95:
        audio *= 0.95 / peak
    return audio.astype(np.float32)


# --- video ---------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _portrait() -> np.ndarray:
    from skimage.data import astronaut

    return np.ascontiguousarray(astronaut()[..., :3])


@lru_cache(maxsize=4)
def _coloured(look: SpeakerLook) -> np.ndarray:
    """The portrait with this speaker's hue, saturation and brightness (applied once per speaker)."""
    import cv2

    hsv = cv2.cvtColor(_portrait(), cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + look.hue_shift * 256 / 360) % 256
    hsv[..., 1] = np.clip(hsv[..., 1] * look.saturation, 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] * look.brightness, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB_FULL)


def _mouth_tracks(phones: list[tuple[float, float, str]], n_frames: int) -> np.ndarray:
    """Per-frame (gap, width, protrusion): phone targets on a 1 ms grid, zero-phase smoothed
    (coarticulation), then averaged over each frame's 40 ms — the same interval the audio covers."""
    rate = 1000
    n = n_frames * rate // FPS
    track = _smooth(_per_sample(phones, n, rate, MOUTH_TARGET, MOUTH_TARGET["sil"]), 0.02 * rate)
    return track.reshape(n_frames, rate // FPS, 3).mean(axis=1)


def _lip_line(dx: np.ndarray) -> np.ndarray:
    """y of the line between the lips (the smile lifts the corners), relative to the mouth centre."""
    u = np.clip(dx / MOUTH["half_width"], -1.2, 1.2)
    return -MOUTH["corner_lift"] * u * u


class MouthWarper:
    """Re-draws the mouth region of the portrait for a (gap, width, protrusion) target."""

    def __init__(self) -> None:
        x0, y0, x1, y1 = MOUTH_ROI
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        self.dx = xs - MOUTH["cx"]
        self.dy = ys - MOUTH["cy"] - _lip_line(self.dx)
        self.offset = (x0, y0)
        hw = MOUTH["half_width"]
        self.near_lips = np.exp(-(self.dy / 14.0) ** 4)  # where widening and protrusion act
        self.widen_window = np.exp(-(self.dx / (1.5 * hw)) ** 4) * self.near_lips
        self.dx_norm2 = (self.dx / hw) ** 2

    def __call__(self, roi: np.ndarray, gap: float, width: float, protrusion: float) -> np.ndarray:
        import cv2

        dx, dy = self.dx, self.dy
        lens = np.sqrt(np.clip(1 - self.dx_norm2 / width**2, 0, 1))  # mouth opening profile
        delta = gap - MOUTH["rest_gap"]
        # opening: the jaw (lower lip) moves most; closing: both lips meet in the middle
        up, low = (0.3 * delta, 0.7 * delta) if delta >= 0 else (0.5 * delta, 0.5 * delta)
        top, bottom = -max(up, 0.0) * lens, max(low, 0.0) * lens  # the cavity between the lips
        t_up, t_low = -dy + top, dy - bottom
        src_dy = np.where(dy < top if delta >= 0 else dy < 0,
                          dy + up * lens * np.exp(-(t_up / 10.0) ** 2),
                          dy - low * lens * np.exp(-(t_low / 34.0) ** 2))
        src_dy = src_dy * (1 - 0.12 * protrusion * self.near_lips)  # protruded lips look thicker
        src_dx = dx * (1 - (1 - 1 / width) * self.widen_window)
        map_x = (src_dx + MOUTH["cx"] - self.offset[0]).astype(np.float32)
        map_y = (src_dy + MOUTH["cy"] + _lip_line(src_dx) - self.offset[1]).astype(np.float32)
        out = cv2.remap(roi, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if delta > 0:
            alpha = np.clip(np.minimum(dy - top, bottom - dy), 0, 1)[..., None]
            out = (out * (1 - alpha) + CAVITY_RGB * alpha).astype(np.uint8)
        return out


def _head_motion(rng: np.random.Generator, n_frames: int) -> np.ndarray:
    """Smooth small head motion per frame: (rotation degrees, shift x, shift y, scale)."""
    t = np.arange(n_frames) / FPS
    motion = np.zeros((n_frames, 4))
    for k, amp in enumerate((2.5, 3.0, 2.0, 0.02)):
        for _ in range(2):
            freq, phase = rng.uniform(0.1, 0.6), rng.uniform(0, 2 * np.pi)
            motion[:, k] += amp / 2 * np.sin(2 * np.pi * freq * t + phase)
    motion[:, 3] += 1.0
    return motion


def _frame_matrix(look: SpeakerLook, rot: float, sx: float, sy: float, scale: float) -> np.ndarray:
    """2x3 affine from portrait pixels to output pixels: crop, scale, head motion, face width, mirror."""
    import cv2

    m = cv2.getRotationMatrix2D(look.centre, rot, scale * FRAME_SIZE / look.crop)
    m[:, 2] += np.array([FRAME_SIZE / 2 + sx, FRAME_SIZE / 2 + sy]) - np.array(look.centre)
    half = FRAME_SIZE / 2
    post = np.array([[look.aspect, 0.0, half * (1 - look.aspect)], [0.0, 1.0, 0.0]])  # about the centre
    if look.flip:
        post = np.array([[-1.0, 0.0, FRAME_SIZE - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([post, [0, 0, 1]])
    return post @ np.vstack([m, [0, 0, 1]])


def render_frames(look: SpeakerLook, tracks: np.ndarray, motion: np.ndarray) -> np.ndarray:
    import cv2

    base = _coloured(look)
    warper = MouthWarper()
    x0, y0, x1, y1 = MOUTH_ROI
    roi = np.ascontiguousarray(base[y0:y1, x0:x1])
    frames = np.empty((len(tracks), FRAME_SIZE, FRAME_SIZE, 3), dtype=np.uint8)
    image = base.copy()
    for i, ((gap, width, protrusion), (rot, sx, sy, scale)) in enumerate(zip(tracks, motion, strict=True)):
        image[y0:y1, x0:x1] = warper(roi, gap, width, protrusion)
        frames[i] = cv2.warpAffine(image, _frame_matrix(look, rot, sx, sy, scale), (FRAME_SIZE, FRAME_SIZE),
                                   flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return frames


# --- clips and the corpus ------------------------------------------------------------------------


def synthesize_clip(seed: int, speaker: int, clip: int, duration_s: float = 3.0) -> SynthClip:
    """Clip ``clip`` of speaker ``speaker``: identical for identical arguments.

    The duration is rounded to whole frames so audio and video end together.
    """
    look = speaker_look(seed, speaker)
    rng = np.random.default_rng([seed, speaker, clip])
    n_frames = int(round(duration_s * FPS))
    duration_s = n_frames / FPS
    phones, words = phone_timeline(rng, duration_s)
    audio = synthesize_audio(rng, phones, look, duration_s)
    tracks = _mouth_tracks(phones, n_frames)
    frames = render_frames(look, tracks, _head_motion(rng, n_frames))
    scale = FRAME_SIZE / look.crop
    return SynthClip(speaker=look.name, name=f"clip{clip:03d}", frames=frames, audio=audio, phones=phones,
                     words=words, mouth_gap=(tracks[:, 0] * scale).astype(np.float32),
                     mouth_width=tracks[:, 1].astype(np.float32))


def _versions() -> dict[str, str]:
    dists = ("talkbench", "numpy", "scipy", "scikit-image", "opencv-contrib-python", "av")
    return {k: v or "unknown" for k, v in package_versions(dists).items()}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def write_clip(output: Path, clip: SynthClip, seed: int) -> Path:
    """``<speaker>/<clip>.mp4`` then its ``.json``, each written under a temporary name first."""
    from talkbench.media import write_video

    folder = output / clip.speaker
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / f"{clip.name}.mp4"
    with atomic_path(video) as tmp:
        write_video(tmp, clip.frames, fps=FPS, audio=clip.audio, sample_rate=SAMPLE_RATE)
    _write_json(folder / f"{clip.name}.json", {
        "speaker": clip.speaker, "clip": clip.name, "seed": seed, "fps": FPS, "sample_rate": SAMPLE_RATE,
        "n_frames": len(clip.frames), "transcript": clip.transcript,
        "phones": [[s, e, p, PHONE_CLASS[p]] for s, e, p in clip.phones],
        "words": [list(w) for w in clip.words],
        "mouth_gap_px": [round(float(v), 3) for v in clip.mouth_gap],
        "mouth_width": [round(float(v), 4) for v in clip.mouth_width],
    })
    return video


def generate_corpus(output: str | Path, speakers: int = 3, clips_per_speaker: int = 4, seed: int = 0,
                    duration_s: float = 3.0) -> dict[str, Any]:
    """Write the corpus under ``output``; returns the content of ``corpus.json``."""
    if speakers < 1 or clips_per_speaker < 1:
        raise TalkbenchError(f"synth: need at least one speaker and one clip, got {speakers} x {clips_per_speaker}")
    if not 1.0 <= duration_s <= 60.0:
        raise TalkbenchError(f"synth: duration must be between 1 and 60 seconds, got {duration_s}")
    output = Path(output)
    t0 = time.perf_counter()
    output.mkdir(parents=True, exist_ok=True)
    marker = output / "corpus.json"
    marker.unlink(missing_ok=True)  # an interrupted run must not look complete
    clips = []
    for s in range(speakers):
        for c in range(clips_per_speaker):
            clip = synthesize_clip(seed, s, c, duration_s)
            clips.append(write_clip(output, clip, seed).relative_to(output).as_posix())
    corpus = {
        "generator": "talkbench.pipelines.synth",
        "seed": seed,
        "params": {"speakers": speakers, "clips_per_speaker": clips_per_speaker, "duration_s": duration_s,
                   "fps": FPS, "sample_rate": SAMPLE_RATE, "frame_size": FRAME_SIZE,
                   "face": "skimage.data.astronaut()"},
        "speakers": [speaker_look(seed, s).__dict__ for s in range(speakers)],
        "clips": clips,
        "versions": _versions(),
    }
    _write_json(marker, corpus)
    log.info("synth: wrote %d clips (%d speakers x %d, %.1f s each) to %s in %.1f s", len(clips), speakers,
             clips_per_speaker, duration_s, output, time.perf_counter() - t0)
    return corpus
