"""Run the configured stage list on one clip, inside a worker process.

Models are loaded once per worker: the :class:`WorkerContext` lives in a module-level cache keyed by
the config hash, so every clip a worker processes with the same config reuses it. A clip never raises
out of :func:`process_clip`: a :class:`ClipError` or ANY exception becomes a failed row, and the job
goes on (the per-clip robustness GUIDE §2 asks for).
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from talkbench.config import config_hash
from talkbench.errors import ClipError
from talkbench.pipelines.core import STAGES, Clip, ClipRecord, WorkerContext
from talkbench.pipelines.distributor import limit_threads
from talkbench.pipelines.tables import clip_row, frames_table

log = logging.getLogger(__name__)

#: config hash -> the context of this process (one per worker process; see the module docstring)
_CONTEXTS: dict[str, WorkerContext] = {}

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
