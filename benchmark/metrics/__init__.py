"""The benchmark's metrics. Importing this package registers every metric in ``METRICS``.

Modules that need torch import it at module level, so importing this package is for the harness and
tests, never for ``talkbench --help``.
"""

from talkbench.benchmark.metrics import (  # noqa: F401  (imported to register)
    au,
    avsync,
    cpbd,
    fid,
    identity,
    image,
    landmarks,
    lpips_alex,
    lse,
    pose,
)
from talkbench.benchmark.metrics.base import METRICS, AlignedVideo, ClipPair, Metric, register_metric

__all__ = ["METRICS", "AlignedVideo", "ClipPair", "Metric", "register_metric"]
