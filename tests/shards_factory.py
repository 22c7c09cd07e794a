"""Test helpers for the models area: the synthetic shard writer and tiny training setups."""

from __future__ import annotations

from pathlib import Path

from talkbench.models.registry import MODELS
from talkbench.models.synthetic_shards import write_shards

__all__ = ["tiny_overrides", "write_shards"]


def tiny_overrides(name: str, out_dir: Path, steps: int = 4, batch_size: int = 4) -> list[str]:
    """The model's tiny variant (its ModelSpec) plus a short CPU-only, single-threaded-loader training setup."""
    return [*MODELS.get(name).tiny, f"train.steps={steps}", f"train.batch_size={batch_size}", "train.lr=1e-3",
            "train.log_every=1", "train.val_every=0", "train.val_batches=2", "train.checkpoint_every=0",
            f"train.out_dir={out_dir}", "train.device=cpu", "data.num_workers=0", "train.mlflow=false"]
