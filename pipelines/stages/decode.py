"""Stage 1: probe and decode with PyAV; video to constant fps by timestamps, audio to 16 kHz mono."""

from __future__ import annotations

from talkbench.pipelines.core import Clip, WorkerContext, register_stage

from talkbench.config import StrictModel


class DecodeConfig(StrictModel):
    fps: float = 25.0
    sample_rate: int = 16_000
    min_duration_s: float = 1.0


@register_stage("decode", DecodeConfig)
def decode(clip: Clip, cfg: DecodeConfig, ctx: WorkerContext) -> Clip:
    raise NotImplementedError
