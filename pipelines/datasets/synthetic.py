"""The synthetic corpus of :mod:`talkbench.pipelines.synth`: ``<speaker>/<clip>.mp4`` + ``<clip>.json``.

``corpus.json`` at the root marks a (completely written) corpus; its absence is a job-level error, so
pointing ``--dataset synthetic`` at some other folder fails with one clear line. The clips are the ones
``corpus.json`` lists (not whatever ``.mp4`` lies around: a smaller corpus generated over a larger one
leaves old files behind). Transcript and word timings (``sil`` included) come from each clip's JSON
sidecar.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

from talkbench.errors import TalkbenchError
from talkbench.pipelines.core import ClipRecord
from talkbench.pipelines.datasets.base import Words, clip_ids
from talkbench.pipelines.datasets.splits import SplitConfig, Splitter

log = logging.getLogger(__name__)


def read_sidecar(video: Path) -> tuple[str | None, Words | None]:
    meta_path = video.with_suffix(".json")
    if not meta_path.is_file():
        return None, None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        words = tuple((float(s), float(e), str(w)) for s, e, w in meta["words"])
        return meta.get("transcript"), words
    except (ValueError, KeyError, TypeError) as e:
        log.warning("synthetic: ignoring unreadable sidecar %s: %s", meta_path, e)
        return None, None


def synthetic(root: Path, split_cfg: SplitConfig) -> Iterator[ClipRecord]:
    root = Path(root)
    marker = root / "corpus.json"
    if not marker.is_file():
        raise TalkbenchError(f"{root} is not a synthetic corpus (no corpus.json); make one with talkbench synth")
    try:
        listed = json.loads(marker.read_text(encoding="utf-8"))["clips"]
    except (ValueError, KeyError) as e:
        raise TalkbenchError(f"{marker}: not a valid corpus.json ({e})") from None
    splitter = Splitter(split_cfg)
    paths = sorted((root / rel for rel in listed), key=lambda p: p.relative_to(root).as_posix())
    for path, clip_id in zip(paths, clip_ids(root, paths), strict=True):
        rel = path.relative_to(root)
        speaker = rel.parts[0] if len(rel.parts) > 1 else "unknown"
        transcript, words = read_sidecar(path)
        yield ClipRecord(clip_id=clip_id, dataset="synthetic", source_path=str(path), speaker_id=speaker,
                         split=splitter(speaker), transcript=transcript, words=words)
