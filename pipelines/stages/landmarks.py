"""Stage 2: MediaPipe face mesh (478 landmarks) in tracking mode, main-face choice, gap filling."""

from __future__ import annotations

from talkbench.errors import ClipError
from talkbench.pipelines.core import Clip, WorkerContext, register_stage
from talkbench.pipelines.face.config import LandmarksConfig

__all__ = ["LandmarksConfig", "landmarks"]


@register_stage("landmarks", LandmarksConfig)
def landmarks(clip: Clip, cfg: LandmarksConfig, ctx: WorkerContext) -> Clip:
    """Adds landmarks (T, 478, 3), face_found, face_interpolated, n_faces, det_conf per frame.

    face_found is True on detected and on interpolated frames (face_interpolated marks those);
    it is False only on frames of gaps longer than ``max_gap_frames``, which make the clip
    ``partial`` (error_kind ``face_gaps``) rather than dropping it. No face at all -> ``no_face``.
    The worker's MediaPipe graph is made once per process (``ctx``) and reset per clip.
    """
    from talkbench.pipelines.face import FaceProcessor, FaceSettings, true_runs

    if clip.video is None:
        raise RuntimeError("the landmarks stage needs decoded video (run decode first)")
    track = FaceProcessor(FaceSettings(landmarks=cfg), clip.fps, ctx).landmarks(clip.video)
    t = len(track.face_found)
    if not track.face_found.any():
        raise ClipError("no_face", f"no face found on any of {t} frames")
    ft = clip.frames_table
    ft["landmarks"] = track.landmarks
    ft["face_found"] = track.face_found
    ft["face_interpolated"] = track.face_interpolated
    ft["n_faces"] = track.n_faces
    ft["det_conf"] = track.det_conf
    n_interp = int(track.face_interpolated.sum())
    clip.info.update(
        n_faces_max=int(track.n_faces.max()),
        face_found_ratio=float(track.face_found.mean()),
        n_interpolated=n_interp,
    )
    if track.n_long_gap_frames:
        gaps = [b - a for a, b in true_runs(~track.face_found)]
        clip.info.update(
            status="partial",
            error_kind="face_gaps",
            error=f"{track.n_long_gap_frames} of {t} frames have no face in {len(gaps)} gap(s) longer than "
                  f"{cfg.max_gap_frames} frames (longest {max(gaps)}); {n_interp} frames interpolated",
        )
    return clip
