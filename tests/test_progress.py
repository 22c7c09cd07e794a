"""The one progress display (talkbench/progress.py): a bar on a terminal, one line per finished loop
elsewhere, nothing under -q; and no other module draws its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from talkbench import progress
from talkbench.progress import Progress, step_line, track

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _reset():
    yield
    progress.configure()


def test_off_a_terminal_each_loop_is_one_line(capsys):
    progress.configure(tty=False)
    with Progress("scoring sub", total=3, unit="clip") as p:
        for _ in range(3):
            p.update()
        p.set_postfix(shards=1)
        p.write("bbaf2n: no_face: no face found")
    assert list(track(range(4), "DDIM 4 steps", unit="step", leave=False)) == [0, 1, 2, 3]  # inner: silent
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "bbaf2n: no_face: no face found"
    assert re.fullmatch(r"scoring sub: 3/3 clip in \d+\.\d s \([\d.e+]+ clip/s\) shards=1", err[1]), err
    assert len(err) == 2


def test_on_a_terminal_it_is_a_tqdm_bar_and_quiet_is_silent(capsys):
    progress.configure(tty=True)
    for _ in track(range(2), "train m", unit="step"):
        pass
    assert re.search(r"train m: 100%.*2/2", capsys.readouterr().err)
    progress.configure(quiet=True, tty=True)
    for _ in track(range(2), "train m", unit="step"):
        pass
    Progress("prepare", total=1, unit="clip", enabled=True).close()
    assert capsys.readouterr().err == ""
    assert step_line(2, 7, "train au_rgan") == "[2/7] train au_rgan"


def test_quiet_flag_reaches_the_display():
    from talkbench.app.cli import build_parser

    assert build_parser().parse_args(["-q", "doctor"]).quiet


def test_no_module_draws_its_own_progress_bar():
    """tqdm is used in one place (talkbench/progress.py): every loop looks the same."""
    offenders = []
    for folder in ("talkbench", "pipelines", "models", "benchmark"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name != "progress.py" and re.search(r"^\s*(from tqdm|import tqdm)", path.read_text(), re.M):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
