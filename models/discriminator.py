"""Frame discriminator (PatchGAN-style): is this face frame real, given the identity frame?"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from talkbench.config import StrictModel
from talkbench.models.layers import down, level_channels


class DiscriminatorConfig(StrictModel):
    """The ``model.discriminator`` section of the GAN generators (off: a generator trained on its losses alone)."""

    enabled: bool = True
    base_channels: int = Field(64, ge=1)
    levels: int = Field(3, ge=1)
    conditional: bool = Field(True, description="the discriminator also sees the identity frame")


class FrameDiscriminator(nn.Module):
    """(frames (N, 3, S, S), identity (N, 3, S, S)) -> patch logits (N, 1, s, s)."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.conditional = cfg.conditional
        chs = level_channels(cfg.base_channels, cfg.levels)
        cin = 6 if cfg.conditional else 3
        layers: list[nn.Module] = [nn.Conv2d(cin, chs[0], 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        layers += [down(a, b) for a, b in zip(chs[:-1], chs[1:], strict=True)]
        layers.append(nn.Conv2d(chs[-1], 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, frames: torch.Tensor, identity: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional:
            if identity is None:
                raise ValueError("a conditional discriminator needs the identity frame")
            frames = torch.cat([frames, identity], dim=1)
        return self.net(frames)
