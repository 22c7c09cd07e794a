"""TCN-SA (paper 2, arXiv 2204.12756): the shared generator with a dilated non-causal temporal
convolutional self-attention fusion (GUIDE §1: 2 blocks, 512 then 1024 channels, kernel 3, dilations
1 and 2, padding = dilation, weight-norm convs, ReLU, dropout 0.2, 4-head self-attention with residual +
LayerNorm inside each block)."""

from __future__ import annotations

import torch
from pydantic import Field, model_validator
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from talkbench.config import StrictModel
from talkbench.models.generator import FusionGAN, GeneratorConfig, fusion_gan_spec


class TCNConfig(StrictModel):
    channels: list[int] = Field(default_factory=lambda: [512, 1024], min_length=1)
    kernel_size: int = Field(3, ge=1)
    dilations: list[int] = Field(default_factory=lambda: [1, 2], min_length=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    heads: int = Field(4, ge=1)

    @model_validator(mode="after")
    def _check(self) -> TCNConfig:
        if len(self.channels) != len(self.dilations):
            raise ValueError(f"channels {self.channels} and dilations {self.dilations} need the same length")
        if self.kernel_size % 2 == 0:
            raise ValueError("kernel_size must be odd so padding = dilation keeps the length (non-causal)")
        bad = [c for c in self.channels if c % self.heads]
        if bad:
            raise ValueError(f"channels {bad} are not divisible by heads={self.heads}")
        return self


class TCNSAConfig(GeneratorConfig):
    fusion: TCNConfig = Field(default_factory=TCNConfig)


class TemporalBlock(nn.Module):
    """Two weight-norm dilated convs (length preserving) + residual, then self-attention + LayerNorm."""

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int, dropout: float, heads: int):
        super().__init__()
        pad = dilation * (kernel - 1) // 2  # = dilation for kernel 3
        self.convs = nn.Sequential(
            weight_norm(nn.Conv1d(cin, cout, kernel, padding=pad, dilation=dilation)), nn.ReLU(), nn.Dropout(dropout),
            weight_norm(nn.Conv1d(cout, cout, kernel, padding=pad, dilation=dilation)), nn.ReLU(), nn.Dropout(dropout),
        )
        self.residual = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()
        self.attn = nn.MultiheadAttention(cout, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        y = torch.relu(self.convs(x) + self.residual(x)).transpose(1, 2)  # (B, T, C)
        y = self.norm(y + self.attn(y, y, y, need_weights=False)[0])
        return y.transpose(1, 2)


class TCNSAFusion(nn.Module):
    def __init__(self, cfg: TCNConfig, d_in: int, d_out: int):
        super().__init__()
        cins = [d_in, *cfg.channels[:-1]]
        self.blocks = nn.Sequential(*[
            TemporalBlock(a, b, cfg.kernel_size, d, cfg.dropout, cfg.heads)
            for a, b, d in zip(cins, cfg.channels, cfg.dilations, strict=True)
        ])
        self.proj = nn.Linear(cfg.channels[-1], d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D_in) -> (B, T, D_out)
        return self.proj(self.blocks(x.transpose(1, 2)).transpose(1, 2))


class TCNSA(FusionGAN):
    """TCN-SA: the shared :class:`FusionGAN` with the dilated TCN self-attention fusion."""

    Config = TCNSAConfig
    Fusion = TCNSAFusion


SPEC = fusion_gan_spec(
    TCNSA,
    description="TCN-SA (paper 2): the AU-RGAN generator with the dilated non-causal TCN self-attention "
                "fusion (2 blocks, 512 then 1024 channels, kernel 3, dilations 1 and 2, weight norm, "
                "dropout 0.2, 4 heads).",
    tiny=("model.fusion.channels=[16,32]", "model.fusion.dropout=0.0"), small=("model.fusion.channels=[256,512]",),
)
