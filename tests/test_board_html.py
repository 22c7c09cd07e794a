"""The HTML board's own logic on hand-made run records (no MLflow, no video): the radar's normalisation to
the ground truth per direction (hand-computed), ``--relative`` in HTML, and the ablation section, checked
on the parsed page and, where Debian's chromium is installed, in the browser."""

from __future__ import annotations

import html as html_lib
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from talkbench.benchmark.board import Board, Entry, ablation_sets, board_from_entries
from talkbench.benchmark.leaderboard import (
    ablation_markdown,
    normalised_to_reference,
    profiles,
    render_board,
    to_html,
    to_markdown,
)
from talkbench.benchmark.records import (
    AggregateRecord,
    MetricRecord,
    Provenance,
    RunRecord,
    SubmissionInfo,
    TaskInfo,
)

NAN = math.nan
#: value key -> (metric, direction, ranks)
KEYS = {"psnr": ("psnr", "higher", True), "lmd": ("lmd", "lower", True), "cpbd": ("cpbd", "higher", True),
        "lse_d": ("lse", "lower", True), "jitter_vel_gap": ("landmark-jitter", "lower", True),
        "jitter_vel": ("landmark-jitter", "none", False), "av_xcorr_peak": ("av-xcorr", "higher", False)}


def record(name: str, values: dict[str, float], reference: bool = False, n_ok: int = 2) -> RunRecord:
    metrics: dict[str, MetricRecord] = {}
    for key, (metric, direction, ranks) in KEYS.items():
        m = metrics.setdefault(metric, MetricRecord(name=metric, variant="v1", requires_reference=True))
        m.directions[key] = direction
        m.ranks[key] = ranks
    return RunRecord(
        task=TaskInfo(name="t", version=1, hash="0" * 64, kind="paired", split="test", n_clips=2,
                      primary_metric="lmd"),
        submission=SubmissionInfo(name=name, spec=name, hash="1" * 64, role="reference" if reference else "competitor"),
        provenance=Provenance(talkbench_version="test"), missing_policy="exclude", length_tolerance=1,
        n_clips=2, n_clips_ok=n_ok, metrics=metrics,
        aggregates={k: AggregateRecord(value=v, n=n_ok) for k, v in values.items()},
        key_metric={k: m for k, (m, _, _) in KEYS.items()})


def board_of(rows: dict[str, dict[str, float]], reference: str | None = "gt") -> Board:
    return board_from_entries("t@1", [Entry(run_id=f"run-{n}", record=record(n, v, reference=n == reference))
                                       for n, v in rows.items()])


# --------------------------------------------------------------------------- normalisation


def test_higher_is_better_runs_from_the_worst_run_to_the_ground_truth():
    b = board_of({"gt": {"psnr": 40.0}, "a": {"psnr": 30.0}, "b": {"psnr": 20.0}})
    n = normalised_to_reference(b, "psnr")
    assert not n.why and n.scores == {"run-gt": 1.0, "run-a": 0.5, "run-b": 0.0}  # (v - 20) / (40 - 20)


def test_lower_is_better_is_mirrored():
    b = board_of({"gt": {"lmd": 0.5}, "a": {"lmd": 1.0}, "b": {"lmd": 2.5}})
    n = normalised_to_reference(b, "lmd")
    assert n.scores == pytest.approx({"run-gt": 1.0, "run-a": 0.75, "run-b": 0.0})  # (2.5 - v) / (2.5 - 0.5)


def test_a_gap_to_the_ground_truth_is_one_minus_v_over_the_worst():
    b = board_of({"gt": {"jitter_vel_gap": 0.0}, "a": {"jitter_vel_gap": 0.1}, "b": {"jitter_vel_gap": 0.4}})
    assert normalised_to_reference(b, "jitter_vel_gap").scores == pytest.approx(
        {"run-gt": 1.0, "run-a": 0.75, "run-b": 0.0})  # 1 - v / 0.4


def test_beyond_the_ground_truth_scores_above_one_not_one():
    # the bug this replaces: a run sharper than the real clip, or the ground truth the worst, gave everyone 1
    b = board_of({"gt": {"cpbd": 0.3, "lse_d": 8.0}, "a": {"cpbd": 0.45, "lse_d": 7.0},
                  "b": {"cpbd": 0.2, "lse_d": 6.0}})
    assert normalised_to_reference(b, "cpbd").scores == pytest.approx(
        {"run-gt": 1.0, "run-a": 2.5, "run-b": 0.0})  # (0.45 - 0.2) / (0.3 - 0.2)
    lse = normalised_to_reference(b, "lse_d")  # lower is better and the ground truth has the most: no scale
    assert lse.scores == {} and "ground truth is the worst run" in lse.why


@pytest.mark.parametrize(("key", "rows", "reference", "why"), [
    ("psnr", {"gt": {"psnr": 40.0}, "a": {"psnr": 30.0}}, None, "no ground-truth row"),
    ("jitter_vel", {"gt": {"jitter_vel": 1.0}, "a": {"jitter_vel": 0.5}}, "gt", "no better direction"),
    ("av_xcorr_peak", {"gt": {"av_xcorr_peak": 0.9}, "a": {"av_xcorr_peak": 0.8}}, "gt", "may not rank"),
    ("psnr", {"gt": {"psnr": NAN}, "a": {"psnr": 30.0}}, "gt", "ground truth has no value"),
])
def test_undefined_normalisations_say_why(key, rows, reference, why):
    n = normalised_to_reference(board_of(rows, reference), key)
    assert n.scores == {} and why in n.why


def test_every_run_equal_to_the_ground_truth_scores_one_and_groups_average_their_metrics():
    b = board_of({"gt": {"psnr": 40.0, "lmd": 0.5, "lse_d": 8.0}, "a": {"psnr": 40.0, "lmd": 1.0, "lse_d": 8.0},
                  "b": {"psnr": 40.0, "lmd": 2.5, "lse_d": 9.0}})
    assert normalised_to_reference(b, "psnr").scores == {"run-gt": 1.0, "run-a": 1.0, "run-b": 1.0}
    prof = profiles(b)
    # Lip sync = mean(lmd, lse_d): a = (0.75 + 1) / 2, b = (0 + 0) / 2; Image quality = psnr alone
    assert prof.scores["run-a"] == pytest.approx({"Image quality": 1.0, "Lip sync": 0.875})
    assert prof.scores["run-b"] == pytest.approx({"Image quality": 1.0, "Lip sync": 0.0})


# --------------------------------------------------------------------------- --relative and ablations


class Tables(HTMLParser):
    """table id -> rows of (row attributes, [cell text]); enough DOM to check the page without a browser."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[tuple[dict, list[str]]]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append((a, []))
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1][1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(page: str) -> dict[str, list[tuple[dict, list[str]]]]:
    p = Tables()
    p.feed(page)
    return p.tables


def test_html_honours_relative_like_the_markdown():
    b = board_of({"gt": {"psnr": 40.0, "lmd": 0.5}, "a": {"psnr": 30.0, "lmd": 1.0}})
    plain, rel = parse(to_html(b)), parse(to_html(b, relative=True))
    row = next(cells for attrs, cells in rel["main"][2:] if attrs.get("class") != "ref")  # after 2 head rows
    heads = rel["main"][1][1]
    psnr, lmd = row[heads.index("psnr ↑")], row[heads.index("lmd ↓ ★")]
    assert psnr == "30 Δ -10" and lmd == "1 Δ +0.5"  # the same differences the Markdown shows
    assert "(Δ -10)" in to_markdown(b, relative=True)
    assert all("Δ" not in c for _, cells in plain["main"] for c in cells)
    page = to_html(b, relative=True)
    assert '<span class="delta worse">Δ -10</span>' in page and '<span class="delta worse">Δ +0.5</span>' in page
    ref_row = next(cells for attrs, cells in rel["main"][2:] if attrs.get("class") == "ref")
    assert all("Δ" not in c for c in ref_row)  # the reference row is the zero


def ablation_board() -> Board:
    b = board_of({"gt": {"psnr": 40.0, "lmd": 0.5, "cpbd": 0.3},
                  "g (tiny)": {"psnr": 30.0, "lmd": 1.0, "cpbd": 0.25},
                  "g-nod (tiny)": {"psnr": 32.0, "lmd": 1.5, "cpbd": 0.2}})
    b.ablations = ablation_sets({"g": "g (tiny)"}, {"g-nod (tiny)": ("g", "nod", "no discriminator"),
                                                    "g-noa (tiny)": ("g", "noa", "no AU loss")})
    b.unscored = {"g-noa (tiny)": "0/2 (no_face)"}
    return b


def test_ablation_section_gives_direction_aware_deltas_per_metric_and_group():
    b = ablation_board()
    page = to_html(b)
    t = parse(page)["ablation-0"]
    heads = t[1][1]
    rows = {attrs["data-name"]: cells for attrs, cells in t[2:]}
    assert list(rows) == ["g (tiny)", "g-nod (tiny)", "g-noa (tiny)"]
    full, nod, noa = rows.values()
    assert full[0] == "g (tiny) (full)" and full[heads.index("psnr ↑")] == "30"
    assert nod[:3] == ["nod", "no discriminator", "2/2"]
    assert nod[heads.index("psnr ↑")] == "32 Δ +2" and nod[heads.index("lmd ↓ ★")] == "1.5 Δ +0.5"
    # Image quality profile = mean(psnr, cpbd), worst psnr 30, worst cpbd 0.2:
    # full: (0 + 0.5) / 2 = 0.25; nod: (0.2 + 0) / 2 = 0.1 -> Δ -0.15; Lip sync (lmd, worst 1.5): 0.5 -> 0
    assert full[heads.index("Image quality")] == "0.25"
    assert nod[heads.index("Image quality")] == "0.10 Δ -0.15" and nod[heads.index("Lip sync")] == "0.00 Δ -0.5"
    sec = page[page.index('id="ablation-0"'):]
    assert '<span class="delta better">Δ +2</span>' in sec and '<span class="delta worse">Δ +0.5</span>' in sec
    assert noa[:3] == ["noa", "no AU loss", "0/2 (no_face)"] and set(noa[3:]) == {"—"}
    md = ablation_markdown(b)
    assert "| noa: no AU loss | 0/2 (no_face) |" in md and "| nod: no discriminator | 2/2 |" in md
    assert to_markdown(b).split("\n## Ablations\n")[1].strip() == md.split("\n", 2)[2].strip()  # same section


def test_ablation_sets_come_from_the_records_recipe_provenance():
    """What a plain `bench leaderboard` (store or bundles) rebuilds: sets from each record's recipe step, in
    step order; variants as planned, plus any seen only as a record; an unscored variant's reason from its
    record unless the same name scored later; a recipe run without variants makes no section."""
    from talkbench.benchmark.records import ClipFailure, RecipeInfo, RecipeVariant

    def rec(name: str, step: str, full: str, variant: str | None = None, planned: tuple[str, ...] = (),
            index: int = 0, n_ok: int = 2) -> RunRecord:
        r = record(name, {"psnr": 30.0, "lmd": 1.0}, n_ok=n_ok)
        r.recipe = RecipeInfo(name="r", preset="tiny", step=step, step_index=index, full=full, variant=variant,
                              description=f"{variant} off", variants=[RecipeVariant(name=f"{step}-{v}", variant=v,
                                                                                    description=f"{v} off")
                                                                      for v in planned])
        if n_ok == 0:
            r.clip_errors = [ClipFailure(clip_id="c0", error_kind="no_face")] * 2
        return r

    scored = [rec("gt", "x", "x", index=0), rec("b", "b", "b", index=2),  # no variants: no section
              rec("a-v2", "a", "a", "v2", ("v1", "v2"), index=1), rec("a", "a", "a", None, ("v1",), index=1),
              rec("c", "c", "c", None, ("v9",), index=0), rec("a-v3", "a", "a", "v3", index=1)]
    scored[0].recipe = None  # the ground truth is no recipe step
    gone = [rec("a-v1", "a", "a", "v1", ("v1", "v2"), index=1, n_ok=0), rec("a-v2", "a", "a", "v2", n_ok=0)]
    b = board_from_entries("t@1", [Entry(run_id=f"run-{r.submission.name}", record=r) for r in scored], unscored=gone)
    assert [(ab.step, ab.full, [v.name for v in ab.variants]) for ab in b.ablations] == [
        ("c", "c", ["c-v9"]), ("a", "a", ["a-v1", "a-v2", "a-v3"])]
    assert b.unscored == {"a-v1": "0/2 (no_face)"}  # a-v2 scored in a later run: its row, not the old reason
    assert "a-v1" not in [e.submission for e in b.entries]
    page = to_html(b)
    assert '<td class="unscored">0/2 (no_face)</td>' in page and 'id="ablation-1"' in page


def test_a_board_without_ablations_has_no_ablation_section():
    b = board_of({"gt": {"psnr": 40.0}, "a": {"psnr": 30.0}})
    assert 'id="ablations"' not in to_html(b) and "## Ablations" not in to_markdown(b)


PROBE = """<script>window.addEventListener('load', () => {
  const t = document.getElementById('ablation-0');
  const rows = [...t.tBodies[0].rows].map(r => [r.dataset.name, [...r.cells].map(c => c.innerText)]);
  const colours = [...t.querySelectorAll('.delta')].map(s => [s.innerText, getComputedStyle(s).color]);
  const radar = document.querySelector('svg.radar title').textContent;
  const pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify({rows, colours, radar}); document.body.appendChild(pre);
});</script>"""


@pytest.mark.browser
def test_ablation_section_in_a_browser(tmp_path):
    """The page as Chromium renders it: the ablation rows, better/worse in their colours, radar hover text."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed (Debian: apt-get install chromium)")
    out = render_board(ablation_board(), "html", tmp_path / "lb.html")
    probed = tmp_path / "probed.html"
    probed.write_text(out.read_text().replace("</body>", PROBE + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--virtual-time-budget=3000", "--dump-dom", probed.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert match, "the page's script did not run in the browser"
    p = json.loads(html_lib.unescape(match.group(1)))
    assert [name for name, _ in p["rows"]] == ["g (tiny)", "g-nod (tiny)", "g-noa (tiny)"]
    assert "0/2 (no_face)" in p["rows"][2][1]
    colours = dict(p["colours"])
    assert colours["Δ +2"] == "rgb(23, 128, 61)" and colours["Δ +0.5"] == "rgb(180, 35, 24)"  # green / red
    assert "psnr: 1.00" in p["radar"]  # the ground truth's own profile hover


def test_metrics_without_a_profile_score_are_listed_with_the_reason():
    b = board_of({"gt": {"psnr": 40.0, "lse_d": 8.0}, "a": {"psnr": 30.0, "lse_d": 7.0}})
    page = to_html(b)
    off = page.split('<ul class="profile-off">')[1].split("</ul>")[0]
    assert "<code>lse_d</code>: the ground truth is the worst run" in off and "psnr" not in off
    assert "lse_d: undefined: the ground truth is the worst run" in html_lib.unescape(page)  # radar hover
