"""Safe extraction of submission archives (.zip, .tar, .tar.gz): regular files only, inside the root.

Bounded while extracting (never after): the bytes actually written (not the sizes the archive
declares) are counted against the total-size cap and, per zip member, against the compression-ratio
cap; the member count is capped before anything is written. Duplicate names and a name that needs
a folder where another member is a file are refused (they would silently overwrite or crash).
"""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from talkbench.benchmark.submissions.base import SubmissionError
from talkbench.errors import TalkbenchError

#: caps (see the README's "Security and limits")
MAX_ARCHIVE_BYTES = 16 * 1024**3  # extracted total
MAX_ARCHIVE_MEMBERS = 10_000
MAX_COMPRESSION_RATIO = 100  # videos hardly compress; a zip bomb expands 500-1000x
_RATIO_FLOOR = 16 * 1024**2  # below this many bytes written the ratio is not judged
_CHUNK = 1 << 20


def _safe_member_name(name: str) -> str | None:
    """The archive member's relative path if it stays inside the archive root, else None."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts or ":" in p.parts[0]:
        return None
    return str(p)


class _Budget:
    """What the extraction may still write; raises SubmissionError the moment a cap is passed."""

    def __init__(self, archive: Path, max_bytes: int, max_members: int, max_ratio: float):
        self.archive, self.max_bytes, self.max_members, self.max_ratio = archive, max_bytes, max_members, max_ratio
        self.total = 0
        self.members = 0
        self.names: set[str] = set()
        self.archive_size = max(archive.stat().st_size, 1)

    def member(self, rel: str) -> None:
        self.members += 1
        if self.members > self.max_members:
            raise SubmissionError("archive_too_many_members", f"submission archive {self.archive.name}: more "
                                  f"than {self.max_members} members")
        if rel in self.names:
            raise SubmissionError("archive_duplicate", f"submission archive {self.archive.name}: member {rel!r} "
                                  "appears twice (one would overwrite the other)")
        self.names.add(rel)

    def copy(self, src: IO[bytes], target: Path, rel: str, compressed: int | None) -> None:
        written = 0
        with _create(target, rel, self.archive) as out:
            while block := src.read(_CHUNK):
                written += len(block)
                self.total += len(block)
                if self.total > self.max_bytes:
                    raise SubmissionError("archive_too_large", f"submission archive {self.archive.name}: more "
                                          f"than {self.max_bytes / 1024**3:.0f} GiB when extracted")
                if compressed is not None and written > _RATIO_FLOOR and written > self.max_ratio * max(compressed, 1):
                    raise SubmissionError("archive_ratio", f"submission archive {self.archive.name}: member "
                                          f"{rel!r} expands more than {self.max_ratio:g}x (a zip bomb?)")
                if self.total > _RATIO_FLOOR and self.total > self.max_ratio * self.archive_size:
                    raise SubmissionError("archive_ratio", f"submission archive {self.archive.name}: expands "
                                          f"more than {self.max_ratio:g}x its size (a compression bomb?)")
                out.write(block)


@contextmanager
def _create(target: Path, rel: str, archive: Path) -> Iterator[IO[bytes]]:
    conflict = SubmissionError("archive_conflict", f"submission archive {archive.name}: member {rel!r} "
                               "needs a folder where another member is a file, or is a file where a folder is")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        f = open(target, "xb")  # noqa: SIM115 - closed below; "x": never overwrite
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise conflict from None
    with f:
        yield f


def extract_archive(archive: Path, dest: Path, max_bytes: int = MAX_ARCHIVE_BYTES,
                    max_members: int = MAX_ARCHIVE_MEMBERS, max_ratio: float = MAX_COMPRESSION_RATIO) -> list[str]:
    """Extract the regular files of a .zip/.tar(.gz) safely; return the refused members.

    Refused (never written): absolute names, names with '..', links, devices. This is stricter than
    tarfile's "data" filter because symlinks inside the folder are not needed by any submission.
    A cap passed, a duplicate name or a file/folder conflict refuses the whole archive
    (:class:`SubmissionError`).
    """
    budget = _Budget(archive, max_bytes, max_members, max_ratio)
    refused = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            if len(infos) > max_members:  # the central directory says so: refuse before writing anything
                raise SubmissionError("archive_too_many_members", f"submission archive {archive.name}: "
                                      f"{len(infos)} members, above the cap of {max_members}")
            for info in infos:
                if info.is_dir():
                    continue
                rel = _safe_member_name(info.filename)
                is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                if rel is None or is_link:
                    refused.append(info.filename)
                    continue
                budget.member(rel)
                with zf.open(info) as src:
                    budget.copy(src, dest / rel, rel, info.compress_size)
        return refused
    try:
        refused.extend(_tar_members(archive, dest, budget))
    except tarfile.TarError as e:
        raise TalkbenchError(f"submission archive {archive} cannot be read: {e}") from None
    return refused


def _tar_members(archive: Path, dest: Path, budget: _Budget) -> list[str]:
    refused = []
    with tarfile.open(archive) as tf:
        for member in tf:  # streamed: a tar of a million headers is not listed first
            if member.isdir():
                continue
            rel = _safe_member_name(member.name)
            src = tf.extractfile(member) if rel is not None and member.isfile() else None
            if src is None:
                refused.append(member.name)
                continue
            budget.member(rel)
            with src:
                budget.copy(src, dest / rel, rel, None)
    return refused


def _is_archive(path: Path) -> bool:
    return path.is_file() and (path.suffix == ".zip" or ".tar" in path.suffixes or path.suffix == ".tgz")
