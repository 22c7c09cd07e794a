"""Stage 2: MediaPipe face mesh (478 landmarks) in tracking mode, main-face choice, gap filling."""

from __future__ import annotations

from talkbench.pipelines.core import Clip, WorkerContext, register_stage

from talkbench.config import StrictModel


class LandmarksConfig(StrictModel):
    max_gap_frames: int = 5
    detect_max_side: int = 640
    max_faces: int = 4
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5


@register_stage("landmarks", LandmarksConfig)
def landmarks(clip: Clip, cfg: LandmarksConfig, ctx: WorkerContext) -> Clip:
    raise NotImplementedError
