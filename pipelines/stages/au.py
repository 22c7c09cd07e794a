"""Stage 5: AU intensities through a pluggable backend (``geometric`` or ``openface``)."""

from __future__ import annotations

from typing import Literal

from talkbench.pipelines.core import Clip, WorkerContext, register_stage

from talkbench.config import StrictModel


class AUConfig(StrictModel):
    backend: Literal["geometric", "openface"] = "geometric"
    openface_bin: str | None = None


@register_stage("au", AUConfig)
def au(clip: Clip, cfg: AUConfig, ctx: WorkerContext) -> Clip:
    raise NotImplementedError
