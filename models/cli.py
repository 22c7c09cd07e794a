"""Sub-commands of the models area: train, generate, perf loader, perf training (torch imported lazily)."""

from __future__ import annotations

import argparse
from typing import Any

from talkbench.config import add_override_arg
from talkbench.models.registry import MODELS  # light: lazy entries, no torch
from talkbench.perf import add_perf_command


def register(sub: Any, perf_sub: Any) -> None:
    names = MODELS.names()
    t = sub.add_parser(
        "train",
        help="train a model on prepared shards (DDP: torchrun --nproc-per-node N --no-python talkbench train ...)",
        description="One explicit training loop for every model. Runs are tracked in MLflow "
        "(MLFLOW_TRACKING_URI, default sqlite:///mlflow.db); checkpoints go to train.out_dir/MODEL/RUN/step_N.",
    )
    t.add_argument("model", choices=names,
                   help="a registered model (closed-form ones such as face3d fit in one pass: "
                   "-o out=DIR -o n_exp=64 -o n_id=40 -o face3d_ridge=1.0)")
    t.add_argument("--shards", required=True, help="prepared shard folder (talkbench prepare output)")
    t.add_argument("--config", default=None, help="YAML with model/loss/data/train sections (configs/models/*.yaml)")
    add_override_arg(t, "override a config field, e.g. -o train.steps=100 -o model.fusion.cell=lstm")
    t.add_argument("--max-steps", type=int, default=None, metavar="N",
                   help="optimizer steps (train.steps; the model's config default is long: set this for a try-out)")
    t.add_argument("--max-minutes", type=float, default=None, metavar="M",
                   help="stop with a checkpoint after M minutes of training (train.max_minutes)")
    t.add_argument("--batch-size", type=int, default=None, metavar="B", help="samples per step and rank (train.batch_size)")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="train.device (default auto: cuda if present)")
    t.add_argument("--run-name", default=None, help="checkpoints go to train.out_dir/MODEL/RUN_NAME (default: a time stamp); "
                   "train.out_dir/MODEL/latest always points at the last run")
    t.add_argument("--print-config", action="store_true", help="print the resolved config (YAML) and exit")
    t.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CKPT",
                   help="resume from a checkpoint folder, or (no value) the latest one of train.run_name")
    t.set_defaults(handler=_train)

    g = sub.add_parser("generate", help="make a talking-head video from one face image and speech audio")
    g.add_argument("--checkpoint", required=True, help="a generator checkpoint (folder or model.safetensors)")
    g.add_argument("--reference", default=None, metavar="IMAGE",
                   help="face image (aligned by the pipeline's tracker); not needed by a model that draws its own "
                   "target (a personalised yi2020 checkpoint)")
    g.add_argument("--video", default=None, metavar="TARGET",
                   help="the generate option video=TARGET (models that take it, e.g. yi2020: full frames blended "
                   "into the target video's frame of nearest head rotation)")
    g.add_argument("--audio", required=True, metavar="WAV", help="driving speech (any format PyAV reads)")
    g.add_argument("--out", required=True, metavar="VIDEO.mp4")
    g.add_argument("--device", default="cpu")
    g.add_argument("--no-align", action="store_true", help="the reference is already an aligned face crop")
    g.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a generate option of the model (e.g. max_frames_per_chunk=100, steps=4)")
    g.set_defaults(handler=_generate)

    pl = add_perf_command(perf_sub, "loader", "talkbench.models.cli:_perf_loader",
                          help="face-crop samples/s: the streaming loader vs a naive pandas+PIL read")
    pl.add_argument("--shards", default=None, help="prepared shards (default: a synthetic 128 px set in a temp dir)")
    pl.add_argument("--samples", type=int, default=3000)
    pl.add_argument("--image-size", type=int, default=None, help="default: the crops' own size")
    pl.add_argument("--workers", type=int, default=None, help="loader workers for the multi-worker run (default: cores)")

    pt = add_perf_command(perf_sub, "training", "talkbench.models.cli:_perf_training",
                          help="samples/s, step time and peak memory per model (CPU, and GPU if present) "
                          "beside a naive baseline: one sample per optimizer step, fp32, no autocast, "
                          "default memory format (same model, objective, optimizer)",
                          description="Training-step throughput per model on random batches of the right shapes, "
                          "each model in its own process. Beside it, in the same run, the naive baseline: the "
                          "textbook per-clip loop, one sample per optimizer step (batch 1, batch-size times), "
                          "fp32, no autocast, default memory format, same model, objective and optimizer. "
                          "speedup = batched samples/s / naive samples/s.")
    pt.add_argument("--models", nargs="+", default=None, choices=names, help="default: every trainable model")
    pt.add_argument("--size", choices=["reference", "small"], default="small",
                    help="reference = GUIDE §1 configs at 128 px; small = reduced widths (CPU-friendly)")
    pt.add_argument("--steps", type=int, default=5)
    pt.add_argument("--batch-size", type=int, default=8)
    pt.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "all"])
    pt.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")

    pm = add_perf_command(perf_sub, "mftfg", "talkbench.models.cli:_perf_mftfg", in_all=False,
                          help="MFTFG diffusion renderer: training samples/s and DDIM sampling frames/s "
                          "at 25/50 steps, beside a naive baseline (batch 1, fp32, no EMA copy)")
    pm.add_argument("--size", choices=["small", "tiny"], default="small")
    pm.add_argument("--train-steps", type=int, default=3)
    pm.add_argument("--batch-size", type=int, default=2, help="clips per training step")
    pm.add_argument("--frames", type=int, default=8, help="frames sampled (whole clips of the spec's length)")
    pm.add_argument("--ddim-steps", type=int, nargs="+", default=[25, 50])
    pm.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    pm.add_argument("--threads", type=int, default=None)

    from talkbench.models import yi2020_cli

    yi2020_cli.register(sub, perf_sub)


#: dedicated flags -> the config field they set (after -o, so a flag wins over -o)
TRAIN_FLAGS = {"max_steps": "train.steps", "max_minutes": "train.max_minutes", "batch_size": "train.batch_size",
               "device": "train.device", "run_name": "train.run_name"}


def _train(args: argparse.Namespace) -> int:
    import os

    import yaml

    from talkbench.models.train import load_run_config, train, train_summary

    overrides = list(args.override) + [f"{key}={getattr(args, flag)}" for flag, key in TRAIN_FLAGS.items()
                                       if getattr(args, flag) is not None]
    fit = MODELS.get(args.model).fit
    if fit is not None:  # a closed-form model (face3d): one pass, its own -o keys, no training loop
        loop_flags = [f"--{flag.replace('_', '-')}" for flag in (*TRAIN_FLAGS, "config", "resume")
                      if getattr(args, flag) is not None] + (["--print-config"] if args.print_config else [])
        if loop_flags:
            from talkbench.errors import TalkbenchError

            raise TalkbenchError(f"{args.model} is fitted in closed form (no training loop), so "
                                 f"{', '.join(loop_flags)} cannot be used; set its options with -o KEY=VALUE")
        return fit(args.shards, f"runs/{args.model}", list(args.override))
    cfg = load_run_config(args.model, args.config, overrides, shards=args.shards)
    if args.print_config:
        print(yaml.safe_dump({"name": args.model, **cfg.model_dump(mode="json")}, sort_keys=False), end="")
        return 0
    result = train(args.model, cfg, resume=args.resume)
    if int(os.environ.get("RANK", 0)) != 0:  # under torchrun only rank 0 reports
        return 0
    print(train_summary(args.model, result))
    return 0


def _generate(args: argparse.Namespace) -> int:
    from talkbench.errors import TalkbenchError
    from talkbench.models.generate import generate_video

    options = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep:
            raise TalkbenchError(f"--option {item!r}: expected KEY=VALUE")
        options[key] = value
    if args.video is not None:  # validated by the model's generate options like any other option
        options["video"] = args.video
    path = generate_video(args.checkpoint, args.reference, args.audio, args.out, args.device, not args.no_align,
                          **options)
    print(f"wrote {path}")
    return 0


def _perf_loader(args: argparse.Namespace) -> int:
    from talkbench.models.perf import perf_loader

    perf_loader(args.shards, args.samples, args.image_size, args.workers, args.out_dir)
    return 0


def _perf_mftfg(args: argparse.Namespace) -> int:
    from talkbench.models.perf import perf_mftfg

    perf_mftfg(args.size, args.train_steps, args.batch_size, args.frames, tuple(args.ddim_steps), args.device,
               args.threads, args.out_dir)
    return 0


def _perf_training(args: argparse.Namespace) -> int:
    from talkbench.models.perf import perf_training
    from talkbench.models.registry import trainable_names

    perf_training(args.models or trainable_names(), args.size, args.steps, args.batch_size, args.device, args.out_dir, args.threads)
    return 0
