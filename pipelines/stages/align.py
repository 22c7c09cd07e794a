"""Stage 3: temporal smoothing of landmarks, similarity alignment to a template, face and mouth crops."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, model_validator

from talkbench.config import StrictModel
from talkbench.pipelines.core import Clip, WorkerContext, register_stage


class AlignConfig(StrictModel):
    """Template alignment (GUIDE §1): eye centres and nose tip -> fixed points, face centred.

    Template positions are fractions of the crop side. The defaults put the eyes 0.25 crop apart at
    0.36 from the top: on the GRID fixtures the forehead top (landmark 10) lands near 0.12 and the
    chin between 0.80 and 0.91 (jaw open), so the face is centred and an open jaw still fits. The
    nose height is the mean (nose tip to eye line) / eye distance ratio measured there (0.67), so
    the three points fit without a systematic scale bias.
    """

    crop_size: int = Field(128, ge=16)
    mouth_size: int = Field(64, ge=8, description="mouth crop width in pixels")
    mouth_height: int | None = Field(None, ge=8, description="mouth crop height; None = square")
    mouth_box: float = Field(0.5, gt=0, le=1.5, description="mouth box width as a fraction of the face crop")
    template_eye_y: float = Field(0.36, gt=0, lt=1)
    template_eye_distance: float = Field(0.25, gt=0, lt=1)
    template_nose_y: float = Field(0.53, gt=0, lt=1)
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


@register_stage("align", AlignConfig)
def align(clip: Clip, cfg: AlignConfig, ctx: WorkerContext) -> Clip:
    """Adds align_matrix (T, 6), face_crop (T, S, S, 3) and mouth_crop (T, h, w, 3) uint8 (zeros and
    NaN where no face) and clip.info["identity_frame"] (first detected, not interpolated, frame)."""
    from talkbench.pipelines import face

    ft = clip.frames_table
    if clip.video is None or "landmarks" not in ft:
        raise RuntimeError("the align stage needs decoded video and the landmarks stage before it")
    found = np.asarray(ft["face_found"], dtype=bool)
    out = face.align_track(clip.video, ft["landmarks"], found, cfg, clip.fps)
    ft["align_matrix"] = out["align_matrix"].reshape(len(found), 6)
    ft["face_crop"] = out["face_crop"]
    ft["mouth_crop"] = out["mouth_crop"]
    detected = np.flatnonzero(found & ~np.asarray(ft["face_interpolated"], dtype=bool))
    clip.info["identity_frame"] = int(detected[0]) if len(detected) else None
    return clip
