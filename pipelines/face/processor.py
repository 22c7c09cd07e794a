"""``FaceProcessor``: the one entry to face work, for the pipeline stages, the benchmark and generation.

Frames go in, a :class:`FaceTrack` comes out: main-face landmarks with gap filling, alignment matrices
and crops, head pose and AU intensities. The preparation stages call its steps one at a time (each stage
owns one config section); the benchmark and generation call :meth:`FaceProcessor.process`. Because all
three go through the same object, generated and real videos get *the same* detection, alignment and AU
estimation (GUIDE §4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from talkbench.pipelines.au.base import AUInputs, estimate_aus
from talkbench.pipelines.au.base import neutral_baseline as au_neutral_baseline
from talkbench.pipelines.core import WorkerContext
from talkbench.pipelines.face.align import align_track
from talkbench.pipelines.face.config import AlignConfig, FaceSettings, LandmarksConfig, PoseConfig
from talkbench.pipelines.face.pose import estimate_pose
from talkbench.pipelines.face.track import LandmarkTrack, detect_landmarks
from talkbench.pipelines.face.tracker import FaceMeshTracker


@dataclass
class FaceTrack:
    """One video's face, frame by frame. Frames without a face hold NaN values and zero crops."""

    landmarks: np.ndarray  # (T, 478, 3) float32, source pixels
    face_found: np.ndarray  # (T,) bool, detected or interpolated
    face_interpolated: np.ndarray  # (T,) bool
    n_faces: np.ndarray  # (T,) int8, faces MediaPipe returned (before gap filling)
    det_conf: np.ndarray  # (T,) float32
    n_long_gap_frames: int  # frames left without a face
    align_matrix: np.ndarray  # (T, 2, 3) float32, source -> aligned crop
    face_crop: np.ndarray  # (T, S, S, 3) uint8
    mouth_crop: np.ndarray  # (T, h, w, 3) uint8
    landmarks_crop: np.ndarray  # (T, 478, 3) float32, aligned-crop pixels
    pose: np.ndarray  # (T, 6) yaw, pitch, roll (deg), tx, ty, tz (cm)
    aus: dict[str, np.ndarray] = field(default_factory=dict)  # AU name -> (T,) float32; empty unless asked

    def as_dict(self) -> dict[str, Any]:
        """The per-frame arrays by name (the layout :func:`process_frames` returns)."""
        keys = ("landmarks", "face_found", "face_interpolated", "n_faces", "det_conf", "align_matrix",
                "face_crop", "mouth_crop", "landmarks_crop", "pose")
        return {k: getattr(self, k) for k in keys}


def tracker_key(cfg: LandmarksConfig) -> str:
    """The worker-resource key of a tracker: one MediaPipe graph per distinct graph setting."""
    return "facemesh:" + cfg.model_dump_json(exclude={"max_gap_frames"})


class FaceProcessor:
    """Face tracking, alignment, pose and AUs with one set of :class:`FaceSettings`.

    ``ctx`` holds the MediaPipe graph and the AU backend's resources; pass a pipeline worker's context to
    share them across clips, or none to have one made (and closed by :meth:`close`). A ``tracker`` passed
    in is used as is and never closed here. The tracker is reset per video, so one clip's tracking state
    never changes another's result.
    """

    def __init__(self, settings: FaceSettings | None = None, fps: float = 25.0, ctx: WorkerContext | None = None,
                 tracker: FaceMeshTracker | None = None) -> None:
        self.settings = settings or FaceSettings()
        self.fps = float(fps)
        self._own_ctx = ctx is None
        self.ctx = ctx if ctx is not None else WorkerContext()
        self._tracker = tracker

    @property
    def tracker(self) -> FaceMeshTracker:
        if self._tracker is None:
            cfg = self.settings.landmarks
            self._tracker = self.ctx.resource(tracker_key(cfg), lambda: FaceMeshTracker.from_config(cfg))
        return self._tracker

    # -- the steps (each pipeline stage calls one) ------------------------------------------------
    def landmarks(self, frames: np.ndarray) -> LandmarkTrack:
        """Main-face landmarks of (T, H, W, 3) uint8 RGB frames, short gaps filled."""
        return detect_landmarks(frames, self.tracker, self.settings.landmarks.max_gap_frames)

    def align(self, frames: np.ndarray, landmarks: np.ndarray, face_found: np.ndarray) -> dict[str, np.ndarray]:
        """align_matrix (T, 2, 3), face_crop, mouth_crop and landmarks_crop (T, 478, 3)."""
        return align_track(frames, landmarks, np.asarray(face_found, bool), self.settings.align, self.fps)

    def pose(self, landmarks: np.ndarray, face_found: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
        """(T, 6) yaw, pitch, roll, tx, ty, tz; NaN where no face."""
        return estimate_pose(landmarks, np.asarray(face_found, bool), frame_hw, self.settings.pose)

    def aus(self, n_frames: int, landmarks: np.ndarray | None = None, face_found: np.ndarray | None = None,
            video: str | Path | None = None, frames: np.ndarray | None = None,
            source_index: np.ndarray | None = None,
            neutral_baseline: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """AU intensities from the configured backend (``video``: the file the frames came from, for
        backends that read videos; else ``frames`` are written to a temporary file for them).
        ``neutral_baseline``: another clip's :meth:`au_baseline` to measure from (default: this clip's)."""
        inputs = AUInputs(n_frames=n_frames, fps=self.fps, landmarks=landmarks, face_found=face_found,
                          video=video, source_index=source_index, neutral_baseline=neutral_baseline)
        return estimate_aus(inputs, self.settings.au, self.ctx, frames=frames)

    def au_baseline(self, landmarks: np.ndarray, face_found: np.ndarray) -> dict[str, float] | None:
        """This clip's neutral AU baseline (to measure another clip from it), None when the backend
        calibrates inside, per video (OpenFace)."""
        inputs = AUInputs(n_frames=len(landmarks), fps=self.fps, landmarks=landmarks, face_found=face_found)
        return au_neutral_baseline(inputs, self.settings.au, self.ctx)

    # -- everything at once ----------------------------------------------------------------------
    def process(self, frames: np.ndarray, video: str | Path | None = None, aus: bool = True) -> FaceTrack:
        """All steps on one video's (T, H, W, 3) uint8 RGB frames (``aus=False`` skips the AU step)."""
        track = self.landmarks(frames)
        crops = self.align(frames, track.landmarks, track.face_found)
        return FaceTrack(
            landmarks=track.landmarks, face_found=track.face_found, face_interpolated=track.face_interpolated,
            n_faces=track.n_faces, det_conf=track.det_conf, n_long_gap_frames=track.n_long_gap_frames,
            align_matrix=crops["align_matrix"], face_crop=crops["face_crop"], mouth_crop=crops["mouth_crop"],
            landmarks_crop=crops["landmarks_crop"],
            pose=self.pose(track.landmarks, track.face_found, frames.shape[1:3]),
            aus=self.aus(len(frames), track.landmarks, track.face_found, video, frames) if aus else {},
        )

    def close(self) -> None:
        """Release the MediaPipe graph and backend resources this processor made."""
        if self._own_ctx:
            self.ctx.close()
            self._tracker = None

    def __enter__(self) -> FaceProcessor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def process_frames(frames: np.ndarray, fps: float, landmarks_cfg: LandmarksConfig | None = None,
                   align_cfg: AlignConfig | None = None, pose_cfg: PoseConfig | None = None,
                   tracker: FaceMeshTracker | None = None) -> dict[str, Any]:
    """:meth:`FaceProcessor.process` without AUs, as a dict of per-frame arrays (see :class:`FaceTrack`).

    Pass a ``tracker`` to reuse one MediaPipe graph across videos (it is reset per call); otherwise one
    is made and closed here.
    """
    settings = FaceSettings(landmarks=landmarks_cfg or LandmarksConfig(), align=align_cfg or AlignConfig(),
                            pose=pose_cfg or PoseConfig())
    with FaceProcessor(settings, fps, tracker=tracker) as proc:
        return proc.process(frames, aus=False).as_dict()
