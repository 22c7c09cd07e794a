"""Safe extraction of submission archives (.zip, .tar, .tar.gz): regular files only, inside the root."""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from talkbench.errors import TalkbenchError


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
