"""Dataset adapters: each turns a corpus folder into :class:`ClipRecord` objects.

An adapter is a function ``(root: Path, split_cfg: SplitConfig) -> Iterator[ClipRecord]`` registered
by name in ``DATASETS``. ``clip_id`` comes from the relative path, so it is stable across machines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from talkbench.pipelines.core import ClipRecord

from talkbench.registry import Registry

AdapterFn = Callable[..., Iterator[ClipRecord]]

DATASETS: Registry[AdapterFn] = Registry("dataset")
