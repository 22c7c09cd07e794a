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

A run folder whose record scored no clip is logged (when logged at all: ``bench run`` logs only a
recipe's) as a ``bench-unscored`` run: its record says why, the ablation view shows that, it never ranks.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from talkbench.benchmark.records import RunRecord, TaskInfo
from talkbench.errors import TalkbenchError
from talkbench.tracking import TrackingError

if TYPE_CHECKING:  # light imports: `bench log` needs neither torch nor the metrics
    from talkbench.benchmark.evaluator import EvalResult
    from talkbench.benchmark.submissions import Submission
    from talkbench.benchmark.tasks import TaskManifest

TAG_KIND = "talkbench.kind"
#: ``talkbench.kind`` of a run kept for the record that scored no clip (a recipe's ablation variant too
#: undertrained to draw a face): no run key, so it never counts as "already scored" and never ranks
KIND_UNSCORED = "bench-unscored"
TAG_RUN_KEY = "talkbench.run_key"
TAG_SUPERSEDED = "talkbench.superseded_by"
TAG_SUBMISSION = "talkbench.submission"
TAG_TASK = "talkbench.task"
PREFIX = "bench"
RECORD_ARTIFACT = "results.json"


def experiment_name(task_name: str, version: int) -> str:
    return f"{PREFIX}/{task_name}/v{version}"


def run_key(task: TaskManifest, submission: Submission) -> str:
    return run_key_of(task.hash, submission.identity_hash)


def run_key_of(task_hash: str, submission_hash: str) -> str:
    """The run key from the two hashes (a run record carries both)."""
    return hashlib.sha256(f"{task_hash}:{submission_hash}".encode()).hexdigest()[:32]


def use_tracking(uri: str | None) -> str:
    """Point mlflow at ``uri`` (``--tracking-uri``) or at talkbench's default rule."""
    import mlflow

    from talkbench import tracking

    if uri:
        mlflow.set_tracking_uri(uri)
        return uri
    return tracking.setup()


def _experiment(task: TaskManifest | TaskInfo) -> str:
    from mlflow.tracking import MlflowClient

    from talkbench.tracking import call, get_or_create_experiment

    exp_id = get_or_create_experiment(experiment_name(task.name, task.version))
    client = MlflowClient()
    call(client.set_experiment_tag, exp_id, "talkbench.task_hash", task.hash, what="tagging the experiment")
    call(client.set_experiment_tag, exp_id, "talkbench.primary_metric", task.primary_metric,
         what="tagging the experiment")
    return exp_id


def active_runs_with_key(exp_id: str, key: str) -> list[Any]:
    """Runs of the experiment with this run key that no later run superseded."""
    from mlflow.tracking import MlflowClient

    from talkbench.tracking import call

    runs = call(MlflowClient().search_runs, [exp_id], filter_string=f"tags.`{TAG_RUN_KEY}` = '{key}'",
                what="searching runs")
    return [r for r in runs if TAG_SUPERSEDED not in r.data.tags]


def check_duplicate(task: TaskManifest, submission: Submission, rerun: bool) -> list[str]:
    """Raise when this submission already has a finished run on this task (unless ``rerun``).

    Returns the ids of the runs the new one will supersede. A cheap early check (before any scoring);
    :func:`log_folder` checks again under the run key's lock right before logging.
    """
    exp_id = _experiment(task)
    return _supersedable(exp_id, run_key(task, submission), submission.name, task.ref, rerun)


def _supersedable(exp_id: str, key: str, name: str, task_ref: str, rerun: bool, where: str = "") -> list[str]:
    previous = active_runs_with_key(exp_id, key)
    finished = [r for r in previous if r.info.status == "FINISHED"]
    if finished and not rerun:
        r = finished[0]
        raise TalkbenchError(
            f"{name!r} was already scored on task {task_ref} (run {r.info.run_id}, same task hash "
            f"and submission hash); pass --rerun to replace that run{where}")
    return [r.info.run_id for r in previous]


# --------------------------------------------------------------------------- results on disk first
PER_CLIP = "per_clip.csv"
GRIDS = "grids"


def write_run_folder(result: EvalResult, folder: str | Path) -> Path:
    """Write everything a run logs (``results.json``, ``per_clip.csv``, ``grids/*.png``) into ``folder``
    BEFORE MLflow is touched, so a failing store loses nothing: ``bench log FOLDER`` logs it later.

    ``results.json`` is written last (atomically): its presence means the folder is complete.
    """
    import pandas as pd
    from PIL import Image

    from talkbench.io import atomic_write

    if result.record is None:
        raise TalkbenchError("write_run_folder needs the run record (set by the harness)")
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(result.rows).to_csv(out / PER_CLIP, index=False)
        if result.grids:
            (out / GRIDS).mkdir(exist_ok=True)
            for clip_id, img in result.grids.items():
                Image.fromarray(img).save(out / GRIDS / f"{clip_id}.png")
        atomic_write(out / RECORD_ARTIFACT, result.record.to_json())
    except OSError as e:
        raise TalkbenchError(f"cannot write the results to {out}: {e.strerror or e}") from None
    return out


def log_result(result: EvalResult, supersedes: list[str] | None = None, folder: str | Path | None = None,
               rerun: bool = True) -> str:
    """Write the run folder (a temporary one unless ``folder``) and log it (see :func:`log_folder`)."""
    if folder is not None:
        return log_folder(write_run_folder(result, folder), rerun=rerun, supersedes=supersedes)
    with tempfile.TemporaryDirectory(prefix="talkbench-run-") as tmp:
        return log_folder(write_run_folder(result, tmp), rerun=rerun, supersedes=supersedes)


def log_folder(folder: str | Path, rerun: bool = False, supersedes: list[str] | None = None,
               videos_dir: str | Path | None = None) -> str:
    """Log a run folder written by :func:`write_run_folder` as one MLflow run; return its id.

    Atomic per run key: under the key's lock the duplicate check is made again right before logging,
    so two concurrent ``bench run`` of one submission end with one active run (the later one is
    refused, or with ``rerun`` supersedes the earlier). Every store call retries while the store is
    busy; a final failure says where the results are and how to log them later.
    """
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    from talkbench.tracking import call, store_lock

    folder = Path(folder)
    path = folder / RECORD_ARTIFACT
    if not path.is_file():
        raise TalkbenchError(f"{folder}: no {RECORD_ARTIFACT} (not a run folder written by `bench run`)")
    record = RunRecord.from_json(path.read_bytes(), source=str(path))
    later = f"; the results are safe in {folder}: log them later with `talkbench bench log {folder}`"
    if record.n_clips_ok == 0:
        return _log_unscored(folder, record, later)
    key = run_key_of(record.task.hash, record.submission.hash)
    try:
        exp_id = _experiment(record.task)
        with store_lock(f"run-{key}"):
            previous = _supersedable(exp_id, key, record.submission.name, record.task.ref, rerun,
                                     where=f" (this run's results stay in {folder})")
            tags = {TAG_KIND: "bench", TAG_RUN_KEY: key, TAG_SUBMISSION: record.submission.name,
                    TAG_TASK: record.task.ref, "talkbench.results_dir": str(folder.resolve()),
                    **{f"unavailable.{n}": r for n, r in record.unavailable.items()}}
            if videos_dir is not None:
                tags["talkbench.videos_dir"] = str(Path(videos_dir).resolve())
            client = MlflowClient()
            run = call(client.create_run, exp_id, run_name=record.submission.name, tags=tags, what="creating the run")
            run_id = run.info.run_id
            now = int(time.time() * 1000)
            params = [Param(k, v) for k, v in record.mlflow_params().items()]
            metrics = [Metric(k, float(v), now, 0) for k, v in record.mlflow_metrics().items()]
            for i in range(0, max(len(params), len(metrics)), 100):  # MLflow's batch limits
                call(client.log_batch, run_id, metrics=metrics[i:i + 100], params=params[i:i + 100],
                     tags=[RunTag("talkbench.logged_from", "results_dir")] if i == 0 else [],
                     what="logging params and metrics")
            for name in (PER_CLIP, RECORD_ARTIFACT):
                if (folder / name).is_file():
                    call(client.log_artifact, run_id, str(folder / name), what="logging artifacts")
            if (folder / GRIDS).is_dir():
                call(client.log_artifacts, run_id, str(folder / GRIDS), artifact_path=GRIDS, what="logging grids")
            call(client.set_terminated, run_id, what="finishing the run")
            for old in sorted(set(previous) | set(supersedes or [])):
                call(client.set_tag, old, TAG_SUPERSEDED, run_id, what="superseding the earlier run")
    except TrackingError as e:
        raise TrackingError(f"{e}{later}") from None
    return run_id


def _log_unscored(folder: Path, record: RunRecord, later: str) -> str:
    """Log a record that scored no clip as a ``bench-unscored`` run: record, per-clip table, params; no
    metrics and no run key (a later ``bench run`` of the submission is never refused because of it)."""
    from mlflow.entities import Param, RunTag
    from mlflow.tracking import MlflowClient

    from talkbench.tracking import call

    try:
        exp_id = _experiment(record.task)
        client = MlflowClient()
        tags = {TAG_KIND: KIND_UNSCORED, TAG_SUBMISSION: record.submission.name, TAG_TASK: record.task.ref,
                "talkbench.results_dir": str(folder.resolve()), "talkbench.not_scored": record.not_scored_reason}
        run = call(client.create_run, exp_id, run_name=record.submission.name, tags=tags, what="creating the run")
        run_id = run.info.run_id
        params = [Param(k, v) for k, v in record.mlflow_params().items()]
        for i in range(0, len(params), 100):
            call(client.log_batch, run_id, params=params[i:i + 100],
                 tags=[RunTag("talkbench.logged_from", "results_dir")] if i == 0 else [], what="logging params")
        for name in (PER_CLIP, RECORD_ARTIFACT):
            if (folder / name).is_file():
                call(client.log_artifact, run_id, str(folder / name), what="logging artifacts")
        call(client.set_terminated, run_id, what="finishing the run")
    except TrackingError as e:
        raise TrackingError(f"{e}{later}") from None
    return run_id


def unscored_runs(exp_id: str) -> list[Any]:
    """The experiment's finished ``bench-unscored`` runs, newest first, one per submission name."""
    from mlflow.tracking import MlflowClient

    from talkbench.tracking import call

    found = call(MlflowClient().search_runs, [exp_id],
                 filter_string=f"tags.`{TAG_KIND}` = '{KIND_UNSCORED}' and attributes.status = 'FINISHED'",
                 order_by=["attributes.start_time DESC"], what="searching runs")
    out, seen = [], set()
    for r in found:
        name = r.data.tags.get(TAG_SUBMISSION)
        if name not in seen:
            seen.add(name)
            out.append(r)
    return out


def read_record(run_id: str) -> RunRecord:
    """The run record a run logged (its ``results.json``), validated."""
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory(prefix="talkbench-record-") as tmp:
        try:
            local = MlflowClient().download_artifacts(run_id, RECORD_ARTIFACT, tmp)
        except Exception as e:  # noqa: BLE001 - any store error means: no readable record
            raise TalkbenchError(f"run {run_id} has no {RECORD_ARTIFACT}: {type(e).__name__}: {e}") from None
        return RunRecord.from_json(Path(local).read_bytes(), source=f"run {run_id}: {RECORD_ARTIFACT}")
