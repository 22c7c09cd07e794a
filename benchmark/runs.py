"""Record benchmark results in MLflow: one experiment per task version, one run per submission.

What goes where (GUIDE §5): the run record (``benchmark/records.py``) is the source of everything
below and is logged itself as ``results.json``: params for everything that can change a number (task and manifest hash,
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

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from talkbench.benchmark.evaluator import EvalResult
from talkbench.benchmark.records import RunRecord
from talkbench.benchmark.submissions import Submission
from talkbench.benchmark.tasks import TaskManifest
from talkbench.errors import TalkbenchError

TAG_KIND = "talkbench.kind"
TAG_RUN_KEY = "talkbench.run_key"
TAG_SUPERSEDED = "talkbench.superseded_by"
TAG_SUBMISSION = "talkbench.submission"
TAG_TASK = "talkbench.task"
PREFIX = "bench"
RECORD_ARTIFACT = "results.json"


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


def log_result(result: EvalResult, supersedes: list[str] | None = None) -> str:
    """Log one evaluated submission as a new run from its record; mark ``supersedes`` runs; return the run id.

    Params and metrics are derived from ``result.record`` and the record itself is the ``results.json``
    artifact the leaderboard reads back.
    """
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient
    from PIL import Image

    record = result.record
    if record is None:
        raise TalkbenchError("log_result needs the run record (set by the harness)")
    task, sub = result.task, result.submission
    exp_id = _experiment(task)
    tags = {TAG_KIND: "bench", TAG_RUN_KEY: run_key(task, sub), TAG_SUBMISSION: sub.name, TAG_TASK: task.ref,
            **{f"unavailable.{n}": r for n, r in record.unavailable.items()}}
    if result.videos_dir is not None:
        tags["talkbench.videos_dir"] = str(result.videos_dir.resolve())
    with mlflow.start_run(experiment_id=exp_id, run_name=sub.name, tags=tags) as run:
        mlflow.log_params(record.mlflow_params())
        mlflow.log_metrics(record.mlflow_metrics())
        with tempfile.TemporaryDirectory(prefix="talkbench-run-") as tmp:
            out = Path(tmp)
            pd.DataFrame(result.rows).to_csv(out / "per_clip.csv", index=False)
            (out / RECORD_ARTIFACT).write_text(record.to_json(), encoding="utf-8")
            mlflow.log_artifact(str(out / "per_clip.csv"))
            mlflow.log_artifact(str(out / RECORD_ARTIFACT))
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


def read_record(run_id: str) -> RunRecord:
    """The run record a run logged (its ``results.json``), validated."""
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory(prefix="talkbench-record-") as tmp:
        try:
            local = MlflowClient().download_artifacts(run_id, RECORD_ARTIFACT, tmp)
        except Exception as e:  # noqa: BLE001 - any store error means: no readable record
            raise TalkbenchError(f"run {run_id} has no {RECORD_ARTIFACT}: {type(e).__name__}: {e}") from None
        return RunRecord.from_json(Path(local).read_bytes(), source=f"run {run_id}: {RECORD_ARTIFACT}")
