"""The distributor on real Dask clusters: a LocalCluster it starts, and an existing scheduler it joins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from talkbench.errors import ConfigError
from talkbench.pipelines.distributor import dask_client, local_workers, n_workers


def _worker_env() -> tuple[str | None, int]:
    return os.environ.get("OMP_NUM_THREADS"), os.getpid()


def _mark_teardown(folder: str) -> None:
    Path(folder, f"closed-{os.getpid()}").touch()


def test_local_cluster_single_threaded_workers_and_teardown(tmp_path):
    with dask_client(1, teardown=lambda: _mark_teardown(str(tmp_path))) as client:
        client.wait_for_workers(1)
        assert n_workers(client) == 1
        (omp, pid), = client.run(_worker_env).values()
        assert omp == "1" and pid != os.getpid()  # a worker process, one BLAS/OpenMP thread
        assert client.submit(sum, [1, 2, 3]).result() == 6
    assert [p.name for p in tmp_path.iterdir()] == [f"closed-{pid}"]  # teardown ran on the worker


def test_existing_scheduler_is_joined_not_owned():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with dask_client(scheduler=cluster.scheduler_address) as client:
            client.wait_for_workers(1)
            (omp, _), = client.run(_worker_env).values()
            assert omp == "1"  # the plugin reached a worker we did not start
        with Client(cluster) as other:  # leaving dask_client closed only its client, not the cluster
            assert other.submit(len, "abc").result() == 3


def test_local_target_names_a_local_cluster_of_n_workers():
    assert local_workers("local:3", 1) == (3, None) and local_workers("local", 2) == (2, None)
    assert local_workers("tcp://h:8786", 2) == (2, "tcp://h:8786") and local_workers(None) == (None, None)
    with pytest.raises(ConfigError, match="local:N"):
        local_workers("local:zero")
    with dask_client(scheduler="local:1") as client:  # what `bench run --scheduler local:1` gets
        assert n_workers(client) == 1 and client.submit(sum, [1, 2]).result() == 3
