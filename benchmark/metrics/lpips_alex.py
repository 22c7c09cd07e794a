"""LPIPS v0.1 with the AlexNet trunk (Zhang et al. 2018), written here in plain torch.

Why not the ``lpips`` package: it imports torchvision, which cannot import with this project's CPU torch
build. Parameter names match the ``lpips.LPIPS(net="alex")`` state dict (``net.slice1.0.weight`` ...
``lin4.model.1.weight``, ``scaling_layer.shift/scale``), so its files load unchanged: the trunk from
torchvision's ImageNet AlexNet (``features.N.*`` keys, store name ``alexnet-imagenet``) and the linear
heads from ``lpips/weights/v0.1/alex.pth`` (store name ``lpips-alex-v0.1``). Inputs are scaled to
[-1, 1] as the package expects (feeding [0, 1] under-reports, GUIDE section 3).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from talkbench.benchmark.metrics.base import ClipPair, Metric, register_metric
from talkbench.benchmark.metrics.common import CHUNK, chunks, paired_mask, reference_of, resolve_device

CHANNELS = (64, 192, 384, 256, 256)
#: torchvision alexnet.features index -> LPIPS slice holding it (the slices keep torchvision's indices)
TRUNK_SLICES = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}


class AlexTrunk(nn.Module):
    """torchvision AlexNet ``features`` split after each ReLU, like lpips.pretrained_networks.alexnet."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=False), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=False), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=False),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=False),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=False),
        ]
        bounds = [(0, 2), (2, 5), (5, 8), (8, 10), (10, 12)]
        for k, (lo, hi) in enumerate(bounds, start=1):
            s = nn.Sequential()
            for i in range(lo, hi):
                s.add_module(str(i), layers[i])
            setattr(self, f"slice{k}", s)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for k in range(1, 6):
            x = getattr(self, f"slice{k}")(x)
            feats.append(x)
        return feats


class _Lin(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, 1, bias=False))


class _Scaling(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class LPIPSAlex(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scaling_layer = _Scaling()
        self.net = AlexTrunk()
        for i, c in enumerate(CHANNELS):
            setattr(self, f"lin{i}", _Lin(c))

    def forward(self, in0: torch.Tensor, in1: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] each -> (N,) distances."""
        f0 = self.net(self.scaling_layer(in0))
        f1 = self.net(self.scaling_layer(in1))
        total = torch.zeros(len(in0), device=in0.device)
        for i, (a, b) in enumerate(zip(f0, f1, strict=True)):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + getattr(self, f"lin{i}").model((a - b) ** 2).mean(dim=(1, 2, 3))
        return total

    def load_parts(self, trunk: dict[str, Any], heads: dict[str, Any]) -> None:
        """Load torchvision AlexNet ``features.*`` (or ``net.*``) keys and the ``lin*`` heads; strict."""
        state: dict[str, Any] = {}
        for key, value in trunk.items():
            parts = key.split(".")
            if parts[0] == "features" and int(parts[1]) in TRUNK_SLICES:
                state[f"net.slice{TRUNK_SLICES[int(parts[1])]}.{parts[1]}.{parts[2]}"] = value
            elif parts[0] == "net":
                state[key] = value
        for key, value in heads.items():
            if key.startswith("lin"):
                state[key] = value
        state.update({f"scaling_layer.{k}": v for k, v in self.scaling_layer.state_dict().items()})
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"LPIPS weights do not fit: missing {missing}, unexpected {unexpected}")


def load_lpips(device: Any = "cpu") -> LPIPSAlex:
    from talkbench import weights

    net = LPIPSAlex()
    net.load_parts(weights.load_state_dict("alexnet-imagenet"), weights.load_state_dict("lpips-alex-v0.1"))
    return net.to(device).eval()


def lpips_frames(net: LPIPSAlex, gen: np.ndarray, ref: np.ndarray, device: Any = "cpu") -> np.ndarray:
    """Per-frame LPIPS of (N, H, W, 3) uint8 frames."""
    out = np.empty(len(gen), np.float64)
    with torch.inference_mode():
        for s in chunks(len(gen), CHUNK):
            a = torch.as_tensor(gen[s], device=device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            b = torch.as_tensor(ref[s], device=device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            out[s] = net(a, b).cpu().numpy()
    return out


@register_metric("lpips")
class LPIPS(Metric):
    """LPIPS v0.1 AlexNet on the aligned face crops, inputs in [-1, 1]; mean over frames (lower = closer)."""

    variant = "lpips-v0.1-alex-face-m1p1"
    directions = {"lpips": "lower"}
    weights = ("alexnet-imagenet", "lpips-alex-v0.1")

    def setup(self) -> None:
        self._dev = resolve_device(self.device)
        self.net = load_lpips(self._dev)

    def score(self, pair: ClipPair) -> dict[str, float]:
        ref = reference_of(pair)
        m = paired_mask(pair.generated, ref)
        n = len(m)
        if not m.any():
            return {"lpips": math.nan}
        values = lpips_frames(self.net, pair.generated.faces[:n][m], ref.faces[:n][m], self._dev)
        return {"lpips": float(values.mean())}
