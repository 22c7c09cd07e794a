"""``talkbench train MODEL``: one explicit training loop (nanoGPT style) for every registered model.

Per step: take a batch; for each optimizer group of the model's objective (one, or generator then
discriminator), compute the loss under autocast (bf16 on GPU, fp32 on CPU), backward, clip, step.
DDP comes from ``torchrun --nproc-per-node N --no-python talkbench train ...`` (gloo on CPU, nccl on GPU): the same
command, each rank streaming its own clips. Rank 0 logs to MLflow and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from pydantic import Field, create_model

from talkbench.config import StrictModel, build, config_hash, read_yaml
from talkbench.errors import ConfigError, TalkbenchError
from talkbench.models.data import DataConfig, ShardIndex, make_dataset, make_loader
from talkbench.progress import Progress

log = logging.getLogger(__name__)


class TrainConfig(StrictModel):
    steps: int = Field(10_000, ge=1)
    batch_size: int = Field(16, ge=1, description="per rank")
    lr: float = Field(2e-4, gt=0.0)
    discriminator_lr: float | None = Field(None, gt=0.0, description="default: lr")
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = Field(0.0, ge=0.0)
    grad_clip: float = Field(1.0, ge=0.0, description="max global grad norm per group; 0 = off")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cpu_threads: int | None = Field(None, ge=1, description="torch intra-op threads on CPU; 1 is fastest on a busy box")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 autocast on GPU, fp32 on CPU")
    compile: bool = False
    channels_last: bool = True
    log_every: int = Field(10, ge=1)
    val_every: int = Field(500, ge=0, description="0 = only at the end")
    val_batches: int = Field(20, ge=1)
    checkpoint_every: int = Field(1000, ge=0, description="0 = only at the end")
    max_minutes: float | None = Field(None, gt=0.0, description="stop early (with a checkpoint) after this long")
    out_dir: str = "runs"
    run_name: str | None = None
    experiment: str = "talkbench-train"
    mlflow: bool = True


def run_config_class(model_name: str) -> type[StrictModel]:
    """The full config of training ``model_name``: model, loss, data and train sections."""
    from talkbench.models.registry import MODELS

    spec = MODELS.get(model_name)
    if not spec.trainable:
        raise TalkbenchError(f"{model_name} is not trained by the shared loop: {spec.description}")
    loss_cls = spec.loss_config
    return create_model(
        f"{spec.module.__name__}RunConfig",
        __base__=StrictModel,
        model=(spec.config, Field(default_factory=spec.config)),
        loss=(loss_cls, Field(default_factory=loss_cls)),
        data=(DataConfig, Field(default_factory=DataConfig)),
        train=(TrainConfig, Field(default_factory=TrainConfig)),
    )


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_run_config(model_name: str, path: str | Path | None = None, overrides: list[str] | None = None,
                    shards: str | None = None) -> Any:
    """The run config: class defaults + the model's published setup (its ModelSpec ``defaults``), then the
    YAML (``path``, else the shipped ``configs/models/MODEL.yaml`` when there is one), then overrides."""
    from talkbench.config import apply_overrides, shipped_config
    from talkbench.models.registry import MODELS

    if path is None:
        path = shipped_config("models", model_name)
    data = read_yaml(path) if path else {}
    if data.get("name", model_name) != model_name:
        raise ConfigError(f"{path} is a config for {data['name']!r}, not {model_name!r}")
    data.pop("name", None)
    data = _merge(apply_overrides({}, list(MODELS.get(model_name).defaults)), data)
    overrides = list(overrides or [])
    if shards:
        overrides.insert(0, f"data.shards={shards}")
    return build(run_config_class(model_name), data, overrides, source=str(path) if path else "config")


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v) if isinstance(v, list | tuple) else str(v)
    return out


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    history: list[dict[str, float]] = field(default_factory=list)  # per step, averaged over ranks
    validation: list[dict[str, float]] = field(default_factory=list)
    mlflow_run_id: str | None = None
    samples_per_s: float = 0.0
    elapsed_s: float = 0.0


#: validation keys where lower is better; every other key is higher-is-better (acc, psnr, r, f1)
_LOWER_IS_BETTER = ("mae", "l1", "loss", "mse", "d_pos", "lmd")


def best_validation(validation: list[dict[str, float]]) -> tuple[str, dict[str, float]] | None:
    """(headline key, the validation row best on it); the headline is the objective's first key."""
    rows = [v for v in validation if len(v) > 1]
    if not rows:
        return None
    key = next(k for k in rows[0] if k != "step")
    lower = any(t in key for t in _LOWER_IS_BETTER)
    finite = [r for r in rows if r.get(key) == r.get(key)] or rows
    best = (min if lower else max)(finite, key=lambda r: r[key])
    return key, best


def train_summary(model_name: str, result: TrainResult) -> str:
    """The end-of-run lines: steps, throughput, last and best validation, checkpoint, MLflow run."""
    last = result.history[-1] if result.history else {}
    lines = [f"trained {model_name}: {len(result.history)} steps in {result.elapsed_s:.1f} s, "
             f"{result.samples_per_s:.1f} samples/s; last step {' '.join(f'{k}={v:.4g}' for k, v in last.items())}"]
    best = best_validation(result.validation)
    if best is None:
        lines.append("validation: none (no clips in the validation split)")
    else:
        key, row = best
        lines.append(f"best validation ({key}, step {int(row['step'])}): "
                     + " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "step"))
    lines.append(f"checkpoint: {result.checkpoint}  (also {result.run_dir.parent / 'latest'})")
    lines.append(f"mlflow run: {result.mlflow_run_id or 'off (train.mlflow=false)'}")
    return "\n".join(lines)


def _dist_env() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def _device(cfg: TrainConfig, local_rank: int) -> torch.device:
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("train.device=cuda but no CUDA device is available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _out_of_time(max_minutes: float | None, t0: float, world: int, device: torch.device) -> bool:
    """Whether the time budget is spent; under DDP rank 0's clock decides, so every rank stops together."""
    if max_minutes is None:
        return False
    flag = torch.tensor([float(time.perf_counter() - t0 > max_minutes * 60)], device=device)
    if world > 1:
        dist.broadcast(flag, src=0)
    return bool(flag.item())


def _mean_over_ranks(logs: dict[str, float], world: int, device: torch.device) -> dict[str, float]:
    if world == 1:
        return logs
    keys = sorted(logs)
    t = torch.tensor([logs[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, (t / world).tolist(), strict=True))


def train_step(objective: Any, wrapped: dict, parts: dict, opts: dict, batch: dict[str, torch.Tensor],
               autocast: Any, grad_clip: float) -> dict[str, float]:
    """One step: each optimizer group of the objective in order (GANs: generator, then discriminator)."""
    logs: dict[str, float] = {}
    for g in objective.groups:
        with autocast():
            loss, group_logs = objective.loss(g, wrapped, batch)
        opts[g].zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            group_logs[f"{g}_grad_norm"] = float(torch.nn.utils.clip_grad_norm_(parts[g].parameters(), grad_clip))
        opts[g].step()
        logs.update(group_logs)
    after = getattr(objective, "after_step", None)
    if after is not None:  # e.g. the EMA copy of a diffusion model
        after()
    return logs


def train(model_name: str, cfg: Any, resume: str | Path | None = None) -> TrainResult:
    """Train ``model_name`` with the resolved run config; ``resume`` = checkpoint folder or "auto"."""
    tc: TrainConfig = cfg.train
    if not cfg.data.shards:
        raise ConfigError("no shards: pass --shards DIR (or data.shards=DIR)")
    rank, world, local_rank = _dist_env()
    device = _device(tc, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        return _train(model_name, cfg, resume, rank, world, device)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(model_name: str, cfg: Any, resume: str | Path | None, rank: int, world: int,
           device: torch.device) -> TrainResult:
    from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: N817

    from talkbench.models.checkpoint import latest_checkpoint, load_state, save_checkpoint, weights_path
    from talkbench.models.registry import MODELS

    spec = MODELS.get(model_name)
    tc: TrainConfig = cfg.train
    if device.type == "cpu" and tc.cpu_threads:
        torch.set_num_threads(tc.cpu_threads)
    bf16 = tc.precision == "bf16" or (tc.precision == "auto" and device.type == "cuda")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    # -- model, objective, optimizers (same seed on every rank: identical init) -----------------------
    torch.manual_seed(tc.seed)
    model = spec.build(cfg.model).to(device)
    if tc.channels_last:
        model = model.to(memory_format=torch.channels_last)
    objective = spec.objective(cfg.model, cfg.loss, cfg.data)
    objective.setup(device)
    parts = objective.parts(model)
    opts = {}
    for g in objective.groups:
        lr = (tc.discriminator_lr or tc.lr) if g == "discriminator" else tc.lr
        opts[g] = torch.optim.AdamW(parts[g].parameters(), lr=lr, betas=tc.betas, weight_decay=tc.weight_decay)

    run_name = tc.run_name or time.strftime(f"{model_name}-%Y%m%d-%H%M%S")
    run_dir = Path(tc.out_dir) / model_name / run_name
    start_step, mlflow_run_id = 0, None
    if resume:
        ckpt = latest_checkpoint(run_dir) if str(resume) == "auto" else Path(resume)
        if ckpt is None:
            raise TalkbenchError(f"--resume auto: no checkpoint under {run_dir}")
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(weights_path(ckpt)), device=str(device)))
        state = load_state(ckpt)
        for g, o in opts.items():
            o.load_state_dict(state["optimizers"][g])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        start_step = int(state["step"])
        mlflow_run_id = state.get("mlflow_run_id")
        run_dir = ckpt.parent
        log.info("resumed from %s at step %d", ckpt, start_step)

    wrapped = {g: DDP(m, find_unused_parameters=True) if world > 1 else m for g, m in parts.items()}
    if tc.compile:
        wrapped = {g: torch.compile(m) for g, m in wrapped.items()}

    # -- data ---------------------------------------------------------------------------------------
    index = ShardIndex(cfg.data.shards)
    index.check_speaker_disjoint(cfg.data.split, cfg.data.val_split)
    spec = objective.data_spec()
    # an objective whose targets are derived from the shards (yi2020's audio_to_pose: face3d coefficients)
    # builds its own dataset, with make_dataset's signature and resume contract (skip_batches)
    make = getattr(objective, "make_dataset", None) or make_dataset
    ds = make(index, spec, cfg.data, split=cfg.data.split, train=True, rank=rank, world_size=world,
                      batch_size=tc.batch_size, skip_batches=start_step)
    loader = make_loader(ds, tc.batch_size, cfg.data.num_workers, pin_memory=device.type == "cuda", seed=tc.seed)
    batches = iter(loader)
    val_data: list[dict[str, torch.Tensor]] = []
    if rank == 0 and not index.units(cfg.data.val_split, cfg.data.statuses):
        log.warning("no clips in split %r: no validation metrics", cfg.data.val_split)
    elif rank == 0:
        val_ds = make(index, spec, cfg.data, split=cfg.data.val_split, train=False)
        for i, b in enumerate(make_loader(val_ds, tc.batch_size, 0)):
            if i >= tc.val_batches:
                break
            val_data.append(_to_device(b, device))

    # -- tracking -----------------------------------------------------------------------------------
    mlflow = None
    run_cfg = cfg.model_dump(mode="json")
    if rank == 0 and tc.mlflow:
        import mlflow

        from talkbench import tracking

        exp_id = tracking.get_or_create_experiment(tc.experiment)
        mlflow.start_run(run_id=mlflow_run_id, experiment_id=None if mlflow_run_id else exp_id, run_name=run_name)
        mlflow_run_id = mlflow.active_run().info.run_id
        if not resume:
            mlflow.log_params({**flatten(run_cfg), "model_name": model_name, "world_size": world,
                               "config_hash": config_hash(run_cfg), "shards_manifest_hash": index.manifest_hash,
                               "n_parameters": sum(p.numel() for p in model.parameters()),
                               "device": str(device), "autocast_bf16": bf16})

    # the shards' face and audio settings travel with the weights, so generation prepares inputs the same way
    pipeline_cfg = index.manifest.get("config") or {}
    ckpt_meta = {"pipeline_config": json.dumps({k: pipeline_cfg[k] for k in ("landmarks", "align", "audio_features")
                                                if k in pipeline_cfg}, sort_keys=True),
                 "shards_manifest_hash": index.manifest_hash}
    result = TrainResult(run_dir=run_dir, checkpoint=run_dir, mlflow_run_id=mlflow_run_id)

    def checkpoint(step: int) -> Path:
        path = run_dir / f"step_{step:07d}"
        if rank == 0:  # the MLflow run id lets --resume continue the same run
            save_checkpoint(path, model, model_name, run_cfg, step, opts, extra={"mlflow_run_id": mlflow_run_id},
                            metadata=ckpt_meta)
        if world > 1:
            dist.barrier()
        return path

    def validate(step: int) -> None:
        if rank != 0 or not val_data:
            return
        model.eval()
        with autocast():
            logs = objective.validate(model, val_data)
            grid = objective.sample_grid(model, val_data[0])
        model.train()
        result.validation.append({"step": step, **logs})
        log.info("step %d validation %s", step, " ".join(f"{k}={v:.4g}" for k, v in logs.items()))
        if mlflow is not None:
            mlflow.log_metrics({k: v for k, v in logs.items() if v == v}, step=step)
            if grid is not None:
                _log_grid(mlflow, grid, run_dir / "grids" / f"step_{step:07d}.png")

    # -- the loop -------------------------------------------------------------------------------------
    model.train()
    t0, n_samples = time.perf_counter(), 0
    budget = f" (stops after {tc.max_minutes:g} min)" if tc.max_minutes else ""
    bar = Progress(f"train {model_name}{budget}", total=None if tc.max_minutes else tc.steps, unit="step",
                   initial=start_step, enabled=rank == 0)
    for step in range(start_step, tc.steps):
        bar.update(1)
        batch = _to_device(next(batches), device)
        logs = train_step(objective, wrapped, parts, opts, batch, autocast, tc.grad_clip)
        logs = _mean_over_ranks(logs, world, device)
        result.history.append(logs)
        n_samples += tc.batch_size * world
        done = step + 1
        out_of_time = _out_of_time(tc.max_minutes, t0, world, device)
        last = done == tc.steps or out_of_time
        if rank == 0 and (done % tc.log_every == 0 or last):
            log.info("step %d %s", done, " ".join(f"{k}={v:.4g}" for k, v in logs.items()))
            if mlflow is not None:
                mlflow.log_metrics(logs, step=done)
        if (tc.val_every and done % tc.val_every == 0) or last:
            validate(done)
        if (tc.checkpoint_every and done % tc.checkpoint_every == 0) or last:
            result.checkpoint = checkpoint(done)
        if out_of_time:
            log.info("train.max_minutes=%s reached at step %d: stopped with a checkpoint", tc.max_minutes, done)
            break
    bar.close()
    elapsed = time.perf_counter() - t0
    result.elapsed_s = elapsed
    result.samples_per_s = n_samples / elapsed if elapsed > 0 else 0.0
    if rank == 0:
        _point_latest(run_dir)
    if mlflow is not None:
        mlflow.log_metric("train_samples_per_s", result.samples_per_s)
        mlflow.log_artifacts(str(result.checkpoint), artifact_path="checkpoint")
        mlflow.end_run()
    return result


def _point_latest(run_dir: Path) -> None:
    """``out_dir/MODEL/latest`` -> this run, so the next command can name it without a time stamp."""
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_dir.name, target_is_directory=True)
        tmp.replace(link)  # atomic: a reader never sees no link
    except OSError as e:  # e.g. a file system without symlinks: the summary still prints the full path
        log.warning("could not point %s at %s: %s", link, run_dir, e)


def _log_grid(mlflow: Any, grid: Any, path: Path) -> None:
    try:
        from PIL import Image
    except ImportError:  # training-only installs may lack Pillow; the grid is a nice-to-have
        log.warning("Pillow is not installed: no sample grid")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    mlflow.log_artifact(str(path), artifact_path="grids")
