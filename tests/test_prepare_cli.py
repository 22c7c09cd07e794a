"""Fast checks of ``talkbench prepare``: job-level errors, the config file, and the per-clip machinery.

Nothing here starts a Dask cluster (job errors are raised before one starts); the end-to-end runs
are in test_runner.py.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import yaml
from conftest import GRID_CLIPS, ROOT

from talkbench.app.cli import main
from talkbench.config import StrictModel
from talkbench.errors import ClipError
from talkbench.pipelines.config import PipelineConfig, render_yaml, undocumented_fields
from talkbench.pipelines.core import STAGES, Clip, ClipRecord, register_stage
from talkbench.pipelines.execute import process_clip
from talkbench.pipelines.tables import clips_table, frames_table
from talkbench.schema import CLIPS_SCHEMA, FRAMES_SCHEMA


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("talkbench: error: ")
    return lines[0]


# -- job-level errors: one line, exit 2 ------------------------------------------------------------
def test_bad_config_value_names_key_and_value(capsys, tmp_path, fixtures_dir):
    rc, _, err = run_cli(capsys, "prepare", "--dataset", "grid", "--input", str(fixtures_dir / "grid"),
                         "--output", str(tmp_path / "o"), "-o", "landmarks.max_gap_frames=lots")
    line = one_line_error(err)
    assert rc == 2 and "landmarks.max_gap_frames" in line and "'lots'" in line
    assert not (tmp_path / "o").exists()


def test_unknown_config_key_and_bad_stage(capsys, tmp_path, fixtures_dir):
    common = ["prepare", "--dataset", "grid", "--input", str(fixtures_dir / "grid"), "--output", str(tmp_path)]
    rc, _, err = run_cli(capsys, *common, "-o", "execution.clip_per_shard=3")
    assert rc == 2 and "execution.clip_per_shard" in one_line_error(err)
    rc, _, err = run_cli(capsys, *common, "-o", "stages=[decode,teleport]")
    assert rc == 2 and "teleport" in one_line_error(err)


def test_missing_input_dir(capsys, tmp_path):
    rc, _, err = run_cli(capsys, "prepare", "--dataset", "folder", "--input", str(tmp_path / "nope"),
                         "--output", str(tmp_path / "o"))
    assert rc == 2 and "input folder not found" in one_line_error(err)


def test_unknown_dataset(capsys, tmp_path, fixtures_dir):
    rc, _, err = run_cli(capsys, "prepare", "--dataset", "voxpopuli", "--input", str(fixtures_dir / "grid"),
                         "--output", str(tmp_path / "o"))
    line = one_line_error(err)
    assert rc == 2 and "voxpopuli" in line and "grid" in line  # names the known ones


def test_missing_config_file(capsys, tmp_path, fixtures_dir):
    rc, _, err = run_cli(capsys, "prepare", "--dataset", "grid", "--input", str(fixtures_dir / "grid"),
                         "--output", str(tmp_path / "o"), "--config", str(tmp_path / "none.yaml"))
    assert rc == 2 and "config file not found" in one_line_error(err)


# -- configs/pipeline.yaml ------------------------------------------------------------------------
def test_pipeline_yaml_is_the_documented_defaults():
    path = ROOT / "configs" / "pipeline.yaml"
    assert undocumented_fields() == [], "give these fields a Field(description=...)"
    assert path.read_text() == render_yaml(), (
        "configs/pipeline.yaml is stale: python -m talkbench.pipelines.config > configs/pipeline.yaml")
    assert PipelineConfig.model_validate(yaml.safe_load(path.read_text())) == PipelineConfig()


def test_config_file_then_overrides(tmp_path):
    from argparse import Namespace

    from talkbench.pipelines.runner import config_from_args

    cfg_file = tmp_path / "p.yaml"
    cfg_file.write_text("landmarks: {max_gap_frames: 2}\nexecution: {clips_per_shard: 4}\n")
    ds_file = tmp_path / "d.yaml"
    ds_file.write_text("split: {test_speakers: [s1]}\noptions: {speaker_from: stem}\n")
    args = Namespace(config=str(cfg_file), dataset_config=str(ds_file), override=["landmarks.max_gap_frames=7"],
                     workers=3, scheduler=None, au_backend="openface")
    cfg, dataset_cfg = config_from_args(args)
    assert cfg.landmarks.max_gap_frames == 7 and cfg.execution.clips_per_shard == 4
    assert cfg.execution.workers == 3 and cfg.au.backend == "openface"
    assert dataset_cfg.split.test_speakers == ["s1"] and dataset_cfg.options == {"speaker_from": "stem"}


def test_split_has_one_home_the_dataset_config(tmp_path, caplog):
    """-o split.x=... and an old pipeline file's split section still work (they go to the dataset config,
    under the dataset file's keys); PipelineConfig itself says where split went."""
    from argparse import Namespace

    from talkbench.pipelines.runner import config_from_args, job_identity

    old = tmp_path / "p.yaml"
    old.write_text("split: {seed: 3, val_fraction: 0.2}\n")
    ds_file = tmp_path / "d.yaml"
    ds_file.write_text("split: {val_fraction: 0.3}\n")
    args = Namespace(config=str(old), dataset_config=str(ds_file), override=["split.test_fraction=0.5"],
                     workers=None, scheduler=None, au_backend=None)
    cfg, dataset_cfg = config_from_args(args)
    assert (dataset_cfg.split.seed, dataset_cfg.split.val_fraction, dataset_cfg.split.test_fraction) == (3, 0.3, 0.5)
    assert "belongs in the dataset config" in caplog.text
    assert "split" not in PipelineConfig.model_fields
    with pytest.raises(ValueError, match="dataset setting now.*configs/datasets"):
        PipelineConfig.model_validate({"split": {"seed": 1}})
    # the split is part of an output's identity: another split may not resume into the same folder
    assert job_identity("grid", cfg, dataset_cfg.split)["job_hash"] != job_identity("grid", cfg)["job_hash"]


def test_slurm_example_renders_a_job_script():
    pytest.importorskip("dask_jobqueue")
    from talkbench.pipelines.distributor import slurm_cluster

    cluster = slurm_cluster(str(ROOT / "configs" / "slurm_example.yaml"), scale=False)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH" in script and "--nthreads 1" in script and "--nworkers 16" in script


# -- per-clip machinery (in process) --------------------------------------------------------------
def record(path: str, clip_id: str = "c1") -> ClipRecord:
    return ClipRecord(clip_id=clip_id, dataset="test", source_path=path, speaker_id="s1")


def test_frames_table_fills_missing_columns_and_checks_lengths():
    clip = Clip(record=record("x"), fps=25.0)
    clip.frames_table = {"landmarks": np.zeros((3, 478, 3), np.float32), "face_found": np.ones(3, bool),
                         "face_crop": np.zeros((3, 8, 8, 3), np.uint8)}  # not a schema column: dropped
    table = frames_table(clip)
    assert table.schema.equals(FRAMES_SCHEMA) and table.num_rows == 3
    assert table.column("frame_idx").to_pylist() == [0, 1, 2]
    assert table.column("timestamp_s").to_pylist() == pytest.approx([0.0, 0.04, 0.08])
    assert table.column("AU25_r").null_count == 3
    mfcc = table.column("mfcc").to_pylist()  # a missing fixed-size list is NaN, never null (arrow#35692)
    assert np.asarray(mfcc[0]).shape == (4, 12) and np.isnan(np.asarray(mfcc[0], np.float32)).all()
    clip.frames_table["blur"] = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="different lengths"):
        frames_table(clip)
    del clip.frames_table["blur"]
    clip.frames_table["mfcc"] = np.zeros((3, 47), np.float32)
    with pytest.raises(ValueError, match="mfcc"):
        frames_table(clip)


def test_clips_table_has_the_schema():
    table = clips_table([{"clip_id": "a", "status": "ok", "n_frames": 3}])
    assert table.schema.equals(CLIPS_SCHEMA) and table.num_rows == 1
    assert isinstance(table.column("n_frames").type, type(pa.int32()))


class _NoSettings(StrictModel):
    pass


@pytest.fixture
def failing_stages():
    """Two stages that fail on purpose, registered for one test only."""

    def boom(clip, cfg, ctx):
        raise ZeroDivisionError("the stage divided by zero")

    def clip_error(clip, cfg, ctx):
        raise ClipError("no_face", "no face on any frame")

    with STAGES.isolated():
        register_stage("test_boom", _NoSettings)(boom)
        register_stage("test_clip_error", _NoSettings)(clip_error)
        yield


def test_process_clip_turns_any_exception_into_a_failed_row(fixtures_dir, failing_stages):
    base = PipelineConfig(stages=["decode", "test_boom"])
    res = process_clip(record(str(GRID_CLIPS[0])), base)
    assert res.frames is None and res.row["status"] == "failed" and res.row["n_frames"] == 0
    assert res.row["error_kind"] == "internal"
    assert res.row["error"] == "ZeroDivisionError: the stage divided by zero"
    assert res.row["source_fps"] == pytest.approx(25.0)  # what decode learnt is kept

    res = process_clip(record(str(GRID_CLIPS[0])), PipelineConfig(stages=["decode", "test_clip_error"]))
    assert (res.row["error_kind"], res.row["error"]) == ("no_face", "no face on any frame")

    res = process_clip(record(str(fixtures_dir / "grid" / "missing.mpg")), PipelineConfig(stages=["decode"]))
    assert res.row["status"] == "failed" and res.row["error_kind"] == "file_missing"


def test_process_clip_decode_only_gives_75_frames():
    res = process_clip(record(str(GRID_CLIPS[0])), PipelineConfig(stages=["decode"]))
    assert res.row["status"] == "ok" and res.n_frames == 75 and res.row["n_frames"] == 75
    assert len(res.row["audio_pcm16"]) == 2 * 16_000 * 3
    assert res.frames.column("landmarks").null_count == 0  # NaN-filled, see tables._column
