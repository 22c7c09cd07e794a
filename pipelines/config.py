"""The pipeline config: which stages run, in which order, with which settings, and how to execute.

``configs/pipeline.yaml`` holds the defaults with comments; every field can be overridden on the
command line with ``-o section.key=value``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field, create_model, model_validator

from talkbench.config import StrictModel
from talkbench.pipelines.core import DEFAULT_STAGES, STAGES
from talkbench.pipelines.face.config import FaceSettings


class ExecutionConfig(StrictModel):
    """How the job runs on Dask. Not part of the output's identity: change freely between reruns."""

    workers: int | None = Field(None, ge=1, description="LocalCluster worker processes; default one per core")
    threads_per_worker: int = Field(1, ge=1, description="keep 1: parallelism comes from processes")
    scheduler: str | None = Field(
        None, description="tcp://host:port of an existing Dask scheduler (see configs/slurm_example.yaml)"
    )
    clips_per_shard: int = Field(16, ge=1, description="clips per frames/*.parquet file (one row group each)")
    max_in_flight: int | None = Field(None, ge=1, description="clip tasks pending at once; default 2 per worker")
    memory_limit: str = Field("auto", description="per-worker memory limit of the LocalCluster, e.g. 4GiB")
    pin_workers: bool = Field(True, description="LocalCluster: worker i runs on CPU i (if workers <= CPUs); "
                                                "MediaPipe's threads stop hopping between cores")


class _Stages(StrictModel):
    """The ``stages`` field, first in every pipeline config (the registry's sections follow it)."""

    stages: list[str] = Field(default_factory=lambda: list(DEFAULT_STAGES), description="stages in order; the "
                              "first must be decode. Columns of stages left out are written as nulls")


#: one section per registered stage, named after it and typed by its settings class, in the default order
_StageSections: type[_Stages] = create_model(
    "_StageSections", __base__=_Stages, __module__=__name__,
    **{name: (STAGES.get(name).config, Field(default_factory=STAGES.get(name).config)) for name in DEFAULT_STAGES},
)


class PipelineConfig(_StageSections):
    """Everything ``talkbench prepare`` needs besides the dataset: stages, their settings, execution.

    The sections between ``stages`` and ``execution`` come from the stage registry
    (``talkbench.pipelines.core.STAGES``): a new stage brings its section with it."""

    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)

    @model_validator(mode="before")
    @classmethod
    def _split_moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "split" in data:
            raise ValueError("`split` is a dataset setting now: put it in the dataset YAML (configs/datasets/NAME.yaml, "
                             "--dataset-config) or pass -o split.KEY=VALUE to `talkbench prepare`")
        return data

    @model_validator(mode="after")
    def _known_stages(self) -> PipelineConfig:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; allowed: {STAGES.names()}")
        if self.stages[:1] != ["decode"]:
            raise ValueError("the first stage must be 'decode'")
        return self


#: the sections a benchmark task copies from the shards' resolved config (its ``preprocessing``), so that
#: generated videos are decoded and face-processed exactly like the data was: decode + FaceProcessor's settings
PREPROCESSING_SECTIONS: tuple[str, ...] = ("decode", *FaceSettings.model_fields)


# -- configs/pipeline.yaml --------------------------------------------------------------------------
def undocumented_fields() -> list[str]:
    """Dotted names of fields without a ``Field(description=...)``, the comment configs/pipeline.yaml
    shows beside them (a test keeps this empty)."""
    missing = []
    for name, field in PipelineConfig.model_fields.items():
        section = field.default_factory() if field.default_factory else None
        if isinstance(section, BaseModel):
            missing += [f"{name}.{k}" for k, f in type(section).model_fields.items() if not f.description]
        elif not field.description:
            missing.append(name)
    return missing


def _yaml_value(v: Any) -> str:
    """One YAML flow value; floats keep a dot so PyYAML reads 1.0e-10 as a number, not a string."""
    if isinstance(v, float):
        text = repr(v)
        mantissa, _, exp = text.partition("e")
        return (mantissa if "." in mantissa or "n" in mantissa else mantissa + ".0") + (f"e{exp}" if exp else "")
    if isinstance(v, list):
        return "[" + ", ".join(_yaml_value(x) for x in v) + "]"
    return json.dumps(v)


def _section_doc(section: BaseModel, name: str) -> list[str]:
    """The class docstring's first paragraph, else the first line of its module's docstring."""
    import sys
    import textwrap

    doc = (type(section).__doc__ or "").strip().split("\n\n")[0]
    if not doc:
        doc = (sys.modules[type(section).__module__].__doc__ or name).strip().splitlines()[0]
    return textwrap.wrap(" ".join(doc.split()), 106)


def render_yaml() -> str:
    """configs/pipeline.yaml: every default with its comment (``python -m talkbench.pipelines.config``)."""
    cfg = PipelineConfig()
    out = [
        "# talkbench prepare: the pipeline config. Every value here is the built-in default; a file passed",
        "# with --config may hold any subset, and every field can be overridden on the command line:",
        "#   talkbench prepare ... --config my.yaml -o landmarks.max_gap_frames=3 -o stages=[decode,landmarks]",
        "# Generated from the config classes: python -m talkbench.pipelines.config > configs/pipeline.yaml",
        "# Changing any value but execution.* makes a new output identity: an existing OUTPUT refuses it.",
        "",
    ]
    for name, field in PipelineConfig.model_fields.items():
        value = getattr(cfg, name)
        if not isinstance(value, BaseModel):
            out += [f"# {field.description}", f"{name}: {_yaml_value(value)}", ""]
            continue
        out += [f"# {line}" for line in _section_doc(value, name)]
        fields = type(value).model_fields
        out.append(f"{name}:" if fields else f"{name}: {{}}  # no settings")
        for key, f in fields.items():
            note = f.description
            if note:
                out.append(f"  # {note}")
            out.append(f"  {key}: {_yaml_value(getattr(value, key))}")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(render_yaml(), end="")
