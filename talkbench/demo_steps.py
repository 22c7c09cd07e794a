"""The steps of ``talkbench demo``, each skipped when its result is already there.

Kept apart from the argparse wiring in ``talkbench.demo`` so the order of the main job reads top to
bottom: corpus, shards, three trained models, a benchmark task, five scored submissions, leaderboard.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from talkbench.errors import TalkbenchError

log = logging.getLogger(__name__)

Run = Callable[[Sequence[str]], None]

TASK = "demo"
#: (model, minutes on CPU, minutes on a GPU, size overrides on CPU). The CPU sizes keep the whole demo
#: under 15 minutes on 2 cores; a GPU trains the reference-size models for longer. The demo's clip length
#: and optimiser settings predate the published setups in configs/models and are kept as they were.
_DEMO_OPT = ["data.seq_len=16", "train.lr=0.0002", "train.betas=[0.5,0.999]"]
MODELS: list[tuple[str, float, float, list[str]]] = [
    ("au_classifier", 1.0, 5.0, ["model.image_size=64", "model.base_channels=8", "train.batch_size=32", *_DEMO_OPT]),
    ("audio_to_au", 1.0, 5.0, ["train.batch_size=16", *_DEMO_OPT]),
    ("au_rgan", 3.0, 15.0, ["model.base_channels=16", "model.image_size=64", "data.seq_len=8",
                            "data.stride=8", "train.batch_size=4", "train.lr=0.0005"]),
]


def _gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _marker(work: Path, name: str) -> Path:
    return work / "_done" / f"{name}.json"


def _mark(work: Path, name: str, **info: str) -> None:
    path = _marker(work, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=2))


def _read_mark(work: Path, name: str) -> dict[str, str] | None:
    path = _marker(work, name)
    return json.loads(path.read_text()) if path.is_file() else None


def _dataset_config(dataset: str) -> Path | None:
    """configs/datasets/<dataset>.yaml from the source tree, when there is one."""
    root = Path(__file__).resolve().parents[1] / "configs" / "datasets"
    path = root / f"{dataset.replace('-', '_')}.yaml"
    return path if path.is_file() else None


def prepare_step(args: argparse.Namespace, work: Path, run: Run) -> Path:
    shards = work / "shards"
    if args.input is None:
        corpus = work / "corpus"
        if not (corpus / "corpus.json").is_file():
            run(["synth", "--output", str(corpus), "--speakers", str(args.speakers), "--clips", str(args.clips),
                 "--seed", "0"])
        dataset, source = "synthetic", corpus
    else:
        dataset, source = args.dataset, Path(args.input)
    cmd = ["prepare", "--dataset", dataset, "--input", str(source), "--output", str(shards)]
    dcfg = _dataset_config(dataset)
    if dcfg is not None:
        cmd += ["--dataset-config", str(dcfg)]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    run(cmd)  # resumable: completed clips are skipped
    return shards


def train_step(args: argparse.Namespace, work: Path, shards: Path, run: Run) -> dict[str, Path]:
    from talkbench.models.checkpoint import latest_checkpoint

    gpu = _gpu()
    ckpts: dict[str, Path] = {}
    for model, cpu_min, gpu_min, cpu_sizes in MODELS:
        done = _read_mark(work, f"train-{model}")
        if done:
            ckpts[model] = Path(done["checkpoint"])
            print(f"\n[skip] {model} already trained: {ckpts[model]}")
            continue
        minutes = args.train_minutes or (gpu_min if gpu else cpu_min)
        run_dir = work / "runs" / model / "demo"
        cmd = ["train", model, "--shards", str(shards),
               "-o", f"train.out_dir={work / 'runs'}", "-o", "train.run_name=demo",
               "-o", f"train.max_minutes={minutes}", "-o", "train.steps=100000",
               "-o", "train.val_every=0", "-o", "train.checkpoint_every=200", "-o", "data.num_workers=0"]
        if not gpu:
            cmd += ["-o", "train.cpu_threads=1"]
            for item in cpu_sizes:
                cmd += ["-o", item]
        if model == "au_rgan":
            cmd += ["-o", f"loss.au_classifier_checkpoint={ckpts['au_classifier']}"]
        if latest_checkpoint(run_dir) is not None:
            cmd += ["--resume"]
        run(cmd)
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise TalkbenchError(f"training {model} wrote no checkpoint under {run_dir}")
        ckpts[model] = ckpt
        _mark(work, f"train-{model}", checkpoint=str(ckpt))
    return ckpts


def _eval_split(shards: Path) -> str:
    """The held-out split to score on: test when it has usable clips, else val, else train (said aloud)."""
    import pyarrow.parquet as pq

    clips = pq.read_table(shards / "clips.parquet", columns=["split", "status"]).to_pylist()
    usable = {c["split"] for c in clips if c["status"] in ("ok", "partial")}
    for split in ("test", "val", "train"):
        if split in usable:
            if split != "test":
                print(f"\n[note] no usable test clips in {shards}: scoring the {split} split instead "
                      "(set test speakers in the dataset config for a held-out score)")
            return split
    raise TalkbenchError(f"no usable clips in {shards}: see `talkbench inspect {shards}`")


def bench_step(work: Path, shards: Path, generator: Path, run: Run) -> dict[str, Path]:
    from talkbench.benchmark import runs as bench_runs
    from talkbench.benchmark.submissions import load_submission
    from talkbench.benchmark.tasks import load_task

    tasks = work / "tasks"
    if not _read_mark(work, "task"):
        run(["bench", "make-task", "--shards", str(shards), "--name", TASK, "--split", _eval_split(shards),
             "--tasks-dir", str(tasks), "--max-clips", "8"])
        _mark(work, "task", tasks=str(tasks))
    task = load_task(TASK, tasks)
    specs = ["builtin:ground-truth", "builtin:static-frame", "builtin:shifted?k=5", f"checkpoint:{generator}"]
    names = {f"checkpoint:{generator}": "au_rgan (demo)"}
    bench_runs.use_tracking(None)
    for spec in specs:
        sub = load_submission(spec, name=names.get(spec))
        try:
            bench_runs.check_duplicate(task, sub, rerun=False)
        except TalkbenchError:
            print(f"\n[skip] {sub.name} already scored on task {TASK}")
            continue
        cmd = ["bench", "run", "--task", TASK, "--submission", spec, "--tasks-dir", str(tasks),
               "--outputs-dir", str(work / "bench_outputs")]
        if spec in names:
            cmd += ["--name", names[spec]]
        run(cmd)
    boards = {}
    for fmt in ("md", "html"):
        out = Path("reports") / "leaderboards" / f"{TASK}.{fmt}"
        run(["bench", "leaderboard", "--task", TASK, "--format", fmt, "--out", str(out)])
        boards[fmt] = out
    return boards


#: configs/datasets/synthetic.yaml holds out spk00 (test) and spk01 (val); the rest train
MIN_SYNTH_SPEAKERS = 3


def run_demo(args: argparse.Namespace, run: Run) -> dict[str, str]:
    from talkbench.tracking import tracking_uri

    if args.input is None and args.speakers < MIN_SYNTH_SPEAKERS:
        raise TalkbenchError(f"--speakers {args.speakers}: the synthetic corpus needs at least "
                             f"{MIN_SYNTH_SPEAKERS} speakers (one test, one validation, the rest train)")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    shards = prepare_step(args, work, run)
    ckpts = train_step(args, work, shards, run)
    boards = bench_step(work, shards, ckpts["au_rgan"], run)
    md = boards["md"]
    if md.is_file():
        print("\n" + md.read_text())
    uri = tracking_uri()
    return {
        "leaderboard": f"{boards['html']} (and {md})",
        "shards": f"{shards}  (talkbench inspect {shards})",
        "checkpoints": ", ".join(str(p) for p in ckpts.values()),
        "mlflow": f"mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite") else uri,
    }
