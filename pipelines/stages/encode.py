"""Last stage: encode face and mouth crops to image bytes, so workers (not the writer) pay for it."""

from __future__ import annotations

from typing import Literal

from talkbench.pipelines.core import Clip, WorkerContext, register_stage

from talkbench.config import StrictModel


class EncodeConfig(StrictModel):
    image_format: Literal["png", "jpeg"] = "jpeg"
    jpeg_quality: int = 95


@register_stage("encode", EncodeConfig)
def encode(clip: Clip, cfg: EncodeConfig, ctx: WorkerContext) -> Clip:
    raise NotImplementedError
