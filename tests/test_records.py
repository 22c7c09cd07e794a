"""The run record: JSON round trip (NaN as null), derived MLflow params/metrics, refusal of foreign files."""

from __future__ import annotations

import json
import math

import pytest

from talkbench.benchmark.records import (
    AggregateRecord,
    ClipFailure,
    MetricRecord,
    Provenance,
    RunRecord,
    SubmissionInfo,
    TaskInfo,
)
from talkbench.errors import TalkbenchError


def _record() -> RunRecord:
    return RunRecord(
        task=TaskInfo(name="t", version=2, hash="h" * 64, kind="paired", split="test", n_clips=3,
                      primary_metric="lmd"),
        submission=SubmissionInfo(name="sub", spec="builtin:static-frame", hash="s" * 64, meta={"model": "m"}),
        provenance=Provenance(talkbench_version="0.1.0", packages={"numpy": "1.26"}),
        missing_policy="exclude-with-count", length_tolerance=1, n_clips=3, n_clips_ok=2,
        metrics={"lmd": MetricRecord(name="lmd", variant="lmd-mean", requires_reference=True,
                                     directions={"lmd": "lower"}),
                 "av-xcorr": MetricRecord(name="av-xcorr", variant="v", requires_reference=False,
                                          directions={"av_xcorr_r0": "higher", "av_xcorr_offset": "none"})},
        aggregates={"lmd": AggregateRecord(value=1.5, ci_low=1.0, ci_high=2.0, n=2),
                    "av_xcorr_r0": AggregateRecord(value=math.nan, n=0, n_undefined=2)},
        key_metric={"lmd": "lmd", "av_xcorr_r0": "av-xcorr"},
        unavailable={"lpips": "unavailable: weights missing"})


def test_record_round_trips_through_json_with_nan_as_null() -> None:
    rec = _record()
    text = rec.to_json()
    data = json.loads(text)  # strict JSON: no NaN tokens
    assert data["aggregates"]["av_xcorr_r0"]["value"] is None and data["format"] == 1
    back = RunRecord.from_json(text)
    assert math.isnan(back.aggregates["av_xcorr_r0"].value) and back.aggregates["lmd"].value == 1.5
    assert back.model_dump(exclude={"aggregates"}) == rec.model_dump(exclude={"aggregates"})


def test_mlflow_params_and_metrics_are_derived_from_the_record() -> None:
    rec = _record()
    p, m = rec.mlflow_params(), rec.mlflow_metrics()
    assert p["task_hash"] == "h" * 64 and p["variant.lmd"] == "lmd-mean" and p["submission.model"] == "m"
    assert p["unavailable.lpips"] == "unavailable: weights missing" and p["version.numpy"] == "1.26"
    assert m["lmd"] == 1.5 and m["lmd_ci_low"] == 1.0 and "av_xcorr_r0" not in m  # NaN is never a metric
    assert m["coverage"] == pytest.approx(2 / 3) and m["n_clips_failed"] == 1
    assert rec.directions == {"lmd": "lower", "av_xcorr_r0": "higher", "av_xcorr_offset": "none"}


@pytest.mark.parametrize(("text", "match"), [
    ("{not json", "not valid JSON"),
    ('{"format": 99}', "format 99"),
    ('{"task": "old results.json without format"}', "format None"),
    ('{"format": 1, "task": {}}', "not a run record"),
])
def test_foreign_or_broken_records_are_refused_clearly(text: str, match: str) -> None:
    with pytest.raises(TalkbenchError, match=match):
        RunRecord.from_json(text)


def test_recipe_provenance_is_optional_kept_and_derived_into_params() -> None:
    from talkbench.benchmark.records import RecipeInfo, RecipeVariant

    old = _record()
    assert old.recipe is None and "recipe" not in old.mlflow_params()  # records from before still read
    before = {k: v for k, v in json.loads(old.to_json()).items() if k != "recipe"}
    assert RunRecord.from_json(json.dumps(before)).recipe is None
    rec = old.model_copy(update={"recipe": RecipeInfo(
        name="au_rgan", preset="tiny", step="au_rgan", full="au_rgan (tiny)", variant="no_discriminator",
        description="no D", variants=[RecipeVariant(name="au_rgan-no_discriminator (tiny)", variant="no_discriminator")])})
    back = RunRecord.from_json(rec.to_json())
    assert back.recipe == rec.recipe and back.recipe.ablation_of == "au_rgan (tiny)"
    p = back.mlflow_params()
    assert (p["recipe"], p["recipe_preset"], p["recipe_step"], p["recipe_variant"], p["ablation_of"]) == (
        "au_rgan", "tiny", "au_rgan", "no_discriminator", "au_rgan (tiny)")
    assert old.model_copy(update={"n_clips_ok": 0, "clip_errors": [ClipFailure(clip_id="c", error_kind="no_face")]}
                          ).not_scored_reason == "0/3 (no_face)"
