"""Small real benchmark tasks for tests: one GRID clip as the ground truth, without running `prepare`."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import GRID_CLIPS
from shards_factory import write_shards


def one_grid_clip_task(folder: Path, name: str, geometry: str | None = None):
    """A one-clip paired task whose ground truth is a real GRID video (synthetic shards pointing at it)."""
    from talkbench.benchmark.tasks import build_task

    root = write_shards(folder / "shards", speakers=1, clips_per_speaker=1, n_frames=75, val_speakers=0, files=1)
    clips = pq.read_table(root / "clips.parquet")
    src = pa.array([str(GRID_CLIPS[0])] * clips.num_rows, clips.schema.field("source_path").type)
    pq.write_table(clips.set_column(clips.schema.get_field_index("source_path"), "source_path", src),
                   root / "clips.parquet")
    return build_task(root, name, split="train", max_clips=1, geometry=geometry)
