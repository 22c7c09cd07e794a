"""Dataset adapters, registered lazily by name: listing them imports no adapter module.

Add a dataset: write ``pipelines/datasets/NAME.py`` with ``def NAME(root, split_cfg, **options) ->
Iterator[ClipRecord]``, add one line below, and (optionally) ``configs/datasets/NAME.yaml``.
"""

from talkbench.pipelines.datasets.base import DATASETS, DatasetConfig, list_clips, load_dataset_config

DATASETS.register("folder", lazy="talkbench.pipelines.datasets.folder:folder")
DATASETS.register("grid", lazy="talkbench.pipelines.datasets.grid:grid")
DATASETS.register("hdtf", lazy="talkbench.pipelines.datasets.hdtf:hdtf")
DATASETS.register("lrs3", lazy="talkbench.pipelines.datasets.lrs3:lrs3")
DATASETS.register("synthetic", lazy="talkbench.pipelines.datasets.synthetic:synthetic")
DATASETS.register("tcd-timit", lazy="talkbench.pipelines.datasets.tcd_timit:tcd_timit")

__all__ = ["DATASETS", "DatasetConfig", "list_clips", "load_dataset_config"]
