"""GRID audio-visual sentence corpus (Cooke et al. 2006).

Layout: speaker folders ``s1 … s34`` holding ``<code>.mpg`` (any depth below the root, e.g.
``video/s1/bbaf2n.mpg``), alignments in a parallel tree: ``align/``, ``alignments/`` or
``alignments/sN/`` under the root or next to it, ``<stem or code>.align``: ``start end word`` per
line in 1/25,000 s (1/1000 of a 25 fps frame); ``sil`` = silence.

Speaker rule (documented because the file name does not record the speaker):

1. the nearest folder named ``s<number>`` above the file;
2. otherwise the parent folder's name, when the file is not directly in the root;
3. otherwise, for a flat folder of files, the part of the stem before the first ``_``
   (``id2_vcd_swwp2s`` -> ``id2``), or ``unknown`` when the stem has no ``_``.

The sentence code is the last ``_``-separated part of the stem (``id2_vcd_swwp2s`` -> ``swwp2s``).
Word timings (with ``sil`` entries) come from the alignment; the transcript from the alignment without
``sil``, else (option ``transcript_from_code``) from the code itself: GRID sentences follow a fixed
grammar, so ``bbaf2n`` spells "bin blue at f two now".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

from talkbench.errors import ConfigError
from talkbench.pipelines.core import ClipRecord
from talkbench.pipelines.datasets.base import Words, clip_ids, find_files, is_hidden, transcript_of
from talkbench.pipelines.datasets.splits import SplitConfig, Splitter

log = logging.getLogger(__name__)

ALIGN_UNITS_PER_S = 25_000.0
ALIGN_DIR_NAMES = ("align", "alignments")
SPEAKER_DIR = re.compile(r"^s\d+$")

_COMMAND = {"b": "bin", "l": "lay", "p": "place", "s": "set"}
_COLOUR = {"b": "blue", "g": "green", "r": "red", "w": "white"}
_PREPOSITION = {"a": "at", "b": "by", "i": "in", "w": "with"}
_DIGIT = {"z": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six",
          "7": "seven", "8": "eight", "9": "nine"}
_ADVERB = {"a": "again", "n": "now", "p": "please", "s": "soon"}


def sentence_from_code(code: str) -> str | None:
    """``bbaf2n`` -> "bin blue at f two now"; None when ``code`` is not a GRID sentence code."""
    code = code.lower()
    if len(code) != 6 or not code[3].isalpha() or code[3] == "w":
        return None
    parts = (_COMMAND.get(code[0]), _COLOUR.get(code[1]), _PREPOSITION.get(code[2]), code[3],
             _DIGIT.get(code[4]), _ADVERB.get(code[5]))
    return None if any(p is None for p in parts) else " ".join(parts)  # type: ignore[arg-type]


def parse_align(path: Path) -> Words:
    """Read a GRID ``.align`` file into ((start_s, end_s, word), ...), silences kept as ``sil``."""
    words = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise ValueError(f"{path}:{n}: expected 'start end word', got {line!r}")
        start, end = float(fields[0]) / ALIGN_UNITS_PER_S, float(fields[1]) / ALIGN_UNITS_PER_S
        words.append((start, end, fields[2]))
    return tuple(words)


def sentence_code(stem: str) -> str:
    return stem.rsplit("_", 1)[-1]


def speaker_of(rel: Path) -> str:
    """The speaker rule of the module docstring, for a path relative to the corpus root."""
    for folder in reversed(rel.parts[:-1]):
        if SPEAKER_DIR.match(folder):
            return folder
    if len(rel.parts) > 1:
        return rel.parts[-2]
    return rel.stem.split("_", 1)[0] if "_" in rel.stem else "unknown"


class AlignIndex:
    """Every ``.align`` file under the alignment folders, keyed by (speaker folder or None, stem)."""

    def __init__(self, folders: list[Path]):
        self._paths: dict[tuple[str | None, str], Path] = {}
        for folder in folders:
            for path in sorted(folder.rglob("*.align")):
                rel = path.relative_to(folder)
                if is_hidden(rel):
                    continue
                speaker = next((p for p in reversed(rel.parts[:-1]) if SPEAKER_DIR.match(p)), None)
                self._paths.setdefault((speaker, path.stem), path)

    def find(self, speaker: str, stem: str) -> Path | None:
        """Same-speaker alignment first; a flat alignment folder (no speaker) as the fallback."""
        for key in ((speaker, stem), (speaker, sentence_code(stem)), (None, stem), (None, sentence_code(stem))):
            if key in self._paths:
                return self._paths[key]
        return None


def align_folders(root: Path, align_dir: str | None) -> list[Path]:
    if align_dir is not None:
        folder = Path(align_dir)
        folder = folder if folder.is_absolute() else root / folder
        if not folder.is_dir():
            raise ConfigError(f"grid: align_dir {str(folder)!r} is not a folder")
        return [folder]
    # Alignments next to the videos (root/align) or next to the video tree (root/../align).
    candidates = [root / n for n in ALIGN_DIR_NAMES] + [root.parent / n for n in ALIGN_DIR_NAMES]
    folders = [c for c in candidates if c.is_dir() and c.resolve() != root.resolve()]
    return folders or [root]  # .align files mixed in with the videos


def grid(root: Path, split_cfg: SplitConfig, *, extensions: tuple[str, ...] = (".mpg", ".mp4"),
         align_dir: str | None = None, transcript_from_code: bool = True) -> Iterator[ClipRecord]:
    """GRID clips; ``align_dir`` overrides the alignment search (relative to the root or absolute)."""
    root = Path(root)
    splitter = Splitter(split_cfg)
    aligns = AlignIndex(align_folders(root, align_dir))
    paths = find_files(root, extensions, skip_dirs=ALIGN_DIR_NAMES)
    for path, clip_id in zip(paths, clip_ids(root, paths), strict=True):
        rel = path.relative_to(root)
        speaker = speaker_of(rel)
        words: Words | None = None
        align = aligns.find(speaker, path.stem)
        if align is not None:
            try:
                words = parse_align(align)
            except (ValueError, OSError) as e:  # one bad alignment must not stop the listing
                log.warning("grid: ignoring alignment %s: %s", align, e)
        transcript = transcript_of(words)
        if transcript is None and transcript_from_code:
            transcript = sentence_from_code(sentence_code(path.stem))
        yield ClipRecord(clip_id=clip_id, dataset="grid", source_path=str(path), speaker_id=speaker,
                         split=splitter(speaker), transcript=transcript, words=words)
