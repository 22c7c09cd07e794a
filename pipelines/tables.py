"""Turn a processed :class:`Clip` into the rows of the output contract (``talkbench.schema``).

Stages leave NumPy arrays in ``clip.frames_table`` and values in ``clip.info``; this module is the one
place that maps them onto ``FRAMES_SCHEMA`` / ``CLIPS_SCHEMA``. Columns of stages that did not run are
written as nulls (fixed-size list columns as NaN, see ``_column``), so every output has the same schema. Values are written as the stages produced them
(NaN stays NaN); intermediate arrays that are not schema columns (e.g. raw crops) are dropped.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from talkbench.pipelines.core import Clip, ClipRecord
from talkbench.schema import CLIPS_SCHEMA, FRAMES_SCHEMA, IMAGE_TYPE, to_pcm16

_RUNNER_FRAME_COLUMNS = ("clip_id", "frame_idx", "timestamp_s")


def record_columns(record: ClipRecord) -> dict[str, Any]:
    """The clip-level columns an adapter's record already knows."""
    return {
        "clip_id": record.clip_id,
        "dataset": record.dataset,
        "speaker_id": record.speaker_id,
        "split": record.split,
        "source_path": record.source_rel or record.source_path,
        "source_path_raw": record.source_path_raw,
        "transcript": record.transcript,
        "words_json": None if record.words is None else json.dumps([list(w) for w in record.words]),
    }


def clip_row(clip: Clip, *, status: str | None = None, error_kind: str | None = None,
             error: str | None = None, n_frames: int = 0) -> dict[str, Any]:
    """One clips.parquet row: record columns, then ``clip.info``, then what the runner knows.

    Stages mark a partial clip with ``info["status"] = "partial"`` (and ``error_kind``); an explicit
    ``status`` here (the runner's verdict on a failure) wins over what the stages said.
    """
    row: dict[str, Any] = dict.fromkeys(CLIPS_SCHEMA.names)
    row.update({k: v for k, v in clip.info.items() if k in row})
    row.update(record_columns(clip.record))
    row["status"] = status or row.get("status") or "ok"
    if error_kind is not None:
        row["error_kind"], row["error"] = error_kind, error
    if row["status"] != "failed":
        row["n_frames"] = n_frames
        row["fps"] = row["fps"] if row["fps"] is not None else clip.fps
        row["sample_rate"] = row["sample_rate"] if row["sample_rate"] is not None else clip.sample_rate
        if row["audio_pcm16"] is None and clip.audio is not None:
            row["audio_pcm16"] = to_pcm16(np.asarray(clip.audio, dtype=np.float32).reshape(-1)).tobytes()
        if row["duration_s"] is None and n_frames:
            row["duration_s"] = n_frames / float(row["fps"])
    else:
        row["n_frames"] = 0
    return {k: _scalar(v) for k, v in row.items()}


def _scalar(v: Any) -> Any:
    """NumPy scalars -> Python scalars and strings -> valid UTF-8, so rows pickle small and serialise to
    JSON or Arrow alike."""
    if isinstance(v, str):  # an error message quoting a non-UTF-8 file name: Arrow needs valid UTF-8
        return v.encode("utf-8", "backslashreplace").decode("utf-8")
    return v.item() if isinstance(v, np.generic) else v


def frames_table(clip: Clip) -> pa.Table:
    """The clip's per-frame columns as an Arrow table with exactly ``FRAMES_SCHEMA``.

    Raises ValueError when a stage left columns of different lengths or a wrong width (a stage bug:
    the runner records it as an ``internal`` failure of this clip).
    """
    cols = {k: v for k, v in clip.frames_table.items() if k in FRAMES_SCHEMA.names}
    lengths = {k: len(v) for k, v in cols.items() if k not in _RUNNER_FRAME_COLUMNS}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"frames_table columns have different lengths: {lengths}")
    if lengths:
        n = next(iter(lengths.values()))
    elif clip.video is not None:
        n = clip.n_frames
    else:
        n = 0
    frame_idx = np.asarray(cols.get("frame_idx", np.arange(n)), dtype=np.int32)
    cols["frame_idx"] = frame_idx
    cols.setdefault("timestamp_s", frame_idx / np.float32(clip.fps))
    cols["clip_id"] = np.full(n, clip.record.clip_id, dtype=object)
    arrays = [_column(cols.get(f.name), f, n) for f in FRAMES_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=FRAMES_SCHEMA)


def _fixed_shape(t: pa.DataType) -> tuple[int, ...]:
    """The per-row shape of a (nested) fixed-size list type: (6,) or (478, 3)."""
    shape = []
    while pa.types.is_fixed_size_list(t):
        shape.append(t.list_size)
        t = t.value_type
    return tuple(shape)


def fixed_array(values: Any, t: pa.DataType, name: str = "column") -> pa.Array:
    """``(n, *shape)`` numbers (or n flat rows) -> the (nested) fixed-size list array of type ``t``."""
    shape = _fixed_shape(t)
    leaf = t
    while pa.types.is_fixed_size_list(leaf):
        leaf = leaf.value_type
    n = len(values)
    flat = np.ascontiguousarray(values, dtype=leaf.to_pandas_dtype()).reshape(n, -1)
    if flat.shape[1] != int(np.prod(shape)):
        raise ValueError(f"column {name!r} has {flat.shape[1]} values per frame, expected {int(np.prod(shape))} "
                         f"{shape}")
    arr: pa.Array = pa.array(flat.reshape(-1))
    for size in reversed(shape):
        arr = pa.FixedSizeListArray.from_arrays(arr, size)
    return arr


def image_array(values: Any) -> pa.Array:
    """Encoded images (bytes or None) -> ``IMAGE_TYPE`` structs, the layout of a ``datasets`` Image."""
    data = [None if v is None else (v.get("bytes") if isinstance(v, dict) else v) for v in values]
    return pa.StructArray.from_arrays([pa.array(data, pa.binary()), pa.array([None] * len(data), pa.string())],
                                      fields=list(IMAGE_TYPE), mask=pa.array([d is None for d in data]))


def column_array(values: Any, field: pa.Field, n: int) -> pa.Array:
    """``n`` rows of ``values`` (None: no values) as the Arrow array ``field`` stores (shapes, image structs)."""
    return _column(values, field, n)


def empty_column(field: pa.Field, n: int) -> pa.Array:
    """``n`` rows of a column no stage filled: NaN arrays for shaped columns (never null, see below), else nulls."""
    return _column(None, field, n)


def _column(values: Any, field: pa.Field, n: int) -> pa.Array:
    if values is None:
        if pa.types.is_fixed_size_list(field.type):
            # NaN-filled, not null: pyarrow cannot read null fixed-size lists back from Parquet
            # ("Expected all lists to be of size=N", apache/arrow#35692, fixed after pyarrow 25)
            values = np.full((n, int(np.prod(_fixed_shape(field.type)))), np.nan, dtype=np.float32)
        elif field.type == IMAGE_TYPE:
            values = [None] * n
        else:
            return pa.nulls(n, type=field.type)
    if len(values) != n:
        raise ValueError(f"column {field.name!r} has {len(values)} rows, expected {n}")
    t = field.type
    if pa.types.is_fixed_size_list(t):
        return fixed_array(values, t, field.name)
    if t == IMAGE_TYPE:
        return image_array(values)
    if pa.types.is_binary(t) or pa.types.is_string(t):
        return pa.array(list(values), type=t)
    return pa.array(np.asarray(values).astype(t.to_pandas_dtype(), copy=False), type=t)


def clips_table(rows: list[dict[str, Any]]) -> pa.Table:
    """clips.parquet rows -> Arrow with exactly ``CLIPS_SCHEMA`` (missing keys become nulls)."""
    return pa.Table.from_pylist([{k: r.get(k) for k in CLIPS_SCHEMA.names} for r in rows], schema=CLIPS_SCHEMA)
