"""Reduce per-clip metric values to the run's aggregates (each with a bootstrap 95 % CI over clips).

Value keys are public bare (``psnr``) unless two metrics share one, then ``metric/key``. A clip where a
value is undefined (NaN) is never dropped silently: the aggregate carries ``n_undefined`` beside ``n``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from talkbench.benchmark.metrics.base import Metric
from talkbench.benchmark.metrics.bootstrap import bootstrap_ci
from talkbench.benchmark.records import AggregateRecord, MetricRecord


@dataclass
class Aggregation:
    metrics: dict[str, MetricRecord] = field(default_factory=dict)  # metrics that produced a value
    key_metric: dict[str, str] = field(default_factory=dict)  # public key -> metric name
    aggregates: dict[str, AggregateRecord] = field(default_factory=dict)  # public key -> aggregate
    unavailable: dict[str, str] = field(default_factory=dict)  # metric name -> why it has no value
    renamed: dict[str, str] = field(default_factory=dict)  # per-clip column "metric/key" -> public key


def weights_hashes(metric: Metric) -> dict[str, str]:
    if not metric.weights:
        return {}
    from talkbench.weights import verified_sha256

    return {w: verified_sha256(w) for w in metric.weights}


def public_keys(metrics: dict[str, Metric]) -> dict[tuple[str, str], str]:
    """(metric, key) -> the key's public name: bare unless another metric has the same key."""
    owners: dict[str, list[str]] = {}
    for name, metric in metrics.items():
        for k in sorted({k for v in metric.per_clip.values() for k in v} | set(metric.directions)):
            owners.setdefault(k, []).append(name)
    return {(n, k): (k if len(ns) == 1 else f"{n}/{k}") for k, ns in owners.items() for n in ns}


def aggregate(metrics: dict[str, Metric], rows: list[dict[str, Any]],
              metric_errors: list[dict[str, str]]) -> Aggregation:
    """Per value key: the metric's ``compute()`` with a bootstrap CI over the ok clips' per-clip values.

    ``rows`` are the per-clip rows with ``metric/key`` columns; their public names are in ``renamed``.
    """
    ok = [r for r in rows if r["status"] == "ok"]
    names = public_keys(metrics)
    out = Aggregation()
    for name, metric in metrics.items():
        if not metric.per_clip and not metric.corpus_level:
            errs = [e["error"] for e in metric_errors if e["metric"] == name]
            out.unavailable[name] = (f"failed on every clip: {errs[0]}" if errs
                                     else metric.not_scored_reason() or "no clip was scored")
            continue
        try:
            computed = metric.compute()
        except Exception as e:  # noqa: BLE001 - one metric failing to reduce is recorded, not fatal
            out.unavailable[name] = f"failed to aggregate: {type(e).__name__}: {e}"
            continue
        record = MetricRecord(name=name, variant=metric.variant, requires_reference=metric.requires_reference,
                              corpus_level=metric.corpus_level, weights=weights_hashes(metric))
        for key, value in computed.items():
            public = names.get((name, key), key)
            record.directions[public] = metric.directions.get(key, "none")  # e.g. a signed offset: none
            record.ranks[public] = record.directions[public] != "none" and key not in metric.unranked
            out.key_metric[public] = name
            out.renamed[f"{name}/{key}"] = public
            vals = np.array([r.get(f"{name}/{key}", np.nan) for r in ok], dtype=np.float64)
            finite = vals[np.isfinite(vals)]
            if metric.corpus_level or len(finite) < 2:
                lo = hi = math.nan
            else:
                lo, hi = bootstrap_ci(finite)[:2]
            n = len(ok) if metric.corpus_level else len(finite)
            out.aggregates[public] = AggregateRecord(
                value=float(value), ci_low=float(lo), ci_high=float(hi), n=n,
                n_undefined=0 if metric.corpus_level else len(ok) - n)
        out.metrics[name] = record
    return out
