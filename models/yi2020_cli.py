"""Seed 001's commands: ``train face3d``, ``yi2020 train``, ``personalize`` and ``perf render`` (torch and
mediapipe imported lazily). ``talkbench generate`` reaches yi2020 through its ModelSpec like any generator."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from talkbench.config import add_override_arg
from talkbench.perf import add_perf_command


def register(sub: Any, perf_sub: Any) -> None:
    y = sub.add_parser("yi2020", help="seed 001 (Yi et al. 2020): train the general yi2020 checkpoint on shards")
    ysub = y.add_subparsers(dest="yi2020_command", required=True)
    yt = ysub.add_parser("train", help="face3d + speaker embedding + audio_to_pose + memory_gan on the shards")
    yt.add_argument("--shards", required=True)
    yt.add_argument("--preset", default="tiny", choices=["tiny", "small", "paper"])
    yt.add_argument("--out", required=True, help="checkpoint folder to write")
    yt.add_argument("--split", default="train")
    yt.add_argument("--max-clips", type=int, default=None)
    add_override_arg(yt, "override a Yi2020Config field, e.g. -o render=sketch -o ablation=no_memory")
    yt.set_defaults(handler=_train_general)

    p = sub.add_parser("personalize", help="fine-tune a yi2020 checkpoint on the first N frames of a target video",
                       description="Prepares the target video with the pipeline's face tracking, pose and MFCC, "
                       "fits its identity (neutral shape, vertex colours, identity feature) and fine-tunes the audio "
                       "net and the GAN on its first --frames frames; writes a personalised yi2020 checkpoint.")
    p.add_argument("--checkpoint", required=True, help="a general yi2020 checkpoint folder")
    p.add_argument("--video", required=True, help="the target person's video (with speech)")
    p.add_argument("--frames", type=int, default=300, help="fine-tuning frames (published: 300)")
    p.add_argument("--preset", default=None, choices=["tiny", "small", "paper"],
                   help="take the fine-tuning steps of this preset (default: the checkpoint's)")
    p.add_argument("--out", required=True, help="personalised checkpoint folder to write")
    p.set_defaults(handler=_personalize)

    f = add_perf_command(perf_sub, "render", "talkbench.models.yi2020_cli:_perf_render", in_all=False,
                         help="seed 001: mesh rasteriser frames/s and face3d fitting frames/s, each beside the naive "
                         "per-triangle / per-frame loop in the same run")
    f.add_argument("--video", default="../shared/fixtures/wild/voxceleb_741400163.mp4",
                   help="a talking-face video whose tracked mesh is rendered (default: the VoxCeleb fixture)")
    f.add_argument("--size", type=int, default=128, help="render side in pixels")
    f.add_argument("--frames", type=int, default=20)
    f.add_argument("--naive-frames", type=int, default=2)


def _say(message: str) -> None:
    """A stage's message (face3d report, losses), beside the loops' one progress display; silent with -q."""
    from talkbench.progress import is_quiet

    if not is_quiet():
        print(message, flush=True)


def _overrides(items: list[str]) -> dict[str, Any]:
    from talkbench.config import apply_overrides

    return apply_overrides({}, items)


def _train_general(args: argparse.Namespace) -> int:
    from talkbench.models import yi2020

    cfg = yi2020.preset(args.preset, _overrides(args.override))
    model = yi2020.train_general(args.shards, cfg, args.split, args.max_clips, progress=_say)
    print(f"wrote {model.save(args.out)}")
    return 0


def _personalize(args: argparse.Namespace) -> int:
    from talkbench.errors import TalkbenchError
    from talkbench.models import yi2020

    if args.frames < 2:
        raise TalkbenchError("--frames must be at least 2")
    if not Path(args.video).is_file():
        raise TalkbenchError(f"target video not found: {args.video}")
    general = yi2020.Yi2020.load(args.checkpoint)
    if general.kind != "general":
        raise TalkbenchError(f"{args.checkpoint} is already personalised; start from the general checkpoint")
    over = None
    if args.preset:
        p = yi2020.preset(args.preset)
        over = {k: getattr(p, k) for k in ("finetune_audio", "finetune_gan", "finetune_mask")}
    personal, _ = yi2020.personalize(general, args.video, args.frames, over, progress=_say)
    print(f"wrote {personal.save(args.out)}")
    return 0


# ---------------------------------------------------------------------------- perf
def perf_render(video: str, size: int = 128, frames: int = 20, naive_frames: int = 2,
                out_dir: str = "reports/perf") -> dict:
    """Rasteriser and face3d fitting throughput on the face mesh of real video frames (tracked with the
    pipeline's MediaPipe graph, scaled to ``size``), vectorised vs naive in the same run."""
    from talkbench import perf
    from talkbench.errors import TalkbenchError
    from talkbench.media import read_av
    from talkbench.models import face3d as f3
    from talkbench.models import mesh_render
    from talkbench.pipelines.face import process_frames

    if not Path(video).is_file():
        raise TalkbenchError(f"perf render needs a talking-face video for a real mesh: {video} not found (--video)")
    rng = np.random.default_rng(0)
    tris = mesh_render.triangles()
    av = read_av(video, max_frames=frames)
    track = process_frames(av.frames, 25.0)
    crop = track["landmarks_crop"][track["face_found"], :468].astype(np.float64)
    if not len(crop):
        raise TalkbenchError(f"{video}: no face found")
    k = size / track["face_crop"].shape[1]
    verts = [v * k for v in crop]
    frames = len(verts)
    cols = rng.uniform(0, 255, (468, 3))

    def rate(fn, n):
        t0 = time.perf_counter()
        for v in verts[:n]:
            fn(v, tris, cols, (size, size))
        return n / (time.perf_counter() - t0)

    vec = rate(mesh_render.rasterise, frames)
    naive = rate(mesh_render.rasterise_naive, naive_frames)
    # face3d fitting: random orthonormal bases of the published sizes, 2,000 frames
    n = 2000
    q, _ = np.linalg.qr(rng.normal(size=(1404, 104)))
    model = f3.Face3D(np.zeros((468, 3)), q[:, :40].T, np.ones(40), q[:, 40:].T, np.linspace(2, 0.1, 64))
    shapes = rng.normal(size=(n, 468, 3))
    neutral = np.zeros((468, 3))
    t0 = time.perf_counter()
    model.expression_coefficients(shapes, neutral)
    fit_vec = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    model.expression_coefficients_naive(shapes[:200], neutral)
    fit_naive = 200 / (time.perf_counter() - t0)
    import os

    results = {
        # the box is shared: its load beside the numbers (1-minute load average, cores)
        "load_avg_1m": round(os.getloadavg()[0], 2), "cores": os.cpu_count(),
        "rasteriser": {"size": size, "video": Path(video).name, "triangles": int(len(tris)), "frames_per_s": vec, "naive_frames_per_s": naive,
                       "speedup": vec / naive, "naive": "per-triangle, per-pixel Python loop with a depth test"},
        "face3d_fit": {"frames_per_s": fit_vec, "naive_frames_per_s": fit_naive, "speedup": fit_vec / fit_naive,
                       "n_exp": 64, "naive": "one least-squares solve per frame"},
    }
    path = perf.write_report("render", results, out_dir)
    perf.write_index(out_dir)
    print(json.dumps(results, indent=2))
    print(f"wrote {path}")
    return results


def _perf_render(args: argparse.Namespace) -> int:
    perf_render(args.video, args.size, args.frames, args.naive_frames, args.out_dir)
    return 0


def train_face3d(shards: str, out: str, overrides: list[str]) -> int:
    """``talkbench train face3d --shards DIR``: fit on the train split, report on val (or train)."""
    from talkbench.config import build
    from talkbench.models import face3d as f3
    from talkbench.models import yi2020

    ov = _overrides(overrides)
    out_dir = ov.pop("out", None) or out
    cfg = build(f3.Face3DConfig, ov, source="train face3d -o")
    train = yi2020.targets_from_shards(shards, "train")
    model = yi2020.fit_face3d(train, cfg)
    try:
        held = yi2020.targets_from_shards(shards, "val")
        where = "val"
    except Exception:  # no val clips: report on the training clips, and say so
        held, where = train, "train"
    errs = []
    for t in held:
        cs = yi2020.clip_shapes(t)
        errs.append(f3.crop_pixel_errors(model, cs, cs.neutral, t.landmarks[t.valid], t.crop_matrix[t.valid],
                                         t.frame_hw, t.fov))
    model.report.update({
        f"{where}_expression_explained": f3.explained_variance(model, [yi2020.clip_shapes(t) for t in held]),
        f"{where}_crop_px_error": {k: float(np.mean([e[k] for e in errs])) for k in errs[0]},
    })
    path = model.save(Path(out_dir))
    print(json.dumps(model.report, indent=2))
    print(f"wrote {path}")
    return 0


# ---------------------------------------------------------------------------- recipe step
def face3d_step(step: Any, ctx: Any) -> Path:
    """The ``face3d`` recipe step kind: ``talkbench train face3d`` (closed form) on the recipe's shards;
    ``step.overrides`` are Face3DConfig fields (n_exp, n_id, face3d_ridge). Returns the artifact."""
    from talkbench.models.face3d import ARTIFACT

    out = Path(ctx.work) / step.name
    if (out / ARTIFACT).is_file():
        ctx.echo(f"{step.name}: done earlier ({out / ARTIFACT})")
        return out / ARTIFACT
    flags = " ".join(f"-o {o}" for o in step.overrides)
    ctx.echo(f"\n$ talkbench train face3d --shards {ctx.shards} -o out={out} {flags}".rstrip())
    train_face3d(str(ctx.shards), str(out), list(step.overrides))
    return out / ARTIFACT


def _check_face3d_step(step: Any) -> None:
    from talkbench.models.yi2020 import _check_step

    _check_step(step)


face3d_step.check = _check_face3d_step  # type: ignore[attr-defined]


def _face3d_spec() -> Any:
    from talkbench.models.face3d import Face3D, Face3DConfig
    from talkbench.models.registry import ModelSpec

    return ModelSpec(module=Face3D, config=Face3DConfig, objective=None, fit=train_face3d,
                     description="seed 001's linear 3-D face model on MediaPipe's mesh (closed form: PCA + ridge); "
                                 "talkbench train face3d --shards DIR -o out=DIR -o n_exp=64")



def __getattr__(name: str) -> Any:
    """``FACE3D_SPEC`` (the registry's lazy entry) is built on first use, so ``talkbench --help`` stays light."""
    if name == "FACE3D_SPEC":
        return _face3d_spec()
    raise AttributeError(name)
