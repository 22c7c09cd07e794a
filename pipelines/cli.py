"""Sub-commands of the data-preparation area: prepare, synth, inspect, perf pipeline."""

from __future__ import annotations

import argparse
from typing import Any

from talkbench.config import add_override_arg
from talkbench.perf import add_perf_command


def register(sub: Any, perf_sub: Any) -> None:
    from talkbench.pipelines.au import AU_BACKENDS
    from talkbench.pipelines.datasets import DATASETS
    p = sub.add_parser(
        "prepare",
        help="turn a corpus folder into Parquet shards (Dask, resumable)",
        description="Decode, track faces, align, estimate pose and AUs, extract audio features, and write "
        "clips.parquet + frames/*.parquet + manifest.json. Re-running skips completed clips.",
    )
    p.add_argument("--dataset", required=True, help=f"dataset adapter: {', '.join(DATASETS.names())}")
    p.add_argument("--input", required=True, help="corpus root folder")
    p.add_argument("--output", required=True, help="output folder or fsspec URL")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    p.add_argument("--scheduler", default=None, help="where to run: local[:N] worker processes (default), an existing Dask "
                   "scheduler (tcp://host:port) or slurm:FILE (configs/slurm_example.yaml)")
    p.add_argument("--au-backend", choices=AU_BACKENDS.names(), default=None, help="AU estimator")
    p.add_argument("--config", default=None, help="pipeline YAML (default: configs/pipeline.yaml values)")
    p.add_argument("--dataset-config", default=None, help="dataset YAML (splits, speaker lists)")
    p.add_argument("--limit", type=int, default=None, help="process at most N clips (in stable order)")
    p.add_argument("--strict", action="store_true", help="exit non-zero when any clip failed")
    p.add_argument("--retry-failed", action="store_true", help="process clips that failed in an earlier run again")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_override_arg(p, "override any config field, e.g. -o landmarks.max_gap_frames=3 (repeatable)")
    p.set_defaults(handler=_prepare)

    s = sub.add_parser(
        "synth",
        help="generate a small synthetic talking-face corpus offline (deterministic from a seed)",
    )
    s.add_argument("--output", required=True)
    s.add_argument("--speakers", type=int, default=3)
    s.add_argument("--clips", type=int, default=4, help="clips per speaker")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--duration", type=float, default=3.0, help="seconds per clip")
    s.set_defaults(handler=_synth)

    mg = sub.add_parser("migrate", help="rewrite a prepared folder of an older schema as the current one "
                        "(shaped arrays, image structs, Hugging Face dataset card)")
    mg.add_argument("shards", metavar="SHARDS_DIR")
    mg.set_defaults(handler=_migrate)

    i = sub.add_parser("inspect", help="summarise prepared shards; --sheet writes a contact sheet")
    i.add_argument("shards", metavar="SHARDS_DIR")
    i.add_argument("--sheet", default=None, metavar="FILE.png", help="contact sheet of face crops with landmarks")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    i.set_defaults(handler=_inspect)

    pp = add_perf_command(
        perf_sub, "pipeline", "talkbench.pipelines.perf:run_from_args",
        help="frames/s: naive decode+face-mesh loop vs the pipeline with 1 worker vs all workers",
    )
    pp.add_argument("--input", default=None, help="folder of clips (default: ../shared/fixtures/grid)")
    pp.add_argument("--workers", type=int, default=None)
    pp.add_argument("--repeat", type=int, default=8, help="process the clip list this many times (stable numbers)")
    add_override_arg(pp, "pipeline config override, as for prepare (e.g. -o stages=[decode,landmarks])")


def _prepare(args: argparse.Namespace) -> int:
    from talkbench.pipelines.runner import prepare_from_args

    return prepare_from_args(args)


def _synth(args: argparse.Namespace) -> int:
    from talkbench.pipelines.synth import generate_corpus

    generate_corpus(args.output, speakers=args.speakers, clips_per_speaker=args.clips, seed=args.seed,
                    duration_s=args.duration)
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from talkbench.pipelines.hf import migrate

    done = migrate(args.shards)
    if done["from"] == done["to"]:
        print(f"{args.shards} is already schema {done['to']} (dataset card rewritten)")
    else:
        print(f"migrated {args.shards} from schema {done['from']} to {done['to']} ({done['files']} files rewritten)")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from talkbench.pipelines.inspect import inspect_from_args

    return inspect_from_args(args)
