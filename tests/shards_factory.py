"""Test helpers for the models area: the synthetic shard writer and tiny training setups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from talkbench.models.registry import MODELS
from talkbench.models.synthetic_shards import write_shards

__all__ = ["first_batch", "grid_backed_shards", "tiny_config", "tiny_overrides", "write_shards"]


def tiny_config(name: str, *extra: str) -> Any:
    """The model's run config at its tiny size (its ModelSpec ``tiny`` overrides, then ``extra``)."""
    from talkbench.models.train import load_run_config

    return load_run_config(name, None, [*MODELS.get(name).tiny, *extra])


def first_batch(cfg: Any, name: str, shards: Path, batch_size: int = 4) -> tuple[Any, Any]:
    """(the model's objective, its first training batch from ``shards``), no loader workers."""
    from talkbench.models.data import ShardIndex, make_dataset, make_loader

    obj = MODELS.get(name).objective(cfg.model, cfg.loss, cfg.data)
    make = getattr(obj, "make_dataset", None) or make_dataset  # as the training loop does
    ds = make(ShardIndex(shards), obj.data_spec(), cfg.data, split="train", train=True, batch_size=batch_size)
    return obj, next(iter(make_loader(ds, batch_size, 0)))


def grid_backed_shards(root: Path, **write_kwargs) -> Path:
    """Synthetic shards (:func:`write_shards` with ``write_kwargs``) whose clips all point at one real GRID
    video: training reads the synthetic frames, the benchmark decodes a real ground truth, no ``prepare``.
    A test using it reads the real fixtures: ask for ``fixtures_dir`` (conftest marks it ``fixtures``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from conftest import GRID_CLIPS

    root = write_shards(root, **write_kwargs)
    clips = pq.read_table(root / "clips.parquet")
    src = pa.array([str(GRID_CLIPS[0])] * clips.num_rows, clips.schema.field("source_path").type)
    pq.write_table(clips.set_column(clips.schema.get_field_index("source_path"), "source_path", src),
                   root / "clips.parquet")
    return root


def tiny_overrides(name: str, out_dir: Path, steps: int = 4, batch_size: int = 4) -> list[str]:
    """The model's tiny variant (its ModelSpec) plus a short CPU-only, single-threaded-loader training setup."""
    return [*MODELS.get(name).tiny, f"train.steps={steps}", f"train.batch_size={batch_size}", "train.lr=1e-3",
            "train.log_every=1", "train.val_every=0", "train.val_batches=2", "train.checkpoint_every=0",
            f"train.out_dir={out_dir}", "train.device=cpu", "data.num_workers=0", "train.mlflow=false"]
