"""Recipes: reproduce a paper in one command (``talkbench recipe run NAME --shards DIR --preset P``).

A recipe is ``configs/recipes/NAME.yaml``: a chain of steps (normally ``train`` steps, e.g.
audio_to_au -> au_classifier -> au_rgan, a later step taking an earlier step's checkpoint through
``needs``), presets (``tiny``: minutes on a CPU; ``small``; ``paper``: the published configuration, i.e.
configs/models/*.yaml unchanged) and ablation variants (a scored step retrained with overrides, or with
another model). ``run_recipe`` trains each step (a finished step is skipped, an interrupted one resumes),
scores every scored step and variant, plus the recipe's built-in references, on a task built from the
shards' test split (or an existing ``--task``), and writes the leaderboard and, with ``--ablations``,
an ablation table.

Every action calls the library (``train``, ``build_task``, ``run_submissions``, ``render_board``)
and prints the equivalent ``talkbench`` command, so a user can replay any step by hand.

Step kinds other than ``train`` are registered in ``STEP_KINDS`` (``"module:attr"``, lazily), with the
signature ``fn(step: StepPlan, ctx: RecipeContext) -> Path`` (the step's checkpoint or result folder).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from talkbench.config import StrictModel, did_you_mean, read_yaml, shipped_config
from talkbench.errors import ConfigError, TalkbenchError
from talkbench.registry import Registry

RECIPES_DIR = Path(__file__).resolve().parents[2] / "configs" / "recipes"


# ------------------------------------------------------------------------------------------- format
class StepSpec(StrictModel):
    name: str = Field(description="step id: names its checkpoint, its marker and its leaderboard row")
    kind: str = Field("train", description="a registered step kind (STEP_KINDS)")
    model: str | None = Field(None, description="model to train (default: the step name)")
    overrides: list[str] = Field(default_factory=list, description="-o overrides of this step, every preset")
    needs: dict[str, str] = Field(default_factory=dict, description="config key -> earlier step whose checkpoint "
                                  "it takes, e.g. loss.au_classifier_checkpoint: au_classifier")
    score: bool = Field(False, description="score the result on the task (generators)")

    @property
    def model_name(self) -> str:
        return self.model or self.name


class PresetSpec(StrictModel):
    description: str = ""
    minutes: dict[str, float] = Field(default_factory=dict, description="step -> time budget (train.max_minutes) "
                                      "on a CPU; '*' = every step")
    gpu_minutes: dict[str, float] = Field(default_factory=dict, description="the same on a GPU")
    train: list[str] = Field(default_factory=list, description="overrides of every training step")
    models: dict[str, list[str]] = Field(default_factory=dict, description="model -> overrides (every device)")
    cpu_models: dict[str, list[str]] = Field(default_factory=dict, description="model -> overrides on a CPU only")
    cpu_train: list[str] = Field(default_factory=list, description="overrides of every training step on a CPU")


class AblationSpec(StrictModel):
    description: str = ""
    step: str = Field(description="the scored step this variant replaces")
    model: str | None = Field(None, description="train another model in its place (e.g. au_rgan vs tcn_sa)")
    overrides: list[str] = Field(default_factory=list)


class ScoringSpec(StrictModel):
    builtins: list[str] = Field(default_factory=list, description="reference submissions scored beside the models")
    max_clips: int | None = Field(8, ge=1)
    metrics: list[str] | None = Field(None, description="default: every registered metric")
    kind: str = "paired"
    personalize_frames: int | None = Field(None, ge=1, description="personalized tasks: fine-tuning frames per clip")
    geometry: Literal["full", "aligned"] | None = Field(
        None, description="the task's output geometry (make-task --geometry): aligned for models that output "
        "aligned face crops of any size S, scored against a ground-truth crop made at S x S (aligned-crop-S)")


class Recipe(StrictModel):
    name: str
    description: str = ""
    paper: str = ""
    steps: list[StepSpec] = Field(min_length=1)
    presets: dict[str, PresetSpec] = Field(min_length=1)
    ablations: dict[str, AblationSpec] = Field(default_factory=dict)
    scoring: ScoringSpec = Field(default_factory=ScoringSpec)

    @model_validator(mode="after")
    def _check(self) -> Recipe:
        seen: list[str] = []
        for s in self.steps:
            if s.name in seen:
                raise ValueError(f"step {s.name!r} appears twice")
            late = [d for d in s.needs.values() if d not in seen]
            if late:
                raise ValueError(f"step {s.name!r} needs {late}, which do not come before it")
            seen.append(s.name)
        scored = {s.name for s in self.steps if s.score}
        for name, a in self.ablations.items():
            if a.step not in scored:
                raise ValueError(f"ablation {name!r} replaces {a.step!r}, which is not a scored step")
        return self


def recipe_names() -> list[str]:
    """The recipes shipped in configs/recipes (the folder is the registry: one YAML per recipe)."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")) if RECIPES_DIR.is_dir() else []


def load_recipe(ref: str | Path) -> Recipe:
    """A recipe by name (configs/recipes/NAME.yaml) or by path to a YAML file."""
    path = Path(ref) if str(ref).endswith((".yaml", ".yml")) else shipped_config("recipes", str(ref))
    if path is None or not path.is_file():
        raise TalkbenchError(f"unknown recipe {str(ref)!r}; known: {', '.join(recipe_names()) or 'none'}")
    from talkbench.config import build

    data = read_yaml(path)
    data.setdefault("name", path.stem)
    return build(Recipe, data, source=str(path))


# ------------------------------------------------------------------------------------------- running
@dataclass
class StepPlan:
    """One step as it will run: its model and every override, resolved for the preset and device."""

    name: str
    kind: str
    model: str
    overrides: list[str]
    minutes: float | None
    score: bool
    base: str  # the recipe step it is (itself, or the step an ablation variant replaces)
    variant: str | None = None  # ablation name


@dataclass
class RecipeContext:
    recipe: Recipe
    shards: Path
    work: Path
    label: str  # shown in leaderboard names, e.g. "au_rgan (tiny)"
    preset: str = ""  # recorded in each scored submission's run record (RecipeInfo)
    checkpoints: dict[str, Path] = field(default_factory=dict)  # step name -> checkpoint
    echo: Callable[[str], None] = print
    # leaderboard name -> "0/N clips (first error)": scored but nothing usable, so never logged or ranked
    unscored: dict[str, str] = field(default_factory=dict)
    n_steps: int = 0  # training steps + scoring + leaderboard, for the "[i/n]" step lines
    step_no: int = 0

    def announce(self, what: str) -> None:
        """The recipe's step line, in the one progress format (``talkbench.progress.step_line``)."""
        from talkbench.progress import step_line

        self.step_no += 1
        self.echo(f"\n{step_line(self.step_no, max(self.n_steps, self.step_no), what)}")


def _gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _marker(work: Path, step: str) -> Path:
    return work / "_done" / f"train-{step}.json"


def chosen_ablations(recipe: Recipe, ablations: bool | Sequence[str]) -> list[str]:
    """``True``: every ablation of the recipe; ``False``/empty: none; names: those (a typo is a clear error)."""
    if ablations is True:
        return list(recipe.ablations)
    if not ablations:
        return []
    names = list(ablations)
    unknown = [n for n in names if n not in recipe.ablations]
    if unknown:
        raise ConfigError(f"recipe {recipe.name!r} has no ablation {unknown[0]!r}"
                          + did_you_mean(unknown[0], list(recipe.ablations)))
    return names


def plan_steps(recipe: Recipe, preset: str, ablations: bool | Sequence[str], gpu: bool,
               train_minutes: float | None = None, extra: list[str] | None = None) -> list[StepPlan]:
    """The steps in order, the chosen ablation variants right after the step they replace."""
    if preset not in recipe.presets:
        raise ConfigError(f"recipe {recipe.name!r} has no preset {preset!r}; presets: {', '.join(recipe.presets)}")
    chosen = chosen_ablations(recipe, ablations)
    p = recipe.presets[preset]
    minutes_of = p.gpu_minutes if gpu else p.minutes

    def make(name: str, kind: str, model: str, step_overrides: list[str], score: bool, variant: str | None,
             base: str) -> StepPlan:
        cpu = [] if gpu else [*p.cpu_train, *p.cpu_models.get(model, [])]
        overrides = [*p.train, *p.models.get(model, []), *cpu, *step_overrides, *(extra or [])]
        minutes = train_minutes or minutes_of.get(base, minutes_of.get("*"))
        return StepPlan(name, kind, model, overrides, minutes, score, base, variant)

    plans = []
    for s in recipe.steps:
        plans.append(make(s.name, s.kind, s.model_name, s.overrides, s.score, None, s.name))
        for vname, a in recipe.ablations.items():
            if vname in chosen and a.step == s.name:
                model = a.model or s.model_name
                base = s.overrides if model == s.model_name else []
                plans.append(make(f"{s.name}-{vname}", s.kind, model, [*base, *a.overrides], True, vname, s.name))
    return plans


def _needs(recipe: Recipe, step_name: str) -> dict[str, str]:
    for s in recipe.steps:
        if s.name == step_name:
            return s.needs
    return {}


def command(args: list[str]) -> str:
    return "talkbench " + shlex.join(args)


def train_step(step: StepPlan, ctx: RecipeContext) -> Path:
    """The ``train`` step kind: ``talkbench train MODEL`` with the plan's overrides, resumable."""
    from talkbench.models.checkpoint import latest_checkpoint
    from talkbench.models.train import load_run_config, train

    run_dir = ctx.work / "runs" / step.model / step.name
    overrides = [f"train.out_dir={ctx.work / 'runs'}", f"train.run_name={step.name}", "train.val_every=0",
                 "train.checkpoint_every=200", "data.num_workers=0"]
    if step.minutes:
        overrides += [f"train.max_minutes={step.minutes}", "train.steps=100000"]
    overrides += step.overrides
    resume = "auto" if latest_checkpoint(run_dir) is not None else None
    args = ["train", step.model, "--shards", str(ctx.shards), *[x for o in overrides for x in ("-o", o)]]
    ctx.echo(f"\n$ {command(args + (['--resume'] if resume else []))}")
    cfg = load_run_config(step.model, None, overrides, shards=str(ctx.shards))
    result = train(step.model, cfg, resume=resume)
    ckpt = latest_checkpoint(run_dir) or result.checkpoint
    if not (Path(ckpt) / "model.safetensors").is_file():
        raise TalkbenchError(f"training {step.name} wrote no checkpoint under {run_dir}")
    return Path(ckpt)


def _check_train_step(step: StepPlan) -> None:
    """The step's run config resolves (class defaults, shipped YAML, every preset/ablation override)."""
    from talkbench.models.train import load_run_config

    load_run_config(step.model, None, step.overrides)


train_step.check = _check_train_step  # type: ignore[attr-defined]


def check_plans(plans: list[StepPlan]) -> None:
    """Resolve every planned step's config before anything trains, so a typo in a preset or an ablation
    is a one-line error now, not after the steps before it have trained. A step kind checks its steps
    when its function has a ``check(step)`` attribute (the ``train`` kind does)."""
    for step in plans:
        check = getattr(STEP_KINDS.get(step.kind), "check", None)
        if check is not None:
            check(step)


#: step kind -> fn(StepPlan, RecipeContext) -> Path. Seeds add theirs with one lazy line each.
STEP_KINDS: Registry[Callable[[StepPlan, RecipeContext], Path]] = Registry("recipe step kind")
STEP_KINDS.register("train", lazy="talkbench.app.recipes:train_step")
STEP_KINDS.register("yi2020", lazy="talkbench.models.yi2020:recipe_step")
STEP_KINDS.register("face3d", lazy="talkbench.models.yi2020_cli:face3d_step")


def run_steps(plans: list[StepPlan], ctx: RecipeContext) -> None:
    for step in plans:
        marker = _marker(ctx.work, step.name)
        if marker.is_file():
            ctx.checkpoints[step.name] = Path(json.loads(marker.read_text())["checkpoint"])
            ctx.announce(f"[skip] {step.name} already trained: {ctx.checkpoints[step.name]}")
            continue
        ctx.announce(f"{step.kind} {step.name}" + (f" (ablation {step.variant} of {step.base})" if step.variant else ""))
        needs = [f"{key}={ctx.checkpoints[dep]}" for key, dep in _needs(ctx.recipe, step.base).items()
                 if step.kind != "train" or _has_key(step.model, key)]  # a variant training another model takes what it has
        step.overrides = [*needs, *step.overrides]
        ckpt = STEP_KINDS.get(step.kind)(step, ctx)
        ctx.checkpoints[step.name] = ckpt
        from talkbench.io import atomic_write

        atomic_write(marker, json.dumps({"checkpoint": str(ckpt), "model": step.model}, indent=2))


def _has_key(model: str, key: str) -> bool:
    """Whether ``key`` (dotted) is a field of ``model``'s run config."""
    from talkbench.models.train import run_config_class

    cls: Any = run_config_class(model)
    for part in key.split("."):
        f = getattr(cls, "model_fields", {}).get(part)
        if f is None:
            return False
        cls = f.annotation
    return True


def eval_split(shards: Path, echo: Callable[[str], None] = print) -> str:
    """The held-out split to score on: test when it has usable clips, else val, else train (said aloud)."""
    from talkbench.shards import ShardReader

    clips = ShardReader(shards).clips(["split", "status"]).to_pylist()
    usable = {c["split"] for c in clips if c["status"] in ("ok", "partial")}
    for split in ("test", "val", "train"):
        if split in usable:
            if split != "test":
                echo(f"\n[note] no usable test clips in {shards}: scoring the {split} split instead "
                     "(set test speakers in the dataset config for a held-out score)")
            return split
    raise TalkbenchError(f"no usable clips in {shards}: see `talkbench inspect {shards}`")


def make_task(ctx: RecipeContext, name: str, tasks_dir: Path | None) -> Any:
    from talkbench.benchmark.tasks import build_task, save_task

    sc = ctx.recipe.scoring
    split = eval_split(ctx.shards, ctx.echo)
    args = ["bench", "make-task", "--shards", str(ctx.shards), "--name", name, "--split", split]
    args += ["--max-clips", str(sc.max_clips)] if sc.max_clips else []
    args += ["--kind", sc.kind] if sc.kind != "paired" else []
    args += ["--personalize-frames", str(sc.personalize_frames)] if sc.personalize_frames else []
    args += ["--geometry", sc.geometry] if sc.geometry else []
    args += ["--tasks-dir", str(tasks_dir)] if tasks_dir else []
    ctx.echo(f"\n$ {command(args)}")
    stored, path, new = save_task(build_task(ctx.shards, name, split=split, kind=sc.kind, max_clips=sc.max_clips,
                                             personalize_frames=sc.personalize_frames, geometry=sc.geometry),
                                  tasks_dir)
    ctx.echo(f"{'wrote' if new else 'unchanged'} task {stored.ref}: {len(stored.clips)} clips -> {path}")
    return stored


def score(ctx: RecipeContext, plans: list[StepPlan], task: Any, tasks_dir: Path | None,
          metrics: list[str] | None) -> dict[str, str]:
    """Score the built-ins and every scored step; returns step name -> leaderboard name."""
    from talkbench.benchmark import runs as bench_runs
    from talkbench.benchmark.harness import NothingScoredError, run_submissions
    from talkbench.benchmark.submissions import load_submission

    names = {p.name: f"{p.name} ({ctx.label})" for p in plans if p.score}
    specs = [(s, None) for s in ctx.recipe.scoring.builtins]
    specs += [(f"checkpoint:{ctx.checkpoints[p.name]}", names[p.name]) for p in plans if p.score]
    recipes = {f"checkpoint:{ctx.checkpoints[n]}": info for n, info in recipe_infos(ctx, plans, names).items()}
    metrics = metrics or ctx.recipe.scoring.metrics
    bench_runs.use_tracking(None)
    todo: dict[str, str | None] = {}
    for spec, name in specs:
        sub = load_submission(spec, name=name)
        try:
            bench_runs.check_duplicate(task, sub, rerun=False)
        except TalkbenchError:
            ctx.echo(f"\n[skip] {sub.name} already scored on task {task.name}")
            continue
        finally:
            sub.close()
        args = ["bench", "run", "--task", task.ref, "--submission", spec, "--outputs-dir",
                str(ctx.work / "bench_outputs")]
        args += ["--name", name] if name else []
        args += ["--metrics", ",".join(metrics)] if metrics else []
        args += ["--tasks-dir", str(tasks_dir)] if tasks_dir else []
        ctx.echo(f"\n$ {command(args)}")
        todo[spec] = name
    if todo:  # one harness call: the ground truth is face-processed once for every submission
        from talkbench.benchmark.leaderboard import summary_text

        def report(result: Any, run_id: str | None) -> None:
            if result.record is not None and result.n_ok > 0:
                ctx.echo(summary_text(result.record))

        try:
            run_submissions(task.ref, list(todo), metrics=metrics, outputs_dir=ctx.work / "bench_outputs",
                            tasks_dir=tasks_dir, names={s: n for s, n in todo.items() if n}, on_result=report,
                            recipes=recipes)
        except NothingScoredError as e:
            # a model too undertrained to draw a face (a tiny preset) is a result, not a crash: the
            # recipe goes on, the ablation section says so, and nothing unscored reaches the leaderboard
            ctx.echo(f"\n[not scored] {e}")
            for r in e.empty:
                ctx.unscored[r.submission.name] = r.record.not_scored_reason
    return names


def recipe_infos(ctx: RecipeContext, plans: list[StepPlan], names: dict[str, str]) -> dict[str, Any]:
    """Step name -> the scored step's recipe provenance (its run record's ``recipe``): the step, the full
    model it is or replaces, and the step's whole ablation definition, so a later board rebuilds the view."""
    from talkbench.benchmark.records import RecipeInfo, RecipeVariant

    full = [p for p in plans if p.score and p.variant is None]
    index = {p.name: i for i, p in enumerate(full)}
    variants = {p.name: [RecipeVariant(name=names[v.name], variant=v.variant or "",
                                       description=ctx.recipe.ablations[v.variant].description)
                         for v in plans if v.variant and v.base == p.name] for p in full}
    return {p.name: RecipeInfo(name=ctx.recipe.name, preset=ctx.preset, step=p.base, step_index=index[p.base],
                               full=names[p.base], variant=p.variant,
                               description=ctx.recipe.ablations[p.variant].description if p.variant else "",
                               variants=variants[p.base])
            for p in plans if p.score}


@dataclass
class RecipeResult:
    task: str
    checkpoints: dict[str, Path]
    leaderboards: dict[str, Path]


def run_recipe(name: str | Path, shards: str | Path, preset: str = "tiny", ablations: bool | Sequence[str] = False,
               task: str | None = None, out: str | Path | None = None, tasks_dir: str | Path | None = None,
               train_minutes: float | None = None, overrides: list[str] | None = None,
               metrics: list[str] | None = None, label: str | None = None, task_name: str | None = None,
               leaderboard_dir: str | Path = "reports/leaderboards", echo: Callable[[str], None] = print
               ) -> RecipeResult:
    """Train the chain, score the results, write the leaderboard (and the ablation table)."""
    from talkbench.benchmark import runs as bench_runs
    from talkbench.benchmark.board import load_board
    from talkbench.benchmark.leaderboard import ablation_markdown, render_board
    from talkbench.benchmark.tasks import load_task
    from talkbench.shards import ShardReader

    recipe = load_recipe(name)
    shards = Path(shards)
    ShardReader(shards)  # a prepared folder of this schema version, or a clear error now
    work = Path(out) if out else Path("recipes") / f"{recipe.name}-{preset}"
    work.mkdir(parents=True, exist_ok=True)
    tdir = Path(tasks_dir) if tasks_dir else None
    ctx = RecipeContext(recipe, shards, work, label or preset, preset=preset, echo=echo)
    plans = plan_steps(recipe, preset, ablations, _gpu(), train_minutes, overrides)
    check_plans(plans)
    ctx.n_steps = len(plans) + 2  # + scoring + leaderboard
    run_steps(plans, ctx)

    the_task = load_task(task, tdir) if task else make_task(ctx, task_name or f"{recipe.name}-{preset}", tdir)
    ctx.announce(f"score {sum(p.score for p in plans)} model(s) and {len(recipe.scoring.builtins)} reference(s) "
                 f"on {the_task.ref}")
    score(ctx, plans, the_task, tdir, metrics)
    ctx.announce("leaderboard" + (" and ablation section" if any(p.variant for p in plans) else ""))
    bench_runs.use_tracking(None)
    boards: dict[str, Path] = {}
    # the ablation section comes from the run records' recipe provenance (and the not-scored variants'
    # records), so `bench leaderboard` and `bench leaderboard --from` bundles show the same section later
    board = load_board(the_task.name, thumbnails=True)
    board.unscored = {**board.unscored, **{n: r for n, r in ctx.unscored.items() if board.entry(n) is None}}
    for fmt in ("md", "html"):
        out_path = Path(leaderboard_dir) / f"{the_task.name}.{fmt}"
        echo(f"\n$ {command(['bench', 'leaderboard', '--task', the_task.name, '--format', fmt, '--out', str(out_path)])}"
             + ("  # + the ablation section" if fmt == "html" and board.ablations else ""))
        boards[fmt] = render_board(board, fmt, out_path)
    if board.ablations:
        from talkbench.io import atomic_write

        boards["ablations"] = atomic_write(Path(leaderboard_dir) / f"{the_task.name}-ablations.md",
                                           ablation_markdown(board))
    return RecipeResult(task=the_task.ref, checkpoints=dict(ctx.checkpoints), leaderboards=boards)


# ------------------------------------------------------------------------------------------- CLI
def register(sub: Any) -> None:
    r = sub.add_parser("recipe", help="reproduce a paper: train a chain of models, score them, write the leaderboard")
    rsub = r.add_subparsers(dest="recipe_command", metavar="STEP", required=True)
    ls = rsub.add_parser("list", help="the recipes in configs/recipes, with their presets and ablations")
    ls.set_defaults(handler=_list)
    run = rsub.add_parser("run", help="train every step (skipping finished ones), score, write the leaderboard",
                          description="Re-running skips trained steps and scored submissions.")
    run.add_argument("name", help=f"recipe name ({', '.join(recipe_names())}) or a recipe YAML")
    run.add_argument("--shards", required=True, help="prepared shards (talkbench prepare output)")
    run.add_argument("--preset", default="tiny", help="tiny (minutes on a CPU), small, paper (the published setup)")
    run.add_argument("--ablations", nargs="?", const="all", default=None, metavar="NAMES",
                     help="also train and score the ablation variants: all of them, or the comma-separated "
                     "NAMES (see `talkbench recipe list`)")
    run.add_argument("--task", default=None, help="score on this existing task (default: one built from the "
                     "shards' test split)")
    run.add_argument("--out", default=None, help="work folder for checkpoints (default recipes/NAME-PRESET)")
    run.add_argument("--tasks-dir", default=None)
    run.add_argument("--train-minutes", type=float, default=None, help="time budget of every training step")
    run.add_argument("--metrics", default=None, help="comma-separated metrics (default: the recipe's, else all)")
    from talkbench.config import add_override_arg

    add_override_arg(run, "override every training step's config, e.g. -o train.steps=50")
    run.set_defaults(handler=_run)


def _list(args: Any) -> int:
    for n in recipe_names():
        r = load_recipe(n)
        print(f"{n:<12} {r.description}")
        print(f"{'':<12} steps: {' -> '.join(s.name for s in r.steps)}; presets: {', '.join(r.presets)}"
              + (f"; ablations: {', '.join(r.ablations)}" if r.ablations else ""))
    return 0


def _run(args: Any) -> int:
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    ablations: bool | list[str] = (args.ablations == "all" or
                                   [a.strip() for a in (args.ablations or "").split(",") if a.strip()])
    res = run_recipe(args.name, args.shards, args.preset, ablations, args.task, args.out, args.tasks_dir,
                     args.train_minutes, args.override, metrics)
    md = res.leaderboards["md"]
    print("\n" + md.read_text(encoding="utf-8"))  # with its ablation section when there is one
    print("leaderboards: " + ", ".join(str(p) for p in res.leaderboards.values()))
    return 0
