"""``bench run --scheduler ADDRESS|slurm:FILE``: score a submission's clips on a Dask cluster.

Why: ``prepare`` runs on any Dask cluster, scoring ran in one process. Here the task's clips are cut
into contiguous parts; each worker loads the submission from its spec, generates and scores its part
with its own metric objects (``evaluator.score_clips``) and sends back the per-clip rows and the
metrics' per-clip values. The client puts them back in task order and aggregates exactly as a local
run does (``evaluator.finish``), so the numbers are the same (tested against a local run).

Corpus-level metrics (FID: one statistic over every frame) cannot be split by clip and are refused here:
score them in a local run. The cluster comes from the pipeline's distributor, the one owner of cluster
set-up that ``prepare`` uses too (``talkbench.pipelines.distributor.dask_client``: ``local[:N]`` worker
processes started here, an existing scheduler's address, or ``slurm:FILE`` with dask-jobqueue).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from talkbench.benchmark.evaluator import EvalResult, finish, score_clips, select_metrics
from talkbench.benchmark.tasks import TaskManifest
from talkbench.errors import TalkbenchError


def _score_part(task_data: dict[str, Any], clip_ids: list[str], spec: str, name: str | None, length_tolerance: int,
                metric_names: list[str] | None, videos_dir: str | None, device: str | None, n_grids: int,
                allow_code: bool = True) -> dict[str, Any]:
    """On a worker: score ``clip_ids`` of the task; per-clip rows, errors, grids and metric values."""
    from talkbench.benchmark.artifacts import VideoKeeper
    from talkbench.benchmark.preprocess import Preprocessor
    from talkbench.benchmark.submissions import load_submission

    task = TaskManifest.model_validate(task_data)
    wanted = set(clip_ids)
    part = task.model_copy(update={"clips": [c for c in task.clips if c.clip_id in wanted]})
    sub = load_submission(spec, name, length_tolerance, allow_code=allow_code)
    metrics, _ = select_metrics(part, metric_names, device)
    keep = VideoKeeper(videos_dir) if videos_dir is not None and sub.keeps_videos else None
    pre = Preprocessor(part)
    sub.setup(part)
    try:
        rows, errors, grids = score_clips(part, sub, metrics, pre, keep, n_grids, show_progress=False)
    finally:
        pre.close()
        sub.close()
    return {"rows": rows, "errors": errors, "grids": grids,
            "per_clip": {n: dict(m.per_clip) for n, m in metrics.items()}}


def parts_of(clip_ids: list[str], n_parts: int) -> list[list[str]]:
    """Contiguous, nearly equal parts (task order kept inside and across parts)."""
    n_parts = max(1, min(n_parts, len(clip_ids)))
    size, extra = divmod(len(clip_ids), n_parts)
    out, start = [], 0
    for i in range(n_parts):
        end = start + size + (i < extra)
        out.append(clip_ids[start:end])
        start = end
    return out


def evaluate_on_cluster(task: TaskManifest, spec: str, scheduler: str, name: str | None = None,
                        length_tolerance: int = 1, metric_names: list[str] | None = None,
                        videos_dir: str | Path | None = None, device: str | None = None, n_grids: int = 3,
                        parts_per_worker: int = 2, allow_code: bool = True) -> EvalResult:
    """Score ``spec`` on ``task`` over the Dask cluster ``scheduler`` (``local[:N]``, ``tcp://host:port`` or
    ``slurm:FILE``); same result as ``evaluate``."""
    from distributed import as_completed

    from talkbench.benchmark.submissions import load_submission
    from talkbench.pipelines.distributor import dask_client, n_workers
    from talkbench.progress import Progress

    t0 = time.perf_counter()
    metrics, unavailable = select_metrics(task, metric_names, device)
    corpus = sorted(n for n, m in metrics.items() if m.corpus_level)
    if corpus:
        raise TalkbenchError(f"corpus-level metric(s) {corpus} need every clip in one process: leave them out "
                             f"(--metrics) for the cluster run, or score them without --scheduler")
    submission = load_submission(spec, name, length_tolerance, allow_code=allow_code)  # identity and name
    ids = [c.clip_id for c in task.clips]
    videos = str(videos_dir) if videos_dir is not None and submission.keeps_videos else None
    with dask_client(scheduler=scheduler) as client:
        parts = parts_of(ids, parts_per_worker * n_workers(client))
        futures = [client.submit(_score_part, task.model_dump(mode="json"), part, spec, name, length_tolerance,
                                 sorted(metrics), videos, device, n_grids, allow_code, pure=False) for part in parts]
        size = {f.key: len(p) for f, p in zip(futures, parts, strict=True)}
        with Progress(f"scoring {submission.name} on {n_workers(client)} worker(s)", total=len(ids),
                      unit="clip") as bar:  # the workers' own displays are off: one display, here
            for done in as_completed(futures):
                bar.update(size[done.key])
        results = client.gather(futures)
    rows, errors, grids = [], [], {}
    for r in results:  # parts come back in task order
        rows += r["rows"]
        errors += r["errors"]
        for clip_id, grid in r["grids"].items():
            if len(grids) < n_grids:
                grids[clip_id] = grid
        for metric_name, values in r["per_clip"].items():
            metrics[metric_name].per_clip.update(values)
    submission.close()
    return finish(task, submission, metrics, unavailable, rows, errors, grids,
                  Path(videos) if videos else None, time.perf_counter() - t0)
