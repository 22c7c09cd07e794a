"""Stage 1: probe and decode with PyAV; video to constant fps by timestamps, audio to 16 kHz mono.

The reading itself lives in :func:`talkbench.media.read_av` (shared with the benchmark); this stage
applies the corpus rules: minimum duration and frame size, audio required or not, and the audio cut or
zero-padded to exactly the video's length *after* the mismatch is recorded in ``av_diff_s``.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from talkbench.config import StrictModel
from talkbench.errors import ClipError
from talkbench.pipelines.core import Clip, WorkerContext, register_stage


class DecodeConfig(StrictModel):
    fps: float = Field(25.0, gt=0, description="output frame rate; frames are picked by timestamp")
    sample_rate: int = Field(16_000, gt=0, description="output audio rate (mono)")
    min_duration_s: float = Field(1.0, ge=0, description="shorter clips fail with too_short")
    require_audio: bool = Field(True, description="a clip without an audio stream fails with no_audio")
    max_frames: int | None = Field(None, ge=1, description="keep at most this many frames (the start)")
    min_side_px: int = Field(32, ge=1, description="smaller frames fail with bad_frame_size")
    threads: int = Field(0, ge=0, description="decoder threads per clip; 0 lets FFmpeg choose")
    max_duration_s: float = Field(900.0, gt=0, description="longer clips fail with too_long, checked on the "
                                  "container's declared duration before decoding and again while decoding")
    max_pixels: int = Field(2_000_000_000, ge=1, description="output frames x width x height above this fail "
                            "with too_large before decoding (2e9 = 6 GB of RGB frames, one clip in memory)")


#: clip.info keys this stage fills (all are columns of talkbench.schema.CLIPS_SCHEMA)
INFO_KEYS = ("source_fps", "source_duration_s", "source_width", "source_height", "rotation", "av_diff_s")


@register_stage("decode", DecodeConfig)
def decode(clip: Clip, cfg: DecodeConfig, ctx: WorkerContext) -> Clip:
    from talkbench.media import read_av

    path = clip.record.path
    dec = read_av(path, fps=cfg.fps, sample_rate=cfg.sample_rate, max_frames=cfg.max_frames,
                  threads=cfg.threads, max_duration_s=cfg.max_duration_s, max_pixels=cfg.max_pixels)
    height, width = dec.frames.shape[1:3]
    if min(height, width) < cfg.min_side_px:
        raise ClipError("bad_frame_size", f"{path}: frames are {width}x{height}, below min_side_px="
                        f"{cfg.min_side_px}")
    if dec.duration_s < cfg.min_duration_s:
        raise ClipError("too_short", f"{path}: {dec.duration_s:.2f} s of video, below min_duration_s="
                        f"{cfg.min_duration_s}")
    audio = dec.audio if dec.audio is not None and len(dec.audio) else None
    if audio is None and cfg.require_audio:
        raise ClipError("no_audio", f"{path}: no audio stream, or one without samples (set "
                        "decode.require_audio=false to keep video-only clips)")

    clip.video = dec.frames
    clip.fps = dec.fps
    clip.sample_rate = dec.sample_rate
    clip.audio = None if audio is None else fit_length(audio, dec.n_frames, dec.fps, dec.sample_rate)
    clip.info.update({k: dec.info[k] for k in INFO_KEYS})
    clip.info.update(
        duration_s=dec.duration_s, n_frames=dec.n_frames, fps=dec.fps, sample_rate=dec.sample_rate
    )
    clip.frames_table["timestamp_s"] = dec.timestamps_s.astype(np.float32)
    # not a schema column: lets the openface AU backend map its per-source-frame rows to our frames
    clip.frames_table["source_index"] = dec.source_index
    return clip


def fit_length(audio: np.ndarray, n_frames: int, fps: float, sample_rate: int) -> np.ndarray:
    """Cut or zero-pad ``audio`` at its end to exactly ``n_frames / fps`` seconds, clipped to [-1, 1].

    Clipping matters: resampling a full-scale source overshoots slightly (GRID peaks reach ~1.07).
    """
    n = round(n_frames * sample_rate / fps)
    out = np.zeros(n, np.float32)
    m = min(n, len(audio))
    np.clip(audio[:m], -1.0, 1.0, out=out[:m])
    return out
