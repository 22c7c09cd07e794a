"""Reading a prepared shards folder: the one owner of the output contract on the reading side.

``talkbench prepare`` writes (see :mod:`talkbench.schema`)::

    SHARDS/manifest.json       schema version, resolved config + hash, counts (written last)
    SHARDS/clips.parquet       one row per input clip
    SHARDS/frames/*.parquet    one row per frame, one row group per clip

Training's loader, the benchmark's tasks, ``talkbench inspect`` and the demo all open a folder through
:class:`ShardReader`, so every reader checks the schema version the same way and says what to do when it
does not match. Reads are projected (only the columns asked for) and frames are read by row group.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from talkbench.errors import TalkbenchError
from talkbench.io import sha256_file
from talkbench.schema import READABLE_MAJORS, SCHEMA_VERSION, from_pcm16


class ShardReader:
    """A prepared shards folder.

    ``require_manifest=False`` opens a folder whose run has not finished (no manifest yet), for
    ``inspect``; a manifest that exists is always checked.
    """

    def __init__(self, root: str | Path, require_manifest: bool = True) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise TalkbenchError(f"shard folder not found: {self.root}")
        self.clips_path = self.root / "clips.parquet"
        if not self.clips_path.is_file():
            raise TalkbenchError(f"{self.root} has no clips.parquet: not a prepared shards folder "
                                 "(run `talkbench prepare`)")
        self.manifest_path = self.root / "manifest.json"
        self.manifest: dict[str, Any] = self._read_manifest(require_manifest)
        self._locations: dict[str, tuple[str, int, int]] | None = None

    # -- manifest --------------------------------------------------------------------------------
    def _read_manifest(self, required: bool) -> dict[str, Any]:
        if not self.manifest_path.is_file():
            if required:
                raise TalkbenchError(f"{self.root}: no manifest.json; is this a finished `talkbench prepare` "
                                     "output? (prepare writes it last; re-run it to finish)")
            return {}
        try:
            manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise TalkbenchError(f"{self.manifest_path}: not valid JSON: {e}") from None
        if not isinstance(manifest, dict):
            raise TalkbenchError(f"{self.manifest_path}: not a JSON object")
        check_schema_version(manifest.get("schema_version"), self.root)
        return manifest

    @property
    def manifest_hash(self) -> str:
        """sha256 (16 hex digits) of manifest.json: identifies the data a model was trained on."""
        return sha256_file(self.manifest_path)[:16] if self.manifest_path.is_file() else ""

    @property
    def config(self) -> dict[str, Any]:
        """The resolved pipeline config the shards were prepared with ({} when not recorded)."""
        cfg = self.manifest.get("config")
        return cfg if isinstance(cfg, dict) else {}

    # -- clips -----------------------------------------------------------------------------------
    def clip_columns(self) -> list[str]:
        return pq.read_schema(self.clips_path).names

    def clips(self, columns: list[str] | None = None) -> pa.Table:
        """clips.parquet, only ``columns`` (all when None); a clear error names missing columns."""
        if columns is not None:
            check_columns(self.clips_path, columns)
        return pq.read_table(self.clips_path, columns=columns)

    def audio(self, clip_ids: list[str] | set[str]) -> dict[str, np.ndarray]:
        """clip id -> float32 mono audio at the shards' sample rate, decoded from ``audio_pcm16`` (only
        those rows); clips without stored audio are left out."""
        import pyarrow.compute as pc

        table = self.clips(["clip_id", "audio_pcm16"])
        table = table.filter(pc.is_in(table["clip_id"], value_set=pa.array(sorted(clip_ids), pa.string())))
        out = {}
        for cid, pcm in zip(table["clip_id"].to_pylist(), table["audio_pcm16"].to_pylist(), strict=True):
            if pcm:
                out[cid] = from_pcm16(pcm)
        return out

    # -- frames ----------------------------------------------------------------------------------
    @property
    def frame_files(self) -> list[Path]:
        return sorted((self.root / "frames").glob("*.parquet"))

    def check_frame_columns(self, columns: list[str]) -> None:
        for path in self.frame_files:
            check_columns(path, columns)

    def row_groups(self) -> dict[str, tuple[str, int, int]]:
        """clip_id -> (frames file, row group, rows), from row-group statistics when present (no data read)."""
        if self._locations is None:
            self._locations = {}
            for path in self.frame_files:
                pf = pq.ParquetFile(path)
                col = pf.schema_arrow.get_field_index("clip_id")
                for rg in range(pf.num_row_groups):
                    meta = pf.metadata.row_group(rg)
                    stats = meta.column(col).statistics
                    if stats is not None and stats.has_min_max and stats.min == stats.max:
                        clip_id = stats.min
                        clip_id = clip_id.decode() if isinstance(clip_id, bytes) else clip_id
                    else:
                        ids = pf.read_row_group(rg, columns=["clip_id"]).column(0).unique().to_pylist()
                        if len(ids) != 1:
                            raise TalkbenchError(f"{path} row group {rg} holds {len(ids)} clips; expected one")
                        clip_id = ids[0]
                    self._locations[clip_id] = (str(path), rg, meta.num_rows)
        return self._locations

    def frames(self, clip_id: str, columns: list[str] | None = None) -> pa.Table:
        """One clip's frame rows (its row group), only ``columns``."""
        where = self.row_groups().get(clip_id)
        if where is None:
            raise TalkbenchError(f"{self.root}: no frames for clip {clip_id!r}")
        path, rg, _ = where
        return pq.ParquetFile(path).read_row_group(rg, columns=columns)

    def frames_dataset(self) -> Any:
        """All frame files as one ``pyarrow.dataset`` (column-projected scans), None when there are none."""
        import pyarrow.dataset as ds

        files = [str(p) for p in self.frame_files]
        return ds.dataset(files, format="parquet") if files else None


def check_schema_version(version: Any, where: str | Path) -> None:
    """Readers accept the majors in ``schema.READABLE_MAJORS`` (minor versions only add columns; 1.x stored
    arrays flat and images as bytes, read through ``schema.frame_array``/``image_column``)."""
    v = str(version or "")
    if v.split(".")[0] not in READABLE_MAJORS:
        current = SCHEMA_VERSION.split(".")[0]
        older = ", ".join(m + ".x" for m in READABLE_MAJORS if m != current)
        raise TalkbenchError(f"{where}: shards schema version {v or 'unknown'!r}; this talkbench reads "
                             f"{current}.x ({SCHEMA_VERSION}; also {older}): re-run `talkbench prepare` with this "
                             "version, or use the talkbench version that wrote them")


def check_columns(path: str | Path, needed: list[str]) -> None:
    names = set(pq.read_schema(path).names)
    missing = [c for c in needed if c not in names]
    if missing:
        raise TalkbenchError(f"{path}: missing column(s) {missing}; re-run `talkbench prepare` with this version")
