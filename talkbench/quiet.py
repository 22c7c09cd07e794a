"""Quiet by default: third-party chatter that says nothing to a talkbench user is filtered; ``-v`` shows it.

What is filtered, and why it is safe to drop:

* MediaPipe's TFLite/absl start-up lines (``INFO: Created TensorFlow Lite XNNPACK delegate``, ``WARNING:
  All log messages before absl::InitializeLog()``, ``W0000 ... inference_feedback_manager`` and
  ``landmark_projection_calculator`` notes). They come from C++ straight to file descriptor 2, in this
  process and in the Dask workers it starts, so neither ``logging`` nor environment variables
  (``GLOG_minloglevel``, ``TF_CPP_MIN_LOG_LEVEL`` — tried, no effect on mediapipe 0.10.21) reach them:
  descriptor 2 is replaced by a pipe whose reader drops exactly those lines and passes everything else
  through at once (progress bars included). Worker processes inherit the pipe.
* Dask's "Port 8787 is already in use" (another cluster's dashboard; a random port is used) and the
  nanny's "Worker process still alive after 4.0 seconds, killing" at shutdown: ``distributed`` loggers
  below ERROR.
* MLflow's artifact download progress bars (``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``) and its "Creating
  initial MLflow database tables" / alembic migration lines when a new SQLite store is made.

Nothing talkbench logs itself is filtered.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator

#: whole lines of native (C++) start-up chatter; each must match from the start of the line
NATIVE_NOISE = re.compile(
    rb"^(INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|[WI]\d{4} [\d:.]+ +\d+ (inference_feedback_manager|landmark_projection_calculator|gl_context)\.cc:\d+\] .*)\r?$"
)
#: first bytes of a line that may turn out to be noise: held back until its end of line is seen
_NOISE_STARTS = (b"INFO: Created TensorFlow", b"WARNING: All log messages before absl", b"W0000 ", b"I0000 ")

QUIET_LOGGERS = ("distributed", "distributed.nanny", "distributed.node", "distributed.scheduler",
                 "distributed.worker", "distributed.core", "tornado", "absl",
                 "mlflow.store.db.utils", "alembic", "alembic.runtime.migration")


def _may_be_noise(partial: bytes) -> bool:
    return any(partial.startswith(s) or s.startswith(partial) for s in _NOISE_STARTS)


class NativeStderrFilter:
    """Replace descriptor 2 by a pipe; a thread forwards every line but :data:`NATIVE_NOISE` to the real one."""

    def __init__(self) -> None:
        self._saved_fd: int | None = None
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def start(self) -> None:
        sys.stderr.flush()
        self._saved_fd = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._thread = threading.Thread(target=self._pump, args=(read_fd, self._saved_fd), daemon=True,
                                        name="talkbench-stderr-filter")
        self._thread.start()

    def _pump(self, read_fd: int, out_fd: int) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(read_fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            out = []
            for line in lines:
                if NATIVE_NOISE.match(line):
                    self.dropped += 1
                else:
                    out.append(line + b"\n")
            if pending and not _may_be_noise(pending):  # progress bars redraw with \r: pass them on now
                out.append(pending)
                pending = b""
            if out:
                with contextlib.suppress(OSError):
                    os.write(out_fd, b"".join(out))
        if pending and not NATIVE_NOISE.match(pending):
            with contextlib.suppress(OSError):
                os.write(out_fd, pending)
        os.close(read_fd)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Put the real descriptor 2 back; the reader ends when every writer (workers too) has closed."""
        if self._saved_fd is None:
            return
        sys.stderr.flush()
        os.dup2(self._saved_fd, 2)  # closes our write end of the pipe
        if self._thread is not None:
            self._thread.join(timeout_s)
        os.close(self._saved_fd)
        self._saved_fd = None


def quiet_python_side() -> None:
    """Loggers and environment switches of the chatty libraries (see the module docstring)."""
    import warnings

    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r"Port \d+ is already in use", category=UserWarning)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@contextlib.contextmanager
def quiet_output(verbose: int = 0) -> Iterator[None]:
    """Filter third-party chatter for the duration of a command unless ``verbose``."""
    if verbose:
        yield
        return
    quiet_python_side()
    native = NativeStderrFilter()
    try:
        native.start()
    except OSError:  # no descriptor 2 (e.g. a daemon): nothing to filter
        native = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if native is not None:
            native.stop()
