"""FID between the generated and the real face crops of a whole task (a corpus-level value).

The Inception-v3 pool3 network is the TorchScript port of TensorFlow's 2015-12-05 graph distributed
with stylegan2-ada-pytorch (also used by clean-fid), loaded from the weights store as ``inception-fid``
and called as ``net(images_0_255, return_features=True)`` -> (N, 2048); it resizes to 299 internally.
We do not re-implement that architecture (pytorch-fid's ``pt_inception`` state dict is *not*
supported); without the file the metric is unavailable, never zero.

FID is biased at small sample sizes, so the frame counts are reported beside it (``fid_n_gen``,
``fid_n_ref``); there is no per-clip value and no bootstrap CI over clips.
"""

from __future__ import annotations

import math

import numpy as np

from talkbench.benchmark.metrics.base import ClipPair, Metric, register_metric
from talkbench.benchmark.metrics.common import CHUNK, chunks, reference_of, resolve_device


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), as pytorch-fid computes it (scipy sqrtm)."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError("the two feature statistics differ in dimension")
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    if not np.isfinite(covmean).all():  # singular product: nudge the diagonals
        offset = np.eye(s1.shape[0]) * eps
        covmean = linalg.sqrtm((s1 + offset).dot(s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))} in the covariance square root")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def fid_from_features(gen: np.ndarray, ref: np.ndarray) -> float:
    if len(gen) < 2 or len(ref) < 2:
        return math.nan
    return frechet_distance(*feature_stats(gen), *feature_stats(ref))


@register_metric("fid")
class FID(Metric):
    """FID of all generated vs all real aligned face frames of the task (Inception pool3, TorchScript)."""

    variant = "fid-inception2015-torchscript-face-frames"
    directions = {"fid": "lower"}
    weights = ("inception-fid",)
    corpus_level = True

    def __init__(self, device: str | None = None) -> None:
        super().__init__(device)
        self._gen: list[np.ndarray] = []
        self._ref: list[np.ndarray] = []

    def setup(self) -> None:
        from talkbench import weights

        self._dev = resolve_device(self.device)
        self.net = weights.load_torchscript("inception-fid", str(self._dev))

    def features(self, frames: np.ndarray) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for s in chunks(len(frames), CHUNK):
                x = torch.as_tensor(frames[s], device=self._dev).permute(0, 3, 1, 2).float()
                out.append(self.net(x, return_features=True).reshape(len(x), -1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 2048))

    def score(self, pair: ClipPair) -> dict[str, float]:
        ref = reference_of(pair)
        g, r = pair.generated, ref
        self._gen.append(self.features(g.faces[np.asarray(g.face_found, bool)]))
        self._ref.append(self.features(r.faces[np.asarray(r.face_found, bool)]))
        return {}  # corpus level: no per-clip value

    def compute(self) -> dict[str, float]:
        gen = np.concatenate(self._gen) if self._gen else np.zeros((0, 1))
        ref = np.concatenate(self._ref) if self._ref else np.zeros((0, 1))
        return {"fid": fid_from_features(gen, ref), "fid_n_gen": float(len(gen)), "fid_n_ref": float(len(ref))}

    def reset(self) -> None:
        super().reset()
        self._gen.clear()
        self._ref.clear()
