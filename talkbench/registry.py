"""Registries by name (the lm-evaluation-harness pattern), the only source of names.

Dataset adapters, pipeline stages, AU backends, metrics, models and submissions are all looked up by
a name that appears in configs and on the command line. An entry is either an object (registered with
the decorator) or a lazy ``"module:attr"`` placeholder: ``names()`` lists both without importing
anything, so argparse choices, config validation and test parametrisation read the registry while
``talkbench --help`` stays light; ``get()`` imports the module the first time a name is used.

Each registry is filled one way: lazy entries listed beside the registry (the one place a name is
written; a module filling its placeholder when imported keeps the entry's place, so ``in_order()`` can
carry meaning, as the pipeline's default stage order does), decorators inside modules that the package
imports anyway (metrics), or the area CLIs adding their perf commands (``talkbench.perf``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar, overload

from talkbench.errors import TalkbenchError

T = TypeVar("T")


class _Lazy:
    """A ``module:attr`` placeholder, materialised by ``Registry.get``."""

    __slots__ = ("target",)

    def __init__(self, target: str):
        module, sep, attr = target.partition(":")
        if not (module and sep and attr):
            raise ValueError(f"lazy registry entry {target!r} is not 'module:attr'")
        self.target = target

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj

    def __repr__(self) -> str:
        return f"<lazy {self.target}>"


class Registry(Generic[T]):
    """A name -> object mapping with a decorator to fill it, lazy entries and a helpful lookup error."""

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T | _Lazy] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...
    @overload
    def register(self, name: str, *, lazy: str) -> None: ...

    def register(self, name: str, *, lazy: str | None = None) -> Callable[[T], T] | None:
        """``@REG.register("name")`` on an object, or ``REG.register("name", lazy="module:attr")``."""
        if lazy is not None:
            old = self._items.get(name)
            if old is not None and not (isinstance(old, _Lazy) and old.target == lazy):
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._items[name] = _Lazy(lazy)
            return None

        def decorator(obj: T) -> T:
            old = self._items.get(name)
            # a module that fills its own lazy placeholder when imported replaces it; registering an
            # equal value again (a frozen record, when a CLI parser is built twice) changes nothing
            if old is not None and not isinstance(old, _Lazy) and old is not obj and old != obj:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            obj = self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise TalkbenchError(f"unknown {self.what} {name!r}; known: {known}") from None
        if isinstance(obj, _Lazy):
            loaded = obj.load()
            # importing the module may have registered the object itself; either way the entry is real now
            self._items[name] = loaded
            return loaded
        return obj

    def is_loaded(self, name: str) -> bool:
        return name in self._items and not isinstance(self._items[name], _Lazy)

    def names(self) -> list[str]:
        """Every registered name, sorted; imports nothing."""
        return sorted(self._items)

    def in_order(self) -> list[str]:
        """Every registered name in registration order, for a registry whose order means something
        (the pipeline's stages); imports nothing."""
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        """(name, object) for every entry: materialises the lazy ones."""
        return [(n, self.get(n)) for n in self.names()]

    def unregister(self, name: str) -> None:
        self._items.pop(name, None)

    def _clear(self) -> None:
        """Forget every entry (tests only; pair with ``isolated()`` to restore them)."""
        self._items.clear()

    @contextmanager
    def isolated(self) -> Iterator[Registry[T]]:
        """Entries added inside the block are gone after it (tests register toys without leaking them)."""
        saved = dict(self._items)
        try:
            yield self
        finally:
            self._items = saved

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)
