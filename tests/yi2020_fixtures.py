"""Real fixture clips through MediaPipe once per test session (shared by the seed-001 test modules)."""

from __future__ import annotations

import functools

from conftest import GRID_CLIPS, WILD

VOX = WILD / "voxceleb_741400163.mp4"


@functools.cache
def tracked_clips() -> dict[str, dict]:
    """stem -> process_frames output + frames, hw and audio for the VoxCeleb clip and two GRID clips."""
    from talkbench.media import read_av
    from talkbench.pipelines.face import FaceMeshTracker, process_frames

    out = {}
    with FaceMeshTracker() as tracker:
        for path in [VOX, *GRID_CLIPS[:2]]:
            av = read_av(path)
            r = process_frames(av.frames, 25.0, tracker=tracker)
            out[path.stem] = {**r, "frames": av.frames, "hw": av.frames.shape[1:3], "audio": av.audio}
    return out


def write_fixture_shards(root, stems=None, head: bool = True):
    """A schema-valid shard folder made from the tracked fixture clips (real landmarks, pose, crops, MFCC),
    so the yi2020 recipe trains on real faces without running the whole prepare pipeline again.
    ``head=False`` writes a schema-1.0 folder: no head columns at all, as shards made before them."""
    import json
    from pathlib import Path

    import cv2
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from talkbench.pipelines.audio import mfcc_from_audio
    from talkbench.pipelines.face import warp_crops
    from talkbench.pipelines.stages.head import head_box_matrix
    from talkbench.pipelines.tables import column_array
    from talkbench.schema import CLIPS_SCHEMA, FRAMES_SCHEMA, SCHEMA_VERSION

    schema = FRAMES_SCHEMA if head else pa.schema([f for f in FRAMES_SCHEMA if not f.name.startswith("head")])

    root = Path(root)
    (root / "frames").mkdir(parents=True, exist_ok=True)
    clips = tracked_clips()
    stems = stems or [p.stem for p in GRID_CLIPS[:2]]
    rows, tables = [], []
    for k, stem in enumerate(stems):
        d = clips[stem]
        n = len(d["pose"])
        mfcc = mfcc_from_audio(d["audio"], 16000, n)

        def jpg(img):
            return cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes()

        cols = {
            "clip_id": [stem] * n, "frame_idx": np.arange(n, dtype=np.int32),
            "face_found": d["face_found"], "face_interpolated": d["face_interpolated"],
            "landmarks": list(d["landmarks"].reshape(n, -1).astype(np.float32)),
            "align_matrix": list(d["align_matrix"].reshape(n, 6).astype(np.float32)),
            "face": [jpg(f) for f in d["face_crop"]], "mfcc": list(mfcc.astype(np.float32)),
        }
        if head:
            m = np.repeat(head_box_matrix(d["landmarks"], d["face_found"], 64)[None], n, 0)
            cols["head"] = [jpg(f) for f in warp_crops(d["frames"], m, (64, 64))]
            cols["head_matrix"] = list(m.reshape(n, 6).astype(np.float32))
        for j, c in enumerate(("yaw", "pitch", "roll", "tx", "ty", "tz")):
            cols[c] = d["pose"][:, j].astype(np.float32)
        tables.append(pa.Table.from_pydict({f.name: column_array(cols.get(f.name), f, n) for f in schema},
                                           schema=schema))
        h, w = d["hw"]
        source = next(p for p in [VOX, *GRID_CLIPS] if p.stem == stem)
        pcm = (np.clip(d["audio"], -1, 1) * 32767).astype("<i2").tobytes()
        rows.append({"clip_id": stem, "dataset": "fixture", "speaker_id": f"spk{k}", "split": "train",
                     "source_path": str(source), "audio_pcm16": pcm,
                     "status": "ok", "n_frames": n, "fps": 25.0, "sample_rate": 16000, "source_height": int(h),
                     "source_width": int(w), "rotation": 0, "identity_frame": 0})
    with pq.ParquetWriter(root / "frames" / "part-00000.parquet", schema) as wr:
        for t in tables:
            wr.write_table(t, row_group_size=t.num_rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=CLIPS_SCHEMA), root / "clips.parquet")
    (root / "manifest.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION if head else "1.0",
                                                    "dataset": "fixture",
                                                    "counts": {"clips": len(rows), "ok": len(rows)}}))
    return root
