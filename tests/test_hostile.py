"""Hostile input and concurrent use (issue 11): every case is a test with its expected outcome.

Each case either gives a specific one-line error / error kind or a recorded row, creates nothing it
should not, and lets the job carry on. Media are made here (tiny) or read from ../shared/fixtures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import GRID, ROOT

from talkbench.errors import ClipError, ConfigError, TalkbenchError


# --------------------------------------------------------------------------- media made here
def long_gap_mp4(path: Path, seconds: int = 7200, size: int = 64) -> Path:
    """A ~1.5 KB mp4 of two frames ``seconds`` apart: decoded naively, 25 * seconds frames."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        s.codec_context.time_base = Fraction(1, 25)
        for i, pts in enumerate([0, seconds * 25]):
            f = av.VideoFrame.from_ndarray(np.full((size, size, 3), 40 * i, np.uint8), format="rgb24")
            f.pts, f.time_base = pts, Fraction(1, 25)
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    return path


def raw_h264(path: Path, n: int = 20, size: int = 64) -> Path:
    """A raw H.264 stream: no container, so nothing declares its duration before decoding."""
    import av

    with av.open(str(path), "w", format="h264") as c:
        s = c.add_stream("libx264", rate=25)
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        for i in range(n):
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.full((size, size, 3), i, np.uint8), format="rgb24")))
        c.mux(s.encode(None))
    return path


def png_named_mp4(path: Path) -> Path:
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(path, format="PNG")
    return path


def as_nobody(fn, *args) -> str:
    """Run ``fn(*args)`` in a forked child with uid/gid 65534; return what it returned or raised.

    Tests run as root, and root reads a mode-000 file; an unprivileged child is the real case.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        try:
            os.setgid(65534)
            os.setuid(65534)
            msg = f"ok {fn(*args)!r}"
        except ClipError as e:
            msg = f"{e.kind} {e.message}"
        except BaseException as e:  # noqa: BLE001
            msg = f"raised {e!r}"
        os.write(w, msg.encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    return os.read(r, 4096).decode()


# --------------------------------------------------------------------------- 1. code execution
@pytest.mark.parametrize("spec", ["os:system?command=touch {f}", "subprocess:getoutput?cmd=touch {f}",
                                  "subprocess:Popen?args=touch {f}", "builtins:exec?source=open('{f}','w')"])
def test_callable_specs_are_refused_and_create_nothing(tmp_path, spec):
    from talkbench.benchmark.submissions import load_submission

    target = tmp_path / "PWNED"
    with pytest.raises(TalkbenchError, match="not a class|defines none of") as e:
        load_submission(spec.format(f=target))
    assert "\n" not in str(e.value)
    assert not target.exists()


def test_module_specs_need_allow_code_on_the_cli(tmp_path, capsys):
    from talkbench.benchmark.submissions import load_submission
    from talkbench.cli import main

    with pytest.raises(TalkbenchError, match="--allow-code"):
        load_submission("bench_adapters:StillFace", allow_code=False)
    rc = main(["bench", "run", "--task", "none", "--submission", "bench_adapters:StillFace",
               "--tasks-dir", str(tmp_path), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    err = capsys.readouterr().err
    assert rc == 2 and "--allow-code" in err and len(err.strip().splitlines()) == 1


def test_run_help_says_adapters_run_code(capsys):
    from talkbench.cli import main

    with pytest.raises(SystemExit):
        main(["bench", "run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--allow-code" in out and "untrusted" in out and "rights" in out


# --------------------------------------------------------------------------- 2. bounded decoding
def test_two_hour_mp4_is_refused_before_decoding(tmp_path):
    from talkbench.media import read_av

    path = long_gap_mp4(tmp_path / "long.mp4")
    assert path.stat().st_size < 4000
    with pytest.raises(ClipError) as e:
        read_av(path, max_duration_s=900)
    assert e.value.kind == "too_long" and "nothing decoded" in e.value.message
    with pytest.raises(ClipError) as e:
        read_av(path, max_pixels=10_000_000)
    assert e.value.kind == "too_large" and "nothing decoded" in e.value.message


def test_caps_hold_while_decoding_when_nothing_is_declared(tmp_path):
    from talkbench.media import read_av

    path = raw_h264(tmp_path / "raw.h264")
    assert read_av(path).n_frames == 20
    with pytest.raises(ClipError, match="decoding stopped") as e:
        read_av(path, max_duration_s=0.3)
    assert e.value.kind == "too_long"
    with pytest.raises(ClipError, match="decoding stopped") as e:
        read_av(path, max_pixels=64 * 64 * 5)
    assert e.value.kind == "too_large"


def test_decode_caps_are_settings_recorded_in_the_config():
    from talkbench.pipelines.config import PipelineConfig

    cfg = PipelineConfig().model_dump(mode="json")
    assert cfg["decode"]["max_duration_s"] > 0 and cfg["decode"]["max_pixels"] > 0


# --------------------------------------------------------------------------- 3/7. names and rows
def test_non_utf8_names_get_safe_unique_ids():
    from talkbench.pipelines.core import ClipRecord
    from talkbench.pipelines.datasets.base import clip_ids, safe_record, safe_text

    name = os.fsdecode(b"caf\xe9")
    sid = safe_text(name)
    assert sid.startswith("caf%E9~") and sid.encode("utf-8")
    assert safe_text(name) == sid and safe_text(os.fsdecode(b"caf\xe8")) != sid and safe_text("café") == "café"
    root = Path("/c")
    ids = clip_ids(root, [root / "a__b.mp4", root / "a" / "b.mp4", root / f"{name}.mpg"])
    assert len(set(ids)) == 3 and ids[2] == sid  # a collision no longer stops the job
    rec = safe_record(ClipRecord(clip_id=sid, dataset="folder", source_path=f"/c/{name}.mpg", speaker_id=name))
    assert rec.source_path == "/c/caf%E9.mpg" and rec.source_path_raw == b"/c/caf\xe9.mpg"
    assert rec.path == f"/c/{name}.mpg" and rec.speaker_id.encode("utf-8")


def test_special_files_are_never_opened(tmp_path):
    from talkbench.media import read_av

    os.mkfifo(tmp_path / "pipe.mp4")  # opening it would block the worker forever
    (tmp_path / "zero.mp4").symlink_to("/dev/zero")  # reading it would never end
    (tmp_path / "dir.mpg").mkdir()
    (tmp_path / "dangling.mp4").symlink_to(tmp_path / "gone.mp4")
    expected = {"pipe.mp4": "not_a_file", "zero.mp4": "not_a_file", "dir.mpg": "not_a_file",
                "dangling.mp4": "file_missing"}
    for name, kind in expected.items():
        with pytest.raises(ClipError) as e:
            read_av(tmp_path / name)
        assert e.value.kind == kind, name


def test_png_named_like_a_video_is_not_video(tmp_path):
    from talkbench.media import read_av

    with pytest.raises(ClipError) as e:
        read_av(png_named_mp4(tmp_path / "clip.mp4"))
    assert e.value.kind == "not_video" and "still image" in e.value.message


def test_unreadable_file_is_permission_denied():
    """As an unprivileged user (root reads mode-000 files, so the check runs in a child as nobody)."""
    from talkbench.media import check_readable_file

    folder = Path(tempfile.mkdtemp(prefix="talkbench-perm-"))
    try:
        folder.chmod(0o755)
        path = folder / "x.mp4"
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42")
        path.chmod(0)
        assert as_nobody(check_readable_file, path).startswith("permission_denied ")
    finally:
        path.unlink()
        folder.rmdir()


@pytest.mark.slow
def test_hostile_corpus_prepares_with_every_input_a_row(tmp_path, fixtures_dir):
    """The issue's done-when, at decode-stage size: exit 0, every good clip ok, every bad one a row."""
    import pandas as pd

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("bbaf2n", "brbk7n"):
        (corpus / f"{name}.mpg").symlink_to(GRID / f"{name}.mpg")
    os.symlink(GRID / "lbax4n.mpg", os.path.join(os.fsencode(corpus), b"caf\xe9.mpg"))
    long_gap_mp4(corpus / "long.mp4")
    os.mkfifo(corpus / "pipe.mp4")
    (corpus / "zero.mp4").symlink_to("/dev/zero")
    (corpus / "dir.mpg").mkdir()
    png_named_mp4(corpus / "image.mp4")
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "talkbench.cli", "prepare", "--dataset", "folder", "--input",
                          str(corpus), "--output", str(out), "--workers", "1", "--no-progress", "-o",
                          "stages=[decode]"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = pd.read_parquet(out / "clips.parquet").set_index("clip_id")
    kinds = {i: (r.status if r.status == "ok" else r.error_kind) for i, r in rows.iterrows()}
    cafe = next(i for i in kinds if i.startswith("caf%E9~"))
    assert kinds == {"bbaf2n": "ok", "brbk7n": "ok", cafe: "ok", "long": "too_long", "pipe": "not_a_file",
                     "zero": "not_a_file", "dir": "not_a_file", "image": "not_video"}
    assert rows.loc[cafe, "source_path_raw"].endswith(b"caf\xe9.mpg")
    assert rows.loc[cafe, "n_frames"] == 75 and (rows["error"].dropna().str.len() > 0).all()


# --------------------------------------------------------------------------- 8. config
@pytest.mark.parametrize("value", ["1e400", ".inf", "-.inf", ".nan"])
def test_non_finite_config_values_are_refused(value):
    from talkbench.pipelines.runner import load_config

    with pytest.raises(ConfigError, match="decode.fps") as e:
        load_config(None, [f"decode.fps={value}"])
    assert "finite" in str(e.value)


# --------------------------------------------------------------------------- 5. MLflow: results never lost
def run_folder(folder: Path, name: str = "sub-a") -> Path:
    """A run folder as `bench run` writes it before touching MLflow (a record made here, no scoring)."""
    from talkbench.benchmark.records import AggregateRecord, Provenance, RunRecord, SubmissionInfo, TaskInfo

    record = RunRecord(
        task=TaskInfo(name="hostile", version=1, hash="t" * 64, kind="paired", split="test", n_clips=1,
                      primary_metric="psnr"),
        submission=SubmissionInfo(name=name, spec=f"/subs/{name}", hash="s" * 64),
        provenance=Provenance(talkbench_version="test"), missing_policy="fail", length_tolerance=1,
        n_clips=1, n_clips_ok=1, aggregates={"psnr": AggregateRecord(value=30.0, n=1)})
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(record.to_json())
    (folder / "per_clip.csv").write_text("clip_id,status,psnr\nc1,ok,30.0\n")
    return folder


def bench_cli(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "talkbench.cli", "bench", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def active_runs(uri: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("bench/hostile/v1")
    runs = client.search_runs([exp.experiment_id])
    return [r for r in runs if "talkbench.superseded_by" not in r.data.tags and r.info.status == "FINISHED"]


@pytest.mark.slow
def test_concurrent_logging_on_a_new_store_leaves_one_active_run(tmp_path):
    """Two processes log one run key at once on a store that does not exist yet: the schema is made once
    (no alembic race), one run is logged, the other is refused in one line with where its results are."""
    folder = run_folder(tmp_path / "run")
    uri = f"sqlite:///{tmp_path / 'new.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "TALKBENCH_ARTIFACT_ROOT": (tmp_path / "art").as_uri()}
    procs = [bench_cli("log", str(folder), env=env) for _ in range(2)]
    outs = [(p.wait(timeout=240), *p.communicate()) for p in procs]
    assert sorted(rc for rc, _, _ in outs) == [0, 2], outs
    err = next(e for rc, _, e in outs if rc == 2)
    assert "already scored" in err and str(folder) in err and len(err.strip().splitlines()) == 1
    assert len(active_runs(uri)) == 1


@pytest.mark.slow
def test_locked_store_keeps_the_results_and_says_how_to_log_them(tmp_path, capsys, monkeypatch):
    """A store locked longer than MLflow's 20 s busy timeout (retries off): a one-line error naming the
    folder and `bench log`; the folder is complete; `bench log` logs it once the lock is gone."""
    import sqlite3

    from talkbench.benchmark import runs
    from talkbench.cli import main

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("TALKBENCH_ARTIFACT_ROOT", (tmp_path / "art").as_uri())
    monkeypatch.setenv("TALKBENCH_TRACKING_RETRY_S", "0")
    runs.use_tracking(uri)
    from talkbench.tracking import init_store

    init_store(uri)
    folder = run_folder(tmp_path / "run")
    holder = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        rc = main(["bench", "log", str(folder)])
    finally:
        holder.execute("COMMIT")
        holder.close()
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "database is locked" in err and f"talkbench bench log {folder}" in err and "Traceback" not in err
    assert (folder / "results.json").is_file() and (folder / "per_clip.csv").is_file()
    assert main(["bench", "log", str(folder)]) == 0
    assert len(active_runs(uri)) == 1
