"""AU-RGAN (paper 1, BMVC 2021): the shared generator with a recurrent (GRU/LSTM) fusion + a frame GAN."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from talkbench.config import StrictModel
from talkbench.models.discriminator import FrameDiscriminator
from talkbench.models.generator import (
    SMALL_GENERATOR,
    TINY_GENERATOR,
    GANGenerateOptions,
    GeneratorConfig,
    GeneratorObjective,
    TalkingHeadGenerator,
    generate_frames,
)
from talkbench.models.registry import ModelSpec


class RecurrentFusionConfig(StrictModel):
    cell: Literal["gru", "lstm"] = "gru"
    hidden: int = Field(256, ge=1)
    layers: int = Field(1, ge=1)


class AURGANConfig(GeneratorConfig):
    fusion: RecurrentFusionConfig = Field(default_factory=RecurrentFusionConfig)


class RecurrentFusion(nn.Module):
    """(B, T, D_in) -> (B, T, D_out): a unidirectional GRU/LSTM over the frames, then a projection."""

    def __init__(self, cfg: RecurrentFusionConfig, d_in: int, d_out: int):
        super().__init__()
        rnn = nn.GRU if cfg.cell == "gru" else nn.LSTM
        self.rnn = rnn(d_in, cfg.hidden, cfg.layers, batch_first=True)
        self.proj = nn.Linear(cfg.hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.rnn(x)[0])


class AURGAN(nn.Module):
    Config = AURGANConfig

    def __init__(self, cfg: AURGANConfig):
        super().__init__()
        self.cfg = cfg
        self.generator = TalkingHeadGenerator(cfg, lambda d_in, d_out: RecurrentFusion(cfg.fusion, d_in, d_out))
        self.discriminator = FrameDiscriminator(cfg.discriminator) if cfg.discriminator.enabled else None

    def forward(self, identity: torch.Tensor, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.generator(identity, windows)


SPEC = ModelSpec(
    module=AURGAN, config=AURGANConfig, objective=GeneratorObjective, generate=generate_frames,
    generate_options=GANGenerateOptions,
    description="AU-RGAN (paper 1): identity + audio + Audio-to-AU features -> GRU fusion -> skip decoder; "
                "frame GAN; AU consistency through the frozen AU classifier (train au_classifier first, "
                "then set its checkpoint).",
    defaults=("data.seq_len=50", "data.stride=25", "train.batch_size=8"),
    tiny=(*TINY_GENERATOR, "model.fusion.hidden=32"), small=SMALL_GENERATOR, seq_len=16,
    overfit=(("model.discriminator.enabled=false",), 60, 5e-3, 1),
)
