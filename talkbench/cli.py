"""The ``talkbench`` command. Each area (pipelines, models, benchmark) adds its own sub-commands.

Area modules are imported here but must keep heavy imports (torch, mediapipe, mlflow, dask) inside
their handlers, so ``talkbench --help`` stays fast and works on a minimal install.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from talkbench import __version__
from talkbench.errors import TalkbenchError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="talkbench",
        description="Prepare talking-face corpora, train AU-driven talking-head models, benchmark them.",
    )
    parser.add_argument("--version", action="version", version=f"talkbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    perf = sub.add_parser("perf", help="benchmark a hot path against a naive baseline; JSON to reports/perf/")
    perf_sub = perf.add_subparsers(dest="perf_command", metavar="WHAT", required=True)

    from talkbench import demo, weights_cli
    from talkbench.benchmark import cli as bench_cli
    from talkbench.benchmark.perf_metrics import register_perf as register_perf_metrics
    from talkbench.models import cli as models_cli
    from talkbench.pipelines import cli as pipelines_cli

    pipelines_cli.register(sub, perf_sub)
    weights_cli.register_weights_cli(sub)
    register_perf_metrics(perf_sub)
    bench_cli.register(sub, perf_sub)
    models_cli.register(sub, perf_sub)
    demo.register(sub, perf_sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        rc = args.handler(args)
    except TalkbenchError as e:
        print(f"talkbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("talkbench: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
