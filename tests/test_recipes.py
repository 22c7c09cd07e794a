"""Recipes: the format and its checks, and `talkbench recipe run au_rgan --preset tiny --ablations` end to
end on CPU (a few training steps per model, one clip scored with PSNR) writing the ablation leaderboard."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from talkbench.app.recipes import STEP_KINDS, load_recipe, plan_steps, recipe_names
from talkbench.errors import ConfigError
from talkbench.models.registry import MODELS


def test_shipped_recipes_load_and_name_registered_models():
    assert {"au_rgan", "tcn_sa"} <= set(recipe_names())
    for name in recipe_names():
        r = load_recipe(name)
        assert {"tiny", "small", "paper"} <= set(r.presets)
        for p in plan_steps(r, "tiny", ablations=True, gpu=False):
            assert p.kind in STEP_KINDS and (p.kind != "train" or p.model in MODELS), p


def test_every_preset_of_every_recipe_resolves_into_valid_model_configs():
    """No training: each planned step of every preset (CPU and GPU sizes, with its ablations) resolves into a
    valid run config and its model builds (on the meta device: shapes only, no memory), so a typo in the
    small or paper preset fails here rather than hours into a run."""
    import torch

    from talkbench.app.recipes import check_plans
    from talkbench.models.train import load_run_config

    built: set[tuple[str, str]] = set()
    for name in recipe_names():
        recipe = load_recipe(name)
        for preset in recipe.presets:
            for gpu in (False, True):
                plans = plan_steps(recipe, preset, ablations=True, gpu=gpu)
                check_plans(plans)
                for p in plans:
                    assert getattr(STEP_KINDS.get(p.kind), "check", None), p  # every kind checks its steps
                    if p.kind != "train":  # seed 001's face3d / yi2020 kinds: their own configs (checked above)
                        continue
                    cfg = load_run_config(p.model, None, p.overrides).model
                    if (p.model, cfg.model_dump_json()) not in built:
                        built.add((p.model, cfg.model_dump_json()))
                        with torch.device("meta"):
                            MODELS.get(p.model).module(cfg)
    assert len(built) > len(recipe_names())


def test_a_typo_in_a_preset_is_caught_before_anything_trains(tmp_path):
    from talkbench.app.recipes import check_plans

    recipe = load_recipe("au_rgan")
    bad = recipe.model_copy(update={"presets": {**recipe.presets, "small": recipe.presets["small"].model_copy(
        update={"models": {"au_rgan": ["model.base_chanels=16"]}})}})
    with pytest.raises(ConfigError, match="base_chanels"):
        check_plans(plan_steps(bad, "small", ablations=False, gpu=False))


def test_ablations_follow_their_step_and_switch_models(tmp_path):
    plans = plan_steps(load_recipe("tcn_sa"), "tiny", ablations=True, gpu=False)
    assert [(p.name, p.model, p.variant) for p in plans] == [
        ("au_classifier", "au_classifier", None), ("tcn_sa", "tcn_sa", None),
        ("tcn_sa-gru", "au_rgan", "gru"), ("tcn_sa-lstm", "au_rgan", "lstm")]
    assert "model.fusion.cell=lstm" in plans[-1].overrides
    assert not any("fusion.channels" in o for o in plans[-1].overrides)  # tcn_sa's own overrides stay behind
    gpu = plan_steps(load_recipe("au_rgan"), "tiny", ablations=False, gpu=True)
    assert gpu[0].minutes == 5.0 and "model.image_size=64" not in gpu[0].overrides


def test_ablations_can_be_chosen_by_name_and_a_typo_is_a_clear_error():
    recipe = load_recipe("mftfg")
    every = [p.variant for p in plan_steps(recipe, "tiny", ablations=True, gpu=False) if p.variant]
    assert every == list(recipe.ablations) and len(every) > 2
    chosen = plan_steps(recipe, "tiny", ablations=["full_face", "latent"], gpu=False)
    assert [p.variant for p in chosen if p.variant] == ["latent", "full_face"]  # the recipe's order
    assert [p.name for p in chosen if not p.variant] == [s.name for s in recipe.steps]
    assert not any(p.variant for p in plan_steps(recipe, "tiny", ablations=[], gpu=False))
    with pytest.raises(ConfigError, match="no ablation 'ful_face' \\(did you mean 'full_face'\\?\\)"):
        plan_steps(recipe, "tiny", ablations=["ful_face"], gpu=False)


@pytest.mark.parametrize("bad, message", [
    ({"steps": [{"name": "b", "needs": {"loss.x": "a"}}, {"name": "a"}]}, "do not come before"),
    ({"steps": [{"name": "a"}], "ablations": {"x": {"step": "a"}}}, "not a scored step"),
    ({"steps": [{"name": "a"}], "presets": {"tiny": {"nope": 1}}}, "unknown key"),
])
def test_bad_recipes_are_clear_errors(tmp_path, bad, message):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"presets": {"tiny": {}}, **bad}))
    with pytest.raises(ConfigError, match=message):
        load_recipe(path)


def test_ablation_table_gives_each_variant_its_change_against_the_full_model():
    from types import SimpleNamespace

    from talkbench.benchmark.board import ablation_sets
    from talkbench.benchmark.leaderboard import ablation_markdown

    def entry(name, psnr, lmd, ok=2):
        vals = {"psnr": psnr, "lmd": lmd}
        return SimpleNamespace(submission=name, n_ok=ok, n_clips=2,
                               value=lambda k: (vals.get(k, float("nan")), float("nan"), float("nan")))

    board = SimpleNamespace(task="t@1", primary="lmd", keys=["lmd", "psnr"],
                            directions={"lmd": "lower", "psnr": "higher"},
                            entries=[entry("g (tiny)", 30.0, 2.0), entry("g-nod (tiny)", 28.5, 2.5),
                                     entry("g-noa (tiny)", float("nan"), 3.0, ok=1)])
    sets = ablation_sets({"g": "g (tiny)"}, {"g-nod (tiny)": ("g", "nod", "no disc"),
                                             "g-noa (tiny)": ("g", "noa", "no AU")})
    text = ablation_markdown(board, sets, {})
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0] == "| variant | clips ok | lmd ↓ | psnr ↑ |"
    assert rows[1] == "| **g (tiny)** (full) | 2/2 | 2 | 30 |"
    assert rows[2] == "| nod: no disc | 2/2 | 2.5 (Δ +0.5) | 28.5 (Δ -1.5) |"
    assert rows[3] == "| noa: no AU | 1/2 | 3 (Δ +1) | — |"


@pytest.fixture
def shards(tmp_path: Path, fixtures_dir: Path) -> Path:
    """Synthetic shards (train + one val clip) whose clips point at a real GRID video for the benchmark."""
    from shards_factory import grid_backed_shards

    return grid_backed_shards(tmp_path / "shards", speakers=3, clips_per_speaker=1, n_frames=75, val_speakers=1,
                              files=1)


@pytest.mark.slow
def test_recipe_run_with_ablations_writes_the_ablation_leaderboard(shards, tmp_path, monkeypatch, capsys):
    from talkbench.app.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("TALKBENCH_ARTIFACT_ROOT", (tmp_path / "mlartifacts").as_uri())
    args = ["recipe", "run", "au_rgan", "--shards", str(shards), "--preset", "tiny", "--ablations",
            "--out", str(tmp_path / "work"), "--tasks-dir", str(tmp_path / "tasks"), "--metrics", "psnr",
            "-o", "train.steps=2", "-o", "train.mlflow=false", "-o", "train.batch_size=2"]
    assert main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "$ talkbench train au_rgan --shards" in out and "$ talkbench bench run --task au_rgan-tiny@1" in out
    board = (tmp_path / "reports" / "leaderboards" / "au_rgan-tiny-ablations.md").read_text()
    rows = [line for line in board.splitlines() if line.startswith("| ")][1:]
    assert [r.split("|")[1].strip().split(":")[0] for r in rows] == [
        "**au_rgan (tiny)** (full)", "no_audio_to_au", "no_au_classifier_loss", "no_discriminator"]
    # two training steps make noise, not faces: values may be undefined, the table says how many clips scored
    # a model with no usable clip is shown as such ("0/1 (no_face)") but never logged or ranked
    clips_ok = [r.split("|")[2].strip() for r in rows]
    assert all(re.fullmatch(r"1/1|0/1( \(\w+\))?", c) for c in clips_ok), board
    unscored = [r.split("|")[1].strip() for r, c in zip(rows, clips_ok, strict=True) if c.startswith("0/1 (")]
    main_board = (tmp_path / "reports" / "leaderboards" / "au_rgan-tiny.md").read_text()
    assert "builtin:ground-truth" in main_board
    assert ("au_rgan-no_discriminator (tiny)" in main_board) == (not any(
        u.startswith("no_discriminator") for u in unscored))
    # the HTML board has the ablation section: the full model, then each variant (unscored ones with the reason)
    page = (tmp_path / "reports" / "leaderboards" / "au_rgan-tiny.html").read_text()
    section = page.split('<h2 id="ablations">')[1].split("</table>")[0]
    assert [m for m in re.findall(r'data-name="([^"]+)"', section)] == [
        "au_rgan (tiny)", "au_rgan-no_audio_to_au (tiny)", "au_rgan-no_au_classifier_loss (tiny)",
        "au_rgan-no_discriminator (tiny)"]
    for row, c in zip(rows, clips_ok, strict=True):
        if c.startswith("0/1 ("):
            assert f'<td class="unscored">{c}</td>' in section, row
    # a second run skips every trained step and every scored submission (unscored ones are tried again)
    assert main(args) == 0
    again = capsys.readouterr().out
    assert again.count("already trained") == 6 and again.count("already scored") == 7 - len(unscored)
    assert os.path.isfile(tmp_path / "work" / "_done" / "train-au_rgan-no_discriminator.json")


def _scored_folder(folder: Path, task, name: str, spec: str, recipe, psnr: float, lmd: float) -> Path:
    """A run folder as `bench run` writes it (record + per-clip table), with hand-set numbers: what the
    store, the board and the bundles do with it is under test here, not the metrics."""
    from talkbench.benchmark.records import (
        AggregateRecord,
        MetricRecord,
        Provenance,
        RunRecord,
        SubmissionInfo,
        TaskInfo,
    )

    folder.mkdir(parents=True)
    rec = RunRecord(
        task=TaskInfo(name=task.name, version=task.version, hash=task.hash, kind=task.kind, split=task.split,
                      n_clips=1, primary_metric=task.primary_metric),
        submission=SubmissionInfo(name=name, spec=spec, hash=spec * 8),
        provenance=Provenance(talkbench_version="test"), missing_policy="exclude-with-count", length_tolerance=1,
        n_clips=1, n_clips_ok=1, recipe=recipe,
        metrics={"psnr": MetricRecord(name="psnr", variant="v", requires_reference=True, directions={"psnr": "higher"}),
                 "lmd": MetricRecord(name="lmd", variant="v", requires_reference=True, directions={"lmd": "lower"})},
        aggregates={"psnr": AggregateRecord(value=psnr, n=1), "lmd": AggregateRecord(value=lmd, n=1)},
        key_metric={"psnr": "psnr", "lmd": "lmd"})
    (folder / "per_clip.csv").write_text(f"clip_id,status,psnr,lmd\nc0,ok,{psnr},{lmd}\n")
    (folder / "results.json").write_text(rec.to_json())
    return folder


def test_ablation_view_is_rebuilt_from_run_records_in_the_store_and_in_bundles(tmp_path, monkeypatch, capsys):
    """No training, no scoring: a full model and a variant logged from run folders carrying recipe provenance,
    and a variant with no usable clip (an empty submission) through the real harness; a later plain
    `bench leaderboard --format html`, and `--from` over exported bundles, show the ablation rows; the
    unscored variant is listed with its reason and never ranked."""
    from bench_tasks import one_grid_clip_task
    from mlflow.tracking import MlflowClient

    from talkbench.app.cli import main
    from talkbench.benchmark import runs
    from talkbench.benchmark.harness import NothingScoredError, run_submissions
    from talkbench.benchmark.records import RecipeInfo, RecipeVariant
    from talkbench.benchmark.tasks import save_task

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("TALKBENCH_ARTIFACT_ROOT", (tmp_path / "mlartifacts").as_uri())
    monkeypatch.setenv("TALKBENCH_TASKS_DIR", str(tmp_path / "tasks"))
    task, _, _ = save_task(one_grid_clip_task(tmp_path, "abl"))
    full, nod, noa = "g (tiny)", "g-nod (tiny)", "g-noa (tiny)"
    planned = [RecipeVariant(name=nod, variant="nod", description="no discriminator"),
               RecipeVariant(name=noa, variant="noa", description="no AU loss")]

    def info(variant: str | None, description: str = "") -> RecipeInfo:
        return RecipeInfo(name="g", preset="tiny", step="g", full=full, variant=variant, description=description,
                          variants=planned)

    runs.use_tracking(None)
    runs.log_folder(_scored_folder(tmp_path / "r1", task, full, "a", info(None), psnr=30.0, lmd=1.0))
    runs.log_folder(_scored_folder(tmp_path / "r2", task, nod, "b", info("nod", "no discriminator"), 32.0, 1.5))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NothingScoredError, match="kept as not scored"):
        run_submissions(task.ref, [str(empty)], name=noa, metrics=["psnr"], keep_videos=False,
                        recipes={str(empty): info("noa", "no AU loss")})

    def check(page: str) -> None:
        ranked, section = page.split('<h2 id="ablations">')
        section = section.split("</table>")[0]
        assert re.findall(r'data-name="([^"]+)"', section) == [full, nod, noa]
        nod_row = section.split(f'data-name="{nod}">')[1].split("</tr>")[0]
        assert "<td>no discriminator</td><td>1/1</td>" in nod_row and '<span class="delta better">Δ +2</span>' in nod_row
        assert re.search(r'data-name="g-noa \(tiny\)"><td>noa</td><td>no AU loss</td>'
                         r'<td class="unscored">0/1 \(missing\)</td>', section), section
        assert noa not in ranked and nod in ranked  # the variant with no usable clip never ranks

    out = tmp_path / "lb.html"
    assert main(["bench", "leaderboard", "--task", "abl", "--format", "html", "--out", str(out)]) == 0
    check(out.read_text())
    assert main(["bench", "leaderboard", "--task", "abl", "--out", str(tmp_path / "lb.md")]) == 0
    md = (tmp_path / "lb.md").read_text().split("\n## Ablations\n")[1]
    assert "| nod: no discriminator | 1/1 |" in md and "| noa: no AU loss | 0/1 (missing) |" in md
    client = MlflowClient()
    found = client.search_runs([client.get_experiment_by_name("bench/abl/v1").experiment_id])
    params = {r.data.tags["talkbench.submission"]: r.data.params for r in found}
    assert {k: params[nod][k] for k in ("recipe", "recipe_preset", "recipe_variant", "ablation_of")} == {
        "recipe": "g", "recipe_preset": "tiny", "recipe_variant": "nod", "ablation_of": full}
    assert params[noa]["recipe_variant"] == "noa" and params[full]["ablation_of"] == "none"

    bundles = tmp_path / "bundles"
    for i, name in enumerate([full, nod, noa]):
        assert main(["bench", "export", name, "--task", "abl", "--out", str(bundles / f"{i}.zip")]) == 0
    assert main(["bench", "leaderboard", "--from", str(bundles), "--format", "html", "--out", str(out)]) == 0
    check(out.read_text())
    assert "refused" not in capsys.readouterr().err


@pytest.mark.slow
def test_mftfg_recipe_tiny_trains_its_chain_and_scores_on_a_dubbing_task(shards, tmp_path, monkeypatch, capsys):
    """Seed 002's chain (au_classifier -> au_attention -> face_autoencoder -> mftfg) at the tiny preset, plus one
    chosen ablation (the full-face sampling variant), scored on a dubbing task beside the built-ins. The whole
    `--ablations` run is the same code with four more renderer variants (5.4 min on this machine; README)."""
    from talkbench.app.cli import main
    from talkbench.benchmark.tasks import load_task

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("TALKBENCH_ARTIFACT_ROOT", (tmp_path / "mlartifacts").as_uri())
    args = ["recipe", "run", "mftfg", "--shards", str(shards), "--preset", "tiny", "--ablations", "full_face",
            "--out", str(tmp_path / "work"), "--tasks-dir", str(tmp_path / "tasks"), "--metrics", "psnr",
            "-o", "train.steps=2", "-o", "train.mlflow=false"]
    assert main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "$ talkbench train face_autoencoder --shards" in out and "model.diffusion.ddim_steps=4" in out
    assert load_task("mftfg-tiny@1", tmp_path / "tasks").kind == "dubbing"
    board = (tmp_path / "reports" / "leaderboards" / "mftfg-tiny-ablations.md").read_text()
    rows = [line for line in board.splitlines() if line.startswith("| ")][1:]
    assert [r.split("|")[1].strip().split(":")[0] for r in rows] == ["**mftfg (tiny)** (full)", "full_face"]
    assert all(r.split("|")[2].strip() == "1/1" for r in rows), board  # both sampling variants scored the clip
    main_board = (tmp_path / "reports" / "leaderboards" / "mftfg-tiny.md").read_text()
    for ref in ("builtin:ground-truth", "builtin:static-frame", "builtin:masked-input"):
        assert ref in main_board
