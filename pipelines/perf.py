"""``talkbench perf pipeline``: frames/s of a naive loop vs the full pipeline on 1 worker vs all workers.

(a) naive: one process, PyAV decode + MediaPipe face mesh on every frame (model built once, untimed);
(b) the full ``prepare`` (every stage + shard writing) on a LocalCluster with one worker;
(c) the same on all workers.
Clusters are started and every worker is warmed (models loaded by processing one clip) before the
clock starts; only clip processing and writing is timed. The clip list is repeated (distinct ids) so
each measurement lasts a few seconds. Targets on the 2-core dev machine: b/a >= 0.8, c/b >= 1.7.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from talkbench.pipelines.core import ClipRecord

from talkbench.errors import TalkbenchError

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


def naive_loop(files: list[Path]) -> tuple[int, float]:
    """(frames, seconds): decode each file with PyAV and run the face mesh on every frame."""
    import av
    import mediapipe as mp

    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=True)
    n = 0
    start = time.perf_counter()
    for path in files:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                mesh.process(frame.to_ndarray(format="rgb24"))
                n += 1
    elapsed = time.perf_counter() - start
    mesh.close()
    return n, elapsed


def warm(client: Any, record: ClipRecord, cfg: Any, tmp: str) -> None:
    """One run of ``record`` through the whole path on every worker, so one-time costs are not timed:
    models (loaded per worker), imports and codecs of shard writing (on each worker) and of the
    end of a run (clips.parquet, manifest; in this process). Writes under ``tmp``."""
    from talkbench.pipelines.execute import process_clip
    from talkbench.pipelines.runner import job_identity
    from talkbench.pipelines.shards import ShardStore, new_run_id, write_shard

    from talkbench.config import config_hash

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
    from talkbench.pipelines.runner import dask_client, prepare

    with dask_client(workers, None, 1, cfg.execution.memory_limit) as client, \
            tempfile.TemporaryDirectory(prefix="talkbench-perf-") as tmp:
        client.wait_for_workers(workers)
        warm(client, ClipRecord(clip_id="warm", dataset="perf", source_path=records[0].source_path,
                                speaker_id="warm"), cfg, tmp)
        start = time.perf_counter()
        summary = prepare("perf", tmp, str(Path(tmp) / "out"), cfg, client=client, records=records,
                          progress=False)
        elapsed = time.perf_counter() - start
    failed = {f"{s}/{k}": n for (s, k), n in summary.processed.items() if s == "failed"}
    if failed:  # failing clips are fast: their frames/s would mean nothing
        raise TalkbenchError(f"perf pipeline: clips failed ({failed}); fix them before timing")
    return {"workers": workers, "frames": summary.frames, "seconds": round(elapsed, 3),
            "frames_per_s": round(summary.frames / elapsed, 1), "failed_clips": failed,
            "shards": summary.shards}


def run(input_dir: str | Path | None = None, workers: int | None = None, repeat: int = 4,
        overrides: list[str] | None = None) -> dict[str, Any]:
    from talkbench.pipelines.runner import load_config

    files = clip_files(input_dir or default_input())
    cfg = load_config(None, overrides)
    n_all = workers or os.cpu_count() or 1
    records = perf_records(files, repeat)
    frames_a, secs_a = naive_loop([Path(r.source_path) for r in records])
    a = {"frames": frames_a, "seconds": round(secs_a, 3), "frames_per_s": round(frames_a / secs_a, 1)}
    print(f"(a) naive decode + face mesh, 1 process: {a['frames_per_s']:.1f} frames/s ({frames_a} frames)")
    b = pipeline_run(records, cfg, 1)
    print(f"(b) pipeline, 1 worker:  {b['frames_per_s']:.1f} frames/s ({b['frames']} frames)")
    c = pipeline_run(records, cfg, n_all)
    print(f"(c) pipeline, {n_all} workers: {c['frames_per_s']:.1f} frames/s ({c['frames']} frames)")
    ratios = {"b_over_a": round(b["frames_per_s"] / a["frames_per_s"], 3),
              "c_over_b": round(c["frames_per_s"] / b["frames_per_s"], 3)}
    print(f"b/a = {ratios['b_over_a']:.2f} (target >= 0.8), c/b = {ratios['c_over_b']:.2f} (target >= 1.7)")
    return {"input": str(input_dir or default_input()), "clips": len(files), "repeat": repeat,
            "stages": cfg.stages, "naive": a, "pipeline_1_worker": b, "pipeline_all_workers": c,
            **ratios, "targets": {"b_over_a": 0.8, "c_over_b": 1.7},
            "load_avg_1min": round(os.getloadavg()[0], 2)}


def run_from_args(args: argparse.Namespace) -> int:
    from talkbench.perf import write_report

    results = run(args.input, args.workers, getattr(args, "repeat", 4), getattr(args, "override", None))
    path = write_report("pipeline", results, args.out_dir)
    print(f"report: {path}")
    return 0
