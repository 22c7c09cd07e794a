"""Leaderboard data: the task's active runs as a :class:`Board`, read from their run records.

Rows come from the task's MLflow experiment (finished ``bench`` runs that no later rerun superseded);
each row's numbers, directions and unavailable metrics come from the run's record (``results.json``,
:mod:`talkbench.benchmark.records`), never from MLflow parameter names. Rendering is
:mod:`talkbench.benchmark.leaderboard`'s job.

The ablation section comes from the records too: a ``recipe run`` submission's record names its recipe
step and ablation variant (``RunRecord.recipe``), and a variant that scored no clip is a ``bench-unscored``
run (or a bundle of one) whose record says why; it is listed in the section, never ranked.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any

from talkbench.benchmark.records import BOOKKEEPING_METRICS, RecipeVariant, RunRecord
from talkbench.benchmark.runs import (
    PREFIX,
    TAG_KIND,
    TAG_RUN_KEY,
    TAG_SUPERSEDED,
    experiment_name,
    read_record,
)
from talkbench.errors import TalkbenchError

log = logging.getLogger(__name__)
#: per-AU breakdown keys (AU25_mae, AU10_r...) go to a details table; the main table keeps the summaries
DETAIL_KEY = re.compile(r"^AU\d+_")


@dataclass
class Entry:
    """One leaderboard row: a run and its record."""

    run_id: str
    record: RunRecord
    start_time: int = 0
    thumbnail: bytes | None = None  # PNG of the first frame grid (HTML only)

    @property
    def submission(self) -> str:
        return self.record.submission.name

    @property
    def spec(self) -> str:
        return self.record.submission.spec

    @property
    def n_ok(self) -> int:
        return self.record.n_clips_ok

    @property
    def n_clips(self) -> int:
        return self.record.n_clips

    @property
    def unavailable(self) -> dict[str, str]:
        return self.record.unavailable

    def value(self, key: str) -> tuple[float, float, float]:
        """(value, ci_low, ci_high) of a value key; NaN where the run has none."""
        a = self.record.aggregates.get(key)
        return (a.value, a.ci_low, a.ci_high) if a is not None else (math.nan, math.nan, math.nan)

    @property
    def values(self) -> dict[str, tuple[float, float, float]]:
        return {k: self.value(k) for k in self.record.aggregates}

    @property
    def is_reference(self) -> bool:
        """The ground truth itself: shown as the reference row, never ranked against the submissions."""
        return self.record.submission.role == "reference"

    @property
    def flags(self) -> dict[str, int]:
        return self.record.flags


@dataclass
class AblationSet:
    """A scored recipe step (the full model, by leaderboard name) and the variants that replace it."""

    step: str
    full: str
    variants: list[RecipeVariant] = field(default_factory=list)


def ablation_sets(full: dict[str, str], variants: dict[str, tuple[str, str, str]]) -> list[AblationSet]:
    """``full``: step -> the full model's leaderboard name; ``variants``: leaderboard name -> (step, variant,
    description) (what ``recipe run --ablations`` knows) -> one set per step, variants in the given order."""
    return [AblationSet(step, name, [RecipeVariant(name=v, variant=var, description=desc)
                                     for v, (s, var, desc) in variants.items() if s == step])
            for step, name in full.items()]


def recipe_ablations(records: list[RunRecord]) -> list[AblationSet]:
    """The ablation sets the records' recipe provenance defines (scored and not-scored records alike).

    One set per recipe step's full model (recipe, preset, step), in the recipe's step order; its variants
    are the union of what each record of that step planned, in planned order, plus any variant seen only
    as a record. A set without a variant (a recipe run without ``--ablations``) is no section.
    """
    found: dict[tuple[str, str, str, str], tuple[int, AblationSet]] = {}
    for rec in sorted((r for r in records if r.recipe is not None), key=lambda r: r.recipe.variant is not None):
        r = rec.recipe
        _, ab = found.setdefault((r.name, r.preset, r.step, r.full), (r.step_index, AblationSet(r.step, r.full)))
        known = {v.name for v in ab.variants}
        planned = list(r.variants)
        if r.variant is not None:
            planned.append(RecipeVariant(name=rec.submission.name, variant=r.variant, description=r.description))
        for v in planned:
            if v.name not in known:
                known.add(v.name)
                ab.variants.append(v)
    ordered = sorted(found.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[1][0], kv[0][2]))
    return [ab for _, (_, ab) in ordered if ab.variants]


@dataclass
class Board:
    task: str  # name@version
    primary: str
    directions: dict[str, str]
    keys: list[str]  # summary metric columns, primary first
    detail_keys: list[str] = field(default_factory=list)  # per-AU breakdown columns
    entries: list[Entry] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)  # metric names unavailable in some run
    skipped: list[str] = field(default_factory=list)  # runs without a readable record, with the reason
    ranks: dict[str, bool] = field(default_factory=dict)  # key -> may it order the board
    flags: list[str] = field(default_factory=list)  # integrity flags recorded by the runs
    ablations: list[AblationSet] = field(default_factory=list)  # a recipe's ablation variants (HTML section)
    #: submission name -> "0/N (first error)": scored with no usable clip, so never a row (ablations show them)
    unscored: dict[str, str] = field(default_factory=dict)

    @property
    def reference(self) -> Entry | None:
        return next((e for e in self.entries if e.is_reference), None)

    def rank(self, entry: Entry) -> int | None:
        """1-based rank among the competitors (the reference row has none)."""
        competitors = [e for e in self.entries if not e.is_reference]
        return competitors.index(entry) + 1 if entry in competitors else None

    def delta(self, entry: Entry, key: str) -> float:
        """entry's value minus the reference row's (NaN without a reference)."""
        ref = self.reference
        return entry.value(key)[0] - ref.value(key)[0] if ref is not None else math.nan

    def entry(self, submission: str) -> Entry | None:
        """The row of a submission (by its leaderboard name), if it has one."""
        return next((e for e in self.entries if e.submission == submission), None)

    def reasons(self) -> dict[str, str]:
        """Metric name -> why it is unavailable (first run that says so)."""
        out: dict[str, str] = {}
        for e in self.entries:
            for m, r in e.unavailable.items():
                out.setdefault(m, r)
        return out


def _resolve_experiment(task: str) -> tuple[str, Any]:
    """``name`` (latest version with runs) or ``name@N`` -> (name@N, experiment)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    name, _, ver = task.partition("@")
    if ver:
        exp = client.get_experiment_by_name(experiment_name(name, int(ver.lstrip("v"))))
        if exp is None:
            raise TalkbenchError(f"no benchmark runs for task {task} in {_uri()}")
        return task, exp
    found = client.search_experiments(filter_string=f"name LIKE '{PREFIX}/{name}/v%'")
    versions = []
    for exp in found:
        tail = exp.name.rsplit("/v", 1)[-1]
        if exp.name.startswith(f"{PREFIX}/{name}/v") and tail.isdigit():
            versions.append((int(tail), exp))
    if not versions:
        raise TalkbenchError(f"no benchmark runs for task {name!r} in {_uri()}; "
                             f"score something first: talkbench bench run --task {name} --submission ...")
    version, exp = max(versions, key=lambda v: v[0])
    return f"{name}@{version}", exp


def _uri() -> str:
    import mlflow

    return mlflow.get_tracking_uri()


def active_runs(exp_id: str) -> list[Any]:
    """Finished ``bench`` runs of the experiment that no rerun superseded, newest first, one per run key."""
    from mlflow.tracking import MlflowClient

    runs = MlflowClient().search_runs([exp_id], filter_string="attributes.status = 'FINISHED'",
                                      order_by=["attributes.start_time DESC"])
    out, seen = [], set()
    for r in runs:
        tags = r.data.tags
        if tags.get(TAG_KIND) != "bench" or TAG_SUPERSEDED in tags:
            continue
        key = tags.get(TAG_RUN_KEY)
        if key in seen:  # defensive: one row per submission even if two active runs share a key
            continue
        seen.add(key)
        out.append(r)
    return out


def load_board(task: str, thumbnails: bool = False) -> Board:
    """Collect the task's active runs into a Board (call ``runs.use_tracking`` first)."""
    ref, exp = _resolve_experiment(task)
    from talkbench.benchmark.runs import unscored_runs

    entries: list[Entry] = []
    skipped: list[str] = []
    unscored: list[RunRecord] = []
    for run in unscored_runs(exp.experiment_id):
        try:
            unscored.append(read_record(run.info.run_id))
        except TalkbenchError as e:
            log.warning("leaderboard %s: no record of not-scored run: %s", ref, e)
    for run in active_runs(exp.experiment_id):
        try:
            record = read_record(run.info.run_id)
        except TalkbenchError as e:
            log.warning("leaderboard %s: skipping %s", ref, e)
            skipped.append(str(e))
            continue
        entry = Entry(run_id=run.info.run_id, record=record, start_time=int(run.info.start_time // 1000))
        if record.n_clips_ok == 0:  # never logged by this version; refuse older ones too
            skipped.append(f"run {run.info.run_id} ({record.submission.name}): no clip was scored")
            continue
        if thumbnails:
            entry.thumbnail = _thumbnail(entry.run_id)
        entries.append(entry)
    if not entries:
        raise TalkbenchError(f"no finished benchmark runs with a readable record for task {ref}"
                             + (f" ({skipped[0]})" if skipped else ""))
    return board_from_entries(ref, entries, exp.tags.get("talkbench.primary_metric"), skipped, unscored)


def board_from_entries(ref: str, entries: list[Entry], primary: str | None = None,
                       skipped: list[str] | None = None, unscored: list[RunRecord] | None = None) -> Board:
    """A Board from run records wherever they came from (an MLflow store, or contributed bundles).

    ``unscored``: records that scored no clip (never rows): the ablation section lists the recipe variants
    among them with the reason, unless a scored run of the same submission name is on the board.
    """
    primary = primary or entries[0].record.task.primary_metric
    directions: dict[str, str] = {}
    ranks: dict[str, bool] = {}
    for e in entries:
        for k, d in e.record.directions.items():
            directions.setdefault(k, d)
        for k, r in e.record.ranks.items():
            ranks.setdefault(k, r)
    if primary in ranks and not ranks[primary]:
        raise TalkbenchError(f"task {ref}: its primary metric {primary!r} may not rank submissions (it does not "
                             "separate good from bad output); re-create the task with another --primary-metric")
    all_keys = sorted({k for e in entries for k in e.record.aggregates if k not in BOOKKEEPING_METRICS})
    keys = [k for k in all_keys if not DETAIL_KEY.match(k) or k == primary]
    if primary in keys:
        keys.remove(primary)
        keys.insert(0, primary)
    board = Board(task=ref, primary=primary, directions=directions, keys=keys,
                  detail_keys=[k for k in all_keys if k not in keys],
                  unavailable=sorted({m for e in entries for m in e.unavailable}), skipped=list(skipped or []),
                  ranks=ranks, flags=sorted({f for e in entries for f in e.flags}))
    refs = [e for e in entries if e.is_reference]
    board.entries = refs + sort_entries([e for e in entries if not e.is_reference], primary,
                                        directions.get(primary, "higher"))
    unscored = [r for r in unscored or [] if board.entry(r.submission.name) is None]
    board.ablations = recipe_ablations([e.record for e in entries] + unscored)
    board.unscored = {r.submission.name: r.not_scored_reason for r in unscored if r.recipe is not None}
    return board


def sort_entries(entries: list[Entry], primary: str, direction: str) -> list[Entry]:
    """Best first by the primary metric; runs without it last; ties by name for a stable order."""
    sign = -1.0 if direction == "higher" else 1.0

    def key(e: Entry) -> tuple[int, float, str]:
        v = e.value(primary)[0]
        return (1, 0.0, e.submission) if math.isnan(v) else (0, sign * v, e.submission)

    return sorted(entries, key=key)


def _thumbnail(run_id: str) -> bytes | None:
    """The first frame grid of a run, downscaled to a thumbnail PNG."""
    import io
    import tempfile

    from mlflow.tracking import MlflowClient
    from PIL import Image

    client = MlflowClient()
    pngs = [f.path for f in client.list_artifacts(run_id, "grids") if f.path.endswith(".png")]
    if not pngs:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run_id, sorted(pngs)[0], tmp)
        img = Image.open(local).convert("RGB")
        img.thumbnail((480, 240))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
    return buf.getvalue()
