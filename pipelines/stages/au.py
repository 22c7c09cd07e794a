"""Stage 5: AU intensities through a pluggable backend (``geometric`` or ``openface``)."""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from talkbench.config import StrictModel
from talkbench.pipelines.core import Clip, WorkerContext, register_stage
from talkbench.schema import ALL_AUS, au_column


class AUConfig(StrictModel):
    backend: str = "geometric"  # validated against AU_BACKENDS below
    calibration: str | None = Field(None, description="geometric: calibration JSON; default the shipped one")
    openface_bin: str | None = Field(None, description="openface: FeatureExtraction path; default from PATH")
    openface_args: list[str] = Field(
        default_factory=list, description="openface: extra arguments, e.g. ['-mloc', 'model/main_clnf_general.txt']"
    )
    openface_timeout_s: float = Field(600.0, gt=0, description="openface: per-clip time limit")

    @field_validator("backend")
    @classmethod
    def _registered(cls, v: str) -> str:
        from talkbench.pipelines.au import AU_BACKENDS

        if v not in AU_BACKENDS:
            raise ValueError(f"unknown AU backend {v!r}; known: {', '.join(AU_BACKENDS.names())}")
        return v


@register_stage("au", AUConfig)
def au(clip: Clip, cfg: AUConfig, ctx: WorkerContext) -> Clip:
    """Writes ``AUxx_r`` for every AU of ``schema.ALL_AUS`` (NaN where the backend gives none) and
    ``info["au_backend"]``."""
    from talkbench.pipelines.au import AU_BACKENDS

    n = len(clip.frames_table["timestamp_s"]) if "timestamp_s" in clip.frames_table else clip.n_frames
    values = AU_BACKENDS.get(cfg.backend)(clip, cfg, ctx)
    for name in ALL_AUS:
        col = values.get(name)
        if col is None:
            col = np.full(n, np.nan, dtype=np.float32)
        elif len(col) != n:
            raise RuntimeError(f"AU backend {cfg.backend!r} returned {len(col)} values for {n} frames")
        clip.frames_table[au_column(name)] = np.asarray(col, dtype=np.float32)
    clip.info["au_backend"] = cfg.backend
    return clip
