"""Stage 4: head pose per frame (yaw, pitch, roll, translation) from the 3-D landmarks."""

from __future__ import annotations

from talkbench.pipelines.core import Clip, WorkerContext, register_stage
from talkbench.pipelines.face.config import PoseConfig
from talkbench.schema import POSE_COLUMNS

__all__ = ["PoseConfig", "pose"]


@register_stage("pose", PoseConfig)
def pose(clip: Clip, cfg: PoseConfig, ctx: WorkerContext) -> Clip:
    """Adds yaw, pitch, roll (degrees) and tx, ty, tz (cm) per frame; NaN where no face."""
    from talkbench.pipelines.face import FaceProcessor, FaceSettings

    ft = clip.frames_table
    if clip.video is None or "landmarks" not in ft:
        raise RuntimeError("the pose stage needs decoded video and the landmarks stage before it")
    values = FaceProcessor(FaceSettings(pose=cfg), clip.fps, ctx).pose(ft["landmarks"], ft["face_found"],
                                                                        clip.video.shape[1:3])
    for k, name in enumerate(POSE_COLUMNS):
        ft[name] = values[:, k]
    return clip
