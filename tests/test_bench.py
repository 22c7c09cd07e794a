"""The benchmark harness end to end on real GRID clips: tasks, submissions, scoring, MLflow, leaderboard.

Expensive work happens once per module: real `talkbench prepare` shards of 3 GRID clips, and the three
built-in references scored on them (the ground truth is face-processed once and memoised); the other
tests reuse those runs. Environment changes (tasks dir, MLflow store) end with the module.
"""

from __future__ import annotations

import csv
import html as html_lib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import GRID

from talkbench.app.cli import main
from talkbench.errors import ClipError, TalkbenchError

CLIPS = ["bbaf2n", "id2_vcd_swwp2s", "lbax4n"]
FAST_METRICS = "psnr,ssim,lmd,av-xcorr"
#: cpbd and ssim-uniform7 are left out of the shared runs only for time (~1 s per clip each on this
#: machine); the harness treats every metric alike, and the metrics' own tests cover them.
SLOW_METRICS = {"cpbd", "ssim-uniform7"}


@pytest.fixture(scope="module")
def bench_env(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path):
    """Real `talkbench prepare` shards of 3 GRID clips (all in the test split), a tasks folder, an MLflow
    SQLite store and artifact root, all under one temp folder."""
    root = tmp_path_factory.mktemp("bench")
    corpus = root / "grid"
    corpus.mkdir()
    for c in CLIPS:
        os.symlink(GRID / f"{c}.mpg", corpus / f"{c}.mpg")
    shards = root / "shards"
    assert main(["prepare", "--dataset", "grid", "--input", str(corpus), "--output", str(shards), "--workers", "1",
                 "--no-progress", "-o", "split.test_fraction=0.99", "-o", "split.val_fraction=0.0"]) == 0
    env = {"tasks": root / "tasks", "uri": f"sqlite:///{root / 'mlflow.db'}", "root": root, "shards": shards}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TALKBENCH_TASKS_DIR", str(env["tasks"]))
        mp.setenv("TALKBENCH_ARTIFACT_ROOT", (root / "mlartifacts").as_uri())
        mp.setenv("MLFLOW_TRACKING_URI", env["uri"])
        assert main(["bench", "make-task", "--shards", str(shards), "--name", "grid3"]) == 0
        assert main(["bench", "make-task", "--shards", str(shards), "--name", "grid1", "--max-clips", "1"]) == 0
        yield env


@pytest.fixture(scope="module")
def builtin_results(bench_env):
    """The three built-in references on the 3-clip task, every available metric, logged to MLflow."""
    from talkbench.benchmark.harness import run_submissions
    from talkbench.benchmark.metrics import METRICS

    specs = ["builtin:ground-truth", "builtin:static-frame", "builtin:shifted?k=5"]
    metrics = [m for m in METRICS.names() if m not in SLOW_METRICS]
    results = run_submissions("grid3", specs, metrics=metrics, keep_videos=False)
    return {r.submission.spec: (r, run_id) for r, run_id in results}


def _values(result, key: str) -> dict[str, float]:
    return {r["clip_id"]: r[key] for r in result.rows if r["status"] == "ok"}


# --------------------------------------------------------------------------- tasks


def test_make_task_is_versioned_and_hashed(bench_env, capsys):
    from talkbench.benchmark.tasks import load_task

    t1 = load_task("grid3")
    assert [c.clip_id for c in t1.clips] == sorted(CLIPS)
    assert t1.kind == "paired" and t1.version == 1 and len(t1.hash) == 64
    assert all(c.audio_clip == c.clip_id and c.reference_frame == 0 for c in t1.clips)
    # same content again: same version; different content: a new version, the old one still loadable
    assert main(["bench", "make-task", "--shards", str(bench_env["shards"]), "--name", "grid3"]) == 0
    assert "unchanged" in capsys.readouterr().out
    assert main(["bench", "make-task", "--shards", str(bench_env["shards"]), "--name", "grid3v",
                 "--max-clips", "2"]) == 0
    assert main(["bench", "make-task", "--shards", str(bench_env["shards"]), "--name", "grid3v"]) == 0
    assert load_task("grid3v").version == 2 and len(load_task("grid3v@1").clips) == 2
    assert load_task("grid3v").hash != load_task("grid3v@1").hash
    assert main(["bench", "list"]) == 0
    listing = capsys.readouterr().out
    assert "grid3@1" in listing and "grid3v@2" in listing


def test_task_file_edited_by_hand_is_refused(bench_env, tmp_path):
    from talkbench.benchmark.tasks import load_task

    src = bench_env["tasks"] / "grid1" / "v1.yaml"
    data = yaml.safe_load(src.read_text())
    data["clips"][0]["reference_frame"] = 7
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(data))
    with pytest.raises(TalkbenchError, match="does not match its hash"):
        load_task(str(edited))


def test_task_with_stale_face_settings_is_a_clear_error(bench_env):
    from talkbench.benchmark.preprocess import Preprocessor
    from talkbench.benchmark.tasks import load_task

    task = load_task("grid1")
    stale = task.model_copy(update={"preprocessing": {**task.preprocessing, "align": {"no_such_key": 1}}})
    with pytest.raises(TalkbenchError, match="no_such_key"):
        Preprocessor(stale)


def test_unpaired_task_drives_each_face_with_another_speakers_audio(bench_env):
    import pandas as pd

    from talkbench.benchmark.tasks import build_task

    speaker = pd.read_parquet(bench_env["shards"] / "clips.parquet").set_index("clip_id")["speaker_id"]
    task = build_task(bench_env["shards"], "dub", kind="unpaired")
    assert task.primary_metric == "av_xcorr_r0" and len(task.clips) == 3
    for clip in task.clips:
        assert clip.ground_truth is None and clip.audio_clip != clip.reference_clip
        if speaker.nunique() > 1:
            assert speaker[clip.audio_clip] != speaker[clip.reference_clip]


def test_make_task_errors_are_one_line(bench_env, tmp_path, capsys):
    assert main(["bench", "make-task", "--shards", str(bench_env["shards"]), "--name", "x", "--split", "train"]) == 2
    assert "no clips in split 'train'" in capsys.readouterr().err
    assert main(["bench", "make-task", "--shards", str(tmp_path), "--name", "x"]) == 2
    assert "no clips.parquet" in capsys.readouterr().err
    assert main(["bench", "make-task", "--shards", str(bench_env["shards"]), "--name", "a/b"]) == 2
    assert main(["bench", "run", "--task", "nope", "--submission", "builtin:ground-truth"]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err


# --------------------------------------------------------------------------- built-in references


def test_ground_truth_is_the_upper_bound(builtin_results):
    gt, _ = builtin_results["builtin:ground-truth"]
    assert gt.n_ok == 3 and gt.n_failed == 0
    # cropped with the ground truth's own transforms, the ground truth reproduces its crops bit for bit
    assert all(v == 100.0 for v in _values(gt, "psnr").values())  # the PSNR cap: identical crops
    assert all(v >= 0.99 for v in _values(gt, "ssim").values())
    assert gt.geometry == {"align-gt": 3}
    assert all(v < 1e-3 for v in _values(gt, "lmd").values())
    agg = gt.aggregates["ssim"]
    assert agg.ci_low <= agg.value <= agg.ci_high


def test_static_frame_scores_below_ground_truth(builtin_results):
    gt, _ = builtin_results["builtin:ground-truth"]
    static, _ = builtin_results["builtin:static-frame"]
    for clip, v in _values(static, "ssim").items():
        assert v < _values(gt, "ssim")[clip]
    for clip, v in _values(static, "lmd").items():
        assert v > _values(gt, "lmd")[clip] + 0.1
    # a still face no longer wins on motion: jitter is judged as the gap to the real face's own motion
    for key in ("jitter_vel_gap", "jitter_acc_gap"):
        assert gt.aggregates[key].value == 0.0 < static.aggregates[key].value
    assert static.aggregates["jitter_vel"].value < gt.aggregates["jitter_vel"].value  # raw: still is "best"
    assert gt.record.metrics["landmark-jitter"].ranks == {"jitter_vel_gap": True, "jitter_acc_gap": True,
                                                            "jitter_vel": False, "jitter_acc": False}


def test_ground_truth_copy_is_flagged_and_generators_are_not(builtin_results):
    gt, _ = builtin_results["builtin:ground-truth"]
    assert gt.flags == {"suspect_copy": 3} and gt.record.flags == {"suspect_copy": 3}
    for spec in ("builtin:static-frame", "builtin:shifted?k=5"):
        res, _ = builtin_results[spec]
        assert res.flags == {"suspect_copy": 0}, spec
        assert all(r["integrity.mouth_psnr"] < 36 for r in res.rows)


#: av_xcorr_peak (the best correlation over offsets) barely depends on the offset; it still drops for the
#: shifted copy because its first k frames are frozen and its last k real frames are cut.
SYNC_KEYS = {"lmd": "lower", "lmd_sum": "lower", "av_xcorr_peak": "higher", "av_xcorr_r0": "higher",
             "av_xcorr_abs_offset": "lower", "lse_d": "lower", "lse_c": "higher", "lse_abs_offset": "lower",
             "tb_sync_d": "lower", "tb_sync_c": "higher", "tb_sync_abs_offset": "lower"}


def test_shifted_is_out_of_sync(builtin_results):
    gt, _ = builtin_results["builtin:ground-truth"]
    shifted, _ = builtin_results["builtin:shifted?k=5"]
    available = [k for k in SYNC_KEYS if k in gt.aggregates]
    assert {"lmd", "av_xcorr_peak", "av_xcorr_r0", "av_xcorr_abs_offset"} <= set(available)
    for key in available:
        g, s = gt.aggregates[key].value, shifted.aggregates[key].value
        assert (s < g) if SYNC_KEYS[key] == "higher" else (s > g), f"{key}: shifted {s} vs ground truth {g}"
    # The weight-free offset estimate recovers the delay on every clip: ground truth reads in sync and
    # the copy delayed by k = 5 frames reads k, each within one frame.
    gt_off, sh_off = _values(gt, "av_xcorr_offset"), _values(shifted, "av_xcorr_offset")
    assert set(sh_off) == set(gt_off) == set(CLIPS)
    for clip in CLIPS:
        assert abs(gt_off[clip]) <= 1 and abs(sh_off[clip] - 5) <= 1, (gt_off, sh_off)


def test_unavailable_metrics_are_recorded_not_zero(builtin_results):
    from mlflow.tracking import MlflowClient

    gt, run_id = builtin_results["builtin:ground-truth"]
    run = MlflowClient().get_run(run_id)
    for name, reason in gt.unavailable.items():
        assert run.data.params[f"unavailable.{name}"] == reason
        assert name not in run.data.metrics
    if "lpips" in gt.unavailable:  # no weights on this machine
        assert "lpips" not in run.data.metrics and "weights" in gt.unavailable["lpips"]


def test_run_records_params_metrics_and_artifacts(builtin_results):
    from mlflow.tracking import MlflowClient

    result, run_id = builtin_results["builtin:static-frame"]
    client = MlflowClient()
    run = client.get_run(run_id)
    p, m = run.data.params, run.data.metrics
    assert p["task_hash"] == result.task.hash and p["submission_hash"] == result.submission.identity_hash
    assert p["variant.ssim"] == "ssim-gauss11-s1.5" and p["missing_policy"] == "exclude-with-count"
    assert p["talkbench_version"] and "git_commit" in p
    assert m["ssim_ci_low"] <= m["ssim"] <= m["ssim_ci_high"] and m["n_clips_ok"] == 3
    files = {f.path for f in client.list_artifacts(run_id)}
    assert {"per_clip.csv", "results.json", "grids"} <= files
    # the run record is the source of the params and metrics, and the leaderboard reads it back
    from talkbench.benchmark.runs import read_record

    record = read_record(run_id)
    assert record.to_json() == result.record.to_json() and record.mlflow_params() == p  # (NaN != NaN)
    assert {k: v for k, v in m.items()} == pytest.approx(record.mlflow_metrics())
    assert record.aggregates["ssim"].n == 3 and record.aggregates["ssim"].n_undefined == 0
    grids = client.list_artifacts(run_id, "grids")
    assert len(grids) == 3 and all(g.path.endswith(".png") for g in grids)
    local = client.download_artifacts(run_id, "per_clip.csv")
    rows = list(csv.DictReader(Path(local).read_text().splitlines()))
    assert sorted(r["clip_id"] for r in rows) == sorted(CLIPS) and all(float(r["ssim"]) < 1 for r in rows)


# --------------------------------------------------------------------------- outputs-first folders


def _gt_folder(folder: Path, clips: list[str], with_audio: bool = False) -> Path:
    from talkbench.media import read_av, write_video

    folder.mkdir(parents=True, exist_ok=True)
    for c in clips:
        av = read_av(GRID / f"{c}.mpg")
        write_video(folder / f"{c}.mp4", av.frames, fps=25, audio=av.audio if with_audio else None)
    return folder


def test_outputs_first_folder_of_ground_truth_scores_like_ground_truth(bench_env, builtin_results, tmp_path):
    from talkbench.benchmark.evaluator import evaluate
    from talkbench.benchmark.submissions import load_submission
    from talkbench.benchmark.tasks import load_task

    folder = _gt_folder(tmp_path / "sub", CLIPS)
    (folder / "submission.yaml").write_text("model: gt-reencoded\nversion: '1'\nlicence: CC-BY-4.0\n")
    sub = load_submission(str(folder))
    assert sub.name == "gt-reencoded 1" and sub.meta["licence"] == "CC-BY-4.0"
    res = evaluate(load_task("grid3"), sub, metric_names=FAST_METRICS.split(","))
    static, _ = builtin_results["builtin:static-frame"]
    assert res.n_ok == 3 and res.rows[0]["video_audio"] is False  # no audio track: the task's audio is used
    assert res.aggregates["psnr"].value > 35 and res.aggregates["ssim"].value > 0.95
    assert res.aggregates["ssim"].value > static.aggregates["ssim"].value
    assert res.aggregates["lmd"].value < 0.5 * static.aggregates["lmd"].value


def _mpeg4(path: Path, frames: np.ndarray, bitrate: int = 4_000_000) -> None:
    """MPEG-4 Part 2 at a fixed bit rate (PyAV's mpeg4 encoder): the re-encode of the integrity check."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = frames.shape[2], frames.shape[1], "yuv420p", bitrate
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())


def test_reencoded_copy_is_flagged_and_a_displaced_head_is_penalised(bench_env, tmp_path):
    """Issue 10's done-when on a real clip: a 4 Mbit/s MPEG-4 Part 2 re-encode of the ground truth is
    flagged suspect_copy; the same copy with the head displaced by 12 px loses >= 3 dB of PSNR (it is
    cropped with the ground truth's own transform, not re-aligned) and its head placement error shows it."""
    from talkbench.benchmark.evaluator import evaluate
    from talkbench.benchmark.submissions import load_submission
    from talkbench.benchmark.tasks import load_task
    from talkbench.media import read_av

    task = load_task("grid1")
    clip = task.clips[0].clip_id
    frames = read_av(GRID / f"{clip}.mpg", fps=25).frames
    shifted = np.concatenate([np.repeat(frames[:, :, :1], 12, axis=2), frames[:, :, :-12]], axis=2)
    scores = {}
    for name, video in (("copy", frames), ("displaced", shifted)):
        (tmp_path / name).mkdir()
        _mpeg4(tmp_path / name / f"{clip}.mp4", video)
        res = evaluate(task, load_submission(str(tmp_path / name)), metric_names=["psnr", "head-placement"])
        assert res.n_ok == 1 and res.geometry == {"align-gt": 1}
        scores[name] = res
    copy, displaced = scores["copy"], scores["displaced"]
    assert copy.flags == {"suspect_copy": 1} and copy.rows[0]["integrity.mouth_psnr"] > 38
    assert copy.aggregates["psnr"].value - displaced.aggregates["psnr"].value >= 3.0
    placement = displaced.aggregates["head_placement_px"].value  # GRID crops: ~0.65 crop px per source px
    assert copy.aggregates["head_placement_px"].value < 1.0 < 12 * 0.4 < placement < 12 * 1.2


def test_bad_folder_gives_clear_per_clip_errors(bench_env, tmp_path):
    from talkbench.benchmark.evaluator import evaluate
    from talkbench.benchmark.submissions import load_submission
    from talkbench.benchmark.tasks import load_task

    outside = _gt_folder(tmp_path / "outside", ["lbax4n"])
    folder = tmp_path / "bad"
    folder.mkdir()
    # bbaf2n missing; id2_vcd_swwp2s is a text file; lbax4n a link leading outside; plus extra files
    (folder / "id2_vcd_swwp2s.mp4").write_text("not a video")
    os.symlink(outside / "lbax4n.mp4", folder / "lbax4n.mp4")
    (folder / "zzz.mp4").write_bytes(b"")
    (folder / "notes.txt").write_text("hi")
    res = evaluate(load_task("grid3"), load_submission(str(folder)), metric_names=["psnr"])
    kinds = {r["clip_id"]: r["error_kind"] for r in res.rows}
    assert kinds == {"bbaf2n": "missing", "id2_vcd_swwp2s": "unreadable", "lbax4n": "unsafe_path"}
    assert all(r["error"] for r in res.rows) and res.n_ok == 0 and not res.aggregates
    extra = {p["file"]: p["error_kind"] for p in res.submission.problems}
    assert extra == {"zzz.mp4": "extra", "notes.txt": "extra"}


def test_wrong_length_video_fails_that_clip_only(bench_env, tmp_path):
    from talkbench.benchmark.evaluator import evaluate
    from talkbench.benchmark.submissions import load_submission
    from talkbench.benchmark.tasks import load_task
    from talkbench.media import read_av, write_video

    folder = tmp_path / "short"
    folder.mkdir()
    write_video(folder / "bbaf2n.mp4", read_av(GRID / "bbaf2n.mpg").frames[:40], fps=25)
    res = evaluate(load_task("grid1"), load_submission(str(folder)), metric_names=["psnr"])
    assert res.rows[0]["error_kind"] == "wrong_length" and "40 frames" in res.rows[0]["error"]


def test_archives_are_extracted_safely(bench_env, tmp_path):
    from talkbench.benchmark.evaluator import evaluate
    from talkbench.benchmark.submissions import extract_archive, load_submission
    from talkbench.benchmark.tasks import load_task

    videos = _gt_folder(tmp_path / "v", ["bbaf2n"], with_audio=True)
    archive = tmp_path / "sub.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(videos / "bbaf2n.mp4", "bbaf2n.mp4")
        zf.writestr("../escape.mp4", b"x")
        zf.writestr("/abs.mp4", b"x")
        link = zipfile.ZipInfo("link.mp4")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "/etc/passwd")
    res = evaluate(load_task("grid1"), load_submission(str(archive)), metric_names=["psnr", "lmd"])
    assert res.n_ok == 1 and res.aggregates["psnr"].value > 35
    assert abs(res.rows[0]["video_audio_diff_s"]) < 0.1  # its own audio track was checked, not used
    refused = {p["file"] for p in res.submission.problems if p["error_kind"] == "unsafe_path"}
    assert refused == {"../escape.mp4", "/abs.mp4", "link.mp4"}
    assert not (tmp_path / "escape.mp4").exists()

    tar_path = tmp_path / "sub.tar"
    with tarfile.open(tar_path, "w") as tf:
        tf.add(videos / "bbaf2n.mp4", "sub/bbaf2n.mp4")
        sym = tarfile.TarInfo("sub/evil.mp4")
        sym.type, sym.linkname = tarfile.SYMTYPE, "../../etc/passwd"
        tf.addfile(sym)
    dest = tmp_path / "x"
    dest.mkdir()
    assert extract_archive(tar_path, dest) == ["sub/evil.mp4"]
    assert (dest / "sub" / "bbaf2n.mp4").is_file() and not (dest / "sub" / "evil.mp4").exists()


# --------------------------------------------------------------------------- adapters


def test_adapter_with_batching_and_setup(bench_env):
    from talkbench.benchmark.evaluator import evaluate
    from talkbench.benchmark.submissions import load_submission
    from talkbench.benchmark.tasks import load_task

    sub = load_submission("bench_adapters:StillFace")
    assert sub.name == "still-face" and sub.identity["source_sha256"]
    res = evaluate(load_task("grid3"), sub, metric_names=["lmd"], videos_dir=bench_env["root"] / "still")
    assert res.n_ok == 3 and sub.obj.batches == [2, 1]
    kept = sorted(p.name for p in (bench_env["root"] / "still").iterdir())
    assert kept == sorted(f"{c}.mp4" for c in CLIPS)  # the harness keeps the generated videos


@pytest.mark.parametrize(("mode", "kind"), [("nan", "nan_frames"), ("empty", "empty"), ("short", "wrong_length"),
                                            ("gray", "bad_output"), ("raise", "generate_failed")])
def test_bad_adapter_output_is_a_per_clip_error(bench_env, mode, kind):
    from talkbench.benchmark.evaluator import evaluate
    from talkbench.benchmark.submissions import load_submission
    from talkbench.benchmark.tasks import load_task

    res = evaluate(load_task("grid1"), load_submission(f"bench_adapters:Broken?mode={mode}"), metric_names=["psnr"])
    assert [r["error_kind"] for r in res.rows] == [kind] and res.rows[0]["error"]


def test_submission_spec_errors():
    from talkbench.benchmark.submissions import check_frames, load_submission

    with pytest.raises(TalkbenchError, match="not a built-in"):
        load_submission("no/such/folder")
    with pytest.raises(TalkbenchError, match="unknown built-in submission 'nope'"):
        load_submission("builtin:nope")
    with pytest.raises(TalkbenchError, match="cannot import module"):
        load_submission("no_such_module_xyz:Model")
    with pytest.raises(TalkbenchError, match="bad option"):
        load_submission("builtin:shifted?z=1")
    with pytest.raises(TalkbenchError, match="checkpoint not found"):
        load_submission("checkpoint:/no/such/model.safetensors")
    assert load_submission("builtin:shifted").spec == "builtin:shifted?k=5"
    frames = np.zeros((74, 8, 8, 3), np.uint8)
    assert check_frames(frames, 75, tolerance=1).shape[0] == 75  # one frame short: padded
    with pytest.raises(ClipError):
        check_frames(frames, 75, tolerance=0)


# --------------------------------------------------------------------------- duplicates and leaderboard


def test_duplicate_runs_are_refused_or_replaced(bench_env, capsys):
    from mlflow.tracking import MlflowClient

    from talkbench.benchmark.board import load_board
    from talkbench.benchmark.harness import run_submissions
    from talkbench.benchmark.runs import TAG_SUPERSEDED

    [(_, old_run)] = run_submissions("grid1", ["builtin:shifted?k=5"], metrics=["lmd"], keep_videos=False)
    args = ["bench", "run", "--task", "grid1", "--submission", "builtin:shifted", "--metrics", "lmd",
            "--no-keep-videos"]
    assert main(args) == 2  # builtin:shifted is builtin:shifted?k=5: already scored on this task
    err = capsys.readouterr().err
    assert "already scored" in err and "--rerun" in err
    assert main([*args, "--rerun"]) == 0
    assert MlflowClient().get_run(old_run).data.tags[TAG_SUPERSEDED]
    board = load_board("grid1")
    assert [e.submission for e in board.entries] == ["builtin:shifted?k=5"]  # one row, the new run
    assert board.entries[0].run_id != old_run


def test_empty_submission_fails_and_never_reaches_the_leaderboard(bench_env, tmp_path, capsys):
    from talkbench.benchmark.board import load_board

    def run_ids() -> list[str]:
        try:
            return [e.run_id for e in load_board("grid1").entries]
        except TalkbenchError:  # no run on the task yet
            return []

    empty = tmp_path / "empty"
    empty.mkdir()
    before = run_ids()
    assert main(["bench", "run", "--task", "grid1", "--submission", str(empty), "--metrics", "lmd",
                 "--no-keep-videos"]) == 2
    err = capsys.readouterr().err
    assert "no clip could be scored" in err and "missing" in err and "not logged" in err
    assert run_ids() == before


def test_unpaired_task_scores_no_reference_metrics_only(bench_env):
    from talkbench.benchmark.evaluator import evaluate
    from talkbench.benchmark.submissions import load_submission
    from talkbench.benchmark.tasks import build_task

    task = build_task(bench_env["shards"], "dub2", kind="unpaired", max_clips=2)
    res = evaluate(task, load_submission("builtin:static-frame"), metric_names=["psnr", "lmd", "av-xcorr"])
    assert res.n_ok == 2 and "av_xcorr_peak" in res.aggregates and "psnr" not in res.aggregates
    assert res.unavailable["psnr"].startswith("not applicable") and res.unavailable["lmd"].startswith("not appl")
    with pytest.raises(TalkbenchError, match="needs a paired task"):
        evaluate(task, load_submission("builtin:ground-truth"), metric_names=["av-xcorr"])


def test_leaderboard_orders_by_primary_metric(bench_env, builtin_results, tmp_path, capsys):
    from talkbench.benchmark.board import load_board

    board = load_board("grid3")
    assert board.primary == "lmd" and board.directions["lmd"] == "lower"
    order = [e.submission for e in board.entries]
    assert order.index("builtin:ground-truth") == 0 and board.entries[0].is_reference  # the reference row
    assert set(order[1:3]) == {"builtin:static-frame", "builtin:shifted?k=5"}
    assert board.rank(board.entries[0]) is None and board.rank(board.entries[1]) == 1
    md = tmp_path / "lb.md"
    assert main(["bench", "leaderboard", "--task", "grid3", "--out", str(md), "--relative"]) == 0
    text = md.read_text()
    assert "lmd ↓ (primary)" in text and "psnr ↑" in text and "av_xcorr_peak ↑ (not ranked)" in text
    ref_line = next(line for line in text.splitlines() if line.startswith("| ref |"))
    assert "builtin:ground-truth (reference: ground truth)" in ref_line and "suspect_copy 3/3" in ref_line
    first = next(line for line in text.splitlines() if line.startswith("| 1 |"))
    assert "builtin:ground-truth" not in first and "(Δ +" in first  # values relative to the reference
    for name in builtin_results["builtin:ground-truth"][0].unavailable:
        assert f"`{name}`: " in text  # unavailable metrics listed with their reason
    rel_html = tmp_path / "lb.html"  # --relative in HTML too: each competitor's cell shows its Δ to the reference
    assert main(["bench", "leaderboard", "--task", "grid3", "--format", "html", "--out", str(rel_html), "--relative"]) == 0
    main_table = rel_html.read_text().split('<table id="main"')[1].split("</table>")[0]
    for row in main_table.split("<tr")[3:]:  # the two head rows, then the body rows
        assert ('class="delta' in row) == ('class="ref"' not in row)
    out_csv = tmp_path / "lb.csv"
    assert main(["bench", "leaderboard", "--task", "grid3", "--format", "csv", "--out", str(out_csv)]) == 0
    rows = list(csv.DictReader(out_csv.read_text().splitlines()))
    assert rows[0]["submission"] == "builtin:ground-truth" and float(rows[0]["ssim"]) >= 0.99
    assert rows[0]["role"] == "reference" and rows[0]["rank"] == "" and rows[0]["flags.suspect_copy"] == "3"
    assert rows[1]["role"] == "competitor" and rows[1]["rank"] == "1" and rows[1]["flags.suspect_copy"] == "0"
    assert float(rows[1]["ssim_minus_reference"]) == pytest.approx(float(rows[1]["ssim"]) - float(rows[0]["ssim"]))
    assert rows[1]["av_xcorr_peak_ranks"] == "false" and rows[1]["lmd_ranks"] == "true"
    assert float(rows[1]["ssim_ci_low"]) <= float(rows[1]["ssim"]) <= float(rows[1]["ssim_ci_high"])


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Appended to a copy of the page: after load, report what the browser actually rendered.
PROBE = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images].map(i => [i.alt, i.naturalWidth, i.naturalHeight]);
  const rows = [...document.querySelectorAll('table')[0].querySelectorAll('tbody tr')]
    .map(r => r.innerText);
  const pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify({imgs, rows}); document.body.appendChild(pre);
});</script>"""


@pytest.mark.browser
def test_html_leaderboard_renders_in_a_browser(bench_env, builtin_results, tmp_path):
    """Open the HTML leaderboard in real headless Chromium: rows in rank order, every plot decodes."""
    out = tmp_path / "lb.html"
    assert main(["bench", "leaderboard", "--task", "grid3", "--format", "html", "--out", str(out)]) == 0
    html = out.read_text()
    assert html.count("data:image/png;base64,") >= 4  # bar chart + one sample grid per submission
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed (Debian: apt-get install chromium; .ci/run installs it)")
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("</body>", PROBE + "</body>"))
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert match, "the page's script did not run in the browser"
    probe = json.loads(html_lib.unescape(match.group(1)))
    rows = probe["rows"]
    assert len(rows) >= 3
    assert "ground-truth" in rows[0]  # ranked first by LMD
    assert all(w > 50 and h > 50 for _, w, h in probe["imgs"]), probe["imgs"]  # every plot decoded
    assert len(probe["imgs"]) >= 4

    shot = tmp_path / "lb.png"
    subprocess.run([browser, *flags, "--window-size=1400,1200", f"--screenshot={shot}", out.as_uri()],
                   capture_output=True, timeout=120, check=True)
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert img.std() > 10  # a rendered page with table and pictures, not a blank one


SORT_PROBE = """<script>window.addEventListener('load', () => {
  const main = document.getElementById('main');
  const names = () => [...main.tBodies[0].rows].map(r => r.cells[1].innerText);
  const heads = [...main.tHead.rows[1].cells];
  const psnr = heads.find(h => h.innerText.startsWith('psnr'));
  const before = names(); psnr.click(); const asc = names(); psnr.click(); const desc = names();
  const out = {before, asc, desc, groups: [...main.tHead.rows[0].cells].map(c => c.innerText).filter(x => x),
    radars: document.querySelectorAll('svg.radar polygon').length, refRows: main.querySelectorAll('tr.ref').length,
    undefTitles: [...document.querySelectorAll('td.undef')].map(td => td.title)};
  const pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});</script>"""


@pytest.mark.browser
def test_html_leaderboard_groups_sorts_and_explains(bench_env, builtin_results, tmp_path):
    """The readable board in Chromium: reference row, metric groups, sorting by a click, radar profiles,
    and a reason on every undefined value."""
    out = tmp_path / "lb.html"
    assert main(["bench", "leaderboard", "--task", "grid3", "--format", "html", "--out", str(out)]) == 0
    html = out.read_text()
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|src=\"https?:", html)  # self-contained: no CDN
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed (Debian: apt-get install chromium)")
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("</body>", SORT_PROBE + "</body>"))
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert match, "the page's script did not run in the browser"
    p = json.loads(html_lib.unescape(match.group(1)))
    assert p["refRows"] == 1 and "reference" in p["before"][0]  # ground truth first, as the reference
    assert {"Image quality", "Lip sync"} <= set(p["groups"])
    psnr = {res.record.submission.name: res.record.aggregates["psnr"].value for res, _ in builtin_results.values()}
    asc = [n.replace(" (reference)", "") for n in p["asc"]]
    assert asc == sorted(psnr, key=lambda n: psnr[n])  # a click sorts ascending (ground truth's PSNR is the cap)
    assert [n.replace(" (reference)", "") for n in p["desc"]] == asc[::-1]  # a second click descending
    assert p["radars"] >= 2 * len(builtin_results)  # outline + profile per submission
    assert all(t and ("undefined on" in t or "unavailable" in t or "not computed" in t) for t in p["undefTitles"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `mlflow server` on a free 127.0.0.1 port, started when the module starts: its slow start
    (~20-30 s of imports here) overlaps the other tests instead of adding to them."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri",
         f"sqlite:///{root / 'server.db'}", "--default-artifact-root", (root / "artifacts").as_uri(),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    yield server, f"http://127.0.0.1:{port}"
    os.killpg(server.pid, 15)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:  # a loaded machine can take longer to shut the workers down
        os.killpg(server.pid, 9)
        server.wait(timeout=30)


def test_against_a_real_mlflow_server(bench_env, mlflow_server, tmp_path):
    import urllib.request

    from mlflow.tracking import MlflowClient

    server, uri = mlflow_server
    deadline = time.time() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                pytest.fail("mlflow server did not start")
            time.sleep(0.5)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI")
        assert main(["bench", "run", "--task", "grid1", "--submission", "builtin:ground-truth",
                     "--metrics", "psnr,lmd", "--tracking-uri", uri, "--outputs-dir", str(tmp_path / "v")]) == 0
        assert main(["bench", "run", "--task", "grid1", "--submission", "builtin:ground-truth",
                     "--metrics", "psnr,lmd", "--tracking-uri", uri]) == 2  # duplicate refused there too
        out = tmp_path / "lb.md"
        assert main(["bench", "leaderboard", "--task", "grid1", "--tracking-uri", uri, "--out", str(out)]) == 0
    assert "builtin:ground-truth" in out.read_text()
    exp = MlflowClient(uri).get_experiment_by_name("bench/grid1/v1")  # the runs went to the server
    assert exp is not None and len(MlflowClient(uri).search_runs([exp.experiment_id])) == 1


# --------------------------------------------------------------------------- personalised task (seed 001)


def test_personalized_task_ranks_ground_truth_first_on_head_pose(bench_env):
    from bench_adapters import NearestFrame

    from talkbench.benchmark.harness import run_submissions
    from talkbench.benchmark.tasks import load_task

    assert main(["bench", "make-task", "--shards", str(bench_env["shards"]), "--name", "grid-pers",
                 "--kind", "personalized", "--personalize-frames", "40"]) == 0
    task = load_task("grid-pers")
    assert task.kind == "personalized" and task.paired and len(task.clips) == 3
    assert all(c.personalize_frames == 40 and c.n_frames == 35 and c.reference_frame < 40 for c in task.clips)
    assert task.selection["too_short"] == 0
    NearestFrame.calls.clear()
    metrics = ["lmd", "hs-hist", "hs-w1", "hs-seq-r", "pose-diversity"]
    specs = ["builtin:ground-truth", "builtin:static-frame", "bench_adapters:NearestFrame"]
    results = {r.submission.spec: r for r, _ in run_submissions("grid-pers", specs, metrics=metrics,
                                                                 keep_videos=False, log_to_mlflow=False)}
    assert NearestFrame.calls == [(40, 40 * 640)] * 3  # personalize(frames, audio) per clip, before generate
    gt = results["builtin:ground-truth"]
    assert gt.n_ok == 3
    for spec in specs[1:]:
        other = results[spec]
        assert other.n_ok == 3
        for clip, v in _values(other, "hs_w1").items():
            assert v < _values(gt, "hs_w1")[clip], (spec, clip)
        for clip, v in _values(other, "hs_hist").items():
            assert v <= _values(gt, "hs_hist")[clip] == 1.0
        for clip, v in _values(other, "lmd").items():
            assert v > _values(gt, "lmd")[clip]
    # frame-aligned: the ground truth correlates perfectly; a held frame (its tracked pose barely moves)
    # correlates less, or has no r at all, which is then counted in hs_seq_r_undefined (never dropped)
    for clip, r in _values(results["builtin:static-frame"], "hs_seq_r").items():
        assert _values(gt, "hs_seq_r")[clip] == pytest.approx(1.0)
        undefined = _values(results["builtin:static-frame"], "hs_seq_r_undefined")[clip]
        assert (np.isnan(r) and undefined == 3) or r < 0.99
    assert main(["bench", "make-task", "--shards", str(bench_env["shards"]), "--name", "grid-pers2",
                 "--kind", "personalized", "--personalize-frames", "60"]) != 0  # 60 + 25 > 75 frames


def test_bundles_from_two_stores_merge_and_verify(bench_env, builtin_results, tmp_path, capsys):
    """bench export from two MLflow stores -> one board from the bundles; a foreign task hash is refused;
    bench verify agrees with the original run and flags a different submission."""
    from talkbench.benchmark.bundles import read_bundle

    bundles = tmp_path / "bundles"
    gt_run = builtin_results["builtin:ground-truth"][1]
    assert main(["bench", "export", gt_run, "--out", str(bundles / "gt.zip")]) == 0
    assert main(["bench", "export", "builtin:static-frame", "--task", "grid3",
                 "--out", str(bundles / "static")]) == 0
    other = f"sqlite:///{tmp_path / 'other.db'}"  # a second team's store
    assert main(["bench", "run", "--task", "grid3", "--submission", "builtin:shifted?k=3", "--tracking-uri", other,
                 "--metrics", FAST_METRICS, "--no-keep-videos"]) == 0
    assert main(["bench", "export", "builtin:shifted?k=3", "--task", "grid3", "--tracking-uri", other,
                 "--out", str(bundles / "shifted3.zip")]) == 0
    capsys.readouterr()
    b = read_bundle(bundles / "static.tbresult.zip")
    assert b.frames and b.record.submission.name == "builtin:static-frame"
    with zipfile.ZipFile(bundles / "gt.zip") as z:
        assert {"bundle.json", "results.json", "per_clip.csv", "task.yaml"} <= set(z.namelist())
        assert not [n for n in z.namelist() if n.endswith(".mp4")]  # videos only with --with-videos

    # a bundle of another task (hash changed consistently in both files) is refused, not merged
    with zipfile.ZipFile(bundles / "gt.zip") as z, zipfile.ZipFile(bundles / "foreign.zip", "w") as out:
        for n in z.namelist():
            data = z.read(n)
            if n in ("bundle.json", "results.json"):
                data = data.replace(b.record.task.hash.encode(), b"f" * 64)
            out.writestr(n, data)
    md = tmp_path / "shared.md"
    assert main(["bench", "leaderboard", "--from", str(bundles), "--out", str(md)]) == 0
    assert "refused foreign.zip" in capsys.readouterr().err
    main_table = md.read_text().split("\n## ")[0]  # the ranked table (per-AU details follow under a heading)
    rows = [line for line in main_table.splitlines() if line.startswith("| ") and "builtin:" in line]
    assert len(rows) == 3 and "builtin:ground-truth" in rows[0]  # ranked by LMD across both stores
    assert any("builtin:shifted?k=3" in r for r in rows)
    html_out = tmp_path / "shared.html"
    assert main(["bench", "leaderboard", "--from", str(bundles), "--format", "html", "--out", str(html_out)]) == 0
    assert html_out.read_text().count("data:image/png;base64,") >= 4

    # verify: the same submission re-scored agrees; another one does not
    capsys.readouterr()
    assert main(["bench", "verify", str(bundles / "static.tbresult.zip"), "--submission", "builtin:static-frame"]) == 0
    out = capsys.readouterr().out
    assert "= the bundle's" in out and " OUT " not in out and "aggregates within tolerance" in out
    assert main(["bench", "verify", str(bundles / "shifted3.zip"), "--submission", "builtin:shifted?k=5"]) == 1
    assert " OUT " in capsys.readouterr().out


def test_bench_run_on_a_dask_scheduler_matches_a_local_run(bench_env, builtin_results, tmp_path):
    """bench run --scheduler on a real LocalCluster of two worker processes: the same numbers (values and
    bootstrap CIs) as the local run of the same submission, clip rows in task order."""
    from distributed import LocalCluster

    from talkbench.benchmark.harness import run_submissions

    local, _ = builtin_results["builtin:shifted?k=5"]
    metrics = sorted(local.metrics)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        ((remote, run_id),) = run_submissions("grid3", ["builtin:shifted?k=5"], metrics=metrics, keep_videos=False,
                                               tracking_uri=f"sqlite:///{tmp_path / 'cluster.db'}",
                                               scheduler=cluster.scheduler_address)
    assert run_id and [r["clip_id"] for r in remote.rows] == [r["clip_id"] for r in local.rows]
    assert set(remote.aggregates) == set(local.aggregates)
    for key, agg in local.aggregates.items():
        other = remote.aggregates[key]
        for a, b in ((agg.value, other.value), (agg.ci_low, other.ci_low), (agg.ci_high, other.ci_high)):
            assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12), key
        assert (agg.n, agg.n_undefined) == (other.n, other.n_undefined)
    assert remote.record.submission.hash == local.record.submission.hash
