"""Settings of the face steps (landmarks, align, pose): the ``landmarks``/``align``/``pose`` sections of
the pipeline config, which the benchmark and generation reuse so every face goes through the same steps."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from talkbench.config import StrictModel
from talkbench.pipelines.au.base import AUConfig


class LandmarksConfig(StrictModel):
    """Face mesh settings. The detector runs only while no face is tracked; every face it finds
    (up to ``max_faces``) is then tracked, and the main one chosen (see
    talkbench.pipelines.face.tracker and .track)."""

    max_gap_frames: int = Field(5, ge=0, description="longest run of faceless frames to interpolate")
    detect_max_side: int = Field(640, ge=64, description="downscale frames whose long side is larger")
    max_faces: int = Field(4, ge=1,
                           description="faces MediaPipe tracks at most; the main face is chosen among them")
    min_detection_confidence: float = Field(0.5, ge=0, le=1, description="MediaPipe face-detection threshold")
    min_tracking_confidence: float = Field(0.5, ge=0, le=1,
        description="MediaPipe tracking threshold (below it, detect again)")
    detect_while_tracking: bool = Field(
        False, description="MediaPipe's stock gating: detect on every frame with fewer than max_faces "
                           "tracked (finds faces that enter later; ~1.6x slower on single-face clips)")


class AlignConfig(StrictModel):
    """Template alignment (GUIDE §1): eye centres and nose tip -> fixed points, face centred.

    Template positions are fractions of the crop side. The defaults put the eyes 0.25 crop apart at
    0.36 from the top: on the GRID fixtures the forehead top (landmark 10) lands near 0.12 and the
    chin between 0.80 and 0.91 (jaw open), so the face is centred and an open jaw still fits. The
    nose height is the mean (nose tip to eye line) / eye distance ratio measured there (0.67), so
    the three points fit without a systematic scale bias.
    """

    crop_size: int = Field(128, ge=16, description="aligned face crop side in pixels")
    mouth_size: int = Field(64, ge=8, description="mouth crop width in pixels")
    mouth_height: int | None = Field(None, ge=8, description="mouth crop height; None = square")
    mouth_box: float = Field(0.5, gt=0, le=1.5, description="mouth box width as a fraction of the face crop")
    template_eye_y: float = Field(0.36, gt=0, lt=1,
                                  description="eye height in the template, as a fraction of the crop")
    template_eye_distance: float = Field(0.25, gt=0, lt=1,
        description="inter-ocular distance in the template, as a fraction of the crop")
    template_nose_y: float = Field(0.53, gt=0, lt=1,
                                   description="nose-tip height in the template, as a fraction of the crop")
    smoothing_sigma_s: float = Field(0.04, ge=0, description="Gaussian sigma over time of the anchor points")
    antialias: bool = Field(True, description="halve the source first where the crop shrinks a face below half size")

    @property
    def mouth_shape(self) -> tuple[int, int]:
        """(height, width) of the mouth crop."""
        return (self.mouth_height or self.mouth_size, self.mouth_size)

    @model_validator(mode="before")
    @classmethod
    def _drop_supersample(cls, data: Any) -> Any:
        """``supersample`` (warp at N x, then area-downsample) gave way to ``antialias``; configs saved
        with it (checkpoints' and manifests' pipeline config) still load, with today's crops."""
        if isinstance(data, dict) and "supersample" in data:
            data = {k: v for k, v in data.items() if k != "supersample"}
        return data

    @model_validator(mode="after")
    def _nose_below_eyes(self) -> AlignConfig:
        if self.template_nose_y <= self.template_eye_y:
            raise ValueError("template_nose_y must be below template_eye_y")
        return self


class PoseConfig(StrictModel):
    """Assumptions behind the translation (see talkbench.pipelines.face.pose.estimate_pose): the
    rotations do not depend on them."""

    interpupillary_cm: float = Field(6.3, gt=0, description="assumed IPD: sets the cm scale")
    vertical_fov_deg: float = Field(63.0, gt=0, lt=180, description="assumed camera field of view")


class FaceSettings(StrictModel):
    """The face sections of a pipeline config (and of a benchmark task's ``preprocessing``)."""

    landmarks: LandmarksConfig = Field(default_factory=LandmarksConfig)
    align: AlignConfig = Field(default_factory=AlignConfig)
    pose: PoseConfig = Field(default_factory=PoseConfig)
    au: AUConfig = Field(default_factory=AUConfig)
