"""Shared test fixtures: paths to the real media in ../shared/fixtures (never copied into the repo)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"
GRID = FIXTURES / "grid"
WILD = FIXTURES / "wild"
OPENFACE = FIXTURES / "openface"
AUDIO = FIXTURES / "audio"
GRID_CLIPS = sorted(GRID.glob("*.mpg"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"real test fixtures not found at {FIXTURES} (they live in ../shared/fixtures)")
    return FIXTURES
