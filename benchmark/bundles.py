"""Result bundles: one scored submission as a self-contained file that others can merge and check.

Why: a leaderboard lives in one MLflow store, so teams could not contribute results to a shared board.
A bundle (``bench export``) carries everything the board needs and what it takes to check a number:

    bundle.json      format, task name/version/hash, submission name/spec/hash, where it came from
    results.json     the run record (:mod:`talkbench.benchmark.records`): aggregates, variants, weights, versions
    per_clip.csv     the per-clip values
    task.yaml        the task manifest the run scored (its hash is checked on read)
    frames/*.png     sample frame grids (generated | ground truth)
    videos/*.mp4     only with ``--with-videos``

A bundle of a run that scored no clip (a recipe's ablation variant, a ``bench-unscored`` run) is never a
row: the board's ablation section lists it with the reason its record gives.

``bench leaderboard --from DIR`` builds one board from the bundles in a folder, refusing any whose task
hash differs from the board's task (the local task when ``--task`` names one, else the task most bundles
share). ``bench verify BUNDLE --submission SPEC`` re-scores the submission on the local copy of the task
and reports every aggregate outside tolerance. This is how a public board (a repository or a Space of
result files) is run, as lm-evaluation-harness result files feed the Open LLM Leaderboard.
"""

from __future__ import annotations

import json
import logging
import math
import re
import tempfile
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from talkbench.benchmark.board import Board, Entry, board_from_entries
from talkbench.benchmark.records import RunRecord
from talkbench.errors import TalkbenchError

log = logging.getLogger(__name__)

BUNDLE_FORMAT = 1
BUNDLE_SUFFIX = ".tbresult.zip"
RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")
#: frame grids kept in a bundle (the board shows the first; a reviewer looks at a few)
MAX_FRAMES = 4


# -- export ---------------------------------------------------------------------------------------------
def find_run(run: str, task: str | None = None) -> Any:
    """``run``: an MLflow run id, or a submission name on ``task`` (its active run); call use_tracking first."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from talkbench.benchmark.board import _resolve_experiment, active_runs
    from talkbench.benchmark.runs import TAG_SUBMISSION

    client = MlflowClient()
    if RUN_ID_RE.match(run):
        try:
            return client.get_run(run)
        except MlflowException as e:
            raise TalkbenchError(f"no MLflow run {run}: {e.message}") from None
    if not task:
        raise TalkbenchError(f"{run!r} is not an MLflow run id; to name a submission, add --task TASK")
    ref, exp = _resolve_experiment(task)
    found = [r for r in active_runs(exp.experiment_id) if r.data.tags.get(TAG_SUBMISSION) == run]
    if not found:  # a recipe's variant that scored no clip: its record, for the ablation view of a shared board
        from talkbench.benchmark.runs import unscored_runs

        found = [r for r in unscored_runs(exp.experiment_id) if r.data.tags.get(TAG_SUBMISSION) == run]
    if not found:
        names = sorted({r.data.tags.get(TAG_SUBMISSION, "?") for r in active_runs(exp.experiment_id)})
        raise TalkbenchError(f"no run of submission {run!r} on task {ref}; submissions there: {names}")
    return found[0]


def export_bundle(run: str, out: str | Path, task: str | None = None, with_videos: bool = False,
                  tasks_dir: str | Path | None = None) -> Path:
    """Write the bundle of ``run`` (run id, or submission name with ``task``) to ``out``."""
    from mlflow.tracking import MlflowClient

    from talkbench.benchmark.runs import RECORD_ARTIFACT, read_record
    from talkbench.benchmark.tasks import load_task

    found = find_run(run, task)
    run_id = found.info.run_id
    record = read_record(run_id)
    client = MlflowClient()
    out = Path(out)
    if out.suffix != ".zip":
        out = out.with_name(out.name + BUNDLE_SUFFIX)
    try:
        task_yaml = _task_yaml(load_task(record.task.ref, tasks_dir), record)
    except TalkbenchError as e:
        raise TalkbenchError(f"bundle of run {run_id}: the task it scored is needed: {e}") from None
    meta = {"format": BUNDLE_FORMAT, "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "task": {"name": record.task.name, "version": record.task.version, "hash": record.task.hash},
            "submission": {"name": record.submission.name, "spec": record.submission.spec,
                           "hash": record.submission.hash},
            "source": {"run_id": run_id, "tracking_uri": _safe_uri()}, "videos": with_videos}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_zip = out.with_name(out.name + ".tmp")
    with tempfile.TemporaryDirectory(prefix="talkbench-export-") as tmp, \
            zipfile.ZipFile(tmp_zip, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("bundle.json", json.dumps(meta, indent=2))
        z.writestr(RECORD_ARTIFACT, record.to_json())
        z.writestr("task.yaml", task_yaml)
        z.write(client.download_artifacts(run_id, "per_clip.csv", tmp), "per_clip.csv")
        grids = sorted(f.path for f in client.list_artifacts(run_id, "grids") if f.path.endswith(".png"))
        for path in grids[:MAX_FRAMES]:
            z.write(client.download_artifacts(run_id, path, tmp), f"frames/{Path(path).name}")
        if with_videos:
            folder = found.data.tags.get("talkbench.videos_dir")
            videos = sorted(Path(folder).glob("*.mp4")) if folder and Path(folder).is_dir() else []
            if not videos:
                raise TalkbenchError(f"run {run_id} kept no videos (scored with --no-keep-videos, or the folder "
                                     f"{folder} is gone): export without --with-videos")
            for v in videos:
                z.write(v, f"videos/{v.name}")
    tmp_zip.replace(out)
    return out


def _task_yaml(task: Any, record: RunRecord) -> str:
    import yaml

    if task.hash != record.task.hash:
        raise TalkbenchError(f"local task {task.ref} has hash {task.hash[:16]}, the run scored {record.task.hash[:16]}")
    return yaml.safe_dump(task.model_dump(mode="json"), sort_keys=False)


def _safe_uri() -> str:
    """The tracking URI without credentials (user:password@ is dropped)."""
    import mlflow

    return re.sub(r"//[^/@]*@", "//", mlflow.get_tracking_uri())


# -- read -------------------------------------------------------------------------------------------------
@dataclass
class Bundle:
    path: Path
    meta: dict[str, Any]
    record: RunRecord
    frames: list[bytes] = field(default_factory=list)

    @property
    def task_hash(self) -> str:
        return self.record.task.hash


def read_bundle(path: str | Path) -> Bundle:
    """Open and validate a bundle; a clear one-line error for anything that is not one."""
    from talkbench.benchmark.runs import RECORD_ARTIFACT

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            missing = {"bundle.json", RECORD_ARTIFACT} - names
            if missing:
                raise TalkbenchError(f"{path}: not a talkbench result bundle (no {', '.join(sorted(missing))})")
            meta = json.loads(z.read("bundle.json"))
            record = RunRecord.from_json(z.read(RECORD_ARTIFACT), source=f"{path}: {RECORD_ARTIFACT}")
            frames = [z.read(n) for n in sorted(names) if n.startswith("frames/") and n.endswith(".png")]
    except (zipfile.BadZipFile, OSError, json.JSONDecodeError) as e:
        raise TalkbenchError(f"{path}: not a readable result bundle: {e}") from None
    if meta.get("format") != BUNDLE_FORMAT:
        raise TalkbenchError(f"{path}: bundle format {meta.get('format')!r}, this talkbench reads {BUNDLE_FORMAT}")
    if meta.get("task", {}).get("hash") != record.task.hash:
        raise TalkbenchError(f"{path}: bundle.json and results.json name different task hashes")
    return Bundle(path=path, meta=meta, record=record, frames=frames)


def _thumbnail(png: bytes) -> bytes:
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    img.thumbnail((480, 240))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def board_from_bundles(folder: str | Path, task: str | None = None, tasks_dir: str | Path | None = None,
                       thumbnails: bool = False) -> tuple[Board, list[str]]:
    """One board from every bundle in ``folder``; returns (board, refused bundles with the reason).

    The board's task: ``task`` (a local task: its hash is the reference), else the task hash most bundles
    share. Bundles of another task hash are refused (a different clip list, face settings or shards config
    makes numbers incomparable). Two bundles of the same submission hash: the newer one counts.
    """
    folder = Path(folder)
    paths = sorted(p for p in folder.iterdir() if p.suffix == ".zip") if folder.is_dir() else []
    if not paths:
        raise TalkbenchError(f"no result bundles (*.zip from `talkbench bench export`) in {folder}")
    bundles, refused = [], []
    for p in paths:
        try:
            bundles.append(read_bundle(p))
        except TalkbenchError as e:
            refused.append(str(e))
    if not bundles:
        raise TalkbenchError(f"no readable result bundle in {folder}: {refused[0]}")
    if task:
        from talkbench.benchmark.tasks import load_task

        local = load_task(task, tasks_dir)
        ref, reference = local.ref, local.hash
    else:
        reference = Counter(b.task_hash for b in bundles).most_common(1)[0][0]
        ref = next(b.record.task.ref for b in bundles if b.task_hash == reference)
    entries: dict[str, tuple[str, Entry]] = {}
    unscored: list[RunRecord] = []
    for b in bundles:
        if b.task_hash != reference:
            refused.append(f"{b.path.name}: task {b.record.task.ref} hash {b.task_hash[:16]} differs from the "
                           f"board's task {ref} hash {reference[:16]} (scored on other clips or settings)")
            continue
        if b.record.n_clips_ok == 0:  # a recipe variant that scored nothing: the ablation view says so, never a row
            unscored.append(b.record)
            continue
        key = b.record.submission.hash
        created = str(b.meta.get("created_utc", ""))
        if key in entries and entries[key][0] >= created:
            continue
        entry = Entry(run_id=str(b.meta.get("source", {}).get("run_id") or b.path.name), record=b.record)
        if thumbnails and b.frames:
            entry.thumbnail = _thumbnail(b.frames[0])
        entries[key] = (created, entry)
    if not entries:
        raise TalkbenchError(f"no bundle in {folder} matches task {ref}: " + "; ".join(refused[:3]))
    for r in refused:
        log.warning("leaderboard --from %s: refused %s", folder, r)
    board = board_from_entries(ref, [e for _, e in entries.values()], skipped=refused, unscored=unscored)
    return board, refused


# -- verify -----------------------------------------------------------------------------------------------
@dataclass
class Check:
    key: str
    claimed: float
    measured: float
    ok: bool


def within(claimed: float, measured: float, rtol: float, atol: float) -> bool:
    """Both undefined, or |claimed - measured| <= atol + rtol * |claimed|."""
    if math.isnan(claimed) or math.isnan(measured):
        return math.isnan(claimed) and math.isnan(measured)
    return abs(claimed - measured) <= atol + rtol * abs(claimed)


def verify_bundle(bundle: str | Path, submission: str, tasks_dir: str | Path | None = None,
                  rtol: float = 1e-3, atol: float = 1e-6, device: str | None = None
                  ) -> tuple[Bundle, RunRecord, list[Check]]:
    """Re-score ``submission`` on the bundle's task (local copy, same hash) with the bundle's metrics.

    Nothing is logged to MLflow. Returns (bundle, the new record, one check per claimed aggregate).
    """
    from talkbench.benchmark.harness import run_submissions
    from talkbench.benchmark.tasks import load_task

    b = read_bundle(bundle)
    claimed = b.record
    try:
        task = load_task(claimed.task.ref, tasks_dir)
    except TalkbenchError as e:
        raise TalkbenchError(f"verify needs task {claimed.task.ref} here (make it from the same shards with "
                             f"`talkbench bench make-task`): {e}") from None
    if task.hash != claimed.task.hash:
        raise TalkbenchError(f"local task {task.ref} has hash {task.hash[:16]}, the bundle was scored on "
                             f"{claimed.task.hash[:16]}: not the same clips or settings")
    metrics = sorted(claimed.metrics) or None
    ((result, _),) = run_submissions(task.ref, [submission], name=claimed.submission.name, tasks_dir=tasks_dir,
                                     metrics=metrics, log_to_mlflow=False, keep_videos=False,
                                     length_tolerance=claimed.length_tolerance, device=device)
    new = result.record
    checks = []
    for key, agg in sorted(claimed.aggregates.items()):
        measured = new.aggregates[key].value if key in new.aggregates else math.nan
        checks.append(Check(key, agg.value, measured, within(agg.value, measured, rtol, atol)))
    return b, new, checks


def verify_report(b: Bundle, new: RunRecord, checks: list[Check]) -> str:
    lines = [f"verify {b.path.name}: {b.record.submission.name} on {b.record.task.ref}"]
    same = new.submission.hash == b.record.submission.hash
    lines.append(f"  submission hash {new.submission.hash[:16]} "
                 + ("= the bundle's" if same else f"!= the bundle's {b.record.submission.hash[:16]} (other files)"))
    for c in checks:
        mark = "ok " if c.ok else "OUT"
        lines.append(f"  {mark} {c.key:<24} claimed {c.claimed:.6g}  measured {c.measured:.6g}")
    bad = [c for c in checks if not c.ok]
    lines.append(f"{len(checks) - len(bad)}/{len(checks)} aggregates within tolerance"
                 + (f"; outside: {', '.join(c.key for c in bad)}" if bad else ""))
    return "\n".join(lines)
