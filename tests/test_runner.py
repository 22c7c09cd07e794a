"""End-to-end ``talkbench prepare`` on the real GRID clips with a two-worker LocalCluster.

One uninterrupted run (session fixture) is shared by the contract, loader, inspect and resume tests.
Its input mixes the five GRID clips with a zero-byte .mp4 and a text file named .mp4. Every prepare
runs as a subprocess of the real CLI (what a user runs, and what ``kill -9`` can hit).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from conftest import GRID_CLIPS, ROOT

from talkbench.schema import CLIPS_SCHEMA, FRAMES_SCHEMA, SCHEMA_VERSION

TIMING_COLUMNS = ["elapsed_s", "shard"]  # differ between runs by design
LIMIT = 4  # clips of the kill -9 test
COMMON = ["--dataset", "folder", "--workers", "2", "--no-progress", "-o", "execution.clips_per_shard=2"]


def cli(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "talkbench.app.cli", *args], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    if check and out.returncode != 0:
        raise AssertionError(f"talkbench {' '.join(args)} -> {out.returncode}\n{out.stdout}\n{out.stderr}")
    return out


def make_input(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for clip in GRID_CLIPS:
        (folder / clip.name).symlink_to(clip)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("this is not a video\n")
    return folder


@pytest.fixture(scope="session")
def input_dir(tmp_path_factory, fixtures_dir) -> Path:
    return make_input(tmp_path_factory.mktemp("in") / "corpus")


@pytest.fixture(scope="session")
def prepared(tmp_path_factory, input_dir) -> Path:
    out = tmp_path_factory.mktemp("prepared") / "out"
    res = cli("prepare", "--input", str(input_dir), "--output", str(out), *COMMON, check=True)
    assert "failed" in res.stdout  # the summary table
    return out


def read_clips(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "clips.parquet").sort_values("clip_id").reset_index(drop=True)


def read_frames(out: Path) -> pd.DataFrame:
    df = ds.dataset(sorted(str(p) for p in (out / "frames").glob("*.parquet"))).to_table().to_pandas()
    return df.sort_values(["clip_id", "frame_idx"]).reset_index(drop=True)


def state_files(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "_state").iterdir())


# -- the output contract --------------------------------------------------------------------------
def test_output_contract(prepared):
    clips_file = pq.ParquetFile(prepared / "clips.parquet")
    assert clips_file.schema_arrow.equals(CLIPS_SCHEMA)
    assert clips_file.schema_arrow.metadata[b"talkbench_schema"] == SCHEMA_VERSION.encode()
    clips = read_clips(prepared)
    assert sorted(clips["clip_id"]) == sorted([c.stem for c in GRID_CLIPS] + ["empty", "notes"])
    good = clips[clips["status"] != "failed"]
    assert len(good) == len(GRID_CLIPS) and (good["n_frames"] == 75).all()

    frame_files = sorted((prepared / "frames").glob("*.parquet"))
    assert frame_files
    seen = {}
    for f in frame_files:
        pf = pq.ParquetFile(f)
        assert pf.schema_arrow.equals(FRAMES_SCHEMA), f.name
        for rg in range(pf.metadata.num_row_groups):  # one row group per clip
            ids = pf.read_row_group(rg, columns=["clip_id"]).column("clip_id").unique().to_pylist()
            assert len(ids) == 1
            seen[ids[0]] = f.stem
            assert pf.metadata.row_group(rg).num_rows == 75
    assert seen == dict(zip(good["clip_id"], good["shard"], strict=True))  # a clip row names its shard

    frames = read_frames(prepared)
    assert len(frames) == 75 * len(GRID_CLIPS)
    for _, g in frames.groupby("clip_id"):
        assert g["frame_idx"].tolist() == list(range(75))
    assert frames["landmarks"].map(lambda a: np.stack(a).shape == (478, 3)).all()  # stored with its shape

    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["dataset"] == "folder"
    assert manifest["counts"]["clips"] == 7 and manifest["counts"]["failed"] == 2
    assert manifest["counts"]["frames"] == 75 * len(GRID_CLIPS)
    assert set(manifest["packages"]) >= {"talkbench", "mediapipe", "av", "librosa", "numpy", "pyarrow", "dask"}
    assert len(manifest["config_hash"]) == 16 and manifest["config"]["stages"]


def test_bad_inputs_become_failed_rows(prepared):
    clips = read_clips(prepared).set_index("clip_id")
    assert clips.loc["empty", "status"] == "failed" and clips.loc["empty", "error_kind"] == "empty_file"
    assert clips.loc["notes", "status"] == "failed" and clips.loc["notes", "error_kind"] == "not_video"
    assert clips.loc[["empty", "notes"], "n_frames"].eq(0).all()
    assert clips.loc[["empty", "notes"], "error"].str.len().gt(0).all()
    assert not set(read_frames(prepared)["clip_id"]) & {"empty", "notes"}


def test_shards_load_with_pyarrow_pandas_and_datasets(prepared, tmp_path):
    files = sorted(str(p) for p in (prepared / "frames").glob("*.parquet"))
    n = 75 * len(GRID_CLIPS)
    assert ds.dataset(str(prepared / "frames"), format="parquet").count_rows() == n
    assert len(pd.read_parquet(prepared / "frames")) == n
    assert len(pd.read_parquet(prepared / "clips.parquet")) == 7

    import datasets

    d = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    assert d.num_rows == n
    assert set(d.column_names) == set(FRAMES_SCHEMA.names)
    assert np.asarray(d[0]["landmarks"]).shape == (478, 3)
    # the folder itself, through its dataset card: shaped arrays and decoded images
    from PIL import Image

    frames = datasets.load_dataset(str(prepared), "frames", split="train", cache_dir=str(tmp_path / "hf2"))
    assert frames.num_rows == n and np.asarray(frames[0]["landmarks"]).shape == (478, 3)
    assert np.asarray(frames[0]["mfcc"]).shape == (4, 12)
    assert isinstance(next(f for f in frames.select(range(75))["face"] if f is not None), Image.Image)
    clips = datasets.load_dataset(str(prepared), "clips", split="train", cache_dir=str(tmp_path / "hf3"))
    assert clips.num_rows == 7 and not any(p.startswith("/") for p in clips["source_path"])  # relative


# -- reruns ---------------------------------------------------------------------------------------
def test_rerun_skips_done_clips_and_strict_exit_code(prepared, input_dir, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    before = state_files(out)
    res = cli("prepare", "--input", str(input_dir), "--output", str(out), *COMMON, "--strict")
    assert "0 clips (7 already done)" in res.stdout
    assert state_files(out) == before  # nothing new was written
    assert res.returncode == 1 and "2 clip(s) failed" in res.stderr  # --strict: failed rows in the output


def test_retry_failed_supersedes_old_rows_on_an_existing_scheduler(prepared, tmp_path):
    """--retry-failed reprocesses only failed clips; also covers --scheduler (a cluster started here)."""
    from distributed import LocalCluster

    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    fixed = make_input(tmp_path / "corpus")
    (fixed / "empty.mp4").unlink()
    shutil.copy(GRID_CLIPS[0], fixed / "empty.mp4")  # the broken file was replaced by a good one
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        res = cli("prepare", "--input", str(fixed), "--output", str(out), *COMMON, "--retry-failed",
                  "--scheduler", cluster.scheduler_address, check=True)
        assert len(cluster.workers) == 1  # the job used the cluster and left it running
    assert "2 clips (5 already done)" in res.stdout
    clips = read_clips(out).set_index("clip_id")
    assert len(clips) == 7 and clips.index.is_unique
    assert clips.loc["empty", "status"] == "ok" and clips.loc["empty", "n_frames"] == 75
    assert clips.loc["notes", "error_kind"] == "not_video"
    frames = read_frames(out)
    assert (frames["clip_id"] == "empty").sum() == 75 and len(frames) == 75 * (len(GRID_CLIPS) + 1)


def test_kill_9_then_resume_gives_the_uninterrupted_rows(prepared, input_dir, tmp_path):
    """Kill the CLI once a shard is complete, rerun: the rows equal the uninterrupted run's.

    --limit 4 (3 GRID clips + empty.mp4, in clip id order) keeps it fast; empty.mp4 fails at once, so
    with one clip per shard the first record appears while the GRID clips are still being processed.
    """
    out = tmp_path / "out"
    args = [sys.executable, "-m", "talkbench.app.cli", "prepare", "--input", str(input_dir), "--output", str(out),
            "--dataset", "folder", "--workers", "2", "--no-progress", "-o", "execution.clips_per_shard=1",
            "--limit", str(LIMIT)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while not list(out.glob("_state/*.done.json")):
            assert proc.poll() is None, "prepare ended before writing a shard"
            assert time.monotonic() < deadline, "no shard completed in time"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    done_at_kill = len(list((out / "_state").glob("*.done.json")))
    assert LIMIT > done_at_kill >= 1, "the kill must land mid-run"
    assert not (out / "manifest.json").exists()

    res = cli("prepare", "--input", str(input_dir), "--output", str(out), *COMMON, "--limit", str(LIMIT),
              check=True)
    assert f"({done_at_kill} already done)" in res.stdout
    names = state_files(out) + sorted(p.name for p in (out / "frames").iterdir())
    assert not [n for n in names if ".tmp-" in n]  # orphans cleaned up
    records = [json.loads(p.read_text()) for p in (out / "_state").glob("*.done.json")]
    assert {r["frames_file"] for r in records if r["frames_file"]} == {p.name for p in (out / "frames").iterdir()}

    resumed, full = read_clips(out), read_clips(prepared)
    assert len(resumed) == LIMIT
    full = full[full["clip_id"].isin(resumed["clip_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(resumed.drop(columns=TIMING_COLUMNS), full.drop(columns=TIMING_COLUMNS))
    a, b = read_frames(out), read_frames(prepared)
    b = b[b["clip_id"].isin(resumed["clip_id"])].reset_index(drop=True)
    assert a.columns.tolist() == b.columns.tolist() and len(a) == len(b)
    for col in a.columns:
        left, right = a[col].tolist(), b[col].tolist()
        if isinstance(left[0], np.ndarray):
            def dense(x: np.ndarray) -> np.ndarray:  # shaped columns read back as arrays of row arrays
                return np.stack(x).astype(np.float64) if x.dtype == object else x

            assert all(np.array_equal(dense(x), dense(y), equal_nan=True) for x, y in zip(left, right, strict=True)), col
        else:
            assert pd.Series(left).equals(pd.Series(right)), col


def test_changed_config_on_same_output_is_refused(prepared, input_dir, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(prepared, out)
    res = cli("prepare", "--input", str(input_dir), "--output", str(out), *COMMON, "-o", "align.crop_size=96")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "different dataset/config" in lines[0] and "align.crop_size" in lines[0]


# -- inspect --------------------------------------------------------------------------------------
def test_inspect_json_and_contact_sheet(prepared, tmp_path):
    sheet = tmp_path / "sheet.png"
    res = cli("inspect", str(prepared), "--json", "--sheet", str(sheet), check=True)
    summary = json.loads(res.stdout)
    assert summary["clips"]["failed"] == 2
    assert summary["clips"]["ok"] + summary["clips"]["partial"] == len(GRID_CLIPS)
    assert summary["clips_by_reason"]["failed/empty_file"] == 1
    assert summary["frames"] == 75 * len(GRID_CLIPS)
    assert set(summary["aus"]) == {"AU10", "AU14", "AU20", "AU25", "AU26", "AU12", "AU15", "AU17", "AU23", "AU45"}
    assert summary["aus"]["AU25"]["count"] == 75 * len(GRID_CLIPS)
    assert 0.0 <= summary["frame_quality"]["face_found_rate"] <= 1.0

    from PIL import Image

    img = Image.open(sheet)
    assert img.width == 3 * 128 and img.height >= len(GRID_CLIPS) * 128
    pixels = np.asarray(img)
    assert (pixels[..., 1] == 255).sum() > 100  # green landmark dots were drawn on the crops

    text = cli("inspect", str(prepared), check=True).stdout
    assert "AU25_r" in text and "2 failed" in text


def _thread_cpus() -> list[tuple[int, ...]]:
    """The distinct CPU sets of this process's threads."""
    return sorted({tuple(sorted(os.sched_getaffinity(int(t)))) for t in os.listdir("/proc/self/task")})


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and 2 CPUs")
def test_local_workers_are_pinned_to_one_cpu_each():
    from talkbench.pipelines.distributor import dask_client

    cpus = sorted(os.sched_getaffinity(0))
    with dask_client(2, pin_workers=True) as client:
        client.wait_for_workers(2)
        pinned = client.run(_thread_cpus)
    assert sorted(pinned.values()) == [[(cpus[0],)], [(cpus[1],)]]
    with dask_client(2, pin_workers=False) as client:
        client.wait_for_workers(2)
        free = client.run(_thread_cpus)
    assert all(v == [tuple(cpus)] for v in free.values())
