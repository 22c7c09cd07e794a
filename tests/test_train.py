"""The shard loader, the training loop (checkpoint/resume, MLflow, DDP), generation and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import socket
import wave

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import AUDIO, GRID_CLIPS
from shards_factory import tiny_overrides, write_shards

from talkbench.errors import TalkbenchError
from talkbench.models.data import DataConfig, DataSpec, ShardIndex, make_dataset, make_loader
from talkbench.models.train import load_run_config, train

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shards(tmp_path_factory):
    return write_shards(tmp_path_factory.mktemp("train_shards"), n_frames=24, missing_face_every=7)


def run(name, shards, out, *extra, steps=4, batch_size=4, resume=None):
    cfg = load_run_config(name, None, [*tiny_overrides(name, out, steps, batch_size), *extra], shards=str(shards))
    return train(name, cfg, resume=resume)


# ------------------------------------------------------------------------------------------ loader
def test_loader_yields_what_a_generator_needs_with_face_masks(shards):
    spec = DataSpec(image_size=32, identity=True, windows=True, aus=("AU25", "AU26"))
    ds = make_dataset(ShardIndex(shards), spec, DataConfig(seq_len=24), split="train", train=False)
    batch = next(iter(make_loader(ds, 2, 0)))
    assert batch["face"].shape == (2, 24, 3, 32, 32) and batch["face"].dtype == torch.uint8
    assert batch["identity"].shape == (2, 3, 32, 32) and batch["windows"].shape == (2, 24, 12, 35)
    missing = torch.zeros(24, dtype=torch.bool)
    missing[::7] = True  # the factory dropped the face on every 7th frame
    assert torch.equal(batch["mask"][0], ~missing)
    assert not batch["au_mask"][0][missing].any() and batch["au_mask"][0][~missing].all()
    assert batch["face"][0][missing].max() == 0 and batch["face"][0][~missing].float().mean() > 50
    # identity = the clip's identity_frame (first frame with a face), windows = the pipeline's function
    from talkbench.pipelines.audio import mfcc_windows
    from talkbench.schema import frame_array

    table = pq.read_table(ShardIndex(shards).units("train", ["ok"])[0].path).slice(0, 24)
    rows = frame_array(table.column("mfcc"), "mfcc").reshape(len(table), -1)  # stored 4 x 12 per frame
    assert np.allclose(batch["windows"][0].numpy(), mfcc_windows(rows, 35))


def test_clips_are_split_across_ranks_and_workers_without_overlap(shards):
    index = ShardIndex(shards)
    spec, cfg = DataSpec(aus=("AU25",)), DataConfig(seq_len=6)
    seen = []
    for rank in range(2):  # one pass (one epoch) per rank, each rank with 2 loader workers
        ds = make_dataset(index, spec, cfg, split="train", train=False, rank=rank, world_size=2)
        samples = [(int(c), int(s)) for b in make_loader(ds, 4, 2) for c, s in zip(b["clip"], b["start"], strict=True)]
        assert len(samples) == len(set(samples))
        seen.append({c for c, _ in samples})
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(len(index.units("train", ["ok"]))))
    assert not {c["speaker_id"] for c in index.clips if c["split"] == "train"} & {
        c["speaker_id"] for c in index.clips if c["split"] == "val"}


def test_skipping_batches_resumes_the_shuffled_stream_exactly(shards):
    index, spec = ShardIndex(shards), DataSpec(image_size=16, aus=("AU25",))
    cfg = DataConfig(seq_len=3, shuffle_buffer=16, seed=3)

    def batches(skip, n):
        ds = make_dataset(index, spec, cfg, split="train", train=True, batch_size=4, skip_batches=skip)
        it = iter(make_loader(ds, 4, 2))
        return [next(it) for _ in range(n)]

    full = batches(0, 7)
    for skip in (3, 4):  # odd and even: which worker comes first changes
        for a, b in zip(full[skip:], batches(skip, 3), strict=False):
            assert torch.equal(a["clip"], b["clip"]) and torch.equal(a["start"], b["start"])
            assert torch.equal(a["face"], b["face"])
    assert len({(int(c), int(s)) for b in full for c, s in zip(b["clip"], b["start"], strict=True)}) > 20


def test_bad_shards_are_clear_errors(shards, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(shards, broken)
    for f in (broken / "frames").glob("*.parquet"):
        t = pq.read_table(f)
        pq.write_table(t.drop_columns(["mfcc"]), f, row_group_size=24)
    spec = DataSpec(windows=True, aus=("AU25",))
    with pytest.raises(TalkbenchError, match="mfcc"):
        make_dataset(ShardIndex(broken), spec, DataConfig(), split="train", train=True)
    clips = pq.read_table(broken / "clips.parquet")
    rows = clips.to_pylist()
    rows[0]["split"] = "val"  # spk0 now has a clip in each split: held-out metrics would leak
    pq.write_table(clips.from_pylist(rows, schema=clips.schema), broken / "clips.parquet")
    with pytest.raises(TalkbenchError, match="spk0"):
        ShardIndex(broken).check_speaker_disjoint("train", "val")
    manifest = json.loads((broken / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps({**manifest, "schema_version": "9.0"}))
    with pytest.raises(TalkbenchError, match="schema version"):
        ShardIndex(broken)
    with pytest.raises(TalkbenchError, match="not found"):
        ShardIndex(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------ training
def test_resume_gives_the_same_next_steps_as_an_uninterrupted_run(shards, tmp_path):
    extra = ["data.num_workers=2", "data.shuffle_buffer=32", "train.run_name=r"]  # dropout 0.1 stays on
    whole = run("au_classifier", shards, tmp_path / "a", *extra, steps=6)
    first = run("au_classifier", shards, tmp_path / "b", *extra, steps=3)
    assert first.checkpoint.name == "step_0000003"
    rest = run("au_classifier", shards, tmp_path / "b", *extra, steps=6, resume="auto")
    assert len(rest.history) == 3
    for a, b in zip(whole.history[3:], rest.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6, abs=1e-7)
    assert whole.history[3]["loss"] != whole.history[2]["loss"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DDP_EXTRA = ["model.dropout=0", "data.shuffle_buffer=1", "train.run_name=ddp"]


def _ddp_worker(rank: int, world: int, port: int, shards: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    # one clip = 24 single-frame samples; with no sample shuffling each rank's batch is one whole clip
    result = run("au_classifier", shards, out, *DDP_EXTRA, steps=3, batch_size=24)
    if rank == 0:
        with open(os.path.join(out, "history.json"), "w") as f:
            json.dump(result.history, f)


def test_two_process_ddp_matches_one_process(shards, tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(shards), str(tmp_path)), nprocs=2, join=True)
    ddp = json.loads((tmp_path / "history.json").read_text())
    single = run("au_classifier", shards, tmp_path / "single", *DDP_EXTRA, steps=3, batch_size=48).history
    assert len(ddp) == len(single) == 3
    for a, b in zip(ddp, single, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    assert single[2]["loss"] < single[0]["loss"]


@pytest.fixture(scope="session")
def tracked_gan(shards, tmp_path_factory):
    """A tiny AU-RGAN with every loss on (GAN, Audio-to-AU, AU consistency via a trained classifier), in MLflow."""
    root = tmp_path_factory.mktemp("gan")
    classifier = run("au_classifier", shards, root / "cls", steps=2)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
           "TALKBENCH_ARTIFACT_ROOT": (root / "mlartifacts").as_uri()}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        result = run("au_rgan", shards, root / "runs", "train.mlflow=true", "loss.au_consistency=1",
                     "loss.perceptual=0.5", f"loss.au_classifier_checkpoint={classifier.checkpoint}",
                     "train.experiment=test-train", steps=3, batch_size=2)
        yield result, env
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_mlflow_run_holds_params_metrics_and_artifacts(tracked_gan):
    from mlflow.tracking import MlflowClient

    result, env = tracked_gan
    assert {"recon_l1", "g_adv", "d_loss", "audio_au_l1", "au_consistency_l1", "perceptual_l1"} <= set(result.history[0])
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    r = client.get_run(result.mlflow_run_id)
    assert r.info.status == "FINISHED"
    assert r.data.params["model.fusion.cell"] == "gru" and r.data.params["loss.au_consistency"] == "1.0"
    assert len(r.data.params["shards_manifest_hash"]) == 16
    losses = client.get_metric_history(r.info.run_id, "loss")
    assert [m.step for m in losses] == [1, 2, 3]
    assert losses[-1].value == pytest.approx(result.history[-1]["loss"])
    assert "val_psnr" in r.data.metrics and "val_au_consistency_mae" in r.data.metrics
    assert r.info.artifact_uri.startswith(env["TALKBENCH_ARTIFACT_ROOT"])
    files = {a.path for a in client.list_artifacts(r.info.run_id, "checkpoint")}
    assert {"checkpoint/model.safetensors", "checkpoint/state.pt"} <= files
    grids = [a.path for a in client.list_artifacts(r.info.run_id, "grids")]
    assert grids and grids[0].endswith(".png")


def test_checkpoint_is_self_describing_and_loads_with_weights_only(tracked_gan):
    from talkbench.models.checkpoint import load_model, load_state

    result, _ = tracked_gan
    model, meta = load_model(result.checkpoint)
    assert meta["talkbench_model"] == "au_rgan" and model.cfg.image_size == 32
    state = load_state(result.checkpoint)  # torch.load(weights_only=True) inside
    assert state["step"] == 3 and set(state["optimizers"]) == {"generator", "discriminator"}
    assert isinstance(state["torch_rng"], torch.Tensor)


def test_generate_writes_a_video_with_the_right_length(tracked_gan, tmp_path, capsys):
    import av

    from talkbench.app.cli import main
    from talkbench.media import read_av

    result, _ = tracked_gan
    with av.open(str(GRID_CLIPS[0])) as c:  # a real face as the reference: aligned by the pipeline's tracker
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    from PIL import Image

    Image.fromarray(frame).save(tmp_path / "ref.png")
    with wave.open(str(AUDIO / "hdtf_radio31.wav")) as src, wave.open(str(tmp_path / "a.wav"), "wb") as dst:
        dst.setparams(src.getparams())  # the first 3 s of real speech (16 kHz stereo PCM16)
        dst.writeframes(src.readframes(3 * 16_000 + 160))
    out = tmp_path / "out.mp4"
    rc = main(["generate", "--checkpoint", str(result.checkpoint), "--reference", str(tmp_path / "ref.png"),
               "--audio", str(tmp_path / "a.wav"), "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    with av.open(str(out)) as c:
        assert c.streams.video[0].average_rate == 25 and c.streams.audio
    video = read_av(out)
    assert video.frames.shape[1:] == (32, 32, 3)
    assert video.n_frames == 75  # 3.01 s of audio -> round(75.25) frames at 25 fps
    assert abs(len(video.audio) / video.sample_rate - 3.0) < 0.05


def test_cli_errors_are_one_line(shards, tmp_path, capsys):
    from talkbench.app.cli import main

    assert main(["train", "au_classifier", "--shards", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("talkbench: error:") and "not found" in err and "\n" not in err
    assert main(["train", "tcn_sa", "--shards", str(shards), "-o", "model.fusion.kernel_size=2"]) == 2
    assert "kernel_size" in capsys.readouterr().err


def test_perf_training_reports_the_naive_baseline_beside_the_batched_step(tmp_path, capsys):
    from talkbench.models.perf import perf_training

    results = perf_training(["au_classifier"], steps=1, batch_size=2, device="cpu", out_dir=tmp_path, threads=1)
    (row,) = results["runs"]
    assert "error" not in row, row
    assert row["samples_per_s"] > 0 and row["naive_samples_per_s"] > 0
    assert row["speedup"] == pytest.approx(row["samples_per_s"] / row["naive_samples_per_s"], rel=0.05)
    report = json.loads((tmp_path / "training.json").read_text())
    assert report["results"]["runs"][0]["naive_samples_per_s"] == row["naive_samples_per_s"]
    assert "naive" in capsys.readouterr().out
