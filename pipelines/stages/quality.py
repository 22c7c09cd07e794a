"""Stage 7: raw quality numbers per frame and per clip (face size, detection confidence, blur).

Only raw scores are stored (GUIDE §2: filter as a query later, never drop data here).
"""

from __future__ import annotations

import numpy as np

from talkbench.config import StrictModel
from talkbench.pipelines.core import Clip, WorkerContext, register_stage


class QualityConfig(StrictModel):
    pass


@register_stage("quality", QualityConfig)
def quality(clip: Clip, cfg: QualityConfig, ctx: WorkerContext) -> Clip:
    """Per frame: face_size (outer-eye-corner distance in source px), det_conf (from the landmarks
    stage), blur (variance of the Laplacian of the grey face crop); NaN where no face. Per clip:
    the means over frames with a face (face_size_mean, det_conf_mean, blur_mean)."""
    from talkbench.pipelines.face.quality import blur_scores, face_size

    ft = clip.frames_table
    missing = [k for k in ("landmarks", "face_found", "det_conf", "face_crop") if k not in ft]
    if missing:
        raise RuntimeError(f"the quality stage needs the landmarks and align stages before it (missing {missing})")
    found = np.asarray(ft["face_found"], dtype=bool)
    ft["face_size"] = face_size(ft["landmarks"]).astype(np.float32)
    ft["blur"] = np.where(found, blur_scores(ft["face_crop"]), np.nan).astype(np.float32)
    ft["det_conf"] = np.where(found, ft["det_conf"], np.nan).astype(np.float32)
    for name in ("face_size", "det_conf", "blur"):
        values = ft[name][found]
        values = values[~np.isnan(values)]
        clip.info[f"{name}_mean"] = float(values.mean()) if len(values) else None
    return clip
