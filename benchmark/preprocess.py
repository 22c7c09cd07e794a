"""Generated and real videos through THE SAME face processing as the preparation pipeline.

Nothing here re-implements face work: frames go through ``talkbench.pipelines.face.process_frames``
(MediaPipe face mesh, similarity alignment, crops, pose) and the pipeline's AU backend, with the
settings copied into the task from the shards' manifest. The ground truth is decoded again from its
source video (not read from stored JPEG crops), so both sides of every comparison went through exactly
the same decoder, tracker and warp.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from talkbench.benchmark.metrics.base import AlignedVideo
from talkbench.benchmark.tasks import TaskManifest
from talkbench.config import format_validation_error
from talkbench.errors import ClipError, TalkbenchError
from talkbench.io import stable_hash
from talkbench.pipelines.core import WorkerContext

#: ground truth aligned once per process: (settings hash, path, size, mtime) -> AlignedVideo. An LRU of
#: GT_CACHE_CLIPS clips (~5 MB each at 128 px crops), so scoring several submissions on one task
#: processes each ground-truth clip once.
GT_CACHE_CLIPS = 64
_GT_CACHE: OrderedDict[tuple[str, str, int, int], AlignedVideo] = OrderedDict()


class Preprocessor:
    """Turns (T, H, W, 3) frames into an :class:`AlignedVideo` with the task's face settings.

    The MediaPipe graph is created once per instance and reset per clip by ``process_frames`` (a
    tracker must not carry a face from one clip into the next).
    """

    def __init__(self, task: TaskManifest):
        from talkbench.pipelines.config import PipelineConfig

        sections = {k: v for k, v in task.preprocessing.items() if k in ("decode", "landmarks", "align", "pose", "au")}
        try:
            self.cfg = PipelineConfig.model_validate(sections)
        except ValidationError as e:
            raise TalkbenchError(
                f"task {task.ref}: its face-processing settings do not fit this talkbench version "
                f"({format_validation_error(e, 'preprocessing')}); re-create the task from current shards") from None
        self.fps = task.fps
        self.sample_rate = task.sample_rate
        self.settings_hash = stable_hash(task.preprocessing, 16)  # in-memory cache key only
        self._tracker: Any = None
        self._ctx = WorkerContext()  # per-run resources of the AU backend (calibration, binary path)

    # -- shared pipeline functions ------------------------------------------------------------
    def _tracker_for_run(self) -> Any:
        if self._tracker is None:
            from talkbench.pipelines.face import FaceMeshTracker

            self._tracker = FaceMeshTracker.from_config(self.cfg.landmarks)
        return self._tracker

    def align(self, frames: np.ndarray, video: str | Path | None = None) -> AlignedVideo:
        """Face tracking, alignment, pose and AUs for one clip's frames at the task fps.

        ``video``: the file the frames were decoded from, for AU backends that read videos (OpenFace).
        """
        from talkbench.pipelines.face import process_frames

        try:
            out = process_frames(frames, self.fps, self.cfg.landmarks, self.cfg.align, self.cfg.pose,
                                 tracker=self._tracker_for_run())
        except ClipError:
            raise
        except Exception as e:  # noqa: BLE001 - recorded against the clip, the run goes on
            raise ClipError("preprocess_failed", f"{type(e).__name__}: {e}") from None
        face_found = np.asarray(out["face_found"], bool)
        if not face_found.any():
            raise ClipError("no_face", f"no face found on any of {len(face_found)} frames")
        aus = estimate_aus(frames, out, self.fps, self.cfg.au, self._ctx, video)
        return AlignedVideo(
            faces=out["face_crop"], mouths=out["mouth_crop"],
            landmarks=np.asarray(out["landmarks_crop"], np.float32), face_found=face_found,
            pose=np.asarray(out["pose"], np.float32), aus=aus, fps=self.fps)

    # -- ground truth ------------------------------------------------------------------------
    def decode(self, source: str | Path) -> np.ndarray:
        from talkbench.media import read_av

        return read_av(source, fps=self.fps, sample_rate=self.sample_rate).frames

    def ground_truth(self, source: str | Path, frames: np.ndarray | None = None) -> AlignedVideo:
        """The aligned source video (decoded here unless ``frames`` are given), memoised per process."""
        path = Path(source).resolve()
        st = path.stat()
        key = (self.settings_hash, str(path), st.st_size, st.st_mtime_ns)
        if key in _GT_CACHE:
            _GT_CACHE.move_to_end(key)
            return _GT_CACHE[key]
        aligned = self.align(self.decode(path) if frames is None else frames, video=path)
        _GT_CACHE[key] = aligned
        while len(_GT_CACHE) > GT_CACHE_CLIPS:
            _GT_CACHE.popitem(last=False)
        return aligned

    def close(self) -> None:
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None
        self._ctx.close()


def estimate_aus(frames: np.ndarray, face_out: dict[str, Any], fps: float, au_cfg: Any, ctx: Any,
                 video: str | Path | None = None) -> dict[str, np.ndarray]:
    """AU intensities through the pipeline's registered AU backend, exactly as the ``au`` stage calls it.

    The geometric backend reads the landmarks; the openface backend reads a video file: ``video`` when
    the frames came from one, else the frames are written to a temporary MP4 first.
    """
    import tempfile

    from talkbench.pipelines.au import AU_BACKENDS
    from talkbench.pipelines.core import Clip, ClipRecord

    backend = AU_BACKENDS.get(au_cfg.backend)
    with tempfile.TemporaryDirectory(prefix="talkbench-au-") as tmp:
        if au_cfg.backend == "openface" and video is None:
            from talkbench.media import write_video

            video = write_video(Path(tmp) / "generated.mp4", frames, fps=fps)
        clip = Clip(record=ClipRecord(clip_id="bench", dataset="bench", source_path=str(video or ""),
                                      speaker_id="bench"), fps=fps)
        clip.frames_table = {"landmarks": face_out["landmarks"], "face_found": face_out["face_found"],
                             "timestamp_s": np.arange(len(frames)) / fps}
        values = backend(clip, au_cfg, ctx)
    return {k: np.asarray(v, np.float32) for k, v in values.items()}
