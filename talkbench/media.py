"""Video and audio files in and out, with PyAV (the FFmpeg libraries, no ffmpeg binary needed).

Shared by the pipeline (decode stage, synthetic corpus), the benchmark (submissions) and generation.
Reading returns constant-fps upright RGB frames and mono float audio on one timeline; bad files raise
:class:`talkbench.errors.ClipError` with a stable ``kind`` (see ``talkbench.schema.ERROR_KINDS``).
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from talkbench.errors import ClipError


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float = 25.0,
    audio: np.ndarray | None = None,
    sample_rate: int = 16_000,
    crf: int = 18,
) -> Path:
    """Write (T, H, W, 3) uint8 RGB frames as H.264/yuv420p MP4, with mono float audio as AAC.

    Odd frame sizes are padded by one pixel (yuv420p needs even sizes).
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        h, w = frames.shape[1:3]
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        vstream = container.add_stream("libx264", rate=rate)
        vstream.width, vstream.height, vstream.pix_fmt = w, h, "yuv420p"
        vstream.options = {"crf": str(crf), "preset": "veryfast"}
        astream = None
        if audio is not None:
            astream = container.add_stream("aac", rate=sample_rate)
            astream.layout = "mono"
        for i in range(t):
            frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24")
            container.mux(vstream.encode(frame))
        container.mux(vstream.encode(None))
        if astream is not None:
            pcm = np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)
            chunk = 1024
            for start in range(0, len(pcm), chunk):
                block = pcm[start : start + chunk][None, :]
                aframe = av.AudioFrame.from_ndarray(block, format="flt", layout="mono")
                aframe.sample_rate = sample_rate
                aframe.pts = start
                container.mux(astream.encode(aframe))
            container.mux(astream.encode(None))
    return path


# ---------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------

#: First bytes of containers we recognise. A file that starts like one of these but that FFmpeg cannot
#: open is reported as ``truncated`` (header present, body cut or corrupt), anything else as
#: ``not_video``. (offset, magic) pairs; FFmpeg's own probe does not tell the two cases apart.
_CONTAINER_MAGIC: tuple[tuple[int, bytes], ...] = (
    (4, b"ftyp"),  # ISO BMFF: mp4, mov, m4a, 3gp
    (4, b"moov"),
    (4, b"mdat"),
    (4, b"free"),
    (4, b"wide"),
    (0, b"\x00\x00\x01\xba"),  # MPEG program stream
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM
    (0, b"RIFF"),  # AVI, WAV
    (0, b"FLV"),
    (0, b"OggS"),
)


@dataclass
class DecodedAV:
    """A decoded clip: constant-fps upright RGB frames and mono float audio on one timeline.

    Time 0 is the presentation time of the first video frame; ``audio[0]`` is the sound at that instant
    (audio that starts earlier is dropped, audio that starts later is preceded by zeros; the shift is
    ``info["audio_offset_s"]``). The audio is *not* trimmed to the video: ``info["av_diff_s"]`` says by
    how much the lengths differ.
    """

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB, upright
    timestamps_s: np.ndarray  # (T,) float64, i / fps
    audio: np.ndarray | None  # (N,) float32 mono at sample_rate, None when the file has no audio
    fps: float
    sample_rate: int
    #: (T,) int: index of the source frame (in presentation order) shown as output frame i
    source_index: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps


def read_av(
    path: str | Path,
    fps: float = 25.0,
    sample_rate: int = 16_000,
    max_frames: int | None = None,
    threads: int = 0,
    max_duration_s: float | None = None,
    max_pixels: int | None = None,
) -> DecodedAV:
    """Decode a video file to constant-fps RGB frames and 16 kHz mono audio in one demux pass.

    Video is resampled *by timestamps*: output frame i shows the source frame on screen at time i/fps,
    i.e. the last source frame whose presentation time is <= i/fps (exact rational arithmetic, so a
    25 fps source maps 1:1). Variable-frame-rate sources therefore repeat or drop frames where a player
    would. The clip lasts as long as the source video (last frame's time + its duration); the output
    keeps floor(duration * fps) frames, so it never runs past the source's end and is at most one frame
    shorter. ``max_frames`` stops decoding pictures early (packets are still read to measure the source
    duration). ``threads`` is the decoder thread count (0: FFmpeg chooses).

    Rotation metadata (display matrix, or the legacy ``rotate`` tag) is applied, so frames are
    upright; ``info["rotation"]`` is the clockwise rotation applied, in degrees (0, 90, 180, 270).

    Bounded work: ``max_duration_s`` (the clip's length) and ``max_pixels`` (output frames x width x
    height, i.e. a third of the RGB bytes) are checked on the container's declared duration BEFORE any
    frame is decoded (``too_long`` / ``too_large``), and again while decoding, so a file whose header
    lies (or declares nothing) still stops at the cap. A frame gap of hours in the timestamps counts.

    Raises :class:`ClipError` with kind ``file_missing``, ``not_a_file`` (directory, FIFO, device),
    ``permission_denied``, ``empty_file``, ``not_video`` (also a still image such as a PNG named
    .mp4), ``truncated``, ``bad_frame_size``, ``too_long`` or ``too_large``. The ``truncated`` rule: the file's header is recognisable but
    FFmpeg cannot open it, or the demuxer/decoder reports an error, or the container declares a frame
    count and clearly fewer frames decode, or no frame decodes at all. A stream that simply ends early
    with nothing declaring its length (e.g. an MPEG-PS cut in half, whose duration FFmpeg estimates
    from the last timestamps present) cannot be told from a short clip: it decodes to the frames that
    are there, and ``source_duration_s``, ``n_source_frames`` and ``av_diff_s`` record what was found.
    """
    import av

    path = Path(path)
    container = _open(path)
    try:
        return _decode(container, path, Fraction(fps).limit_denominator(1001), sample_rate, max_frames, threads,
                       max_duration_s, max_pixels)
    except av.error.FFmpegError as e:
        raise ClipError("truncated", f"{path}: decoding failed: {e}") from None
    finally:
        container.close()


def read_audio(path: str | Path, sample_rate: int = 16_000) -> np.ndarray:
    """Decode the first audio stream of any file PyAV opens (wav, mp3, mp4, mpg ...) to mono float32.

    Channels are averaged (like ``librosa.to_mono``) rather than down-mixed by swresample, whose
    float stereo-to-mono matrix sums at 0.707 each and can exceed [-1, 1].
    """
    import av

    path = Path(path)
    container = _open(path)
    try:
        if not container.streams.audio:
            raise ClipError("no_audio", f"{path}: no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout=None, rate=sample_rate)
        chunks: list[np.ndarray] = []
        for frame in container.decode(stream):
            chunks.extend(_to_mono(f) for f in resampler.resample(frame))
        chunks.extend(_to_mono(f) for f in resampler.resample(None))
    except av.error.FFmpegError as e:
        raise ClipError("truncated", f"{path}: decoding audio failed: {e}") from None
    finally:
        container.close()
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def _open(path: Path) -> Any:
    """av.open with the file-level checks mapped to stable error kinds.

    The file type is checked with ``stat`` before anything opens it: a FIFO would block the worker
    forever and ``/dev/zero`` would never end, so neither reaches FFmpeg.
    """
    import av

    head = check_readable_file(path)
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as e:
        if any(head[off : off + len(magic)] == magic for off, magic in _CONTAINER_MAGIC):
            raise ClipError("truncated", f"{path}: a media container that FFmpeg cannot open ({e})") from None
        raise ClipError("not_video", f"{path}: not a media file FFmpeg can open ({e})") from None
    except OSError as e:
        raise ClipError("not_video", f"{path}: cannot be read ({e})") from None


def check_readable_file(path: str | Path) -> bytes:
    """A regular, non-empty, readable file (links followed): its first 16 bytes, else a ClipError."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        kind = "a dangling link" if os.path.islink(path) else "no such file"
        raise ClipError("file_missing", f"{path}: {kind}") from None
    except PermissionError as e:
        raise ClipError("permission_denied", f"{path}: cannot be read ({e.strerror})") from None
    except OSError as e:  # a name too long, a link loop...
        raise ClipError("not_a_file", f"{path}: cannot be examined ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        what = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise ClipError("not_a_file", f"{path}: is {what}, not a regular file")
    if st.st_size == 0:
        raise ClipError("empty_file", f"{path}: the file is empty (0 bytes)")
    try:
        with open(path, "rb") as f:
            return f.read(16)
    except PermissionError as e:
        raise ClipError("permission_denied", f"{path}: cannot be read ({e.strerror})") from None
    except OSError as e:
        raise ClipError("not_a_file", f"{path}: cannot be read ({e.strerror})") from None


class StillImageError(ClipError):
    """``not_video`` for a still image named like a video (FFmpeg would decode it as one frame)."""


#: FFmpeg demuxers of single still images: a PNG named clip.mp4 opens as one frame of "video"
_IMAGE_FORMATS = ("image2",)


def _is_still_image(container: Any) -> bool:
    name = str(getattr(container.format, "name", "") or "")
    return name.endswith("_pipe") or name in _IMAGE_FORMATS


def _to_mono(frame: Any) -> np.ndarray:
    """(channels, n) planar float frame -> (n,) float32 channel mean."""
    data = frame.to_ndarray()
    return data.mean(axis=0, dtype=np.float32) if data.shape[0] > 1 else data[0].astype(np.float32)


def _decode(container: Any, path: Path, fps: Fraction, sample_rate: int, max_frames: int | None,
            threads: int, max_duration_s: float | None = None, max_pixels: int | None = None) -> DecodedAV:
    import av

    if _is_still_image(container):
        raise StillImageError("not_video", f"{path}: a still image ({container.format.name}), not a video")
    # cover art in audio files is a "video" stream of one still picture: not a video
    videos = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not videos:
        raise ClipError("not_video", f"{path}: no video stream")
    vstream = videos[0]
    width, height = vstream.codec_context.width, vstream.codec_context.height
    if not width or not height:
        raise ClipError("bad_frame_size", f"{path}: video frame size is {width}x{height}")
    cap, cap_error = _check_bounds(container, vstream, path, fps, width * height, max_frames, max_duration_s,
                                   max_pixels)
    vstream.thread_type = "AUTO"
    vstream.codec_context.thread_count = threads
    astream = container.streams.audio[0] if container.streams.audio else None
    resampler = av.AudioResampler(format="fltp", layout=None, rate=sample_rate) if astream else None
    limit = max_frames if max_frames is not None else 1 << 62
    tb = vstream.time_base or Fraction(1, 90_000)
    default_step = 1 / Fraction(vstream.guessed_rate or vstream.average_rate or fps)
    # one reformatter (swscale context) for the whole clip: frame.to_ndarray(format=...) builds a new
    # one per frame, which costs more than decoding (~800 vs ~2,600 frames/s on GRID)
    reformatter = av.video.reformatter.VideoReformatter()

    picked: list[np.ndarray] = []  # one array per output frame (repeats share the array)
    source_index: list[int] = []
    origin: Fraction | None = None  # pts of the first video frame, the timeline's zero
    prev: Any = None
    prev_array: np.ndarray | None = None
    prev_t = Fraction(0)
    end_t = Fraction(0)  # end of the last video frame, relative to origin
    n_source = 0  # source frames decoded
    n_packets = 0  # video packets with data: the source frame count when decoding stops early
    rotation_ccw = 0
    audio_chunks: list[np.ndarray] = []
    audio_start: Fraction | None = None

    def emit_until(t_next: Fraction) -> None:
        """Show ``prev`` for every output instant before the next source frame appears at t_next."""
        nonlocal prev_array
        while len(picked) < limit and len(picked) / fps < t_next:
            if len(picked) >= cap:  # the header said less (or nothing): stop at the cap, not after
                raise cap_error
            if prev_array is None:
                prev_array = reformatter.reformat(prev, format="rgb24").to_ndarray()
            picked.append(prev_array)
            source_index.append(n_source - 1)

    streams = [vstream] + ([astream] if astream else [])
    for packet in container.demux(*streams):
        if packet.stream.type == "audio":
            for frame in packet.decode():
                if audio_start is None and frame.pts is not None:
                    audio_start = Fraction(frame.pts) * frame.time_base
                audio_chunks.extend(_to_mono(f) for f in resampler.resample(frame))
            continue
        n_packets += 1 if packet.size else 0
        if len(picked) >= limit:  # enough pictures: only measure where the video ends
            if packet.pts is not None and origin is not None:
                end_t = max(end_t, (packet.pts + (packet.duration or 0)) * tb - origin)
            continue
        for frame in packet.decode():
            if frame.pts is None:
                t = prev_t + default_step if prev is not None else Fraction(0)
            else:
                t = Fraction(frame.pts) * tb
                if origin is None:
                    origin = t
                t -= origin
            if prev is None:
                rotation_ccw = _frame_rotation(frame, vstream)
            else:
                emit_until(t)
            step = Fraction(frame.duration) * tb if frame.duration else (t - prev_t if prev else default_step)
            prev, prev_array, prev_t, n_source = frame, None, t, n_source + 1
            end_t = max(end_t, t + step)
    if resampler is not None:
        audio_chunks.extend(_to_mono(f) for f in resampler.resample(None))
    if prev is None:
        raise ClipError("truncated", f"{path}: no video frame could be decoded")
    declared = int(vstream.frames or 0)
    if max_frames is None and declared and n_source + max(2, declared // 50) < declared:
        raise ClipError("truncated", f"{path}: {n_source} of the {declared} frames the container declares")

    if len(picked) >= limit:
        n_source = max(n_source, n_packets)
    n_out = min(int(end_t * fps + Fraction(1, 1000)), limit)  # floor, tolerant of rounding in the pts
    n_out = max(n_out, 1)
    emit_until(Fraction(n_out) / fps)
    frames = np.stack(picked[:n_out])
    rotation_cw = (-rotation_ccw) % 360
    if rotation_cw:
        frames = np.ascontiguousarray(np.rot90(frames, k=-rotation_cw // 90, axes=(1, 2)))

    audio = None
    audio_offset = 0.0
    if astream is not None:
        audio = np.concatenate(audio_chunks) if audio_chunks else np.zeros(0, np.float32)
        av_diff = len(audio) / sample_rate - float(end_t)
        if audio_start is not None and origin is not None:
            audio_offset = float(audio_start - origin)
            shift = round(audio_offset * sample_rate)
            audio = np.concatenate([np.zeros(shift, np.float32), audio]) if shift > 0 else audio[-shift:]
    info = {
        "source_fps": n_source / float(end_t) if end_t > 0 else float(fps),
        "source_duration_s": float(end_t),
        "source_width": int(width),
        "source_height": int(height),
        "rotation": rotation_cw,
        "av_diff_s": av_diff if astream is not None else None,
        "audio_offset_s": audio_offset,
        "n_source_frames": n_source,
        "source_audio_rate": int(astream.codec_context.sample_rate) if astream else None,
        "source_audio_channels": int(astream.codec_context.channels) if astream else None,
    }
    return DecodedAV(
        frames=frames,
        timestamps_s=np.arange(n_out, dtype=np.float64) / float(fps),
        audio=audio,
        fps=float(fps),
        sample_rate=sample_rate,
        source_index=np.asarray(source_index[:n_out], dtype=np.int64),
        info=info,
    )


def _check_bounds(container: Any, vstream: Any, path: Path, fps: Fraction, frame_pixels: int,
                  max_frames: int | None, max_duration_s: float | None,
                  max_pixels: int | None) -> tuple[float, ClipError]:
    """Refuse, before decoding, a clip whose declared length or size exceeds the caps.

    Returns the output-frame cap to enforce while decoding and the error to raise at it.
    """
    declared = [float(container.duration) / 1e6 if container.duration else 0.0]
    if vstream.duration and vstream.time_base:
        declared.append(float(vstream.duration * vstream.time_base))
    duration = max(declared)
    if max_duration_s is not None and duration > max_duration_s:
        raise ClipError("too_long", f"{path}: the container declares {duration:.0f} s, above "
                        f"max_duration_s={max_duration_s:g} (nothing decoded)")
    caps: list[tuple[float, ClipError]] = [(math.inf, ClipError("internal", "no cap"))]
    if max_duration_s is not None:
        caps.append((max_duration_s * float(fps), ClipError(
            "too_long", f"{path}: the video runs past max_duration_s={max_duration_s:g} (decoding stopped there)")))
    if max_pixels is not None:
        n_frames = math.ceil(duration * float(fps))
        if max_frames is not None:
            n_frames = min(n_frames, max_frames)
        if n_frames * frame_pixels > max_pixels:
            raise ClipError("too_large", f"{path}: {n_frames} frames x {frame_pixels} pixels = "
                            f"{n_frames * frame_pixels:.3g} pixels, above max_pixels={max_pixels:.3g} "
                            "(nothing decoded)")
        caps.append((max_pixels / max(frame_pixels, 1), ClipError(
            "too_large", f"{path}: decoded frames of {frame_pixels} pixels run past max_pixels={max_pixels:.3g} "
            "(decoding stopped there)")))
    return min(caps, key=lambda c: c[0])


def _frame_rotation(frame: Any, stream: Any) -> int:
    """Counter-clockwise display rotation in degrees, snapped to a multiple of 90.

    The display matrix (what FFmpeg exports for mp4/mov) wins; the legacy ``rotate`` stream tag
    (clockwise degrees, any case: Matroska keeps it as ``ROTATE``) is the fallback. Flips in the
    matrix are not applied.
    """
    ccw = float(getattr(frame, "rotation", 0) or 0)
    if not ccw:
        tags = {k.lower(): v for k, v in (stream.metadata or {}).items()}
        try:
            ccw = -float(tags.get("rotate", 0))
        except (TypeError, ValueError):
            ccw = 0.0
    return int(round(ccw / 90.0)) * 90 % 360
