"""Face detection, tracking, alignment, head pose and AUs: one API for the pipeline, benchmark and generation.

:class:`FaceProcessor` (``FaceProcessor(settings).process(frames, video=None) -> FaceTrack``) is the entry
everything calls; the modules below hold the pure functions behind its steps, on plain arrays:

* :mod:`.tracker` - the MediaPipe face mesh (the only state: its graph);
* :mod:`.track` - main-face choice and gap filling;
* :mod:`.align` - similarity transforms, alignment matrices and crops;
* :mod:`.pose` - head pose from the 3-D landmarks;
* :mod:`.quality` - face size and blur;
* :mod:`.config` - the ``landmarks``/``align``/``pose`` settings and :class:`FaceSettings` (all face sections).

Conventions (downstream numbers depend on them): landmarks (T, 478, 3) float32, x, y in source-frame
pixels, z in the same pixel scale as x, NaN where no face; ``face_found`` is True on detected *and* on
interpolated frames; ``align_matrix`` (T, 2, 3) maps source pixels to aligned-crop pixels; pose (T, 6) is
yaw, pitch, roll in degrees and tx, ty, tz in cm. The landmark topology is :mod:`talkbench.facemesh`.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> submodule. Resolved on first use (PEP 562), so importing the settings
#: (``pipelines.face.config``, which the pipeline config needs) does not load OpenCV, SciPy or MediaPipe.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("AlignConfig", "FaceSettings", "LandmarksConfig", "PoseConfig"), "config"),
    "FaceMeshTracker": "tracker",
    **dict.fromkeys(("LandmarkTrack", "choose_main_face", "detect_landmarks", "fill_gaps", "track_main_face",
                     "true_runs"), "track"),
    **dict.fromkeys(("align_track", "alignment_matrices", "apply_affine", "halvings", "mouth_matrices",
                     "smooth_over_time", "template_points", "umeyama", "warp_crops"), "align"),
    **dict.fromkeys(("estimate_pose", "head_frame", "reference_shape"), "pose"),
    **dict.fromkeys(("blur_scores", "face_size"), "quality"),
    **dict.fromkeys(("FaceProcessor", "FaceTrack", "process_frames"), "processor"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
