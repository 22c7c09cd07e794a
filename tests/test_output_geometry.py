"""Aligned outputs of any size S on a real GRID clip: scored against a ground-truth crop made at S x S."""

from __future__ import annotations

import cv2
import numpy as np
import pytest


class _ResizedGroundTruthCrops:
    """The ground truth's own aligned 128 px crops, resized to S x S (what a 64 px generator outputs)."""

    version = "1"

    def __init__(self, pre, size: int):
        self.pre, self.size = pre, size

    def generate_item(self, inp):
        gt = self.pre.ground_truth(inp.item.clip.ground_truth, inp.ground_truth())
        return np.stack([cv2.resize(f, (self.size, self.size), interpolation=cv2.INTER_AREA) for f in gt.faces])


def test_a_64px_crop_of_the_fixture_is_scored_as_aligned_crop_64(tmp_path) -> None:
    from bench_tasks import one_grid_clip_task

    from talkbench.benchmark.evaluator import evaluate
    from talkbench.benchmark.preprocess import Preprocessor
    from talkbench.benchmark.submissions.builtins import BuiltinSubmission

    task = one_grid_clip_task(tmp_path, "crop64", geometry="aligned")
    pre = Preprocessor(task)
    try:
        sub = BuiltinSubmission(_ResizedGroundTruthCrops(pre, 64), "test:crops64", "crops64", {"s": 64})
        res = evaluate(task, sub, metric_names=["psnr", "ssim"], preprocessor=pre)
    finally:
        pre.close()
    (row,) = res.rows
    assert row["status"] == "ok" and row["geometry"] == "aligned-crop-64" and res.geometry == {"aligned-crop-64": 1}
    # measured: 32.3 dB / SSIM 0.967 against the 64 px ground-truth crop (the same content, resampled
    # twice); the earlier per-side fallback re-tracked the 64 px face and gave 29.2 dB / 0.907
    assert res.aggregates["psnr"].value == pytest.approx(32.3, abs=1.5)
    assert res.aggregates["ssim"].value > 0.95
