"""Audio-feature windows from the per-frame rows of the shards (the same logic training and generation use).

A shard stores, per 40 ms video frame, its 4 MFCC hops (4 x 12). A frame's model input is a window of
hops centred on the frame (350 ms = 35 hops for the generators). The pipeline's
``talkbench.pipelines.stages.audio_features.mfcc_windows`` is used when it exists so both sides agree;
the fallback below implements the same centred, edge-padded window.
"""

from __future__ import annotations

import numpy as np

from talkbench.schema import HOPS_PER_FRAME, SAMPLE_RATE


def _pipeline_fn(name: str):
    try:
        from talkbench.pipelines.stages import audio_features
    except ImportError:  # a training-only install without the pipeline extras
        return None
    return getattr(audio_features, name, None)


def hop_windows(per_frame: np.ndarray, n_hops: int, n_coeffs: int) -> np.ndarray:
    """(T, 4 * C) per-frame rows -> (T, C, n_hops): for frame i the hops centred on its middle.

    Frame i covers hops 4i .. 4i+3; its centre is hop 4i + 2, so the window starts at 4i + 2 - n_hops // 2.
    Hops before the start / after the end repeat the edge hop.
    """
    per_frame = np.asarray(per_frame, dtype=np.float32)
    t = per_frame.shape[0]
    if per_frame.ndim != 2 or per_frame.shape[1] != HOPS_PER_FRAME * n_coeffs:
        raise ValueError(f"per-frame features must be (T, {HOPS_PER_FRAME * n_coeffs}), got {per_frame.shape}")
    hops = per_frame.reshape(t * HOPS_PER_FRAME, n_coeffs)
    starts = np.arange(t) * HOPS_PER_FRAME + HOPS_PER_FRAME // 2 - n_hops // 2
    idx = np.clip(starts[:, None] + np.arange(n_hops)[None, :], 0, len(hops) - 1)
    return np.ascontiguousarray(hops[idx].transpose(0, 2, 1))


def mfcc_windows(mfcc_per_frame: np.ndarray, n_hops: int = 35) -> np.ndarray:
    """(T, 48) -> (T, 12, n_hops); the pipeline's implementation when available."""
    fn = _pipeline_fn("mfcc_windows")
    if fn is not None:
        try:
            return np.asarray(fn(mfcc_per_frame, n_hops=n_hops), dtype=np.float32)
        except NotImplementedError:
            pass
    return hop_windows(mfcc_per_frame, n_hops, mfcc_per_frame.shape[1] // HOPS_PER_FRAME)


def block_window(per_frame: np.ndarray, start: int, frames: int) -> np.ndarray:
    """The hops of frames [start, start + frames) as one (C, frames * 4) window (the SyncNet input)."""
    block = np.asarray(per_frame[start : start + frames], dtype=np.float32)
    if len(block) != frames:
        raise ValueError(f"block [{start}, {start + frames}) is outside the {len(per_frame)} frames")
    return np.ascontiguousarray(block.reshape(frames * HOPS_PER_FRAME, -1).T)


def mfcc_from_audio(audio: np.ndarray, sample_rate: int, n_frames: int,
                    audio_config: dict | None = None) -> np.ndarray:
    """Per-frame MFCC rows (n_frames, 48) from raw audio, exactly as the pipeline's audio stage stores them.

    ``audio_config`` is the shards' ``audio_features`` section (recorded in a checkpoint) so generation
    uses the features the model was trained on. Needs the pipeline extras (scipy, librosa).
    """
    try:
        from talkbench.pipelines.stages import audio_features as af
    except ImportError as e:
        raise ImportError(f"computing MFCCs from audio needs the pipeline extras "
                          f"(pip install 'talkbench[pipeline]'): {e}") from None
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"audio must be {SAMPLE_RATE} Hz mono, got {sample_rate} Hz")
    cfg = af.AudioFeaturesConfig.model_validate(audio_config or {})
    audio = af.to_pcm16(np.asarray(audio, dtype=np.float32).reshape(-1)).astype(np.float32) / 32767.0
    return af.per_frame(af.reference_mfcc(audio, sample_rate, cfg), n_frames)
