"""Checkpoints: weights in safetensors (self-describing via its metadata), training state beside them.

Layout of one checkpoint folder::

    model.safetensors   every weight; metadata: model name, model config JSON, run config JSON, step
    state.pt            optimizer states, step, RNG states (as tensors), read with weights_only=True

A checkpoint is written to a temporary folder and renamed into place, so a crash never leaves a
half-written checkpoint that looks complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from talkbench.errors import TalkbenchError

WEIGHTS = "model.safetensors"
STATE = "state.pt"


def save_checkpoint(folder: str | Path, model: nn.Module, model_name: str, run_config: dict[str, Any],
                    step: int, optimizers: dict[str, torch.optim.Optimizer] | None = None,
                    extra: dict[str, Any] | None = None, metadata: dict[str, str] | None = None) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = {
        "talkbench_model": model_name,
        "model_config": json.dumps(model.cfg.model_dump(mode="json"), sort_keys=True),
        "run_config": json.dumps(run_config, sort_keys=True),
        "step": str(step),
        **(metadata or {}),
    }
    save_file(tensors, str(tmp / WEIGHTS), metadata=meta)
    state: dict[str, Any] = {"step": step, "torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    if optimizers:
        state["optimizers"] = {k: o.state_dict() for k, o in optimizers.items()}
    state.update(extra or {})
    torch.save(state, tmp / STATE)
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    return folder


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder (``runs/MODEL/latest``, ``runs/MODEL/RUN``) -> its last ``step_*``; else ``path`` itself."""
    path = Path(path)
    if path.is_dir() and not (path / WEIGHTS).is_file():
        steps = sorted(p for p in path.resolve().glob("step_*") if (p / WEIGHTS).is_file())
        if steps:
            return steps[-1]
    return path


def weights_path(path: str | Path) -> Path:
    """Accept a checkpoint folder or its model.safetensors, or a run folder (its last step)."""
    path = resolve_checkpoint(path)
    if path.is_dir():
        path = path / WEIGHTS
    if not path.is_file():
        raise TalkbenchError(f"checkpoint not found: {path}")
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(weights_path(path)), framework="pt") as f:
        meta = f.metadata() or {}
    if "talkbench_model" not in meta:
        raise TalkbenchError(f"{path}: not a talkbench checkpoint (no model name in its metadata)")
    return meta


def load_model(path: str | Path, expect: str | None = None, device: str | torch.device = "cpu"
               ) -> tuple[nn.Module, dict[str, str]]:
    """Rebuild the model a checkpoint describes and load its weights; returns (model in eval mode, metadata)."""
    from safetensors.torch import load_file

    from talkbench.models.registry import MODELS

    meta = read_metadata(path)
    name = meta["talkbench_model"]
    if expect is not None and name != expect:
        raise TalkbenchError(f"{path} holds a {name!r} model, expected {expect!r}")
    spec = MODELS.get(name)
    if spec.load is not None:  # a bundle of several trained parts reads its own folder
        return spec.load(weights_path(path).parent, device), meta
    model = spec.build(spec.config.model_validate(json.loads(meta["model_config"])))
    model.load_state_dict(load_file(str(weights_path(path)), device=str(device)))
    return model.to(device).eval(), meta


def load_state(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / STATE
    if not path.is_file():
        raise TalkbenchError(f"{folder}: no {STATE}; cannot resume from a weights-only checkpoint")
    return torch.load(path, map_location="cpu", weights_only=True)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    done = sorted(p for p in Path(run_dir).glob("step_*") if p.is_dir() and (p / STATE).is_file())
    return done[-1] if done else None
