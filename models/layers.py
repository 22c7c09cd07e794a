"""Building blocks shared by the models: conv encoders, the skip-connected frame decoder, the MFCC CNN."""

from __future__ import annotations

import math

import torch
from torch import nn


def norm(channels: int) -> nn.GroupNorm:
    """GroupNorm, not BatchNorm: results do not depend on the per-rank batch (DDP) or batch size."""
    return nn.GroupNorm(math.gcd(8, channels), channels)


def down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1), norm(cout), nn.LeakyReLU(0.2))


def level_channels(base: int, levels: int) -> list[int]:
    """Channels per resolution level: doubling, capped at 8x base."""
    return [base * 2 ** min(i, 3) for i in range(levels)]


class ImageEncoder(nn.Module):
    """Strided conv encoder: (N, C, S, S) -> (N, out_dim) plus the feature map of every level (skips)."""

    def __init__(self, in_channels: int, image_size: int, base: int, levels: int, out_dim: int):
        super().__init__()
        if image_size % 2**levels:
            raise ValueError(f"image_size {image_size} must be divisible by 2**levels = {2**levels}")
        chs = level_channels(base, levels)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, base, 3, padding=1), nn.LeakyReLU(0.2))
        self.downs = nn.ModuleList(down(cin, cout) for cin, cout in zip([base, *chs[:-1]], chs, strict=True))
        side = image_size // 2**levels
        self.fc = nn.Linear(chs[-1] * side * side, out_dim)
        self.channels = chs

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.stem(x)
        skips = []
        for layer in self.downs:
            x = layer(x)
            skips.append(x)
        return self.fc(x.flatten(1)), skips


class FrameDecoder(nn.Module):
    """(N, in_dim) -> (N, 3, S, S) in [-1, 1], U-Net style: each level may concatenate an identity skip."""

    def __init__(self, in_dim: int, image_size: int, base: int, levels: int, skip_channels: list[int] | None):
        super().__init__()
        chs = level_channels(base, levels)
        self.side = image_size // 2**levels
        self.top = chs[-1]
        self.fc = nn.Linear(in_dim, chs[-1] * self.side * self.side)
        self.use_skips = skip_channels is not None
        ups = []
        for i in reversed(range(levels)):
            cin = chs[i] + (skip_channels[i] if skip_channels is not None else 0)
            cout = chs[i - 1] if i > 0 else base
            ups.append(nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), norm(cout), nn.ReLU()))
        self.ups = nn.ModuleList(ups)
        self.out = nn.Conv2d(base, 3, 3, padding=1)

    def forward(self, z: torch.Tensor, skips: list[torch.Tensor] | None = None) -> torch.Tensor:
        x = self.fc(z).view(-1, self.top, self.side, self.side)
        for j, layer in enumerate(self.ups):
            if self.use_skips:
                if skips is None:
                    raise ValueError("this decoder was built with skip connections; pass the identity skips")
                x = torch.cat([x, skips[len(self.ups) - 1 - j]], dim=1)
            x = layer(x)
        return torch.tanh(self.out(x))


class MfccCNN(nn.Module):
    """Small 2-D CNN over one audio-feature window (N, n_coeffs, n_hops) -> (N, out_dim)."""

    def __init__(self, channels: list[int], out_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for c in channels:
            layers += [nn.Conv2d(cin, c, 3, stride=(1, 2) if cin == 1 else 2, padding=1), norm(c), nn.LeakyReLU(0.2)]
            cin = c
        self.convs = nn.Sequential(*layers)
        # pooling to a fixed grid makes the CNN work for any window length (35 hops, 20 for sync, ...)
        self.pool = nn.AdaptiveAvgPool2d((2, 4))
        self.fc = nn.Linear(cin * 8, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.convs(x.unsqueeze(1))).flatten(1))


def to_image(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [-1, 1] (the decoder's tanh range)."""
    return x.float().div(127.5).sub(1.0)
