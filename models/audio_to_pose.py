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

import torch
from pydantic import Field
from torch import nn

from talkbench.config import StrictModel

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
