"""The training-objective protocol every model file implements, and helpers the objectives share.

An objective says what training a model means: the data it needs, its losses, its validation metrics.
Each model file defines its own objective next to the model and names it in its ``ModelSpec``.

The training loop (``talkbench.models.train``) is model-agnostic: every step it runs each optimizer
group of the objective in order (one group for most models; "generator" then "discriminator" for the
GANs), calling ``objective.loss(group, parts, batch)``. ``parts`` are the trainable modules, possibly
DDP-wrapped, so every forward goes through the wrapper.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch import nn

from talkbench.config import StrictModel
from talkbench.models.data import DataConfig, DataSpec

Batch = dict[str, torch.Tensor]
Logs = dict[str, float]


# ---------------------------------------------------------------------------- loss configs
class AULossConfig(StrictModel):
    intensity: float = Field(1.0, ge=0.0, description="weight of the masked L1 on AU intensities")
    occurrence: float = Field(0.5, ge=0.0, description="weight of the BCE on occurrences (AU classifier)")
    occurrence_threshold: float = Field(1.0, gt=0.0, description="intensity >= this counts as present")


# ---------------------------------------------------------------------------- helpers
def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(pred.dtype)
    return ((pred - target).abs() * m).sum() / m.sum().clamp_min(1.0)


def au_metrics(aus: list[str], pred: np.ndarray, target: np.ndarray, mask: np.ndarray, prefix: str) -> Logs:
    """Per-AU MAE and Pearson r over the valid frames (r is NaN when either side is constant)."""
    out: Logs = {}
    for i, au in enumerate(aus):
        m = mask[:, i]
        p, t = pred[m, i], target[m, i]
        out[f"{prefix}{au}_mae"] = float(np.abs(p - t).mean()) if m.any() else float("nan")
        ok = m.sum() > 1 and p.std() > 0 and t.std() > 0
        out[f"{prefix}{au}_r"] = float(np.corrcoef(p, t)[0, 1]) if ok else float("nan")
    maes = [out[f"{prefix}{a}_mae"] for a in aus]
    out[f"{prefix}mae_mean"] = float(np.nanmean(maes)) if np.isfinite(maes).any() else float("nan")
    return out


def frame_grid(real: torch.Tensor, fake: torch.Tensor, n: int = 8) -> np.ndarray:
    """Two rows (real, generated) of up to n frames of one clip as a (2S, nS, 3) uint8 image."""
    rows = []
    for x in (real[:n], fake[:n]):
        x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()  # (n, 3, S, S)
        rows.append(np.concatenate(list(x.transpose(0, 2, 3, 1)), axis=1))
    return np.concatenate(rows, axis=0)


class Objective:
    groups: tuple[str, ...] = ("model",)
    LossConfig: type[StrictModel] = StrictModel

    def __init__(self, model_cfg: Any, loss_cfg: Any, data_cfg: DataConfig):
        self.model_cfg, self.loss_cfg, self.data_cfg = model_cfg, loss_cfg, data_cfg

    def data_spec(self) -> DataSpec:
        raise NotImplementedError

    def parts(self, model: nn.Module) -> dict[str, nn.Module]:
        """The trainable module of each optimizer group."""
        return {"model": model}

    def setup(self, device: torch.device) -> None:
        """Load frozen helpers (e.g. the AU classifier) once the device is known."""

    def loss(self, group: str, parts: dict[str, nn.Module], batch: Batch) -> tuple[torch.Tensor, Logs]:
        raise NotImplementedError

    @torch.no_grad()
    def validate(self, model: nn.Module, batches: list[Batch]) -> Logs:
        raise NotImplementedError

    @torch.no_grad()
    def sample_grid(self, model: nn.Module, batch: Batch) -> np.ndarray | None:
        return None


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of images in [-1, 1]: (N, ...) -> (N,)."""
    mse = ((a.float() - b.float()) ** 2).flatten(1).mean(1) / 4.0
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def load_frozen_helper(module: nn.Module, path: str, expect: str) -> None:
    """Copy a trained checkpoint's weights into a frozen helper sub-module (their configs must agree)."""
    from talkbench.errors import ConfigError
    from talkbench.models.checkpoint import load_model

    trained, _ = load_model(path, expect=expect)
    if trained.cfg != module.cfg:
        raise ConfigError(f"{path}: its {expect} config differs from this model's; set the model config to "
                          f"{trained.cfg.model_dump()}")
    module.load_state_dict(trained.state_dict())
    module.requires_grad_(False).eval()
