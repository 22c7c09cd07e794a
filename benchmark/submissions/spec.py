"""Command-line specs -> Submission: ``builtin:``, ``checkpoint:``, a folder/archive, ``module:Class``."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from talkbench.benchmark.submissions.adapter import ADAPTER_METHODS, AdapterSubmission
from talkbench.benchmark.submissions.base import Submission, check_display_name, file_sha256
from talkbench.benchmark.submissions.builtins import BUILTINS, BuiltinSubmission
from talkbench.benchmark.submissions.folder import FolderSubmission
from talkbench.errors import TalkbenchError
from talkbench.registry import Registry


def parse_spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``kind:target?k=v&k2=v2`` -> (kind, target, options). Values are parsed as YAML scalars."""
    base, _, query = spec.partition("?")
    options: dict[str, Any] = {}
    for part in filter(None, query.split("&")):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise TalkbenchError(f"submission {spec!r}: option {part!r} must look like key=value")
        options[key] = yaml.safe_load(value) if value else ""
    kind, sep, target = base.partition(":")
    if not sep:
        return "", base, options
    return kind, target, options


def _canonical(kind: str, target: str, options: dict[str, Any]) -> str:
    query = "&".join(f"{k}={options[k]}" for k in sorted(options))
    return f"{kind}:{target}" + (f"?{query}" if query else "")


MODULE_RE = re.compile(r"^[A-Za-z_][\w.]*$")
IDENT_RE = re.compile(r"^[A-Za-z_]\w*$")


@dataclass(frozen=True)
class Spec:
    """A parsed command-line spec and what the caller asked for with it."""

    spec: str  # as given
    kind: str  # text before the first ':' ("" when none)
    target: str
    options: dict[str, Any]
    name: str | None
    length_tolerance: int
    allow_code: bool = True

    @property
    def base(self) -> str:
        """The spec without its ``?options`` (a path, for folders and archives)."""
        return self.spec.partition("?")[0]


#: Submission kinds by name: each loader turns a :class:`Spec` into a :class:`Submission`.
SUBMISSION_KINDS: Registry[Callable[[Spec], Submission]] = Registry("submission kind")


def load_submission(spec: str, name: str | None = None, length_tolerance: int = 1,
                    allow_code: bool = True) -> Submission:
    """Turn a command-line spec into a Submission (see the package docstring for the forms).

    Order: ``builtin:`` / ``checkpoint:`` prefixes, then an existing path (folder or archive), then
    ``module:Class``, then a bare built-in name.

    ``allow_code``: ``module:Class`` imports a module and runs its code with this process's rights.
    The Python API allows it (its caller runs code already); ``bench run`` asks for ``--allow-code``.
    Whatever the flag, the target must be a class defining the adapter interface before anything of
    it is called, so ``os:system?command=...`` and the like are refused.
    """
    if name is not None:
        check_display_name(name)
    sub = _load(Spec(spec, *parse_spec(spec), name, length_tolerance, allow_code))
    try:
        check_display_name(sub.name)  # from submission.yaml or an adapter's attributes: untrusted
    except BaseException:
        sub.close()
        raise
    return sub


def _load(s: Spec) -> Submission:
    spec, kind, target = s.spec, s.kind, s.target
    if kind == "builtin" or (not kind and target in BUILTINS):
        return SUBMISSION_KINDS.get("builtin")(s)
    if kind == "checkpoint":
        return SUBMISSION_KINDS.get("checkpoint")(s)
    if Path(s.base).exists():
        return SUBMISSION_KINDS.get("folder")(s)
    if kind and MODULE_RE.match(kind) and IDENT_RE.match(target):
        return SUBMISSION_KINDS.get("module")(s)
    known = ", ".join(f"builtin:{n}" for n in BUILTINS.names())
    raise TalkbenchError(f"submission {spec!r}: no such folder or archive, and not a built-in ({known}), "
                         "checkpoint:CKPT or module:Class")


@SUBMISSION_KINDS.register("folder")
def _folder_submission(s: Spec) -> Submission:
    return FolderSubmission(s.base, s.name, s.length_tolerance)


@SUBMISSION_KINDS.register("checkpoint")
def _checkpoint_submission(s: Spec) -> Submission:
    ckpt = Path(s.target)
    if not ckpt.exists():
        raise TalkbenchError(f"checkpoint not found: {ckpt}")
    from talkbench.models.checkpoint import resolve_checkpoint
    from talkbench.models.generate import CheckpointGenerator  # lazy: pulls torch

    resolved = resolve_checkpoint(ckpt)  # a run folder such as runs/au_rgan/latest -> its last step
    ckpt, resolved = resolved, resolved != ckpt
    try:
        obj = CheckpointGenerator(str(ckpt), **s.options)
    except TypeError as e:
        raise TalkbenchError(f"submission {s.spec!r}: bad option(s) {s.options}: {e}") from None
    files = [ckpt] if ckpt.is_file() else sorted(p for p in ckpt.rglob("*") if p.is_file())
    identity = {"kind": "checkpoint", "options": s.options,
                "files": {str(p.relative_to(ckpt.parent)): file_sha256(p) for p in files}}
    variant = getattr(obj, "variant", None)  # e.g. a diffusion renderer's sampling steps: results of variants are not comparable
    if variant:
        identity["variant"] = variant
    label = f"{ckpt.parent.name}/{ckpt.name}" if resolved else ckpt.name  # runs/M/latest -> RUN/step_N
    name = s.name or f"checkpoint:{label}" + (f"[{variant}]" if variant else "")
    return AdapterSubmission(obj, s.spec, name, identity, s.length_tolerance)


@SUBMISSION_KINDS.register("builtin")
def _builtin_submission(s: Spec) -> Submission:
    cls = BUILTINS.get(s.target)
    try:
        obj = cls(**s.options)
    except (TypeError, ValueError) as e:
        raise TalkbenchError(f"submission {s.spec!r}: bad option(s) {s.options}: {e}") from None
    defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()
                if p.default is not inspect.Parameter.empty}
    canonical = _canonical("builtin", s.target, {**defaults, **s.options})
    identity = {"kind": "builtin", "spec": canonical, "version": cls.version}
    return BuiltinSubmission(obj, canonical, s.name or canonical, identity, s.length_tolerance)


@SUBMISSION_KINDS.register("module")
def _module_submission(s: Spec) -> Submission:
    module, cls_name, options, spec = s.kind, s.target, s.options, s.spec
    if not s.allow_code:
        raise TalkbenchError(f"submission {spec!r}: module:Class adapters run code with your rights; pass "
                             "--allow-code to run one you trust (never one from an untrusted party)")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise TalkbenchError(f"submission {spec!r}: cannot import module {module!r}: {e}") from None
    cls = inspect.getattr_static(mod, cls_name, None)
    if cls is None:
        raise TalkbenchError(f"submission {spec!r}: module {module!r} has no {cls_name!r}")
    check_adapter_class(cls, spec)
    try:
        obj = cls(**options)
    except TypeError as e:
        raise TalkbenchError(f"submission {spec!r}: cannot construct {cls_name} with {options}: {e}") from None
    src = getattr(mod, "__file__", None)
    identity = {"kind": "module", "class": f"{module}:{cls_name}", "options": options,
                "version": str(getattr(cls, "version", "")),
                "source_sha256": file_sha256(Path(src)) if src and Path(src).is_file() else None}
    return AdapterSubmission(obj, _canonical(module, cls_name, options), s.name, identity, s.length_tolerance)


def check_adapter_class(obj: Any, spec: str) -> None:
    """Refuse, before anything is called, a target that is not a class defining the adapter interface.

    Looked up statically (no descriptor or metaclass code runs). ``os:system``, ``subprocess:getoutput``
    (functions) and ``subprocess:Popen`` (a class without ``generate``) all fail here.
    """
    if not inspect.isclass(obj):
        raise TalkbenchError(f"submission {spec!r}: {type(obj).__name__} {getattr(obj, '__name__', obj)!r} is "
                             "not a class; an adapter must be a class with a generate(reference_image, "
                             "audio_16k, fps) method")
    def defines(name: str) -> bool:
        attr = inspect.getattr_static(obj, name, None)
        return inspect.isroutine(attr) or isinstance(attr, staticmethod | classmethod)

    if not any(defines(m) for m in ADAPTER_METHODS):
        raise TalkbenchError(f"submission {spec!r}: class {obj.__qualname__} defines none of "
                             f"{', '.join(ADAPTER_METHODS)}(); not an adapter")
