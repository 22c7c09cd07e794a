"""YAML configuration: load, override from the command line, validate, hash.

Configs are pydantic models with ``extra="forbid"``, so a misspelt key is an error rather than a
silently ignored value. Every error names the dotted key, the value given and what is allowed.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from talkbench.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values are validated on assignment,
    floats must be finite (``-o decode.fps=1e400`` or ``.nan`` is refused here, not by every clip)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=(),
                              allow_inf_nan=False)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=VALUE`` -> (["a", "b", "c"], VALUE parsed as YAML so numbers and lists work)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.path=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is a value, not a section")
            node = child
        node[path[-1]] = value
    return data


def _section_keys(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed beside ``loc[-1]``: walk the config classes down ``loc[:-1]``."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if model is not None else None
        ann = field.annotation if field is not None else None
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return list(model.model_fields) if model is not None else []


def did_you_mean(word: str, choices: list[str]) -> str:
    """" (did you mean 'x'?)" for the nearest of ``choices``, else the allowed keys (short lists only)."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (allowed: {', '.join(sorted(choices))})" if 0 < len(choices) <= 24 else ""


def format_validation_error(err: ValidationError, source: str, model: type[BaseModel] | None = None) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(root)"
        if e["type"] == "extra_forbidden":
            hint = did_you_mean(str(e["loc"][-1]), _section_keys(model, tuple(e["loc"]))) if e["loc"] else ""
            lines.append(f"{source}: unknown key {key!r}{hint}")
            continue
        given = e.get("input")
        ctx = e.get("ctx") or {}
        allowed = ctx.get("expected")
        msg = e["msg"] + (f" (allowed: {allowed})" if allowed and str(allowed) not in e["msg"] else "")
        lines.append(f"{source}: {key} = {given!r}: {msg}")
    return "; ".join(lines)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def build(model: type[M], data: dict[str, Any] | None = None, overrides: list[str] | None = None,
          source: str = "config") -> M:
    """Validate ``data`` (plus ``key=value`` overrides) into ``model``; ConfigError on any problem."""
    data = apply_overrides(dict(data or {}), list(overrides or []))
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source, model)) from None


def load(model: type[M], path: str | Path | None = None, overrides: list[str] | None = None) -> M:
    data = read_yaml(path) if path else {}
    return build(model, data, overrides, source=str(path) if path else "config")


def shipped_config(kind: str, name: str) -> Path | None:
    """``configs/KIND/NAME.yaml`` of a source checkout (None when absent, e.g. an installed wheel)."""
    path = Path(__file__).resolve().parents[1] / "configs" / kind / f"{name.replace('-', '_')}.yaml"
    return path if path.is_file() else None


def config_hash(cfg: BaseModel | dict[str, Any]) -> str:
    """A stable short hash of a resolved config (sorted JSON), recorded next to every result."""
    from talkbench.io import stable_hash

    return stable_hash(cfg, 16)


def add_override_arg(parser: Any, help: str = "override a config field (repeatable)") -> None:
    """The shared ``-o/--override KEY=VALUE`` option of every command that builds a config."""
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE", help=help)
