"""``talkbench demo``, ``talkbench doctor`` and ``talkbench perf all``.

The demo is the whole product in one command: prepare a corpus with Dask, train the AU classifier,
Audio-to-AU and AU-RGAN, score the trained generator and the three built-in references, and write the
leaderboard. Every step goes through the same CLI a user would type, and every step is resumable:
re-running skips what is done.
"""

from __future__ import annotations

import argparse
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BUILTINS = ("builtin:ground-truth", "builtin:static-frame", "builtin:shifted")


def register(sub: Any, perf_sub: Any) -> None:
    d = sub.add_parser(
        "demo",
        help="the main job end to end: corpus -> shards -> models -> benchmark -> leaderboard",
        description="Without --input, generates the synthetic corpus first. Re-running skips finished steps.",
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

    doc = sub.add_parser("doctor", help="check Python, torch/CUDA, MediaPipe, OpenFace, weights, MLflow, Dask")
    doc.set_defaults(handler=lambda args: __import__("talkbench.doctor", fromlist=["main"]).main())

    pa = perf_sub.add_parser("all", help="run every perf benchmark and write reports/perf/README.md")
    pa.add_argument("--out-dir", default="reports/perf")
    pa.set_defaults(handler=_perf_all)


def _run(argv: Sequence[str]) -> None:
    """Run one talkbench command in-process, failing the demo when it fails."""
    from talkbench.cli import main
    from talkbench.errors import TalkbenchError

    print(f"\n$ talkbench {shlex.join(argv)}", flush=True)
    rc = main(list(argv))
    if rc != 0:
        raise TalkbenchError(f"demo step failed (exit {rc}): talkbench {shlex.join(argv)}")


def _demo(args: argparse.Namespace) -> int:
    from talkbench.demo_steps import run_demo

    t0 = time.perf_counter()
    summary = run_demo(args, _run)
    minutes = (time.perf_counter() - t0) / 60
    print("\n" + "=" * 72)
    print(f"talkbench demo finished in {minutes:.1f} min")
    for label, where in summary.items():
        print(f"  {label:<14} {where}")
    print("=" * 72)
    return 0


def _perf_all(args: argparse.Namespace) -> int:
    from talkbench.perf import write_index

    steps = [["perf", "pipeline"], ["perf", "loader"], ["perf", "metrics"], ["perf", "training"]]
    for step in steps:
        _run([*step, "--out-dir", args.out_dir])
    print(f"wrote {write_index(Path(args.out_dir))}")
    return 0
