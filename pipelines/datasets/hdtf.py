"""HDTF (Zhang et al. 2021): a folder of high-resolution talking-head mp4 files.

Files are named ``<source>_<person>_<index>`` (``WRA_AdamKinzinger_000.mp4``, ``RD_Radio31_000.mp4``):
the speaker is the stem minus the trailing ``_<digits>``, so all segments of one person share a split.
Sub-folders are searched too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from talkbench.pipelines.core import ClipRecord
from talkbench.pipelines.datasets.base import clip_ids, find_files
from talkbench.pipelines.datasets.splits import SplitConfig, Splitter

_INDEX = re.compile(r"^(.+?)_\d+$")


def hdtf_speaker(stem: str) -> str:
    match = _INDEX.match(stem)
    return match.group(1) if match else stem


def hdtf(root: Path, split_cfg: SplitConfig, *,
         extensions: tuple[str, ...] = (".mp4",)) -> Iterator[ClipRecord]:
    root = Path(root)
    splitter = Splitter(split_cfg)
    paths = find_files(root, extensions)
    for path, clip_id in zip(paths, clip_ids(root, paths), strict=True):
        speaker = hdtf_speaker(path.stem)
        yield ClipRecord(clip_id=clip_id, dataset="hdtf", source_path=str(path), speaker_id=speaker,
                         split=splitter(speaker))
