"""``talkbench prepare``: run the stage list over a corpus on Dask and write resumable shards.

How work flows (and why):

- one Dask task per clip (``execute.process_clip``), submitted in bounded batches (at most
  ``max_in_flight`` pending), so every worker stays busy whatever the shard size;
- a clip's result (its Arrow frames) stays in the memory of the worker that made it; once
  ``clips_per_shard`` clips are done, a ``shards.write_shard`` task that depends on them runs on a
  worker, which pulls the results from its peers and writes the shard. Frames never go through the
  client; the client only sees the small completion record;
- models are loaded once per worker process (``execute.worker_context``), one thread per worker;
- a clip that raises becomes a failed row inside its task; a clip whose worker process died (Dask
  gives up after its retries) becomes a failed ``internal`` row made here. The job goes on.

Resume and atomicity live in ``shards``: completed clips are skipped on a rerun (failed ones too,
unless ``--retry-failed``), and an OUTPUT prepared with another dataset or config (anything but
``execution.*``) is refused with an error naming the differing keys.

Where the tasks run is :mod:`talkbench.pipelines.distributor`'s job: a LocalCluster (one process per
core) unless ``--scheduler`` names an existing cluster or a SLURM set-up (then OUTPUT must be storage
every worker can reach: a shared folder or an fsspec URL).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from talkbench.config import build, config_hash, load, read_yaml
from talkbench.errors import ConfigError, TalkbenchError
from talkbench.io import package_versions
from talkbench.pipelines.config import PipelineConfig
from talkbench.pipelines.core import ClipRecord
from talkbench.pipelines.datasets.base import DatasetConfig
from talkbench.pipelines.datasets.splits import SplitConfig
from talkbench.pipelines.distributor import dask_client, n_workers
from talkbench.progress import Progress
from talkbench.schema import SCHEMA_VERSION

log = logging.getLogger(__name__)

PACKAGES = ("talkbench", "mediapipe", "av", "librosa", "numpy", "pyarrow", "dask", "distributed")


# -- inputs -----------------------------------------------------------------------------------------
def load_config(path: str | None = None, overrides: list[str] | None = None) -> PipelineConfig:
    return load(PipelineConfig, path, overrides)


def list_records(dataset: str, input_dir: str | Path, split: SplitConfig | None = None,
                 options: dict[str, Any] | None = None, limit: int | None = None) -> list[ClipRecord]:
    """The adapter's records in stable (clip id) order, the first ``limit`` of them."""
    from talkbench.pipelines.datasets.base import list_clips

    records = sorted(list_clips(dataset, input_dir, split, options), key=lambda r: r.clip_id)
    dupes = [k for k, n in Counter(r.clip_id for r in records).items() if n > 1]
    if dupes:
        raise TalkbenchError(f"dataset {dataset!r} gave duplicate clip ids, e.g. {dupes[:3]}")
    return records[:limit] if limit is not None else records


def resolved_config(cfg: PipelineConfig, split: SplitConfig | None = None) -> dict[str, Any]:
    """The pipeline settings plus the dataset's split (which decides each row's ``split`` column), as
    ``manifest.json`` records them."""
    return {**cfg.model_dump(mode="json"), "split": (split or SplitConfig()).model_dump(mode="json")}


def job_identity(dataset: str, cfg: PipelineConfig, split: SplitConfig | None = None) -> dict[str, Any]:
    """What must not change between runs on one OUTPUT: dataset, split and every setting but execution."""
    settings = {k: v for k, v in resolved_config(cfg, split).items() if k != "execution"}
    identity = {"dataset": dataset, "config": settings}
    return {"identity": identity, "job_hash": config_hash(identity), "config_hash": config_hash(settings)}


# -- the job ----------------------------------------------------------------------------------------
@dataclass
class PrepareSummary:
    """Counts of this run and of the whole output folder."""

    output: str
    run_id: str
    processed: Counter = field(default_factory=Counter)  # (status, error_kind) -> clips, this run
    frames: int = 0
    elapsed_s: float = 0.0
    skipped: int = 0
    shards: int = 0
    totals: Counter = field(default_factory=Counter)  # (status, error_kind) -> clips, whole output
    total_frames: int = 0
    split_rows: list[tuple[str, str]] = field(default_factory=list)  # (split, speaker_id) per clip of the output

    @property
    def failed(self) -> int:
        return sum(n for (status, _), n in self.totals.items() if status == "failed")

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def table(self) -> str:
        lines = [f"{'status':<8} {'error_kind':<14} {'this run':>9} {'output':>8}"]
        for key in sorted(set(self.processed) | set(self.totals), key=lambda k: (k[0], k[1] or "")):
            lines.append(f"{key[0]:<8} {key[1] or '-':<14} {self.processed[key]:>9} {self.totals[key]:>8}")
        n = sum(self.processed.values())
        lines.append(
            f"this run: {n} clips ({self.skipped} already done), {self.frames} frames, {self.shards} shards "
            f"in {self.elapsed_s:.1f} s ({self.frames_per_s:.1f} frames/s); "
            f"output: {sum(self.totals.values())} clips, {self.total_frames} frames -> {self.output}"
        )
        return "\n".join(lines)


def prepare(dataset: str, input_dir: str | Path, output: str, cfg: PipelineConfig, *,
            limit: int | None = None, retry_failed: bool = False, progress: bool = True,
            dataset_options: dict[str, Any] | None = None, client: Any = None,
            records: list[ClipRecord] | None = None, split: SplitConfig | None = None) -> PrepareSummary:
    """Prepare ``input_dir`` into ``output``; skips clips an earlier run completed (resume).

    ``client``: an existing Dask client (the perf benchmark passes a warmed one); otherwise a cluster
    is started from ``cfg.execution`` (only when there is work to do) and closed at the end.
    ``records``: the clips to process, instead of asking the dataset adapter. ``split``: the dataset
    config's split (:class:`~talkbench.pipelines.datasets.base.DatasetConfig`); the defaults when None.
    """
    from talkbench.pipelines.execute import close_contexts
    from talkbench.pipelines.shards import ShardStore, new_run_id

    if records is None:
        records = list_records(dataset, input_dir, split, dataset_options, limit)
    store = ShardStore(str(output))
    _check_output_schema(store)
    run_id, run_started = new_run_id(), time.time()
    job = job_identity(dataset, cfg, split)
    store.claim(job, run_id)
    try:
        removed = store.clean_orphans()
        if removed:
            log.info("removed %d leftovers of an interrupted run", len(removed))
        done = store.done_clips()
        todo = [r for r in records if r.clip_id not in done or (retry_failed and done[r.clip_id] == "failed")]
        summary = PrepareSummary(output=str(output), run_id=run_id, skipped=len(records) - len(todo))
        start = time.perf_counter()
        if todo:
            if client is not None:
                _run(client, todo, cfg, store, run_id, run_started, summary, progress)
            else:
                ex = cfg.execution
                with dask_client(ex.workers, ex.scheduler, ex.threads_per_worker, ex.memory_limit,
                                 ex.pin_workers, teardown=close_contexts) as c:
                    start = time.perf_counter()  # cluster start-up is not clip processing
                    _run(c, todo, cfg, store, run_id, run_started, summary, progress)
        summary.elapsed_s = time.perf_counter() - start
        clips = store.rebuild_clips()
        for status, kind in zip(clips.column("status").to_pylist(), clips.column("error_kind").to_pylist(),
                                strict=True):
            summary.totals[(status, kind if status != "ok" else None)] += 1
        summary.total_frames = sum(clips.column("n_frames").to_pylist())
        summary.split_rows = list(zip(clips.column("split").to_pylist(), clips.column("speaker_id").to_pylist(),
                                      strict=True))
        write_manifest(store, dataset, input_dir, resolved_config(cfg, split), job, summary)
    finally:
        store.release(run_id)
    return summary


def _check_output_schema(store: Any) -> None:
    """Never mix schema versions in one folder: an older output is migrated first (or a new one used)."""
    path = store.path("manifest.json")
    if not store.exists(path):
        return
    version = str(store.read_json(path).get("schema_version", ""))
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise TalkbenchError(f"{store.url} holds schema {version} shards, this talkbench writes {SCHEMA_VERSION}: "
                             f"run `talkbench migrate {store.url}` first, or use a new --output folder")


def _run(client: Any, todo: list[ClipRecord], cfg: PipelineConfig, store: Any, run_id: str,
         run_started: float, summary: PrepareSummary, progress: bool) -> None:
    """Submit clips (bounded), group finished ones into shard-writing tasks, collect the records."""
    from distributed import as_completed

    from talkbench.pipelines.execute import failed_result, last_line, process_clip
    from talkbench.pipelines.shards import write_shard

    ex = cfg.execution
    max_in_flight = ex.max_in_flight or 2 * n_workers(client)
    cfg_key = config_hash(cfg)
    pending = iter(todo)
    by_key: dict[str, ClipRecord] = {}
    ready: list[Any] = []  # finished clip futures (or client-made failed results) not yet in a shard
    in_flight = 0
    seq = 0
    shard_keys: set[str] = set()
    ac = as_completed()
    bar = Progress("prepare", total=len(todo), unit="clip", enabled=progress)

    def submit_next() -> bool:
        nonlocal in_flight
        rec = next(pending, None)
        if rec is None:
            return False
        fut = client.submit(process_clip, rec, cfg, cfg_key, key=f"clip-{run_id}-{rec.clip_id}", pure=False)
        by_key[fut.key] = rec
        ac.add(fut)
        in_flight += 1
        return True

    def flush(force: bool = False) -> None:
        nonlocal seq
        while ready and (len(ready) >= ex.clips_per_shard or force):
            batch, ready[:] = ready[: ex.clips_per_shard], ready[ex.clips_per_shard:]
            fut = client.submit(write_shard, store.url, run_id, run_started, seq, batch,
                                key=f"shard-{run_id}-{seq:05d}", pure=False)
            shard_keys.add(fut.key)
            ac.add(fut)
            seq += 1

    for _ in range(max_in_flight):
        if not submit_next():
            break
    try:
        for fut in ac:
            if fut.key in shard_keys:
                if fut.status == "error":
                    raise TalkbenchError(f"writing shard {fut.key} failed: {last_line(fut.exception())}")
                rec = fut.result()
                summary.shards += 1
                summary.frames += rec["n_frames"]
                for c in rec["clips"]:
                    summary.processed[(c["status"], c["error_kind"] if c["status"] != "ok" else None)] += 1
                bar.set_postfix(shards=summary.shards, frames=summary.frames)
                continue
            in_flight -= 1
            record = by_key.pop(fut.key)
            if fut.status == "error":  # the worker process died on this clip (process_clip never raises)
                result: Any = failed_result(record, "internal", f"worker lost: {last_line(fut.exception())}")
                fut.release()
                ready.append(result)
            else:
                ready.append(fut)
            bar.update(1)
            submit_next()
            flush(force=in_flight == 0)
    finally:
        bar.close()
    assert not ready and not by_key, "every clip ends up in a shard"


def write_manifest(store: Any, dataset: str, input_dir: str | Path, config: dict[str, Any], job: dict[str, Any],
                   summary: PrepareSummary) -> None:
    counts: dict[str, Any] = {"clips": sum(summary.totals.values()), "frames": summary.total_frames}
    for (status, kind), n in summary.totals.items():
        counts[status] = counts.get(status, 0) + n
        if kind:
            counts.setdefault("by_error_kind", {})[kind] = counts.get("by_error_kind", {}).get(kind, 0) + n
    records = store.records()
    counts["shards"] = sum(1 for r in records if r["frames_file"])
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dataset": dataset,
        "input": str(Path(input_dir).resolve()),
        "config": config,
        "config_hash": job["config_hash"],  # every setting but execution.* (those do not change rows)
        "job_hash": job["job_hash"],  # dataset + config_hash: what a rerun on this folder must match
        "packages": package_versions(PACKAGES),
        "counts": counts,
        "last_run": {"run_id": summary.run_id, "clips": sum(summary.processed.values()),
                     "skipped": summary.skipped, "frames": summary.frames,
                     "elapsed_s": round(summary.elapsed_s, 3), "frames_per_s": round(summary.frames_per_s, 2)},
        "frames_files": sorted(r["frames_file"] for r in records if r["frames_file"]),
        "source_paths": "relative to input",
    }
    store.write_json(store.path("manifest.json"), manifest)
    from talkbench.pipelines.hf import dataset_card  # the folder is a Hugging Face dataset too

    store.write_bytes(store.path("README.md"), dataset_card(manifest).encode())


# -- command line -----------------------------------------------------------------------------------
def config_from_args(args: argparse.Namespace) -> tuple[PipelineConfig, DatasetConfig]:
    """The resolved pipeline and dataset configs: files (or defaults), then -o overrides, then the flags.

    ``split`` belongs to the dataset config; ``-o split.KEY=VALUE`` still works (it goes there), and a
    ``split:`` section in a pipeline file from before is taken as the dataset's, under the dataset file's.
    """
    overrides = [o for o in (args.override or []) if not o.startswith("split.")]
    split_overrides = [o for o in (args.override or []) if o.startswith("split.")]
    if args.workers is not None:
        overrides.append(f"execution.workers={args.workers}")
    if args.scheduler:
        overrides.append(f"execution.scheduler={args.scheduler}")
    if args.au_backend:
        overrides.append(f"au.backend={args.au_backend}")
    data = dict(read_yaml(args.config)) if args.config else {}
    old_split = data.pop("split", None) or {}
    if old_split:
        log.warning("%s: `split` belongs in the dataset config now (configs/datasets/NAME.yaml); using it as the "
                    "dataset's split", args.config)
    ds_data = dict(read_yaml(args.dataset_config)) if getattr(args, "dataset_config", None) else {}
    ds_data["split"] = {**old_split, **(ds_data.get("split") or {})}
    dataset_cfg = build(DatasetConfig, ds_data, split_overrides,
                        source=str(getattr(args, "dataset_config", None) or "dataset config"))
    cfg = build(PipelineConfig, data, overrides, source=str(args.config or "config"))
    return cfg, dataset_cfg


def prepare_from_args(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit = {args.limit}: must be >= 1")
    cfg, dataset_cfg = config_from_args(args)
    summary = prepare(args.dataset, args.input, args.output, cfg, limit=args.limit,
                      retry_failed=args.retry_failed, progress=not args.no_progress,
                      dataset_options=dataset_cfg.options, split=dataset_cfg.split)
    print(summary.table())
    from talkbench.pipelines.datasets.splits import split_summary

    lines, warnings = split_summary(summary.split_rows, dataset_cfg.split)
    print("\n".join(lines))
    for w in warnings:
        print(f"talkbench: warning: {w}", file=sys.stderr)
    if args.strict and summary.failed:
        print(f"talkbench: {summary.failed} clip(s) failed (--strict)", file=sys.stderr)
        return 1
    return 0
