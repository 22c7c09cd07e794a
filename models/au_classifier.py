"""AU classifier: aligned face crop -> speech-AU intensities (0-5) and occurrence logits.

Used on its own (per-AU MAE / Pearson r on held-out speakers) and, frozen, as the AU-consistency judge
of the generators (GUIDE §1, paper 1).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from talkbench.config import StrictModel
from talkbench.models.data import DataSpec
from talkbench.models.layers import ImageEncoder, to_image
from talkbench.models.objective import AULossConfig, Batch, Objective, au_metrics, masked_l1
from talkbench.models.registry import ModelSpec
from talkbench.schema import SPEECH_AUS


class AUClassifierConfig(StrictModel):
    aus: list[str] = Field(default_factory=lambda: list(SPEECH_AUS), min_length=1)
    image_size: int = Field(128, ge=8)
    base_channels: int = Field(32, ge=1)
    levels: int = Field(4, ge=1, description="stride-2 conv levels (128 -> 8 with 4)")
    feature_dim: int = Field(256, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    max_intensity: float = Field(5.0, gt=0.0, description="OpenFace AU intensity scale")


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


class AUClassifierObjective(Objective):
    LossConfig = AULossConfig

    def data_spec(self) -> DataSpec:
        return DataSpec(image_size=self.model_cfg.image_size, aus=tuple(self.model_cfg.aus))

    def _flat(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return to_image(batch["face"].flatten(0, 1)), batch["aus"].flatten(0, 1), batch["au_mask"].flatten(0, 1)

    def loss(self, group, parts, batch):
        faces, aus, mask = self._flat(batch)
        out = parts["model"](faces)
        l_int = masked_l1(out["intensity"], aus, mask)
        occ = (aus >= self.loss_cfg.occurrence_threshold).float()
        bce = F.binary_cross_entropy_with_logits(out["occurrence_logit"].float(), occ, reduction="none")
        l_occ = (bce * mask).sum() / mask.sum().clamp_min(1)
        loss = self.loss_cfg.intensity * l_int + self.loss_cfg.occurrence * l_occ
        return loss, {"loss": loss.item(), "intensity_l1": l_int.item(), "occurrence_bce": l_occ.item()}

    @torch.no_grad()
    def validate(self, model, batches):
        preds, targets, masks, occ_hits = [], [], [], []
        for b in batches:
            faces, aus, mask = self._flat(b)
            out = model(faces)
            preds.append(out["intensity"].float().cpu().numpy())
            targets.append(aus.cpu().numpy())
            masks.append(mask.cpu().numpy())
            occ = aus >= self.loss_cfg.occurrence_threshold
            occ_hits.append(((out["occurrence_logit"] > 0) == occ)[mask].float().cpu().numpy())
        logs = au_metrics(self.model_cfg.aus, np.concatenate(preds), np.concatenate(targets),
                          np.concatenate(masks), "val_")
        logs["val_occurrence_acc"] = float(np.concatenate(occ_hits).mean())
        return logs


SPEC = ModelSpec(
    module=AUClassifier, config=AUClassifierConfig, objective=AUClassifierObjective,
    description="AU classifier: aligned face crop -> speech-AU intensities and occurrences (GUIDE §1, paper 1).",
    defaults=("data.seq_len=1", "train.batch_size=64", "train.lr=0.0001", "train.betas=[0.9,0.999]"),
    tiny=("model.image_size=32", "model.base_channels=8", "model.levels=3", "model.feature_dim=32",
          "model.dropout=0.1", "data.seq_len=1"),
    small=("model.base_channels=16",), seq_len=1,
    overfit=(("model.dropout=0",), 40, 3e-3, 2),
)
