"""The pipeline config: which stages run, in which order, with which settings, and how to execute.

``configs/pipeline.yaml`` holds the defaults with comments; every field can be overridden on the
command line with ``-o section.key=value``.
"""

from __future__ import annotations

from pydantic import Field, model_validator
from talkbench.pipelines.stages.align import AlignConfig
from talkbench.pipelines.stages.au import AUConfig
from talkbench.pipelines.stages.audio_features import AudioFeaturesConfig
from talkbench.pipelines.stages.decode import DecodeConfig
from talkbench.pipelines.stages.encode import EncodeConfig
from talkbench.pipelines.stages.landmarks import LandmarksConfig
from talkbench.pipelines.stages.pose import PoseConfig
from talkbench.pipelines.stages.quality import QualityConfig

from talkbench.config import StrictModel

DEFAULT_STAGES = ["decode", "landmarks", "align", "pose", "au", "audio_features", "quality", "encode"]


class SplitConfig(StrictModel):
    """Deterministic, speaker-disjoint splits: a speaker's clips all land in one split."""

    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0
    #: explicit speaker lists win over the fractions (e.g. the standard GRID test speakers)
    val_speakers: list[str] = Field(default_factory=list)
    test_speakers: list[str] = Field(default_factory=list)


class ExecutionConfig(StrictModel):
    workers: int | None = Field(None, ge=1, description="worker processes; default one per core")
    threads_per_worker: int = Field(1, ge=1)
    scheduler: str | None = Field(None, description="tcp://host:port of an existing Dask scheduler")
    clips_per_shard: int = Field(16, ge=1)
    max_in_flight: int | None = Field(None, ge=1, description="bounded futures; default 2 per worker")
    memory_limit: str = "auto"


class PipelineConfig(StrictModel):
    stages: list[str] = Field(default_factory=lambda: list(DEFAULT_STAGES))
    decode: DecodeConfig = Field(default_factory=DecodeConfig)
    landmarks: LandmarksConfig = Field(default_factory=LandmarksConfig)
    align: AlignConfig = Field(default_factory=AlignConfig)
    pose: PoseConfig = Field(default_factory=PoseConfig)
    au: AUConfig = Field(default_factory=AUConfig)
    audio_features: AudioFeaturesConfig = Field(default_factory=AudioFeaturesConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    encode: EncodeConfig = Field(default_factory=EncodeConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)

    @model_validator(mode="after")
    def _known_stages(self) -> PipelineConfig:
        from talkbench.pipelines import stages as _  # noqa: F401  (registers the stages)
        from talkbench.pipelines.core import STAGES

        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; allowed: {STAGES.names()}")
        if self.stages[:1] != ["decode"]:
            raise ValueError("the first stage must be 'decode'")
        return self
