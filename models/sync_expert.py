"""Sync expert (SyncNet-style): 5-frame mouth encoder + audio encoder into one embedding space.

Trained contrastively on in-sync vs shifted pairs. Embeddings are L2-normalised, so the benchmark can
use the Euclidean distance like LSE-D. A SyncNet trained here is *not* syncnet_v2: its metric must carry
its own name (GUIDE §3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from talkbench.config import StrictModel
from talkbench.errors import ConfigError
from talkbench.models.data import DataSpec
from talkbench.models.layers import MfccCNN, down, level_channels, to_image
from talkbench.models.objective import Objective
from talkbench.models.registry import ModelSpec
from talkbench.schema import HOPS_PER_FRAME, MFCC_DIM

if TYPE_CHECKING:
    from talkbench.pipelines.audio import AudioFeaturesConfig


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


class SyncLossConfig(StrictModel):
    margin: float = Field(1.0, gt=0.0, description="contrastive margin on the distance of unit embeddings")


class SyncObjective(Objective):
    """SyncNet's contrastive loss: pull in-sync pairs together, push shifted pairs beyond the margin."""

    LossConfig = SyncLossConfig

    def data_spec(self) -> DataSpec:
        c = self.model_cfg
        if self.data_cfg.audio_feature != "mfcc":
            raise ConfigError("sync_expert trains on data.audio_feature=mfcc")
        return DataSpec(mouth_size=(c.mouth_height, c.mouth_width), sync_frames=c.frames)

    def _distances(self, model, batch):
        mouths = to_image(batch["mouth"])
        d_pos = model(mouths, batch["audio"])
        d_neg = model(mouths, batch["audio_neg"])
        return d_pos.float(), d_neg.float()

    def loss(self, group, parts, batch):
        d_pos, d_neg = self._distances(parts["model"], batch)
        loss = (d_pos.pow(2).mean() + F.relu(self.loss_cfg.margin - d_neg).pow(2).mean()) / 2
        return loss, {"loss": loss.item(), "d_pos": d_pos.mean().item(), "d_neg": d_neg.mean().item()}

    @torch.no_grad()
    def validate(self, model, batches):
        pos, neg = zip(*(self._distances(model, b) for b in batches), strict=True)
        pos, neg = torch.cat(pos), torch.cat(neg)
        return {"val_d_pos": pos.mean().item(), "val_d_neg": neg.mean().item(),
                "val_pair_acc": (pos < neg).float().mean().item()}


def load_sync_expert(path: str) -> tuple[SyncExpert, AudioFeaturesConfig]:
    """A trained sync expert from a checkpoint (folder or model.safetensors), in eval mode on the CPU, and
    the audio-feature settings of the shards it was trained on (recorded in the checkpoint; the pipeline
    defaults for a checkpoint that predates the record), so it is scored on the features it learned."""
    import json

    from talkbench.models.checkpoint import load_model
    from talkbench.pipelines.audio import AudioFeaturesConfig

    model, meta = load_model(path, expect="sync_expert")
    recorded = json.loads(meta.get("pipeline_config") or "{}").get("audio_features") or {}
    return model, AudioFeaturesConfig.model_validate(recorded)


SPEC = ModelSpec(
    module=SyncExpert, config=SyncExpertConfig, objective=SyncObjective,
    description="Sync expert (SyncNet-style): 5-frame mouth encoder + 12 x 20 MFCC encoder, contrastive "
                "in-sync vs shifted pairs. A metric built on it must not be called LSE (it is not syncnet_v2).",
    defaults=("train.batch_size=64", "train.lr=0.0001", "train.betas=[0.9,0.999]"),
    tiny=("model.mouth_height=16", "model.mouth_width=32", "model.base_channels=8", "model.levels=3",
          "model.audio_channels=[8,16]", "model.embed_dim=16", "data.sync_min_shift=3", "data.sync_max_shift=8"),
    small=("model.base_channels=16",), seq_len=5,
    overfit=((), 60, 3e-3, 4),
)
