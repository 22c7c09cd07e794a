"""AU-RGAN (paper 1, BMVC 2021): the shared generator with a recurrent (GRU/LSTM) fusion + a frame GAN."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from talkbench.config import StrictModel
from talkbench.models.discriminator import FrameDiscriminator
from talkbench.models.generator import GeneratorConfig, TalkingHeadGenerator
from talkbench.models.registry import register_model


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


@register_model("au_rgan")
class AURGAN(nn.Module):
    Config = AURGANConfig

    def __init__(self, cfg: AURGANConfig):
        super().__init__()
        self.cfg = cfg
        self.generator = TalkingHeadGenerator(cfg, lambda d_in, d_out: RecurrentFusion(cfg.fusion, d_in, d_out))
        self.discriminator = FrameDiscriminator(cfg.discriminator) if cfg.discriminator.enabled else None

    def forward(self, identity: torch.Tensor, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.generator(identity, windows)
