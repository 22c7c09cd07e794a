"""``talkbench perf loader`` and ``talkbench perf training``.

loader: face-crop samples/s of the streaming loader (1 process = one core; then N workers) against a
naive read of the same data (pandas reads every column, PIL decodes each row).
training: per model, step time, samples/s and peak memory on random batches of the right shapes (the
model's cost without the loader), each model in a fresh process so peak RSS is its own. Beside it, in the
same process and on the same data, the naive baseline: the textbook per-clip loop, one sample per optimizer
step (batch 1, looped batch_size times), fp32 without autocast, default memory format; same model,
objective and optimizer. speedup = batched samples/s / naive samples/s.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from talkbench.perf import write_report
from talkbench.schema import SPEECH_AUS, image_bytes, image_column


# ---------------------------------------------------------------------------------------------- loader
def _naive(shards: Path, n: int, size: int | None) -> float:
    import pandas as pd
    from PIL import Image

    t0, done = time.perf_counter(), 0
    while done < n:
        for f in sorted((shards / "frames").glob("*.parquet")):
            df = pd.read_parquet(f)  # every column, as a first script would
            for _, row in df.iterrows():
                face = image_bytes(row["face"])
                if face is None:
                    continue
                img = Image.open(io.BytesIO(face)).convert("RGB")
                if size and img.size != (size, size):
                    img = img.resize((size, size), Image.BILINEAR)
                _ = np.asarray(img).transpose(2, 0, 1), row[[f"{a}_r" for a in SPEECH_AUS]].to_numpy(np.float32)
                done += 1
                if done >= n:
                    break
            if done >= n:
                break
    return done / (time.perf_counter() - t0)


def _streaming(shards: Path, n: int, size: int, workers: int) -> float:
    import torch

    from talkbench.models.data import DataConfig, DataSpec, ShardIndex, make_dataset, make_loader

    index = ShardIndex(shards)
    split = "train" if index.units("train", ["ok", "partial"]) else index.clips[0]["split"]
    cfg = DataConfig(seq_len=1, split=split, num_workers=workers)
    ds = make_dataset(index, DataSpec(image_size=size, aus=SPEECH_AUS), cfg, split=split, train=True, batch_size=64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core in-process; workers are single-threaded anyway
    try:
        it = iter(make_loader(ds, 64, workers))
        next(it)  # worker start-up is not throughput
        t0, done = time.perf_counter(), 0
        while done < n:
            done += len(next(it)["face"])
        return done / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)


def perf_loader(shards: str | Path | None, samples: int = 3000, image_size: int | None = None, workers: int | None = None,
                out_dir: str | Path = "reports/perf") -> dict[str, Any]:
    import pyarrow.parquet as pq

    from talkbench.errors import TalkbenchError

    tmp = None
    if shards is None:  # no prepared shards given: a synthetic set with GRID-like 128 px JPEG crops
        from talkbench.models.synthetic_shards import write_shards

        tmp = tempfile.TemporaryDirectory()
        shards = write_shards(Path(tmp.name) / "shards", speakers=8, clips_per_speaker=4, n_frames=75,
                              face_size=128, mouth_size=(48, 96))
    shards = Path(shards)
    files = sorted((shards / "frames").glob("*.parquet"))
    if not files:
        raise TalkbenchError(f"{shards}/frames holds no .parquet files")
    first = next(b for b in image_column(pq.read_table(files[0], columns=["face"]).column(0)) if b)
    from PIL import Image

    native = Image.open(io.BytesIO(first)).size[0]
    size = image_size or native
    workers = workers or os.cpu_count() or 1
    results: dict[str, Any] = {"shards": "synthetic (128 px JPEG)" if tmp else str(shards), "image_size": size, "crop_size": native, "samples": samples}
    results["naive_pandas_pil"] = round(_naive(shards, min(samples, 1500), image_size), 1)
    results["loader_1_process"] = round(_streaming(shards, samples, size, 0), 1)
    results[f"loader_{workers}_workers"] = round(_streaming(shards, samples, size, workers), 1)
    results["speedup_1_process"] = round(results["loader_1_process"] / results["naive_pandas_pil"], 2)
    if tmp is not None:
        tmp.cleanup()
    path = write_report("loader", results, out_dir)
    print(f"face-crop samples/s ({size} px): naive pandas+PIL {results['naive_pandas_pil']:.0f}, "
          f"loader 1 process {results['loader_1_process']:.0f}, "
          f"{workers} workers {results[f'loader_{workers}_workers']:.0f} -> {path}")
    return results


# ---------------------------------------------------------------------------------------------- training
NAIVE = ("one sample per optimizer step (batch 1, looped batch_size times), fp32, no autocast, default memory "
         "format; same model, objective, optimizer and data")


def _random_batch(spec: Any, seq_len: int, b: int, window_hops: int = 35) -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(0)
    t = spec.sync_frames or seq_len
    out: dict[str, Any] = {"mask": torch.ones(b, t, dtype=torch.bool)}
    if spec.image_size:
        out["face"] = torch.randint(0, 256, (b, t, 3, spec.image_size, spec.image_size), dtype=torch.uint8, generator=g)
    if spec.identity:
        out["identity"] = torch.randint(0, 256, (b, 3, spec.image_size, spec.image_size), dtype=torch.uint8, generator=g)
    if spec.mouth_size:
        out["mouth"] = torch.randint(0, 256, (b, t, 3, *spec.mouth_size), dtype=torch.uint8, generator=g)
    if spec.windows:
        out["windows"] = torch.randn(b, t, 12, window_hops, generator=g)
    if spec.sync_frames:
        out["audio"] = torch.randn(b, 12, 4 * t, generator=g)
        out["audio_neg"] = torch.randn(b, 12, 4 * t, generator=g)
    if spec.aus:
        out["aus"] = torch.rand(b, t, len(spec.aus), generator=g) * 5
        out["au_mask"] = torch.ones(b, t, len(spec.aus), dtype=torch.bool)
    if spec.regions:  # MFTFG: the template face layout's regions
        import numpy as np

        from talkbench.models.face_regions import masked_frames, polygon_mask, template68, upper_face

        s = spec.image_size
        pts = np.repeat(template68(s)[None], t, axis=0)
        out["landmarks"] = torch.from_numpy(upper_face(pts, s))[None].expand(b, -1, -1, -1).contiguous()
        out["lower"] = torch.from_numpy(polygon_mask(pts, s))[None, :, None].expand(b, -1, -1, -1, -1).contiguous()
        out["masked"] = torch.stack([torch.from_numpy(masked_frames(f.numpy(), pts)) for f in out["face"]])
        out["identity_lower"] = out["lower"][:, 0].clone()
        out["identity_aus"] = torch.rand(b, len(spec.aus), generator=g) * 5
    return out


def _setup(name: str, cfg: Any, dev: Any, channels_last: bool) -> tuple[Any, Any, dict, dict]:
    """A fresh model (same seed), objective and AdamW per group: identical for the naive and batched runs."""
    import torch

    from talkbench.models.registry import MODELS

    spec = MODELS.get(name)
    torch.manual_seed(0)
    model = spec.build(cfg.model).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    obj = spec.objective(cfg.model, cfg.loss, cfg.data)
    obj.setup(dev)
    parts = obj.parts(model)
    opts = {g: torch.optim.AdamW(parts[g].parameters(), lr=1e-4) for g in obj.groups}
    return model, obj, parts, opts


def _naive_samples_per_s(name: str, cfg: Any, dev: Any, batch: dict[str, Any], sync: Any) -> float:
    """The textbook per-clip loop: one sample per optimizer step, fp32, default memory format.

    Same model, objective, optimizer and data as the batched run; only the batching, autocast and
    channels_last differ. One warm-up step, then one pass over the batch's samples.
    """
    import contextlib

    from talkbench.models.train import train_step

    _, obj, parts, opts = _setup(name, cfg, dev, channels_last=False)
    n = len(batch["mask"])
    samples = [{k: v[i:i + 1] for k, v in batch.items()} for i in range(n)]
    train_step(obj, parts, parts, opts, samples[0], contextlib.nullcontext, 1.0)
    sync()
    t0 = time.perf_counter()
    for sample in samples:
        train_step(obj, parts, parts, opts, sample, contextlib.nullcontext, 1.0)
    sync()
    return n / (time.perf_counter() - t0)


def measure_one(name: str, size: str, steps: int, batch_size: int, device: str,
                threads: int | None = None) -> dict[str, Any]:
    """Time ``steps`` training steps of one model (after 2 warm-up steps) in this process, then the naive
    baseline (``batch_size`` single-sample steps in fp32) on the same data."""
    import contextlib
    import resource

    import torch

    if threads:
        torch.set_num_threads(threads)
    from talkbench.models.train import load_run_config, train_step

    dev = torch.device(device)
    from talkbench.models.registry import MODELS

    seq_len = MODELS.get(name).seq_len
    overrides = list(MODELS.get(name).small) if size == "small" else []
    overrides.append(f"data.seq_len={seq_len}")
    tmp = None
    if "au_classifier_checkpoint" in MODELS.get(name).loss_config.model_fields:
        # AU consistency needs a classifier: random weights cost the same
        from talkbench.models.au_classifier import AUClassifier, AUClassifierConfig
        from talkbench.models.checkpoint import save_checkpoint

        tmp = tempfile.TemporaryDirectory()
        save_checkpoint(Path(tmp.name) / "cls", AUClassifier(AUClassifierConfig()), "au_classifier", {}, 0)
        overrides.append(f"loss.au_classifier_checkpoint={tmp.name}/cls")
    cfg = load_run_config(name, None, overrides)
    model, obj, parts, opts = _setup(name, cfg, dev, cfg.train.channels_last)
    random_batch = getattr(obj, "random_batch", None)  # objectives with derived targets give their own shapes
    batch = random_batch(seq_len, batch_size) if random_batch else _random_batch(obj.data_spec(), seq_len, batch_size,
                                                                                cfg.data.window_hops)
    batch = {k: v.to(dev) for k, v in batch.items()}
    bf16 = dev.type == "cuda"
    autocast = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for _ in range(2):
        train_step(obj, parts, parts, opts, batch, autocast, 1.0)
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        train_step(obj, parts, parts, opts, batch, autocast, 1.0)
        sync()
        times.append(time.perf_counter() - t0)
    step_s = float(np.median(times))
    frames = batch_size * (obj.data_spec().sync_frames or seq_len)
    out = {
        "model": name, "size": size, "device": str(dev), "precision": "bf16-autocast" if bf16 else "fp32",
        "channels_last": cfg.train.channels_last,
        "batch_size": batch_size, "seq_len": seq_len, "threads": torch.get_num_threads(),
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "step_s_median": round(step_s, 4), "samples_per_s": round(batch_size / step_s, 2),
        "frames_per_s": round(frames / step_s, 1),
        # peaks are the batched run's own: taken before the naive baseline builds its model
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }
    if dev.type == "cuda":
        out["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    del model, parts, opts
    naive = _naive_samples_per_s(name, cfg, dev, batch, sync)
    out.update({"naive_samples_per_s": round(naive, 2), "speedup": round(out["samples_per_s"] / naive, 2)})
    if tmp is not None:
        tmp.cleanup()
    return out


def perf_training(models: list[str], size: str = "small", steps: int = 5, batch_size: int = 8,
                  device: str = "auto", out_dir: str | Path = "reports/perf", threads: int | None = None) -> dict[str, Any]:
    import torch

    devices = ["cpu", "cuda"] if device == "all" else [device]
    if device == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    rows = []
    for dev in devices:
        for name in models:
            code = ("import json,sys; from talkbench.models.perf import measure_one; "
                    f"print('RESULT'+json.dumps(measure_one({name!r}, {size!r}, {steps}, {batch_size}, {dev!r}, {threads!r})))")
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT")), None)
            if line is None:
                rows.append({"model": name, "device": dev, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]})
            else:
                rows.append(json.loads(line[6:]))
            r = rows[-1]
            print(f"{dev:4s} {name:14s} " + (f"step {r['step_s_median'] * 1000:8.1f} ms  {r['samples_per_s']:8.1f} "
                  f"samples/s (naive batch-1 fp32 {r['naive_samples_per_s']:7.2f}, x{r['speedup']:.2f})  "
                  f"{r['frames_per_s']:8.1f} frames/s  peak RSS {r['peak_rss_gib']} GiB"
                  + (f"  GPU {r['peak_gpu_gib']} GiB" if "peak_gpu_gib" in r else "")
                  if "error" not in r else f"failed: {r['error']}"))
    results = {"size": size, "steps": steps, "batch_size": batch_size, "naive_baseline": NAIVE, "runs": rows}
    path = write_report("training", results, out_dir)
    print(f"-> {path}")
    return results


# ---------------------------------------------------------------------------------------------- mftfg
NAIVE_MFTFG = ("training: one clip per optimizer step (batch 1), fp32, no EMA copy; sampling: one frame per "
               "sampler call (batch 1), fp32, the raw (not EMA) weights; same model and inputs")


def perf_mftfg(size: str = "small", train_steps: int = 3, batch_size: int = 2, frames: int = 8,
               ddim_steps: tuple[int, ...] = (25, 50), device: str = "cpu", threads: int | None = None,
               out_dir: str | Path = "reports/perf") -> dict[str, Any]:
    """The MFTFG renderer: training samples/s and DDIM sampling frames/s at each step count, each beside
    the naive baseline (NAIVE_MFTFG) measured in the same run."""
    import contextlib

    import torch

    from talkbench.models.registry import MODELS
    from talkbench.models.train import load_run_config, train_step

    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    spec = MODELS.get("mftfg")
    sizes = {"small": spec.small, "tiny": spec.tiny}
    if size not in sizes:
        raise ValueError(f"size must be one of {sorted(sizes)}")
    seq = spec.seq_len
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def build(ema: bool) -> tuple[Any, Any, dict, dict, Any]:
        cfg = load_run_config("mftfg", None, [*sizes[size], f"data.seq_len={seq}",
                                              *([] if ema else ["model.ema_decay=0"])])
        model, obj, parts, opts = _setup("mftfg", cfg, dev, channels_last=False)
        return model, obj, parts, opts, cfg

    def train_rate(ema: bool, b: int) -> float:
        model, obj, parts, opts, cfg = build(ema)
        batch = {k: v.to(dev) for k, v in _random_batch(obj.data_spec(), seq, batch_size,
                                                          cfg.data.window_hops).items()}
        chunks = [{k: v[i:i + b] for k, v in batch.items()} for i in range(0, batch_size, b)]
        train_step(obj, parts, parts, opts, chunks[0], contextlib.nullcontext, 0.1)  # warm-up
        sync()
        t0 = time.perf_counter()
        for _ in range(train_steps):
            for c in chunks:
                train_step(obj, parts, parts, opts, c, contextlib.nullcontext, 0.1)
        sync()
        return train_steps * batch_size / (time.perf_counter() - t0)

    def sample_rate(model: Any, inputs: dict, steps: int, per_frame: bool) -> float:
        b, t = inputs["windows"].shape[:2]
        g = torch.Generator(device=dev).manual_seed(0)
        t0 = time.perf_counter()
        if per_frame:
            for i in range(b):
                for j in range(t):
                    one = {k: (v[i:i + 1, j:j + 1] if v.ndim >= 3 and k in ("windows", "landmarks", "masked_gt")
                               else v[i:i + 1]) for k, v in inputs.items()}
                    model.sample(one, inpaint=False, ddim_steps=steps, use_ema=False, generator=g)
        else:
            model.sample(inputs, inpaint=False, ddim_steps=steps, use_ema=True, generator=g)
        sync()
        return b * t / (time.perf_counter() - t0)

    out: dict[str, Any] = {"size": size, "device": str(dev), "precision": "fp32", "threads": torch.get_num_threads(),
                           "batch_size": batch_size, "seq_len": seq, "naive_baseline": NAIVE_MFTFG}
    # the machine may be shared: the 1-minute load average beside the figures says how far to trust them
    out["load_avg_1min_start"] = round(os.getloadavg()[0], 2)
    out["train_samples_per_s"] = round(train_rate(True, batch_size), 3)
    out["train_naive_samples_per_s"] = round(train_rate(False, 1), 3)
    out["train_speedup"] = round(out["train_samples_per_s"] / out["train_naive_samples_per_s"], 2)
    model, obj, _, _, cfg = build(True)
    model.eval()
    clips = max(1, frames // seq)
    batch = _random_batch(obj.data_spec(), seq, clips, cfg.data.window_hops)
    from talkbench.models.mftfg import batch_inputs

    inputs = {k: v.to(dev) for k, v in batch_inputs(batch).items()}
    out["parameters_m"] = round(sum(p.numel() for p in model.net.parameters()) / 1e6, 2)
    out["sampling"] = []
    for steps in ddim_steps:
        fast = sample_rate(model, inputs, steps, per_frame=False)
        naive = sample_rate(model, inputs, steps, per_frame=True)
        out["sampling"].append({"ddim_steps": steps, "frames": clips * seq, "frames_per_s": round(fast, 3),
                                "naive_frames_per_s": round(naive, 3), "speedup": round(fast / naive, 2)})
    out["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    print(f"mftfg {size} {dev}: training {out['train_samples_per_s']} clips/s (naive {out['train_naive_samples_per_s']}, "
          f"x{out['train_speedup']})")
    for r in out["sampling"]:
        print(f"  DDIM {r['ddim_steps']:3d} steps: {r['frames_per_s']} frames/s (naive {r['naive_frames_per_s']}, "
              f"x{r['speedup']})")
    path = write_report("mftfg", out, out_dir)
    print(f"-> {path}")
    return out
