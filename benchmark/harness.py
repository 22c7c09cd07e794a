"""`talkbench bench run` as a function: task + submission specs -> evaluated, logged MLflow runs."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from talkbench.benchmark import runs
from talkbench.benchmark.evaluator import EvalResult, evaluate
from talkbench.benchmark.preprocess import Preprocessor
from talkbench.benchmark.records import Provenance, RecipeInfo, RunRecord
from talkbench.benchmark.submissions import load_submission
from talkbench.benchmark.tasks import load_task
from talkbench.errors import TalkbenchError

log = logging.getLogger(__name__)
DEFAULT_OUTPUTS = Path("bench_outputs")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80] or "submission"


def run_submissions(task_ref: str, specs: list[str], name: str | None = None, tracking_uri: str | None = None,
                    rerun: bool = False, metrics: list[str] | None = None, outputs_dir: str | Path | None = None,
                    length_tolerance: int = 1, tasks_dir: str | Path | None = None, device: str | None = None,
                    log_to_mlflow: bool = True, keep_videos: bool = True,
                    names: dict[str, str] | None = None, allow_code: bool = True,
                    on_result: Callable[[EvalResult, str | None], None] | None = None,
                    scheduler: str | None = None, recipes: dict[str, RecipeInfo] | None = None
                    ) -> list[tuple[EvalResult, str | None]]:
    """Score each submission on the task (ground truth processed once), log one MLflow run each.

    ``scheduler``: ``local[:N]``, a Dask scheduler address or ``slurm:FILE`` (the pipeline's distributor); the clips of each submission are then
    scored on the cluster (``benchmark/distributed.py``), with the same numbers as a local run.

    Duplicates are checked for every submission BEFORE any scoring, so a refused rerun costs nothing.
    ``names``: spec -> display name, to name several submissions at once (``name`` names a single one).
    A submission with no scored clip (empty folder, every clip failed) is never logged (so it never
    reaches a leaderboard); the others are, and then :class:`NothingScoredError` names it.
    ``recipes``: spec -> the recipe step (or ablation variant) it is (``recipe run``), kept in its run
    record; such a submission with no scored clip is logged as a ``bench-unscored`` run, so the ablation
    view can say why, and still never ranks.
    ``on_result(result, run_id)`` is called as each submission finishes.
    """
    if name and len(specs) > 1:
        raise TalkbenchError("--name names one submission; give one --submission with it")
    subs = [load_submission(s, (names or {}).get(s, name), length_tolerance, allow_code=allow_code) for s in specs]
    task = load_task(task_ref, tasks_dir)
    supersedes: list[list[str]] = []
    if log_to_mlflow:
        runs.use_tracking(tracking_uri)
        for sub in subs:
            supersedes.append(runs.check_duplicate(task, sub, rerun))
    base = Path(outputs_dir) if outputs_dir else DEFAULT_OUTPUTS / slug(task.ref.replace("@", "-v"))
    pre = Preprocessor(task)
    provenance = Provenance.current()
    out: list[tuple[EvalResult, str | None]] = []
    try:
        for i, sub in enumerate(subs):
            # each run its own folder (two runs of one submission at once never share files): the
            # videos, then results.json + per_clip.csv + grids, all written before MLflow is touched
            folder = run_folder(base, sub.name)
            if scheduler:
                from talkbench.benchmark.distributed import evaluate_on_cluster

                result = evaluate_on_cluster(task, specs[i], scheduler, name=sub.name, length_tolerance=length_tolerance,
                                             metric_names=metrics, videos_dir=folder if keep_videos else None,
                                             device=device, allow_code=allow_code)
                result.submission = sub
            else:
                result = evaluate(task, sub, metric_names=metrics, videos_dir=folder if keep_videos else None,
                                  device=device, preprocessor=pre)
            result.record = RunRecord.from_result(result, length_tolerance, provenance)
            result.record.recipe = (recipes or {}).get(specs[i])
            runs.write_run_folder(result, folder)
            result.results_dir = folder
            run_id = None
            # nothing scored: kept on disk, never ranked; logged (as bench-unscored) only for a recipe's ablation view
            if log_to_mlflow and (result.n_ok > 0 or result.record.recipe is not None):
                logged = runs.log_folder(folder, rerun=rerun, supersedes=supersedes[i],
                                         videos_dir=result.videos_dir)
                run_id = logged if result.n_ok > 0 else None
            out.append((result, run_id))
            if on_result is not None:
                on_result(result, run_id)
    finally:
        pre.close()
        for sub in subs:
            sub.close()
    nothing = [r for r, _ in out if r.n_ok == 0]
    if nothing:
        raise NothingScoredError(nothing)
    return out


def run_folder(base: Path, name: str) -> Path:
    """``base/<submission slug>/<UTC time>-<pid>``: unique per run, sorted by time."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder = base / slug(name) / f"{stamp}-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=False)
    except FileExistsError:  # two submissions of one name in one second of one process
        folder = base / slug(name) / f"{stamp}-{os.getpid()}-{time.monotonic_ns() % 1_000_000}"
        folder.mkdir(parents=True)
    except OSError as e:
        raise TalkbenchError(f"cannot create the output folder {folder}: {e.strerror or e}") from None
    return folder


class NothingScoredError(TalkbenchError):
    """One or more submissions had no clip scored; they were not logged as scored (a recipe's are kept as
    ``bench-unscored`` runs for its ablation view). ``empty`` holds their results."""

    def __init__(self, empty: list[EvalResult]):
        parts = []
        for r in empty:
            first = next((f"{x['error_kind']}: {x['error']}" for x in r.rows if x["status"] != "ok"), "no clips")
            parts.append(f"{r.submission.name!r} ({len(r.rows)} clips, first error {first})")
        kept = any(r.record is not None and r.record.recipe is not None for r in empty)
        super().__init__("no clip could be scored for " + "; ".join(parts) + "; not logged"
                         + (" as scored (kept as not scored for the ablation view)" if kept else "")
                         + ", not on any leaderboard")
        self.empty = empty
