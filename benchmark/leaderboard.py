"""Leaderboard rendering: a :class:`~talkbench.benchmark.board.Board` as Markdown, CSV or HTML.

The data (which runs, their records, the order) is :mod:`talkbench.benchmark.board`'s; this module only
draws it: every metric with its CI and direction, "unavailable" with the reason instead of a number.
HTML is self-contained (metric bars with CI error bars and sample frame grids, embedded as base64 PNG).
Also the terminal summary of one scored submission (:func:`summary_text`).
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any

from talkbench.benchmark.board import Board, Entry, load_board
from talkbench.benchmark.records import RunRecord
from talkbench.errors import TalkbenchError

DEFAULT_DIR = Path("reports/leaderboards")
ARROW = {"higher": "↑", "lower": "↓"}


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "n/a"
    return f"{v:.4g}"


def cell(entry: Entry, key: str) -> str:
    v, lo, hi = entry.value(key)
    if math.isnan(v):
        return "—"
    return _fmt(v) if math.isnan(lo) else f"{_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}]"


def relative_cell(board: Board, entry: Entry, key: str) -> str:
    """The value and its difference to the reference row: "12.3 (Δ -0.4)"; the reference shows its value."""
    d = board.delta(entry, key)
    base = cell(entry, key)
    return base if entry.is_reference or math.isnan(d) else f"{base} (Δ {d:+.3g})"


def _header(board: Board, key: str) -> str:
    arrow = ARROW.get(board.directions.get(key, ""), "")
    star = " (primary)" if key == board.primary else ""
    info = " (not ranked)" if arrow and not board.ranks.get(key, True) else ""
    return f"{key} {arrow}{star}{info}".strip()


def _rank_cell(board: Board, e: Entry) -> str:
    r = board.rank(e)
    return "ref" if r is None else str(r)


def _name_cell(e: Entry) -> str:
    return e.submission + (" (reference: ground truth)" if e.is_reference else "")


def _flags_cell(e: Entry) -> str:
    on = {f: n for f, n in e.flags.items() if n}
    if e.record.per_side_clips:  # compared in its own alignment: not in the task's declared geometry
        on["align-per-side"] = e.record.per_side_clips
    return ", ".join(f"{f} {n}/{e.n_ok}" for f, n in on.items()) or "—"


def _coverage(e: Entry) -> str:
    flag = "" if e.n_ok == e.n_clips else " (incomplete)"
    return f"{e.n_ok}/{e.n_clips}{flag}"


def _unavailable_cell(entry: Entry, metric: str) -> str:
    return "unavailable" if metric in entry.unavailable else "ok"


def _md_table(board: Board, keys: list[str], extra: list[str], relative: bool = False) -> list[str]:
    show = relative_cell if relative else (lambda _b, e, k: cell(e, k))
    cols = ["rank", "submission", "clips", "flags"] + [_header(board, k) for k in keys] + extra
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for e in board.entries:
        cells = [_rank_cell(board, e), _name_cell(e).replace("|", "\\|"), _coverage(e), _flags_cell(e)]
        cells += [show(board, e, k) for k in keys] + [_unavailable_cell(e, m) for m in extra]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _intro(board: Board) -> str:
    return (f"Sorted by **{board.primary}** ({board.directions.get(board.primary, '?')} is better). Values: mean "
            "[bootstrap 95 % CI] over the scored clips; clips = scored/total (failed clips are excluded and "
            "counted). ↑ higher is better, ↓ lower is better; \"not ranked\" metrics are shown but order nothing. "
            "The ground truth is the reference row (ref), not a competitor. flags: integrity flags per clip "
            "(suspect_copy: the mouth is a near-copy of the ground truth; align-per-side: clips whose frames fitted "
            "neither task geometry, compared in their own alignment).")


def to_markdown(board: Board, relative: bool = False) -> str:
    """``relative``: each value also shows its difference to the reference (ground-truth) row."""
    lines = [f"# Leaderboard: {board.task}", "", _intro(board), ""]
    lines += _md_table(board, board.keys, board.unavailable, relative)
    if board.unavailable:
        lines += ["", "Unavailable metrics:"]
        reasons = board.reasons()
        lines += [f"- `{m}`: {reasons[m]}" for m in board.unavailable]
    if board.detail_keys:
        lines += ["", "## Per-AU details", ""] + _md_table(board, board.detail_keys, [])
    return "\n".join(lines) + "\n"


def to_csv(board: Board) -> str:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf)
    keys = board.keys + board.detail_keys
    has_ref = board.reference is not None
    header = ["rank", "role", "submission", "spec", "run_id", "n_clips_ok", "n_clips", "geometry"]
    header += [f"flags.{f}" for f in board.flags]
    for k in keys:
        header += [k, f"{k}_ci_low", f"{k}_ci_high", f"{k}_direction", f"{k}_ranks"]
        header += [f"{k}_minus_reference"] if has_ref else []
    header += [f"unavailable.{m}" for m in board.unavailable]
    w.writerow(header)
    for e in board.entries:
        rank = board.rank(e)
        row: list[Any] = ["" if rank is None else rank, "reference" if e.is_reference else "competitor",
                          e.submission, e.spec, e.run_id, e.n_ok, e.n_clips,
                          " ".join(f"{k}:{v}" for k, v in sorted(e.record.geometry.items()))]
        row += [e.flags.get(f, 0) for f in board.flags]
        for k in keys:
            v, lo, hi = e.value(k)
            row += ["" if math.isnan(x) else repr(x) for x in (v, lo, hi)] + [board.directions.get(k, "")]
            row += [str(board.ranks.get(k, False)).lower()]
            if has_ref:
                d = board.delta(e, k)
                row += ["" if math.isnan(d) else repr(d)]
        row += [e.unavailable.get(m, "") for m in board.unavailable]
        w.writerow(row)
    return buf.getvalue()


def bar_chart(board: Board) -> bytes:
    """One panel per metric: a bar per submission with its 95 % CI as an error bar (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = board.keys or ["(none)"]
    ncols = min(3, len(keys))
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 2.8 * nrows), squeeze=False)
    names = [e.submission for e in board.entries]
    for ax, key in zip(axes.flat, keys, strict=False):
        vals = np.array([e.value(key) for e in board.entries], dtype=float).reshape(-1, 3)
        v = vals[:, 0]
        err = np.vstack([v - vals[:, 1], vals[:, 2] - v])
        err = np.where(np.isfinite(err), np.abs(err), 0.0)
        ax.bar(range(len(names)), np.nan_to_num(v), yerr=err, capsize=4,
               color=["#3b7dd8" if i else "#d8893b" for i in range(len(names))])
        ax.set_title(_header(board, key), fontsize=9)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=25, ha="right", fontsize=7)
        for i, x in enumerate(v):
            if not np.isfinite(x):
                ax.text(i, 0, "n/a", ha="center", va="bottom", fontsize=7)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _img(png: bytes, alt: str, cls: str = "") -> str:
    data = base64.b64encode(png).decode()
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _html_table(board: Board, keys: list[str], with_extras: bool) -> str:
    esc = html.escape
    heads = ["#", "submission", "clips", "flags"] + (["sample: generated / ground truth"] if with_extras else [])
    heads += [_header(board, k) for k in keys] + (board.unavailable if with_extras else [])
    rows = []
    for e in board.entries:
        cells = [_rank_cell(board, e), esc(_name_cell(e)), esc(_coverage(e)), esc(_flags_cell(e))]
        if with_extras:
            cells.append(_img(e.thumbnail, f"{e.submission} sample", "thumb") if e.thumbnail else "—")
        cells += [esc(cell(e, k)) for k in keys]
        if with_extras:
            cells += [f'<span class="na" title="{esc(e.unavailable[m])}">unavailable</span>'
                      if m in e.unavailable else "ok" for m in board.unavailable]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{esc(h)}</th>" for h in heads)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def to_html(board: Board) -> str:
    esc = html.escape
    reasons = board.reasons()
    notes = "".join(f"<li><code>{esc(m)}</code>: {esc(reasons[m])}</li>" for m in board.unavailable)
    details = (f"<h2>Per-AU details</h2>{_html_table(board, board.detail_keys, False)}"
               if board.detail_keys else "")
    intro = esc(_intro(board)).replace("**", "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Leaderboard {esc(board.task)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; font-size: 13px; vertical-align: middle; }}
th {{ background: #f3f3f3; }} .na {{ color: #a33; }} img.thumb {{ height: 90px; }} img.chart {{ max-width: 100%; }}
</style></head><body>
<h1>Leaderboard: {esc(board.task)}</h1>
<p>{intro}</p>
{_html_table(board, board.keys, True)}
{f'<h2>Unavailable metrics</h2><ul>{notes}</ul>' if notes else ''}
<h2>Metrics with 95&nbsp;% confidence intervals</h2>
{_img(bar_chart(board), "metric bars with CI error bars", "chart")}
{details}
</body></html>
"""


def write_leaderboard(task: str, fmt: str = "md", out: str | Path | None = None,
                      relative: bool = False) -> tuple[Path, Board]:
    """Render the task's leaderboard to ``out`` (default reports/leaderboards/<task>.<fmt>)."""
    if fmt not in ("md", "html", "csv"):
        raise TalkbenchError(f"--format {fmt!r}: allowed: md, html, csv")
    board = load_board(task, thumbnails=fmt == "html")
    text = to_markdown(board, relative) if fmt == "md" else {"html": to_html, "csv": to_csv}[fmt](board)
    path = Path(out) if out else DEFAULT_DIR / f"{board.task.replace('@', '-v')}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path, board


def summary_text(record: RunRecord, clip_errors: int = 10) -> str:
    """A few text lines for the terminal: the run's aggregates, unavailable metrics and failures."""
    lines = [f"{record.submission.name} on {record.task.ref}: {record.n_clips_ok}/{record.n_clips} clips scored"
             f" ({record.elapsed_s:.1f} s)"]
    directions = record.directions
    for key, agg in sorted(record.aggregates.items()):
        arrow = ARROW.get(directions.get(key, ""), " ")
        ci = "" if math.isnan(agg.ci_low) else f"  [{agg.ci_low:.4g}, {agg.ci_high:.4g}]"
        undefined = f"  ({agg.n_undefined} clip(s) undefined)" if agg.n_undefined else ""
        lines.append(f"  {key:<24}{arrow} {agg.value:.4g}{ci}{undefined}")
    for name, reason in sorted(record.unavailable.items()):
        lines.append(f"  {name:<24}  {reason}")
    for flag, n in record.flags.items():
        if n:
            lines.append(f"  FLAG {flag}: {n}/{record.n_clips_ok} clips ({record.flag_rules.get(flag, '')})")
    for f in record.clip_errors[:clip_errors]:
        lines.append(f"  clip {f.clip_id}: {f.error_kind}: {f.error}")
    if len(record.clip_errors) > clip_errors:
        lines.append(f"  ... and {len(record.clip_errors) - clip_errors} more failed clips")
    for p in record.submission.problems:
        lines.append(f"  {p.get('file')}: {p.get('error_kind')}: {p.get('error')}")
    return "\n".join(lines)
