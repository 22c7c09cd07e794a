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

    Tests run as root, and root reads a mode-000 file; an unprivileged child is the real case. Run by
    a user that is not root, the call is made in this process (that user cannot read it either).
    """
    if os.geteuid() != 0:
        try:
            return f"ok {fn(*args)!r}"
        except ClipError as e:
            return f"{e.kind} {e.message}"
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
    from talkbench.app.cli import main
    from talkbench.benchmark.submissions import load_submission

    with pytest.raises(TalkbenchError, match="--allow-code"):
        load_submission("bench_adapters:StillFace", allow_code=False)
    rc = main(["bench", "run", "--task", "none", "--submission", "bench_adapters:StillFace",
               "--tasks-dir", str(tmp_path), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"])
    err = capsys.readouterr().err
    assert rc == 2 and "--allow-code" in err and len(err.strip().splitlines()) == 1


def test_run_help_says_adapters_run_code(capsys):
    from talkbench.app.cli import main

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
    res = subprocess.run([sys.executable, "-m", "talkbench.app.cli", "prepare", "--dataset", "folder", "--input",
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
    return subprocess.Popen([sys.executable, "-m", "talkbench.app.cli", "bench", *args], cwd=ROOT, env=env,
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
    outs = [(p.wait(timeout=500), *p.communicate()) for p in procs]  # ~15 s on an idle machine
    assert sorted(rc for rc, _, _ in outs) == [0, 2], outs
    err = next(e for rc, _, e in outs if rc == 2)
    assert "already scored" in err and str(folder) in err and len(err.strip().splitlines()) == 1
    assert len(active_runs(uri)) == 1


@pytest.mark.slow
def test_locked_store_keeps_the_results_and_says_how_to_log_them(tmp_path, capsys, monkeypatch):
    """A store locked longer than MLflow's 20 s busy timeout (retries off): a one-line error naming the
    folder and `bench log`; the folder is complete; `bench log` logs it once the lock is gone."""
    import sqlite3

    from talkbench.app.cli import main
    from talkbench.benchmark import runs

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


# --------------------------------------------------------------------------- 6. archives, 4. submission.yaml
def tiny_mp4(path: Path) -> Path:
    from talkbench.media import write_video

    return write_video(path, np.zeros((3, 16, 16, 3), np.uint8), fps=25)


def test_zip_bomb_stops_while_extracting(tmp_path):
    import zipfile

    from talkbench.benchmark.submissions import SubmissionError, extract_archive

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("clip.mp4", b"\0" * (64 * 1024**2))  # 64 MB of zeros -> ~64 KB
    dest = tmp_path / "x"
    dest.mkdir()
    with pytest.raises(SubmissionError) as e:
        extract_archive(bomb, dest)
    assert e.value.kind == "archive_ratio"
    assert (dest / "clip.mp4").stat().st_size < 20 * 1024**2  # stopped on the way, not judged afterwards


def test_archive_total_size_and_member_caps(tmp_path):
    import zipfile

    from talkbench.benchmark.submissions import SubmissionError, extract_archive

    arc = tmp_path / "many.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        for i in range(5):
            zf.writestr(f"c{i}.mp4", os.urandom(1000))
    for kwargs, kind in [({"max_members": 4}, "archive_too_many_members"), ({"max_bytes": 2500}, "archive_too_large")]:
        dest = tmp_path / kind
        dest.mkdir()
        with pytest.raises(SubmissionError) as e:
            extract_archive(arc, dest, **kwargs)
        assert e.value.kind == kind and f"[{kind}]" in str(e.value)


@pytest.mark.parametrize(("members", "kind"), [(["sub/x", "sub/x/clip.mp4"], "archive_conflict"),
                                               (["sub/x/clip.mp4", "sub/x"], "archive_conflict"),
                                               (["sub/a.mp4", "sub/a.mp4"], "archive_duplicate")])
def test_tar_member_conflicts_are_specific_errors(tmp_path, members, kind):
    import io
    import tarfile

    from talkbench.benchmark.submissions import SubmissionError, load_submission

    arc = tmp_path / "sub.tar"
    with tarfile.open(arc, "w") as tf:
        for i, name in enumerate(members):
            info = tarfile.TarInfo(name)
            info.size = 4
            tf.addfile(info, io.BytesIO(f"m{i:03d}".encode()))
    with pytest.raises(SubmissionError) as e:
        load_submission(str(arc))
    assert e.value.kind == kind and "\n" not in str(e.value)


def test_archive_traversal_and_links_are_refused(tmp_path):
    """(held before issue 11) '..', absolute names and links are never written."""
    import tarfile
    import zipfile

    from talkbench.benchmark.submissions import extract_archive

    arc = tmp_path / "evil.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        zf.writestr("../escape.mp4", b"x")
        zf.writestr("/abs.mp4", b"x")
        link = zipfile.ZipInfo("link.mp4")
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
    dest = tmp_path / "d"
    dest.mkdir()
    assert sorted(extract_archive(arc, dest)) == ["../escape.mp4", "/abs.mp4", "link.mp4"]
    assert not any(dest.iterdir()) and not (tmp_path / "escape.mp4").exists()
    tar = tmp_path / "evil.tar"
    with tarfile.open(tar, "w") as tf:
        for name, kind in [("dev.mp4", tarfile.CHRTYPE), ("sym.mp4", tarfile.SYMTYPE), ("hard.mp4", tarfile.LNKTYPE)]:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "/etc/passwd"
            tf.addfile(info)
    assert sorted(extract_archive(tar, dest)) == ["dev.mp4", "hard.mp4", "sym.mp4"]


def test_alias_bomb_is_refused_in_under_5_s(tmp_path):
    import time

    from talkbench.benchmark.submissions import SubmissionError, load_submission

    folder = tmp_path / "sub"
    folder.mkdir()
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    lines += [f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]"
              for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    lines.append("model: *i")
    (folder / "submission.yaml").write_text("\n".join(lines) + "\n")
    assert (folder / "submission.yaml").stat().st_size < 1024
    start = time.perf_counter()
    with pytest.raises(SubmissionError) as e:
        load_submission(str(folder))
    assert time.perf_counter() - start < 5 and e.value.kind == "meta_not_scalar"


@pytest.mark.parametrize(("text", "kind"), [("model: " + "x" * 70_000, "meta_too_large"),
                                            ("model: " + "x" * 2000, "meta_value_too_long"),
                                            ("model: {a: 1}", "meta_not_scalar"),
                                            ("model: " + "m" * 300, "bad_name"),
                                            ("model: \"a\\x1b[31mred\"", "bad_name")])
def test_submission_yaml_caps(tmp_path, text, kind):
    from talkbench.benchmark.submissions import SubmissionError, load_submission

    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "submission.yaml").write_text(text + "\n")
    with pytest.raises(SubmissionError) as e:
        load_submission(str(folder))
    assert e.value.kind == kind


def test_yaml_tags_are_not_constructed(tmp_path):
    """(held before issue 11) python tags in submission.yaml are a YAML error, never an object."""
    from talkbench.benchmark.submissions import load_submission

    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "submission.yaml").write_text(f"model: !!python/object/apply:os.system ['touch {tmp_path}/P']\n")
    with pytest.raises(TalkbenchError, match="not valid YAML"):
        load_submission(str(folder))
    assert not (tmp_path / "P").exists()


def test_long_display_name_is_refused(tmp_path):
    from talkbench.benchmark.submissions import SubmissionError, load_submission

    with pytest.raises(SubmissionError, match=r"\[bad_name\]"):
        load_submission("builtin:static-frame", name="n" * 201)


def test_submission_videos_that_are_not_videos(tmp_path):
    """Special files and still images in an outputs-first folder: specific per-clip kinds."""
    from talkbench.benchmark.submissions import load_submission
    from talkbench.benchmark.tasks import TaskClip, TaskItem

    folder = tmp_path / "sub"
    folder.mkdir()
    os.mkfifo(folder / "pipe.mp4")
    png_named_mp4(folder / "image.mp4")
    tiny_mp4(folder / "ok.mp4")
    sub = load_submission(str(folder))
    for clip_id, kind in [("pipe", "not_a_file"), ("image", "not_video")]:
        clip = TaskClip(clip_id=clip_id, reference_clip=clip_id, reference_frame=0, reference_source="",
                        audio_clip=clip_id, ground_truth="", n_frames=3)
        item = TaskItem(clip=clip, audio=np.zeros(1920, np.float32), fps=25.0, sample_rate=16_000)
        with pytest.raises(ClipError) as e:
            sub.read(item)
        assert e.value.kind == kind


def test_os_error_on_the_output_path_is_one_line(tmp_path, capsys):
    from talkbench.app.cli import main

    out = tmp_path / ("x" * 300)  # a name component over the 255-byte limit
    rc = main(["prepare", "--dataset", "folder", "--input", str(tmp_path), "--output", str(out), "--workers", "1",
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "File name too long" in err


def test_submission_decoding_stops_past_the_task_length(tmp_path):
    """A 600 s submission video (two frames 600 s apart) for a 75-frame clip: decoding stops at 77 frames
    (task length + tolerance + 1) instead of producing 15,000, and the clip is wrong_length."""
    from talkbench.benchmark.submissions import load_submission
    from talkbench.benchmark.tasks import TaskClip, TaskItem

    folder = tmp_path / "sub"
    folder.mkdir()
    long_gap_mp4(folder / "c1.mp4", seconds=600, size=16)
    sub = load_submission(str(folder))
    clip = TaskClip(clip_id="c1", reference_clip="c1", reference_frame=0, reference_source="", audio_clip="c1",
                    ground_truth="", n_frames=75)
    item = TaskItem(clip=clip, audio=np.zeros(48_000, np.float32), fps=25.0, sample_rate=16_000)
    with pytest.raises(ClipError) as e:
        sub.read(item)
    assert e.value.kind == "wrong_length" and "(600.0 s)" in e.value.message and "stopped at 77" in e.value.message


@pytest.mark.parametrize(("frames", "kind"), [
    (np.full((5, 8, 8, 3), np.nan, np.float32), "nan_frames"),
    (np.full((5, 8, 8, 3), np.inf, np.float32), "nan_frames"),
    ([np.zeros((8, 8, 3), np.uint8), np.zeros((4, 4, 3), np.uint8)], "bad_output"),  # ragged
    (np.zeros((5, 8, 8), np.uint8), "bad_output"),
    ("not frames", "bad_output"),
])
def test_hostile_adapter_output_is_a_per_clip_error(frames, kind):
    """(held before issue 11) NaN, inf, ragged and shapeless adapter output: a per-clip error kind."""
    from talkbench.benchmark.submissions import check_frames

    with pytest.raises(ClipError) as e:
        check_frames(frames, 5, tolerance=1)
    assert e.value.kind == kind
