"""``talkbench perf metrics``: frames/s of each metric, batched vs a naive per-frame baseline.

Inputs are real GRID frames (a 128x128 face-region crop, repeated to ``--frames``) and a degraded copy.
Every metric is timed beside a naive baseline in the same run: scikit-image's per-frame
``peak_signal_noise_ratio`` / ``structural_similarity`` loops for PSNR/SSIM (what most evaluation
scripts do), the published CPBD algorithm written plainly (per-pixel loops, ``cpbd_frames_naive``), a
per-frame numpy loop for LMD, and a per-frame / per-window (batch 1) loop for the networks. Networks
(LPIPS, SyncNet, ArcFace) run with randomly initialised weights here: throughput does not depend on
weight values, and the published files are not needed to measure it. ``speedup_DEV`` is per-frame
naive time over per-frame batched time. Results go to ``reports/perf/metrics.json`` through
``talkbench.perf.write_report``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_CLIP = Path("../shared/fixtures/grid/bbaf2n.mpg")


def register_perf(perf_sub: Any) -> None:
    from talkbench.perf import add_perf_command

    p = add_perf_command(perf_sub, "metrics", "talkbench.benchmark.perf_metrics:run_from_args",
                         help="frames/s of each metric: batched (CPU, and GPU when present) vs naive per-frame loops")
    p.add_argument("--input", default=str(DEFAULT_CLIP), help="a video to take face-region frames from")
    p.add_argument("--frames", type=int, default=150, help="frames per measurement")
    p.add_argument("--device", action="append", default=None,
                   help="torch device(s) to measure (default: cpu, plus cuda when available)")
    p.add_argument("--skip-networks", action="store_true", help="only the weight-free metrics")


def load_frames(path: str | Path, n: int) -> np.ndarray:
    import av

    from talkbench.errors import TalkbenchError

    if not Path(path).is_file():
        raise TalkbenchError(f"perf input {path} not found (pass --input VIDEO)")
    frames = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            img = f.to_ndarray(format="rgb24")
            h, w = img.shape[:2]
            top, left = max(0, h // 2 - 104), max(0, w // 2 - 64)
            frames.append(img[top: top + 128, left: left + 128])
    reps = -(-n // len(frames))
    return np.concatenate([np.stack(frames)] * reps)[:n]


def _time(fn: Callable[[], Any], n_frames: int, repeat: int = 2) -> dict[str, float]:
    fn()  # warm-up (allocations, lazy init, CUDA context)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return {"seconds": best, "frames_per_s": n_frames / best}


def _speedup(naive: dict[str, float], fast: dict[str, float]) -> float:
    """Per-frame naive time over per-frame batched time (the two may be timed on different frame counts)."""
    return fast["frames_per_s"] / naive["frames_per_s"]


def naive_lmd_frames(gen: np.ndarray, ref: np.ndarray, points: tuple[int, ...] | None = None) -> np.ndarray:
    """LMD (mean variant) frame by frame, the way a per-frame evaluation loop computes it: the baseline
    for :func:`lmd_frames`, which does all frames in one set of array operations."""
    from talkbench.benchmark.metrics.landmarks import LIPS

    idx = list(LIPS if points is None else points)
    out = []
    for g, r in zip(gen, ref, strict=True):
        a = g[idx, :2].astype(np.float64)
        b = r[idx, :2].astype(np.float64)
        out.append(np.linalg.norm((a - a.mean(axis=0)) - (b - b.mean(axis=0)), axis=1).mean())
    return np.array(out)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(frames: np.ndarray, devices: list[str], networks: bool = True) -> dict[str, Any]:
    import cv2
    import torch
    from scipy.ndimage import gaussian_filter
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from talkbench.benchmark.metrics.cpbd import cpbd_frames, cpbd_frames_naive
    from talkbench.benchmark.metrics.image import psnr_frames, ssim_frames
    from talkbench.benchmark.metrics.landmarks import lmd_frames

    n = len(frames)
    rng = np.random.default_rng(0)
    other = np.clip(gaussian_filter(frames.astype(np.float32), (0, 1, 1, 0)) + rng.normal(0, 5, frames.shape),
                    0, 255).astype(np.uint8)
    res: dict[str, Any] = {"n_frames": n, "frame_size": list(frames.shape[1:]), "devices": devices, "metrics": {}}
    out = res["metrics"]

    sk_psnr = _time(lambda: [peak_signal_noise_ratio(frames[i], other[i], data_range=255) for i in range(n)], n)
    sk_gauss = _time(lambda: [structural_similarity(other[i], frames[i], data_range=255, channel_axis=-1,
                                                    gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
                              for i in range(n)], n)
    sk_unif = _time(lambda: [structural_similarity(other[i], frames[i], data_range=255, channel_axis=-1)
                             for i in range(n)], n)
    out["psnr"] = {"baseline": "skimage per-frame loop", "naive": sk_psnr,
                   "cpu": _time(lambda: psnr_frames(other, frames), n)}  # numpy: memory-bound, no device
    out["psnr"]["speedup_cpu"] = _speedup(sk_psnr, out["psnr"]["cpu"])
    out["ssim-gauss11-s1.5"] = {"baseline": "skimage per-frame loop", "naive": sk_gauss}
    out["ssim-uniform7"] = {"baseline": "skimage per-frame loop", "naive": sk_unif}
    for dev in devices:
        for key, fn in (("ssim-gauss11-s1.5", lambda d=dev: (ssim_frames(other, frames, device=d), _sync(d))),
                        ("ssim-uniform7",
                         lambda d=dev: (ssim_frames(other, frames, "ssim-uniform7", device=d), _sync(d)))):
            out[key][dev] = _time(fn, n)
            out[key][f"speedup_{dev}"] = _speedup(out[key]["naive"], out[key][dev])
    k, k_naive = min(n, 64), min(n, 8)  # CPU only: numpy/scipy/skimage
    out["cpbd"] = {"baseline": "published algorithm, per-pixel loops (cpbd_frames_naive)",
                   "naive": _time(lambda: cpbd_frames_naive(other[:k_naive]), k_naive),
                   "cpu": _time(lambda: cpbd_frames(other[:k]), k)}
    out["cpbd"]["speedup_cpu"] = _speedup(out["cpbd"]["naive"], out["cpbd"]["cpu"])
    lms = rng.uniform(0, 128, (n, 478, 3)).astype(np.float32)
    lms_other = lms[::-1].copy()
    out["lmd"] = {"baseline": "per-frame numpy loop", "naive": _time(lambda: naive_lmd_frames(lms, lms_other), n),
                  "cpu": _time(lambda: lmd_frames(lms, lms_other), n)}
    out["lmd"]["speedup_cpu"] = _speedup(out["lmd"]["naive"], out["lmd"]["cpu"])
    if networks:
        _networks(frames, other, devices, out)
    res["torch_threads"] = torch.get_num_threads()
    res["opencv_threads"] = cv2.getNumThreads()  # SSIM's CPU filters; its elementwise numpy math is 1 thread
    return res


def _networks(frames: np.ndarray, other: np.ndarray, devices: list[str], out: dict[str, Any]) -> None:
    import torch
    import torch.nn.functional as F

    from talkbench.benchmark import syncnet as sn
    from talkbench.benchmark.metrics.identity import _prep, cosine_to_reference
    from talkbench.benchmark.metrics.lpips_alex import LPIPSAlex, lpips_frames
    from talkbench.models.arcface import IResNet

    torch.manual_seed(0)
    n = len(frames)
    out["lpips"] = {"weights": "random init (speed only)", "baseline": "batch 1 loop"}
    out["csim"] = {"weights": "random init (speed only)", "baseline": "batch 1 loop, reference embedded once"}
    out["lse-syncnet"] = {"weights": "random init (speed only)", "unit": "5-frame windows",
                          "baseline": "batch 1 loop (one window per forward)"}
    for dev in devices:
        cuda = dev.startswith("cuda")
        lp = LPIPSAlex().to(dev).eval()
        out["lpips"][dev] = _time(lambda lp=lp, d=dev: (lpips_frames(lp, other, frames, d), _sync(d)), n)
        m = min(n, 16)
        naive = _time(lambda lp=lp, d=dev, m=m: [(lpips_frames(lp, other[i:i + 1], frames[i:i + 1], d), _sync(d))
                                            for i in range(m)], m)
        out["lpips"][f"naive_{dev}"] = naive
        out["lpips"][f"speedup_{dev}"] = _speedup(naive, out["lpips"][dev])

        arc = IResNet().to(dev).eval()
        k = min(n, 64 if cuda else 16)
        out["csim"][dev] = _time(lambda a=arc, d=dev, k=k: (cosine_to_reference(a, frames[0], other[:k], d), _sync(d)),
                                 k, repeat=1)

        def csim_naive(a: Any = arc, d: str = dev, k: int = k) -> list[float]:
            with torch.inference_mode():
                ref = F.normalize(a(_prep(frames[0][None], d)), dim=-1)
                return [float(F.normalize(a(_prep(other[i:i + 1], d)), dim=-1) @ ref.T) for i in range(k)]

        out["csim"][f"naive_{dev}"] = _time(csim_naive, k, repeat=1)  # float() syncs every frame
        out["csim"][f"speedup_{dev}"] = _speedup(out["csim"][f"naive_{dev}"], out["csim"][dev])

        net = sn.SyncNet().to(dev).eval()
        w = min(n, 64 if cuda else 36) - sn.WINDOW + 1  # 32 windows on CPU: 4 were too few to time

        def lip(net: Any = net, d: str = dev, w: int = w, batch: int = 16) -> None:
            with torch.inference_mode():
                for s in range(0, w, batch):
                    net.forward_lip(sn.face_windows(frames, s, min(w, s + batch), torch.device(d)))
            _sync(d)

        out["lse-syncnet"][dev] = _time(lip, w, repeat=1)
        out["lse-syncnet"][f"naive_{dev}"] = _time(lambda lip=lip: lip(batch=1), w, repeat=1)
        out["lse-syncnet"][f"speedup_{dev}"] = _speedup(out["lse-syncnet"][f"naive_{dev}"], out["lse-syncnet"][dev])


def run_from_args(args: argparse.Namespace) -> int:
    import torch

    from talkbench.perf import write_report

    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    frames = load_frames(args.input, args.frames)
    results = measure(frames, devices, networks=not args.skip_networks)
    results["input"] = str(args.input)
    path = write_report("metrics", results, args.out_dir)
    for name, r in results["metrics"].items():
        parts = [f"{k} {v['frames_per_s']:.1f} f/s" for k, v in r.items() if isinstance(v, dict)]
        parts += [f"{k} x{v:.2f}" for k, v in r.items() if k.startswith("speedup")]
        print(f"{name:<20} " + ", ".join(parts))
    print(f"wrote {path}")
    return 0
