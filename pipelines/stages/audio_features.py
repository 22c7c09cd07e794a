"""Stage 6: MFCC (GUIDE §1 reference) and 80-bin log-mel aligned to video frames; raw audio kept."""

from __future__ import annotations

from talkbench.pipelines.core import Clip, WorkerContext, register_stage

from talkbench.config import StrictModel


class AudioFeaturesConfig(StrictModel):
    pass


@register_stage("audio_features", AudioFeaturesConfig)
def audio_features(clip: Clip, cfg: AudioFeaturesConfig, ctx: WorkerContext) -> Clip:
    raise NotImplementedError
