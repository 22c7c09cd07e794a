"""``talkbench perf pipeline``: frames/s of a naive loop vs the full pipeline on 1 worker vs all workers.

(a) naive: one process, PyAV decode + MediaPipe face mesh on every frame (model built once, untimed);
(b) the full ``prepare`` (every stage + shard writing) on a LocalCluster with one worker;
(c) the same on all workers.
(b) and (c) use the config's execution settings, so workers are pinned to a CPU each by default
(``execution.pin_workers``); the naive loop is a plain process, as one would write it.
Clusters are started and warmed before the clock starts (see :func:`warm`: each worker processes
and writes one clip, so models, imports and codecs are loaded); only clip processing and writing
is timed. The clip list is repeated (distinct ids, 8 times by default: 40 GRID clips) so each
measurement lasts long enough that the last clips, when one worker may already be idle, weigh
little (with 4 repeats that tail cost (c) ~5% of its time, with 8 ~2.5%).
Targets on the 2-core dev machine: b/a >= 0.8, c/b >= 1.7.

Wall-clock frames/s depend on what else runs on the machine, so each measurement also records the
CPU seconds of every process involved (this one, which hosts the scheduler and nannies, and the
workers) and the load average when it started: ``cores_used`` = CPU / wall shows whether (c) got
all the cores; ``cpu_frames_per_s`` (and ``worker_cpu_frames_per_s``, the workers alone: the
critical path of (b)) is the cost per frame, much less sensitive to other load.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from talkbench.errors import TalkbenchError
from talkbench.pipelines.core import ClipRecord

VIDEO_SUFFIXES = (".mpg", ".mpeg", ".mp4", ".mov", ".mkv", ".avi", ".webm")


def default_input() -> Path:
    """../shared/fixtures/grid, relative to the working directory or else to the repo root."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        cand = base.parent / "shared" / "fixtures" / "grid"
        if cand.is_dir():
            return cand
    return Path.cwd().parent / "shared" / "fixtures" / "grid"


def clip_files(input_dir: str | Path) -> list[Path]:
    root = Path(input_dir)
    if not root.is_dir():
        raise TalkbenchError(f"input folder not found: {root}")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not files:
        raise TalkbenchError(f"no video files in {root}")
    return files


def perf_records(files: list[Path], repeat: int) -> list[ClipRecord]:
    """``repeat`` copies of every file with distinct clip ids (so the runner processes each copy)."""
    return [ClipRecord(clip_id=f"{p.stem}-r{k}", dataset="perf", source_path=str(p), speaker_id=p.stem)
            for k in range(repeat) for p in files]


def naive_loop(files: list[Path]) -> tuple[int, float, float]:
    """(frames, seconds, CPU seconds): decode each file with PyAV and run the face mesh on every frame."""
    import av
    import mediapipe as mp

    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=True)
    n = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for path in files:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                mesh.process(frame.to_ndarray(format="rgb24"))
                n += 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    mesh.close()
    return n, elapsed, cpu


def warm(client: Any, record: ClipRecord, cfg: Any, tmp: str) -> None:
    """One run of ``record`` through the whole path on every worker, so one-time costs are not timed:
    models (loaded per worker), imports and codecs of shard writing (on each worker) and of the
    end of a run (clips.parquet, manifest; in this process). Writes under ``tmp``."""
    from talkbench.config import config_hash
    from talkbench.pipelines.execute import process_clip
    from talkbench.pipelines.runner import job_identity
    from talkbench.pipelines.shards import ShardStore, new_run_id, write_shard

    store, run_id = ShardStore(str(Path(tmp) / "warm")), new_run_id()
    store.claim(job_identity("perf", cfg), run_id)
    key = config_hash(cfg)
    futs = []
    for seq, w in enumerate(client.scheduler_info()["workers"]):
        clip = client.submit(process_clip, record, cfg, key, workers=[w], allow_other_workers=False, pure=False)
        futs.append(client.submit(write_shard, store.url, run_id, time.time(), seq, [clip], workers=[w],
                                  allow_other_workers=False, pure=False))
    client.gather(futs)
    for row in store.rebuild_clips().to_pylist():
        if row["status"] == "failed":
            raise TalkbenchError(f"warm-up clip failed: {row['error_kind']}: {row['error']}")
    store.release(run_id)


def pipeline_run(records: list[ClipRecord], cfg: Any, workers: int) -> dict[str, Any]:
    from talkbench.pipelines.distributor import dask_client
    from talkbench.pipelines.execute import close_contexts
    from talkbench.pipelines.runner import prepare

    with dask_client(workers, None, 1, cfg.execution.memory_limit, cfg.execution.pin_workers,
                     teardown=close_contexts) as client, \
            tempfile.TemporaryDirectory(prefix="talkbench-perf-") as tmp:
        client.wait_for_workers(workers)
        warm(client, ClipRecord(clip_id="warm", dataset="perf", source_path=records[0].source_path,
                                speaker_id="warm"), cfg, tmp)
        load, (main0, workers0), start = os.getloadavg()[0], cpu_seconds(client), time.perf_counter()
        summary = prepare("perf", tmp, str(Path(tmp) / "out"), cfg, client=client, records=records,
                          progress=False)
        elapsed, (main1, workers1) = time.perf_counter() - start, cpu_seconds(client)
    failed = {f"{s}/{k}": n for (s, k), n in summary.processed.items() if s == "failed"}
    if failed:  # failing clips are fast: their frames/s would mean nothing
        raise TalkbenchError(f"perf pipeline: clips failed ({failed}); fix them before timing")
    cpu = (main1 - main0) + (workers1 - workers0)
    return {"workers": workers, **_rates(summary.frames, elapsed, cpu, load),
            "worker_cpu_frames_per_s": round(summary.frames / (workers1 - workers0), 1),
            "failed_clips": failed, "shards": summary.shards}


def cpu_seconds(client: Any) -> tuple[float, float]:
    """CPU seconds so far of this process (client, scheduler, nannies) and of all worker processes
    together, every thread included (MediaPipe runs its graph on threads of its own)."""
    return time.process_time(), sum(client.run(time.process_time).values())


def _rates(frames: int, seconds: float, cpu: float, load: float) -> dict[str, Any]:
    return {"frames": frames, "seconds": round(seconds, 3), "frames_per_s": round(frames / seconds, 1),
            "cpu_seconds": round(cpu, 3), "cores_used": round(cpu / seconds, 2),
            "cpu_frames_per_s": round(frames / cpu, 1), "load_avg_1min_at_start": round(load, 2)}


def _line(label: str, r: dict[str, Any]) -> str:
    return (f"{label}: {r['frames_per_s']:.1f} frames/s ({r['frames']} frames, {r['cores_used']:.2f} cores used, "
            f"{r['cpu_frames_per_s']:.1f} frames per CPU-second, load {r['load_avg_1min_at_start']:.1f} at start)")


def run(input_dir: str | Path | None = None, workers: int | None = None, repeat: int = 8,
        overrides: list[str] | None = None) -> dict[str, Any]:
    from talkbench.pipelines.runner import load_config

    files = clip_files(input_dir or default_input())
    cfg = load_config(None, overrides)
    n_all = workers or os.cpu_count() or 1
    records = perf_records(files, repeat)
    load = os.getloadavg()[0]
    a = _rates(*naive_loop([Path(r.source_path) for r in records]), load)
    print(_line("(a) naive decode + face mesh, 1 process", a))
    b = pipeline_run(records, cfg, 1)
    print(_line("(b) pipeline, 1 worker", b))
    c = pipeline_run(records, cfg, n_all)
    print(_line(f"(c) pipeline, {n_all} workers", c))
    ratios = {"b_over_a": round(b["frames_per_s"] / a["frames_per_s"], 3),
              "c_over_b": round(c["frames_per_s"] / b["frames_per_s"], 3)}
    print(f"b/a = {ratios['b_over_a']:.2f} (target >= 0.8), c/b = {ratios['c_over_b']:.2f} (target >= 1.7)")
    return {"input": str(input_dir or default_input()), "clips": len(files), "repeat": repeat,
            "stages": cfg.stages, "naive": a, "pipeline_1_worker": b, "pipeline_all_workers": c,
            **ratios, "targets": {"b_over_a": 0.8, "c_over_b": 1.7},
            "load_avg_1min": round(os.getloadavg()[0], 2)}


def run_from_args(args: argparse.Namespace) -> int:
    from talkbench.perf import write_report

    results = run(args.input, args.workers, getattr(args, "repeat", 8), getattr(args, "override", None))
    path = write_report("pipeline", results, args.out_dir)
    print(f"report: {path}")
    return 0
