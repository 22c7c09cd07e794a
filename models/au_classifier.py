"""AU classifier: aligned face crop -> speech-AU intensities (0-5) and occurrence logits.

Used on its own (per-AU MAE / Pearson r on held-out speakers) and, frozen, as the AU-consistency judge
of the generators (GUIDE §1, paper 1).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from talkbench.config import StrictModel
from talkbench.models.layers import ImageEncoder
from talkbench.models.registry import register_model
from talkbench.schema import SPEECH_AUS


class AUClassifierConfig(StrictModel):
    aus: list[str] = Field(default_factory=lambda: list(SPEECH_AUS), min_length=1)
    image_size: int = Field(128, ge=8)
    base_channels: int = Field(32, ge=1)
    levels: int = Field(4, ge=1, description="stride-2 conv levels (128 -> 8 with 4)")
    feature_dim: int = Field(256, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    max_intensity: float = Field(5.0, gt=0.0, description="OpenFace AU intensity scale")


@register_model("au_classifier")
class AUClassifier(nn.Module):
    Config = AUClassifierConfig

    def __init__(self, cfg: AUClassifierConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = ImageEncoder(3, cfg.image_size, cfg.base_channels, cfg.levels, cfg.feature_dim)
        self.head = nn.Sequential(nn.LeakyReLU(0.2), nn.Dropout(cfg.dropout), nn.Linear(cfg.feature_dim, 2 * len(cfg.aus)))

    def forward(self, faces: torch.Tensor) -> dict[str, torch.Tensor]:
        """faces (N, 3, S, S) in [-1, 1] -> intensity (N, n_aus) in [0, max], occurrence_logit (N, n_aus)."""
        return self.forward_features(faces)[0]

    def forward_features(self, faces: torch.Tensor) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        """Also returns the encoder's feature maps (used for the optional feature-matching loss)."""
        feat, maps = self.encoder(faces)
        raw, occ = self.head(feat).chunk(2, dim=1)
        return {"intensity": torch.sigmoid(raw) * self.cfg.max_intensity, "occurrence_logit": occ}, maps
