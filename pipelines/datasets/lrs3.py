"""LRS3-TED (Afouras et al. 2018): ``{id}/{clip}.mp4`` + ``{clip}.txt``.

The root is either one subset folder (``{id}/…``) or the LRS3 root holding ``pretrain/``,
``trainval/`` and ``test/``. The ``{id}`` folder (a YouTube video id) stands in for the speaker: LRS3
has no speaker labels, and one TED talk is one speaker. With ``official_split`` (default) clips under
``test/`` are the test split and the others are divided into train/val by the split config (test
fraction ignored, explicit ``test_speakers`` still honoured).

``{clip}.txt``::

    Text:  SO I'M GOING TO TALK
    Conf:  3

    WORD START END ASDSCORE
    SO 0.15 0.31 6.2

gives the transcript (the ``Text:`` line) and, when the table is there, word timings in seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from talkbench.pipelines.core import ClipRecord
from talkbench.pipelines.datasets.base import Words, clip_ids, find_files
from talkbench.pipelines.datasets.splits import SplitConfig, Splitter

log = logging.getLogger(__name__)

SUBSETS = ("pretrain", "trainval", "test")


def parse_lrs3_text(path: Path) -> tuple[str | None, Words | None]:
    """(transcript, word timings) of an LRS3 ``.txt``; missing parts are None."""
    transcript: str | None = None
    words: list[tuple[float, float, str]] = []
    in_table = False
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("Text:"):
            transcript = line[len("Text:"):].strip() or None
        elif line.split()[:3] == ["WORD", "START", "END"]:
            in_table = True
        elif in_table and line.strip():
            fields = line.split()
            try:
                words.append((float(fields[1]), float(fields[2]), fields[0]))
            except (IndexError, ValueError):
                log.warning("lrs3: %s: bad word line %r", path, line)
    return transcript, (tuple(words) or None)


def lrs3(root: Path, split_cfg: SplitConfig, *, official_split: bool = True,
         extensions: tuple[str, ...] = (".mp4",)) -> Iterator[ClipRecord]:
    root = Path(root)
    splitter = Splitter(split_cfg)
    no_test = Splitter(split_cfg.model_copy(update={"test_fraction": 0.0}))
    paths = find_files(root, extensions)
    for path, clip_id in zip(paths, clip_ids(root, paths), strict=True):
        parts = path.relative_to(root).parts
        subset = parts[0] if len(parts) >= 3 and parts[0] in SUBSETS else None
        speaker = parts[-2] if len(parts) >= 2 else "unknown"
        if official_split and subset == "test":
            split = "test"
        elif official_split and subset is not None:
            split = no_test(speaker)
        else:
            split = splitter(speaker)
        transcript, words = None, None
        txt = path.with_suffix(".txt")
        if txt.is_file():
            transcript, words = parse_lrs3_text(txt)
        yield ClipRecord(clip_id=clip_id, dataset="lrs3", source_path=str(path), speaker_id=speaker,
                         split=split, transcript=transcript, words=words)
