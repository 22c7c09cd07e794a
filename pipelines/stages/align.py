"""Stage 3: temporal smoothing of landmarks, similarity alignment to a template, face and mouth crops."""

from __future__ import annotations

from talkbench.pipelines.core import Clip, WorkerContext, register_stage

from talkbench.config import StrictModel


class AlignConfig(StrictModel):
    crop_size: int = 128
    mouth_size: int = 64
    smoothing_sigma_frames: float = 1.0


@register_stage("align", AlignConfig)
def align(clip: Clip, cfg: AlignConfig, ctx: WorkerContext) -> Clip:
    raise NotImplementedError
