"""What every submission kind shares: the per-clip error kinds, the Submission protocol, frame checks."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from talkbench.benchmark.tasks import TaskItem, TaskManifest
from talkbench.errors import ClipError, TalkbenchError
from talkbench.io import atomic_path, sha256_file

#: Every per-clip error a submission can produce, with what it means.
SUBMISSION_ERROR_KINDS: dict[str, str] = {
    "missing": "the submission has no video for this clip",
    "unreadable": "the video cannot be decoded (not a video, empty file, truncated...)",
    "unsafe_path": "the file is a link or path that leads outside the submission folder",
    "not_a_file": "the clip's entry is a directory, FIFO or device, not a regular file (never opened)",
    "permission_denied": "the clip's file cannot be read with the harness user's rights",
    "too_large": "frames x pixels above the cap (an average frame over 1920x1088): refused before decoding",
    "not_video": "a still image (PNG, JPEG...) named like a video",
    "empty": "no frames, or frames of zero size",
    "nan_frames": "the generated frames contain NaN or infinite values",
    "bad_output": "the generator returned something that is not (T, H, W, 3) uint8 frames",
    "wrong_length": "the frame count differs from the task's by more than the tolerance",
    "generate_failed": "the adapter raised an exception for this clip",
    "no_face": "no face was found on any generated frame",
    "preprocess_failed": "face processing of the generated frames failed",
    "reference_failed": "the task's own ground truth / reference video could not be processed (not the "
    "submission's fault; the same for every submission)",
}

#: Every submission-level refusal (the whole submission is not scored), with what it means.
SUBMISSION_PROBLEM_KINDS: dict[str, str] = {
    "archive_too_large": "the archive's extracted size passed the cap (counted while extracting)",
    "archive_too_many_members": "the archive holds more members than the cap",
    "archive_ratio": "a member (or the archive) expands more than the compression-ratio cap: a zip bomb",
    "archive_conflict": "a member needs a folder where another member is a file (or the reverse)",
    "archive_duplicate": "two members have the same name (one would silently overwrite the other)",
    "meta_too_large": "submission.yaml is larger than the cap",
    "meta_not_scalar": "a submission.yaml value is a list, mapping or alias structure, not a scalar",
    "meta_value_too_long": "a submission.yaml value is longer than the cap",
    "bad_name": "the display name (run name and tag in MLflow) is too long or holds control characters",
}
#: caps (see the README's "Security and limits")
MAX_META_BYTES = 64 * 1024
MAX_META_VALUE_CHARS = 1000
MAX_NAME_CHARS = 200


class SubmissionError(TalkbenchError):
    """The whole submission is refused; ``kind`` is one of :data:`SUBMISSION_PROBLEM_KINDS`."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{message} [{kind}]")
        self.kind = kind


def check_display_name(name: str) -> str:
    """A name fit for an MLflow run name and tag: at most MAX_NAME_CHARS, no control characters."""
    if len(name) > MAX_NAME_CHARS:
        raise SubmissionError("bad_name", f"the submission name is {len(name)} characters, above the cap of "
                              f"{MAX_NAME_CHARS} (give a shorter one with --name)")
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in name):
        raise SubmissionError("bad_name", f"the submission name {name[:60]!r} holds control characters")
    return name


VIDEO_SUFFIX = ".mp4"
#: a clip's optional predicted-AU sidecar beside its video (``<clip_id>.aus.csv``): a header ``frame,AU25,...``
#: and one row per frame of the model's own Audio-to-AU intensities (0-5), scored by ``au-audio-consistency``
AUS_SUFFIX = ".aus.csv"
META_FILE = "submission.yaml"
META_KEYS = ("model", "version", "url", "licence", "license", "description", "authors")


@dataclass
class ItemInputs:
    """What a submission may use to make one clip. ``ground_truth`` is only for the built-ins."""

    item: TaskItem
    reference_image: np.ndarray  # (H, W, 3) uint8: the reference clip's identity frame, source size
    ground_truth: Callable[[], np.ndarray] | None  # lazily decoded GT frames (paired tasks)
    #: personalised tasks: the clip's fine-tuning frames (their audio is ``item.personal_audio``)
    personal_frames: np.ndarray | None = None
    #: dubbing tasks: the target frames with the lower face zeroed, and the (T, H, W) bool masks
    dubbing_frames: np.ndarray | None = None
    dubbing_mask: np.ndarray | None = None


@dataclass
class ClipOutput:
    """One clip's generated frames (conformed to the task length) or the reason there are none."""

    inputs: ItemInputs
    frames: np.ndarray | None = None
    error: ClipError | None = None
    info: dict[str, Any] = field(default_factory=dict)  # per-clip facts worth recording
    #: the generator's own Audio-to-AU prediction (AU -> (T,) float32, conformed to the task length), if any
    predicted_aus: dict[str, np.ndarray] | None = None


@dataclass
class Submission:
    """Base class: ``outputs(inputs)`` yields one :class:`ClipOutput` per task item, in task order."""

    spec: str
    name: str
    identity: dict[str, Any] = field(default_factory=dict)  # what the identity hash is made of
    meta: dict[str, Any] = field(default_factory=dict)  # submission.yaml / adapter attributes
    keeps_videos: bool = True  # False for folders: the videos already exist
    problems: list[dict[str, str]] = field(default_factory=list)  # submission-level findings (extra files)

    @property
    def identity_hash(self) -> str:
        # YAML, not io.stable_hash: this hash keys every stored benchmark run (duplicate check, MLflow);
        # changing its serialisation would orphan existing runs, so it stays byte-identical
        blob = yaml.safe_dump(self.identity, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def setup(self, task: TaskManifest) -> None:
        """Check the submission against the task before any clip is scored."""

    def outputs(self, inputs: Iterator[ItemInputs]) -> Iterator[ClipOutput]:
        raise NotImplementedError

    def close(self) -> None:
        """Release temporary files."""


# --------------------------------------------------------------------------- frame checks


def check_frames(frames: Any, expected: int, tolerance: int) -> np.ndarray:
    """Validate generated frames and conform them to ``expected`` length, or raise ClipError.

    Within ``tolerance`` frames the output is trimmed or padded with its last frame (encoders and
    resampling often differ by one frame); beyond it the clip fails as ``wrong_length``.
    """
    try:
        arr = np.asarray(frames)
    except Exception as e:  # noqa: BLE001 - any conversion failure is the submission's fault
        raise ClipError("bad_output", f"frames cannot be converted to an array: {e}") from None
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ClipError("bad_output", f"frames must be (T, H, W, 3), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ClipError("empty", f"no frames or zero-size frames: shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=(1, 2, 3)).sum())
        raise ClipError("nan_frames", f"{bad} of {arr.shape[0]} frames contain NaN or inf values")
    if arr.dtype != np.uint8:
        raise ClipError("bad_output", f"frames must be uint8 RGB in 0..255, got dtype {arr.dtype}")
    n = arr.shape[0]
    if abs(n - expected) > tolerance:
        raise ClipError("wrong_length", f"{n} frames, the task needs {expected} (tolerance {tolerance})")
    if n > expected:
        arr = arr[:expected]
    elif n < expected:
        arr = np.concatenate([arr, np.repeat(arr[-1:], expected - n, axis=0)])
    return arr


file_sha256 = sha256_file  # the submissions' name for it (re-exported)


def check_predicted_aus(aus: Any, n_submitted: int, expected: int) -> dict[str, np.ndarray]:
    """Validate a generator's predicted AUs and conform them to ``expected`` frames like its frames.

    One finite value per submitted frame and AU (``check_frames`` already bounded the length difference);
    trimmed or padded with the last value exactly as the frames are. Anything else is ``bad_output``.
    """
    if not isinstance(aus, dict) or not aus:
        raise ClipError("bad_output", f"predicted AUs must be a non-empty mapping AU -> per-frame values, got "
                        f"{type(aus).__name__}")
    out: dict[str, np.ndarray] = {}
    for au, values in aus.items():
        try:
            arr = np.asarray(values, np.float64).reshape(-1)
        except (TypeError, ValueError) as e:
            raise ClipError("bad_output", f"predicted {au}: not numbers: {e}") from None
        if len(arr) != n_submitted:
            raise ClipError("bad_output", f"predicted {au}: {len(arr)} values for {n_submitted} frames")
        if not np.isfinite(arr).all():
            raise ClipError("bad_output", f"predicted {au}: NaN or infinite values")
        if len(arr) > expected:
            arr = arr[:expected]
        elif len(arr) < expected:
            arr = np.concatenate([arr, np.repeat(arr[-1:], expected - len(arr))])
        out[str(au)] = arr.astype(np.float32)
    return out


def write_au_sidecar(path: Path, aus: dict[str, np.ndarray]) -> Path:
    """``<clip>.aus.csv``: ``frame,AU..`` header, one row per frame (the form :func:`read_au_sidecar` reads)."""
    names = sorted(aus)
    table = np.column_stack([np.arange(len(aus[names[0]]))] + [np.asarray(aus[a], np.float64) for a in names])
    with atomic_path(path) as tmp:  # a crash mid-write leaves no half sidecar for a re-score to read
        np.savetxt(tmp, table, delimiter=",", header=",".join(["frame", *names]), comments="",
                   fmt=["%d"] + ["%.6g"] * len(names))
    return path


#: a sidecar larger than this is refused unread (10 AUs x 100k frames is well below)
MAX_AUS_BYTES = 16 * 1024 * 1024


def read_au_sidecar(path: Path) -> dict[str, np.ndarray]:
    """Read ``<clip>.aus.csv``; a malformed file is a ``bad_output`` clip error naming the file."""
    if path.stat().st_size > MAX_AUS_BYTES:
        raise ClipError("bad_output", f"{path.name}: {path.stat().st_size} bytes, above the cap of {MAX_AUS_BYTES}")
    try:
        with path.open(encoding="utf-8") as f:
            header = [h.strip() for h in f.readline().split(",")]
            table = np.loadtxt(f, delimiter=",", ndmin=2)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ClipError("bad_output", f"{path.name}: not a CSV of numbers: {e}") from None
    if len(header) < 2 or header[0] != "frame" or table.shape[1] != len(header):
        raise ClipError("bad_output", f"{path.name}: the header must be frame,AU..,AU.. with one column per AU")
    if not np.array_equal(table[:, 0], np.arange(len(table))):
        raise ClipError("bad_output", f"{path.name}: the frame column must count 0, 1, 2, ...")
    return {au: table[:, i + 1] for i, au in enumerate(header[1:])}
