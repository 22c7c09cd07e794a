"""Dataset adapters: each turns a corpus folder into :class:`ClipRecord` objects.

An adapter is a function ``(root: Path, split_cfg: SplitConfig, **options) -> Iterator[ClipRecord]``
registered by name in ``DATASETS``. Adapters only *list* files (they never open a video, so listing a
large corpus is fast); the decode stage finds bad files, which then become failed rows. A zero-byte or
non-video file with a video extension is therefore still yielded.

Clip ids: the path relative to the corpus root, POSIX separators, extension dropped, ``/`` replaced by
``__`` (``s1/bbaf2n.mpg`` -> ``s1__bbaf2n``). So an id is stable across machines and safe as a file
name component (the benchmark expects ``<clip_id>.mp4``). Non-ASCII names are kept as they are. When two
files differ only by extension (``a.mp4`` and ``a.mov``) both ids get the extension appended
(``a.mp4``, ``a.mov``) so ids stay unique. Records come out sorted by relative path.

No file name can stop a job: a name whose bytes are not UTF-8 (``caf\xe9.mpg``) gets the id
``caf%E9~<8 hex of its bytes>`` and its record keeps the original bytes (``source_path_raw``, the file
is opened by them); ids that would still collide (``a__b.mp4`` next to ``a/b.mp4``) get ``~<hash of the
path>`` appended. Every entry with a video extension is listed, also directories, FIFOs, devices and
dangling links: the decode stage turns each into a failed row (``not_a_file``, ``file_missing``).

Dataset YAML (``configs/datasets/*.yaml``, see :class:`DatasetConfig`)::

    split: {val_fraction: 0.1, test_fraction: 0.1, seed: 0, val_speakers: [], test_speakers: []}
    options: {...adapter keyword options...}
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import Field

from talkbench.config import StrictModel, build, read_yaml
from talkbench.errors import ConfigError, TalkbenchError
from talkbench.pipelines.core import ClipRecord
from talkbench.pipelines.datasets.splits import SplitConfig
from talkbench.registry import Registry

AdapterFn = Callable[..., Iterator[ClipRecord]]

DATASETS: Registry[AdapterFn] = Registry("dataset")

#: containers FFmpeg (PyAV) reads that talking-face corpora come in
VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4", ".m4v", ".mov", ".mkv", ".avi", ".mpg", ".mpeg", ".webm", ".flv", ".wmv", ".ts", ".mts", ".3gp",
)

#: words per clip as ClipRecord carries them: ((start_s, end_s, word), ...)
Words = tuple[tuple[float, float, str], ...]


class DatasetConfig(StrictModel):
    """A dataset YAML: how clips are split, plus the adapter's own keyword options."""

    split: SplitConfig = Field(default_factory=SplitConfig)
    options: dict[str, Any] = Field(default_factory=dict)


def load_dataset_config(path: str | Path | None = None, overrides: list[str] | None = None) -> DatasetConfig:
    """Read a dataset YAML (or the defaults) with ``split.x=...``/``options.x=...`` overrides."""
    data = read_yaml(path) if path else {}
    return build(DatasetConfig, data, overrides, source=str(path) if path else "dataset config")


def list_clips(name: str, root: str | Path, split_cfg: SplitConfig | None = None,
               options: dict[str, Any] | None = None) -> list[ClipRecord]:
    """All records of corpus ``root`` read by adapter ``name``; job-level errors for bad input.

    Unknown adapter options are a :class:`ConfigError` naming the allowed ones (a misspelt option
    must not be silently ignored).
    """
    adapter = DATASETS.get(name)
    root = Path(root)
    if not root.is_dir():
        raise TalkbenchError(f"input folder not found: {root}")
    options = dict(options or {})
    allowed = [p.name for p in inspect.signature(adapter).parameters.values()
               if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        from talkbench.config import did_you_mean

        hints = "".join(did_you_mean(u, allowed) for u in unknown[:1]) if len(unknown) == 1 else ""
        raise ConfigError(f"dataset {name!r}: unknown option(s) {unknown}{hints if 'did you' in hints else ''}; "
                          f"allowed: {allowed}")
    from talkbench.pipelines.datasets.splits import assign_clip_splits

    split_cfg = split_cfg or SplitConfig()
    records = assign_clip_splits([safe_record(r) for r in adapter(root, split_cfg, **options)], split_cfg)
    return [with_paths(r, root) for r in records]


def with_paths(record: ClipRecord, root: Path) -> ClipRecord:
    """Absolute ``source_path`` (workers may run elsewhere) and ``source_rel``, relative to the corpus root.

    ``os.path`` rather than ``Path.resolve``: symlinked files must keep their place under the root.
    """
    import os
    from dataclasses import replace

    path = os.path.abspath(record.source_path)
    rel = os.path.relpath(path, os.path.abspath(root))
    return replace(record, source_path=path, source_rel=None if rel.startswith("..") else Path(rel).as_posix())


def is_hidden(rel: Path) -> bool:
    """Dot-files and dot-folders (``.DS_Store``, ``._x.mp4`` resource forks, ``.cache``) are skipped."""
    return any(part.startswith(".") for part in rel.parts)


def find_files(root: Path, extensions: Iterable[str], skip_dirs: Iterable[str] = ()) -> list[Path]:
    """Files under ``root`` (recursively) whose extension is in ``extensions`` (any case), sorted.

    ``skip_dirs`` are top-level folder names to leave out (e.g. GRID's ``align/``). Symlinks to files
    are followed; hidden entries are skipped. Entries that are not regular files are listed too.
    """
    if isinstance(extensions, str):  # "extensions: .mp4" in a YAML means one extension, not 4 letters
        extensions = [extensions]
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    skip = set(skip_dirs)
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if is_hidden(rel) or (len(rel.parts) > 1 and rel.parts[0] in skip):
            continue
        if path.suffix.lower() in exts:  # not only regular files: every input gets a row
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def clip_ids(root: Path, paths: list[Path]) -> list[str]:
    """Stable, filename-safe ids for ``paths`` (see the module docstring for the rule)."""
    stems = [safe_text(p.relative_to(root).with_suffix("").as_posix().replace("/", "__")) for p in paths]
    counts = Counter(stems)
    ids = [s + safe_text(p.suffix) if counts[s] > 1 else s for s, p in zip(stems, paths, strict=True)]
    counts = Counter(ids)
    # e.g. "a__b.mp4" next to a folder "a" holding "b.mp4": both keep their name plus a path hash
    return [i if counts[i] == 1 else f"{i}~{_short_hash(os.fsencode(p.relative_to(root)))}"
            for i, p in zip(ids, paths, strict=True)]


def _short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:8]


def is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # surrogate escapes: the OS gave bytes that are not UTF-8
        return False
    return True


def safe_text(text: str, tag: bool = True) -> str:
    """``text`` if it is valid UTF-8, else its bytes with the invalid ones as ``%XX`` (plus, with
    ``tag``, a hash of the bytes that keeps two names that escape alike apart): stable, valid UTF-8."""
    if is_utf8(text):
        return text
    raw = os.fsencode(text)
    escaped = raw.decode("utf-8", errors="surrogateescape")
    escaped = "".join(f"%{ord(c) - 0xDC00:02X}" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in escaped)
    return f"{escaped}~{_short_hash(raw)}" if tag else escaped


def safe_record(record: ClipRecord) -> ClipRecord:
    """The record with every text field valid UTF-8 (Dask, Arrow and JSON need it) and the original
    path bytes kept in ``source_path_raw`` when the path is not."""
    fields = {k: getattr(record, k) for k in ("clip_id", "speaker_id", "split", "dataset", "transcript")}
    changed = {k: safe_text(v) for k, v in fields.items() if isinstance(v, str) and not is_utf8(v)}
    if not is_utf8(record.source_path):
        changed["source_path"] = safe_text(record.source_path, tag=False)
        changed["source_path_raw"] = os.fsencode(record.source_path)
    return dataclasses.replace(record, **changed) if changed else record


def read_sidecar_text(video: Path) -> str | None:
    """The transcript in ``<stem>.txt`` next to a video, if there is one (first non-empty line)."""
    txt = video.with_suffix(".txt")
    if not txt.is_file():
        return None
    for line in txt.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.strip():
            return line.strip()
    return None


def transcript_of(words: Words | None) -> str | None:
    """The words of an alignment without silences, space-separated."""
    if not words:
        return None
    return " ".join(w for _, _, w in words if w != "sil") or None
