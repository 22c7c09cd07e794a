"""Stage 2: MediaPipe face mesh (478 landmarks) in tracking mode, main-face choice, gap filling."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from talkbench.config import StrictModel
from talkbench.errors import ClipError
from talkbench.pipelines.core import Clip, WorkerContext, register_stage

if TYPE_CHECKING:
    from talkbench.pipelines.face import FaceMeshTracker


class LandmarksConfig(StrictModel):
    """Face mesh settings. The detector runs only while no face is tracked; every face it finds
    (up to ``max_faces``) is then tracked, and the main one chosen (see
    talkbench.pipelines.face.FaceMeshTracker and choose_main_face)."""

    max_gap_frames: int = Field(5, ge=0, description="longest run of faceless frames to interpolate")
    detect_max_side: int = Field(640, ge=64, description="downscale frames whose long side is larger")
    max_faces: int = Field(4, ge=1)
    min_detection_confidence: float = Field(0.5, ge=0, le=1)
    min_tracking_confidence: float = Field(0.5, ge=0, le=1)
    detect_while_tracking: bool = Field(
        False, description="MediaPipe's stock gating: detect on every frame with fewer than max_faces "
                           "tracked (finds faces that enter later; ~1.6x slower on single-face clips)")


def tracker_for(cfg: LandmarksConfig, ctx: WorkerContext) -> FaceMeshTracker:
    """The worker's tracker for these settings, created once per worker process."""
    from talkbench.pipelines.face import FaceMeshTracker

    key = "facemesh:" + cfg.model_dump_json(exclude={"max_gap_frames"})
    return ctx.resource(key, lambda: FaceMeshTracker.from_config(cfg))


@register_stage("landmarks", LandmarksConfig)
def landmarks(clip: Clip, cfg: LandmarksConfig, ctx: WorkerContext) -> Clip:
    """Adds landmarks (T, 478, 3), face_found, face_interpolated, n_faces, det_conf per frame.

    face_found is True on detected and on interpolated frames (face_interpolated marks those);
    it is False only on frames of gaps longer than ``max_gap_frames``, which make the clip
    ``partial`` (error_kind ``face_gaps``) rather than dropping it. No face at all -> ``no_face``.
    """
    from talkbench.pipelines import face

    if clip.video is None:
        raise RuntimeError("the landmarks stage needs decoded video (run decode first)")
    track = face.detect_landmarks(clip.video, tracker_for(cfg, ctx), cfg.max_gap_frames)
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
        gaps = [b - a for a, b in face.true_runs(~track.face_found)]
        clip.info.update(
            status="partial",
            error_kind="face_gaps",
            error=f"{track.n_long_gap_frames} of {t} frames have no face in {len(gaps)} gap(s) longer than "
                  f"{cfg.max_gap_frames} frames (longest {max(gaps)}); {n_interp} frames interpolated",
        )
    return clip

