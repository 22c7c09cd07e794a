"""The AU backend contract: settings, the registry, and what a backend reads (arrays, not a pipeline Clip).

A backend is ``fn(inputs: AUInputs, cfg: AUConfig, ctx: WorkerContext) -> {"AU25": (T,) float32, ...}``
on OpenFace's 0-5 scale, NaN on frames it cannot score; AUs it does not give are simply absent from the
dict. A backend that reads a video file (OpenFace) sets ``fn.needs_video = True``; :func:`estimate_aus`
then writes the frames to a temporary file when they did not come from one (generated videos).

A backend that measures AUs from a clip's neutral face (the geometric one) also gives
``fn.neutral_baseline(inputs, cfg, ctx) -> {feature: value}`` and honours ``AUInputs.neutral_baseline``:
the benchmark measures both sides of a pair from the real clip's neutral face (no per-side
normalisation). A backend that calibrates inside its own binary, per video (OpenFace), gives neither.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field, field_validator

from talkbench.config import StrictModel
from talkbench.registry import Registry

if TYPE_CHECKING:
    from talkbench.pipelines.core import WorkerContext

#: name -> backend, lazy: listing the names imports no backend
AU_BACKENDS: Registry[Any] = Registry("AU backend")
AU_BACKENDS.register("geometric", lazy="talkbench.pipelines.au.geometric:geometric_backend")
AU_BACKENDS.register("openface", lazy="talkbench.pipelines.au.openface:openface_backend")


class AUConfig(StrictModel):
    """AU intensities through a pluggable backend (``geometric`` or ``openface``)."""

    backend: str = Field("geometric", description="AU estimator: geometric (landmark model, no binary) or openface "
                         "(FeatureExtraction)")  # validated against AU_BACKENDS below
    calibration: str | None = Field(None, description="geometric: calibration JSON; default the shipped one")
    openface_bin: str | None = Field(None, description="openface: FeatureExtraction path; default from PATH")
    openface_args: list[str] = Field(
        default_factory=list, description="openface: extra arguments, e.g. ['-mloc', 'model/main_clnf_general.txt']"
    )
    openface_timeout_s: float = Field(600.0, gt=0, description="openface: per-clip time limit")

    @field_validator("backend")
    @classmethod
    def _registered(cls, v: str) -> str:
        if v not in AU_BACKENDS:
            raise ValueError(f"unknown AU backend {v!r}; known: {', '.join(AU_BACKENDS.names())}")
        return v


@dataclass(frozen=True)
class AUInputs:
    """Everything an AU backend may read about one clip's frames."""

    n_frames: int
    fps: float
    #: (T, 478, 3) main-face landmarks in source pixels (the landmarks step), None when not computed
    landmarks: np.ndarray | None = None
    #: (T,) bool, True on detected and interpolated frames
    face_found: np.ndarray | None = None
    #: the video file the frames were decoded from, None for frames that came from no file
    video: str | Path | None = None
    #: output frame -> 0-based source frame (the decode step), to map a backend's source-frame rows
    source_index: np.ndarray | None = None
    #: the neutral feature values to measure AUs from (another clip's, see :func:`neutral_baseline`:
    #: the real clip's for a generated one); None = this clip's own. Backends that calibrate per video ignore it
    neutral_baseline: dict[str, float] | None = None


AUBackend = Callable[[AUInputs, AUConfig, "WorkerContext"], dict[str, np.ndarray]]


def estimate_aus(inputs: AUInputs, cfg: AUConfig, ctx: WorkerContext,
                 frames: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """AU intensities through the configured backend: {name: (n_frames,) float32}.

    ``frames`` (T, H, W, 3) uint8 are written to a temporary MP4 for a backend that reads videos when
    ``inputs.video`` is None.
    """
    backend = AU_BACKENDS.get(cfg.backend)
    with tempfile.TemporaryDirectory(prefix="talkbench-au-") as tmp:
        if getattr(backend, "needs_video", False) and inputs.video is None:
            if frames is None:
                raise ValueError(f"the {cfg.backend!r} AU backend reads a video file: give the frames or the video")
            from dataclasses import replace

            from talkbench.media import write_video

            inputs = replace(inputs, video=write_video(Path(tmp) / "frames.mp4", frames, fps=inputs.fps))
        values = backend(inputs, cfg, ctx)
    out = {}
    for name, col in values.items():
        col = np.asarray(col, dtype=np.float32)
        if len(col) != inputs.n_frames:
            raise RuntimeError(f"AU backend {cfg.backend!r} returned {len(col)} values for {inputs.n_frames} frames")
        out[name] = col
    return out


def neutral_baseline(inputs: AUInputs, cfg: AUConfig, ctx: WorkerContext) -> dict[str, float] | None:
    """This clip's neutral values in the configured backend's terms, to pass to another clip as
    ``AUInputs.neutral_baseline``; None for a backend that calibrates inside, per video (OpenFace)."""
    fn = getattr(AU_BACKENDS.get(cfg.backend), "neutral_baseline", None)
    return None if fn is None else fn(inputs, cfg, ctx)
