"""Face detection, tracking, alignment, head pose and AUs: one API for the pipeline, benchmark and generation.

:class:`FaceProcessor` (``FaceProcessor(settings).process(frames, video=None) -> FaceTrack``) is the entry
everything calls; the modules below hold the pure functions behind its steps, on plain arrays:

* :mod:`.tracker` - the MediaPipe face mesh (the only state: its graph);
* :mod:`.track` - main-face choice and gap filling;
* :mod:`.align` - similarity transforms, alignment matrices and crops;
* :mod:`.pose` - head pose from the 3-D landmarks;
* :mod:`.quality` - face size and blur;
* :mod:`.config` - the ``landmarks``/``align``/``pose`` settings.

Conventions (downstream numbers depend on them): landmarks (T, 478, 3) float32, x, y in source-frame
pixels, z in the same pixel scale as x, NaN where no face; ``face_found`` is True on detected *and* on
interpolated frames; ``align_matrix`` (T, 2, 3) maps source pixels to aligned-crop pixels; pose (T, 6) is
yaw, pitch, roll in degrees and tx, ty, tz in cm. The landmark topology is :mod:`talkbench.facemesh`.
"""

from talkbench.pipelines.face.align import (
    align_track,
    alignment_matrices,
    apply_affine,
    halvings,
    mouth_matrices,
    smooth_over_time,
    template_points,
    umeyama,
    warp_crops,
)
from talkbench.pipelines.face.config import AlignConfig, LandmarksConfig, PoseConfig
from talkbench.pipelines.face.pose import estimate_pose, head_frame, reference_shape
from talkbench.pipelines.face.processor import FaceProcessor, FaceSettings, FaceTrack, process_frames
from talkbench.pipelines.face.quality import blur_scores, face_size
from talkbench.pipelines.face.track import (
    LandmarkTrack,
    choose_main_face,
    detect_landmarks,
    fill_gaps,
    track_main_face,
    true_runs,
)
from talkbench.pipelines.face.tracker import FaceMeshTracker

__all__ = [
    "AlignConfig", "FaceMeshTracker", "FaceProcessor", "FaceSettings", "FaceTrack", "LandmarkTrack",
    "LandmarksConfig", "PoseConfig", "align_track", "alignment_matrices", "apply_affine", "blur_scores",
    "choose_main_face", "detect_landmarks", "estimate_pose", "face_size", "fill_gaps", "halvings",
    "head_frame", "mouth_matrices", "process_frames", "reference_shape", "smooth_over_time",
    "template_points", "track_main_face", "true_runs", "umeyama", "warp_crops",
]
