"""Run the configured stage list on one clip, inside a worker process.

Models are loaded once per worker: the :class:`WorkerContext` lives in a module-level cache keyed by
the config hash, so every clip a worker processes with the same config reuses it. A clip never raises
out of :func:`process_clip`: a :class:`ClipError` or ANY exception becomes a failed row, and the job
goes on (the per-clip robustness GUIDE §2 asks for).
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from talkbench.config import config_hash
from talkbench.errors import ClipError
from talkbench.pipelines.core import STAGES, Clip, ClipRecord, WorkerContext
from talkbench.pipelines.tables import clip_row, frames_table

log = logging.getLogger(__name__)

#: config hash -> the context of this process (one per worker process; see the module docstring)
_CONTEXTS: dict[str, WorkerContext] = {}

#: env vars that make numeric libraries use one thread: parallelism comes from worker processes
SINGLE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
}
#: MediaPipe/TFLite log through glog: keep their INFO/WARNING chatter out of the progress output
QUIET_ENV = {"GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}


@dataclass
class ClipResult:
    """What a clip task hands to the shard writer: one clips row and its frames (None if failed)."""

    row: dict[str, Any]
    frames: pa.Table | None

    @property
    def clip_id(self) -> str:
        return self.row["clip_id"]

    @property
    def n_frames(self) -> int:
        return 0 if self.frames is None else self.frames.num_rows


def limit_threads() -> None:
    """One thread per worker for OpenMP/BLAS and OpenCV (thread pools would fight the processes).

    The env vars only reach libraries loaded later; a BLAS pool that already started (numpy was
    imported before this ran: any worker not spawned with ``SINGLE_THREAD_ENV``) is shrunk with
    threadpoolctl, because its idle threads spin after every BLAS call: ~1 ms of CPU per frame.
    """
    os.environ.update(SINGLE_THREAD_ENV)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # the pipeline extra is not installed; nothing to limit
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # a call, not a context: the limit stays
    except ImportError:  # a dependency of scikit-learn/librosa, normally present
        pass


def pin_to_cpu(cpu: int) -> None:
    """Run every thread of this process on one CPU; threads started later inherit it (Linux only).

    A worker's MediaPipe graph hands each frame between its own threads and the task thread; left
    free, the kernel spreads those hand-offs over idle cores, each time with cold caches. On one
    core the same work took ~25% less CPU and time here (GRID, 2-core VM).
    """
    for tid in os.listdir("/proc/self/task"):
        with suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), {cpu})


def worker_context(cfg: Any, key: str | None = None) -> WorkerContext:
    key = key or config_hash(cfg)
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        limit_threads()
        ctx = _CONTEXTS[key] = WorkerContext()
    return ctx


def close_contexts() -> None:
    """Release this process's models (MediaPipe graphs) before the worker shuts down."""
    for ctx in _CONTEXTS.values():
        ctx.close()
    _CONTEXTS.clear()


def run_stages(clip: Clip, cfg: Any, ctx: WorkerContext) -> Clip:
    """Apply ``cfg.stages`` in order; exceptions propagate (see :func:`process_clip`)."""
    from talkbench.pipelines import stages as _  # noqa: F401  (import registers the stages)

    for name in cfg.stages:
        fn, config_cls = STAGES.get(name)
        stage_cfg = getattr(cfg, name, None)
        clip = fn(clip, stage_cfg if stage_cfg is not None else config_cls(), ctx)
    return clip


def process_clip(record: ClipRecord, cfg: Any, cfg_key: str | None = None) -> ClipResult:
    """The Dask task: one clip through every stage, into output rows. Never raises."""
    start = time.perf_counter()
    clip = Clip(record=record)
    try:
        # stages fill ``clip`` in place, so on a failure the info gathered so far (e.g. the source
        # fps from decode) still lands in the failed row
        clip = run_stages(clip, cfg, worker_context(cfg, cfg_key))
        table = frames_table(clip)
        row = clip_row(clip, n_frames=table.num_rows)
    except ClipError as e:
        table, row = None, clip_row(clip, status="failed", error_kind=e.kind, error=e.message)
    except Exception as e:  # noqa: BLE001  (any bug in a stage fails this clip only)
        log.warning("clip %s failed:\n%s", record.clip_id, traceback.format_exc())
        table, row = None, clip_row(clip, status="failed", error_kind="internal", error=last_line(e))
    if "au" in cfg.stages and row["status"] != "failed" and row.get("au_backend") is None:
        row["au_backend"] = cfg.au.backend
    row["elapsed_s"] = time.perf_counter() - start
    return ClipResult(row=row, frames=table)


def failed_result(record: ClipRecord, kind: str, message: str) -> ClipResult:
    """A failed row made outside a worker (e.g. the worker process died on this clip)."""
    return ClipResult(row=clip_row(Clip(record=record), status="failed", error_kind=kind, error=message),
                      frames=None)


def last_line(e: BaseException) -> str:
    """The last line of the traceback, ``"ValueError: ..."``: short enough for a table cell."""
    return traceback.format_exception_only(type(e), e)[-1].strip()
