"""Generated and real videos through THE SAME face processing as the preparation pipeline.

Nothing here re-implements face work: frames go through the pipeline's ``FaceProcessor`` (MediaPipe
face mesh, similarity alignment, crops, pose, AU backend), with the settings copied into the task from
the shards' manifest. The ground truth is decoded again from its
source video (not read from stored JPEG crops), so both sides of every comparison went through exactly
the same decoder, tracker and warp.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from talkbench.benchmark.metrics.base import AlignedVideo
from talkbench.benchmark.tasks import TaskManifest
from talkbench.config import format_validation_error
from talkbench.errors import ClipError, TalkbenchError
from talkbench.io import stable_hash

#: ground truth aligned once per process: (settings hash, path, size, mtime, frames digest) -> AlignedVideo. An LRU of
#: GT_CACHE_CLIPS clips (~5 MB each at 128 px crops), so scoring several submissions on one task
#: processes each ground-truth clip once.
GT_CACHE_CLIPS = 64
_GT_CACHE: OrderedDict[tuple[str, str, int, int, str | None], AlignedVideo] = OrderedDict()


class Preprocessor:
    """Turns (T, H, W, 3) frames into an :class:`AlignedVideo` with the task's face settings.

    One :class:`~talkbench.pipelines.face.FaceProcessor` per instance: its MediaPipe graph is created
    once and reset per clip (a tracker must not carry a face from one clip into the next).
    """

    def __init__(self, task: TaskManifest):
        from talkbench.pipelines.config import PREPROCESSING_SECTIONS, PipelineConfig
        from talkbench.pipelines.face import FaceProcessor, FaceSettings

        sections = {k: v for k, v in task.preprocessing.items() if k in PREPROCESSING_SECTIONS}
        try:
            self.cfg = PipelineConfig.model_validate(sections)
        except ValidationError as e:
            raise TalkbenchError(
                f"task {task.ref}: its face-processing settings do not fit this talkbench version "
                f"({format_validation_error(e, 'preprocessing')}); re-create the task from current shards") from None
        self.fps = task.fps
        self.sample_rate = task.sample_rate
        self.settings_hash = stable_hash(task.preprocessing, 16)  # in-memory cache key only
        self.face = FaceProcessor(FaceSettings(landmarks=self.cfg.landmarks, align=self.cfg.align,
                                               pose=self.cfg.pose, au=self.cfg.au), self.fps)

    def align(self, frames: np.ndarray, video: str | Path | None = None,
              au_reference: AlignedVideo | None = None) -> AlignedVideo:
        """Face tracking, alignment, pose and AUs for one clip's frames at the task fps.

        ``video``: the file the frames were decoded from, for AU backends that read videos (OpenFace).
        ``au_reference``: the real clip whose neutral AU baseline this side's AUs are measured from (the
        geometric backend; no per-side normalisation). OpenFace calibrates inside its binary, per video.
        """
        try:
            track = self.face.process(frames, aus=False)
        except ClipError:
            raise
        except Exception as e:  # noqa: BLE001 - recorded against the clip, the run goes on
            raise ClipError("preprocess_failed", f"{type(e).__name__}: {e}") from None
        face_found = np.asarray(track.face_found, bool)
        if not face_found.any():
            raise ClipError("no_face", f"no face found on any of {len(face_found)} frames")
        # both sides measured from the real clip's neutral face (a backend that calibrates inside, per
        # video, has no baseline: OpenFace)
        au_baseline = self.face.au_baseline(track.landmarks, face_found)
        own = au_reference is None or not au_reference.au_baseline
        aus = self.face.aus(len(frames), track.landmarks, face_found, video=video, frames=frames,
                            neutral_baseline=au_baseline if own else au_reference.au_baseline)
        # the exact float64 transforms the crops were warped with (align_matrix is stored as float32), so
        # re-cropping the same frames with them reproduces the crops bit for bit
        from talkbench.pipelines.face.align import alignment_matrices, mouth_matrices

        face_m = alignment_matrices(track.landmarks, track.face_found, self.cfg.align, self.fps)
        mouth_m = mouth_matrices(face_m, track.landmarks, track.face_found, self.cfg.align, self.fps)
        return AlignedVideo(
            faces=track.face_crop, mouths=track.mouth_crop,
            landmarks=np.asarray(track.landmarks_crop, np.float32), face_found=face_found,
            pose=np.asarray(track.pose, np.float32), aus=aus, fps=self.fps,
            align_matrix=face_m, mouth_matrix=mouth_m,
            frame_hw=(int(frames.shape[1]), int(frames.shape[2])), au_baseline=au_baseline)

    # -- ground truth ------------------------------------------------------------------------
    def decode(self, source: str | Path) -> np.ndarray:
        from talkbench.media import read_av

        return read_av(source, fps=self.fps, sample_rate=self.sample_rate).frames

    def ground_truth(self, source: str | Path, frames: np.ndarray | None = None) -> AlignedVideo:
        """The aligned source video (decoded here unless ``frames`` are given), memoised per process.

        Given frames are part of the key (by content): a personalized task's ground truth is only the
        part of the source after its fine-tuning frames, which must not be served the whole clip's entry.
        """
        path = Path(source).resolve()
        st = path.stat()
        content = None if frames is None else hashlib.sha1(np.ascontiguousarray(frames).data).hexdigest()
        key = (self.settings_hash, str(path), st.st_size, st.st_mtime_ns, content)
        if key in _GT_CACHE:
            _GT_CACHE.move_to_end(key)
            return _GT_CACHE[key]
        aligned = self.align(self.decode(path) if frames is None else frames, video=path)
        _GT_CACHE[key] = aligned
        while len(_GT_CACHE) > GT_CACHE_CLIPS:
            _GT_CACHE.popitem(last=False)
        return aligned

    def close(self) -> None:
        self.face.close()
