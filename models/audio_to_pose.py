"""``audio_to_pose``: Yi et al.'s ATC-net, audio -> 64 expression + 6 pose coefficients per frame.

Authors' layout (Audio/code/models.py @8ebc028): per video frame a 28 x 12 MFCC block (280 ms,
c0 dropped) -> 2-D CNN 1-64-128, max-pool (3, stride (1, 2)), 128-256-256-512, max-pool (3, stride 2)
-> 512 x 12 x 2 = 12,288 -> FC 2048 -> FC 256 -> 3-layer LSTM(256) over 16-frame sequences -> FC 70.
Conv blocks are conv 3x3 + BatchNorm + ReLU as theirs; the widths are config (tiny presets shrink
them). The targets are the ``face3d`` coefficients, normalised per dimension with the statistics
stored in the face3d artifact.

Loss (their ``atcnet.py`` with ``less_constrain``, ``smooth_loss`` and ``smooth_loss2``)::

    MSE(expression) + 0.2 * MSE(pose) + 0.01 * mean_b sum_t ||pose_t - pose_t-1||^2
                                     + 1e-4 * mean_b sum_t ||exp_t - exp_t-1||^2
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch import nn

from talkbench.config import StrictModel
from talkbench.errors import ConfigError
from talkbench.models.data import DataSpec
from talkbench.models.objective import Objective
from talkbench.models.registry import ModelSpec

log = logging.getLogger(__name__)

WINDOW_HOPS = 28  # 280 ms of 10 ms hops per video frame: mfcc[(t - 3) * 4 : (t + 4) * 4]


class AudioToPoseConfig(StrictModel):
    n_coeffs: int = Field(12, ge=1)
    window_hops: int = Field(WINDOW_HOPS, ge=8)
    conv_channels: list[int] = Field(default_factory=lambda: [64, 128, 256, 256, 512], min_length=5, max_length=5)
    fc_dims: list[int] = Field(default_factory=lambda: [2048, 256], min_length=1)
    lstm_hidden: int = Field(256, ge=1)
    lstm_layers: int = Field(3, ge=1)
    n_exp: int = Field(64, ge=1)
    n_pose: int = Field(6, ge=0)


class AudioToPoseLossConfig(StrictModel):
    pose: float = Field(0.2, ge=0.0, description="weight of the pose MSE (expression MSE has weight 1)")
    smooth_pose: float = Field(0.01, ge=0.0, description="sum over time of squared pose differences")
    smooth_exp: float = Field(1e-4, ge=0.0, description="sum over time of squared expression differences")


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class AudioToPose(nn.Module):
    """(B, T, n_coeffs, window_hops) MFCC windows -> (B, T, n_exp + n_pose), normalised units."""

    Config = AudioToPoseConfig

    def __init__(self, cfg: AudioToPoseConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.conv_channels
        self.cnn = nn.Sequential(
            _conv(1, c[0]), _conv(c[0], c[1]), nn.MaxPool2d(3, stride=(1, 2)),
            _conv(c[1], c[2]), _conv(c[2], c[3]), _conv(c[3], c[4]), nn.MaxPool2d(3, stride=2),
        )
        h = ((cfg.window_hops - 2) - 3) // 2 + 1
        w = ((cfg.n_coeffs - 3) // 2 + 1 - 3) // 2 + 1
        if h < 1 or w < 1:
            raise ValueError(f"a {cfg.window_hops} x {cfg.n_coeffs} window is too small for the two max-pools")
        self.flat_dim = c[4] * h * w  # 512 * 12 * 2 = 12,288 at the authors' sizes
        fcs: list[nn.Module] = []
        dims = [self.flat_dim, *cfg.fc_dims]
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            fcs += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        self.fc = nn.Sequential(*fcs)
        self.lstm = nn.LSTM(dims[-1], cfg.lstm_hidden, cfg.lstm_layers, batch_first=True)
        self.head = nn.Linear(cfg.lstm_hidden, cfg.n_exp + cfg.n_pose)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        b, t = windows.shape[:2]
        x = windows.flatten(0, 1).transpose(1, 2).unsqueeze(1)  # (B*T, 1, hops, coeffs): the authors' 28 x 12
        x = self.fc(self.cnn(x).flatten(1)).view(b, t, -1)
        y, _ = self.lstm(x)  # zero initial state, as theirs
        return self.head(y)


def atc_loss(pred: torch.Tensor, target: torch.Tensor, n_exp: int, cfg: AudioToPoseLossConfig,
             mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The four loss terms on (B, T, n_exp + 6) tensors; ``mask`` (B, T) drops frames without a face
    from the MSEs (differences need both frames valid)."""
    m = torch.ones(pred.shape[:2], dtype=pred.dtype, device=pred.device) if mask is None else mask.to(pred.dtype)
    se = (pred - target) ** 2
    denom_e = (m.sum() * n_exp).clamp_min(1)
    denom_p = (m.sum() * (pred.shape[-1] - n_exp)).clamp_min(1)
    mse_exp = (se[..., :n_exp] * m[..., None]).sum() / denom_e
    mse_pose = (se[..., n_exp:] * m[..., None]).sum() / denom_p
    pair = (m[:, 1:] * m[:, :-1])[..., None]
    d = (pred[:, 1:] - pred[:, :-1]) ** 2 * pair
    smooth_pose = d[..., n_exp:].sum(dim=(1, 2)).mean()
    smooth_exp = d[..., :n_exp].sum(dim=(1, 2)).mean()
    loss = mse_exp + cfg.pose * mse_pose + cfg.smooth_pose * smooth_pose + cfg.smooth_exp * smooth_exp
    return loss, {"loss": loss.item(), "mse_exp": mse_exp.item(), "mse_pose": mse_pose.item(),
                  "smooth_pose": smooth_pose.item(), "smooth_exp": smooth_exp.item()}


# ---------------------------------------------------------------------------- training (talkbench train)
class AudioToPoseTrainLoss(AudioToPoseLossConfig):
    """The ATC-net loss weights plus the face3d artifact that turns the shards' landmarks into targets."""

    face3d: str = Field("", description="the face3d artifact whose 70-d coefficients are the targets (talkbench "
                        "train face3d; the yi2020 recipe's face3d step); empty: fit one on the training split "
                        "(closed form; a yi2020 bundle then needs that same fit, so pass the artifact)")


class AudioToPoseObjective(Objective):
    """ATC-net on the shards: MFCC windows -> the face3d coefficients of the tracked landmarks and pose,
    normalised with the face3d artifact's statistics. The targets are derived, so the objective builds its
    dataset (:meth:`make_dataset`, the training loop's hook) from the shards' landmarks, pose and MFCC."""

    LossConfig = AudioToPoseTrainLoss

    def __init__(self, model_cfg, loss_cfg, data_cfg):
        super().__init__(model_cfg, loss_cfg, data_cfg)
        self._face3d: Any = None

    def data_spec(self) -> DataSpec:
        return DataSpec(windows=True)

    def face3d(self, index: Any) -> Any:
        """The artifact (or a fit on the training split), checked against the model's expression size."""
        if self._face3d is None:
            from talkbench.models import face3d as f3
            from talkbench.models import yi2020_data

            if self.loss_cfg.face3d:
                m = f3.Face3D.load(self.loss_cfg.face3d)
            else:
                log.warning("loss.face3d not set: fitting face3d on the training split (pass the artifact to "
                            "bundle this checkpoint into yi2020)")
                clips = yi2020_data.targets_from_shards(index.root, self.data_cfg.split, images=False)
                m = f3.fit([yi2020_data.clip_shapes(t) for t in clips], n_exp=self.model_cfg.n_exp)
            if m.n_exp != self.model_cfg.n_exp or self.model_cfg.n_pose != f3.TARGET_DIM_POSE:
                raise ConfigError(f"face3d {self.loss_cfg.face3d or '(fitted)'} has {m.n_exp} expression components "
                                  f"+ {f3.TARGET_DIM_POSE} pose; set model.n_exp={m.n_exp} model.n_pose=6")
            self._face3d = m
        return self._face3d

    def make_dataset(self, index: Any, spec: DataSpec, cfg: Any, *, split: str, train: bool, rank: int = 0,
                     world_size: int = 1, batch_size: int = 1, skip_batches: int = 0) -> Any:
        from talkbench.models import yi2020_data as data

        m3 = self.face3d(index)
        clips = []
        for t in data.targets_from_shards(index.root, split, tuple(cfg.statuses), images=False):
            y, _ = data.coefficients(m3, t)
            clips.append({"windows": data.mfcc_blocks(t.mfcc, self.model_cfg.window_hops),
                          "targets": m3.normalise(y), "mask": t.valid})
        return data.ClipSlices(clips, cfg.seq_len, train, cfg.seed, rank, batch_size, skip_batches)

    def random_batch(self, seq_len: int, batch_size: int) -> dict[str, torch.Tensor]:
        """Random tensors of a batch's shapes (``talkbench perf training``)."""
        c = self.model_cfg
        return {"windows": torch.randn(batch_size, seq_len, c.n_coeffs, c.window_hops),
                "targets": torch.randn(batch_size, seq_len, c.n_exp + c.n_pose),
                "mask": torch.ones(batch_size, seq_len, dtype=torch.bool)}

    def loss(self, group, parts, batch):
        pred = parts["model"](batch["windows"].float())
        return atc_loss(pred, batch["targets"].float(), self.model_cfg.n_exp, self.loss_cfg, batch["mask"])

    @torch.no_grad()
    def validate(self, model, batches):
        logs = [atc_loss(model(b["windows"].float()), b["targets"].float(), self.model_cfg.n_exp, self.loss_cfg,
                         b["mask"])[1] for b in batches]
        out = {f"val_{k}": float(np.mean([g[k] for g in logs])) for k in ("mse_pose", "mse_exp", "loss")}
        pred = torch.cat([model(b["windows"].float())[..., self.model_cfg.n_exp :][b["mask"]] for b in batches])
        out["val_pose_std"] = float(pred[:, :3].std(0).mean()) if len(pred) > 1 else float("nan")  # flat = 0
        return out


SPEC = ModelSpec(
    module=AudioToPose, config=AudioToPoseConfig, objective=AudioToPoseObjective,
    description="Yi 2020 ATC-net (seed 001): 28 x 12 MFCC blocks -> 64 face3d expression + 6 pose coefficients "
                "per frame (CNN, FC, 3-layer LSTM); the targets come from a face3d artifact (loss.face3d).",
    defaults=("data.seq_len=16", "train.batch_size=16", "train.lr=0.0002", "train.betas=[0.5,0.999]"),
    tiny=("model.conv_channels=[4,4,8,8,8]", "model.fc_dims=[32]", "model.lstm_hidden=16", "model.n_exp=16",
          "data.seq_len=8"),
    small=("model.conv_channels=[32,64,128,128,256]", "model.fc_dims=[1024,256]"),
    overfit=((), 60, 1e-2, 2),
    extra={"shards": "face_mesh"},  # tests: shards of real tracked faces (face3d needs real landmarks and pose)
)
