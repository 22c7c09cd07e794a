"""Submissions (a package by kind: ``base``, ``archive``, ``folder``, ``adapter``, ``builtins``,
``spec``): where generated videos come from, and checks that turn bad output into per-clip errors.

Two ways in (GUIDE §4):

- **outputs first**: a folder (or a .zip/.tar archive) holding ``<clip_id>.mp4`` per task clip, any
  frame size, any frame rate (resampled to the task fps by timestamps), optional ``submission.yaml``
  (model, version, url, licence);
- **adapter**: a class with ``generate(reference_image, audio_16k, fps) -> frames`` (optional
  ``setup()``, optional ``generate_batch(references, audios, fps)`` with ``batch_size``), given as
  ``module:Class`` (``?key=value`` become constructor arguments), ``checkpoint:CKPT`` (talkbench's own
  generators), or a registered name; the harness runs it and keeps the videos.

Built-in references make the metrics testable: ``builtin:ground-truth`` (upper bound),
``builtin:static-frame`` (the reference frame repeated: no motion) and ``builtin:shifted?k=5`` (the
ground-truth frames delayed by k frames against the audio: out of sync).

Every submission has an *identity hash* (its files' hashes, or its spec + code/checkpoint hash), which
with the task hash makes the run key that keeps a leaderboard free of silent duplicates.

Policy for the driving audio: metrics always use the TASK's audio (the signal the model was asked to
follow). A submission video's own audio track is only checked (its length is recorded per clip), so a
submission cannot re-time the audio to look in sync.
"""

from talkbench.benchmark.submissions.adapter import AdapterSubmission
from talkbench.benchmark.submissions.archive import extract_archive
from talkbench.benchmark.submissions.base import (
    META_FILE,
    META_KEYS,
    SUBMISSION_ERROR_KINDS,
    SUBMISSION_PROBLEM_KINDS,
    VIDEO_SUFFIX,
    ClipOutput,
    ItemInputs,
    Submission,
    SubmissionError,
    check_frames,
    file_sha256,
)
from talkbench.benchmark.submissions.builtins import (
    BUILTINS,
    BuiltinSubmission,
    GroundTruth,
    Shifted,
    StaticFrame,
)
from talkbench.benchmark.submissions.folder import FolderSubmission
from talkbench.benchmark.submissions.spec import SUBMISSION_KINDS, load_submission, parse_spec

__all__ = [
    "BUILTINS", "META_FILE", "META_KEYS", "SUBMISSION_ERROR_KINDS", "SUBMISSION_KINDS", "SUBMISSION_PROBLEM_KINDS",
    "VIDEO_SUFFIX", "SubmissionError",
    "AdapterSubmission", "BuiltinSubmission", "ClipOutput", "FolderSubmission", "GroundTruth", "ItemInputs",
    "Shifted", "StaticFrame", "Submission", "check_frames", "extract_archive", "file_sha256", "load_submission",
    "parse_spec",
]
