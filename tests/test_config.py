"""Config loading: overrides, validation errors that name key, value and what is allowed."""

from __future__ import annotations

import pytest

from talkbench.config import build, config_hash, load
from talkbench.errors import ConfigError
from talkbench.pipelines.config import PipelineConfig


def test_defaults_and_override():
    cfg = build(PipelineConfig, {}, ["landmarks.max_gap_frames=3", "align.crop_size=96"])
    assert cfg.landmarks.max_gap_frames == 3
    assert cfg.align.crop_size == 96
    assert cfg.stages[0] == "decode"


def test_bad_value_names_key_and_value():
    with pytest.raises(ConfigError) as e:
        build(PipelineConfig, {}, ["landmarks.max_gap_frames=abc"])
    assert "landmarks.max_gap_frames" in str(e.value) and "'abc'" in str(e.value)


def test_literal_lists_allowed_values():
    with pytest.raises(ConfigError) as e:
        build(PipelineConfig, {}, ["au.backend=dlib"])
    msg = str(e.value)
    assert "au.backend" in msg and "geometric" in msg and "openface" in msg


def test_unknown_key_is_an_error():
    with pytest.raises(ConfigError, match="unknown key 'landmarks.max_gapp'"):
        build(PipelineConfig, {"landmarks": {"max_gapp": 2}})


def test_unknown_stage():
    with pytest.raises(ConfigError, match="unknown stage"):
        build(PipelineConfig, {"stages": ["decode", "warp"]})


def test_yaml_file_and_hash(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("landmarks:\n  max_gap_frames: 2\n")
    a = load(PipelineConfig, path)
    b = load(PipelineConfig, None, ["landmarks.max_gap_frames=2"])
    assert a == b and config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(load(PipelineConfig))


def test_missing_and_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load(PipelineConfig, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load(PipelineConfig, bad)
