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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from talkbench.benchmark.board import AblationSet, Board, Entry, load_board
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
    if board.ablations:  # the runs carry recipe provenance: the same section the HTML board shows
        lines += ["", "## Ablations", ""] + ablation_markdown(board).splitlines()[2:]
    return "\n".join(lines) + "\n"


def ablation_markdown(board: Board, sets: list[AblationSet] | None = None, unscored: dict[str, str] | None = None
                      ) -> str:
    """Markdown: each scored step, then its variants, with the value and the change against the full model.

    ``sets``/``unscored`` default to the board's own (``Board.ablations``, ``Board.unscored``); a submission
    with no usable clip is not on the board and is shown as such ("0/N (first error)").
    """
    sets = board.ablations if sets is None else sets
    unscored = board.unscored if unscored is None else unscored
    by_name = {e.submission: e for e in board.entries}
    keys = board.keys
    lines = [f"# Ablations on {board.task}", "",
             "Each variant retrains one component's model with a change; Δ is against the full model "
             f"(arrows: which way is better). Primary metric: {board.primary}.", "",
             "| variant | clips ok | " + " | ".join(
                 f"{k} {'↑' if board.directions.get(k) == 'higher' else '↓'}" for k in keys) + " |",
             "|---|---|" + "---|" * len(keys)]
    not_scored = " | ".join("—" for _ in keys)
    for ab in sets:
        base = by_name.get(ab.full)
        if base is None and ab.full not in unscored:
            continue
        if base is None:
            lines.append(f"| **{ab.full}** (full) | {unscored[ab.full]} | {not_scored} |")
        else:
            lines.append(f"| **{ab.full}** (full) | {base.n_ok}/{base.n_clips} | "
                         + " | ".join(_dash(base.value(k)[0]) for k in keys) + " |")
        for var in ab.variants:
            e = by_name.get(var.name)
            if e is None:
                if var.name in unscored:
                    lines.append(f"| {var.variant}: {var.description} | {unscored[var.name]} | {not_scored} |")
                continue
            cells = []
            for k in keys:
                v = e.value(k)[0]
                b = base.value(k)[0] if base is not None else math.nan
                cells.append(_dash(v) + ("" if math.isnan(v) or math.isnan(b) else f" (Δ {v - b:+.3g})"))
            lines.append(f"| {var.variant}: {var.description} | {e.n_ok}/{e.n_clips} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _dash(v: float) -> str:
    return "—" if math.isnan(v) else f"{v:.4g}"


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
        refs = [is_reference(e) for e in board.entries]
        ax.bar(range(len(names)), np.nan_to_num(v), yerr=err, capsize=4, color=["#bbbbbb" if r else "#3b7dd8"
               for r in refs], hatch=None, edgecolor="#555", linewidth=0.5)
        ax.plot(range(len(names)), v, "k_", markersize=12)  # a 0 value still shows as a tick at 0
        ax.set_title(_header(board, key), fontsize=9)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([f"{n} (reference)" if r else n for n, r in zip(names, refs, strict=True)],
                           rotation=25, ha="right", fontsize=7)
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


# -- readable HTML ---------------------------------------------------------------------------------------
#: metric groups of the HTML board, in order: (title, key patterns). A key goes to the first group matching.
GROUPS: list[tuple[str, str]] = [
    ("Image quality", r"^(psnr|ssim|cpbd|lpips|fid)"),
    ("Lip sync", r"^(lmd|av_xcorr|lse_|tb_sync)"),
    ("AUs", r"^(au_|AU\d+_)"),
    ("Identity and motion", r"^(csim|jitter|hs|pose)"),
]
#: the compact main table shows these keys of each group (when present); the rest go to the details
HEADLINE = ("psnr", "ssim", "lpips", "fid", "cpbd", "lmd", "av_xcorr_r0", "lse_c", "lse_d", "au_mae", "au_r",
            "au_f1", "csim", "jitter_vel_gap", "hs")
#: why a value can be undefined (NaN) on a clip, by key suffix/prefix
UNDEFINED_WHY: list[tuple[str, str]] = [
    (r"_f1$", "F1 is undefined when the AU occurs (intensity >= 1.0) in neither the generated nor the real "
              "frames of a clip: no positives to score"),
    (r"_r$|_corr$|_seq_r$", "Pearson r is undefined when a signal is constant over the clip (e.g. an AU that "
                            "never moves, or a static face)"),
    (r"^lmd|^jitter", "undefined when no face was found in the compared frames"),
    (r".", "undefined on these clips (see the per-clip table of the run)"),
]


def group_of(key: str) -> str:
    return next((title for title, pat in GROUPS if re.match(pat, key)), "Other")


def _grouped(keys: list[str]) -> list[tuple[str, list[str]]]:
    order = [t for t, _ in GROUPS] + ["Other"]
    out = {t: [k for k in keys if group_of(k) == t] for t in order}
    return [(t, ks) for t, ks in out.items() if ks]


def is_reference(entry: Entry) -> bool:
    return entry.is_reference  # the board's own notion (ground truth), see board.Entry


def _why_undefined(board: Board, entry: Entry, key: str) -> str:
    metric = entry.record.key_metric.get(key)
    if metric and metric in entry.unavailable:
        return f"unavailable: {entry.unavailable[metric]}"
    if key not in entry.record.aggregates:
        return "not computed in this run"
    agg = entry.record.aggregates[key]
    why = next(text for pat, text in UNDEFINED_WHY if re.search(pat, key))
    return f"undefined on {agg.n_undefined} of {agg.n + agg.n_undefined} clips: {why}"


@dataclass
class Normalised:
    """One metric normalised to the ground-truth row: run id -> score, or why it has none on this board."""

    scores: dict[str, float] = field(default_factory=dict)
    why: str = ""  # non-empty: undefined on this board, and why


def normalised_to_reference(board: Board, key: str) -> Normalised:
    """Per run: ``key`` scaled so that the ground truth = 1 and the worst run on the board = 0, per direction.

    As VBench normalises each dimension between an empirical worst and best before its radar, with the
    ground truth's own value as the target: ``s = (v - w) / (g - w)``, ``g`` the ground truth's value and
    ``w`` the worst value on the board (ground truth included) by the key's direction: the lowest when
    higher is better, the highest when lower is better. A gap to the ground truth (``jitter_vel_gap``,
    ``pose_std_log_ratio_abs``: the ground truth's own gap is 0) is lower-is-better with ``g = 0``, so
    ``s = 1 - v / w``. A run beyond the ground truth (a sharper-than-real CPBD, an LSE-C above the real
    clip's) scores above 1, as it is. Why not a ratio ``v / g``: several ground-truth values are 0.

    Undefined (``why`` says): no ground-truth row; no better direction; a key that may not rank; no
    ground-truth value (unpaired task, unavailable metric); the ground truth is the worst run while others
    differ (every submission at or beyond it: no scale below it). Every run equal to it: 1 for all.
    """
    ref = board.reference
    direction = board.directions.get(key)
    if ref is None:
        return Normalised(why="no ground-truth row on this board")
    if direction not in ("higher", "lower"):
        return Normalised(why="no better direction (an informational value)")
    if not board.ranks.get(key, True):
        return Normalised(why="may not rank submissions (it does not separate good from bad output)")
    g = ref.value(key)[0]
    if math.isnan(g):
        return Normalised(why="the ground truth has no value for it (not applicable or unavailable)")
    vals = {e.run_id: e.value(key)[0] for e in board.entries}
    vals = {r: v for r, v in vals.items() if not math.isnan(v)}
    worst = (min if direction == "higher" else max)(vals.values())
    if worst == g:
        if any(v != g for v in vals.values()):
            return Normalised(why="the ground truth is the worst run on this board (every submission at or "
                              "beyond it): no scale between it and worse")
        return Normalised(scores=dict.fromkeys(vals, 1.0))
    return Normalised(scores={r: (v - worst) / (g - worst) for r, v in vals.items()})


@dataclass
class Profiles:
    """The radar data: run id -> group -> mean normalised score over the group's defined headline metrics,
    and each headline metric's normalisation (its scores, or why it has none)."""

    scores: dict[str, dict[str, float]]
    per_key: dict[str, Normalised]

    def undefined(self) -> dict[str, str]:
        return {k: n.why for k, n in self.per_key.items() if n.why}


def profiles(board: Board) -> Profiles:
    per_key = {k: normalised_to_reference(board, k) for k in board.keys + board.detail_keys if k in HEADLINE}
    scores: dict[str, dict[str, list[float]]] = {}
    for key, norm in per_key.items():
        for run_id, s in norm.scores.items():
            scores.setdefault(run_id, {}).setdefault(group_of(key), []).append(s)
    return Profiles({r: {g: sum(v) / len(v) for g, v in gs.items()} for r, gs in scores.items()}, per_key)


RADAR_MAX = 1.25  # how far beyond the ground truth (1) the radar draws; the label gives the value


def radar_svg(scores: dict[str, float], axes: list[str], size: int = 150, title: str = "") -> str:
    """A small inline SVG radar: one axis per metric group, 1 = ground truth (the dashed outline)."""
    width = size + 70  # room for the side labels
    cx, c, r = width / 2, size / 2, (size / 2 - 28) / RADAR_MAX
    n = max(len(axes), 3)

    def pt(i: int, v: float) -> tuple[float, float]:
        a = -math.pi / 2 + 2 * math.pi * i / n
        return cx + r * v * math.cos(a), c + r * v * math.sin(a)

    ring = " ".join(f"{x:.1f},{y:.1f}" for x, y in (pt(i, 1.0) for i in range(n)))
    poly = " ".join(f"{x:.1f},{y:.1f}" for x, y in (pt(i, min(RADAR_MAX, scores.get(a, 0.0)))
                                                    for i, a in enumerate(axes)))
    labels = []
    for i, a in enumerate(axes):
        x, y = pt(i, RADAR_MAX + 0.25)
        v = scores.get(a)
        text = f"{a.split()[0]} {'n/a' if v is None else f'{v:.2f}'}"
        labels.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" font-size="9">{html.escape(text)}</text>')
    spokes = "".join(f'<line x1="{cx}" y1="{c}" x2="{x:.1f}" y2="{y:.1f}" stroke="#ccc"/>'
                     for x, y in (pt(i, RADAR_MAX) for i in range(n)))
    tip = f"<title>{html.escape(title)}</title>" if title else ""
    return (f'<svg class="radar" width="{width}" height="{size}" viewBox="0 0 {width} {size}" role="img">{tip}'
            f'{spokes}<polygon points="{ring}" fill="none" stroke="#888" stroke-dasharray="3,3"/>'
            f'<polygon points="{poly}" fill="rgba(59,125,216,0.35)" stroke="#3b7dd8"/>{"".join(labels)}</svg>')


def _radar_title(prof: Profiles, run_id: str) -> str:
    """Hover text of a radar: each headline metric's normalised score, or why it has none."""
    lines = []
    for key, norm in prof.per_key.items():
        s = norm.scores.get(run_id)
        lines.append(f"{key}: {'undefined: ' + norm.why if norm.why else ('n/a' if s is None else f'{s:.2f}')}")
    return "\n".join(lines)


def _num(v: float) -> str:
    return "" if math.isnan(v) else repr(v)


def _best(board: Board, key: str) -> float:
    direction = board.directions.get(key)
    vals = [e.value(key)[0] for e in board.entries if not is_reference(e)]
    vals = [v for v in vals if not math.isnan(v)]
    # a value that may not rank (raw jitter: a still face has least) is never marked best
    if not vals or direction not in ("higher", "lower") or not board.ranks.get(key, True):
        return math.nan
    return max(vals) if direction == "higher" else min(vals)


def _delta_html(d: float, direction: str | None, ranks: bool = True) -> str:
    """``Δ +0.12``, coloured by direction: green when better, red when worse (plain without a direction)."""
    if math.isnan(d):
        return ""
    good = {"higher": d > 0, "lower": d < 0}.get(direction or "") if ranks and d != 0 else None
    cls = "delta" + ("" if good is None else (" better" if good else " worse"))
    return f' <span class="{cls}">Δ {d:+.3g}</span>'


def _html_cell(board: Board, e: Entry, key: str, with_ci: bool, best: float, relative: bool = False) -> str:
    esc = html.escape
    v, lo, hi = e.value(key)
    if math.isnan(v):
        why = _why_undefined(board, e, key)
        return f'<td data-v="" class="undef" title="{esc(why)}">n/a<sup>?</sup></td>'
    ci = "" if math.isnan(lo) else f"95 % CI [{_fmt(lo)}, {_fmt(hi)}]"
    text = f"{_fmt(v)}" + (f' <span class="ci">[{_fmt(lo)}, {_fmt(hi)}]</span>' if with_ci and ci else "")
    if relative and not is_reference(e):
        d = board.delta(e, key)
        text += _delta_html(d, board.directions.get(key), board.ranks.get(key, True))
        ci += "" if math.isnan(d) else f"{'; ' if ci else ''}{d:+.4g} against the ground truth"
    cls = ' class="best"' if v == best and not is_reference(e) else ""
    return f'<td data-v="{_num(v)}"{cls} title="{esc(ci)}">{text}</td>'


def _key_heads(board: Board, keys: list[str], sortable: bool = True) -> list[str]:
    out = []
    for k in keys:
        d = board.directions.get(k, "")
        sort = ' data-sort="num" title="click to sort"' if sortable else ""
        out.append(f'<th{sort} data-dir="{d}">{html.escape(k)} {ARROW.get(d, "")}'
                   f'{" ★" if k == board.primary else ""}</th>')
    return out


def _sortable_table(board: Board, groups: list[tuple[str, list[str]]], table_id: str, with_ci: bool,
                    extras: bool, relative: bool = False) -> str:
    esc = html.escape
    top = ['<th colspan="3"></th>'] + ([] if not extras else ['<th colspan="2"></th>'])
    top += [f'<th colspan="{len(ks)}" class="grp">{esc(t)}</th>' for t, ks in groups]
    heads = ['<th data-sort="num">#</th>', '<th data-sort="text">submission</th>', '<th data-sort="text">clips</th>']
    if extras:
        heads += ['<th>sample: generated | ground truth</th>', '<th>profile vs ground truth</th>']
    keys = [k for _, ks in groups for k in ks]
    heads += _key_heads(board, keys)
    radar_axes = [t for t, _ in GROUPS]
    prof = profiles(board) if extras else Profiles({}, {})
    bests = {k: _best(board, k) for k in keys}
    rows, rank = [], 0
    for e in board.entries:
        ref = is_reference(e)
        if not ref:
            rank += 1
        cells = [f'<td data-v="{0 if ref else rank}">{"ref" if ref else rank}</td>',
                 f"<td>{esc(e.submission)}{' <em>(reference)</em>' if ref else ''}</td>",
                 f"<td>{esc(_coverage(e))}</td>"]
        if extras:
            cells.append(f"<td>{_img(e.thumbnail, f'{e.submission} sample', 'thumb') if e.thumbnail else '—'}</td>")
            cells.append(f"<td>{radar_svg(prof.scores.get(e.run_id, {}), radar_axes, title=_radar_title(prof, e.run_id))}</td>")
        cells += [_html_cell(board, e, k, with_ci, bests[k], relative) for k in keys]
        rows.append(f'<tr class="{"ref" if ref else ""}">' + "".join(cells) + "</tr>")
    return (f'<table id="{table_id}" class="sortable"><thead><tr>{"".join(top)}</tr><tr>{"".join(heads)}</tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table>')


SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.tHead.rows[table.tHead.rows.length - 1].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    if (!th.dataset.sort) return;
    th.style.cursor = 'pointer';
    th.addEventListener('click', function () {
      var asc = th.dataset.order !== 'asc';
      Array.prototype.forEach.call(heads, function (h) { delete h.dataset.order; });
      th.dataset.order = asc ? 'asc' : 'desc';
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col];
        if (th.dataset.sort === 'num') {
          var u = x.dataset.v === '' ? NaN : parseFloat(x.dataset.v);
          var v = y.dataset.v === '' ? NaN : parseFloat(y.dataset.v);
          if (isNaN(u) && isNaN(v)) return 0;
          if (isNaN(u)) return 1;
          if (isNaN(v)) return -1;
          return asc ? u - v : v - u;
        }
        return asc ? x.innerText.localeCompare(y.innerText) : y.innerText.localeCompare(x.innerText);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _legend(board: Board, relative: bool = False) -> str:
    esc = html.escape
    variants: dict[str, str] = {}
    for e in board.entries:
        for metric in e.record.key_metric.values():
            m = e.record.metrics.get(metric)
            if m is not None:
                variants.setdefault(metric, m.variant)
    items = "".join(f"<li><code>{esc(m)}</code>: <code>{esc(v)}</code></li>" for m, v in sorted(variants.items()))
    rel = (" <b>Δ</b>: each value's difference to the ground-truth row (green: better, red: worse, by the "
           "metric's direction)." if relative else "")
    return (f"<p><b>How to read:</b> ↑ higher is better, ↓ lower is better; ★ the primary metric (rank order). "
            f"Values are means over the scored clips (hover a cell for its bootstrap 95 % CI); "
            f"<b>bold</b> = best submission in the column (the reference row is not ranked). "
            f"<i>n/a<sup>?</sup></i>: undefined or unavailable, hover for the reason. Click a column to sort.{rel} "
            f"The profile: each metric group's headline metrics normalised to the ground truth per direction, "
            f"(v − worst) / (ground truth − worst), the worst being the worst run on this board by the metric's "
            f"direction (a gap to the ground truth: 1 − v / worst), so ground truth = 1 (dashed outline) and "
            f"the worst = 0; above 1 = beyond the ground truth. Hover a profile for every metric's score."
            f"</p><details><summary>metric variants (what exactly was computed)</summary><ul>{items}</ul></details>")


def _ablation_row(board: Board, prof: Profiles, keys: list[str], label: str, desc: str, name: str,
                  e: Entry | None, base: Entry | None, full: bool = False) -> str:
    """One row of an ablation table: the full model, or a variant compared with ``base`` (the full model's
    row; None when it has none: values without Δ)."""
    esc = html.escape
    axes = [t for t, _ in GROUPS]
    cls = "full" if full else "variant"
    cells = [f"<td>{'<b>' + esc(label) + '</b> (full)' if full else esc(label)}</td>", f"<td>{esc(desc)}</td>"]
    if e is None:  # scored with no usable clip (or not scored at all): say so, never a number
        why = board.unscored.get(name, "not on this board")
        cells.append(f'<td class="unscored">{esc(why)}</td>')
        cells += [f'<td class="undef" title="not scored: {esc(why)}">—</td>' for _ in axes + keys]
        return f'<tr class="{cls} unscored" data-name="{esc(name)}">{"".join(cells)}</tr>'
    cells.append(f"<td>{esc(_coverage(e))}</td>")
    mine = prof.scores.get(e.run_id, {})
    base_prof = prof.scores.get(base.run_id, {}) if base is not None and not full else {}
    for a in axes:
        s, b = mine.get(a, math.nan), base_prof.get(a, math.nan)
        if math.isnan(s):
            cells.append('<td class="undef" title="no profile score for this group">n/a</td>')
        elif math.isnan(b):
            cells.append(f'<td data-v="{s!r}">{s:.2f}</td>')
        else:
            cells.append(f'<td data-v="{s - b!r}">{s:.2f}{_delta_html(s - b, "higher")}</td>')
    for k in keys:
        v = e.value(k)[0]
        if math.isnan(v):
            cells.append(f'<td class="undef" title="{esc(_why_undefined(board, e, k))}">n/a<sup>?</sup></td>')
            continue
        b = base.value(k)[0] if base is not None and not full else math.nan
        cells.append(f'<td data-v="{v!r}">{_fmt(v)}{_delta_html(v - b, board.directions.get(k), board.ranks.get(k, True))}</td>')
    return f'<tr class="{cls}" data-name="{esc(name)}">{"".join(cells)}</tr>'


def _ablation_html(board: Board, prof: Profiles) -> str:
    """Each recipe step's full model, then its ablation variants: value and Δ against the full model per
    metric (green better, red worse, by direction) and the change of each group's profile score."""
    esc = html.escape
    if not board.ablations:
        return ""
    main_keys = [k for k in board.keys + board.detail_keys if k in HEADLINE or k == board.primary]
    groups = _grouped(sorted(main_keys, key=lambda k: (HEADLINE.index(k) if k in HEADLINE else -1)))
    keys = [k for _, ks in groups for k in ks]
    axes = [t for t, _ in GROUPS]
    parts = ["<h2 id=\"ablations\">Ablations</h2><p>Each variant retrains one component with a change; Δ is "
             "against the full model (green: better, red: worse, by each metric's direction). "
             "<b>profile Δ</b>: the change in each group's profile score (normalised to the ground truth, "
             "higher is better). A variant with no usable clip is listed with the reason, never ranked.</p>"]
    for i, ab in enumerate(board.ablations):
        base = board.entry(ab.full)
        top = ['<th colspan="3"></th>', f'<th colspan="{len(axes)}" class="grp">profile Δ per group</th>']
        top += [f'<th colspan="{len(ks)}" class="grp">{esc(t)}</th>' for t, ks in groups]
        heads = ["<th>variant</th>", "<th>what changes</th>", "<th>clips</th>"]
        heads += [f"<th>{esc(a)}</th>" for a in axes] + _key_heads(board, keys, sortable=False)
        rows = [_ablation_row(board, prof, keys, ab.full, "", ab.full, base, None, full=True)]
        rows += [_ablation_row(board, prof, keys, v.variant, v.description, v.name, board.entry(v.name), base)
                 for v in ab.variants]
        parts.append(f"<h3>{esc(ab.step)}: {esc(ab.full)}</h3><table id=\"ablation-{i}\" class=\"ablation\"><thead>"
                     f"<tr>{''.join(top)}</tr><tr>{''.join(heads)}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    return "".join(parts)


def to_html(board: Board, relative: bool = False) -> str:
    """``relative``: each value also shows its difference to the ground-truth row (as the Markdown does)."""
    esc = html.escape
    reasons = board.reasons()
    notes = "".join(f"<li><code>{esc(m)}</code>: {esc(reasons[m])}</li>" for m in board.unavailable)
    all_keys = board.keys + board.detail_keys
    main_keys = [k for k in all_keys if k in HEADLINE or k == board.primary]
    main = _grouped(sorted(main_keys, key=lambda k: (HEADLINE.index(k) if k in HEADLINE else -1)))
    details = "".join(f"<h3>{esc(t)}</h3>{_sortable_table(board, [(t, ks)], f'details-{i}', True, False, relative)}"
                      for i, (t, ks) in enumerate(_grouped(all_keys)))
    has_ref = any(is_reference(e) for e in board.entries)
    ref_note = ("" if has_ref else "<p><i>No ground-truth run on this board: score "
                "<code>--submission builtin:ground-truth</code> to get the reference row and the profiles.</i></p>")
    prof = profiles(board)
    off = prof.undefined() if has_ref else {}
    off_note = "".join(f"<li><code>{esc(k)}</code>: {esc(why)}</li>" for k, why in off.items())
    refused = "".join(f"<li>{esc(s)}</li>" for s in board.skipped)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Leaderboard {esc(board.task)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; font-size: 13px; vertical-align: middle; }}
th {{ background: #f3f3f3; }} th.grp {{ background: #e4ecf7; }} th[data-order="asc"]::after {{ content: " ▲"; }}
th[data-order="desc"]::after {{ content: " ▼"; }} tr.ref td {{ background: #f7f7f0; }} td.best {{ font-weight: bold; }}
td.undef {{ color: #888; }} .ci {{ color: #777; font-size: 11px; }} .na {{ color: #a33; }}
.delta {{ font-size: 11px; color: #555; white-space: nowrap; }} .delta.better {{ color: #17803d; }}
.delta.worse {{ color: #b42318; }} td.unscored {{ color: #b42318; }} tr.full td {{ background: #f4f8fd; }}
img.thumb {{ height: 90px; }} img.chart {{ max-width: 100%; }}
</style></head><body>
<h1>Leaderboard: {esc(board.task)}{" (relative to the ground truth)" if relative else ""}</h1>
{_legend(board, relative)}
{ref_note}
{_sortable_table(board, main, "main", False, True, relative)}
{f'<p>Left out of the profiles:</p><ul class="profile-off">{off_note}</ul>' if off_note else ''}
{_ablation_html(board, prof)}
{f'<h2>Unavailable metrics</h2><ul>{notes}</ul>' if notes else ''}
<h2>Details by group (mean [95&nbsp;% CI])</h2>
{details}
<h2>Metrics with 95&nbsp;% confidence intervals</h2>
{_img(bar_chart(board), "metric bars with CI error bars", "chart")}
{f'<h2>Runs left out</h2><ul>{refused}</ul>' if refused else ''}
<script>{SORT_JS}</script>
</body></html>
"""


def write_leaderboard(task: str, fmt: str = "md", out: str | Path | None = None,
                      relative: bool = False) -> tuple[Path, Board]:
    """Render the task's leaderboard to ``out`` (default reports/leaderboards/<task>.<fmt>)."""
    if fmt not in ("md", "html", "csv"):
        raise TalkbenchError(f"--format {fmt!r}: allowed: md, html, csv")
    board = load_board(task, thumbnails=fmt == "html")
    return render_board(board, fmt, out, relative), board


def render_board(board: Board, fmt: str = "md", out: str | Path | None = None, relative: bool = False) -> Path:
    """Write ``board`` as ``fmt`` to ``out`` (default reports/leaderboards/<task>.<fmt>)."""
    if fmt not in ("md", "html", "csv"):
        raise TalkbenchError(f"--format {fmt!r}: allowed: md, html, csv")
    text = {"md": lambda: to_markdown(board, relative), "html": lambda: to_html(board, relative),
            "csv": lambda: to_csv(board)}[fmt]()
    path = Path(out) if out else DEFAULT_DIR / f"{board.task.replace('@', '-v')}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


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
