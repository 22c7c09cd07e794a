"""Errors shared by the pipeline, the models and the benchmark.

Two kinds matter to users: a *job* error stops the command with one clear line (bad config, missing
input folder); a *clip* error is recorded against one clip and the job goes on.
"""

from __future__ import annotations


class TalkbenchError(Exception):
    """A job-level error: the CLI prints its message on one line and exits non-zero."""


class ConfigError(TalkbenchError):
    """A configuration value is missing, unknown or out of range."""


class WeightsMissingError(TalkbenchError):
    """Pretrained weights are not in the local weights store; the message says how to get them."""


class ClipError(Exception):
    """One clip cannot be processed. ``kind`` is a stable machine-readable ``error_kind``."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __reduce__(self):  # keep kind when pickled across Dask workers
        return (type(self), (self.kind, self.message))
