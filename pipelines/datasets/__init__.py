"""Dataset adapters. Importing this package registers every adapter in ``DATASETS``."""

from talkbench.pipelines.datasets import folder, grid, hdtf, lrs3, synthetic, tcd_timit  # noqa: F401
from talkbench.pipelines.datasets.base import DATASETS, DatasetConfig, list_clips, load_dataset_config

__all__ = ["DATASETS", "DatasetConfig", "list_clips", "load_dataset_config"]
