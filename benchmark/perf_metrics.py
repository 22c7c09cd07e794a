"""``talkbench perf metrics``: frames/s of each metric, batched vs a naive per-frame baseline.

Inputs are real GRID frames (a 128x128 face-region crop, repeated to ``--frames``) and a degraded copy.
Baselines: scikit-image's per-frame ``peak_signal_noise_ratio`` / ``structural_similarity`` loops
for PSNR/SSIM (what most evaluation scripts do), and a per-frame (batch 1) loop for the networks.
Networks (LPIPS, SyncNet, ArcFace) run with randomly initialised weights here: throughput does not
depend on weight values, and the published files are not needed to measure it. Results go to
``reports/perf/metrics.json`` through ``talkbench.perf.write_report``.
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
    p = perf_sub.add_parser("metrics", help="frames/s of each metric: batched (CPU, and GPU when present) "
                            "vs naive per-frame loops")
    p.add_argument("--input", default=str(DEFAULT_CLIP), help="a video to take face-region frames from")
    p.add_argument("--frames", type=int, default=150, help="frames per measurement")
    p.add_argument("--device", action="append", default=None,
                   help="torch device(s) to measure (default: cpu, plus cuda when available)")
    p.add_argument("--skip-networks", action="store_true", help="only the weight-free metrics")
    p.add_argument("--out-dir", default="reports/perf")
    p.set_defaults(handler=run_from_args)


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


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(frames: np.ndarray, devices: list[str], networks: bool = True) -> dict[str, Any]:
    import torch
    from scipy.ndimage import gaussian_filter
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from talkbench.benchmark.metrics.cpbd import cpbd_frames
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
    out["psnr"]["speedup_cpu"] = sk_psnr["seconds"] / out["psnr"]["cpu"]["seconds"]
    out["ssim-gauss11-s1.5"] = {"baseline": "skimage per-frame loop", "naive": sk_gauss}
    out["ssim-uniform7"] = {"baseline": "skimage per-frame loop", "naive": sk_unif}
    for dev in devices:
        for key, fn in (("ssim-gauss11-s1.5", lambda d=dev: (ssim_frames(other, frames, device=d), _sync(d))),
                        ("ssim-uniform7",
                         lambda d=dev: (ssim_frames(other, frames, "ssim-uniform7", device=d), _sync(d)))):
            out[key][dev] = _time(fn, n)
            out[key][f"speedup_{dev}"] = out[key]["naive"]["seconds"] / out[key][dev]["seconds"]
    k = min(n, 30)
    out["cpbd"] = {"baseline": "none (numpy/skimage per frame, CPU only)", "cpu": _time(lambda: cpbd_frames(other[:k]), k)}
    lms = rng.uniform(0, 128, (n, 478, 3)).astype(np.float32)
    out["lmd"] = {"cpu": _time(lambda: lmd_frames(lms, lms[::-1].copy()), n)}
    if networks:
        _networks(frames, other, devices, out)
    res["torch_threads"] = torch.get_num_threads()
    return res


def _networks(frames: np.ndarray, other: np.ndarray, devices: list[str], out: dict[str, Any]) -> None:
    import torch

    from talkbench.benchmark import syncnet as sn
    from talkbench.benchmark.metrics.arcface import IResNet
    from talkbench.benchmark.metrics.identity import cosine_to_reference
    from talkbench.benchmark.metrics.lpips_alex import LPIPSAlex, lpips_frames

    torch.manual_seed(0)
    n = len(frames)
    out["lpips"] = {"weights": "random init (speed only)", "baseline": "batch 1 loop"}
    out["csim"] = {"weights": "random init (speed only)"}
    out["lse-syncnet"] = {"weights": "random init (speed only)", "unit": "5-frame windows"}
    for dev in devices:
        lp = LPIPSAlex().to(dev).eval()
        out["lpips"][dev] = _time(lambda lp=lp, d=dev: (lpips_frames(lp, other, frames, d), _sync(d)), n)
        m = min(n, 16)
        naive = _time(lambda lp=lp, d=dev, m=m: [(lpips_frames(lp, other[i:i + 1], frames[i:i + 1], d), _sync(d))
                                            for i in range(m)], m)
        out["lpips"][f"naive_{dev}"] = naive
        out["lpips"][f"speedup_{dev}"] = naive["seconds"] / m / (out["lpips"][dev]["seconds"] / n)
        arc = IResNet().to(dev).eval()
        k = min(n, 64 if dev.startswith("cuda") else 16)
        out["csim"][dev] = _time(lambda a=arc, d=dev, k=k: (cosine_to_reference(a, frames[0], other[:k], d), _sync(d)),
                                 k, repeat=1)
        net = sn.SyncNet().to(dev).eval()
        w = min(n, 64 if dev.startswith("cuda") else 8) - sn.WINDOW + 1

        def lip(net: Any = net, d: str = dev, w: int = w) -> None:
            with torch.inference_mode():
                for s in range(0, w, 16):
                    net.forward_lip(sn.face_windows(frames, s, min(w, s + 16), torch.device(d)))
            _sync(d)

        out["lse-syncnet"][dev] = _time(lip, w, repeat=1)


def run_from_args(args: argparse.Namespace) -> int:
    import torch

    from talkbench.perf import write_report

    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    frames = load_frames(args.input, args.frames)
    results = measure(frames, devices, networks=not args.skip_networks)
    results["input"] = str(args.input)
    path = write_report("metrics", results, args.out_dir)
    for name, r in results["metrics"].items():
        parts = [f"{k} {v['frames_per_s']:.0f} f/s" for k, v in r.items() if isinstance(v, dict)]
        print(f"{name:<20} " + ", ".join(parts))
    print(f"wrote {path}")
    return 0
