"""Where MLflow runs go: one tracking-URI rule for training and the benchmark.

MLflow 3.x defaults to SQLite and deprecates the ``./mlruns`` file store (GUIDE §5), so we always use an
explicit SQLite URI and an explicit artifact location unless ``MLFLOW_TRACKING_URI`` points elsewhere
(e.g. a team server). mlflow is imported lazily so ``talkbench --help`` stays light.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from talkbench.errors import TalkbenchError

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<cwd>/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env
    return f"sqlite:///{Path.cwd() / DEFAULT_DB}"


def artifact_root() -> str:
    """Artifact location for new experiments: ``$TALKBENCH_ARTIFACT_ROOT`` or ``<cwd>/mlartifacts``."""
    env = os.environ.get("TALKBENCH_ARTIFACT_ROOT", "").strip()
    return env or (Path.cwd() / DEFAULT_ARTIFACTS).as_uri()


def setup() -> str:
    """Point the mlflow client at :func:`tracking_uri` and return it."""
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    return uri


def get_or_create_experiment(name: str, artifact_location: str | None = None) -> str:
    """The id of experiment ``name``, created with an explicit artifact location when missing."""
    import mlflow
    from mlflow.tracking import MlflowClient

    init_store(setup())
    client = MlflowClient()
    exp = call(client.get_experiment_by_name, name, what="reading experiments")
    if exp is not None:
        return exp.experiment_id
    location = artifact_location or f"{artifact_root().rstrip('/')}/{name}"
    try:
        return client.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:  # created concurrently by another process (or busy)
        exp = call(client.get_experiment_by_name, name, what="reading experiments")
        if exp is None:
            return call(client.create_experiment, name, artifact_location=location, what="creating an experiment")
        return exp.experiment_id


# ---------------------------------------------------------------------------------------------------
# A busy store: retries with back-off, one-line errors, locks shared by the processes of one store
# ---------------------------------------------------------------------------------------------------

#: messages of a store that is busy rather than broken (SQLite's lock; MLflow's TEMPORARILY_UNAVAILABLE)
_BUSY = ("database is locked", "database table is locked", "temporarily_unavailable", "temporarily unavailable")


class TrackingError(TalkbenchError):
    """The tracking store failed (after retries when it was busy); the message is one line."""


def retry_budget_s() -> float:
    """How long a busy store is retried: ``$TALKBENCH_TRACKING_RETRY_S`` (default 120 s; each try of a
    SQLite store also waits up to MLflow's 20 s busy timeout)."""
    try:
        return max(0.0, float(os.environ.get("TALKBENCH_TRACKING_RETRY_S", "120")))
    except ValueError:
        return 120.0


def _is_busy(e: BaseException) -> bool:
    text = f"{getattr(e, 'error_code', '')} {e}".lower()
    return any(b in text for b in _BUSY)


def one_line(e: BaseException) -> str:
    """The first line of an exception, without SQLAlchemy's '[SQL: ...]' / 'Background on...' tails."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    for tail in (" [SQL:", "(Background on this error"):
        text = text.split(tail)[0]
    return f"{type(e).__name__}: {text.strip()}"[:500]


def _quiet() -> None:
    """MLflow logs a full traceback for every SQLAlchemy error it re-raises: keep that out of the output."""
    for name in ("mlflow.store.db.utils", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def call(fn: Callable[..., T], *args: Any, what: str = "tracking store", **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` with retries and back-off (0.5 s doubling to 10 s) while the store is busy.

    Any failure, busy past the budget or not, becomes a one-line :class:`TrackingError`.
    """
    _quiet()
    deadline = time.monotonic() + retry_budget_s()
    delay = 0.5
    while True:
        try:
            return fn(*args, **kwargs)
        except TalkbenchError:
            raise
        except Exception as e:  # noqa: BLE001 - MLflow, SQLAlchemy, alembic, HTTP: all one line
            if _is_busy(e) and time.monotonic() + delay < deadline:
                log.info("%s busy (%s); retrying in %.1f s", what, one_line(e), delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            busy = " (still busy after retrying for TALKBENCH_TRACKING_RETRY_S)" if _is_busy(e) else ""
            raise TrackingError(f"{what} failed{busy}: {one_line(e)}") from None


def lock_dir(uri: str | None = None) -> Path:
    """Where the locks of a store live: beside a SQLite file, else in the temp dir (per URI)."""
    uri = uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///").split("?")[0])
        if not db.is_absolute():
            db = Path("/" + str(db)) if uri.startswith("sqlite:////") else Path.cwd() / db
        return db.parent / f".{db.name}.talkbench-locks"
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "talkbench-locks" / digest


@contextmanager
def store_lock(name: str, uri: str | None = None, timeout_s: float | None = None) -> Iterator[None]:
    """An exclusive lock shared by every process using this store on this machine (and on a shared
    folder, for a SQLite file there). ``name``: what is locked, e.g. ``schema`` or ``run-<key>``."""
    from filelock import FileLock, Timeout

    folder = lock_dir(uri)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrackingError(f"cannot create the lock folder {folder}: {e.strerror}") from None
    timeout = retry_budget_s() + 600 if timeout_s is None else timeout_s
    lock = FileLock(str(folder / f"{name}.lock"), timeout=timeout)
    try:
        with lock:
            yield
    except Timeout:
        raise TrackingError(f"waited {timeout:.0f} s for {folder / name}.lock (another talkbench holds "
                            "it); try again later") from None


def init_store(uri: str | None = None) -> None:
    """Create or migrate the store's schema once, under the store's ``schema`` lock: two processes
    starting on a new SQLite file otherwise race in the migration (alembic errors)."""
    from mlflow.tracking import MlflowClient

    uri = uri or tracking_uri()
    with store_lock("schema", uri):
        call(lambda: MlflowClient(uri).search_experiments(max_results=1), what=f"opening the tracking store {uri}")
