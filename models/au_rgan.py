"""AU-RGAN (paper 1, BMVC 2021): the shared generator with a recurrent (GRU/LSTM) fusion + a frame GAN."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from talkbench.config import StrictModel
from talkbench.models.generator import FusionGAN, GeneratorConfig, fusion_gan_spec


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


class AURGAN(FusionGAN):
    """AU-RGAN: the shared :class:`FusionGAN` with the recurrent (GRU/LSTM) fusion."""

    Config = AURGANConfig
    Fusion = RecurrentFusion


SPEC = fusion_gan_spec(
    AURGAN,
    description="AU-RGAN (paper 1): identity + audio + Audio-to-AU features -> GRU fusion -> skip decoder; "
                "frame GAN; AU consistency through the frozen AU classifier (train au_classifier first, "
                "then set its checkpoint).",
    tiny=("model.fusion.hidden=32",),
)
