"""Stage 5: AU intensities through a pluggable backend (``geometric`` or ``openface``)."""

from __future__ import annotations

import numpy as np

from talkbench.pipelines.au import AUConfig
from talkbench.pipelines.core import Clip, WorkerContext, register_stage
from talkbench.schema import ALL_AUS, au_column

__all__ = ["AUConfig", "au"]


@register_stage("au", AUConfig)
def au(clip: Clip, cfg: AUConfig, ctx: WorkerContext) -> Clip:
    """Writes ``AUxx_r`` for every AU of ``schema.ALL_AUS`` (NaN where the backend gives none) and
    ``info["au_backend"]``. Backends read the clip's landmarks and its source video."""
    from talkbench.pipelines.face import FaceProcessor, FaceSettings

    ft = clip.frames_table
    n = len(ft["timestamp_s"]) if "timestamp_s" in ft else clip.n_frames
    values = FaceProcessor(FaceSettings(au=cfg), clip.fps, ctx).aus(
        n, ft.get("landmarks"), ft.get("face_found"), video=clip.record.path, source_index=ft.get("source_index"))
    for name in ALL_AUS:
        col = values.get(name)
        ft[au_column(name)] = np.full(n, np.nan, dtype=np.float32) if col is None else col
    clip.info["au_backend"] = cfg.backend
    return clip
