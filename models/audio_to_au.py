"""Audio-to-AU (paper 1): MFCC window sequence -> per-AU 64-d features and intensities.

Per AU (GUIDE §1): a small 2-D CNN over each 12 x 35 MFCC window -> 2-layer bidirectional LSTM (hidden
128) over the frames -> FC 256 -> 128 -> 64 (the AU feature) -> FC 64 -> 1 (the intensity). The paper
trains one network per AU; ``shared_trunk`` shares the CNN + LSTM and keeps per-AU heads (5x cheaper).
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field
from torch import nn

from talkbench.config import StrictModel
from talkbench.models.data import DataSpec
from talkbench.models.layers import MfccCNN
from talkbench.models.objective import AULossConfig, Objective, au_metrics, masked_l1
from talkbench.models.registry import ModelSpec
from talkbench.schema import MFCC_DIM, SPEECH_AUS


class AudioToAUConfig(StrictModel):
    aus: list[str] = Field(default_factory=lambda: list(SPEECH_AUS), min_length=1)
    n_coeffs: int = Field(MFCC_DIM, ge=1, description="rows of one audio window (12 MFCC)")
    cnn_channels: list[int] = Field(default_factory=lambda: [32, 64, 128], min_length=1)
    cnn_dim: int = Field(256, ge=1)
    lstm_hidden: int = Field(128, ge=1)
    lstm_layers: int = Field(2, ge=1)
    fc_dims: list[int] = Field(default_factory=lambda: [128, 64], min_length=1, description="last = feature size")
    shared_trunk: bool = False
    max_intensity: float = Field(5.0, gt=0.0)


class _Trunk(nn.Module):
    """CNN per window, then a BiLSTM across the frames: (B, T, C, H) -> (B, T, 2 * hidden)."""

    def __init__(self, cfg: AudioToAUConfig):
        super().__init__()
        self.cnn = MfccCNN(cfg.cnn_channels, cfg.cnn_dim)
        self.lstm = nn.LSTM(cfg.cnn_dim, cfg.lstm_hidden, cfg.lstm_layers, batch_first=True, bidirectional=True)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        b, t = windows.shape[:2]
        x = self.cnn(windows.flatten(0, 1)).view(b, t, -1)
        return self.lstm(x)[0]


class _Head(nn.Module):
    """FC 2*hidden -> ... -> feature (64) and FC feature -> 1."""

    def __init__(self, cfg: AudioToAUConfig):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 2 * cfg.lstm_hidden
        for d in cfg.fc_dims:
            layers += [nn.Linear(cin, d), nn.LeakyReLU(0.2)]
            cin = d
        self.feature = nn.Sequential(*layers)
        self.out = nn.Linear(cin, 1)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.feature(h)
        return f, self.out(f).squeeze(-1)


class AudioToAU(nn.Module):
    Config = AudioToAUConfig

    def __init__(self, cfg: AudioToAUConfig):
        super().__init__()
        self.cfg = cfg
        n = len(cfg.aus)
        self.trunks = nn.ModuleList(_Trunk(cfg) for _ in range(1 if cfg.shared_trunk else n))
        self.heads = nn.ModuleList(_Head(cfg) for _ in range(n))

    @property
    def feature_dim(self) -> int:
        return self.cfg.fc_dims[-1]

    def forward(self, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        """windows (B, T, n_coeffs, n_hops) -> features (B, T, n_aus, 64), intensity (B, T, n_aus)."""
        shared = self.trunks[0](windows) if self.cfg.shared_trunk else None
        feats, ints = [], []
        for i, head in enumerate(self.heads):
            f, y = head(shared if shared is not None else self.trunks[i](windows))
            feats.append(f)
            ints.append(y)
        intensity = torch.sigmoid(torch.stack(ints, dim=-1)) * self.cfg.max_intensity
        return {"features": torch.stack(feats, dim=2), "intensity": intensity}


class AudioToAUObjective(Objective):
    LossConfig = AULossConfig

    def data_spec(self) -> DataSpec:
        return DataSpec(windows=True, aus=tuple(self.model_cfg.aus))

    def loss(self, group, parts, batch):
        out = parts["model"](batch["windows"])
        loss = self.loss_cfg.intensity * masked_l1(out["intensity"], batch["aus"], batch["au_mask"])
        return loss, {"loss": loss.item()}

    @torch.no_grad()
    def validate(self, model, batches):
        preds = [model(b["windows"])["intensity"].flatten(0, 1).float().cpu().numpy() for b in batches]
        targets = [b["aus"].flatten(0, 1).cpu().numpy() for b in batches]
        masks = [b["au_mask"].flatten(0, 1).cpu().numpy() for b in batches]
        return au_metrics(self.model_cfg.aus, np.concatenate(preds), np.concatenate(targets),
                          np.concatenate(masks), "val_")


SPEC = ModelSpec(
    module=AudioToAU, config=AudioToAUConfig, objective=AudioToAUObjective,
    description="Audio-to-AU: per AU a 2-D CNN over 12 x 35 MFCC windows -> 2-layer BiLSTM (128) -> "
                "FC 256-128-64 -> 1.",
    defaults=("data.seq_len=25", "train.batch_size=32", "train.lr=0.0001", "train.betas=[0.9,0.999]"),
    tiny=("model.aus=[AU25,AU26]", "model.cnn_channels=[8,16]", "model.cnn_dim=16", "model.lstm_hidden=8",
          "model.fc_dims=[8,4]", "data.seq_len=8"),
    small=("model.shared_trunk=true",), seq_len=25,
    overfit=(("model.shared_trunk=true", "model.lstm_hidden=16"), 100, 3e-3, 2),
)
