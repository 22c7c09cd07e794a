"""Stage 6: MFCC (GUIDE §1 reference) and 80-bin log-mel aligned to video frames; raw audio kept.

The features and their time convention are :mod:`talkbench.pipelines.audio`; this stage stores them.
"""

from __future__ import annotations

from talkbench.errors import ClipError, ConfigError
from talkbench.pipelines.audio import AudioFeaturesConfig, log_mel, n_samples, per_frame, reference_mfcc
from talkbench.pipelines.core import Clip, WorkerContext, register_stage
from talkbench.schema import HOPS_PER_FRAME, MEL_BINS, MFCC_DIM, from_pcm16, to_pcm16

__all__ = ["AudioFeaturesConfig", "audio_features"]


@register_stage("audio_features", AudioFeaturesConfig)
def audio_features(clip: Clip, cfg: AudioFeaturesConfig, ctx: WorkerContext) -> Clip:
    """Adds ``mfcc`` (T, 48) and ``logmel`` (T, 320) per frame and ``info["audio_pcm16"]``."""
    if clip.audio is None:
        raise ClipError("no_audio", f"{clip.record.source_path}: no audio to compute features from")
    sr = clip.sample_rate
    hops_per_frame = sr / clip.fps / n_samples(cfg.hop_ms, sr)
    if abs(hops_per_frame - HOPS_PER_FRAME) > 1e-9:
        raise ConfigError(f"audio_features: hop {cfg.hop_ms} ms at {clip.fps} fps gives {hops_per_frame:g} "
                          f"hops per video frame; the shard schema stores {HOPS_PER_FRAME}")
    if (cfg.n_ceps - cfg.drop_c0, cfg.logmel_bins) != (MFCC_DIM, MEL_BINS):
        raise ConfigError(f"audio_features: the shard schema stores {MFCC_DIM} MFCCs and {MEL_BINS} mel bins")
    # features are computed from the stored int16 audio, so they can be recomputed from the shard exactly
    pcm = to_pcm16(clip.audio)
    audio = from_pcm16(pcm)
    t = clip.n_frames or round(len(audio) * clip.fps / sr)
    clip.frames_table["mfcc"] = per_frame(reference_mfcc(audio, sr, cfg), t)
    clip.frames_table["logmel"] = per_frame(log_mel(audio, sr, cfg), t)
    clip.info["audio_pcm16"] = pcm.tobytes()
    return clip
