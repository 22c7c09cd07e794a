"""One progress display for every long loop: prepare's clips, bench's clips, training steps, DDIM sampling,
recipe steps. Each goes through :class:`Progress` (tqdm, already a dependency), so all look alike.

- On a terminal: one tqdm bar per loop, ``DESC:  40%|████      | 2/5 [00:03<00:04, 1.60clip/s, k=v]``.
- Not on a terminal (a pipe, a log file, CI): no bar is redrawn (a file of carriage returns helps nobody);
  each loop prints ONE line when it ends, ``DESC: 5/5 clip in 3.1 s (1.6 clip/s) k=v``.
- ``talkbench -q``: neither. Messages about one item (a failed clip) still print, through
  :meth:`Progress.write`, which never tears a bar.

Recipe steps are announced with :func:`step_line` (``[2/7] ...``), the same prefix everywhere.
Why not ``logging``: progress is for the person at the terminal, log lines are for the record.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_quiet = False
_tty: bool | None = None  # None: ask stderr when a loop starts


def configure(quiet: bool = False, tty: bool | None = None) -> None:
    """Called by the CLI before it replaces descriptor 2 by its noise filter (``talkbench.quiet``): after
    that stderr is a pipe, so whether it was a terminal has to be known before."""
    global _quiet, _tty
    _quiet, _tty = quiet, tty


def is_quiet() -> bool:
    return _quiet


def _on_terminal() -> bool:
    if _tty is not None:
        return _tty
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


class Progress:
    """A counted loop: ``update()``, ``set_postfix(k=v)``, ``write(msg)``, ``close()`` (or a ``with``).

    ``leave=False`` (an inner loop, e.g. DDIM steps inside a generation): its bar vanishes when done and
    off a terminal it prints nothing. ``enabled=False`` (``prepare --no-progress``, a non-zero DDP rank):
    nothing at all.
    """

    def __init__(self, desc: str, total: int | None = None, unit: str = "it", initial: int = 0,
                 leave: bool = True, enabled: bool = True) -> None:
        self.desc, self.total, self.unit, self.leave = desc, total, unit, leave
        self.n = self._start = initial
        self.postfix: dict[str, Any] = {}
        self.enabled = enabled and not _quiet
        self._t0 = time.perf_counter()
        self._closed = False
        self._bar: Any = None
        if self.enabled and _on_terminal():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=leave, file=sys.stderr,
                             dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)

    def set_postfix(self, **values: Any) -> None:
        self.postfix.update(values)
        if self._bar is not None:
            self._bar.set_postfix(self.postfix, refresh=False)

    def write(self, message: str) -> None:
        """A line about one item; above the bar on a terminal."""
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def summary(self) -> str:
        """The one line printed off a terminal: ``DESC: n/total unit in T s (rate unit/s) k=v``."""
        elapsed = time.perf_counter() - self._t0
        done = self.n - self._start
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        rate = f" ({done / elapsed:.3g} {self.unit}/s)" if done and elapsed > 0 else ""
        post = "".join(f" {k}={v}" for k, v in self.postfix.items())
        return f"{self.desc}: {count} {self.unit} in {elapsed:.1f} s{rate}{post}"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.leave:
            print(self.summary(), file=sys.stderr, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it", leave: bool = True,
          enabled: bool = True) -> Iterator[T]:
    """``for x in track(items, "DDIM", unit="step"): ...``: a :class:`Progress` over an iterable."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(desc, total, unit, leave=leave, enabled=enabled) as p:
        for x in items:
            yield x
            p.update()


def step_line(i: int, n: int, what: str) -> str:
    """``[i/n] what``: how a multi-step command (a recipe) announces each step."""
    return f"[{i}/{n}] {what}"
