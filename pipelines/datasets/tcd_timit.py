"""TCD-TIMIT (Harte & Gillen 2015): 59 volunteers and 3 lipspeakers reading TIMIT sentences.

Layout: ``volunteers/NN/.../straightcam/*.mp4`` and ``lipspeakers/LipspkrN/.../straightcam/*.mp4``
(the download nests a ``Clips/`` folder; any depth works). Only the straight (frontal) camera is read
by default; ``cameras: [straightcam, 30degcam]`` adds the 30-degree view. Speaker id =
``<group>-<folder>`` (``volunteers-01``, ``lipspeakers-Lipspkr1``) so the two groups never collide.
A ``<stem>.txt`` next to a video, when present, gives the transcript.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from talkbench.pipelines.core import ClipRecord
from talkbench.pipelines.datasets.base import clip_ids, find_files, read_sidecar_text
from talkbench.pipelines.datasets.splits import SplitConfig, Splitter


def tcd_timit(root: Path, split_cfg: SplitConfig, *,
              groups: tuple[str, ...] = ("volunteers", "lipspeakers"),
              cameras: tuple[str, ...] = ("straightcam",),
              extensions: tuple[str, ...] = (".mp4",)) -> Iterator[ClipRecord]:
    root = Path(root)
    splitter = Splitter(split_cfg)
    paths = []
    for path in find_files(root, extensions):
        parts = path.relative_to(root).parts
        # group/speaker/.../camera/.../file: the camera folder sits below the speaker folder
        if len(parts) >= 4 and parts[0] in groups and any(p in cameras for p in parts[2:-1]):
            paths.append(path)
    for path, clip_id in zip(paths, clip_ids(root, paths), strict=True):
        group, folder = path.relative_to(root).parts[:2]
        speaker = f"{group}-{folder}"
        yield ClipRecord(clip_id=clip_id, dataset="tcd-timit", source_path=str(path), speaker_id=speaker,
                         split=splitter(speaker), transcript=read_sidecar_text(path))
