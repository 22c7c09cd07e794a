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


_FIXTURE_PATHS = {FIXTURES, GRID, WILD, OPENFACE, AUDIO}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``fixtures`` every test that reads the real media: it asks for ``fixtures_dir`` or its module
    imported one of the paths above (``make test-fast`` deselects them, and ``slow`` ones)."""
    for item in items:
        module = getattr(item, "module", None)
        names = vars(module).values() if module is not None else ()
        uses_paths = any(isinstance(v, Path) and v in _FIXTURE_PATHS for v in names) or any(
            isinstance(v, list) and v is GRID_CLIPS for v in names)
        if "fixtures_dir" in getattr(item, "fixturenames", ()) or uses_paths:
            item.add_marker(pytest.mark.fixtures)
