"""Small file and hashing helpers every area shares (one copy each).

- ``atomic_write`` / ``atomic_path``: a file appears under its real name complete or not at all (a
  crash leaves at most a ``.tmp`` beside it), so resumable jobs never mistake a half-written file for
  a finished one.
- ``sha256_file``: the hex sha256 of a file's bytes, streamed.
- ``stable_hash``: the sha256 of an object's canonical JSON (sorted keys, no spaces). Config hashes,
  task hashes and cache keys use it, so the same settings always hash the same across runs and versions.
- ``package_versions``: installed versions of distributions, ``None`` when one is absent.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix, so format-sniffing writers work); on success
    it is renamed onto ``path``, on an exception removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: str | bytes, encoding: str = "utf-8") -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding=encoding)
    return Path(path)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def stable_json(obj: Any) -> str:
    """Canonical JSON: sorted keys, compact separators (pydantic models are dumped in JSON mode first)."""
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def stable_hash(obj: Any, length: int | None = None) -> str:
    """Hex sha256 of ``stable_json(obj)``, optionally shortened to ``length`` characters."""
    digest = hashlib.sha256(stable_json(obj).encode()).hexdigest()
    return digest[:length] if length else digest


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """name -> installed version, or None when the distribution is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out
