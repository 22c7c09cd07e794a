"""A small f4 face autoencoder (KL or VQ) for MFTFG's latent renderer (the authors use a VQ-f4 from
LDM; no such weights can be downloaded here, so talkbench trains one on shard faces).

128² faces -> 32×32×3 latents with the default two downsamples. ``kind: kl`` regularises with a small
KL to N(0, 1) (weight in the objective's loss config); ``kind: vq`` snaps to a codebook with a
straight-through gradient and the usual commitment term.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from talkbench.config import StrictModel
from talkbench.models.data import DataSpec
from talkbench.models.layers import norm, to_image
from talkbench.models.objective import Objective, frame_grid, masked_l1, psnr
from talkbench.models.registry import ModelSpec


class FaceAutoencoderConfig(StrictModel):
    kind: Literal["kl", "vq"] = "kl"
    image_size: int = Field(128, ge=8)
    base_channels: int = Field(64, ge=8)
    downsamples: int = Field(2, ge=1, description="2 = f4 (the authors' factor)")
    latent_channels: int = Field(3, ge=1)
    codebook_size: int = Field(512, ge=2, description="vq only")
    latent_scale: float = Field(1.0, gt=0.0, description="latents are multiplied by this for the diffusion")


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), norm(cout), nn.SiLU())


class FaceAutoencoder(nn.Module):
    Config = FaceAutoencoderConfig

    def __init__(self, cfg: FaceAutoencoderConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.base_channels
        enc: list[nn.Module] = [_block(3, c)]
        for _ in range(cfg.downsamples):
            enc += [nn.Conv2d(c, c, 4, stride=2, padding=1), _block(c, c)]
        self.encoder = nn.Sequential(*enc)
        zc = cfg.latent_channels * (2 if cfg.kind == "kl" else 1)
        self.to_latent = nn.Conv2d(c, zc, 1)
        self.from_latent = nn.Conv2d(cfg.latent_channels, c, 3, padding=1)
        dec: list[nn.Module] = [_block(c, c)]
        for _ in range(cfg.downsamples):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), _block(c, c)]
        self.decoder = nn.Sequential(*dec, nn.Conv2d(c, 3, 3, padding=1))
        self.codebook = nn.Embedding(cfg.codebook_size, cfg.latent_channels) if cfg.kind == "vq" else None
        if self.codebook is not None:
            self.codebook.weight.data.uniform_(-1 / cfg.codebook_size, 1 / cfg.codebook_size)

    def _moments(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.encoder(x))

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest codebook vector per position; returns (straight-through z_q, VQ + commitment loss)."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        idx = torch.cdist(flat, self.codebook.weight).argmin(dim=1)
        zq = self.codebook(idx).view(z.shape[0], z.shape[2], z.shape[3], -1).permute(0, 3, 1, 2)
        loss = F.mse_loss(zq, z.detach()) + 0.25 * F.mse_loss(z, zq.detach())
        return z + (zq - z).detach(), loss

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic latent (the KL mean / the quantised code), scaled for the diffusion."""
        m = self._moments(x)
        z = m.chunk(2, dim=1)[0] if self.codebook is None else self.quantize(m)[0]
        return z * self.cfg.latent_scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.decoder(self.from_latent(z / self.cfg.latent_scale)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        m = self._moments(x)
        if self.codebook is None:
            mean, logvar = m.chunk(2, dim=1)
            logvar = logvar.clamp(-30, 20)
            z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
            reg = 0.5 * (mean ** 2 + logvar.exp() - 1 - logvar).mean()
        else:
            z, reg = self.quantize(m)
        return {"reconstruction": torch.tanh(self.decoder(self.from_latent(z))), "regularizer": reg, "latent": z}


# ---------------------------------------------------------------------------- face autoencoder
class AutoencoderLossConfig(StrictModel):
    reconstruction: float = Field(1.0, gt=0.0, description="L1 weight")
    regularizer: float = Field(1e-6, ge=0.0, description="KL weight (kl) or VQ + commitment weight (vq)")


class AutoencoderObjective(Objective):
    LossConfig = AutoencoderLossConfig

    def data_spec(self) -> DataSpec:
        return DataSpec(image_size=self.model_cfg.image_size)

    def _flat(self, batch):
        return to_image(batch["face"].flatten(0, 1)), batch["mask"].flatten()

    def loss(self, group, parts, batch):
        x, m = self._flat(batch)
        out = parts["model"](x)
        reg_w = self.loss_cfg.regularizer if self.model_cfg.kind == "kl" else max(self.loss_cfg.regularizer, 1.0)
        l1 = masked_l1(out["reconstruction"], x, m[:, None, None, None].expand_as(x))
        loss = self.loss_cfg.reconstruction * l1 + reg_w * out["regularizer"]
        return loss, {"loss": loss.item(), "recon_l1": l1.item(), "regularizer": out["regularizer"].item()}

    @torch.no_grad()
    def validate(self, model, batches):
        ps = []
        for b in batches:
            x, m = self._flat(b)
            ps.append(psnr(model.decode(model.encode(x)), x)[m].cpu().numpy())
        return {"val_psnr": float(np.concatenate(ps).mean())}

    @torch.no_grad()
    def sample_grid(self, model, batch):
        x = to_image(batch["face"][0])
        return frame_grid(x, model.decode(model.encode(x)))


SPEC = ModelSpec(
    module=FaceAutoencoder, config=FaceAutoencoderConfig, objective=AutoencoderObjective,
    description="small f4 KL/VQ face autoencoder for MFTFG's latent renderer",
    defaults=("data.seq_len=4", "data.stride=4", "train.lr=1e-4", "train.betas=[0.5,0.9]"),
    tiny=("model.image_size=32", "model.base_channels=8", "data.seq_len=2"),
    small=("model.base_channels=32",), seq_len=2,
    overfit=(("model.base_channels=16",), 60, 5e-3, 1),
)
