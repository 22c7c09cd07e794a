"""A small, schema-valid synthetic shard folder: for the model tests and ``perf loader`` without real shards.

The data has learnable structure: each clip has a smooth mouth-openness signal that drives the mouth
height drawn in the face crops, the speech AUs (AU25, AU26 most) and the MFCC rows, so a model that
learns anything shows it. Face crops are JPEG like the pipeline's default.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from talkbench.schema import (
    ALL_AUS,
    CLIPS_SCHEMA,
    FRAMES_SCHEMA,
    HOPS_PER_FRAME,
    MEL_BINS,
    MFCC_DIM,
    N_LANDMARKS,
    SCHEMA_VERSION,
    SPEECH_AUS,
    au_column,
    to_pcm16,
)

#: how strongly each speech AU follows the mouth openness (AU25 lips part, AU26 jaw drop most)
AU_GAIN = {"AU10": 0.8, "AU14": 0.5, "AU20": 1.0, "AU25": 4.0, "AU26": 3.0}


def _openness(rng: np.random.Generator, n: int) -> np.ndarray:
    """A smooth signal in [0, 1]: syllable-like bumps."""
    x = rng.random(n + 8)
    k = np.hanning(7)
    return np.clip(np.convolve(x, k / k.sum(), mode="same")[4 : n + 4] * 1.6 - 0.3, 0, 1).astype(np.float32)


def _face(size: int, skin: tuple[int, int, int], o: float) -> np.ndarray:
    img = np.full((size, size, 3), 40, np.uint8)
    c = size // 2
    cv2.ellipse(img, (c, c), (int(size * 0.36), int(size * 0.46)), 0, 0, 360, skin, -1)
    for ex in (c - size // 6, c + size // 6):
        cv2.circle(img, (ex, int(size * 0.38)), max(1, size // 16), (30, 30, 30), -1)
    mh = max(1, int(1 + o * size * 0.12))
    cv2.ellipse(img, (c, int(size * 0.7)), (max(2, size // 7), mh), 0, 0, 360, (120, 20, 30), -1)
    return img


def _jpeg(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return buf.tobytes()


def write_shards(root: str | Path, *, speakers: int = 4, clips_per_speaker: int = 2, n_frames: int = 24,
                 face_size: int = 32, mouth_size: tuple[int, int] = (16, 32), seed: int = 0,
                 val_speakers: int = 1, files: int = 2, missing_face_every: int = 0) -> Path:
    """Write clips.parquet, frames/part-*.parquet (one row group per clip) and manifest.json."""
    root = Path(root)
    (root / "frames").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    clip_rows, per_file = [], [[] for _ in range(files)]
    n_clips = speakers * clips_per_speaker
    for s in range(speakers):
        skin = tuple(int(v) for v in rng.integers(120, 230, 3))
        split = "val" if s >= speakers - val_speakers else "train"
        for j in range(clips_per_speaker):
            clip_id = f"spk{s}_clip{j}"
            o = _openness(rng, n_frames)
            faces = [_face(face_size, skin, float(v)) for v in o]
            mh, mw = mouth_size
            y0, x0 = int(face_size * 0.55), face_size // 4
            mouths = [cv2.resize(f[y0:, x0 : face_size - x0], (mw, mh)) for f in faces]
            found = np.ones(n_frames, bool)
            if missing_face_every:
                found[::missing_face_every] = False
            # MFCC hops: a per-hop openness (interpolated) drives the low coefficients, plus noise
            hop_o = np.interp(np.arange(n_frames * HOPS_PER_FRAME) / HOPS_PER_FRAME, np.arange(n_frames), o)
            basis = np.linspace(1.0, -1.0, MFCC_DIM, dtype=np.float32)
            mfcc = (hop_o[:, None] * 10 * basis[None] + rng.normal(0, 0.5, (len(hop_o), MFCC_DIM))).astype(np.float32)
            frames = {
                "clip_id": [clip_id] * n_frames,
                "frame_idx": np.arange(n_frames, dtype=np.int32),
                "timestamp_s": (np.arange(n_frames) / 25).astype(np.float32),
                "face_found": found,
                "face_interpolated": np.zeros(n_frames, bool),
                "n_faces": found.astype(np.int8),
                "face": [_jpeg(f) if ok else None for f, ok in zip(faces, found, strict=True)],
                "mouth": [_jpeg(m) if ok else None for m, ok in zip(mouths, found, strict=True)],
                "mfcc": list(mfcc.reshape(n_frames, HOPS_PER_FRAME * MFCC_DIM)),
                # not used by the models; zeros because all-null fixed-size lists do not read back (pyarrow)
                "landmarks": list(np.zeros((n_frames, N_LANDMARKS * 3), np.float32)),
                "align_matrix": list(np.tile(np.array([1, 0, 0, 0, 1, 0], np.float32), (n_frames, 1))),
                "logmel": list(np.zeros((n_frames, HOPS_PER_FRAME * MEL_BINS), np.float32)),
                "face_size": np.full(n_frames, face_size * 0.4, np.float32),
                "det_conf": np.full(n_frames, 0.9, np.float32),
                "blur": np.full(n_frames, 100.0, np.float32),
            }
            for au in ALL_AUS:
                gain = AU_GAIN.get(au, 0.3)
                vals = np.clip(gain * o + rng.normal(0, 0.05, n_frames), 0, 5).astype(np.float32)
                vals[~found] = np.nan
                frames[au_column(au)] = vals
            from talkbench.pipelines.tables import empty_column, fixed_array, image_array

            for name in ("mfcc", "landmarks", "align_matrix", "logmel"):
                frames[name] = fixed_array(frames[name], FRAMES_SCHEMA.field(name).type, name)
            for name in ("face", "mouth"):
                frames[name] = image_array(frames[name])
            table = pa.Table.from_pydict(
                {f.name: frames.get(f.name, empty_column(f, n_frames)) for f in FRAMES_SCHEMA}, schema=FRAMES_SCHEMA
            )
            k = len(clip_rows) % files
            per_file[k].append(table)
            pcm = to_pcm16(rng.normal(0, 0.05, n_frames * 640)).tobytes()
            clip_rows.append({
                "clip_id": clip_id, "dataset": "synthetic", "speaker_id": f"spk{s}", "split": split,
                "source_path": f"/synthetic/{clip_id}.mp4", "status": "ok", "n_frames": n_frames, "fps": 25.0,
                "sample_rate": 16000, "duration_s": n_frames / 25, "identity_frame": int(np.argmax(found)),
                "audio_pcm16": pcm, "face_found_ratio": float(found.mean()), "shard": f"part-{k:05d}",
            })
    for k, tables in enumerate(per_file):
        with pq.ParquetWriter(root / "frames" / f"part-{k:05d}.parquet", FRAMES_SCHEMA) as w:
            for t in tables:
                w.write_table(t, row_group_size=t.num_rows)
    clips = pa.Table.from_pylist(clip_rows, schema=CLIPS_SCHEMA)
    pq.write_table(clips, root / "clips.parquet")
    manifest = {"schema_version": SCHEMA_VERSION, "dataset": "synthetic", "seed": seed,
                "counts": {"clips": n_clips, "ok": n_clips}, "speech_aus": list(SPEECH_AUS)}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return root

