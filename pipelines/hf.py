"""The output folder as a Hugging Face dataset: a dataset card, and ``talkbench migrate`` from schema 1.

Why: ``datasets.load_dataset(OUTPUT, "frames")`` should give shaped arrays and decoded images without
the user knowing the layout. The card (``OUTPUT/README.md``) has YAML ``configs:`` (``frames``, the
default, and ``clips``: the two tables differ, so one config cannot hold both) and ``dataset_info``
features written from the Arrow schemas: nested fixed-size lists become ``Array2D`` (landmarks 478 x 3,
align_matrix 2 x 3, mfcc 4 x 12, logmel 4 x 80) and ``{bytes, path}`` structs become ``Image``.
The card is written by hand (a few lines of YAML) rather than through ``datasets`` so ``prepare``
does not need that package; ``tests/test_hf_layout.py`` loads the result with the real ``datasets``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from talkbench.errors import TalkbenchError
from talkbench.schema import (
    CLIPS_SCHEMA,
    FRAME_SHAPES,
    FRAMES_SCHEMA,
    IMAGE_COLUMNS,
    IMAGE_TYPE,
    SCHEMA_VERSION,
)
from talkbench.shards import check_schema_version

log = logging.getLogger(__name__)

_SCALARS = {pa.string(): "string", pa.int8(): "int8", pa.int16(): "int16", pa.int32(): "int32",
            pa.int64(): "int64", pa.float32(): "float32", pa.float64(): "float64", pa.bool_(): "bool",
            pa.binary(): "binary"}


def hf_feature(t: pa.DataType) -> Any:
    """An Arrow type -> the ``dtype`` of a ``datasets`` feature in card YAML."""
    if t == IMAGE_TYPE:
        return "image"
    if pa.types.is_fixed_size_list(t) and pa.types.is_fixed_size_list(t.value_type):
        leaf = t.value_type.value_type
        return {"array2_d": {"shape": [t.list_size, t.value_type.list_size], "dtype": _SCALARS[leaf]}}
    if pa.types.is_fixed_size_list(t):
        return {"list": _SCALARS[t.value_type], "length": t.list_size}
    if t in _SCALARS:
        return _SCALARS[t]
    raise TalkbenchError(f"no Hugging Face feature for Arrow type {t}")


def features_yaml(schema: pa.Schema) -> list[dict[str, Any]]:
    return [{"name": f.name, "dtype": hf_feature(f.type)} for f in schema]


def dataset_card(manifest: dict[str, Any]) -> str:
    """README.md of an output folder: YAML front matter for ``datasets`` plus a short human part."""
    front = {
        "configs": [
            {"config_name": "frames", "data_files": [{"split": "train", "path": "frames/*.parquet"}], "default": True},
            {"config_name": "clips", "data_files": [{"split": "train", "path": "clips.parquet"}]},
        ],
        "dataset_info": [
            {"config_name": "frames", "features": features_yaml(FRAMES_SCHEMA)},
            {"config_name": "clips", "features": features_yaml(CLIPS_SCHEMA)},
        ],
        "tags": ["talking-head", "audio-visual", "facial-action-units", "talkbench"],
    }
    counts = manifest.get("counts", {})
    body = f"""
# talkbench shards: {manifest.get('dataset', '?')}

Made by `talkbench prepare` (schema {manifest.get('schema_version', SCHEMA_VERSION)}) from
`{manifest.get('input', '?')}`: {counts.get('clips', '?')} clips, {counts.get('frames', '?')} frames.
`source_path` in `clips` is relative to that input folder (`manifest.json` "input").

```python
from datasets import load_dataset
frames = load_dataset("path/to/this/folder", "frames", split="train")   # landmarks (478, 3), face: PIL image
clips = load_dataset("path/to/this/folder", "clips", split="train")     # one row per clip; split column
```

The `split` column of `clips` (train/val/test, speaker-disjoint unless `split.by=clip`) is the
train/val/test assignment; the Hugging Face split is one `train` table per config.
"""
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n" + body


# -- migrate ----------------------------------------------------------------------------------------------
def migrate_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A schema-1 frames or clips table -> ``schema`` (shaped arrays, image structs); same rows, same order."""
    from talkbench.pipelines.tables import empty_column, fixed_array, image_array
    from talkbench.schema import frame_array, image_column

    cols = []
    for f in schema:
        if f.name not in table.column_names:  # e.g. head/head_matrix of a 1.0 folder
            cols.append(empty_column(f, table.num_rows))
        elif f.name in FRAME_SHAPES and pa.types.is_fixed_size_list(f.type):
            cols.append(fixed_array(frame_array(table.column(f.name), f.name), f.type, f.name))
        elif f.name in IMAGE_COLUMNS and f.type == IMAGE_TYPE:
            cols.append(image_array(image_column(table.column(f.name))))
        else:
            cols.append(table.column(f.name).cast(f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def migrate(folder: str | Path) -> dict[str, Any]:
    """Rewrite a schema-1 output folder in place as the current schema (each file atomically)."""
    import pyarrow.parquet as pq

    root = Path(folder)
    path = root / "manifest.json"
    if not path.is_file():
        raise TalkbenchError(f"{root}: no manifest.json; is this a finished `talkbench prepare` output?")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    version = str(manifest.get("schema_version", ""))
    check_schema_version(version, str(root))
    if version == SCHEMA_VERSION:
        _write_text(root / "README.md", dataset_card(manifest))
        return {"from": version, "to": SCHEMA_VERSION, "files": 0}
    files = sorted((root / "frames").glob("*.parquet"))
    for f in files:
        pf = pq.ParquetFile(f)
        tmp = f.with_name(f.name + ".migrate.tmp")
        with pq.ParquetWriter(tmp, FRAMES_SCHEMA) as w:
            for rg in range(pf.num_row_groups):  # one row group per clip, kept
                t = migrate_table(pf.read_row_group(rg), FRAMES_SCHEMA)
                w.write_table(t, row_group_size=max(1, t.num_rows))
        tmp.replace(f)
    clips = root / "clips.parquet"
    if clips.is_file():
        tmp = clips.with_name("clips.parquet.migrate.tmp")
        pq.write_table(migrate_table(pq.read_table(clips), CLIPS_SCHEMA), tmp)
        tmp.replace(clips)
    manifest["migrated_from"] = version
    manifest["schema_version"] = SCHEMA_VERSION
    _write_text(path, json.dumps(manifest, indent=2))
    _write_text(root / "README.md", dataset_card(manifest))
    return {"from": version, "to": SCHEMA_VERSION, "files": len(files) + clips.is_file()}


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
