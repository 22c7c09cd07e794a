"""Metrics against INDEPENDENT references (the torchmetrics MetricTester idea), not against themselves.

Each reference below is written here from the published algorithm, in a different style from the code
under test (plain loops, explicit formulas), so a shared mistake is unlikely:

- SyncNet audio features vs a transcription of ``python_speech_features.mfcc`` (its defaults: 25 ms
  rectangular frames every 10 ms, pre-emphasis 0.97, 512-point power spectrum / NFFT, 26 triangular mel
  filters on floor((NFFT + 1) * hz / sr) bins, log, orthonormal DCT-II, lifter 22, c0 = log frame energy);
- LSE distance / confidence / offset vs a transcription of ``syncnet_python``'s ``calc_pdist`` and
  ``evaluate`` (zero-padded audio features, per-window pairwise distances with torch's eps 1e-6, mean
  over windows, min / median - min / vshift - argmin);
- LPIPS v0.1 vs the formula computed by hand from the trunk's activations;
- CSIM vs cosine similarities computed by hand.
(CPBD vs MATLAB: tests/test_cpbd_reference.py; FID closed form, PSNR/SSIM vs scikit-image, LMD/HS by
hand: tests/test_metrics.py; jitter, integrity, correlations by hand: tests/test_metric_gaming.py.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch


def _psf_mfcc(signal: np.ndarray, sr: int = 16_000) -> np.ndarray:
    """python_speech_features.mfcc with its defaults, written as plain loops: (n_frames, 13)."""
    nfft, nfilt, numcep, lifter = 512, 26, 13, 22
    flen, fstep = int(0.025 * sr + 0.5), int(0.01 * sr + 0.5)
    x = np.concatenate([[signal[0]], signal[1:] - 0.97 * signal[:-1]])
    n = 1 if len(x) <= flen else 1 + math.ceil((len(x) - flen) / fstep)
    x = np.concatenate([x, np.zeros((n - 1) * fstep + flen - len(x))])
    hz2mel = lambda hz: 2595 * math.log10(1 + hz / 700.0)  # noqa: E731
    mel2hz = lambda mel: 700 * (10 ** (mel / 2595.0) - 1)  # noqa: E731
    top = hz2mel(sr / 2)
    bins = [math.floor((nfft + 1) * mel2hz(top * k / (nfilt + 1)) / sr) for k in range(nfilt + 2)]
    out = np.zeros((n, numcep))
    for f in range(n):
        frame = x[f * fstep: f * fstep + flen]
        spec = np.fft.rfft(frame, nfft)
        power = (spec.real**2 + spec.imag**2) / nfft
        energies = []
        for j in range(nfilt):
            lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
            e = sum(power[i] * (i - lo) / (mid - lo) for i in range(lo, mid))
            e += sum(power[i] * (hi - i) / (hi - mid) for i in range(mid, hi))
            energies.append(math.log(e if e != 0 else np.finfo(float).eps))
        for k in range(numcep):  # orthonormal DCT-II
            scale = math.sqrt(1 / nfilt) if k == 0 else math.sqrt(2 / nfilt)
            c = scale * sum(energies[m] * math.cos(math.pi * k * (2 * m + 1) / (2 * nfilt)) for m in range(nfilt))
            out[f, k] = c * (1 + lifter / 2 * math.sin(math.pi * k / lifter))
        total = float(power.sum())
        out[f, 0] = math.log(total if total != 0 else np.finfo(float).eps)
    return out


def test_syncnet_mfcc_matches_python_speech_features() -> None:
    from talkbench.benchmark.syncnet import syncnet_mfcc

    rng = np.random.default_rng(0)
    t = np.arange(1600) / 16_000
    signal = np.round(3000 * np.sin(2 * np.pi * 220 * t) + rng.normal(0, 300, len(t)))  # int16-like speech-ish
    signal[400:1000] = 0  # frames 3-4 entirely silent: the eps branches
    ref = _psf_mfcc(signal)
    ours = syncnet_mfcc(signal)  # (13, n_frames)
    assert ours.shape == (13, len(ref)) == (13, 9)  # 1 + ceil((1600 - 400) / 160)
    np.testing.assert_allclose(ours.T, ref, rtol=1e-9, atol=1e-8)


def test_syncnet_audio_windows_are_the_int16_samples_syncnet_python_reads() -> None:
    from talkbench.benchmark.syncnet import audio_windows

    rng = np.random.default_rng(1)
    audio = np.clip(rng.normal(0, 0.05, 12 * 640), -1, 1).astype(np.float32)
    audio[:2000] = rng.normal(0, 2e-5, 2000)  # near-silence: sub-LSB values round to 0 in an int16 wav
    audio[100] = 1.5  # beyond full scale: clipped to 32767, as ffmpeg's float -> s16 does
    pcm = np.clip(np.round(audio.astype(np.float64) * 32768), -32768, 32767)  # what wavfile.read returns
    ref = _psf_mfcc(pcm)  # (n_frames, 13): python_speech_features on those samples
    win = audio_windows(audio, 7)  # 7 windows of 20 MFCC frames, 4 apart
    for i in range(7):
        np.testing.assert_allclose(win[i, 0], ref[4 * i: 4 * i + 20].T.astype(np.float32), rtol=1e-5, atol=1e-4)


def _syncnet_python_evaluate(video: np.ndarray, audio: np.ndarray, vshift: int) -> tuple[float, float, int]:
    """syncnet_python's calc_pdist + evaluate, transcribed with loops: (min dist, conf, offset)."""
    win = 2 * vshift + 1
    padded = np.concatenate([np.zeros((vshift, audio.shape[1])), audio, np.zeros((vshift, audio.shape[1]))])
    dists = np.zeros((len(video), win))
    for i in range(len(video)):
        for j in range(win):  # torch.nn.functional.pairwise_distance: ||x1 - x2 + eps||, eps = 1e-6
            dists[i, j] = math.sqrt(float(((video[i] - padded[i + j] + 1e-6) ** 2).sum()))
    mdist = dists.mean(axis=0)
    minidx = int(np.argmin(mdist))
    return float(mdist[minidx]), float(np.sort(mdist)[(win - 1) // 2] - mdist[minidx]), vshift - minidx


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lse_matches_a_transcription_of_syncnet_python(seed: int) -> None:
    from talkbench.benchmark.metrics.lse import lse_from_embeddings

    rng = np.random.default_rng(seed)
    audio = rng.normal(size=(40, 8))
    shift = [-3, 0, 4][seed]
    video = np.roll(audio, shift, axis=0) + 0.3 * rng.normal(size=audio.shape)  # video lags audio by `shift`
    d, c, off = _syncnet_python_evaluate(video, audio, vshift=15)
    res = lse_from_embeddings(video.astype(np.float32), audio.astype(np.float32), vshift=15)
    assert res.lse_d == pytest.approx(d, rel=1e-5) and res.lse_c == pytest.approx(c, rel=1e-4, abs=1e-5)
    assert res.offset == off == shift


def test_lpips_matches_the_v01_formula_by_hand() -> None:
    import torch.nn.functional as F

    from talkbench.benchmark.metrics.lpips_alex import LPIPSAlex, lpips_frames

    torch.manual_seed(0)
    net = LPIPSAlex().eval()
    for i in range(5):  # positive head weights, as the released ones are
        conv = getattr(net, f"lin{i}").model[1]
        conv.weight.data = conv.weight.data.abs()
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    ours = lpips_frames(net, a, b)

    modules = dict(net.net.named_modules())  # torchvision AlexNet.features indices 0, 3, 6, 8, 10
    convs = [modules[f"slice{k}.{i}"] for k, i in ((1, 0), (2, 3), (3, 6), (4, 8), (5, 10))]

    def trunk(x: torch.Tensor) -> list[np.ndarray]:  # AlexNet features: conv-relu(-pool) by hand
        feats = []
        for k, conv in enumerate(convs):
            if k in (1, 2):
                x = F.max_pool2d(x, 3, 2)
            x = F.relu(F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding))
            feats.append(x[0].detach().numpy().astype(np.float64))
        return feats

    shift = np.array([-0.030, -0.088, -0.188])[:, None, None]
    scale = np.array([0.458, 0.448, 0.450])[:, None, None]
    for n in range(2):
        total = 0.0
        fa, fb = ({}, {})
        for img, feats in ((a[n], fa), (b[n], fb)):
            x = (img.transpose(2, 0, 1) / 127.5 - 1.0 - shift) / scale  # [-1, 1], then LPIPS's scaling layer
            feats["f"] = trunk(torch.as_tensor(x[None], dtype=torch.float32))
        for layer, (u, v) in enumerate(zip(fa["f"], fb["f"], strict=True)):
            u = u / (np.sqrt((u**2).sum(axis=0, keepdims=True)) + 1e-10)  # unit length over channels
            v = v / (np.sqrt((v**2).sum(axis=0, keepdims=True)) + 1e-10)
            w = getattr(net, f"lin{layer}").model[1].weight.detach().numpy().reshape(-1, 1, 1)
            total += float((w * (u - v) ** 2).sum(axis=0).mean())  # weighted channel sum, spatial mean
        assert ours[n] == pytest.approx(total, rel=1e-4)
    assert lpips_frames(net, a, a) == pytest.approx([0.0, 0.0], abs=1e-7)


def test_csim_matches_cosines_by_hand() -> None:
    from talkbench.benchmark.metrics.identity import cosine_to_reference

    def embed(x: torch.Tensor) -> torch.Tensor:  # a toy identity embedding: per-channel means and a contrast
        return torch.stack([x.mean((2, 3))[:, 0], x.mean((2, 3))[:, 1], x.mean((2, 3))[:, 2], x.std((1, 2, 3))], 1)

    rng = np.random.default_rng(1)
    ref = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)  # ArcFace size: no resize in the way
    frames = np.stack([ref, 255 - ref, rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)])
    ours = cosine_to_reference(embed, ref, frames, "cpu")

    def vec(img: np.ndarray) -> np.ndarray:
        x = img.astype(np.float64) / 127.5 - 1.0
        return np.array([x[..., 0].mean(), x[..., 1].mean(), x[..., 2].mean(), x.std(ddof=1)])

    r = vec(ref)
    expected = [float(vec(f) @ r / (np.linalg.norm(vec(f)) * np.linalg.norm(r))) for f in frames]
    assert ours == pytest.approx(expected, abs=1e-5)
    assert ours[0] == pytest.approx(1.0, abs=1e-6)
