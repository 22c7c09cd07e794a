"""The package layout: top-level folders import as talkbench.*, every sub-package is packaged."""

from __future__ import annotations

import subprocess
import sys

import tomllib
from conftest import ROOT


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    roots = {"talkbench": "talkbench", "pipelines": "talkbench.pipelines", "models": "talkbench.models",
             "benchmark": "talkbench.benchmark"}
    found = set()
    for folder, name in roots.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rel)))
    assert found == listed, f"pyproject packages differ: missing {found - listed}, stale {listed - found}"


def test_import_names():
    import talkbench.benchmark
    import talkbench.models
    import talkbench.pipelines

    assert talkbench.pipelines.__file__.startswith(str(ROOT / "pipelines"))
    assert talkbench.models.__file__.startswith(str(ROOT / "models"))
    assert talkbench.benchmark.__file__.startswith(str(ROOT / "benchmark"))


def test_cli_help_is_light():
    """`talkbench --help` must not import torch, mediapipe, mlflow or dask."""
    code = (
        "import sys; from talkbench.app.cli import build_parser; build_parser();"
        "heavy=[m for m in ('torch','mediapipe','mlflow','dask','torchvision') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
