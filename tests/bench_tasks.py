"""Small real benchmark tasks for tests: one GRID clip as the ground truth, without running `prepare`."""

from __future__ import annotations

from pathlib import Path

from shards_factory import grid_backed_shards


def one_grid_clip_task(folder: Path, name: str, geometry: str | None = None, codec: str | None = None):
    """A one-clip paired task whose ground truth is a real GRID video (synthetic shards pointing at it)."""
    from talkbench.benchmark.tasks import build_task

    root = grid_backed_shards(folder / "shards", speakers=1, clips_per_speaker=1, n_frames=75, val_speakers=0,
                              files=1)
    return build_task(root, name, split="train", max_clips=1, geometry=geometry, codec=codec)
