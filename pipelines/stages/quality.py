"""Stage 7: raw quality numbers per frame and per clip (face size, detection confidence, blur)."""

from __future__ import annotations

from talkbench.pipelines.core import Clip, WorkerContext, register_stage

from talkbench.config import StrictModel


class QualityConfig(StrictModel):
    pass


@register_stage("quality", QualityConfig)
def quality(clip: Clip, cfg: QualityConfig, ctx: WorkerContext) -> Clip:
    raise NotImplementedError
