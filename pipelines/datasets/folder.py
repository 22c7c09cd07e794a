"""Any folder of videos, searched recursively (.mp4 .mov .mkv .avi .mpg .webm … any case).

Speaker (``speaker_from``): ``parent`` (default) = the folder holding the file, ``unknown`` for files
directly in the root; ``top`` = the first folder below the root; ``stem`` = every file is its own
speaker (for a flat folder of different people). A ``<stem>.txt`` next to a video gives its transcript.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from talkbench.errors import ConfigError
from talkbench.pipelines.core import ClipRecord
from talkbench.pipelines.datasets.base import (
    VIDEO_EXTENSIONS,
    clip_ids,
    find_files,
    read_sidecar_text,
)
from talkbench.pipelines.datasets.splits import SplitConfig, Splitter

SPEAKER_RULES = ("parent", "top", "stem")


def folder_speaker(rel: Path, rule: str) -> str:
    if rule == "stem":
        return rel.stem
    if len(rel.parts) < 2:
        return "unknown"
    return rel.parts[-2] if rule == "parent" else rel.parts[0]


def folder(root: Path, split_cfg: SplitConfig, *, speaker_from: str = "parent",
           extensions: tuple[str, ...] = VIDEO_EXTENSIONS) -> Iterator[ClipRecord]:
    if speaker_from not in SPEAKER_RULES:
        raise ConfigError(f"folder: speaker_from = {speaker_from!r}; allowed: {list(SPEAKER_RULES)}")
    root = Path(root)
    splitter = Splitter(split_cfg)
    paths = find_files(root, extensions)
    for path, clip_id in zip(paths, clip_ids(root, paths), strict=True):
        speaker = folder_speaker(path.relative_to(root), speaker_from)
        yield ClipRecord(clip_id=clip_id, dataset="folder", source_path=str(path), speaker_id=speaker,
                         split=splitter(speaker), transcript=read_sidecar_text(path))
