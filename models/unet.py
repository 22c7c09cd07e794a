"""A small conditional UNet for ε-prediction: time embedding, residual blocks, and LEARNED cross-attention
from image positions to a few conditioning tokens per frame.

Why hand-written rather than ``diffusers.UNet2DConditionModel``: at the sizes that run on a 2-core CPU
(≤ 32², two or three levels) a ~150-line network is faster to build and run, needs no new
dependency, and makes the one property that matters here explicit and testable: the key/value
projections of the cross-attention are module parameters (trained), unlike the released MFTFG-AU
code, which builds fresh random ``to_k``/``to_v`` layers inside every forward call.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from talkbench.config import StrictModel
from talkbench.models.layers import norm


class UNetConfig(StrictModel):
    channels: list[int] = Field(default_factory=lambda: [64, 128, 256], min_length=1,
                                description="channels per resolution level (each but the last halves the size)")
    attention_levels: list[int] = Field(default_factory=lambda: [1, 2], description="levels with cross-attention")
    heads: int = Field(4, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _check(self) -> UNetConfig:
        bad = [i for i in self.attention_levels if not 0 <= i < len(self.channels)]
        if bad:
            raise ValueError(f"attention_levels {bad} outside 0..{len(self.channels) - 1}")
        odd = [c for c in self.channels if c % self.heads or c % 8]
        if odd:
            raise ValueError(f"channels {odd} must be divisible by heads={self.heads} and by 8 (GroupNorm)")
        return self


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([args.cos(), args.sin()], dim=1)
    return F.pad(emb, (0, dim % 2))


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int, dropout: float):
        super().__init__()
        self.in_layers = nn.Sequential(norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(temb, cout))
        self.out_layers = nn.Sequential(norm(cout), nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.out_layers(h)


class CrossAttention(nn.Module):
    """Image positions (queries) attend over the frame's tokens; q, k, v, out are learned Linear layers."""

    def __init__(self, channels: int, context_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = norm(channels)
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_k = nn.Linear(context_dim, channels, bias=False)
        self.to_v = nn.Linear(context_dim, channels, bias=False)
        self.to_out = nn.Linear(channels, channels)
        self.ff = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, 4 * channels), nn.GELU(),
                                nn.Linear(4 * channels, channels))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:  # x (N,C,H,W), ctx (N,K,D)
        n, c, h, w = x.shape
        q = self.to_q(self.norm(x).flatten(2).transpose(1, 2))  # (N, HW, C)
        k, v = self.to_k(context), self.to_v(context)

        def split(z: torch.Tensor) -> torch.Tensor:
            return z.view(n, -1, self.heads, c // self.heads).transpose(1, 2)

        a = F.scaled_dot_product_attention(split(q), split(k), split(v))
        y = self.to_out(a.transpose(1, 2).reshape(n, h * w, c))
        y = y + self.ff(y)
        return x + y.transpose(1, 2).view(n, c, h, w)


class ConditionalUNet(nn.Module):
    """(x_t (N, C_in, H, W), t (N,), tokens (N, K, D)) -> ε (N, C_out, H, W)."""

    def __init__(self, cfg: UNetConfig, in_channels: int, out_channels: int, context_dim: int):
        super().__init__()
        chs = cfg.channels
        temb = 4 * chs[0]
        self.base = chs[0]
        self.time_mlp = nn.Sequential(nn.Linear(chs[0], temb), nn.SiLU(), nn.Linear(temb, temb))
        self.stem = nn.Conv2d(in_channels, chs[0], 3, padding=1)
        self.down_res, self.down_attn, self.downsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        cin = chs[0]
        for i, c in enumerate(chs):
            self.down_res.append(ResBlock(cin, c, temb, cfg.dropout))
            self.down_attn.append(CrossAttention(c, context_dim, cfg.heads) if i in cfg.attention_levels else nn.Identity())
            last = i == len(chs) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))
            cin = c
        self.mid1 = ResBlock(cin, cin, temb, cfg.dropout)
        self.mid_attn = CrossAttention(cin, context_dim, cfg.heads)
        self.mid2 = ResBlock(cin, cin, temb, cfg.dropout)
        self.up_res, self.up_attn, self.upsample = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(chs))):
            c = chs[i]
            self.up_res.append(ResBlock(cin + c, c, temb, cfg.dropout))
            self.up_attn.append(CrossAttention(c, context_dim, cfg.heads) if i in cfg.attention_levels else nn.Identity())
            self.upsample.append(nn.Identity() if i == 0 else nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                                                             nn.Conv2d(c, c, 3, padding=1)))
            cin = c
        self.out = nn.Sequential(norm(cin), nn.SiLU(), nn.Conv2d(cin, out_channels, 3, padding=1))
        # zero output at init (ADM/LDM): the network starts as the preconditioning's prior, not as noise
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)
        self.factor = 2 ** (len(chs) - 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise ValueError(f"input {tuple(x.shape[-2:])} is not divisible by {self.factor} (UNet levels)")
        emb = self.time_mlp(timestep_embedding(t, self.base))
        h = self.stem(x)
        skips = []
        for res, attn, ds in zip(self.down_res, self.down_attn, self.downsample, strict=True):
            h = res(h, emb)
            h = attn(h, context) if isinstance(attn, CrossAttention) else h
            skips.append(h)
            h = ds(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb), context), emb)
        for res, attn, us in zip(self.up_res, self.up_attn, self.upsample, strict=True):
            h = res(torch.cat([h, skips.pop()], dim=1), emb)
            h = attn(h, context) if isinstance(attn, CrossAttention) else h
            h = us(h)
        return self.out(h)
