"""What a newcomer meets first: split summary and fixes, training flags, quiet output, weights, config hints."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from talkbench.app.cli import build_parser, main
from talkbench.config import build
from talkbench.errors import ConfigError
from talkbench.pipelines.config import PipelineConfig
from talkbench.pipelines.core import ClipRecord
from talkbench.pipelines.datasets.base import DatasetConfig
from talkbench.pipelines.datasets.splits import SplitConfig, assign_clip_splits, split_summary


def _records(n: int, speaker: str = "unknown") -> list[ClipRecord]:
    return [ClipRecord(clip_id=f"c{i:02d}", dataset="folder", source_path=f"/x/c{i:02d}.mp4", speaker_id=speaker)
            for i in range(n)]


# -- splits --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "test", "val"), [(5, 2, 1), (10, 4, 1), (1, 1, 0), (2, 1, 0)])
def test_split_by_clip_gives_the_asked_sizes(n: int, test: int, val: int) -> None:
    cfg = SplitConfig(by="clip", test_fraction=0.4, val_fraction=0.1)
    out = assign_clip_splits(_records(n), cfg)
    splits = [r.split for r in out]
    assert (splits.count("test"), splits.count("val")) == (test, val)
    assert assign_clip_splits(_records(n), cfg) == out  # deterministic
    # by speaker (the default), one unknown speaker lands in one split whatever the fraction
    assert len({r.split for r in assign_clip_splits(_records(n), SplitConfig(test_fraction=0.4))}) == 1


def test_split_by_clip_keeps_listed_speakers() -> None:
    recs = _records(4) + [ClipRecord(clip_id=f"s1_{i}", dataset="grid", source_path="x", speaker_id="s1")
                          for i in range(2)]
    out = assign_clip_splits(recs, SplitConfig(by="clip", test_speakers=["s1"], val_fraction=0.0))
    assert [r.split for r in out if r.speaker_id == "s1"] == ["test", "test"]
    assert {r.split for r in out if r.speaker_id == "unknown"} == {"train"}


def test_split_summary_counts_and_warns_with_the_fix() -> None:
    cfg = SplitConfig(test_speakers=["s1", "s2"], val_fraction=0.0)
    lines, warnings = split_summary([("train", "unknown")] * 4 + [("train", "id2")], cfg)
    assert lines[1].split() == ["train", "5", "2"] and lines[3].split() == ["test", "0", "0"]
    assert len(warnings) == 1
    w = warnings[0]
    assert "'test' is empty" in w and "['s1', 's2']" in w and "id2, unknown" in w
    assert "-o split.by=clip -o split.test_fraction=0.4 -o split.test_speakers=[]" in w
    # the suggested overrides are valid config
    build(DatasetConfig, {}, ["split.by=clip", "split.test_fraction=0.4", "split.test_speakers=[]"])
    assert split_summary([("test", "a"), ("train", "b")], SplitConfig(val_fraction=0.0))[1] == []


# -- training flags --------------------------------------------------------------------------------------
def test_train_help_shows_the_limits() -> None:
    train = build_parser()._subparsers._group_actions[0].choices["train"]  # noqa: SLF001
    text = train.format_help()
    for flag in ("--max-steps", "--max-minutes", "--batch-size", "--device", "--print-config", "--run-name"):
        assert flag in text


def test_print_config_resolves_flags_over_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    rc = main(["train", "au_classifier", "--shards", "nowhere", "-o", "train.steps=5", "--max-steps", "3",
               "--max-minutes", "1.5", "--batch-size", "2", "--device", "cpu", "--print-config"])
    assert rc == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["name"] == "au_classifier" and cfg["data"]["shards"] == "nowhere"
    assert (cfg["train"]["steps"], cfg["train"]["max_minutes"], cfg["train"]["batch_size"],
            cfg["train"]["device"]) == (3, 1.5, 2, "cpu")


def test_best_validation_picks_by_direction() -> None:
    from talkbench.models.train import best_validation

    rows = [{"step": 1, "val_mae": 0.5, "val_r": 0.1}, {"step": 2, "val_mae": 0.3, "val_r": 0.0}]
    assert best_validation(rows) == ("val_mae", rows[1])
    rows = [{"step": 1, "val_pair_acc": 0.9}, {"step": 2, "val_pair_acc": 0.7}]
    assert best_validation(rows) == ("val_pair_acc", rows[0])
    assert best_validation([]) is None


# -- config hints ----------------------------------------------------------------------------------------
def test_misspelt_key_gets_the_nearest_valid_one() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'split.test_fractoin' \(did you mean 'test_fraction'\?\)"):
        build(DatasetConfig, {}, ["split.test_fractoin=0.2"])
    with pytest.raises(ConfigError, match=r"unknown key 'spilt' \(did you mean 'split'\?\)"):
        build(DatasetConfig, {}, ["spilt.test_fraction=0.2"])
    with pytest.raises(ConfigError, match=r"unknown key 'landmarks.max_gapp' \(did you mean 'max_gap_frames'\?\)"):
        build(PipelineConfig, {}, ["landmarks.max_gapp=2"])


# -- weights list ----------------------------------------------------------------------------------------
def test_weights_list_says_what_hash_to_expect(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(tmp_path / "store"))
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "sha256 -" not in out
    assert "7be5be79... (prefix published" in out  # alexnet: the hash prefix in its published file name
    assert "the first import pins it" in out
    assert "talkbench weights import syncnet_v2 FILE" in out
    src = tmp_path / "syncnet.bin"
    src.write_bytes(b"weights")
    assert main(["weights", "import", "syncnet_v2", str(src)]) == 0
    capsys.readouterr()
    main(["weights", "list"])
    import hashlib

    assert f"{hashlib.sha256(b'weights').hexdigest()} (pinned when first imported here)" in capsys.readouterr().out


# -- quiet output ----------------------------------------------------------------------------------------
NOISY = textwrap.dedent('''
    import os, subprocess, sys
    from talkbench.quiet import quiet_output
    noise = (b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n"
             b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n"
             b"W0000 00:00:1796164631.871456    7301 inference_feedback_manager.cc:114] Feedback manager.\\n")
    with quiet_output(int(sys.argv[1])):
        os.write(2, noise + b"real problem\\n")
        # a child process (as a Dask worker) inherits the filtered descriptor
        subprocess.run([sys.executable, "-c", f"import os; os.write(2, {noise!r} + b'child problem\\\\n')"])
        os.write(2, b"progress 50%\\r")
    os.write(2, b"after\\n")
''')


@pytest.mark.parametrize("verbose", [0, 1])
def test_native_chatter_is_filtered_unless_verbose(verbose: int) -> None:
    err = subprocess.run([sys.executable, "-c", NOISY, str(verbose)], capture_output=True, timeout=60).stderr
    assert b"real problem\n" in err and b"child problem\n" in err and b"progress 50%\r" in err
    assert err.endswith(b"after\n")
    assert (b"XNNPACK" in err) == bool(verbose)
    assert (b"inference_feedback_manager" in err) == bool(verbose)
    assert err.count(b"absl::InitializeLog") == 2 * verbose
