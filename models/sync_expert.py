"""Sync expert (SyncNet-style): 5-frame mouth encoder + audio encoder into one embedding space.

Trained contrastively on in-sync vs shifted pairs. Embeddings are L2-normalised, so the benchmark can
use the Euclidean distance like LSE-D. A SyncNet trained here is *not* syncnet_v2: its metric must carry
its own name (GUIDE §3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from talkbench.config import StrictModel
from talkbench.models.layers import MfccCNN, down, level_channels
from talkbench.models.registry import register_model
from talkbench.schema import HOPS_PER_FRAME, MFCC_DIM


class SyncExpertConfig(StrictModel):
    frames: int = Field(5, ge=1, description="video frames per window (audio: frames x 4 hops)")
    mouth_height: int = Field(48, ge=8)
    mouth_width: int = Field(96, ge=8)
    n_coeffs: int = Field(MFCC_DIM, ge=1)
    base_channels: int = Field(32, ge=1)
    levels: int = Field(4, ge=1)
    audio_channels: list[int] = Field(default_factory=lambda: [64, 128, 256], min_length=1)
    embed_dim: int = Field(512, ge=1)

    @property
    def audio_hops(self) -> int:
        return self.frames * HOPS_PER_FRAME


@register_model("sync_expert")
class SyncExpert(nn.Module):
    Config = SyncExpertConfig

    def __init__(self, cfg: SyncExpertConfig):
        super().__init__()
        self.cfg = cfg
        chs = level_channels(cfg.base_channels, cfg.levels)
        layers: list[nn.Module] = [nn.Conv2d(3 * cfg.frames, cfg.base_channels, 3, padding=1), nn.LeakyReLU(0.2)]
        layers += [down(a, b) for a, b in zip([cfg.base_channels, *chs[:-1]], chs, strict=True)]
        self.video = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(chs[-1], cfg.embed_dim))
        self.audio = MfccCNN(cfg.audio_channels, cfg.embed_dim)

    def embed_video(self, mouths: torch.Tensor) -> torch.Tensor:
        """mouths (N, frames, 3, h, w) in [-1, 1] -> unit embeddings (N, D)."""
        return F.normalize(self.video(mouths.flatten(1, 2)), dim=-1)

    def embed_audio(self, windows: torch.Tensor) -> torch.Tensor:
        """audio windows (N, n_coeffs, frames * 4) -> unit embeddings (N, D)."""
        return F.normalize(self.audio(windows), dim=-1)

    def forward(self, mouths: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        """Euclidean distance between the video and audio embeddings, (N,)."""
        return (self.embed_video(mouths) - self.embed_audio(windows)).norm(dim=-1)


def load_sync_expert(path: str) -> SyncExpert:
    """A trained sync expert from a checkpoint (folder or model.safetensors), in eval mode on the CPU."""
    from talkbench.models.checkpoint import load_model

    return load_model(path, expect="sync_expert")[0]
