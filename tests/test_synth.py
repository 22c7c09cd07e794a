"""The synthetic corpus: deterministic, decodable, a face MediaPipe finds, and real lip sync."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from talkbench.errors import TalkbenchError
from talkbench.pipelines.datasets import list_clips, load_dataset_config
from talkbench.pipelines.synth import FPS, SAMPLE_RATE, generate_corpus, synthesize_clip

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate_corpus(out, speakers=2, clips_per_speaker=2, seed=0, duration_s=3.0)
    return out


def decode(path: Path) -> tuple[np.ndarray, np.ndarray, float, int]:
    """(frames, mono audio, fps, sample rate) of a written clip, with PyAV."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
    with av.open(str(path)) as container:
        astream = container.streams.audio[0]
        rate = astream.sample_rate
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(astream)])
    return frames, audio, fps, rate


@pytest.fixture(scope="session")
def face_mesh():
    import mediapipe as mp

    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1)
    yield mesh
    mesh.close()


def inner_lip_gap(mesh, frames: np.ndarray) -> np.ndarray:
    """Per-frame distance of the inner-lip landmarks 13/14 in pixels; NaN where no face was found."""
    gaps = np.full(len(frames), np.nan)
    h, w = frames.shape[1:3]
    for i, frame in enumerate(frames):
        result = mesh.process(frame)  # detection on every frame: no tracking can hide a miss
        if result.multi_face_landmarks:
            lm = result.multi_face_landmarks[0].landmark
            gaps[i] = np.hypot((lm[13].x - lm[14].x) * w, (lm[13].y - lm[14].y) * h)
    return gaps


def lagged_corr(a: np.ndarray, b: np.ndarray, lag: int) -> float:
    """Correlation of a[t] with b[t + lag]."""
    n = len(a)
    return float(np.corrcoef(a[max(0, -lag): n - max(0, lag)], b[max(0, lag): n + min(0, lag)])[0, 1])


def test_layout_and_sidecars(corpus):
    meta = json.loads((corpus / "corpus.json").read_text())
    assert meta["seed"] == 0 and meta["params"]["speakers"] == 2
    assert meta["clips"] == ["spk00/clip000.mp4", "spk00/clip001.mp4", "spk01/clip000.mp4", "spk01/clip001.mp4"]
    assert set(meta["versions"]) >= {"numpy", "scipy", "scikit-image", "av"}
    for rel in meta["clips"]:
        side = json.loads((corpus / rel).with_suffix(".json").read_text())
        phones = side["phones"]
        assert phones[0][0] == 0.0 and phones[-1][1] == pytest.approx(3.0)
        assert all(a[1] == pytest.approx(b[0]) for a, b in zip(phones, phones[1:], strict=False))  # tiled
        assert {p[3] for p in phones} >= {"silence", "open"}
        words = [w for w in side["words"] if w[2] != "sil"]
        assert words and side["transcript"] == " ".join(w[2] for w in words)
        assert len(side["mouth_gap_px"]) == side["n_frames"] == 75


def test_clips_decode_as_25fps_h264_with_16khz_audio(corpus):
    frames, audio, fps, rate = decode(corpus / "spk01" / "clip001.mp4")
    assert frames.shape == (75, 256, 256, 3)
    assert fps == FPS and rate == SAMPLE_RATE
    assert abs(len(audio) / rate - 3.0) < 0.05
    assert 0.05 < np.abs(audio).max() <= 1.0


def test_same_seed_same_bytes_other_seed_differs(corpus, tmp_path):
    a, b = synthesize_clip(0, 1, 1), synthesize_clip(0, 1, 1)
    assert a.audio.tobytes() == b.audio.tobytes() and np.array_equal(a.frames, b.frames)
    assert a.phones == b.phones
    other = synthesize_clip(1, 1, 1)
    assert other.phones != a.phones and not np.array_equal(other.audio, a.audio)
    assert not np.array_equal(synthesize_clip(0, 0, 1).frames[0], a.frames[0])  # speakers look different
    # a clip does not depend on how many others are generated, down to the file bytes
    generate_corpus(tmp_path, speakers=1, clips_per_speaker=1, seed=0)
    for name in ("clip000.mp4", "clip000.json"):
        assert (tmp_path / "spk00" / name).read_bytes() == (corpus / "spk00" / name).read_bytes()


@pytest.mark.parametrize("rel", ["spk00/clip000.mp4", "spk01/clip001.mp4"])
def test_face_on_every_frame_and_lip_sync_at_lag_zero(corpus, face_mesh, rel):
    frames, audio, _, rate = decode(corpus / rel)
    gaps = inner_lip_gap(face_mesh, frames)
    assert not np.isnan(gaps).any(), f"no face on frames {np.flatnonzero(np.isnan(gaps)).tolist()}"
    assert gaps.max() - gaps.min() > 8  # the lips really part and close (pixels of a 256² frame)
    spf = rate // FPS
    envelope = np.array([np.sqrt(np.mean(audio[i * spf:(i + 1) * spf] ** 2)) for i in range(len(frames))])
    corr = {lag: lagged_corr(gaps, envelope, lag) for lag in range(-5, 6)}
    best = max(corr, key=corr.get)
    assert abs(best) <= 1, corr
    assert corr[0] > 0.6, corr
    assert corr[0] - min(corr[-5], corr[5]) > 0.3  # a peak, not a flat correlation


def test_voice_pitch_is_the_speaker_f0(corpus):
    meta = json.loads((corpus / "corpus.json").read_text())
    side = json.loads((corpus / "spk00" / "clip000.json").read_text())
    start, end, _, _ = max((p for p in side["phones"] if p[3] == "open"), key=lambda p: p[1] - p[0])
    clip = synthesize_clip(0, 0, 0)
    seg = clip.audio[int(start * SAMPLE_RATE) + 160: int(end * SAMPLE_RATE) - 160].astype(np.float64)
    seg -= seg.mean()
    ac = np.correlate(seg, seg, "full")[len(seg) - 1:]
    lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60  # 60-400 Hz
    period = lo + int(np.argmax(ac[lo:hi]))
    f0 = meta["speakers"][0]["f0"]
    assert abs(SAMPLE_RATE / period / f0 - 1) < 0.12  # f0 also falls and wobbles a little over the clip


def test_synthetic_adapter_reads_the_corpus(corpus):
    cfg = load_dataset_config(ROOT / "configs" / "datasets" / "synthetic.yaml")
    records = list_clips("synthetic", corpus, cfg.split)
    assert [(r.clip_id, r.speaker_id, r.split) for r in records] == [
        ("spk00__clip000", "spk00", "test"), ("spk00__clip001", "spk00", "test"),
        ("spk01__clip000", "spk01", "val"), ("spk01__clip001", "spk01", "val"),
    ]
    side = json.loads((corpus / "spk01" / "clip000.json").read_text())
    assert records[2].transcript == side["transcript"]
    assert records[2].words == tuple(tuple(w) for w in side["words"])


def test_bad_arguments_and_cli(tmp_path):
    with pytest.raises(TalkbenchError, match="at least one"):
        generate_corpus(tmp_path, speakers=0)
    with pytest.raises(TalkbenchError, match="duration"):
        generate_corpus(tmp_path, duration_s=0.2)
    from talkbench.app.cli import main

    out = tmp_path / "cli"
    assert main(["synth", "--output", str(out), "--speakers", "1", "--clips", "1", "--duration", "1.5"]) == 0
    assert json.loads((out / "corpus.json").read_text())["clips"] == ["spk00/clip000.mp4"]


def test_a_smaller_corpus_over_a_larger_one_lists_only_its_clips(corpus, tmp_path):
    import shutil

    shutil.copytree(corpus, tmp_path / "c")
    generate_corpus(tmp_path / "c", speakers=1, clips_per_speaker=1, seed=0, duration_s=1.0)
    assert [r.clip_id for r in list_clips("synthetic", tmp_path / "c")] == ["spk00__clip000"]
