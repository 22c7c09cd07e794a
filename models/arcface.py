"""ArcFace iresnet50 (insightface arcface_torch ``backbones/iresnet.py``), written here in plain torch.

It lives in ``models`` because two layers use it: the benchmark's CSIM metric and yi2020's memory GAN
(its AdaIN identity feature); models may not import the benchmark, the benchmark imports models.

Parameter names match insightface's ``backbone.pth`` for ``iresnet50`` so the released file loads with
strict=True. Input: (N, 3, 112, 112) RGB scaled to [-1, 1]; output: (N, 512) identity embedding.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS_NAME = "arcface-iresnet50"  # its name in the weights store

LAYERS_R50 = (3, 4, 14, 3)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (self.downsample(x) if self.downsample is not None else x)


class IResNet(nn.Module):
    def __init__(self, layers: tuple[int, ...] = LAYERS_R50, num_features: int = 512):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        self.layer1 = self._make_layer(64, layers[0])
        self.layer2 = self._make_layer(128, layers[1])
        self.layer3 = self._make_layer(256, layers[2])
        self.layer4 = self._make_layer(512, layers[3])
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(512 * 7 * 7, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)

    def _make_layer(self, planes: int, blocks: int) -> nn.Sequential:
        downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride=2, bias=False),
                                   nn.BatchNorm2d(planes, eps=1e-5))
        layers = [IBasicBlock(self.inplanes, planes, 2, downsample)]
        self.inplanes = planes
        layers += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


def blocks_per_layer(state: dict[str, Any]) -> tuple[int, ...]:
    """(3, 4, 14, 3) for iresnet50; read from the keys so iresnet18/34/100 files load too."""
    counts = []
    for k in range(1, 5):
        idx = {int(key.split(".")[1]) for key in state if key.startswith(f"layer{k}.")}
        if not idx:
            raise ValueError(f"not an insightface iresnet state dict: no layer{k}.* keys")
        counts.append(max(idx) + 1)
    return tuple(counts)


def load_arcface(device: Any = "cpu") -> IResNet:
    from talkbench import weights

    state = weights.load_state_dict(WEIGHTS_NAME)
    net = IResNet(blocks_per_layer(state), num_features=int(state["fc.weight"].shape[0]))
    net.load_state_dict(state, strict=True)
    return net.to(device).eval()


class ArcFaceIdentity:
    """ArcFace as a generator's identity feature (yi2020's AdaIN): unit embeddings of (N, 3, 112, 112) crops
    in [-1, 1]; ``dim`` is the file's embedding size."""

    image_size = 112

    def __init__(self, device: Any = "cpu") -> None:
        with torch.device("cpu"):  # a loaded feature network, even inside a caller's `with torch.device("meta")`
            self.net = load_arcface(device)
        self.dim = int(self.net.features.num_features)

    @torch.no_grad()
    def __call__(self, faces: torch.Tensor) -> torch.Tensor:
        if faces.shape[-1] != self.image_size:
            faces = F.interpolate(faces, size=(self.image_size, self.image_size), mode="bilinear",
                                  align_corners=False, antialias=True)
        return F.normalize(self.net(faces), dim=1)


@functools.lru_cache(maxsize=1)
def arcface_identity() -> ArcFaceIdentity:
    """Loaded once per process (personalised tasks ask per clip); ``cache_clear()`` after the store changes."""
    return ArcFaceIdentity()


def identity_source(choice: str, say: Any = None) -> str:
    """``auto`` -> ``arcface`` when the store has the file, else ``speaker`` (said aloud, naming the missing
    file); an explicit ``arcface`` without the file raises the store's message (what to get, where)."""
    from talkbench import weights

    if choice == "auto":
        if weights.is_present(WEIGHTS_NAME):
            return "arcface"
        if say is not None:
            say(f"identity feature: a speaker embedding trained on the shards ({weights.weight_path(WEIGHTS_NAME)} "
                f"not found; for ArcFace: talkbench weights import {WEIGHTS_NAME} FILE)")
        return "speaker"
    if choice == "arcface":
        weights.require(WEIGHTS_NAME)
    return choice
