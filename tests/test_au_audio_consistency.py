"""``au-audio-consistency`` (GUIDE §3): a generator's audio-predicted AUs vs the AUs seen on its video.

Hand-computed cases for the functional core, the no-prediction case (unavailable with a reason, never 0),
the ``<clip_id>.aus.csv`` sidecar, and end to end with a real tiny AU-RGAN checkpoint on a GRID clip.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from talkbench.benchmark.metrics.aggregate import aggregate
from talkbench.benchmark.metrics.au import AUAudioConsistency, predicted_vs_seen
from talkbench.benchmark.metrics.base import AlignedVideo, ClipPair
from talkbench.benchmark.submissions.base import (
    check_predicted_aus,
    read_au_sidecar,
    write_au_sidecar,
)
from talkbench.errors import ClipError


def test_predicted_vs_seen_hand_computed() -> None:
    found = np.ones(4, bool)
    # AU25: seen 0,1,2,3 vs predicted 0,2,1,3: |d| = 0,1,1,0 -> MAE 0.5; deviations (-1.5,-.5,.5,1.5) and
    # (-1.5,.5,-.5,1.5): sum of products 2.25-.25-.25+2.25 = 4, each sum of squares 5 -> r = 4/5 = 0.8
    # AU26: seen = predicted + 0.5 everywhere -> MAE 0.5, r = 1
    pred = {"AU25": np.array([0, 2, 1, 3.0]), "AU26": np.array([1, 2, 1, 2.0])}
    seen = {"AU25": np.array([0, 1, 2, 3.0]), "AU26": np.array([1.5, 2.5, 1.5, 2.5]), "AU10": np.zeros(4)}
    out = predicted_vs_seen(pred, seen, found)
    assert out["AU25_pred_mae"] == pytest.approx(0.5) and out["AU25_pred_r"] == pytest.approx(0.8)
    assert out["AU26_pred_mae"] == pytest.approx(0.5) and out["AU26_pred_r"] == pytest.approx(1.0)
    assert out["au_pred_mae"] == pytest.approx(0.5) and out["au_pred_r"] == pytest.approx(0.9)
    assert out["au_pred_n_aus"] == 2 and out["au_pred_r_undefined"] == 0
    assert "AU10_pred_mae" not in out  # not predicted: not scored


def test_a_frozen_video_scores_r0_and_a_constant_prediction_is_counted() -> None:
    found = np.array([True, True, True, False])  # frame 3 has no face: left out of both sides
    pred = {"AU25": np.array([0, 1, 2, 99.0]), "AU26": np.full(4, 2.0)}
    frozen = {"AU25": np.full(4, 1.0), "AU26": np.array([1, 2, 3, 7.0])}
    out = predicted_vs_seen(pred, frozen, found)
    # AU25: the video does not move while the prediction does -> r = 0 (penalised, not dropped);
    # MAE over frames 0-2: |1-0| + |1-1| + |1-2| = 2 -> 2/3
    assert out["AU25_pred_r"] == 0.0 and out["AU25_pred_mae"] == pytest.approx(2 / 3)
    # AU26: a constant prediction: r undefined, counted; MAE |1-2| + 0 + |3-2| = 2 -> 2/3
    assert math.isnan(out["AU26_pred_r"]) and out["au_pred_r_undefined"] == 1
    assert out["au_pred_r"] == 0.0 and out["au_pred_mae"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="none of the speech AUs"):
        predicted_vs_seen({"AU12": np.zeros(4)}, frozen, found)


def _video(aus: dict[str, np.ndarray]) -> AlignedVideo:
    t = len(next(iter(aus.values())))
    return AlignedVideo(faces=np.zeros((t, 8, 8, 3), np.uint8), mouths=np.zeros((t, 4, 4, 3), np.uint8),
                        landmarks=np.zeros((t, 478, 3), np.float32), face_found=np.ones(t, bool),
                        pose=np.zeros((t, 6), np.float32), aus=aus)


def test_without_predicted_aus_the_metric_is_unavailable_with_a_reason_never_zero() -> None:
    metric = AUAudioConsistency()
    seen = {"AU25": np.array([0, 1, 2, 3.0])}
    assert metric.update(ClipPair("a", _video(seen), None, np.zeros(10))) == {}
    res = aggregate({"au-audio-consistency": metric}, [{"clip_id": "a", "status": "ok"}], [])
    assert "au_pred_mae" not in res.aggregates
    assert "exposes no predicted AUs" in res.unavailable["au-audio-consistency"]
    # one clip with a prediction, one without: the second is counted as undefined beside the mean
    metric = AUAudioConsistency()
    rows = [{"clip_id": "a", "status": "ok"}, {"clip_id": "b", "status": "ok"}]
    vals = metric.update(ClipPair("a", _video(seen), None, np.zeros(10), predicted_aus={"AU25": seen["AU25"] + 1}))
    rows[0].update({f"au-audio-consistency/{k}": v for k, v in vals.items()})
    metric.update(ClipPair("b", _video(seen), None, np.zeros(10)))
    res = aggregate({"au-audio-consistency": metric}, rows, [])
    agg = res.aggregates["au_pred_mae"]
    assert agg.value == pytest.approx(1.0) and agg.n == 1 and agg.n_undefined == 1


def test_predicted_au_sidecar_round_trip_and_checks(tmp_path: Path) -> None:
    aus = {"AU26": np.array([0.25, 1.5, 4.0]), "AU25": np.array([1.0, 2.0, 3.0])}
    path = write_au_sidecar(tmp_path / "c.aus.csv", aus)
    assert path.read_text().splitlines()[:2] == ["frame,AU25,AU26", "0,1,0.25"]
    back = read_au_sidecar(path)
    assert set(back) == {"AU25", "AU26"} and np.allclose(back["AU26"], aus["AU26"])
    # conformed like the frames: 3 values for a 4-frame task -> the last repeated; 3 for 2 -> trimmed
    assert check_predicted_aus(back, 3, 4)["AU25"].tolist() == [1, 2, 3, 3]
    assert check_predicted_aus(back, 3, 2)["AU25"].tolist() == [1, 2]
    with pytest.raises(ClipError, match="2 values for 3 frames"):
        check_predicted_aus({"AU25": [1, 2]}, 3, 3)
    with pytest.raises(ClipError, match="NaN"):
        check_predicted_aus({"AU25": [1, np.nan, 2]}, 3, 3)
    (tmp_path / "bad.aus.csv").write_text("frame,AU25\n0,x\n")
    with pytest.raises(ClipError, match="bad.aus.csv"):
        read_au_sidecar(tmp_path / "bad.aus.csv")


@pytest.fixture(scope="module")
def tiny_au_rgan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tiny AU-RGAN checkpoint (untrained weights, seeded: the protocol is what is tested)."""
    import torch

    from talkbench.models.checkpoint import save_checkpoint
    from talkbench.models.registry import MODELS
    from talkbench.models.train import load_run_config

    spec = MODELS.get("au_rgan")
    cfg = load_run_config("au_rgan", None, list(spec.tiny))
    torch.manual_seed(0)
    model = spec.build(cfg.model)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "step_0", model, "au_rgan", {}, 0,
                           metadata={"pipeline_config": "{}"})


def test_checkpoint_exposes_its_audio_to_au_output(tiny_au_rgan: Path) -> None:
    import torch

    from talkbench.models.generate import CheckpointGenerator
    from talkbench.pipelines.audio import mfcc_from_audio, mfcc_windows

    gen = CheckpointGenerator(tiny_au_rgan, align=False)
    audio = np.random.default_rng(0).normal(0, 0.1, 16_000).astype(np.float32)
    out = gen.generate_with_aus(np.full((32, 32, 3), 128, np.uint8), audio, 25.0)
    assert out.frames.shape == (25, 32, 32, 3) and set(out.predicted_aus) == {"AU25", "AU26"}
    # independently: the model's Audio-to-AU branch alone on the same MFCC windows
    windows = torch.from_numpy(mfcc_windows(mfcc_from_audio(audio, 16_000, 25, None))[None])
    with torch.inference_mode():
        direct = gen.model.generator.audio_to_au(windows)["intensity"][0].numpy()
    assert np.allclose(out.predicted_aus["AU25"], direct[:, 0], atol=1e-6)
    assert np.allclose(out.predicted_aus["AU26"], direct[:, 1], atol=1e-6)
    assert np.array_equal(gen.generate(np.full((32, 32, 3), 128, np.uint8), audio, 25.0), out.frames)


@pytest.fixture(scope="module")
def grid_task(tmp_path_factory: pytest.TempPathFactory):
    from bench_tasks import one_grid_clip_task

    return one_grid_clip_task(tmp_path_factory.mktemp("task"), "aupred", geometry="aligned")


@pytest.fixture(scope="module")
def face_au_rgan(grid_task, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 64 px AU-RGAN fitted for 25 steps to redraw the clip's first aligned face: its own frames then
    hold a face MediaPipe finds (measured: 75 of 75 frames), so the AUs seen on them can be measured."""
    import cv2
    import torch

    from talkbench.benchmark.preprocess import Preprocessor
    from talkbench.media import read_av
    from talkbench.models.checkpoint import save_checkpoint
    from talkbench.models.layers import to_image
    from talkbench.models.registry import MODELS
    from talkbench.models.train import load_run_config
    from talkbench.pipelines.audio import mfcc_from_audio, mfcc_windows

    clip = grid_task.clips[0]
    video = read_av(clip.ground_truth, fps=25, sample_rate=16_000)
    pre = Preprocessor(grid_task)
    try:
        face = cv2.resize(pre.ground_truth(clip.ground_truth, video.frames).faces[0], (64, 64),
                          interpolation=cv2.INTER_AREA)
    finally:
        pre.close()
    spec = MODELS.get("au_rgan")
    cfg = load_run_config("au_rgan", None, [*spec.tiny, "model.image_size=64", "model.discriminator.enabled=false"])
    torch.manual_seed(0)
    model = spec.build(cfg.model)
    windows = torch.from_numpy(mfcc_windows(mfcc_from_audio(video.audio, 16_000, 75, None))[None, :4])
    identity = to_image(torch.from_numpy(face.transpose(2, 0, 1).copy())[None])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(25):
        loss = (model.generator(identity, windows)["frames"] - identity[:, None]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "step_25", model, "au_rgan", {}, 25,
                           metadata={"pipeline_config": "{}"})


@pytest.mark.slow
def test_checkpoint_submission_records_and_scores_its_predicted_aus(face_au_rgan, grid_task, tmp_path) -> None:
    from talkbench.benchmark.evaluator import evaluate
    from talkbench.benchmark.submissions import load_submission

    metrics = ["au-audio-consistency"]
    # checkpoint:CKPT: the model's own 64 px frames, its Audio-to-AU output beside them, kept as a sidecar
    res = evaluate(grid_task, load_submission(f"checkpoint:{face_au_rgan}"), metric_names=metrics,
                   videos_dir=tmp_path / "ckpt")
    (row,) = res.rows
    assert row["status"] == "ok" and row["predicted_aus"] == "AU25,AU26", row
    assert row["geometry"] == "aligned-crop-64" and row["face_found_ratio"] > 0.9
    side = read_au_sidecar(tmp_path / "ckpt" / f"{row['clip_id']}.aus.csv")
    assert len(side["AU25"]) == grid_task.clips[0].n_frames and ((side["AU25"] >= 0) & (side["AU25"] <= 5)).all()
    assert res.aggregates["au_pred_n_aus"].value == 2
    assert 0 < res.aggregates["au_pred_mae"].value < 5 and math.isfinite(row["AU25_pred_r"])
    assert res.metrics["au-audio-consistency"].variant.startswith("speech-aus-predicted-vs-seen")

    # the kept folder is itself an outputs-first submission: with the sidecar scored, without it unavailable
    res2 = evaluate(grid_task, load_submission(str(tmp_path / "ckpt")), metric_names=metrics)
    assert res2.rows[0]["predicted_aus"] == "AU25,AU26" and math.isfinite(res2.aggregates["au_pred_mae"].value)
    (tmp_path / "ckpt" / f"{row['clip_id']}.aus.csv").unlink()
    res3 = evaluate(grid_task, load_submission(str(tmp_path / "ckpt")), metric_names=metrics)
    assert res3.rows[0]["status"] == "ok" and "au_pred_mae" not in res3.aggregates
    assert "exposes no predicted AUs" in res3.unavailable["au-audio-consistency"]
