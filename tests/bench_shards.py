"""A minimal prepared-shards folder for the benchmark tests, built straight from real GRID clips.

Only what ``bench make-task`` reads: clips.parquet rows (schema of talkbench.schema.CLIPS_SCHEMA) with
clip_id, speaker_id, split, status, source_path, n_frames, fps, sample_rate, identity_frame and the
16 kHz mono ``audio_pcm16``. Everything else is null. The benchmark never trusts stored crops (it decodes
and processes the source videos itself), so no frames table is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from talkbench.media import read_av
from talkbench.schema import CLIPS_SCHEMA, SCHEMA_VERSION


def make_minimal_shards(out: Path, videos: list[Path], split: str = "test") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, video in enumerate(videos):
        av = read_av(video)
        audio = av.audio[: round(av.n_frames / av.fps * av.sample_rate)]
        audio = np.pad(audio, (0, round(av.n_frames / av.fps * av.sample_rate) - len(audio)))
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
        rows.append({
            "clip_id": video.stem, "dataset": "grid", "speaker_id": f"spk{i}", "split": split,
            "source_path": str(video.resolve()), "status": "ok", "n_frames": av.n_frames, "fps": av.fps,
            "sample_rate": av.sample_rate, "duration_s": av.duration_s, "identity_frame": 0,
            "audio_pcm16": pcm,
        })
    columns = {f.name: [r.get(f.name) for r in rows] for f in CLIPS_SCHEMA}
    pq.write_table(pa.table(columns, schema=CLIPS_SCHEMA), out / "clips.parquet")
    (out / "manifest.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION, "config_hash": "minimal"}))
    return out
