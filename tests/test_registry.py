"""Lazy ``module:attr`` registry entries: names without importing, materialised on get, isolated in tests."""

from __future__ import annotations

import subprocess
import sys

import pytest

from talkbench.errors import ConfigError, TalkbenchError
from talkbench.registry import Registry, _Lazy


def test_lazy_entries_are_listed_without_import_and_loaded_on_get():
    reg: Registry[object] = Registry("thing")
    reg.register("dumps", lazy="json:dumps")
    reg.register("path", lazy="os.path:join")
    assert reg.names() == ["dumps", "path"] and not reg.is_loaded("dumps")
    import json
    import os.path

    assert reg.get("dumps") is json.dumps and reg.get("path") is os.path.join and reg.is_loaded("dumps")
    with pytest.raises(TalkbenchError, match="unknown thing 'nope'; known: dumps, path"):
        reg.get("nope")


def test_double_registration_is_an_error_but_a_module_may_fill_its_placeholder():
    reg: Registry[object] = Registry("thing")
    reg.register("a", lazy="json:dumps")
    reg.register("a", lazy="json:dumps")  # same target: idempotent
    with pytest.raises(ValueError, match="twice"):
        reg.register("a", lazy="json:loads")
    reg.register("a")(len)  # the module registering itself replaces the placeholder
    with pytest.raises(ValueError, match="twice"):
        reg.register("a")(max)
    with pytest.raises(ValueError, match="module:attr"):
        reg.register("b", lazy="json")


def test_in_order_keeps_registration_order_when_a_module_fills_its_placeholder():
    reg: Registry[object] = Registry("thing")
    reg.register("b", lazy="json:dumps")
    reg.register("a", lazy="json:loads")
    reg.register("b")(len)
    assert reg.in_order() == ["b", "a"] and reg.names() == ["a", "b"]


def test_stage_registry_owns_the_default_order_and_the_config_sections():
    """The pipeline config's sections are the registered stages, typed by each stage's settings class."""
    from talkbench.pipelines.config import PipelineConfig
    from talkbench.pipelines.core import DEFAULT_STAGES, STAGES

    assert list(DEFAULT_STAGES) == STAGES.in_order()[:len(DEFAULT_STAGES)] and DEFAULT_STAGES[0] == "decode"
    assert PipelineConfig().stages == list(DEFAULT_STAGES)
    fields = list(PipelineConfig.model_fields)
    assert fields == ["stages", *DEFAULT_STAGES, "execution"]
    for name in DEFAULT_STAGES:
        stage = STAGES.get(name)
        assert PipelineConfig.model_fields[name].annotation is stage.config
        assert isinstance(getattr(PipelineConfig(), name), stage.config)


def test_isolated_forgets_entries_added_inside():
    reg: Registry[object] = Registry("thing")
    reg.register("a")(len)
    with reg.isolated():
        reg.register("toy")(max)
        reg._clear()
        assert reg.names() == []
    assert reg.names() == ["a"]


def test_listing_every_registry_imports_nothing_heavy():
    code = ("import sys; from talkbench.models.registry import MODELS; from talkbench.pipelines.au import AU_BACKENDS;"
            "from talkbench.pipelines.datasets import DATASETS; from talkbench.pipelines.core import STAGES;"
            "assert MODELS.names() and AU_BACKENDS.names() and DATASETS.names() and STAGES.names();"
            "print(','.join(m for m in ('torch', 'mediapipe', 'cv2', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_au_backend_is_validated_against_the_registry():
    from talkbench.pipelines.au import AU_BACKENDS
    from talkbench.pipelines.config import PipelineConfig

    with pytest.raises(ConfigError, match="unknown AU backend 'nope'"):
        from talkbench.config import build

        build(PipelineConfig, {}, ["au.backend=nope"])
    with AU_BACKENDS.isolated():
        AU_BACKENDS.register("toy")(lambda clip, cfg, ctx: {})
        assert PipelineConfig.model_validate({"au": {"backend": "toy"}}).au.backend == "toy"


def test_io_helpers_keep_hashes_stable(tmp_path):
    """stable_hash is the old config_hash serialisation, so persisted config/task hashes did not move."""
    import hashlib
    import json

    from talkbench.config import config_hash
    from talkbench.io import atomic_write, package_versions, sha256_file, stable_hash

    obj = {"b": [1, 2.5, "x"], "a": {"z": None, "y": True}}
    old = hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert stable_hash(obj) == old and config_hash(obj) == old[:16]
    path = atomic_write(tmp_path / "sub" / "f.json", "hello")
    assert path.read_text() == "hello" and sha256_file(path) == hashlib.sha256(b"hello").hexdigest()
    assert [p.name for p in path.parent.iterdir()] == ["f.json"]  # no temporary left behind
    assert package_versions(["numpy", "no-such-dist-xyz"])["no-such-dist-xyz"] is None


def test_perf_all_runs_the_registered_perf_commands(tmp_path):
    """``perf all`` is derived from the perf registry: a command registered with in_all runs, an
    opt-out (model-specific, minutes long) one does not, and each command's run function loads lazily."""
    from talkbench.app.cli import build_parser
    from talkbench.perf import PERF, PerfCommand, add_perf_command, perf_all_names

    build_parser()
    build_parser()  # building the parser twice registers the same commands again: no error
    assert {"pipeline", "metrics", "loader", "training"} <= set(perf_all_names()) and "mftfg" not in perf_all_names()
    for name in PERF.names():
        assert callable(_Lazy(PERF.get(name).target).load()), name
    with PERF.isolated():
        import argparse

        sub = argparse.ArgumentParser().add_subparsers()
        p = add_perf_command(sub, "toy", "json:dumps")
        assert "toy" in perf_all_names() and p.parse_args([]).out_dir == "reports/perf"
        with pytest.raises(ValueError, match="twice"):
            PERF.register("toy")(PerfCommand("json:loads"))
    assert "toy" not in PERF
