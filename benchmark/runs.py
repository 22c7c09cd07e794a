"""Record benchmark results in MLflow: one experiment per task version, one run per submission.

What goes where (GUIDE §5): params for everything that can change a number (task and manifest hash,
submission identity, metric variants, weight hashes, missing-clip policy, talkbench version and git
commit), metrics for the aggregates and their CI bounds (``psnr``, ``psnr_ci_low``, ``psnr_ci_high``),
tags for bookkeeping, artifacts for the per-clip table, a results JSON and side-by-side frame grids.
Unavailable metrics are params and tags (``unavailable.<metric>``), never a number.

Duplicates: every run carries ``talkbench.run_key`` = hash(task hash, submission identity hash).
Scoring the same submission on the same task again is refused unless ``rerun``; with ``rerun`` the
new run is logged and the old one tagged ``talkbench.superseded_by`` (kept for history, hidden from
the leaderboard). Runs that never finished are superseded without asking.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from talkbench import __version__
from talkbench.benchmark.evaluator import EvalResult
from talkbench.benchmark.submissions import Submission
from talkbench.benchmark.tasks import TaskManifest
from talkbench.errors import TalkbenchError

TAG_KIND = "talkbench.kind"
TAG_RUN_KEY = "talkbench.run_key"
TAG_SUPERSEDED = "talkbench.superseded_by"
TAG_SUBMISSION = "talkbench.submission"
TAG_TASK = "talkbench.task"
PREFIX = "bench"
BOOKKEEPING_METRICS = ("n_clips", "n_clips_ok", "n_clips_failed", "coverage", "elapsed_s")


def experiment_name(task_name: str, version: int) -> str:
    return f"{PREFIX}/{task_name}/v{version}"


def run_key(task: TaskManifest, submission: Submission) -> str:
    return hashlib.sha256(f"{task.hash}:{submission.identity_hash}".encode()).hexdigest()[:32]


def use_tracking(uri: str | None) -> str:
    """Point mlflow at ``uri`` (``--tracking-uri``) or at talkbench's default rule."""
    import mlflow

    from talkbench import tracking

    if uri:
        mlflow.set_tracking_uri(uri)
        return uri
    return tracking.setup()


def _experiment(task: TaskManifest) -> str:
    from mlflow.tracking import MlflowClient

    from talkbench.tracking import get_or_create_experiment

    exp_id = get_or_create_experiment(experiment_name(task.name, task.version))
    client = MlflowClient()
    client.set_experiment_tag(exp_id, "talkbench.task_hash", task.hash)
    client.set_experiment_tag(exp_id, "talkbench.primary_metric", task.primary_metric)
    return exp_id


def active_runs_with_key(exp_id: str, key: str) -> list[Any]:
    """Runs of the experiment with this run key that no later run superseded."""
    from mlflow.tracking import MlflowClient

    runs = MlflowClient().search_runs([exp_id], filter_string=f"tags.`{TAG_RUN_KEY}` = '{key}'")
    return [r for r in runs if TAG_SUPERSEDED not in r.data.tags]


def check_duplicate(task: TaskManifest, submission: Submission, rerun: bool) -> list[str]:
    """Raise when this submission already has a finished run on this task (unless ``rerun``).

    Returns the ids of the runs the new one will supersede.
    """
    exp_id = _experiment(task)
    previous = active_runs_with_key(exp_id, run_key(task, submission))
    finished = [r for r in previous if r.info.status == "FINISHED"]
    if finished and not rerun:
        r = finished[0]
        raise TalkbenchError(
            f"{submission.name!r} was already scored on task {task.ref} (run {r.info.run_id}, same task hash "
            f"and submission hash); pass --rerun to replace that run")
    return [r.info.run_id for r in previous]


def git_commit() -> str | None:
    """The commit of the talkbench source tree, when it is a git checkout (read-only query)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("mediapipe", "av", "numpy", "torch", "scikit-image", "mlflow"):
        with contextlib.suppress(PackageNotFoundError):
            out[f"version.{pkg}"] = version(pkg)
    return out


def run_params(result: EvalResult, length_tolerance: int) -> dict[str, str]:
    task, sub = result.task, result.submission
    params: dict[str, Any] = {
        "task": task.name, "task_version": task.version, "task_hash": task.hash, "task_kind": task.kind,
        "task_split": task.split, "task_n_clips": len(task.clips), "primary_metric": task.primary_metric,
        "shards_config_hash": task.shards_config_hash or "none",
        "submission": sub.name, "submission_spec": sub.spec, "submission_hash": sub.identity_hash,
        "missing_policy": result.missing_policy, "length_tolerance": length_tolerance,
        "submission_problems": len(sub.problems),
        "talkbench_version": __version__, "git_commit": git_commit() or "unknown",
        "python": platform.python_version(), **_package_versions(),
    }
    for k, v in sub.meta.items():
        params[f"submission.{k}"] = v
    for name, info in result.metrics.items():
        params[f"variant.{name}"] = info.variant
        for w, sha in info.weights.items():
            params[f"weights.{w}"] = sha
        for key, direction in info.directions.items():
            params[f"direction.{key}"] = direction
            params[f"metric.{key}"] = name
    for name, reason in result.unavailable.items():
        params[f"unavailable.{name}"] = reason
    return {k: str(v)[:6000] for k, v in params.items()}


def run_metrics(result: EvalResult) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, agg in result.aggregates.items():
        if math.isfinite(agg.value):
            out[key] = agg.value
        if math.isfinite(agg.ci_low):
            out[f"{key}_ci_low"] = agg.ci_low
            out[f"{key}_ci_high"] = agg.ci_high
    n = len(result.rows)
    out.update(n_clips=n, n_clips_ok=result.n_ok, n_clips_failed=result.n_failed,
               coverage=result.n_ok / n if n else 0.0, elapsed_s=result.elapsed_s)
    return out


def results_json(result: EvalResult, params: dict[str, str]) -> dict[str, Any]:
    return {
        "task": result.task.ref, "task_hash": result.task.hash, "submission": result.submission.name,
        "submission_hash": result.submission.identity_hash, "missing_policy": result.missing_policy,
        "params": params,
        "aggregates": {k: {f: _finite_or_none(v) for f, v in vars(a).items()} for k, a in result.aggregates.items()},
        "directions": result.directions,
        "metrics": {n: vars(i) for n, i in result.metrics.items()},
        "unavailable": result.unavailable,
        "clip_errors": [{k: r.get(k) for k in ("clip_id", "error_kind", "error")}
                        for r in result.rows if r["status"] != "ok"],
        "metric_errors": result.metric_errors,
        "submission_problems": result.submission.problems,
        "n_clips": len(result.rows), "n_clips_ok": result.n_ok,
    }


def log_result(result: EvalResult, supersedes: list[str] | None = None, length_tolerance: int = 1) -> str:
    """Log one evaluated submission as a new run; mark ``supersedes`` runs; return the run id."""
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient
    from PIL import Image

    task, sub = result.task, result.submission
    exp_id = _experiment(task)
    params = run_params(result, length_tolerance)
    tags = {TAG_KIND: "bench", TAG_RUN_KEY: run_key(task, sub), TAG_SUBMISSION: sub.name, TAG_TASK: task.ref,
            **{f"unavailable.{n}": r for n, r in result.unavailable.items()}}
    if result.videos_dir is not None:
        tags["talkbench.videos_dir"] = str(result.videos_dir.resolve())
    with mlflow.start_run(experiment_id=exp_id, run_name=sub.name, tags=tags) as run:
        mlflow.log_params(params)
        mlflow.log_metrics(run_metrics(result))
        with tempfile.TemporaryDirectory(prefix="talkbench-run-") as tmp:
            out = Path(tmp)
            pd.DataFrame(result.rows).to_csv(out / "per_clip.csv", index=False)
            (out / "results.json").write_text(json.dumps(results_json(result, params), indent=2,
                                                         default=_json_default))
            mlflow.log_artifact(str(out / "per_clip.csv"))
            mlflow.log_artifact(str(out / "results.json"))
            if result.grids:
                grids = out / "grids"
                grids.mkdir()
                for clip_id, img in result.grids.items():
                    Image.fromarray(img).save(grids / f"{clip_id}.png")
                mlflow.log_artifacts(str(grids), artifact_path="grids")
        run_id = run.info.run_id
    client = MlflowClient()
    for old in supersedes or []:
        client.set_tag(old, TAG_SUPERSEDED, run_id)
    return run_id


def _finite_or_none(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
