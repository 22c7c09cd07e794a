"""Shards as a Hugging Face dataset: the card, shaped columns, Image structs, schema 1 -> 2 migration.

Loaded with the real ``datasets`` package, offline (no hub), from folders the tests write.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from talkbench.app.cli import main
from talkbench.errors import TalkbenchError
from talkbench.models.synthetic_shards import write_shards
from talkbench.pipelines.hf import dataset_card
from talkbench.schema import IMAGE_TYPE, SCHEMA_VERSION, frame_array, image_column


@pytest.fixture()
def hf_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


def _load(folder: Path, config: str):
    import datasets

    return datasets.load_dataset(str(folder), config, split="train")


def _card(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "README.md").write_text(dataset_card(manifest))


def test_load_dataset_gives_shaped_arrays_and_images(tmp_path, hf_offline) -> None:
    from PIL import Image

    root = write_shards(tmp_path / "s", speakers=2, clips_per_speaker=1, n_frames=6, files=1)
    _card(root)
    frames = _load(root, "frames")
    assert frames.num_rows == 12
    row = frames[0]
    assert np.asarray(row["landmarks"]).shape == (478, 3)
    assert np.asarray(row["mfcc"]).shape == (4, 12) and np.asarray(row["logmel"]).shape == (4, 80)
    assert np.asarray(row["align_matrix"]).shape == (2, 3)
    face = next(r["face"] for r in frames if r["face"] is not None)
    assert isinstance(face, Image.Image) and face.size == (32, 32)
    clips = _load(root, "clips")
    assert clips.num_rows == 2 and set(clips["split"]) <= {"train", "val", "test"}
    # the same bytes through pyarrow and through datasets
    t = pq.read_table(next((root / "frames").glob("*.parquet")))
    assert t.schema.field("face").type == IMAGE_TYPE
    np.testing.assert_array_equal(frame_array(t.column("mfcc"), "mfcc")[0], np.asarray(row["mfcc"], np.float32))


def _as_schema1(root: Path, drop: tuple[str, ...] = ()) -> None:
    """Rewrite a schema-2 folder the way schema 1 stored it: flat arrays, plain image bytes."""
    for f in (root / "frames").glob("*.parquet"):
        t = pq.read_table(f).drop_columns(list(drop))
        cols, fields = [], []
        for field in t.schema:
            col = t.column(field.name)
            if field.name in ("landmarks", "align_matrix", "mfcc", "logmel", "head_matrix"):
                arr = frame_array(col, field.name)
                col = pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), int(np.prod(arr.shape[1:])))
            elif field.name in ("face", "mouth", "head"):
                col = pa.array(image_column(col), pa.binary())
            cols.append(col)
            fields.append(pa.field(field.name, col.type))
        pq.write_table(pa.Table.from_arrays(cols, schema=pa.schema(fields)), f, row_group_size=6)
    m = json.loads((root / "manifest.json").read_text())
    m["schema_version"] = "1.0"
    (root / "manifest.json").write_text(json.dumps(m))


def test_schema1_is_read_then_migrated(tmp_path, hf_offline, capsys) -> None:
    from talkbench.models.data import ShardIndex

    root = write_shards(tmp_path / "s", speakers=2, clips_per_speaker=1, n_frames=6, files=1)
    before = pq.read_table(next((root / "frames").glob("*.parquet")))
    _as_schema1(root, drop=("head", "head_matrix"))  # 1.0 had no head crops (1.1 added them)
    v1 = pq.read_table(next((root / "frames").glob("*.parquet")))
    assert v1.schema.field("landmarks").type == pa.list_(pa.float32(), 478 * 3)
    ShardIndex(root)  # schema 1 is still readable (the readers take both layouts)
    np.testing.assert_array_equal(frame_array(v1.column("logmel"), "logmel"), frame_array(before.column("logmel"),
                                                                                           "logmel"))
    assert image_column(v1.column("face")) == image_column(before.column("face"))

    assert main(["migrate", str(root)]) == 0
    assert "from schema 1.0 to 2.0" in capsys.readouterr().out
    after = pq.read_table(next((root / "frames").glob("*.parquet")))
    assert after.schema.equals(before.schema, check_metadata=False)
    assert np.isnan(frame_array(after.column("head_matrix"), "head_matrix")).all()  # absent in 1.0: NaN, not null
    assert after.select(["landmarks", "face", "mfcc"]).equals(before.select(["landmarks", "face", "mfcc"]))
    assert json.loads((root / "manifest.json").read_text())["schema_version"] == SCHEMA_VERSION
    assert np.asarray(_load(root, "frames")[0]["landmarks"]).shape == (478, 3)


def test_prepare_refuses_to_mix_schemas(tmp_path) -> None:
    from talkbench.pipelines.runner import _check_output_schema
    from talkbench.pipelines.shards import ShardStore

    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"schema_version": "1.0"}))
    with pytest.raises(TalkbenchError, match=f"talkbench migrate {out}"):
        _check_output_schema(ShardStore(str(out)))
    (out / "manifest.json").write_text(json.dumps({"schema_version": "0.3"}))
    from talkbench.shards import check_schema_version

    with pytest.raises(TalkbenchError, match="schema version '0.3'"):
        check_schema_version("0.3", out)
    check_schema_version("1.2", out)  # 1.x stays readable
