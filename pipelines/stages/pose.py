"""Stage 4: head pose per frame (yaw, pitch, roll, translation) from the 3-D landmarks."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from talkbench.config import StrictModel
from talkbench.pipelines.core import Clip, WorkerContext, register_stage
from talkbench.schema import POSE_COLUMNS


class PoseConfig(StrictModel):
    """Assumptions behind the translation (see talkbench.pipelines.face.estimate_pose): the
    rotations do not depend on them."""

    interpupillary_cm: float = Field(6.3, gt=0, description="assumed IPD: sets the cm scale")
    vertical_fov_deg: float = Field(63.0, gt=0, lt=180, description="assumed camera field of view")


@register_stage("pose", PoseConfig)
def pose(clip: Clip, cfg: PoseConfig, ctx: WorkerContext) -> Clip:
    """Adds yaw, pitch, roll (degrees) and tx, ty, tz (cm) per frame; NaN where no face."""
    from talkbench.pipelines import face

    ft = clip.frames_table
    if clip.video is None or "landmarks" not in ft:
        raise RuntimeError("the pose stage needs decoded video and the landmarks stage before it")
    values = face.estimate_pose(ft["landmarks"], np.asarray(ft["face_found"], dtype=bool),
                                clip.video.shape[1:3], cfg)
    for k, name in enumerate(POSE_COLUMNS):
        ft[name] = values[:, k]
    return clip
