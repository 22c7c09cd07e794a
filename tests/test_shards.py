"""talkbench.shards.ShardReader (the one reader of a prepared folder) and the one PCM16 codec."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from talkbench.errors import TalkbenchError
from talkbench.models.synthetic_shards import write_shards
from talkbench.schema import SCHEMA_VERSION, from_pcm16, to_pcm16
from talkbench.shards import ShardReader


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_shards(tmp_path_factory.mktemp("shards"), speakers=2, clips_per_speaker=2, n_frames=8, files=2)


def test_pcm16_round_trip_is_exact_on_the_int16_grid():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.5, 1.5, 4000).astype(np.float32)
    pcm = to_pcm16(x)
    assert pcm.dtype == np.dtype("<i2") and pcm.min() == -32767 and pcm.max() == 32767  # clipped, symmetric
    y = from_pcm16(pcm.tobytes())
    np.testing.assert_array_equal(y, from_pcm16(pcm))  # bytes or array: one decoder
    assert y.dtype == np.float32 and y.max() == 1.0 and y.min() == -1.0
    inside = np.abs(x) <= 1
    assert np.abs(y[inside] - x[inside]).max() <= 0.5 / 32767 + 1e-7  # rounding only
    np.testing.assert_array_equal(to_pcm16(y), pcm)  # decode then encode changes nothing


def test_reader_reads_clips_frames_and_audio(shards):
    r = ShardReader(shards)
    assert r.manifest["schema_version"] == SCHEMA_VERSION and len(r.manifest_hash) == 16
    ids = r.clips(["clip_id"]).column("clip_id").to_pylist()
    assert len(ids) == 4 and set(r.row_groups()) == set(ids)
    t = r.frames(ids[1], ["clip_id", "frame_idx"])
    assert t.column("clip_id").unique().to_pylist() == [ids[1]] and t.num_rows == 8
    raw = pq.read_table(shards / "clips.parquet", columns=["clip_id", "audio_pcm16"]).to_pylist()
    audio = r.audio(ids[:2])
    assert sorted(audio) == sorted(ids[:2])
    for row in raw[:2]:
        want = np.frombuffer(row["audio_pcm16"], "<i2").astype(np.float64) / 32767
        np.testing.assert_allclose(audio[row["clip_id"]], want, rtol=0, atol=1e-7)


def test_benchmark_task_audio_is_the_pipelines_audio(shards):
    """The benchmark's driving audio decodes exactly as the pipeline stored it (was / 32768 there)."""
    from talkbench.benchmark.tasks import TaskClip, TaskManifest, load_audio

    cid = ShardReader(shards).clips(["clip_id"]).column("clip_id")[0].as_py()
    task = TaskManifest(name="t", kind="paired", split="train", shards=str(shards), primary_metric="lmd",
                        clips=[TaskClip(clip_id=cid, reference_clip=cid, reference_frame=0, reference_source="x",
                                        audio_clip=cid, ground_truth="x", n_frames=8)])
    row = pq.read_table(shards / "clips.parquet", columns=["clip_id", "audio_pcm16"]).to_pylist()[0]
    np.testing.assert_array_equal(load_audio(task)[cid], from_pcm16(row["audio_pcm16"]))


def test_every_reader_checks_the_schema_version(shards, tmp_path):
    import shutil

    from talkbench.benchmark.tasks import build_task
    from talkbench.models.data import ShardIndex
    from talkbench.pipelines.inspect import summarize

    old = tmp_path / "old"
    shutil.copytree(shards, old)
    manifest = json.loads((old / "manifest.json").read_text())
    (old / "manifest.json").write_text(json.dumps({**manifest, "schema_version": "0.3"}))
    for read in (ShardReader, ShardIndex, summarize, lambda p: build_task(p, "t", split="train")):
        with pytest.raises(TalkbenchError, match=rf"schema version '0.3'; this talkbench reads {SCHEMA_VERSION.split('.')[0]}\.x.*re-run"):
            read(old)
    (old / "manifest.json").unlink()
    with pytest.raises(TalkbenchError, match="no manifest.json"):
        ShardReader(old)
    assert ShardReader(old, require_manifest=False).manifest == {}  # inspect can look at an unfinished run
    with pytest.raises(TalkbenchError, match="no clips.parquet"):
        ShardReader(tmp_path)
