"""Score one submission on one task: it only orchestrates.

For each task clip: get the submission's frames (or its per-clip error), run them through the shared
face processing, build a :class:`ClipPair` with the (memoised) ground truth, and call ``update()`` on
every registered metric that can run here. Then aggregate each value over clips with a bootstrap 95 %
CI. The metric math lives in ``benchmark/metrics``; MLflow logging in ``benchmark/runs.py``.

Missing-clip policy ("exclude-with-count", recorded with every run): a clip the submission fails on
(missing, unreadable, wrong length, no face...) is excluded from every aggregate and counted in
``n_clips_failed`` / ``coverage``; the leaderboard shows the coverage beside every row, so a
submission can never look better by leaving hard clips out without it being visible.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from talkbench.benchmark.metrics.base import METRICS, ClipPair, Metric
from talkbench.benchmark.preprocess import Preprocessor
from talkbench.benchmark.submissions import ClipOutput, ItemInputs, Submission
from talkbench.benchmark.tasks import TaskItem, TaskManifest, iter_items
from talkbench.errors import ClipError, TalkbenchError

log = logging.getLogger(__name__)

MISSING_POLICY = "exclude-with-count"


@dataclass
class MetricInfo:
    name: str
    variant: str
    requires_reference: bool
    corpus_level: bool
    weights: dict[str, str]  # weights name -> sha256
    directions: dict[str, str] = field(default_factory=dict)  # value key -> "higher" | "lower" | "none"


@dataclass
class Aggregate:
    value: float
    ci_low: float
    ci_high: float
    n: int


@dataclass
class EvalResult:
    task: TaskManifest
    submission: Submission
    rows: list[dict[str, Any]]  # one per task clip: clip_id, status, error_kind, error, values...
    aggregates: dict[str, Aggregate]  # value key -> aggregate over the ok clips
    metrics: dict[str, MetricInfo]  # metrics that ran
    key_metric: dict[str, str]  # value key -> metric name
    unavailable: dict[str, str]  # metric name -> reason
    metric_errors: list[dict[str, str]]  # per (clip, metric) failures
    grids: dict[str, np.ndarray]  # clip id -> side-by-side image (generated | ground truth)
    videos_dir: Path | None
    elapsed_s: float
    missing_policy: str = MISSING_POLICY

    @property
    def n_ok(self) -> int:
        return sum(r["status"] == "ok" for r in self.rows)

    @property
    def n_failed(self) -> int:
        return len(self.rows) - self.n_ok

    @property
    def directions(self) -> dict[str, str]:
        return {k: d for m in self.metrics.values() for k, d in m.directions.items()}


def bootstrap(values: np.ndarray) -> tuple[float, float]:
    """95 % percentile-bootstrap CI of the mean (the metrics package's implementation)."""
    from talkbench.benchmark.metrics.bootstrap import bootstrap_ci

    lo, hi = bootstrap_ci(values)[:2]
    return float(lo), float(hi)


def select_metrics(task: TaskManifest, names: list[str] | None = None,
                   device: str | None = None) -> tuple[dict[str, Metric], dict[str, str]]:
    """Instantiate every registered metric (or ``names``) that can run; the others with a reason."""
    import talkbench.benchmark.metrics  # noqa: F401  (registers the metrics)

    chosen = names or METRICS.names()
    ready: dict[str, Metric] = {}
    unavailable: dict[str, str] = {}
    for name in chosen:
        cls = METRICS.get(name)
        if cls.requires_reference and not task.paired:
            unavailable[name] = "not applicable: unpaired task (no ground truth)"
            continue
        reason_fn = getattr(cls, "unavailable_reason", None)
        reason = reason_fn() if callable(reason_fn) else None
        if reason:
            unavailable[name] = f"unavailable: {reason}"
            continue
        try:
            ready[name] = cls(device=device)
        except TypeError:
            ready[name] = cls()
        except TalkbenchError as e:
            unavailable[name] = f"unavailable: {e}"
    return ready, unavailable


def _weights_hashes(metric: Metric) -> dict[str, str]:
    if not metric.weights:
        return {}
    from talkbench.weights import file_sha256

    return {w: file_sha256(w) for w in metric.weights}


def _inputs(task: TaskManifest, pre: Preprocessor) -> Iterator[ItemInputs]:
    """Per clip: the reference frame and, for paired tasks, the ground truth (decoded once)."""
    for item in iter_items(task):
        try:
            source = pre.decode(item.clip.reference_source)
        except ClipError as e:  # the task's own media is broken: a job error, not the submission's
            raise TalkbenchError(f"task {task.ref}: clip {item.clip_id}: reference video: {e.message}") from None
        if item.clip.reference_frame >= len(source):
            raise TalkbenchError(f"task {task.ref}: clip {item.clip_id}: reference frame "
                                 f"{item.clip.reference_frame} beyond the {len(source)} decoded frames")
        gt = None
        if task.paired:
            gt_frames = source
            if item.clip.ground_truth != item.clip.reference_source:
                raise TalkbenchError(f"task {task.ref}: clip {item.clip_id}: paired clips take the reference "
                                     "frame from their own ground truth")
            gt = _constant(gt_frames)
        yield ItemInputs(item=item, reference_image=source[item.clip.reference_frame], ground_truth=gt)


def _constant(frames: np.ndarray) -> Any:
    def get() -> np.ndarray:
        return frames

    return get


def face_grid(generated: np.ndarray, reference: np.ndarray, n: int = 6) -> np.ndarray:
    """Two rows of ``n`` evenly spaced aligned face crops: generated on top, ground truth below."""
    t = min(len(generated), len(reference))
    idx = np.linspace(0, t - 1, num=min(n, t)).round().astype(int)
    top = np.concatenate(list(generated[idx]), axis=1)
    bottom = np.concatenate(list(reference[idx]), axis=1)
    gap = np.full((4, top.shape[1], 3), 255, np.uint8)
    return np.concatenate([top, gap, bottom], axis=0)


def evaluate(task: TaskManifest, submission: Submission, metric_names: list[str] | None = None,
             videos_dir: str | Path | None = None, n_grids: int = 3, device: str | None = None,
             preprocessor: Preprocessor | None = None) -> EvalResult:
    """Score ``submission`` on ``task``. Per-clip failures are rows, never exceptions."""
    t0 = time.perf_counter()
    metrics, unavailable = select_metrics(task, metric_names, device)
    pre = preprocessor or Preprocessor(task)
    keep = Path(videos_dir) if videos_dir is not None and submission.keeps_videos else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    metric_errors: list[dict[str, str]] = []
    grids: dict[str, np.ndarray] = {}
    submission.setup(task)
    bar = tqdm(total=len(task.clips), desc=f"scoring {submission.name}", unit="clip")
    try:
        for out in submission.outputs(_inputs(task, pre)):
            row = _score_clip(out, task, pre, metrics, metric_errors, keep)
            rows.append(row)
            bar.update(1)
            log.debug("%s %s: %s", submission.name, row["clip_id"], row["status"] if row["status"] == "ok"
                      else f"{row['error_kind']}: {row['error']}")
            if row["status"] != "ok":
                bar.write(f"{row['clip_id']}: {row['error_kind']}: {row['error']}")
            if row["status"] == "ok" and len(grids) < n_grids:
                grids[row["clip_id"]] = row.pop("_grid")
            row.pop("_grid", None)
    finally:
        bar.close()
        if preprocessor is None:
            pre.close()
        submission.close()
    infos, key_metric, aggregates = _aggregate(metrics, rows, unavailable, metric_errors)
    return EvalResult(task=task, submission=submission, rows=rows, aggregates=aggregates, metrics=infos,
                      key_metric=key_metric, unavailable=unavailable, metric_errors=metric_errors, grids=grids,
                      videos_dir=keep, elapsed_s=time.perf_counter() - t0)


def _score_clip(out: ClipOutput, task: TaskManifest, pre: Preprocessor, metrics: dict[str, Metric],
                metric_errors: list[dict[str, str]], keep: Path | None) -> dict[str, Any]:
    item: TaskItem = out.inputs.item
    row: dict[str, Any] = {"clip_id": item.clip_id, "status": "failed", "error_kind": None, "error": None,
                           **out.info}
    if out.error is not None:
        row.update(error_kind=out.error.kind, error=out.error.message)
        return row
    assert out.frames is not None
    if keep is not None:
        from talkbench.media import write_video

        write_video(keep / f"{item.clip_id}.mp4", out.frames, fps=item.fps, audio=item.audio,
                    sample_rate=item.sample_rate)
    try:
        generated = pre.align(out.frames)
    except ClipError as e:
        row.update(error_kind=e.kind, error=e.message)
        return row
    reference = None
    try:
        if task.paired:
            gt_frames = out.inputs.ground_truth() if out.inputs.ground_truth else None
            reference = ref_aligned = pre.ground_truth(item.clip.ground_truth, gt_frames)
        else:
            ref_aligned = pre.ground_truth(item.clip.reference_source)
    except ClipError as e:  # the task's side failed: the same for every submission, and recorded
        row.update(error_kind="reference_failed", error=f"{e.kind}: {e.message}")
        return row
    pair = ClipPair(clip_id=item.clip_id, generated=generated, reference=reference, audio=item.audio,
                    sample_rate=item.sample_rate,
                    reference_image=ref_aligned.faces[item.clip.reference_frame])
    row.update(status="ok", face_found_ratio=float(generated.face_found.mean()))
    for name, metric in metrics.items():
        try:
            values = metric.update(pair)
        except Exception as e:  # noqa: BLE001 - one metric failing on one clip is recorded, not fatal
            message = f"{type(e).__name__}: {e}"
            metric_errors.append({"clip_id": item.clip_id, "metric": name, "error": message})
            row[f"error.{name}"] = message
            log.warning("metric %s failed on %s: %s", name, item.clip_id, e)
            continue
        for key, value in (values or {}).items():
            row[f"{name}/{key}"] = float(value)
    row["_grid"] = face_grid(generated.faces, reference.faces if reference is not None
                             else np.repeat(pair.reference_image[None], len(generated.faces), axis=0))
    return row


def _aggregate(metrics: dict[str, Metric], rows: list[dict[str, Any]], unavailable: dict[str, str],
               metric_errors: list[dict[str, str]]
               ) -> tuple[dict[str, MetricInfo], dict[str, str], dict[str, Aggregate]]:
    """Per value key: the metric's compute() with a bootstrap CI over the ok clips' values.

    Value keys are used bare ("psnr") unless two metrics share one, then as "metric/key". The per-clip
    columns of ``rows`` are renamed to the same keys.
    """
    ok = [r for r in rows if r["status"] == "ok"]
    owners: dict[str, list[str]] = {}
    for name, metric in metrics.items():
        keys = sorted({k for v in metric.per_clip.values() for k in v} | set(metric.directions))
        for k in keys:
            owners.setdefault(k, []).append(name)
    infos: dict[str, MetricInfo] = {}
    key_metric: dict[str, str] = {}
    aggregates: dict[str, Aggregate] = {}
    for name, metric in metrics.items():
        if not metric.per_clip and not metric.corpus_level:
            errs = [e["error"] for e in metric_errors if e["metric"] == name]
            unavailable[name] = (f"failed on every clip: {errs[0]}" if errs else "no clip was scored")
            continue
        try:
            computed = metric.compute()
        except Exception as e:  # noqa: BLE001
            unavailable[name] = f"failed to aggregate: {type(e).__name__}: {e}"
            continue
        info = MetricInfo(name=name, variant=metric.variant, requires_reference=metric.requires_reference,
                          corpus_level=metric.corpus_level, weights=_weights_hashes(metric))
        for key, value in computed.items():
            public = key if len(owners.get(key, [name])) == 1 else f"{name}/{key}"
            info.directions[public] = metric.directions.get(key, "none")  # e.g. a signed offset
            key_metric[public] = name
            column = f"{name}/{key}"
            vals = np.array([r.get(column, np.nan) for r in ok], dtype=np.float64)
            for r in rows:
                if column in r:
                    r[public] = r.pop(column)
            finite = vals[np.isfinite(vals)]
            if metric.corpus_level or len(finite) < 2:
                lo = hi = float("nan")
            else:
                lo, hi = bootstrap(finite)
            aggregates[public] = Aggregate(value=float(value), ci_low=lo, ci_high=hi,
                                           n=len(ok) if metric.corpus_level else int(len(finite)))
        infos[name] = info
    return infos, key_metric, aggregates


def summary_table(result: EvalResult) -> str:
    """A few text lines for the terminal."""
    lines = [f"{result.submission.name} on {result.task.ref}: {result.n_ok}/{len(result.rows)} clips scored"
             f" ({result.elapsed_s:.1f} s)"]
    for key, agg in sorted(result.aggregates.items()):
        arrow = {"higher": "↑", "lower": "↓"}.get(result.directions.get(key, ""), " ")
        ci = "" if math.isnan(agg.ci_low) else f"  [{agg.ci_low:.4g}, {agg.ci_high:.4g}]"
        lines.append(f"  {key:<24}{arrow} {agg.value:.4g}{ci}")
    for name, reason in sorted(result.unavailable.items()):
        lines.append(f"  {name:<24}  {reason}")
    failed = [r for r in result.rows if r["status"] != "ok"]
    for r in failed[:10]:
        lines.append(f"  clip {r['clip_id']}: {r['error_kind']}: {r['error']}")
    if len(failed) > 10:
        lines.append(f"  ... and {len(failed) - 10} more failed clips")
    for p in result.submission.problems:
        lines.append(f"  {p['file']}: {p['error_kind']}: {p['error']}")
    return "\n".join(lines)
