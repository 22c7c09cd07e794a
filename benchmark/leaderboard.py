"""Leaderboards from MLflow: one row per submission, every metric with its CI and direction.

Rows come from ``mlflow.search_runs`` on the task's experiment (runs a later rerun superseded are
hidden), sorted by the task's declared primary metric in its better direction. Metrics a run could
not compute show as "unavailable" with the reason, never as a number. Formats: Markdown, CSV, and
self-contained HTML (metric bars with CI error bars and sample frame grids, embedded as base64 PNG).
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from talkbench.benchmark.runs import (
    BOOKKEEPING_METRICS,
    PREFIX,
    TAG_KIND,
    TAG_SUPERSEDED,
    experiment_name,
)
from talkbench.errors import TalkbenchError

DEFAULT_DIR = Path("reports/leaderboards")
#: per-AU breakdown keys (AU25_mae, AU10_r...) go to a details table; the main table keeps the summaries
DETAIL_KEY = re.compile(r"^AU\d+_")
ARROW = {"higher": "↑", "lower": "↓"}


@dataclass
class Entry:
    run_id: str
    submission: str
    spec: str
    n_ok: int
    n_clips: int
    values: dict[str, tuple[float, float, float]]  # key -> (value, ci_low, ci_high); NaN CI when none
    unavailable: dict[str, str]  # metric name -> reason
    metric_of: dict[str, str]  # key -> metric name
    start_time: int = 0
    thumbnail: bytes | None = None  # PNG of the first frame grid (HTML only)


@dataclass
class Board:
    task: str  # name@version
    primary: str
    directions: dict[str, str]
    keys: list[str]  # summary metric columns, primary first
    detail_keys: list[str] = field(default_factory=list)  # per-AU breakdown columns
    entries: list[Entry] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)  # metric names unavailable in some run


def _resolve_experiment(task: str) -> tuple[str, Any]:
    """``name`` (latest version with runs) or ``name@N`` -> (name@N, experiment)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    name, _, ver = task.partition("@")
    if ver:
        exp = client.get_experiment_by_name(experiment_name(name, int(ver.lstrip("v"))))
        if exp is None:
            raise TalkbenchError(f"no benchmark runs for task {task} in {_uri()}")
        return task, exp
    found = client.search_experiments(filter_string=f"name LIKE '{PREFIX}/{name}/v%'")
    versions = []
    for exp in found:
        tail = exp.name.rsplit("/v", 1)[-1]
        if exp.name.startswith(f"{PREFIX}/{name}/v") and tail.isdigit():
            versions.append((int(tail), exp))
    if not versions:
        raise TalkbenchError(f"no benchmark runs for task {name!r} in {_uri()}; "
                             f"score something first: talkbench bench run --task {name} --submission ...")
    version, exp = max(versions, key=lambda v: v[0])
    return f"{name}@{version}", exp


def _uri() -> str:
    import mlflow

    return mlflow.get_tracking_uri()


def _f(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _count(x: Any) -> int:
    v = _f(x)
    return 0 if math.isnan(v) else int(v)


def load_board(task: str, thumbnails: bool = False) -> Board:
    """Collect the task's active runs into a Board (call ``runs.use_tracking`` first)."""
    import mlflow

    ref, exp = _resolve_experiment(task)
    df = mlflow.search_runs([exp.experiment_id], filter_string="attributes.status = 'FINISHED'",
                            order_by=["attributes.start_time DESC"])
    if not df.empty and f"tags.{TAG_SUPERSEDED}" in df:
        df = df[df[f"tags.{TAG_SUPERSEDED}"].isna()]
    if not df.empty and f"tags.{TAG_KIND}" in df:
        df = df[df[f"tags.{TAG_KIND}"] == "bench"]
    if df.empty:
        raise TalkbenchError(f"no finished benchmark runs for task {ref}")
    primary = exp.tags.get("talkbench.primary_metric") or str(df.iloc[0].get("params.primary_metric"))
    directions: dict[str, str] = {}
    entries: list[Entry] = []
    seen: set[str] = set()
    for _, row in df.iterrows():
        key = row.get("tags.talkbench.run_key")
        if key in seen:  # defensive: one row per submission even if two active runs share a key
            continue
        seen.add(key)
        values, metric_of, unavailable = {}, {}, {}
        for col, val in row.items():
            if col.startswith("params.direction."):
                k = col[len("params.direction."):]
                if isinstance(val, str):
                    directions.setdefault(k, val)
            elif col.startswith("params.metric.") and isinstance(val, str):
                metric_of[col[len("params.metric."):]] = val
            elif col.startswith("params.unavailable.") and isinstance(val, str):
                unavailable[col[len("params.unavailable."):]] = val
        for k in metric_of:
            v = _f(row.get(f"metrics.{k}"))
            values[k] = (v, _f(row.get(f"metrics.{k}_ci_low")), _f(row.get(f"metrics.{k}_ci_high")))
        entry = Entry(run_id=row["run_id"], submission=str(row.get("params.submission")),
                      spec=str(row.get("params.submission_spec")), n_ok=_count(row.get("metrics.n_clips_ok")),
                      n_clips=_count(row.get("metrics.n_clips")), values=values, unavailable=unavailable,
                      metric_of=metric_of, start_time=int(row["start_time"].timestamp()))
        if thumbnails:
            entry.thumbnail = _thumbnail(entry.run_id)
        entries.append(entry)
    all_keys = sorted({k for e in entries for k in e.values if k not in BOOKKEEPING_METRICS})
    keys = [k for k in all_keys if not DETAIL_KEY.match(k) or k == primary]
    if primary in keys:
        keys.remove(primary)
        keys.insert(0, primary)
    board = Board(task=ref, primary=primary, directions=directions, keys=keys,
                  detail_keys=[k for k in all_keys if k not in keys],
                  unavailable=sorted({m for e in entries for m in e.unavailable}))
    board.entries = sort_entries(entries, primary, directions.get(primary, "higher"))
    return board


def sort_entries(entries: list[Entry], primary: str, direction: str) -> list[Entry]:
    """Best first by the primary metric; runs without it last; ties by name for a stable order."""
    sign = -1.0 if direction == "higher" else 1.0

    def key(e: Entry) -> tuple[int, float, str]:
        v = e.values.get(primary, (float("nan"),))[0]
        return (1, 0.0, e.submission) if math.isnan(v) else (0, sign * v, e.submission)

    return sorted(entries, key=key)


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "n/a"
    return f"{v:.4g}"


def cell(entry: Entry, key: str) -> str:
    if key in entry.values and not math.isnan(entry.values[key][0]):
        v, lo, hi = entry.values[key]
        return _fmt(v) if math.isnan(lo) else f"{_fmt(v)} [{_fmt(lo)}, {_fmt(hi)}]"
    return "—"


def _header(board: Board, key: str) -> str:
    arrow = ARROW.get(board.directions.get(key, ""), "")
    star = " (primary)" if key == board.primary else ""
    return f"{key} {arrow}{star}".strip()


def _coverage(e: Entry) -> str:
    flag = "" if e.n_ok == e.n_clips else " (incomplete)"
    return f"{e.n_ok}/{e.n_clips}{flag}"


def _unavailable_cell(entry: Entry, metric: str) -> str:
    return "unavailable" if metric in entry.unavailable else "ok"


def _md_table(board: Board, keys: list[str], extra: list[str]) -> list[str]:
    cols = ["rank", "submission", "clips"] + [_header(board, k) for k in keys] + extra
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for i, e in enumerate(board.entries, 1):
        cells = [str(i), e.submission.replace("|", "\\|"), _coverage(e)] + [cell(e, k) for k in keys]
        cells += [_unavailable_cell(e, m) for m in extra]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _intro(board: Board) -> str:
    return (f"Sorted by **{board.primary}** ({board.directions.get(board.primary, '?')} is better). Values: mean "
            "[bootstrap 95 % CI] over the scored clips; clips = scored/total (failed clips are excluded and "
            "counted). ↑ higher is better, ↓ lower is better.")


def to_markdown(board: Board) -> str:
    lines = [f"# Leaderboard: {board.task}", "", _intro(board), ""]
    lines += _md_table(board, board.keys, board.unavailable)
    if board.unavailable:
        lines += ["", "Unavailable metrics:"]
        reasons = {m: r for e in board.entries for m, r in e.unavailable.items()}
        lines += [f"- `{m}`: {reasons[m]}" for m in board.unavailable]
    if board.detail_keys:
        lines += ["", "## Per-AU details", ""] + _md_table(board, board.detail_keys, [])
    return "\n".join(lines) + "\n"


def to_csv(board: Board) -> str:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf)
    keys = board.keys + board.detail_keys
    header = ["rank", "submission", "spec", "run_id", "n_clips_ok", "n_clips"]
    for k in keys:
        header += [k, f"{k}_ci_low", f"{k}_ci_high", f"{k}_direction"]
    header += [f"unavailable.{m}" for m in board.unavailable]
    w.writerow(header)
    for i, e in enumerate(board.entries, 1):
        row: list[Any] = [i, e.submission, e.spec, e.run_id, e.n_ok, e.n_clips]
        for k in keys:
            v, lo, hi = e.values.get(k, (float("nan"),) * 3)
            row += ["" if math.isnan(x) else repr(x) for x in (v, lo, hi)] + [board.directions.get(k, "")]
        row += [e.unavailable.get(m, "") for m in board.unavailable]
        w.writerow(row)
    return buf.getvalue()


def _thumbnail(run_id: str) -> bytes | None:
    """The first frame grid of a run, downscaled to a thumbnail PNG."""
    import tempfile

    from mlflow.tracking import MlflowClient
    from PIL import Image

    client = MlflowClient()
    pngs = [f.path for f in client.list_artifacts(run_id, "grids") if f.path.endswith(".png")]
    if not pngs:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run_id, sorted(pngs)[0], tmp)
        img = Image.open(local).convert("RGB")
        img.thumbnail((480, 240))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
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
        vals = np.array([e.values.get(key, (np.nan,) * 3) for e in board.entries], dtype=float).reshape(-1, 3)
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
    heads = ["#", "submission", "clips"] + (["sample: generated / ground truth"] if with_extras else [])
    heads += [_header(board, k) for k in keys] + (board.unavailable if with_extras else [])
    rows = []
    for i, e in enumerate(board.entries, 1):
        cells = [str(i), esc(e.submission), esc(_coverage(e))]
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
    reasons = {m: r for e in board.entries for m, r in e.unavailable.items()}
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


def write_leaderboard(task: str, fmt: str = "md", out: str | Path | None = None) -> tuple[Path, Board]:
    """Render the task's leaderboard to ``out`` (default reports/leaderboards/<task>.<fmt>)."""
    if fmt not in ("md", "html", "csv"):
        raise TalkbenchError(f"--format {fmt!r}: allowed: md, html, csv")
    board = load_board(task, thumbnails=fmt == "html")
    text = {"md": to_markdown, "html": to_html, "csv": to_csv}[fmt](board)
    path = Path(out) if out else DEFAULT_DIR / f"{board.task.replace('@', '-v')}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path, board
