"""AU-attention disentanglement (MFTFG-AU module 1; a GANimation-style generator).

identity image ⊕ its speech-AU intensities tiled as planes -> conv 7×7 -> stride-2 downsamples ->
residual blocks -> upsamples -> a colour head and an attention head A (1 channel, sigmoid).
Identity-face = A·ref (what stays), Audio-face = (1 − A)·ref (what speech moves). The authors did not
release its training; talkbench trains it on shard faces (see the ``au_attention`` objective): a source
frame plus the AUs of another frame of the same clip -> A·src + (1 − A)·colour ≈ that frame, with the
frozen AU classifier as the AU critic and mask mean / total-variation penalties.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from talkbench.config import StrictModel
from talkbench.errors import ConfigError
from talkbench.models.data import DataSpec
from talkbench.models.layers import to_image
from talkbench.models.objective import Objective, frame_grid, masked_l1, psnr
from talkbench.models.registry import ModelSpec
from talkbench.schema import SPEECH_AUS


class AUAttentionConfig(StrictModel):
    aus: list[str] = Field(default_factory=lambda: list(SPEECH_AUS), min_length=1)
    image_size: int = Field(128, ge=8)
    conv_dim: int = Field(64, ge=4, description="channels after the 7×7 stem (the authors': 64)")
    downsamples: int = Field(2, ge=0)
    res_blocks: int = Field(6, ge=0)
    max_intensity: float = Field(5.0, gt=0.0, description="AU planes are intensity / max_intensity")


def _inorm(c: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(c, affine=True)


class _Res(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), _inorm(c), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, padding=1, bias=False), _inorm(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class AUAttention(nn.Module):
    Config = AUAttentionConfig

    def __init__(self, cfg: AUAttentionConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.image_size % 2 ** cfg.downsamples:
            raise ValueError(f"image_size {cfg.image_size} must be divisible by 2**downsamples")
        c = cfg.conv_dim
        layers: list[nn.Module] = [nn.Conv2d(3 + len(cfg.aus), c, 7, padding=3, bias=False), _inorm(c), nn.ReLU()]
        for _ in range(cfg.downsamples):
            layers += [nn.Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=False), _inorm(2 * c), nn.ReLU()]
            c *= 2
        layers += [_Res(c) for _ in range(cfg.res_blocks)]
        for _ in range(cfg.downsamples):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1, bias=False), _inorm(c // 2), nn.ReLU()]
            c //= 2
        self.body = nn.Sequential(*layers)
        self.colour = nn.Conv2d(c, 3, 7, padding=3)
        self.attention = nn.Conv2d(c, 1, 7, padding=3)

    def forward(self, image: torch.Tensor, aus: torch.Tensor) -> dict[str, torch.Tensor]:
        """image (N, 3, S, S) in [-1, 1], aus (N, n_aus) intensities -> colour (N,3,S,S), mask A (N,1,S,S)."""
        planes = (aus / self.cfg.max_intensity)[:, :, None, None].expand(-1, -1, *image.shape[-2:])
        h = self.body(torch.cat([image, planes.to(image.dtype)], dim=1))
        colour, mask = torch.tanh(self.colour(h)), torch.sigmoid(self.attention(h))
        return {"colour": colour, "mask": mask, "output": mask * image + (1 - mask) * colour}

    def split(self, image: torch.Tensor, aus: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Identity-face A·ref, Audio-face (1 − A)·ref), both in [-1, 1] (not ×255: the authors' quirk)."""
        a = self.forward(image, aus)["mask"]
        return a * image, (1 - a) * image


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


# ---------------------------------------------------------------------------- AU attention
class AUAttentionLossConfig(StrictModel):
    reconstruction: float = Field(10.0, gt=0.0, description="L1 of the blended output to the target frame")
    au: float = Field(1.0, ge=0.0, description="frozen AU classifier on the output vs the target AUs")
    mask_mean: float = Field(0.1, ge=0.0, description="penalty on mean(A): keep the identity mask from saturating")
    mask_tv: float = Field(1e-5, ge=0.0, description="total variation of A")
    au_classifier_checkpoint: str | None = Field(None, description="needed when au > 0")


class AUAttentionObjective(Objective):
    """Source frame + AUs of another frame of the same clip -> that frame (GANimation-style, supervised)."""

    LossConfig = AUAttentionLossConfig

    def __init__(self, model_cfg, loss_cfg, data_cfg):
        super().__init__(model_cfg, loss_cfg, data_cfg)
        if loss_cfg.au > 0 and not loss_cfg.au_classifier_checkpoint:
            raise ConfigError("loss.au needs loss.au_classifier_checkpoint=PATH (train au_classifier first) "
                              "or loss.au=0 (ablation)")
        if data_cfg.seq_len < 2:
            raise ConfigError("au_attention pairs two frames of a clip: data.seq_len must be >= 2")
        self.classifier: nn.Module | None = None

    def data_spec(self) -> DataSpec:
        return DataSpec(image_size=self.model_cfg.image_size, aus=tuple(self.model_cfg.aus))

    def setup(self, device):
        if self.loss_cfg.au > 0:
            from talkbench.models.checkpoint import load_model

            model, _ = load_model(self.loss_cfg.au_classifier_checkpoint, expect="au_classifier", device=device)
            missing = set(self.model_cfg.aus) - set(model.cfg.aus)
            if missing:
                raise ConfigError(f"the AU classifier does not predict {sorted(missing)}")
            self.classifier = model.requires_grad_(False)

    def _pairs(self, batch):
        faces = to_image(batch["face"])  # (B, T, 3, S, S)
        src, tgt = faces[:, 0], faces[:, -1]  # first and last frame of the sample: same clip, different time
        ok = batch["mask"][:, 0] & batch["mask"][:, -1]
        return src, tgt, batch["aus"][:, -1], batch["au_mask"][:, -1] & ok[:, None], ok

    def loss(self, group, parts, batch):
        src, tgt, aus, au_mask, ok = self._pairs(batch)
        out = parts["model"](src, aus)
        c = self.loss_cfg
        pix = ok[:, None, None, None].expand_as(tgt)
        l_rec = masked_l1(out["output"], tgt, pix)
        l_mean, l_tv = out["mask"].mean(), total_variation(out["mask"])
        loss = c.reconstruction * l_rec + c.mask_mean * l_mean + c.mask_tv * l_tv
        logs = {"recon_l1": l_rec.item(), "mask_mean": l_mean.item(), "mask_tv": l_tv.item()}
        if self.classifier is not None:
            x = out["output"]
            size = self.classifier.cfg.image_size
            if x.shape[-1] != size:
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            pred = self.classifier(x)["intensity"][:, [self.classifier.cfg.aus.index(a) for a in self.model_cfg.aus]]
            l_au = masked_l1(pred, aus, au_mask)
            loss = loss + c.au * l_au
            logs["au_l1"] = l_au.item()
        logs["loss"] = loss.item()
        return loss, logs

    @torch.no_grad()
    def validate(self, model, batches):
        l1s, ps, means = [], [], []
        for b in batches:
            src, tgt, aus, _, ok = self._pairs(b)
            out = model(src, aus)
            l1s.append((out["output"] - tgt).abs().flatten(1).mean(1)[ok].cpu().numpy())
            ps.append(psnr(out["output"], tgt)[ok].cpu().numpy())
            means.append(out["mask"].flatten(1).mean(1)[ok].cpu().numpy())
        return {"val_recon_l1": float(np.concatenate(l1s).mean()), "val_psnr": float(np.concatenate(ps).mean()),
                "val_mask_mean": float(np.concatenate(means).mean())}

    @torch.no_grad()
    def sample_grid(self, model, batch):
        src, tgt, aus, _, _ = self._pairs(batch)
        out = model(src[:4], aus[:4])
        return frame_grid(torch.cat([src[:4], tgt[:4]]), torch.cat([out["output"], out["mask"].expand_as(src[:4]) * 2 - 1]))


SPEC = ModelSpec(
    module=AUAttention, config=AUAttentionConfig, objective=AUAttentionObjective,
    description="identity image + speech AUs -> attention mask splitting Identity-face / Audio-face (MFTFG-AU)",
    defaults=("data.seq_len=8", "data.stride=8"),
    tiny=("model.aus=[AU25,AU26]", "model.image_size=32", "model.conv_dim=8", "model.res_blocks=1", "data.seq_len=4",
          "loss.au=0"),
    small=("model.conv_dim=16", "model.res_blocks=2", "loss.au=0"), seq_len=4,
    overfit=((), 30, 3e-3, 2),
)
