"""Codec normalisation: every scored video, ground truth included, re-encoded with ONE recorded setting.

Sync and sharpness scores move with the codec alone (THEval measured SyncNet moving by 0.4-1.2 from codec
changes), so a submission encoded differently from the ground truth is judged partly on its encoder. A
task made with ``make-task --codec NAME`` re-encodes the submission's frames and every real video it is
compared with (ground truth, reference clip, identity clip) with the setting ``NAME`` before face
processing; the full setting (codec, options, library versions) is recorded in the run record.

Encoding runs in memory with PyAV (libx264, one thread so the bytes are reproducible).
"""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from talkbench.errors import ConfigError


@dataclass(frozen=True)
class CodecSetting:
    """One named re-encoding: encoder, its options, pixel format."""

    name: str
    codec: str
    options: dict[str, str] = field(default_factory=dict)
    pix_fmt: str = "yuv420p"

    def describe(self) -> str:
        """The recorded form: name, encoder, options, pixel format and the libraries that encode."""
        import av

        opts = " ".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        lavc = ".".join(str(v) for v in av.library_versions.get("libavcodec", ()))
        return f"{self.name}: {self.codec} {opts} pix_fmt={self.pix_fmt} threads=1 (PyAV {av.__version__}, libavcodec {lavc})"


#: the named settings a task may choose (``make-task --codec``)
CODECS: dict[str, CodecSetting] = {
    s.name: s for s in (
        CodecSetting("h264-crf23", "libx264", {"crf": "23", "preset": "medium"}),  # ffmpeg's x264 default
        CodecSetting("h264-crf18", "libx264", {"crf": "18", "preset": "medium"}),  # visually near-lossless
    )
}


def get_codec(name: str) -> CodecSetting:
    """The named setting; an unknown name is a one-line error listing the known ones."""
    if name not in CODECS:
        raise ConfigError(f"codec setting {name!r}: known: {', '.join(CODECS)}")
    return CODECS[name]


def reencode(frames: np.ndarray, fps: float, setting: CodecSetting) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB -> the same frames after one encode/decode with ``setting`` (same shape)."""
    import av

    frames = np.asarray(frames)
    t, h, w, _ = frames.shape
    padded = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge") if h % 2 or w % 2 else frames
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream(setting.codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = padded.shape[2], padded.shape[1], setting.pix_fmt
        stream.options = dict(setting.options)
        stream.codec_context.thread_count = 1
        for f in padded:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        out.mux(stream.encode(None))
    buf.seek(0)
    with av.open(buf, mode="r") as src:
        decoded = [fr.to_ndarray(format="rgb24") for fr in src.decode(video=0)]
    if len(decoded) != t:
        raise RuntimeError(f"{setting.name}: {len(decoded)} frames decoded from {t} encoded")
    return np.stack(decoded)[:, :h, :w]


#: real videos re-encoded once per process: (setting, frames digest) -> frames (scoring several
#: submissions on one task re-encodes each ground-truth clip once)
_CACHE: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
CACHE_CLIPS = 8


def reencode_cached(frames: np.ndarray, fps: float, setting: CodecSetting) -> np.ndarray:
    """:func:`reencode` for the real videos, keyed by the frames' digest (the last ``CACHE_CLIPS`` kept)."""
    key = (setting.name, hashlib.sha1(np.ascontiguousarray(frames).data).hexdigest())
    if key not in _CACHE:
        _CACHE[key] = reencode(frames, fps, setting)
        while len(_CACHE) > CACHE_CLIPS:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return _CACHE[key]
