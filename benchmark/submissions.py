"""Submissions: where generated videos come from, and checks that turn bad output into per-clip errors.

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

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import yaml

from talkbench.benchmark.tasks import TaskItem, TaskManifest
from talkbench.errors import ClipError, TalkbenchError
from talkbench.registry import Registry

#: Every per-clip error a submission can produce, with what it means.
SUBMISSION_ERROR_KINDS: dict[str, str] = {
    "missing": "the submission has no video for this clip",
    "unreadable": "the video cannot be decoded (not a video, empty file, truncated...)",
    "unsafe_path": "the file is a link or path that leads outside the submission folder",
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

VIDEO_SUFFIX = ".mp4"
META_FILE = "submission.yaml"
META_KEYS = ("model", "version", "url", "licence", "license", "description", "authors")


@dataclass
class ItemInputs:
    """What a submission may use to make one clip. ``ground_truth`` is only for the built-ins."""

    item: TaskItem
    reference_image: np.ndarray  # (H, W, 3) uint8: the reference clip's identity frame, source size
    ground_truth: Callable[[], np.ndarray] | None  # lazily decoded GT frames (paired tasks)


@dataclass
class ClipOutput:
    """One clip's generated frames (conformed to the task length) or the reason there are none."""

    inputs: ItemInputs
    frames: np.ndarray | None = None
    error: ClipError | None = None
    info: dict[str, Any] = field(default_factory=dict)  # per-clip facts worth recording


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


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- outputs first


def _safe_member_name(name: str) -> str | None:
    """The archive member's relative path if it stays inside the archive root, else None."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts or ":" in p.parts[0]:
        return None
    return str(p)


def extract_archive(archive: Path, dest: Path) -> list[str]:
    """Extract the regular files of a .zip/.tar(.gz) safely; return the refused members.

    Refused (never written): absolute names, names with '..', links, devices. This is stricter than
    tarfile's "data" filter because symlinks inside the folder are not needed by any submission.
    """
    refused = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                rel = _safe_member_name(info.filename)
                is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                if rel is None or is_link:
                    refused.append(info.filename)
                    continue
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
        return refused
    try:
        members = _tar_members(archive, dest)
    except tarfile.TarError as e:
        raise TalkbenchError(f"submission archive {archive} cannot be read: {e}") from None
    refused.extend(members)
    return refused


def _tar_members(archive: Path, dest: Path) -> list[str]:
    refused = []
    with tarfile.open(archive) as tf:
        for member in tf.getmembers():
            if member.isdir():
                continue
            rel = _safe_member_name(member.name)
            src = tf.extractfile(member) if rel is not None and member.isfile() else None
            if src is None:
                refused.append(member.name)
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    return refused


def _is_archive(path: Path) -> bool:
    return path.is_file() and (path.suffix == ".zip" or ".tar" in path.suffixes or path.suffix == ".tgz")


class FolderSubmission(Submission):
    """``<clip_id>.mp4`` files in a folder (or in the single top folder of an archive)."""

    def __init__(self, path: str | Path, name: str | None = None, length_tolerance: int = 1):
        src = Path(path)
        if not src.exists():
            raise TalkbenchError(f"submission not found: {src}")
        self._tmp: tempfile.TemporaryDirectory | None = None
        refused: list[str] = []
        if _is_archive(src):
            self._tmp = tempfile.TemporaryDirectory(prefix="talkbench-sub-")
            refused = extract_archive(src, Path(self._tmp.name))
            root = Path(self._tmp.name)
            entries = list(root.iterdir())
            if len(entries) == 1 and entries[0].is_dir():  # archive of a folder
                root = entries[0]
        elif src.is_dir():
            root = src
        else:
            raise TalkbenchError(f"submission {src} is neither a folder nor a .zip/.tar archive")
        self.root = root.resolve()
        self.length_tolerance = length_tolerance
        meta = self._read_meta()
        files = sorted(p for p in self.root.rglob("*") if p.is_file() or p.is_symlink())
        identity = {"kind": "folder", "files": {str(p.relative_to(self.root)): self._file_id(p) for p in files}}
        display = name or meta.get("model") or src.name
        if meta.get("version") and not name:
            display = f"{display} {meta['version']}"
        super().__init__(spec=str(src), name=str(display), identity=identity, meta=meta, keeps_videos=False)
        self.problems = [{"file": r, "error_kind": "unsafe_path",
                          "error": "archive member refused (absolute path, '..' or a link)"} for r in refused]

    def _file_id(self, p: Path) -> str:
        if p.is_symlink() or not p.resolve().is_relative_to(self.root):
            return f"link->{p.readlink() if p.is_symlink() else p.resolve()}"
        return file_sha256(p)

    def _read_meta(self) -> dict[str, Any]:
        path = self.root / META_FILE
        if not path.is_file():
            return {}
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise TalkbenchError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise TalkbenchError(f"{path}: must be a mapping of {', '.join(META_KEYS)}")
        return {str(k): str(v) for k, v in data.items() if k in META_KEYS}

    def setup(self, task: TaskManifest) -> None:
        wanted = {c.clip_id for c in task.clips}
        for p in sorted(self.root.iterdir()):
            if p.name == META_FILE or p.is_dir():
                continue
            if p.suffix != VIDEO_SUFFIX:
                self.problems.append({"file": p.name, "error_kind": "extra",
                                      "error": f"not a {VIDEO_SUFFIX} file; ignored"})
            elif p.stem not in wanted:
                self.problems.append({"file": p.name, "error_kind": "extra",
                                      "error": f"no clip {p.stem!r} in task {task.ref}; ignored"})

    def video_path(self, clip_id: str) -> Path:
        """The clip's video, refusing anything that resolves outside the folder."""
        if _safe_member_name(clip_id) is None or "/" in clip_id:
            raise ClipError("unsafe_path", f"clip id {clip_id!r} is not a plain file name")
        path = self.root / f"{clip_id}{VIDEO_SUFFIX}"
        if not path.exists() and not path.is_symlink():
            raise ClipError("missing", f"no {path.name} in the submission")
        if path.is_symlink() or not path.resolve().is_relative_to(self.root):
            raise ClipError("unsafe_path", f"{path.name} is a link (to {path.resolve()}); links are refused")
        return path

    def read(self, item: TaskItem) -> tuple[np.ndarray, dict[str, Any]]:
        from talkbench.media import read_av

        path = self.video_path(item.clip_id)
        try:
            decoded = read_av(path, fps=item.fps, sample_rate=item.sample_rate)
        except ClipError as e:
            raise ClipError("unreadable", f"{path.name}: {e.kind}: {e.message}") from None
        except Exception as e:  # noqa: BLE001 - a decoder failure is the submission's, not ours
            raise ClipError("unreadable", f"{path.name}: {type(e).__name__}: {e}") from None
        info: dict[str, Any] = {"video_audio": decoded.audio is not None}
        if decoded.audio is not None:
            info["video_audio_diff_s"] = round(len(decoded.audio) / item.sample_rate - len(item.audio)
                                               / item.sample_rate, 4)
        return decoded.frames, info

    def outputs(self, inputs: Iterator[ItemInputs]) -> Iterator[ClipOutput]:
        for inp in inputs:
            out = ClipOutput(inp)
            try:
                frames, out.info = self.read(inp.item)
                out.info["n_frames_submitted"] = int(len(frames))
                out.frames = check_frames(frames, inp.item.clip.n_frames, self.length_tolerance)
            except ClipError as e:
                out.error = e
            yield out

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


# --------------------------------------------------------------------------- adapters


class AdapterSubmission(Submission):
    """Runs a generator object over the task: ``generate(reference_image, audio_16k, fps) -> frames``."""

    def __init__(self, obj: Any, spec: str, name: str | None, identity: dict[str, Any],
                 length_tolerance: int = 1):
        methods = ("generate", "generate_batch", "generate_item")
        if not any(callable(getattr(obj, m, None)) for m in methods):
            raise TalkbenchError(f"submission {spec!r}: {type(obj).__name__} has no generate() method")
        self.obj = obj
        self.length_tolerance = length_tolerance
        meta = {k: str(getattr(obj, k)) for k in META_KEYS if isinstance(getattr(obj, k, None), str | int | float)}
        super().__init__(spec=spec, name=name or meta.get("model") or spec, identity=identity, meta=meta)

    def setup(self, task: TaskManifest) -> None:
        setup = getattr(self.obj, "setup", None)
        if callable(setup):
            params = inspect.signature(setup).parameters
            setup(task) if params else setup()

    def outputs(self, inputs: Iterator[ItemInputs]) -> Iterator[ClipOutput]:
        batch_fn = getattr(self.obj, "generate_batch", None)
        size = int(getattr(self.obj, "batch_size", 1) or 1) if callable(batch_fn) else 1
        batch: list[ItemInputs] = []
        for inp in inputs:
            batch.append(inp)
            if len(batch) >= size:
                yield from self._run(batch, batch_fn if size > 1 else None)
                batch = []
        if batch:
            yield from self._run(batch, batch_fn if size > 1 else None)

    def _run(self, batch: list[ItemInputs], batch_fn: Callable | None) -> Iterator[ClipOutput]:
        if batch_fn is not None:
            try:
                results = list(batch_fn([b.reference_image for b in batch], [b.item.audio for b in batch],
                                        batch[0].item.fps))
                if len(results) != len(batch):
                    raise ValueError(f"generate_batch returned {len(results)} outputs for {len(batch)} inputs")
            except Exception as e:  # noqa: BLE001 - the adapter's failure is recorded per clip
                results = [ClipError("generate_failed", f"{type(e).__name__}: {e}")] * len(batch)
        else:
            results = []
            for b in batch:
                try:
                    results.append(self.generate_one(b))
                except ClipError as e:
                    results.append(e)
                except Exception as e:  # noqa: BLE001
                    results.append(ClipError("generate_failed", f"{type(e).__name__}: {e}"))
        for b, r in zip(batch, results, strict=True):
            out = ClipOutput(b)
            if isinstance(r, ClipError):
                out.error = r
            else:
                try:
                    out.info["n_frames_submitted"] = int(len(r))
                    out.frames = check_frames(r, b.item.clip.n_frames, self.length_tolerance)
                except ClipError as e:
                    out.error = e
                except TypeError as e:
                    out.error = ClipError("bad_output", f"{type(e).__name__}: {e}")
            yield out

    def generate_one(self, inp: ItemInputs) -> Any:
        return self.obj.generate(inp.reference_image, inp.item.audio, inp.item.fps)


# --------------------------------------------------------------------------- built-in references

#: name -> factory(**options) of objects with ``generate_item(inputs) -> frames``
BUILTINS: Registry[type] = Registry("built-in submission")


@BUILTINS.register("ground-truth")
class GroundTruth:
    """The real video: the upper bound of every full-reference metric."""

    version = "1"

    def generate_item(self, inp: ItemInputs) -> np.ndarray:
        if inp.ground_truth is None:
            raise TalkbenchError("builtin:ground-truth needs a paired task (unpaired tasks have no ground truth)")
        return inp.ground_truth()


@BUILTINS.register("static-frame")
class StaticFrame:
    """The reference frame repeated for the whole clip: a face that never moves."""

    version = "1"

    def generate_item(self, inp: ItemInputs) -> np.ndarray:
        return np.repeat(inp.reference_image[None], inp.item.clip.n_frames, axis=0)


@BUILTINS.register("shifted")
class Shifted:
    """Ground-truth frames delayed by ``k`` frames against the audio (video lags audio for k > 0).

    Frame t shows ground-truth frame t - k; the first k frames repeat frame 0 (for k < 0 the last
    frames repeat the final frame), so the length stays the task's.
    """

    version = "1"

    def __init__(self, k: int = 5):
        self.k = int(k)

    def generate_item(self, inp: ItemInputs) -> np.ndarray:
        if inp.ground_truth is None:
            raise TalkbenchError("builtin:shifted needs a paired task (it delays the ground truth)")
        gt = inp.ground_truth()
        idx = np.clip(np.arange(len(gt)) - self.k, 0, len(gt) - 1)
        return gt[idx]


class BuiltinSubmission(AdapterSubmission):
    def generate_one(self, inp: ItemInputs) -> Any:
        return self.obj.generate_item(inp)

    def setup(self, task: TaskManifest) -> None:
        if not task.paired and not isinstance(self.obj, StaticFrame):
            raise TalkbenchError(f"{self.spec} needs a paired task; {task.ref} is {task.kind}")


# --------------------------------------------------------------------------- spec parsing


def parse_spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``kind:target?k=v&k2=v2`` -> (kind, target, options). Values are parsed as YAML scalars."""
    base, _, query = spec.partition("?")
    options: dict[str, Any] = {}
    for part in filter(None, query.split("&")):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise TalkbenchError(f"submission {spec!r}: option {part!r} must look like key=value")
        options[key] = yaml.safe_load(value) if value else ""
    kind, sep, target = base.partition(":")
    if not sep:
        return "", base, options
    return kind, target, options


def _canonical(kind: str, target: str, options: dict[str, Any]) -> str:
    query = "&".join(f"{k}={options[k]}" for k in sorted(options))
    return f"{kind}:{target}" + (f"?{query}" if query else "")


MODULE_RE = re.compile(r"^[A-Za-z_][\w.]*$")
IDENT_RE = re.compile(r"^[A-Za-z_]\w*$")


def load_submission(spec: str, name: str | None = None, length_tolerance: int = 1) -> Submission:
    """Turn a command-line spec into a Submission (see the module docstring for the forms).

    Order: ``builtin:`` / ``checkpoint:`` prefixes, then an existing path (folder or archive), then
    ``module:Class``, then a bare built-in name.
    """
    kind, target, options = parse_spec(spec)
    base = spec.partition("?")[0]
    if kind == "builtin" or (not kind and target in BUILTINS):
        return _builtin_submission(target, options, spec, name, length_tolerance)
    if kind == "checkpoint":
        ckpt = Path(target)
        if not ckpt.exists():
            raise TalkbenchError(f"checkpoint not found: {ckpt}")
        from talkbench.models.generate import CheckpointGenerator  # lazy: pulls torch

        try:
            obj = CheckpointGenerator(str(ckpt), **options)
        except TypeError as e:
            raise TalkbenchError(f"submission {spec!r}: bad option(s) {options}: {e}") from None
        files = [ckpt] if ckpt.is_file() else sorted(p for p in ckpt.rglob("*") if p.is_file())
        identity = {"kind": "checkpoint", "options": options,
                    "files": {str(p.relative_to(ckpt.parent)): file_sha256(p) for p in files}}
        return AdapterSubmission(obj, spec, name or f"checkpoint:{ckpt.name}", identity, length_tolerance)
    if Path(base).exists():
        return FolderSubmission(base, name, length_tolerance)
    if kind and MODULE_RE.match(kind) and IDENT_RE.match(target):
        return _module_submission(kind, target, options, spec, name, length_tolerance)
    known = ", ".join(f"builtin:{n}" for n in BUILTINS.names())
    raise TalkbenchError(f"submission {spec!r}: no such folder or archive, and not a built-in ({known}), "
                         "checkpoint:CKPT or module:Class")


def _builtin_submission(target: str, options: dict[str, Any], spec: str, name: str | None,
                        length_tolerance: int) -> Submission:
    cls = BUILTINS.get(target)
    try:
        obj = cls(**options)
    except (TypeError, ValueError) as e:
        raise TalkbenchError(f"submission {spec!r}: bad option(s) {options}: {e}") from None
    defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()
                if p.default is not inspect.Parameter.empty}
    canonical = _canonical("builtin", target, {**defaults, **options})
    identity = {"kind": "builtin", "spec": canonical, "version": cls.version}
    return BuiltinSubmission(obj, canonical, name or canonical, identity, length_tolerance)


def _module_submission(module: str, cls_name: str, options: dict[str, Any], spec: str, name: str | None,
                       length_tolerance: int) -> Submission:
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise TalkbenchError(f"submission {spec!r}: cannot import module {module!r}: {e}") from None
    cls = getattr(mod, cls_name, None)
    if cls is None:
        raise TalkbenchError(f"submission {spec!r}: module {module!r} has no {cls_name!r}")
    try:
        obj = cls(**options)
    except TypeError as e:
        raise TalkbenchError(f"submission {spec!r}: cannot construct {cls_name} with {options}: {e}") from None
    src = getattr(mod, "__file__", None)
    identity = {"kind": "module", "class": f"{module}:{cls_name}", "options": options,
                "version": str(getattr(cls, "version", "")),
                "source_sha256": file_sha256(Path(src)) if src and Path(src).is_file() else None}
    return AdapterSubmission(obj, _canonical(module, cls_name, options), name, identity, length_tolerance)
