"""Where Dask work runs (video2dataset's distributor): a tuned LocalCluster, an existing scheduler, or SLURM.

The one owner of cluster set-up: ``talkbench prepare`` runs one task per clip on whatever
:func:`dask_client` gives it, and ``bench run --scheduler`` scores clips on the same clusters. Three kinds,
chosen by ``scheduler``:

- ``None``, ``local`` or ``local:N``: a LocalCluster of single-threaded worker processes (N, else
  ``workers``, else one per CPU), with Dask's diagnostics slowed down for second-long tasks
  (:data:`LOCAL_CLUSTER_CONFIG`) and optionally one CPU per worker (``pin_workers``);
- ``tcp://host:port``: an existing scheduler (its workers must reach the inputs and outputs);
- ``slurm:PATH.yaml``: a dask-jobqueue SLURMCluster from a YAML like ``configs/slurm_example.yaml``.

Every worker, including late joiners, runs numeric libraries single-threaded (:class:`SingleThreadPlugin`):
parallelism comes from processes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import dask
from distributed.diagnostics.plugin import WorkerPlugin

from talkbench.config import read_yaml
from talkbench.errors import ConfigError, TalkbenchError

log = logging.getLogger(__name__)

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



#: Dask settings of the LocalCluster we start. A clip task runs for about a second, so Dask's
#: diagnostics at their default rates (made for millisecond tasks: a stack sample every 10 ms, an
#: event-loop tick every 20 ms, memory polled every 100 ms) only cost CPU: 12% of a core with 2
#: idle workers here, 3% with these. And no MALLOC_TRIM_THRESHOLD_ (Dask sets 64 KiB in workers):
#: with it glibc gives every freed frame buffer back to the OS, so each new one is page-faulted
#: again, ~25% more CPU per frame in a worker than the same code in one process (measured).
LOCAL_CLUSTER_CONFIG: dict[str, Any] = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,  # None unsets it
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "200ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "500ms",
}


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None, threads_per_worker: int = 1,
                memory_limit: str = "auto", pin_workers: bool = False,
                teardown: Callable[[], Any] | None = None) -> Iterator[Any]:
    """A Dask client: on an existing scheduler (``tcp://host:port``), on a SLURM cluster
    (``slurm:JOBQUEUE.yaml``), or on a fresh LocalCluster of ``workers`` processes (``scheduler`` None,
    ``local`` or ``local:N``; default: one per CPU).

    ``pin_workers``: LocalCluster worker i runs on the i-th usable CPU (see :func:`pin_to_cpu`),
    when workers are single-threaded and there are at least as many CPUs as workers. ``teardown`` runs on
    every LocalCluster worker before it is closed (e.g. releasing models), best effort.
    """
    from distributed import Client, LocalCluster

    if not log.isEnabledFor(logging.DEBUG):  # Dask's INFO lines would bury the progress bar
        logging.getLogger("distributed").setLevel(logging.WARNING)
    workers, scheduler = local_workers(scheduler, workers)
    if scheduler and scheduler.startswith("slurm:"):
        cluster = slurm_cluster(scheduler.removeprefix("slurm:"))
        try:
            with Client(cluster) as client:
                client.register_plugin(SingleThreadPlugin(), name="talkbench-threads")
                client.wait_for_workers(1, timeout=cluster_wait_s(scheduler))
                yield client
        finally:
            cluster.close()
        return
    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except OSError as e:
            raise TalkbenchError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        try:
            client.register_plugin(SingleThreadPlugin(), name="talkbench-threads")
            yield client
        finally:
            client.close()
        return
    n = workers or os.cpu_count() or 1
    with dask.config.set(LOCAL_CLUSTER_CONFIG):
        cluster = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=True,
                               memory_limit=memory_limit, dashboard_address=None,
                               silence_logs=logging.ERROR, env={**SINGLE_THREAD_ENV, **QUIET_ENV})
        client = Client(cluster)
        try:
            client.register_plugin(SingleThreadPlugin(), name="talkbench-threads")
            cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
            if pin_workers and threads_per_worker == 1 and n <= len(cpus):
                client.register_plugin(PinPlugin(cpus), name="talkbench-pin")
            yield client
        finally:
            if teardown is not None:
                with suppress(Exception):  # a clean model teardown lets workers exit quickly; best effort
                    client.run(teardown)
            client.close()
            cluster.close()


def local_workers(scheduler: str | None, workers: int | None = None) -> tuple[int | None, str | None]:
    """``local`` / ``local:N`` -> (N or ``workers``, None: a LocalCluster); any other target unchanged."""
    if scheduler is None or not (scheduler == "local" or scheduler.startswith("local:")):
        return workers, scheduler
    n = scheduler.removeprefix("local").removeprefix(":")
    if n and not (n.isdigit() and int(n) > 0):
        raise ConfigError(f"scheduler {scheduler!r}: expected local, local:N (N >= 1 workers), tcp://host:port "
                          "or slurm:FILE")
    return (int(n) if n else workers), None


def slurm_cluster(path: str, scale: bool = True) -> Any:
    """A dask-jobqueue SLURMCluster from a YAML like configs/slurm_example.yaml (``jobqueue.slurm.*``
    keys, plus ``talkbench.jobs``: how many jobs to submit)."""
    from dask_jobqueue import SLURMCluster

    data = read_yaml(path)
    jobs = int((data.get("talkbench") or {}).get("jobs", 1))
    options = ((data.get("jobqueue") or {}).get("slurm") or {}).items()
    try:
        cluster = SLURMCluster(**{k.replace("-", "_"): v for k, v in options})
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{path}: {e}") from None
    if scale:
        cluster.scale(jobs=jobs)
    return cluster


def cluster_wait_s(scheduler: str) -> float:
    """How long to wait for the first SLURM worker (jobs may queue): TALKBENCH_CLUSTER_WAIT_S, default 1 h."""
    return float(os.environ.get("TALKBENCH_CLUSTER_WAIT_S", 3600))


class SingleThreadPlugin(WorkerPlugin):
    """Worker plugin: one thread for OpenMP/BLAS/OpenCV inside every worker, including late joiners."""

    def setup(self, worker: Any) -> None:
        limit_threads()


class PinPlugin(WorkerPlugin):
    """Worker plugin: LocalCluster worker ``i`` (its name) runs on ``cpus[i]``; a restarted worker
    keeps its name, so it is pinned again."""

    def __init__(self, cpus: list[int]) -> None:
        self.cpus = cpus

    def setup(self, worker: Any) -> None:
        if isinstance(worker.name, int):
            pin_to_cpu(self.cpus[worker.name % len(self.cpus)])


def n_workers(client: Any) -> int:
    """Workers the client's scheduler knows now (at least 1)."""
    return max(1, len(client.scheduler_info().get("workers", {})))
