"""``talkbench bench``: make-task, list, run, leaderboard. Handlers import the heavy parts lazily."""

from __future__ import annotations

import argparse
from typing import Any

SPEC_HELP = ("a folder or .zip/.tar of <clip_id>.mp4 (outputs first), builtin:ground-truth, builtin:static-frame, "
             "builtin:shifted?k=5, checkpoint:CKPT, or module:Class (adapter with generate(reference_image, "
             "audio_16k, fps); needs --allow-code); repeatable")
CODE_WARNING = ("module:Class adapters run code with the rights of the user running the harness: never score "
                "one that comes from an untrusted party outside a container.")


def register(sub: Any, perf_sub: Any) -> None:
    from talkbench.benchmark.perf_metrics import register_perf

    register_perf(perf_sub)
    b = sub.add_parser("bench", help="benchmark talking-head models: tasks, submissions, MLflow, leaderboards",
                       description="Three steps: make-task (from prepared shards), run (one MLflow run per "
                       "submission), leaderboard.")
    bsub = b.add_subparsers(dest="bench_command", metavar="STEP", required=True)

    m = bsub.add_parser("make-task", help="write a versioned, hashed task manifest from prepared shards")
    m.add_argument("--shards", required=True, help="prepared shards folder (talkbench prepare --output)")
    m.add_argument("--name", required=True, help="task name (letters, digits, _ - .)")
    m.add_argument("--split", default="test")
    m.add_argument("--kind", choices=["paired", "unpaired", "personalized", "dubbing"], default="paired",
                   help="paired: each clip's own audio (full-reference metrics); unpaired: another clip's "
                   "audio drives the face (no-reference metrics only); personalized: each clip's first "
                   "--personalize-frames frames are handed to the adapter's personalize(frames, audio), the "
                   "rest is generated and scored; dubbing: the adapter's dub(masked_frames, masks, audio, fps) gets "
                   "the clip with its lower face masked and returns full frames (only the mask is scored)")
    m.add_argument("--personalize-frames", type=int, default=None, metavar="N",
                   help="personalized tasks: fine-tuning frames per clip (published: 300); clips need N + 25 frames")
    m.add_argument("--max-clips", type=int, default=None, help="first N usable clips by clip id")
    m.add_argument("--primary-metric", default=None, help="leaderboard ranking key (default: lmd for paired, av_xcorr_r0 for unpaired)")
    m.add_argument("--geometry", choices=["full", "aligned"], default=None,
                   help="frames submissions deliver: full = the source video's size (default; cropped with the "
                   "ground truth's own transforms), aligned = S x S crops in the task's alignment")
    m.add_argument("--codec", default=None, metavar="NAME",
                   help="codec normalisation: re-encode every scored video, ground truth included, with this "
                   "recorded setting before scoring (h264-crf23, h264-crf18; default: scored as delivered)")
    m.add_argument("--tasks-dir", default=None, help="default $TALKBENCH_TASKS_DIR or ./tasks")
    m.set_defaults(handler=_make_task)

    ls = bsub.add_parser("list", help="registered tasks (latest version of each)")
    ls.add_argument("--tasks-dir", default=None)
    ls.set_defaults(handler=_list)

    r = bsub.add_parser("run", help="score submissions on a task; one MLflow run each",
                        description="Score submissions on a task; one MLflow run each. Security: "
                        + CODE_WARNING + " Folders and archives of videos run no code.")
    r.add_argument("--task", required=True, help="task name, name@VERSION, or a task YAML path")
    r.add_argument("--submission", required=True, action="append", metavar="SPEC", help=SPEC_HELP)
    r.add_argument("--name", default=None, help="display name of the (single) submission")
    r.add_argument("--tracking-uri", default=None, help="MLflow URI (default $MLFLOW_TRACKING_URI or "
                   "sqlite:///mlflow.db)")
    r.add_argument("--rerun", action="store_true", help="replace an earlier run of the same submission on "
                   "the same task (otherwise refused)")
    r.add_argument("--metrics", default=None, help="comma-separated metric names (default: all registered)")
    r.add_argument("--outputs-dir", default=None, help="where each run's folder goes: its videos, "
                   "results.json, per_clip.csv, grids (default bench_outputs/<task>/<submission>/<time>-<pid>/)")
    r.add_argument("--no-keep-videos", action="store_true", help="do not write the generated videos")
    r.add_argument("--length-tolerance", type=int, default=1,
                   help="frames a submission may be off by (trimmed/padded); more is a wrong_length error")
    r.add_argument("--device", default=None, help="torch device for the metrics (default: cuda if available)")
    r.add_argument("--scheduler", default=None, metavar="local[:N]|ADDRESS|slurm:FILE",
                   help="score the clips on a Dask cluster (the one prepare uses): local[:N] worker processes, "
                   "a scheduler address (tcp://host:8786) or slurm:FILE (a dask-jobqueue YAML like "
                   "configs/slurm_example.yaml); same numbers as a local run")
    r.add_argument("--tasks-dir", default=None)
    r.add_argument("--allow-code", action="store_true", help="allow module:Class adapters: they are imported "
                   "and run with your rights (off by default, so a service passing on specs runs none)")
    r.set_defaults(handler=_run)

    lg = bsub.add_parser("log", help="log a run folder that `bench run` could not log (store locked or down)",
                         description="Log RESULTS (a folder holding results.json, per_clip.csv and grids/, written "
                         "by `bench run` before it touched MLflow) as one MLflow run. The duplicate check is the "
                         "same as bench run's.")
    lg.add_argument("results", metavar="RESULTS", help="the run folder (or its results.json)")
    lg.add_argument("--tracking-uri", default=None)
    lg.add_argument("--rerun", action="store_true", help="replace an earlier run of the same submission")
    lg.set_defaults(handler=_log)

    lb = bsub.add_parser("leaderboard", help="one row per submission from MLflow (or from result bundles), "
                         "sorted by the primary metric")
    lb.add_argument("--task", default=None, help="task name (latest version) or name@VERSION; with --from, "
                    "the local task whose hash every bundle must have (default: the hash most bundles share)")
    lb.add_argument("--from", dest="from_dir", default=None, metavar="DIR",
                    help="build the board from the result bundles (bench export) in DIR instead of MLflow; "
                    "bundles of another task hash are refused")
    lb.add_argument("--tasks-dir", default=None)
    lb.add_argument("--format", choices=["md", "html", "csv"], default="md")
    lb.add_argument("--out", default=None, help="output file (default reports/leaderboards/<task>.<format>)")
    lb.add_argument("--tracking-uri", default=None)
    lb.add_argument("--relative", action="store_true", help="Markdown and HTML: show each value's difference "
                    "to the ground-truth reference row (the CSV always has <metric>_minus_reference columns)")
    lb.set_defaults(handler=_leaderboard)

    ex = bsub.add_parser("export", help="write one scored run as a self-contained result bundle (.zip) to share",
                         description="The bundle holds the run record, the per-clip table, the task manifest and "
                         "hashes, and sample frames; `bench leaderboard --from DIR` merges bundles from any "
                         "number of stores into one board, `bench verify` re-scores one.")
    ex.add_argument("run", metavar="RUN", help="an MLflow run id, or a submission name (with --task)")
    ex.add_argument("--out", required=True, metavar="FILE", help="bundle file (.zip; .tbresult.zip is appended "
                    "to other names)")
    ex.add_argument("--task", default=None, help="the task, when RUN is a submission name")
    ex.add_argument("--with-videos", action="store_true", help="include the generated videos (large)")
    ex.add_argument("--tracking-uri", default=None)
    ex.add_argument("--tasks-dir", default=None)
    ex.set_defaults(handler=_export)

    ve = bsub.add_parser("verify", help="re-score a contributed submission and compare with its bundle")
    ve.add_argument("bundle", metavar="BUNDLE")
    ve.add_argument("--submission", required=True, metavar="SPEC", help=SPEC_HELP.removesuffix("; repeatable"))
    ve.add_argument("--rtol", type=float, default=1e-3, help="relative tolerance per aggregate")
    ve.add_argument("--atol", type=float, default=1e-6, help="absolute tolerance per aggregate")
    ve.add_argument("--device", default=None)
    ve.add_argument("--tasks-dir", default=None)
    ve.set_defaults(handler=_verify)


def _make_task(args: argparse.Namespace) -> int:
    from talkbench.benchmark.tasks import build_task, save_task

    task = build_task(args.shards, args.name, split=args.split, kind=args.kind, max_clips=args.max_clips,
                      primary_metric=args.primary_metric, personalize_frames=args.personalize_frames,
                      geometry=args.geometry, codec=args.codec)
    stored, path, new = save_task(task, args.tasks_dir)
    state = "wrote" if new else "unchanged (same content as)"
    print(f"{state} task {stored.ref}: {len(stored.clips)} {stored.kind} clips from split {stored.split!r}, "
          f"hash {stored.hash[:16]} -> {path}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from talkbench.benchmark.tasks import list_tasks, tasks_dir

    tasks = list_tasks(args.tasks_dir)
    if not tasks:
        print(f"no tasks in {tasks_dir(args.tasks_dir)} (create one with `talkbench bench make-task`)")
        return 0
    print(f"{'task':<28}{'kind':<10}{'clips':>6}  {'primary':<16}{'hash':<18}shards")
    for t in tasks:
        print(f"{t.ref:<28}{t.kind:<10}{len(t.clips):>6}  {t.primary_metric:<16}{t.hash[:16]:<18}{t.shards}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from talkbench.benchmark.harness import run_submissions
    from talkbench.benchmark.leaderboard import summary_text

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    def show(result: Any, run_id: str | None) -> None:
        print(summary_text(result.record))
        if run_id:
            print(f"  MLflow run {run_id}; results in {result.results_dir}"
                  + (" (with the generated videos)" if result.videos_dir else ""))

    run_submissions(args.task, args.submission, name=args.name, tracking_uri=args.tracking_uri,
                    rerun=args.rerun, metrics=metrics, outputs_dir=args.outputs_dir,
                    length_tolerance=args.length_tolerance, tasks_dir=args.tasks_dir, device=args.device,
                    keep_videos=not args.no_keep_videos, allow_code=args.allow_code, on_result=show,
                    scheduler=args.scheduler)
    return 0


def _log(args: argparse.Namespace) -> int:
    from pathlib import Path

    from talkbench.benchmark import runs

    folder = Path(args.results)
    folder = folder.parent if folder.name == runs.RECORD_ARTIFACT else folder
    runs.use_tracking(args.tracking_uri)
    videos = folder if any(folder.glob("*.mp4")) else None
    run_id = runs.log_folder(folder, rerun=args.rerun, videos_dir=videos)
    print(f"logged {folder} as MLflow run {run_id}")
    return 0


def _leaderboard(args: argparse.Namespace) -> int:
    from talkbench.benchmark import runs
    from talkbench.benchmark.leaderboard import render_board, write_leaderboard

    if args.from_dir:
        import sys

        from talkbench.benchmark.bundles import board_from_bundles

        board, refused = board_from_bundles(args.from_dir, args.task, args.tasks_dir, thumbnails=args.format == "html")
        for r in refused:
            print(f"talkbench: refused {r}", file=sys.stderr)
        path = render_board(board, args.format, args.out, args.relative)
    else:
        if not args.task:
            from talkbench.errors import ConfigError

            raise ConfigError("bench leaderboard: give --task (from MLflow) or --from DIR (result bundles)")
        runs.use_tracking(args.tracking_uri)
        path, _ = write_leaderboard(args.task, args.format, args.out, relative=args.relative)
    if args.format == "md":  # html/csv are for a browser or a spreadsheet: only say where they went
        print(path.read_text(encoding="utf-8"))
    print(f"wrote {path}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from talkbench.benchmark import runs
    from talkbench.benchmark.bundles import export_bundle

    runs.use_tracking(args.tracking_uri)
    path = export_bundle(args.run, args.out, task=args.task, with_videos=args.with_videos, tasks_dir=args.tasks_dir)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from talkbench.benchmark.bundles import verify_bundle, verify_report

    b, new, checks = verify_bundle(args.bundle, args.submission, args.tasks_dir, args.rtol, args.atol, args.device)
    print(verify_report(b, new, checks))
    return 0 if all(c.ok for c in checks) else 1
