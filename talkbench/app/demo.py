"""``talkbench demo``: the whole product in one command, on the synthetic corpus.

Make the synthetic corpus, prepare it with Dask, then run the ``au_rgan`` recipe (preset ``tiny``):
train the AU classifier, Audio-to-AU and AU-RGAN, score the trained generator and the three built-in
references, and write the leaderboard. Each step calls the library and prints the equivalent
``talkbench`` command; every step is resumable: re-running skips what is done.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from talkbench.errors import TalkbenchError

RECIPE = "au_rgan"
TASK = "demo"
#: configs/datasets/synthetic.yaml holds out spk00 (test) and spk01 (val); the rest train
MIN_SYNTH_SPEAKERS = 3


def register(sub: Any) -> None:
    d = sub.add_parser(
        "demo",
        help="the main job end to end: corpus -> shards -> models -> benchmark -> leaderboard",
        description="Without --input, generates the synthetic corpus first. Re-running skips finished steps. "
        f"Runs the {RECIPE} recipe (preset tiny): talkbench recipe run {RECIPE} --shards DIR.",
    )
    d.add_argument("--dataset", default="synthetic", help="dataset adapter of --input (default: synthetic)")
    d.add_argument("--input", default=None, help="corpus folder (default: generate the synthetic corpus)")
    d.add_argument("--workdir", default="demo", help="where shards, checkpoints and tasks go")
    d.add_argument("--workers", type=int, default=None)
    d.add_argument("--train-minutes", type=float, default=None,
                   help="time budget per model (default: ~1 min each on CPU, longer on a GPU)")
    d.add_argument("--speakers", type=int, default=4, help="synthetic corpus: speakers")
    d.add_argument("--clips", type=int, default=4, help="synthetic corpus: clips per speaker")
    d.set_defaults(handler=_demo)


def prepare_step(args: argparse.Namespace, work: Path) -> Path:
    """The synthetic corpus (once) and ``talkbench prepare`` (resumable: completed clips are skipped)."""
    from talkbench.app.recipes import command
    from talkbench.config import shipped_config
    from talkbench.pipelines.runner import config_from_args, prepare

    shards = work / "shards"
    if args.input is None:
        from talkbench.pipelines.synth import generate_corpus

        corpus = work / "corpus"
        if not (corpus / "corpus.json").is_file():
            print(f"\n$ {command(['synth', '--output', str(corpus), '--speakers', str(args.speakers), '--clips', str(args.clips), '--seed', '0'])}",
                  flush=True)
            generate_corpus(corpus, speakers=args.speakers, clips_per_speaker=args.clips, seed=0)
        dataset, source = "synthetic", corpus
    else:
        dataset, source = args.dataset, Path(args.input)
    dcfg = shipped_config("datasets", dataset)
    cmd = ["prepare", "--dataset", dataset, "--input", str(source), "--output", str(shards)]
    cmd += ["--dataset-config", str(dcfg)] if dcfg else []
    cmd += ["--workers", str(args.workers)] if args.workers else []
    print(f"\n$ {command(cmd)}", flush=True)
    # the prepare command's own options (and defaults) resolve the config, as typing the line above would
    cfg, dataset_cfg = config_from_args(_prepare_parser().parse_args(cmd))
    summary = prepare(dataset, source, shards, cfg, dataset_options=dataset_cfg.options, split=dataset_cfg.split)
    print(summary.table())
    return shards


def _prepare_parser() -> argparse.ArgumentParser:
    """The pipelines area's own ``prepare`` options (defaults included)."""
    from talkbench.pipelines import cli as pipelines_cli

    parser = argparse.ArgumentParser(prog="talkbench")
    sub = parser.add_subparsers(dest="command")
    pipelines_cli.register(sub, argparse.ArgumentParser().add_subparsers())
    return parser


def run_demo(args: argparse.Namespace) -> dict[str, str]:
    from talkbench.app.recipes import run_recipe
    from talkbench.tracking import tracking_uri

    if args.input is None and args.speakers < MIN_SYNTH_SPEAKERS:
        raise TalkbenchError(f"--speakers {args.speakers}: the synthetic corpus needs at least "
                             f"{MIN_SYNTH_SPEAKERS} speakers (one test, one validation, the rest train)")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    shards = prepare_step(args, work)
    res = run_recipe(RECIPE, shards, preset="tiny", out=work, tasks_dir=work / "tasks",
                     train_minutes=args.train_minutes, label=TASK, task_name=TASK)
    md = res.leaderboards["md"]
    if md.is_file():
        print("\n" + md.read_text())
    uri = tracking_uri()
    return {
        "leaderboard": f"{res.leaderboards['html']} (and {md})",
        "shards": f"{shards}  (talkbench inspect {shards})",
        "checkpoints": ", ".join(str(p) for p in res.checkpoints.values()),
        "mlflow": f"mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite") else uri,
        "recipe": f"talkbench recipe run {RECIPE} --shards {shards} --preset tiny --out {work} --ablations",
    }


def _demo(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    summary = run_demo(args)
    minutes = (time.perf_counter() - t0) / 60
    print("\n" + "=" * 72)
    print(f"talkbench demo finished in {minutes:.1f} min")
    for label, where in summary.items():
        print(f"  {label:<14} {where}")
    print("=" * 72)
    return 0
