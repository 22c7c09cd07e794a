"""The run record: ONE typed description of a scored submission, written by ``bench run`` and read back.

``bench run`` builds a :class:`RunRecord` from the evaluation and writes it as ``results.json`` (an
MLflow artifact of the run); the run's MLflow params and metrics are *derived* from the record
(:meth:`RunRecord.mlflow_params`, :meth:`RunRecord.mlflow_metrics`) so they can never disagree with
it, and the leaderboard reads the record back (:func:`RunRecord.from_json`) instead of parsing MLflow
parameter-name prefixes. The record carries what can change a number (task and submission hashes,
metric variants and weight hashes, the missing-clip policy, versions) beside the numbers themselves.

Non-finite numbers are stored as JSON ``null`` and read back as NaN. A record of another ``format``
is refused with a clear message (never half-read).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationError

from talkbench.errors import TalkbenchError

if TYPE_CHECKING:
    from talkbench.benchmark.evaluator import EvalResult

RECORD_FORMAT = 1
#: run-level counters logged as MLflow metrics beside the aggregates (never leaderboard columns)
BOOKKEEPING_METRICS = ("n_clips", "n_clips_ok", "n_clips_failed", "coverage", "elapsed_s")
Direction = Literal["higher", "lower", "none"]
#: packages whose version can change a number
PROVENANCE_PACKAGES = ("mediapipe", "av", "numpy", "torch", "scikit-image", "scipy", "opencv-contrib-python", "mlflow")


def _nan_from_null(v: Any) -> Any:
    return math.nan if v is None else v


def _null_from_nan(v: float) -> float | None:
    return v if math.isfinite(v) else None


#: a float that is NaN in memory and ``null`` in JSON (JSON has no NaN)
Num = Annotated[float, BeforeValidator(_nan_from_null), PlainSerializer(_null_from_nan, return_type=float | None)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class AggregateRecord(_Model):
    """A value key's aggregate over the scored clips: mean (or corpus value) with a bootstrap 95 % CI.

    ``n``: clips the value is defined on; ``n_undefined``: scored clips where it is undefined (NaN), so
    an aggregate never hides the clips it could not use.
    """

    value: Num
    ci_low: Num = math.nan
    ci_high: Num = math.nan
    n: int = 0
    n_undefined: int = 0


class MetricRecord(_Model):
    """One metric that ran: its variant (what exactly was computed), weights and value keys."""

    name: str
    variant: str
    requires_reference: bool
    corpus_level: bool = False
    weights: dict[str, str] = Field(default_factory=dict)  # weights name -> sha256
    directions: dict[str, Direction] = Field(default_factory=dict)  # public value key -> better direction
    ranks: dict[str, bool] = Field(default_factory=dict)  # public value key -> may it order a leaderboard


class TaskInfo(_Model):
    name: str
    version: int
    hash: str
    kind: str
    split: str
    n_clips: int
    primary_metric: str
    shards_config_hash: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


#: submission specs that are the ground truth itself: a reference row on the leaderboard, never a competitor
REFERENCE_SPECS = ("builtin:ground-truth",)


class SubmissionInfo(_Model):
    name: str
    spec: str
    hash: str
    role: Literal["competitor", "reference"] = "competitor"
    meta: dict[str, str] = Field(default_factory=dict)
    problems: list[dict[str, str]] = Field(default_factory=list)


class RecipeVariant(_Model):
    """An ablation variant a recipe run planned for a step: its leaderboard name, name and what it changes."""

    name: str
    variant: str
    description: str = ""


class RecipeInfo(_Model):
    """Which recipe step a submission is (``recipe run``): the step's full model or one of its ablation variants.

    Every scored submission of a recipe carries its step's whole ablation definition (``full`` and
    ``variants``), so a board rebuilt later from the store or from bundles can show the ablation section
    even when some of those runs are missing (a variant with no usable clip is never ranked).
    """

    name: str  # the recipe
    preset: str
    step: str  # the recipe step this submission is, or the one an ablation variant replaces
    step_index: int = 0  # the step's position among the recipe's scored steps (section order)
    full: str  # leaderboard name of the step's full model (this submission's own name when variant is None)
    variant: str | None = None  # ablation name; None: the full model
    description: str = ""  # what the variant changes
    variants: list[RecipeVariant] = Field(default_factory=list)  # the step's variants in that recipe run

    @property
    def ablation_of(self) -> str | None:
        """The full model a variant is compared with (None for the full model itself)."""
        return self.full if self.variant is not None else None


class Provenance(_Model):
    talkbench_version: str
    git_commit: str | None = None
    python: str = ""
    packages: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def current(cls) -> Provenance:
        """This process: talkbench version, source commit, Python and the packages that change numbers."""
        import platform

        from talkbench import __version__
        from talkbench.io import package_versions

        packages = {k: v for k, v in package_versions(PROVENANCE_PACKAGES).items() if v is not None}
        return cls(talkbench_version=__version__, git_commit=git_commit(), python=platform.python_version(),
                   packages=packages)


def git_commit() -> str | None:
    """The commit of the talkbench source tree, when it is a git checkout (read-only query)."""
    import subprocess
    from pathlib import Path

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


class ClipFailure(_Model):
    clip_id: str
    error_kind: str | None = None
    error: str | None = None


class MetricFailure(_Model):
    clip_id: str
    metric: str
    error: str


class RunRecord(_Model):
    """Everything one ``bench run`` of one submission on one task produced, except per-clip rows and images."""

    format: int = RECORD_FORMAT
    task: TaskInfo
    submission: SubmissionInfo
    provenance: Provenance
    missing_policy: str
    length_tolerance: int
    n_clips: int
    n_clips_ok: int
    elapsed_s: float = 0.0
    metrics: dict[str, MetricRecord] = Field(default_factory=dict)  # metrics that ran
    aggregates: dict[str, AggregateRecord] = Field(default_factory=dict)  # public value key -> aggregate
    key_metric: dict[str, str] = Field(default_factory=dict)  # public value key -> metric name
    unavailable: dict[str, str] = Field(default_factory=dict)  # metric name -> reason
    clip_errors: list[ClipFailure] = Field(default_factory=list)
    metric_errors: list[MetricFailure] = Field(default_factory=list)
    flags: dict[str, int] = Field(default_factory=dict)  # integrity flag -> clips flagged (benchmark/integrity.py)
    flag_rules: dict[str, str] = Field(default_factory=dict)  # integrity flag -> what it means, with its threshold
    #: geometry of the full-reference comparisons (benchmark/geometry.py) -> clips: align-gt / aligned-crop,
    #: or align-per-side where the output fitted neither (marked on the leaderboard)
    geometry: dict[str, int] = Field(default_factory=dict)
    #: codec normalisation: the one setting every scored video (ground truth included) was re-encoded with
    #: (benchmark/codec.py); None = scored as delivered
    codec: str | None = None
    #: set by ``recipe run``: the recipe step (or ablation variant) this submission is; None elsewhere
    recipe: RecipeInfo | None = None

    @property
    def per_side_clips(self) -> int:
        return self.geometry.get("align-per-side", 0)

    # -- derived views --------------------------------------------------------------------------
    @property
    def n_clips_failed(self) -> int:
        return self.n_clips - self.n_clips_ok

    @property
    def coverage(self) -> float:
        return self.n_clips_ok / self.n_clips if self.n_clips else 0.0

    @property
    def not_scored_reason(self) -> str:
        """"0/N (first error kind)": what an ablation view shows for a run with no usable clip."""
        first = next((c.error_kind for c in self.clip_errors if c.error_kind), "no clips")
        return f"{self.n_clips_ok}/{self.n_clips} ({first})"

    @property
    def directions(self) -> dict[str, Direction]:
        return {k: d for m in self.metrics.values() for k, d in m.directions.items()}

    @property
    def ranks(self) -> dict[str, bool]:
        return {k: r for m in self.metrics.values() for k, r in m.ranks.items()}

    def mlflow_params(self) -> dict[str, str]:
        """Flat MLflow params (everything that can change a number), derived from the record."""
        t, s, p = self.task, self.submission, self.provenance
        params: dict[str, Any] = {
            "record_format": self.format,
            "task": t.name, "task_version": t.version, "task_hash": t.hash, "task_kind": t.kind,
            "task_split": t.split, "task_n_clips": t.n_clips, "primary_metric": t.primary_metric,
            "shards_config_hash": t.shards_config_hash or "none",
            "submission": s.name, "submission_spec": s.spec, "submission_hash": s.hash,
            "missing_policy": self.missing_policy, "length_tolerance": self.length_tolerance,
            "geometry": ",".join(f"{k}:{v}" for k, v in sorted(self.geometry.items())) or "none",
            "codec": self.codec or "none",
            "submission_problems": len(s.problems),
            "talkbench_version": p.talkbench_version, "git_commit": p.git_commit or "unknown", "python": p.python,
            **{f"version.{k}": v for k, v in p.packages.items()},
            **{f"submission.{k}": v for k, v in s.meta.items()},
        }
        for name, m in self.metrics.items():
            params[f"variant.{name}"] = m.variant
            params.update({f"weights.{w}": sha for w, sha in m.weights.items()})
        params.update({f"unavailable.{n}": r for n, r in self.unavailable.items()})
        if self.recipe is not None:
            r = self.recipe
            params.update(recipe=r.name, recipe_preset=r.preset, recipe_step=r.step, recipe_variant=r.variant or "none",
                          ablation_of=r.ablation_of or "none")
        return {k: str(v)[:6000] for k, v in params.items()}

    def mlflow_metrics(self) -> dict[str, float]:
        """Aggregates (``key``, ``key_ci_low``, ``key_ci_high``; finite values only) and run counters."""
        out: dict[str, float] = {}
        for key, agg in self.aggregates.items():
            if math.isfinite(agg.value):
                out[key] = agg.value
            if math.isfinite(agg.ci_low):
                out[f"{key}_ci_low"] = agg.ci_low
                out[f"{key}_ci_high"] = agg.ci_high
        out.update(n_clips=self.n_clips, n_clips_ok=self.n_clips_ok, n_clips_failed=self.n_clips_failed,
                   coverage=self.coverage, elapsed_s=self.elapsed_s)
        out.update({f"flags.{k}": float(v) for k, v in self.flags.items()})
        return out

    # -- JSON ----------------------------------------------------------------------------------
    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "results.json") -> RunRecord:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise TalkbenchError(f"{source}: not valid JSON: {e}") from None
        fmt = data.get("format") if isinstance(data, dict) else None
        if fmt != RECORD_FORMAT:
            raise TalkbenchError(f"{source}: run record format {fmt!r}, this talkbench reads {RECORD_FORMAT} "
                                 "(re-score the submission with this version)")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise TalkbenchError(f"{source}: not a run record: {where}: {first['msg']}") from None

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_result(cls, result: EvalResult, length_tolerance: int, provenance: Provenance) -> RunRecord:
        task, sub = result.task, result.submission
        return cls(
            task=TaskInfo(name=task.name, version=task.version, hash=task.hash, kind=task.kind, split=task.split,
                          n_clips=len(task.clips), primary_metric=task.primary_metric,
                          shards_config_hash=task.shards_config_hash),
            submission=SubmissionInfo(name=sub.name, spec=sub.spec, hash=sub.identity_hash,
                                      role="reference" if sub.spec in REFERENCE_SPECS else "competitor",
                                      meta={k: str(v) for k, v in sub.meta.items()},
                                      problems=[{k: str(v) for k, v in p.items()} for p in sub.problems]),
            provenance=provenance, missing_policy=result.missing_policy, length_tolerance=length_tolerance,
            n_clips=len(result.rows), n_clips_ok=result.n_ok, elapsed_s=result.elapsed_s,
            metrics=result.metrics, aggregates=result.aggregates, key_metric=result.key_metric,
            unavailable=result.unavailable,
            clip_errors=[ClipFailure(clip_id=r["clip_id"], error_kind=r.get("error_kind"), error=r.get("error"))
                         for r in result.rows if r["status"] != "ok"],
            metric_errors=[MetricFailure(**e) for e in result.metric_errors],
            flags=result.flags, flag_rules=result.flag_rules, geometry=result.geometry, codec=result.codec,
        )
