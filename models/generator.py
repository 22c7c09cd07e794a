"""The talking-head generator both papers share; only the temporal fusion differs (GRU/LSTM vs TCN-SA).

identity frame -> identity encoder (vector + skip maps); MFCC windows -> audio encoder (per frame);
MFCC windows -> Audio-to-AU (per-AU 64-d features); [identity, audio, AU] per frame -> fusion ->
frame decoder with skip connections from the identity. Every component has a switch for ablations.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import Field
from torch import nn

from talkbench.config import StrictModel
from talkbench.models.audio_to_au import AudioToAU, AudioToAUConfig
from talkbench.models.layers import FrameDecoder, ImageEncoder, MfccCNN
from talkbench.schema import MFCC_DIM


class DiscriminatorConfig(StrictModel):
    enabled: bool = True
    base_channels: int = Field(64, ge=1)
    levels: int = Field(3, ge=1)
    conditional: bool = Field(True, description="the discriminator also sees the identity frame")


class GeneratorConfig(StrictModel):
    image_size: int = Field(128, ge=8)
    base_channels: int = Field(32, ge=1)
    levels: int = Field(4, ge=1)
    identity_dim: int = Field(256, ge=1)
    audio_dim: int = Field(256, ge=1)
    audio_cnn_channels: list[int] = Field(default_factory=lambda: [32, 64, 128], min_length=1)
    n_coeffs: int = Field(MFCC_DIM, ge=1)
    latent_dim: int = Field(256, ge=1)
    use_audio_encoder: bool = True
    use_audio_to_au: bool = True
    use_skips: bool = True
    audio_to_au: AudioToAUConfig = Field(default_factory=AudioToAUConfig)
    discriminator: DiscriminatorConfig = Field(default_factory=DiscriminatorConfig)


class TalkingHeadGenerator(nn.Module):
    """(identity (B, 3, S, S) in [-1, 1], windows (B, T, C, H)) -> frames (B, T, 3, S, S) in [-1, 1]."""

    def __init__(self, cfg: GeneratorConfig, make_fusion: Callable[[int, int], nn.Module]):
        super().__init__()
        if not (cfg.use_audio_encoder or cfg.use_audio_to_au):
            raise ValueError("the generator needs audio: enable use_audio_encoder or use_audio_to_au")
        self.cfg = cfg
        self.identity_encoder = ImageEncoder(3, cfg.image_size, cfg.base_channels, cfg.levels, cfg.identity_dim)
        self.audio_encoder = MfccCNN(cfg.audio_cnn_channels, cfg.audio_dim) if cfg.use_audio_encoder else None
        self.audio_to_au = None
        if cfg.use_audio_to_au:
            self.audio_to_au = AudioToAU(cfg.audio_to_au.model_copy(update={"n_coeffs": cfg.n_coeffs}))
        fused_in = cfg.identity_dim
        fused_in += cfg.audio_dim if self.audio_encoder is not None else 0
        fused_in += len(cfg.audio_to_au.aus) * cfg.audio_to_au.fc_dims[-1] if self.audio_to_au is not None else 0
        self.fusion = make_fusion(fused_in, cfg.latent_dim)
        skips = self.identity_encoder.channels if cfg.use_skips else None
        self.decoder = FrameDecoder(cfg.latent_dim, cfg.image_size, cfg.base_channels, cfg.levels, skips)

    def forward(self, identity: torch.Tensor, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        b, t = windows.shape[:2]
        id_vec, id_maps = self.identity_encoder(identity)
        parts = [id_vec.unsqueeze(1).expand(b, t, -1)]
        out: dict[str, torch.Tensor] = {}
        if self.audio_encoder is not None:
            parts.append(self.audio_encoder(windows.flatten(0, 1)).view(b, t, -1))
        if self.audio_to_au is not None:
            au = self.audio_to_au(windows)
            parts.append(au["features"].flatten(2))
            out["au_intensity"] = au["intensity"]
        latent = self.fusion(torch.cat(parts, dim=-1))  # (B, T, latent)
        skips = None
        if self.cfg.use_skips:  # the same identity maps for every frame of the clip
            skips = [m.unsqueeze(1).expand(b, t, *m.shape[1:]).flatten(0, 1) for m in id_maps]
        frames = self.decoder(latent.flatten(0, 1), skips)
        out["frames"] = frames.view(b, t, *frames.shape[1:])
        return out
