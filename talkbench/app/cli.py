"""The ``talkbench`` command (app layer). Each area (pipelines, models, benchmark) adds its own sub-commands.

Area modules are imported here but must keep heavy imports (torch, mediapipe, mlflow, dask) inside
their handlers, so ``talkbench --help`` stays fast and works on a minimal install.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from talkbench import __version__
from talkbench.errors import TalkbenchError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="talkbench",
        description="Prepare talking-face corpora, train AU-driven talking-head models, benchmark them.",
    )
    parser.add_argument("--version", action="version", version=f"talkbench {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="-v: show third-party warnings and chatter (filtered by default); -vv: debug logging")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress display (off a terminal it is one line per finished step anyway)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    perf = sub.add_parser("perf", help="benchmark a hot path against a naive baseline; JSON to reports/perf/")
    perf_sub = perf.add_subparsers(dest="perf_command", metavar="WHAT", required=True)

    from talkbench import weights_cli
    from talkbench.app import demo, recipes
    from talkbench.benchmark import cli as bench_cli
    from talkbench.models import cli as models_cli
    from talkbench.pipelines import cli as pipelines_cli

    # each area adds its own commands and its own perf command
    pipelines_cli.register(sub, perf_sub)
    weights_cli.register_weights_cli(sub)
    bench_cli.register(sub, perf_sub)
    models_cli.register(sub, perf_sub)
    recipes.register(sub)
    demo.register(sub)

    doc = sub.add_parser("doctor", help="check Python, torch/CUDA, MediaPipe, OpenFace, weights, MLflow, Dask")
    doc.set_defaults(handler=_doctor)
    pa = perf_sub.add_parser("all", help="run every perf benchmark registered for it (each area's; not the "
                             "model-specific ones) and write reports/perf/README.md")
    pa.add_argument("--out-dir", default="reports/perf")
    pa.set_defaults(handler=_perf_all)
    return parser


def _doctor(args: argparse.Namespace) -> int:
    from talkbench.app.doctor import main as doctor

    return doctor()


def _perf_all(args: argparse.Namespace) -> int:
    """Every area's perf command, each dispatched to its own handler, then the reports index."""
    from talkbench.perf import perf_all_names, write_index

    parser = build_parser()
    for what in perf_all_names():
        print(f"\n$ talkbench perf {what} --out-dir {args.out_dir}", flush=True)
        sub_args = parser.parse_args(["perf", what, "--out-dir", args.out_dir])
        rc = sub_args.handler(sub_args)
        if rc:
            raise TalkbenchError(f"talkbench perf {what} failed (exit {rc})")
    print(f"wrote {write_index(Path(args.out_dir))}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose > 1 else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from talkbench import progress
    from talkbench.quiet import quiet_output

    progress.configure(quiet=args.quiet, tty=_stderr_is_terminal())  # before stderr goes through the filter
    try:
        with quiet_output(args.verbose):
            rc = args.handler(args)
    except TalkbenchError as e:
        print(f"talkbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("talkbench: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        # an OS error on a path (too long, read-only, disk full) or a tracking-store error (MLflow,
        # SQLAlchemy, alembic): one line, not a traceback; -v shows the traceback
        line = _one_line_error(e)
        if line is None or args.verbose:
            raise
        print(f"talkbench: error: {line}", file=sys.stderr)
        return 2
    return int(rc or 0)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _one_line_error(e: Exception) -> str | None:
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.strerror or type(e).__name__}: {e.filename}"
    if type(e).__module__.split(".")[0] in ("mlflow", "sqlalchemy", "alembic"):
        from talkbench.tracking import one_line

        return f"tracking store: {one_line(e)} (run with -v for the traceback)"
    return None


if __name__ == "__main__":
    sys.exit(main())
