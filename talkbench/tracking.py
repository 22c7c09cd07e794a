"""Where MLflow runs go: one tracking-URI rule for training and the benchmark.

MLflow 3.x defaults to SQLite and deprecates the ``./mlruns`` file store (GUIDE §5), so we always use an
explicit SQLite URI and an explicit artifact location unless ``MLFLOW_TRACKING_URI`` points elsewhere
(e.g. a team server). mlflow is imported lazily so ``talkbench --help`` stays light.
"""

from __future__ import annotations

import os
from pathlib import Path

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

    setup()
    client = MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = artifact_location or f"{artifact_root().rstrip('/')}/{name}"
    try:
        return client.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:  # created concurrently by another process
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id
