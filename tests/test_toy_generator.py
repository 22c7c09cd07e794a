"""A new generator is one file: this one registers a toy model and, touching nothing else in talkbench,
trains it with ``talkbench train``'s loop, makes a video with ``talkbench generate`` and scores it with a
``checkpoint:`` benchmark submission.

The toy is deliberately not a one-pass GAN: its generate entry is an iterative refiner (``steps``
passes, a generate option), the shape a diffusion sampler has, to show the protocol is not tied to one
forward pass.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import AUDIO, GRID_CLIPS
from pydantic import Field
from torch import nn

from talkbench.config import StrictModel
from talkbench.models.data import DataSpec
from talkbench.models.generate import GenerationInputs
from talkbench.models.layers import to_image
from talkbench.models.objective import Objective, masked_l1
from talkbench.models.registry import MODELS, ModelSpec

# ------------------------------------------------------------------------------------------------ the toy


class ToyConfig(StrictModel):
    image_size: int = Field(128, ge=8)


class ToyLoss(StrictModel):
    reconstruction: float = 1.0


class Toy(nn.Module):
    """frame = identity + tanh(1x1 conv(identity)) * audio energy: a face that 'moves' with the audio."""

    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.cfg = cfg
        self.mix = nn.Conv2d(3, 3, 1)
        nn.init.zeros_(self.mix.weight)
        nn.init.zeros_(self.mix.bias)
        self.gain = nn.Parameter(torch.tensor(0.1))

    def forward(self, identity: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
        """identity (B, 3, S, S) in [-1, 1], energy (B, T) -> frames (B, T, 3, S, S)."""
        delta = torch.tanh(self.mix(identity))[:, None] * (self.gain * energy)[:, :, None, None, None]
        return (identity[:, None] + delta).clamp(-1, 1)


class ToyObjective(Objective):
    LossConfig = ToyLoss

    def data_spec(self) -> DataSpec:
        return DataSpec(image_size=self.model_cfg.image_size, identity=True, windows=True)

    def loss(self, group, parts, batch):
        frames = parts["model"](to_image(batch["identity"]), batch["windows"].abs().mean(dim=(2, 3)))
        mask = batch["mask"][:, :, None, None, None].expand_as(frames)
        loss = self.loss_cfg.reconstruction * masked_l1(frames, to_image(batch["face"]), mask)
        return loss, {"loss": loss.item()}

    @torch.no_grad()
    def validate(self, model, batches):
        return {}


class ToyOptions(StrictModel):
    steps: int = Field(2, ge=1, description="refinement passes")


def toy_generate(model: Toy, inputs: GenerationInputs) -> np.ndarray:
    """Iterative: start from the reference and refine ``steps`` times with the per-frame audio energy."""
    hop = round(16_000 / inputs.fps)
    audio = np.pad(inputs.audio, (0, max(0, inputs.n_frames * hop - len(inputs.audio))))
    energy = torch.from_numpy(np.abs(audio[: inputs.n_frames * hop]).reshape(inputs.n_frames, hop).mean(1))[None]
    x = to_image(torch.from_numpy(inputs.identity[0].transpose(2, 0, 1).copy())[None])
    frames = x[:, None].expand(1, inputs.n_frames, *x.shape[1:])
    with torch.inference_mode():
        for _ in range(inputs.options.steps):
            frames = model(frames[:, 0], energy.float() * 10)
    return ((frames[0] + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


SPEC = ModelSpec(module=Toy, config=ToyConfig, objective=ToyObjective, generate=toy_generate,
                 generate_options=ToyOptions, tiny=("data.seq_len=2",))


# ------------------------------------------------------------------------------------------------ the test


@pytest.fixture
def toy_registered():
    with MODELS.isolated():
        MODELS.register("toy")(SPEC)
        yield
    assert "toy" not in MODELS


@pytest.fixture
def shards(tmp_path: Path, fixtures_dir: Path) -> Path:
    """Synthetic training shards whose one clip points at a real GRID video (the benchmark's ground truth)."""
    from shards_factory import grid_backed_shards

    return grid_backed_shards(tmp_path / "shards", speakers=1, clips_per_speaker=1, n_frames=75, val_speakers=0,
                              files=1)


@pytest.mark.slow
def test_a_generator_registered_in_one_file_trains_generates_and_is_scored(toy_registered, shards, tmp_path,
                                                                           capsys):
    import av
    from PIL import Image

    from talkbench.app.cli import main
    from talkbench.benchmark.evaluator import evaluate
    from talkbench.benchmark.submissions import load_submission
    from talkbench.benchmark.tasks import build_task
    from talkbench.media import read_av
    from talkbench.models.train import load_run_config, train

    # train: the same loop and checkpoint format as every model
    cfg = load_run_config("toy", None, [*SPEC.tiny, "train.steps=2", "train.batch_size=1", "train.device=cpu",
                                        "train.mlflow=false", "train.val_every=0", "train.checkpoint_every=0",
                                        f"train.out_dir={tmp_path / 'runs'}", "data.num_workers=0"],
                          shards=str(shards))
    result = train("toy", cfg)
    assert (result.checkpoint / "model.safetensors").is_file()

    # generate: `talkbench generate` with a generate option of the toy
    with av.open(str(GRID_CLIPS[0])) as c:
        Image.fromarray(next(c.decode(video=0)).to_ndarray(format="rgb24")).save(tmp_path / "ref.png")
    with wave.open(str(AUDIO / "hdtf_radio31.wav")) as src, wave.open(str(tmp_path / "a.wav"), "wb") as dst:
        dst.setparams(src.getparams())
        dst.writeframes(src.readframes(16_000))
    out = tmp_path / "toy.mp4"
    assert main(["generate", "--checkpoint", str(result.checkpoint), "--reference", str(tmp_path / "ref.png"),
                 "--audio", str(tmp_path / "a.wav"), "--out", str(out), "--option", "steps=3"]) == 0, \
        capsys.readouterr().err
    video = read_av(out)
    assert video.n_frames == 25 and video.frames.shape[1:] == (128, 128, 3)
    assert main(["generate", "--checkpoint", str(result.checkpoint), "--reference", str(tmp_path / "ref.png"),
                 "--audio", str(tmp_path / "a.wav"), "--out", str(out), "--option", "stepz=3"]) == 2
    assert "stepz" in capsys.readouterr().err

    # score: a checkpoint: submission on a task built from the shards
    task = build_task(shards, "toy", split="train", max_clips=1)
    res = evaluate(task, load_submission(f"checkpoint:{result.checkpoint}?steps=1"), metric_names=["psnr"])
    (row,) = res.rows
    assert row["status"] == "ok", row
    assert row["face_found_ratio"] == 1.0 and 10 < row["psnr"] < 60  # the reference face, refined: close to GT
