"""Train/val/test assignment: deterministic and speaker-disjoint.

Rule, in order:

1. a speaker in ``split_cfg.test_speakers`` goes to ``test``, one in ``val_speakers`` to ``val``
   (a speaker in both lists is a config error);
2. every other speaker gets ``u = hash(seed, speaker)`` in [0, 1) (SHA-256, so the same on every
   machine and Python version, unlike ``hash()``): ``u < test_fraction`` -> ``test``,
   ``u < test_fraction + val_fraction`` -> ``val``, else ``train``. A split that has an explicit
   speaker list takes no speakers by fraction (the list *is* that split).

With ``by: clip`` (folders whose speakers are unknown) listed speakers still go to their split; the
other clips are ranked by ``hash(seed, clip_id)`` and the first ``round(n * test_fraction)`` go to
``test``, the next ``round(n * val_fraction)`` to ``val`` (at least one each when the fraction is > 0),
so even five clips get the split sizes asked for. Not speaker-disjoint; adding clips may move clips.

Hashing each speaker on its own (rather than ranking the speaker set) means adding clips or speakers
to a corpus never moves an existing speaker to another split. The price: with few speakers the split
sizes only approximate the fractions, so small corpora should list speakers explicitly
(``configs/datasets/synthetic.yaml`` does).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Literal

from pydantic import Field

from talkbench.config import StrictModel
from talkbench.errors import ConfigError
from talkbench.pipelines.core import ClipRecord


class SplitConfig(StrictModel):
    """Deterministic, speaker-disjoint splits: a speaker's clips all land in one split.

    ``by: clip`` is for folders whose speakers are unknown (a flat folder of files): clips, not
    speakers, are divided by the fractions, so the splits are *not* speaker-disjoint.
    """

    by: Literal["speaker", "clip"] = Field(
        "speaker", description="speaker: speaker-disjoint splits; clip: hold out clips (speakers unknown, e.g. a "
                               "flat folder)")
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of speakers in val (by a stable hash "
                                                                   "of the speaker id)")
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of speakers in test")
    seed: int = Field(0, description="seed of the speaker hash")
    #: explicit speaker lists win over the fractions (e.g. the standard GRID test speakers)
    val_speakers: list[str] = Field(default_factory=list, description="explicit val speakers (win over the fraction)")
    test_speakers: list[str] = Field(default_factory=list, description="explicit test speakers, e.g. the standard "
                                                                       "GRID test speakers")


def unit_hash(key: str, seed: int) -> float:
    """A uniform number in [0, 1) from ``(seed, key)``; stable across machines and runs."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def check_split_config(cfg: SplitConfig) -> None:
    both = sorted(set(cfg.val_speakers) & set(cfg.test_speakers))
    if both:
        raise ConfigError(f"split: speaker(s) {both} are in both val_speakers and test_speakers")
    if cfg.val_fraction + cfg.test_fraction >= 1.0:
        raise ConfigError(
            f"split: val_fraction + test_fraction = {cfg.val_fraction + cfg.test_fraction} must be < 1"
        )


def assign_split(speaker_id: str, cfg: SplitConfig) -> str:
    """The split of every clip of ``speaker_id`` (see the module docstring)."""
    if speaker_id in cfg.test_speakers:
        return "test"
    if speaker_id in cfg.val_speakers:
        return "val"
    test_fraction = 0.0 if cfg.test_speakers else cfg.test_fraction
    val_fraction = 0.0 if cfg.val_speakers else cfg.val_fraction
    u = unit_hash(speaker_id, cfg.seed)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


class Splitter:
    """Checks the config once, then memoises the split per speaker while an adapter lists clips."""

    def __init__(self, cfg: SplitConfig):
        check_split_config(cfg)
        self.cfg = cfg
        self._cache: dict[str, str] = {}

    def __call__(self, speaker_id: str) -> str:
        if speaker_id not in self._cache:
            self._cache[speaker_id] = assign_split(speaker_id, self.cfg)
        return self._cache[speaker_id]


def _quota(n: int, fraction: float) -> int:
    return 0 if fraction <= 0 else max(1, math.floor(n * fraction + 0.5))


def assign_clip_splits(records: Sequence[ClipRecord], cfg: SplitConfig) -> list[ClipRecord]:
    """``by: clip``: re-split ``records`` clip by clip (see the module docstring); else unchanged."""
    if cfg.by != "clip":
        return list(records)
    check_split_config(cfg)
    listed = set(cfg.test_speakers) | set(cfg.val_speakers)
    free = sorted((r for r in records if r.speaker_id not in listed), key=lambda r: unit_hash(r.clip_id, cfg.seed))
    n_test = 0 if cfg.test_speakers else _quota(len(free), cfg.test_fraction)
    n_val = 0 if cfg.val_speakers else _quota(len(free), cfg.val_fraction)
    n_val = min(n_val, max(0, len(free) - n_test - 1))  # keep one clip for train when there is one
    by_clip = {r.clip_id: ("test" if i < n_test else "val" if i < n_test + n_val else "train")
               for i, r in enumerate(free)}
    return [replace(r, split=by_clip[r.clip_id]) if r.clip_id in by_clip
            else replace(r, split=assign_split(r.speaker_id, cfg)) for r in records]


def expected_splits(cfg: SplitConfig) -> list[str]:
    """The splits the config asks for: named by a speaker list or given a fraction > 0 (train always)."""
    out = ["train"]
    if cfg.val_speakers or cfg.val_fraction > 0:
        out.append("val")
    if cfg.test_speakers or cfg.test_fraction > 0:
        out.append("test")
    return out


def split_summary(rows: Iterable[tuple[str, str]], cfg: SplitConfig) -> tuple[list[str], list[str]]:
    """Lines "split clips speakers" and warnings (with the fix) for ``(split, speaker_id)`` rows.

    Why: a config whose test speakers are not in the corpus (GRID's s1/s2/s20/s22 on a flat folder) gives
    an empty test split silently, and the user only finds out at ``bench make-task``.
    """
    clips: Counter[str] = Counter()
    speakers: dict[str, set[str]] = defaultdict(set)
    for split, speaker in rows:
        clips[split] += 1
        speakers[split].add(speaker)
    lines = [f"{'split':<8} {'clips':>6} {'speakers':>9}"]
    for split in ("train", "val", "test"):
        lines.append(f"{split:<8} {clips[split]:>6} {len(speakers[split]):>9}")
    all_speakers = sorted(set().union(*speakers.values())) if speakers else []
    shown = ", ".join(all_speakers[:8]) + (", ..." if len(all_speakers) > 8 else "")
    warnings = []
    for split in expected_splits(cfg):
        if clips[split] or not sum(clips.values()):
            continue
        named = cfg.test_speakers if split == "test" else cfg.val_speakers if split == "val" else []
        fraction = cfg.test_fraction if split == "test" else cfg.val_fraction
        why = (f"none of {split}_speakers {named} is among the speakers found ({shown})" if named
               else f"{split}_fraction={fraction:g} of {len(all_speakers)} speaker(s) ({shown}) picked none"
               if split != "train" else "every clip went to val or test")
        fix = (f"fix: -o split.{split}_speakers=[SPEAKER,...] with speakers of this corpus"
               if split != "train" else "fix: lower split.test_fraction/split.val_fraction")
        if split != "train" and (len(all_speakers) < 3 or "unknown" in all_speakers):
            fix += (f", or, when the speakers are unknown (a flat folder), hold out clips: "
                    f"-o split.by=clip -o split.{split}_fraction=0.4"
                    + (f" -o split.{split}_speakers=[]" if named else ""))
        warnings.append(f"split {split!r} is empty: {why}; {fix} (re-run prepare into a new --output)")
    return lines, warnings
