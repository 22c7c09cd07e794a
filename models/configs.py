"""``configs/models/NAME.yaml``: generated from each model's config classes and its published setup.

``python -m talkbench.models.configs`` rewrites every file; ``--check`` exits non-zero when one is
stale (tests/test_models.py runs the same comparison), so the shipped YAML never drifts from the code.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1] / "configs" / "models"


def default_run_config(name: str) -> dict:
    """Class defaults + the spec's published setup, as plain JSON-able data."""
    from talkbench.config import build
    from talkbench.models.registry import MODELS
    from talkbench.models.train import run_config_class

    return build(run_config_class(name), {}, list(MODELS.get(name).defaults),
                 source=f"{name} defaults").model_dump(mode="json")


def render(name: str) -> str:
    from talkbench.models.registry import MODELS

    spec = MODELS.get(name)
    header = [f"# {line}" for line in textwrap.wrap(spec.description or name, 106)]
    header += [f"# Every value can be overridden: talkbench train {name} --shards DIR -o key.path=value",
               "# Generated from the config classes: python -m talkbench.models.configs (do not edit by hand)"]
    body = yaml.safe_dump({"name": name, **default_run_config(name)}, sort_keys=False, default_flow_style=None,
                          width=110)
    return "\n".join(header) + "\n" + body


def main(argv: list[str]) -> int:
    from talkbench.io import atomic_write
    from talkbench.models.registry import trainable_names

    stale = []
    for name in trainable_names():  # a bundle (yi2020) or a closed-form fit (face3d) has no run config
        path, text = ROOT / f"{name}.yaml", render(name)
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(path)
        if "--check" not in argv:
            atomic_write(path, text)
    verb = "stale" if "--check" in argv else "wrote"
    for p in stale:
        print(f"{verb} {p}")
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
