"""The objects every stage shares: a clip record, the clip being processed, the worker context.

A pipeline is a list of small stage functions with one signature (the video2dataset pattern)::

    def stage(clip: Clip, cfg: StageConfig, ctx: WorkerContext) -> Clip

A stage reads what earlier stages put on the clip, adds per-frame columns to ``clip.frames_table``
and clip-level values to ``clip.info``, and raises :class:`talkbench.errors.ClipError` when the clip
cannot go on. Stages are registered by name and ordered by the pipeline config.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from talkbench.registry import Registry


@dataclass(frozen=True)
class ClipRecord:
    """One input clip as a dataset adapter yields it. ``clip_id`` is stable across runs."""

    clip_id: str
    dataset: str
    source_path: str
    speaker_id: str
    split: str = "train"
    transcript: str | None = None
    #: word timings in seconds: ((start_s, end_s, word), ...), silence marked by adapters as "sil"
    words: tuple[tuple[float, float, str], ...] | None = None
    #: the path's original bytes when they are not UTF-8 (``source_path`` then shows them escaped)
    source_path_raw: bytes | None = None

    @property
    def path(self) -> str:
        """The file to open: the original name, whatever bytes it is made of."""
        return os.fsdecode(self.source_path_raw) if self.source_path_raw is not None else self.source_path
    #: ``source_path`` relative to the corpus root (what clips.parquet records; the root is in manifest.json)
    source_rel: str | None = None


@dataclass
class Clip:
    """The state of one clip as it moves through the stages."""

    record: ClipRecord
    #: decoded video at the target fps, (T, H, W, 3) uint8 RGB; dropped after the last image stage
    video: np.ndarray | None = None
    #: mono audio at the target sample rate, float32 in [-1, 1]
    audio: np.ndarray | None = None
    fps: float = 25.0
    sample_rate: int = 16_000
    #: clip-level columns of clips.parquet (see talkbench.schema.CLIP_FIELDS)
    info: dict[str, Any] = field(default_factory=dict)
    #: per-frame columns of frames/*.parquet: name -> array whose first axis is the frame index
    frames_table: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return 0 if self.video is None else int(self.video.shape[0])


class WorkerContext:
    """Per-process resources (models) created once per worker and reused for every clip."""

    def __init__(self) -> None:
        self._resources: dict[str, Any] = {}

    def resource(self, key: str, factory: Callable[[], Any]) -> Any:
        if key not in self._resources:
            self._resources[key] = factory()
        return self._resources[key]

    def close(self) -> None:
        for res in self._resources.values():
            close = getattr(res, "close", None)
            if callable(close):
                close()
        self._resources.clear()


StageFn = Callable[[Clip, Any, WorkerContext], Clip]


class Stage(NamedTuple):
    """A registered stage: its function and the pydantic model of its settings (the section of the
    pipeline config named after the stage). Calling it calls the function."""

    fn: StageFn
    config: type

    def __call__(self, clip: Clip, cfg: Any, ctx: WorkerContext) -> Clip:
        return self.fn(clip, cfg, ctx)


#: name -> :class:`Stage`. The lazy entries below are the one place a built-in stage is named, and
#: their order is the default order of ``talkbench prepare`` (the config's sections follow it too).
STAGES: Registry[Stage] = Registry("pipeline stage")
STAGES.register("decode", lazy="talkbench.pipelines.stages.decode:decode")
STAGES.register("landmarks", lazy="talkbench.pipelines.stages.landmarks:landmarks")
STAGES.register("align", lazy="talkbench.pipelines.stages.align:align")
STAGES.register("head", lazy="talkbench.pipelines.stages.head:head")
STAGES.register("pose", lazy="talkbench.pipelines.stages.pose:pose")
STAGES.register("au", lazy="talkbench.pipelines.stages.au:au")
STAGES.register("audio_features", lazy="talkbench.pipelines.stages.audio_features:audio_features")
STAGES.register("quality", lazy="talkbench.pipelines.stages.quality:quality")
STAGES.register("encode", lazy="talkbench.pipelines.stages.encode:encode")

#: the built-in stages in registration order: what runs when the config names no ``stages``
DEFAULT_STAGES: tuple[str, ...] = tuple(STAGES.in_order())


def register_stage(name: str, config_cls: type) -> Callable[[StageFn], Stage]:
    """Register ``fn`` as stage ``name``; ``config_cls`` is the pydantic model of its settings.

    A built-in stage also needs its lazy entry above (which fixes its place in the default order)."""

    def decorator(fn: StageFn) -> Stage:
        stage = Stage(fn, config_cls)
        STAGES.register(name)(stage)
        return stage

    return decorator
