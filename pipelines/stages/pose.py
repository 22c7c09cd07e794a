"""Stage 4: head pose per frame (yaw, pitch, roll, translation) from the 3-D landmarks."""

from __future__ import annotations

from talkbench.pipelines.core import Clip, WorkerContext, register_stage

from talkbench.config import StrictModel


class PoseConfig(StrictModel):
    pass


@register_stage("pose", PoseConfig)
def pose(clip: Clip, cfg: PoseConfig, ctx: WorkerContext) -> Clip:
    raise NotImplementedError
