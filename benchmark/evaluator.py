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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from talkbench.benchmark.artifacts import VideoKeeper, face_grid
from talkbench.benchmark.codec import CodecSetting, get_codec, reencode, reencode_cached
from talkbench.benchmark.geometry import in_reference_geometry
from talkbench.benchmark.integrity import FLAGS, check_clip
from talkbench.benchmark.metrics.aggregate import aggregate
from talkbench.benchmark.metrics.base import METRICS, ClipPair, Metric
from talkbench.benchmark.preprocess import Preprocessor
from talkbench.benchmark.records import AggregateRecord, MetricRecord, RunRecord
from talkbench.benchmark.submissions import ClipOutput, ItemInputs, Submission
from talkbench.benchmark.tasks import TaskItem, TaskManifest, iter_items
from talkbench.errors import ClipError, TalkbenchError
from talkbench.progress import Progress

log = logging.getLogger(__name__)

MISSING_POLICY = "exclude-with-count"


@dataclass
class EvalResult:
    task: TaskManifest
    submission: Submission
    rows: list[dict[str, Any]]  # one per task clip: clip_id, status, error_kind, error, values...
    aggregates: dict[str, AggregateRecord]  # value key -> aggregate over the ok clips
    metrics: dict[str, MetricRecord]  # metrics that ran
    key_metric: dict[str, str]  # value key -> metric name
    unavailable: dict[str, str]  # metric name -> reason
    metric_errors: list[dict[str, str]]  # per (clip, metric) failures
    grids: dict[str, np.ndarray]  # clip id -> side-by-side image (generated | ground truth)
    videos_dir: Path | None
    elapsed_s: float
    missing_policy: str = MISSING_POLICY
    record: RunRecord | None = None  # the typed run record, built by the harness (benchmark/records.py)
    results_dir: Path | None = None  # where the harness wrote results.json + per_clip.csv (before MLflow)
    codec: str | None = None  # codec normalisation applied to every scored video (benchmark/codec.py), recorded

    @property
    def n_ok(self) -> int:
        return sum(r["status"] == "ok" for r in self.rows)

    @property
    def n_failed(self) -> int:
        return len(self.rows) - self.n_ok

    @property
    def flags(self) -> dict[str, int]:
        """Flag name -> number of scored clips carrying it (every known flag, zero included)."""
        return {f: sum(bool(r.get(f"flag.{f}")) for r in self.rows if r["status"] == "ok") for f in FLAGS}

    @property
    def geometry(self) -> dict[str, int]:
        """Geometry variant (align-gt, aligned-crop, align-per-side) -> scored clips compared in it."""
        out: dict[str, int] = {}
        for r in self.rows:
            if r["status"] == "ok" and r.get("geometry"):
                out[r["geometry"]] = out.get(r["geometry"], 0) + 1
        return out

    @property
    def flag_rules(self) -> dict[str, str]:
        return dict(FLAGS)

    @property
    def directions(self) -> dict[str, str]:
        return {k: d for m in self.metrics.values() for k, d in m.directions.items()}


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
        reason = cls.unavailable_reason()
        if reason:
            unavailable[name] = f"unavailable: {reason}"
            continue
        try:
            ready[name] = cls(device=device)
        except TalkbenchError as e:
            unavailable[name] = f"unavailable: {e}"
    return ready, unavailable


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
        gt = personal = None
        if task.paired:
            gt_frames = source
            if item.clip.ground_truth != item.clip.reference_source:
                raise TalkbenchError(f"task {task.ref}: clip {item.clip_id}: paired clips take the reference "
                                     "frame from their own ground truth")
            if item.clip.personalize_frames:  # fine-tuning frames, then the target part is the ground truth
                personal, gt_frames = source[: item.clip.personalize_frames], source[item.clip.personalize_frames :]
            gt = _constant(gt_frames)
        dub_frames = dub_mask = None
        if task.kind == "dubbing":  # the target's frames with the lower face masked (benchmark/dubbing.py)
            from talkbench.benchmark.dubbing import lower_face_masks, masked_frames

            try:
                dub_mask = lower_face_masks(source, pre)
            except ClipError as e:
                raise TalkbenchError(f"task {task.ref}: clip {item.clip_id}: dubbing mask: {e.message}") from None
            dub_frames = masked_frames(source, dub_mask)
        yield ItemInputs(item=item, reference_image=source[item.clip.reference_frame], ground_truth=gt,
                         personal_frames=personal, dubbing_frames=dub_frames, dubbing_mask=dub_mask)


def _constant(frames: np.ndarray) -> Any:
    def get() -> np.ndarray:
        return frames

    return get


def evaluate(task: TaskManifest, submission: Submission, metric_names: list[str] | None = None,
             videos_dir: str | Path | None = None, n_grids: int = 3, device: str | None = None,
             preprocessor: Preprocessor | None = None) -> EvalResult:
    """Score ``submission`` on ``task``. Per-clip failures are rows, never exceptions."""
    t0 = time.perf_counter()
    metrics, unavailable = select_metrics(task, metric_names, device)
    pre = preprocessor or Preprocessor(task)
    keep = VideoKeeper(videos_dir) if videos_dir is not None and submission.keeps_videos else None
    submission.setup(task)
    try:
        rows, metric_errors, grids = score_clips(task, submission, metrics, pre, keep, n_grids)
    finally:
        if preprocessor is None:
            pre.close()
        submission.close()
    return finish(task, submission, metrics, unavailable, rows, metric_errors, grids,
                  keep.folder if keep else None, time.perf_counter() - t0)


def score_clips(task: TaskManifest, submission: Submission, metrics: dict[str, Metric], pre: Preprocessor,
                keep: VideoKeeper | None, n_grids: int = 3, show_progress: bool = True
                ) -> tuple[list[dict[str, Any]], list[dict[str, str]], dict[str, np.ndarray]]:
    """Every clip of ``task`` (in order): per-clip rows, metric errors, the first ``n_grids`` frame grids.

    The metrics keep their per-clip values (``metric.per_clip``); a cluster run calls this on parts of
    the task and merges (``benchmark/distributed.py``).
    """
    rows: list[dict[str, Any]] = []
    metric_errors: list[dict[str, str]] = []
    grids: dict[str, np.ndarray] = {}
    bar = Progress(f"scoring {submission.name}", total=len(task.clips), unit="clip", enabled=show_progress)
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
    return rows, metric_errors, grids


def finish(task: TaskManifest, submission: Submission, metrics: dict[str, Metric], unavailable: dict[str, str],
           rows: list[dict[str, Any]], metric_errors: list[dict[str, str]], grids: dict[str, np.ndarray],
           videos_dir: Path | None, elapsed_s: float) -> EvalResult:
    """Aggregate the metrics' per-clip values into the result (public key names in the rows too)."""
    agg = aggregate(metrics, rows, metric_errors)
    for r in rows:  # per-clip columns "metric/key" -> the aggregates' public key
        for column, public in agg.renamed.items():
            if column in r:
                r[public] = r.pop(column)
    return EvalResult(task=task, submission=submission, rows=rows, aggregates=agg.aggregates, metrics=agg.metrics,
                      key_metric=agg.key_metric, unavailable={**unavailable, **agg.unavailable},
                      metric_errors=metric_errors, grids=grids, videos_dir=videos_dir, elapsed_s=elapsed_s,
                      codec=get_codec(task.codec).describe() if task.codec else None)


def _normalised(pre: Preprocessor, source: str, frames: np.ndarray | None, fps: float,
                codec: CodecSetting) -> np.ndarray:
    """A real video's frames (decoded here unless given) re-encoded with the task's codec setting (once per
    process: the same ground truth serves every submission)."""
    return reencode_cached(pre.decode(source) if frames is None else frames, fps, codec)


def _score_clip(out: ClipOutput, task: TaskManifest, pre: Preprocessor, metrics: dict[str, Metric],
                metric_errors: list[dict[str, str]], keep: VideoKeeper | None) -> dict[str, Any]:
    item: TaskItem = out.inputs.item
    row: dict[str, Any] = {"clip_id": item.clip_id, "status": "failed", "error_kind": None, "error": None,
                           **out.info}
    if out.error is not None:
        row.update(error_kind=out.error.kind, error=out.error.message)
        return row
    assert out.frames is not None
    if out.inputs.dubbing_mask is not None:  # only the masked region is the submission's to score
        from talkbench.benchmark.dubbing import composite

        try:
            out.frames = composite(out.frames, out.inputs.ground_truth(), out.inputs.dubbing_mask)
        except ClipError as e:
            row.update(error_kind=e.kind, error=e.message)
            return row
    if keep is not None:
        keep.keep(item.clip_id, out.frames, item.fps, item.audio, item.sample_rate, out.predicted_aus)
    codec = get_codec(task.codec) if task.codec else None
    if codec is not None:  # codec normalisation: the submission and every real video it meets, one setting
        out.frames = reencode(out.frames, item.fps, codec)
        row["codec"] = codec.name
    reference = gt_frames = None
    try:  # the real side first: the generated AUs are measured from its neutral baseline
        if task.paired:
            gt_frames = out.inputs.ground_truth() if out.inputs.ground_truth else None
            if codec is not None:
                gt_frames = _normalised(pre, item.clip.ground_truth, gt_frames, item.fps, codec)
            reference = ref_aligned = pre.ground_truth(item.clip.ground_truth, gt_frames)
        else:
            ref_aligned = pre.ground_truth(item.clip.reference_source, None if codec is None else _normalised(
                pre, item.clip.reference_source, None, item.fps, codec))
    except ClipError as e:  # the task's side failed: the same for every submission, and recorded
        row.update(error_kind="reference_failed", error=f"{e.kind}: {e.message}")
        return row
    try:
        generated = pre.align(out.frames, au_reference=ref_aligned)
    except ClipError as e:
        row.update(error_kind=e.kind, error=e.message)
        return row
    identity = None
    if item.clip.identity_source and "csim" in metrics:  # CSIM's identity: another clip of the speaker
        try:
            other = pre.ground_truth(item.clip.identity_source, None if codec is None else _normalised(
                pre, item.clip.identity_source, None, item.fps, codec))
            if other.face_found[item.clip.identity_frame]:
                identity = other.faces[item.clip.identity_frame]
        except (ClipError, IndexError) as e:
            log.warning("clip %s: identity reference %s unusable (%s); CSIM uses the reference image",
                        item.clip_id, item.clip.identity_clip, e)
    if reference is not None:  # full-reference comparisons in the ground truth's geometry
        generated, reference, row["geometry"] = in_reference_geometry(
            out.frames, generated, reference, task.geometry or "full", gt_frames=gt_frames)
    pair = ClipPair(clip_id=item.clip_id, generated=generated, reference=reference, audio=item.audio,
                    sample_rate=item.sample_rate,
                    reference_image=ref_aligned.faces[item.clip.reference_frame],
                    identity_image=identity, predicted_aus=out.predicted_aus, frames=out.frames,
                    extra={"geometry": row.get("geometry")})
    row.update(status="ok", face_found_ratio=float(generated.face_found.mean()), **check_clip(pair))
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
