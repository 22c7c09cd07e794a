"""Outputs-first submissions: ``<clip_id>.mp4`` files in a folder or an archive of one."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from talkbench.benchmark.submissions.archive import _is_archive, _safe_member_name, extract_archive
from talkbench.benchmark.submissions.base import (
    AUS_SUFFIX,
    MAX_META_BYTES,
    MAX_META_VALUE_CHARS,
    META_FILE,
    META_KEYS,
    VIDEO_SUFFIX,
    ClipOutput,
    ItemInputs,
    Submission,
    SubmissionError,
    check_frames,
    check_predicted_aus,
    file_sha256,
    read_au_sidecar,
)
from talkbench.benchmark.tasks import TaskItem, TaskManifest
from talkbench.errors import ClipError, TalkbenchError

#: a submission frame larger than this many pixels (on average) is refused before decoding: 1080p fits
MAX_FRAME_PIXELS = 1920 * 1088
#: read_av error kinds a submission row keeps as they are (the rest become ``unreadable``)
PASSED_ON_KINDS = ("not_a_file", "permission_denied", "too_large")


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
            try:
                refused = extract_archive(src, Path(self._tmp.name))
            except BaseException:
                self.close()  # nothing of a refused archive stays on disk
                raise
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
        try:
            meta = self._read_meta()
        except BaseException:
            self.close()
            raise
        files = sorted(p for p in self.root.rglob("*") if p.is_file() or p.is_symlink())  # FIFOs: not read
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
        try:
            return file_sha256(p)
        except OSError as e:  # a FIFO, a device, an unreadable file: identified, not read
            return f"unreadable:{e.strerror}"

    def _read_meta(self) -> dict[str, Any]:
        """``submission.yaml``: at most MAX_META_BYTES, a flat mapping of scalars (so an alias bomb,
        whose values are nested lists, is refused at once instead of being expanded into strings)."""
        path = self.root / META_FILE
        if not path.is_file():
            return {}
        size = path.stat().st_size
        if size > MAX_META_BYTES:
            raise SubmissionError("meta_too_large", f"{path.name}: {size} bytes, above the cap of {MAX_META_BYTES}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace")) or {}
        except yaml.YAMLError as e:
            raise TalkbenchError(f"{path.name}: not valid YAML: {' '.join(str(e).split())}") from None
        except RecursionError:
            raise SubmissionError("meta_not_scalar", f"{path.name}: nested too deeply") from None
        if not isinstance(data, dict):
            raise TalkbenchError(f"{path.name}: must be a mapping of {', '.join(META_KEYS)}")
        meta = {}
        for k, v in data.items():
            if not isinstance(k, str) or not isinstance(v, str | int | float | bool | None):
                raise SubmissionError("meta_not_scalar", f"{path.name}: {str(k)[:40]!r} must map to a single "
                                      f"value (text or number), not a {type(v).__name__}")
            if k in META_KEYS:
                text = "" if v is None else str(v)
                if len(text) > MAX_META_VALUE_CHARS:
                    raise SubmissionError("meta_value_too_long", f"{path.name}: {k} is {len(text)} characters, "
                                          f"above the cap of {MAX_META_VALUE_CHARS}")
                meta[k] = text
        return meta

    def setup(self, task: TaskManifest) -> None:
        wanted = {c.clip_id for c in task.clips}
        for p in sorted(self.root.iterdir()):
            if p.name == META_FILE or p.is_dir():
                continue
            if p.name.endswith(AUS_SUFFIX):  # predicted AUs beside a clip's video
                if p.name[: -len(AUS_SUFFIX)] not in wanted:
                    self.problems.append({"file": p.name, "error_kind": "extra",
                                          "error": f"no clip {p.name[: -len(AUS_SUFFIX)]!r} in task {task.ref}; "
                                          "ignored"})
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

    def predicted_aus(self, clip_id: str) -> dict[str, np.ndarray] | None:
        """The clip's ``<clip_id>.aus.csv`` sidecar (the generator's own predicted AUs), None without one."""
        path = self.root / f"{clip_id}{AUS_SUFFIX}"
        if not path.exists() and not path.is_symlink():
            return None
        if path.is_symlink() or not path.resolve().is_relative_to(self.root) or not path.is_file():
            raise ClipError("unsafe_path", f"{path.name} is a link or not a regular file; refused")
        return read_au_sidecar(path)

    def read(self, item: TaskItem) -> tuple[np.ndarray, dict[str, Any]]:
        from talkbench.media import StillImageError, read_av

        path = self.video_path(item.clip_id)
        # bounded work: never decode more than the task needs plus the tolerance (and one frame to
        # tell "too long" apart), nor frames far larger than any talking-head model makes
        keep = item.clip.n_frames + self.length_tolerance + 1
        try:
            decoded = read_av(path, fps=item.fps, sample_rate=item.sample_rate, max_frames=keep,
                              max_pixels=keep * MAX_FRAME_PIXELS)
        except ClipError as e:
            kind = "not_video" if isinstance(e, StillImageError) else e.kind if e.kind in PASSED_ON_KINDS \
                else "unreadable"
            raise ClipError(kind, f"{path.name}: {e.kind}: {e.message}") from None
        except Exception as e:  # noqa: BLE001 - a decoder failure is the submission's, not ours
            raise ClipError("unreadable", f"{path.name}: {type(e).__name__}: {e}") from None
        if decoded.n_frames >= keep:  # stopped early: report the length the file declares
            found = int(decoded.info["source_duration_s"] * item.fps)
            raise ClipError("wrong_length", f"{found} frames ({decoded.info['source_duration_s']:.1f} s), the task "
                            f"needs {item.clip.n_frames} (tolerance {self.length_tolerance}); decoding stopped at "
                            f"{keep}")
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
                aus = self.predicted_aus(inp.item.clip_id)
                if aus is not None:
                    out.predicted_aus = check_predicted_aus(aus, len(frames), inp.item.clip.n_frames)
                    out.info["predicted_aus"] = ",".join(sorted(out.predicted_aus))
            except ClipError as e:
                out.error = e
            yield out

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
