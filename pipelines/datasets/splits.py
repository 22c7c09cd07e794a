"""Train/val/test assignment: deterministic and speaker-disjoint.

Rule, in order:

1. a speaker in ``split_cfg.test_speakers`` goes to ``test``, one in ``val_speakers`` to ``val``
   (a speaker in both lists is a config error);
2. every other speaker gets ``u = hash(seed, speaker)`` in [0, 1) (SHA-256, so the same on every
   machine and Python version, unlike ``hash()``): ``u < test_fraction`` -> ``test``,
   ``u < test_fraction + val_fraction`` -> ``val``, else ``train``. A split that has an explicit
   speaker list takes no speakers by fraction (the list *is* that split).

Hashing each speaker on its own (rather than ranking the speaker set) means adding clips or speakers
to a corpus never moves an existing speaker to another split. The price: with few speakers the split
sizes only approximate the fractions, so small corpora should list speakers explicitly
(``configs/datasets/synthetic.yaml`` does).
"""

from __future__ import annotations

import hashlib

from pydantic import Field

from talkbench.config import StrictModel
from talkbench.errors import ConfigError


class SplitConfig(StrictModel):
    """Deterministic, speaker-disjoint splits: a speaker's clips all land in one split."""

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
