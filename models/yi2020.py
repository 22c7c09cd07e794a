"""Seed 001 end to end: Yi et al. 2020 (arXiv 2002.10137), personalised head pose.

Parts (each in its own module): ``face3d`` (linear face model, the 70-d target), ``mesh_render``
(the rendered frames), ``audio_to_pose`` (ATC-net), ``memory_gan`` (rendered -> photo-real), and
``yi2020_data``, re-exported here: :class:`Target` (one video prepared with the pipeline's own functions:
face tracking, pose, MFCC, plus a **head crop** per frame from one fixed box per clip that covers the
face's motion; the aligned face crop removes roll, scale and translation, so pose would be invisible in
it) and the renderer of (expression, pose) sequences into head crops. This module holds what joins them:

* short explicit training loops (nanoGPT style) for the general models on shards and for the
  fine-tuning on the first N frames of a target (:func:`personalize`);
* :func:`generate`: audio -> expression + pose -> rendered head crops -> GAN -> frames (and full frames,
  blended into the target frame of nearest head rotation, when the target video is given);
* the ``yi2020`` checkpoint: a folder bundling the three parts (``yi2020.json`` says what is inside).

Ablations (config ``ablation``): ``no_memory`` (AdaIN from the target's own identity feature),
``render: sketch`` (coloured contours instead of the shaded mesh), ``no_pose`` (the target's first pose
held: expression only from audio), ``no_personalisation`` (no fine-tuning).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from talkbench.config import StrictModel
from talkbench.errors import TalkbenchError
from talkbench.models import face3d as f3
from talkbench.models.arcface import WEIGHTS_NAME, arcface_identity, identity_source
from talkbench.models.audio_to_pose import AudioToPose, AudioToPoseConfig, AudioToPoseLossConfig
from talkbench.models.memory_gan import (
    MemoryGAN,
    MemoryGANConfig,
    MemoryGANLossConfig,
    SpeakerEmbedding,
)
from talkbench.models.registry import ModelSpec
from talkbench.models.yi2020_data import (  # noqa: F401  (re-exported: the seed's public names)
    Appearance,
    ClipSlices,
    Target,
    appearance_of,
    clip_shapes,
    coefficients,
    head_box_matrix,
    mfcc_blocks,
    prepare_target,
    render,
    target_from_arrays,
    targets_from_shards,
)
from talkbench.progress import track
from talkbench.schema import FPS, SAMPLE_RATE

log = logging.getLogger(__name__)

MANIFEST = "yi2020.json"
TARGET = "target.npz"
WEIGHTS = "model.safetensors"  # the generator protocol reads the model name from its metadata


# ---------------------------------------------------------------------------- configuration
class StageConfig(StrictModel):
    steps: int = Field(100, ge=0)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)


class Yi2020Config(StrictModel):
    preset: str = "tiny"
    head_size: int = Field(128, ge=16, description="head crop side (pixels) in the shards/target")
    head_margin: float = Field(1.5, gt=1.0, description="head box side = margin x the motion-covering face box")
    n_id: int = Field(40, ge=1)
    n_exp: int = Field(64, ge=1)
    face3d_ridge: float = Field(1.0, ge=0.0)
    seq_len: int = Field(16, ge=2, description="ATC-net sequence length (published: 16)")
    render: Literal["shaded", "sketch"] = "shaded"
    ablation: Literal["none", "no_memory", "no_pose", "no_personalisation"] = "none"
    audio_to_pose: AudioToPoseConfig = Field(default_factory=AudioToPoseConfig)
    audio_loss: AudioToPoseLossConfig = Field(default_factory=AudioToPoseLossConfig)
    gan: MemoryGANConfig = Field(default_factory=MemoryGANConfig)
    gan_loss: MemoryGANLossConfig = Field(default_factory=MemoryGANLossConfig)
    speaker_dim_base: int = Field(32, ge=1)
    face3d_artifact: str = Field("", description="a trained face3d artifact (talkbench train face3d) instead of "
                                 "fitting one here (the recipe's face3d step)")
    audio_to_pose_checkpoint: str = Field("", description="a trained audio_to_pose checkpoint (talkbench train "
                                          "audio_to_pose, on the same face3d) instead of training the audio net here")
    memory_gan_checkpoint: str = Field("", description="a trained memory_gan checkpoint (talkbench train memory_gan, "
                                       "on the same face3d) instead of training the GAN and speaker embedding here")
    identity: Literal["auto", "arcface", "speaker"] = Field(
        "auto", description="the AdaIN identity feature: ArcFace (arcface-iresnet50 from the weights store), a "
        "speaker-ID embedding trained on the shards, or auto (ArcFace when the store has it); a trained "
        "checkpoint records the one it used")
    general_audio: StageConfig = Field(default_factory=lambda: StageConfig(steps=2000, batch_size=16, lr=2e-4))
    general_gan: StageConfig = Field(default_factory=lambda: StageConfig(steps=2000, batch_size=8, lr=2e-4))
    speaker: StageConfig = Field(default_factory=lambda: StageConfig(steps=300, batch_size=32, lr=1e-3))
    finetune_audio: StageConfig = Field(default_factory=lambda: StageConfig(steps=500, batch_size=16, lr=1e-4))
    finetune_gan: StageConfig = Field(default_factory=lambda: StageConfig(steps=500, batch_size=8, lr=1e-4))
    finetune_mask: float = Field(2.0, ge=0.0, description="lambda_mask while fine-tuning (published: 2)")
    seed: int = 0


def preset(name: str, overrides: dict[str, Any] | None = None) -> Yi2020Config:
    """tiny (CPU tests: 32 px, narrow nets, a few steps), small (128 px, a GPU hour), paper (published sizes)."""
    tiny = {
        "head_size": 32, "n_exp": 16, "n_id": 8, "seq_len": 8,
        "audio_to_pose": {"conv_channels": [4, 4, 8, 8, 8], "fc_dims": [32], "lstm_hidden": 16, "n_exp": 16},
        "gan": {"image_size": 32, "base_channels": 8, "levels": 4, "id_dim": 16, "disc_channels": 8, "disc_layers": 2,
                "memory": {"slots": 64, "key_dim": 16, "top_k": 8}},
        "speaker_dim_base": 8,
        "general_audio": {"steps": 6, "batch_size": 4, "lr": 1e-3}, "general_gan": {"steps": 4, "batch_size": 4, "lr": 1e-3},
        "speaker": {"steps": 4, "batch_size": 8, "lr": 1e-3},
        # ~25 epochs over 250 fine-tuning frames (published: 100): 8 steps (one epoch) left the pose flat
        # fine-tuning ~25 epochs over 250 frames (published: 100): 8 steps (one epoch) left the pose flat
        "finetune_audio": {"steps": 200, "batch_size": 4, "lr": 1e-3}, "finetune_gan": {"steps": 4, "batch_size": 4, "lr": 1e-3},
    }
    small = {
        "head_size": 128, "n_exp": 64, "n_id": 40,
        "audio_to_pose": {"conv_channels": [32, 64, 128, 128, 256], "fc_dims": [1024, 256], "lstm_hidden": 256},
        "gan": {"image_size": 128, "base_channels": 32, "levels": 7, "id_dim": 256, "disc_channels": 32,
                "memory": {"slots": 4096, "key_dim": 256, "top_k": 64}},
        "general_audio": {"steps": 5000}, "general_gan": {"steps": 5000},
        "finetune_audio": {"steps": 1000}, "finetune_gan": {"steps": 1500},
    }
    paper = {"head_size": 256, "gan": {"image_size": 256, "levels": 8},
             "general_audio": {"steps": 100_000}, "general_gan": {"steps": 100_000},
             # 100 audio epochs and 60 GAN epochs over 300 frames (published fine-tuning)
             "finetune_audio": {"steps": 100 * 300 // 16, "lr": 1e-4}, "finetune_gan": {"steps": 60 * 300 // 8, "lr": 1e-4}}
    table = {"tiny": tiny, "small": small, "paper": paper}
    if name not in table:
        raise TalkbenchError(f"unknown yi2020 preset {name!r}: choose from {', '.join(table)}")
    data = _merge({"preset": name}, table[name])
    return Yi2020Config.model_validate(_merge(data, overrides or {}))


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ---------------------------------------------------------------------------- the 3-D face of a target
def fit_face3d(targets: list[Target], cfg: Yi2020Config) -> f3.Face3D:
    return f3.fit([clip_shapes(t) for t in targets], cfg.n_id, cfg.n_exp, cfg.face3d_ridge)


# ---------------------------------------------------------------------------- tensors
def _img(x: np.ndarray, size: int) -> torch.Tensor:
    """(..., S, S, 3) uint8 -> (..., 3, size, size) float in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(x)).float().div(127.5).sub(1)
    t = t.movedim(-1, -3)
    if t.shape[-1] != size:
        lead = t.shape[:-3]
        t = F.interpolate(t.reshape(-1, *t.shape[-3:]), size=(size, size), mode="bilinear", align_corners=False,
                          antialias=True).reshape(*lead, 3, size, size)
    return t


def _stack_window(rendered: torch.Tensor, n_window: int) -> torch.Tensor:
    """(T, 3, S, S) -> (T, 3 n_window, S, S): frames t - n_window + 1 .. t (edge-padded), newest last."""
    idx = (torch.arange(len(rendered))[:, None] + torch.arange(-n_window + 1, 1)[None]).clamp_min(0)
    return rendered[idx].flatten(1, 2)


# ---------------------------------------------------------------------------- the bundle
@dataclass
class Yi2020:
    """The ``yi2020`` checkpoint: the three trained parts (+ a speaker embedding), and for a personalised
    checkpoint the target's appearance, identity feature and poses."""

    cfg: Yi2020Config
    face3d: f3.Face3D
    audio_net: AudioToPose
    gan: MemoryGAN
    speaker_net: SpeakerEmbedding
    kind: Literal["general", "personal"] = "general"
    appearance: Appearance | None = None
    identity: np.ndarray | None = None  # (id_dim,) the target's identity feature
    poses: np.ndarray | None = None  # (N, 6) the fine-tuning frames' poses (first one = the no_pose ablation)
    pipeline_config: dict[str, Any] = field(default_factory=dict)
    history: dict[str, Any] = field(default_factory=dict)
    #: the prepared target (in memory only): a model personalised in this process blends into its frames
    target: Target | None = None

    def save(self, folder: str | Path) -> Path:
        """The checkpoint folder: ``model.safetensors`` (every network weight, prefixed by its part; the
        metadata names the model ``yi2020`` so the generator protocol finds its ModelSpec), the face3d
        artifact, the target's appearance (personalised) and ``yi2020.json`` (config, reports, history)."""
        import os
        import shutil

        from safetensors.torch import save_file

        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.face3d.save(tmp / f3.ARTIFACT)
        state = {f"{part}.{k}": v.detach().cpu().contiguous() for part, net in self.parts().items()
                 for k, v in net.state_dict().items()}
        n_speakers = self.speaker_net.classifier.out_features
        save_file(state, str(tmp / WEIGHTS), metadata={
            "talkbench_model": "yi2020", "kind": self.kind, "n_speakers": str(n_speakers),
            "model_config": json.dumps(self.cfg.model_dump(mode="json"), sort_keys=True),
            "pipeline_config": json.dumps(self.pipeline_config, sort_keys=True)})
        if self.kind == "personal":
            np.savez(tmp / TARGET, identity=self.identity, poses=self.poses, **self.appearance.save())
        manifest = {"talkbench_model": "yi2020", "kind": self.kind, "config": self.cfg.model_dump(mode="json"),
                    "n_speakers": n_speakers, "face3d_report": self.face3d.report,
                    "pipeline_config": self.pipeline_config, "history": self.history}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        return folder

    def parts(self) -> dict[str, torch.nn.Module]:
        return {"audio_to_pose": self.audio_net, "memory_gan": self.gan, "speaker": self.speaker_net}

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> Yi2020:
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / MANIFEST).is_file():
            raise TalkbenchError(f"{folder}: not a yi2020 checkpoint (no {MANIFEST})")
        if not (folder / WEIGHTS).is_file():
            raise TalkbenchError(f"{folder}: no {WEIGHTS} (a yi2020 bundle from an older talkbench: retrain it)")
        m = json.loads((folder / MANIFEST).read_text())
        cfg = Yi2020Config.model_validate(m["config"])
        nets = build_nets(cfg, m["n_speakers"])
        state = load_file(str(folder / WEIGHTS))
        obj = cls(cfg, f3.Face3D.load(folder / f3.ARTIFACT), *nets, kind=m["kind"],
                  pipeline_config=m.get("pipeline_config", {}), history=m.get("history", {}))
        for part, net in obj.parts().items():
            net.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(part + ".")})
            net.eval()
        if m["kind"] == "personal":
            d = np.load(folder / TARGET)
            obj.appearance, obj.identity, obj.poses = Appearance.load(d), d["identity"], d["poses"]
        return obj


def build_nets(cfg: Yi2020Config, n_speakers: int) -> tuple[AudioToPose, MemoryGAN, SpeakerEmbedding]:
    a2p = AudioToPose(cfg.audio_to_pose.model_copy(update={"n_exp": cfg.n_exp, "n_pose": 6}))
    gan = MemoryGAN(cfg.gan.model_copy(update={"memory": cfg.gan.memory.model_copy(
        update={"enabled": cfg.ablation != "no_memory"})}))
    spk = SpeakerEmbedding(n_speakers, cfg.gan.id_dim, cfg.speaker_dim_base, image_size=min(64, cfg.gan.image_size))
    return a2p, gan, spk


# ---------------------------------------------------------------------------- training loops
def _adam(params, sc: StageConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=sc.lr, betas=sc.betas)


def _draw(clips: list[tuple], batch_size: int, length: int, rng: np.random.Generator, per_frame: int) -> list:
    """The one sampler of the training stages: ``batch_size`` random (clip, ``length`` consecutive frames)
    draws. A clip is a tuple whose first ``per_frame`` entries are per-frame arrays or tensors (sliced) and
    whose others are per clip (e.g. its identity feature, repeated); returns each entry stacked over draws."""
    draws = []
    for _ in range(batch_size):
        clip = clips[rng.integers(len(clips))]
        s = int(rng.integers(0, len(clip[0]) - length + 1))
        draws.append([x[s : s + length] if k < per_frame else x for k, x in enumerate(clip)])
    return [torch.stack(col) if isinstance(col[0], torch.Tensor) else np.stack(col) for col in zip(*draws, strict=True)]


def train_audio(net: AudioToPose, seqs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], sc: StageConfig,
                loss_cfg: AudioToPoseLossConfig, n_exp: int, seq_len: int, seed: int) -> list[float]:
    """ATC-net on in-memory (windows (T, 12, H), normalised targets (T, 70), valid (T,)) sequences (the
    fine-tuning on a target): random ``seq_len`` slices through the shared loop's step and
    ``audio_to_pose``'s own objective, Adam (published: lr 2e-4 general / 1e-4 fine-tuning, betas (0.5, 0.999))."""
    import contextlib

    from talkbench.models.audio_to_pose import AudioToPoseObjective, AudioToPoseTrainLoss
    from talkbench.models.data import DataConfig
    from talkbench.models.train import train_step

    rng = np.random.default_rng(seed)
    usable = [s for s in seqs if len(s[0]) >= seq_len]
    if not usable:
        raise TalkbenchError(f"no sequence has {seq_len} frames for the audio net")
    if net.cfg.n_exp != n_exp:
        raise TalkbenchError(f"the audio net predicts {net.cfg.n_exp} expression coefficients, the targets have {n_exp}")
    obj = AudioToPoseObjective(net.cfg, AudioToPoseTrainLoss.model_validate(loss_cfg.model_dump()), DataConfig())
    parts = obj.parts(net)
    opts = {"model": _adam(net.parameters(), sc)}
    net.train()
    losses = []
    for _ in track(range(sc.steps), "audio_to_pose", unit="step"):
        w, y, m = (torch.from_numpy(x) for x in _draw(usable, sc.batch_size, seq_len, rng, per_frame=3))
        logs = train_step(obj, parts, parts, opts, {"windows": w, "targets": y, "mask": m}, contextlib.nullcontext, 0.0)
        losses.append(logs["loss"])
    net.eval()
    return losses


def train_speaker(net: SpeakerEmbedding, faces: list[np.ndarray], labels: list[int], sc: StageConfig, seed: int) -> list[float]:
    """The identity feature without ArcFace: a speaker classifier on face crops (cross-entropy)."""
    rng = np.random.default_rng(seed)
    opt = _adam(net.parameters(), sc)
    net.train()
    losses = []
    for _ in track(range(sc.steps), "speaker embedding", unit="step"):
        pick = rng.integers(0, len(faces), sc.batch_size)
        x = torch.stack([_img(faces[i][rng.integers(len(faces[i]))], net.image_size) for i in pick])
        loss = F.cross_entropy(net.classifier(net(x) * 8.0), torch.tensor([labels[i] for i in pick]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    net.eval()
    return losses


ARCFACE = WEIGHTS_NAME


def resolve_identity(cfg: Yi2020Config, say: Any = None) -> Yi2020Config:
    """``identity: auto`` -> arcface or speaker (said aloud, naming the missing file when it falls back);
    with ArcFace the GAN's identity size is ArcFace's embedding size."""
    from talkbench import weights

    say = say or log.info
    choice = identity_source(cfg.identity, say)
    if choice == "arcface":
        dim = arcface_identity().dim
        say(f"identity feature: ArcFace ({weights.weight_path(ARCFACE)}, {dim}-d)")
        return cfg.model_copy(update={"identity": "arcface", "gan": cfg.gan.model_copy(update={"id_dim": dim})})
    return cfg.model_copy(update={"identity": "speaker"})


def identity_encoder(cfg: Yi2020Config, speaker: SpeakerEmbedding) -> Any:
    """The network behind the identity feature a checkpoint was trained with."""
    if cfg.identity == "arcface":
        identity_source("arcface")  # trained with ArcFace: without the file, say which one is missing
        return arcface_identity()
    return speaker


@torch.no_grad()
def identity_feature(net: Any, crops: np.ndarray) -> np.ndarray:
    """Mean unit embedding of (up to 32 of) a person's crops, renormalised (``net``: the speaker embedding
    or :class:`ArcFaceIdentity`)."""
    idx = np.linspace(0, len(crops) - 1, min(32, len(crops))).astype(int)
    e = net(_img(crops[idx], net.image_size)).mean(0)
    return F.normalize(e, dim=0).numpy()


def train_gan(gan: MemoryGAN, data: list[tuple[np.ndarray, np.ndarray, np.ndarray]], sc: StageConfig,
              loss_cfg: MemoryGANLossConfig, seed: int) -> list[dict[str, float]]:
    """The GAN on in-memory (rendered (T, S, S, 3), real (T, S, S, 3), identity (id_dim,)) clips (the
    fine-tuning on a target, with its fixed identity feature): the shared loop's step with
    ``memory_gan``'s own objective (generator + query encoder, then the PatchGAN, then the memory update)."""
    import contextlib
    from types import SimpleNamespace

    from talkbench.models.data import DataConfig
    from talkbench.models.memory_gan import MemoryGANObjective
    from talkbench.models.train import train_step

    rng = np.random.default_rng(seed)
    size, nw = gan.cfg.image_size, gan.cfg.n_window
    obj = MemoryGANObjective(gan.cfg, loss_cfg, DataConfig(seed=seed))
    parts = obj.parts(SimpleNamespace(gan=gan, speaker=None))  # no speaker group: the identity is given
    opts = {g: _adam(parts[g].parameters(), sc) for g in obj.groups}
    tensors = [(_stack_window(_img(r, size), nw), _img(x, size), torch.from_numpy(np.asarray(i, np.float32)))
               for r, x, i in data]
    gan.train()
    logs = []
    for _ in track(range(sc.steps), "memory_gan", unit="step"):
        rend, real, ident = _draw(tensors, sc.batch_size, 1, rng, per_frame=2)
        batch = {"rendered": rend[:, 0], "real": real[:, 0], "identity": ident}  # one frame (its window) per draw
        logs.append(train_step(obj, parts, parts, opts, batch, contextlib.nullcontext, 0.0))
    gan.eval()
    return logs


# ---------------------------------------------------------------------------- general training (the recipe)
def train_general(shards: str | Path, cfg: Yi2020Config, split: str = "train", max_clips: int | None = None,
                  progress: Any = None) -> Yi2020:
    """face3d, the speaker embedding, ATC-net and the GAN on the shards' clips, in that order."""
    say = progress or log.info
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    targets = targets_from_shards(shards, split, max_clips=max_clips)
    say(f"yi2020: {len(targets)} clips from {shards}")
    if cfg.face3d_artifact:  # the recipe's face3d step (talkbench train face3d)
        model3d = f3.Face3D.load(cfg.face3d_artifact)
        cfg = cfg.model_copy(update={"n_exp": model3d.n_exp, "n_id": model3d.n_id})
        say(f"face3d: {cfg.face3d_artifact}")
    else:
        model3d = fit_face3d(targets, cfg)
        say(f"face3d: {model3d.report}")
    a2p_trained = None
    if cfg.audio_to_pose_checkpoint:  # the recipe's audio_to_pose step (talkbench train audio_to_pose)
        a2p_trained = _trained_audio_net(cfg.audio_to_pose_checkpoint, cfg.face3d_artifact, model3d.n_exp)
        cfg = cfg.model_copy(update={"audio_to_pose": a2p_trained.cfg})
    speakers = sorted({t.speaker for t in targets})
    gan_trained = None
    if cfg.memory_gan_checkpoint:  # the recipe's memory_gan step (talkbench train memory_gan)
        gan_trained = _trained_gan(cfg.memory_gan_checkpoint, cfg.face3d_artifact, cfg.render, say)
    if gan_trained is not None:
        g = gan_trained.cfg
        cfg = cfg.model_copy(update={"identity": g.identity, "speaker_dim_base": g.speaker_dim_base,
                                     "gan": MemoryGANConfig.model_validate(g.model_dump(include=set(MemoryGANConfig.model_fields)))})
    cfg = resolve_identity(cfg, say)
    n_speakers = gan_trained.cfg.n_speakers if gan_trained is not None else len(speakers)
    a2p, gan, spk = build_nets(cfg, n_speakers)
    hist: dict[str, Any] = {"face3d": model3d.report, "identity_feature": ARCFACE if cfg.identity == "arcface"
                            else "speaker embedding trained on the shards"}
    if gan_trained is not None:
        gan.load_state_dict(gan_trained.gan.state_dict())
        if gan_trained.speaker is not None:
            spk.load_state_dict(gan_trained.speaker.state_dict())
        hist["memory_gan"] = cfg.memory_gan_checkpoint
    elif cfg.identity == "speaker":
        hist["speaker_loss"] = train_speaker(spk, [t.crops[t.valid] for t in targets],
                                             [speakers.index(t.speaker) for t in targets], cfg.speaker, cfg.seed)
    ident_net = identity_encoder(cfg, spk)
    hops = cfg.audio_to_pose.window_hops
    seqs, gan_data = [], []
    for t in targets:
        y, neutral = coefficients(model3d, t)
        seqs.append((mfcc_blocks(t.mfcc, hops), model3d.normalise(y), t.valid))
        if gan_trained is None:  # renders only to train the GAN here
            app = appearance_of(t, neutral)
            rendered = render(model3d, app, y, cfg.gan.image_size, cfg.render, crop_matrices=t.crop_matrix)
            gan_data.append((rendered, t.crops, identity_feature(ident_net, t.crops[t.valid])))
    if a2p_trained is not None:
        a2p.load_state_dict(a2p_trained.state_dict())
        hist["audio_loss"], hist["audio_to_pose"] = [], cfg.audio_to_pose_checkpoint
    else:
        hist["audio_loss"] = train_audio(a2p, seqs, cfg.general_audio, cfg.audio_loss, cfg.n_exp, cfg.seq_len, cfg.seed)
    say(f"audio_to_pose: {len(hist['audio_loss'])} steps, last loss {hist['audio_loss'][-1]:.4g}" if hist["audio_loss"] else "audio_to_pose: 0 steps")
    gan_logs = train_gan(gan, gan_data, cfg.general_gan, cfg.gan_loss, cfg.seed) if gan_trained is None else []
    hist["gan_l1"] = [g["l1"] for g in gan_logs]
    say(f"memory_gan: {len(gan_logs)} steps" + (f", last L1 {gan_logs[-1]['l1']:.4g}" if gan_logs else ""))
    hist["elapsed_s"] = time.perf_counter() - t0
    from talkbench.models.data import ShardIndex

    pc = ShardIndex(shards).manifest.get("config") or {}
    return Yi2020(cfg, model3d, a2p, gan, spk, pipeline_config={k: pc[k] for k in ("landmarks", "pose", "audio_features")
                                                                 if k in pc}, history=hist)


def _trained_audio_net(path: str, face3d_artifact: str, n_exp: int) -> AudioToPose:
    """An ``audio_to_pose`` checkpoint for the bundle: its targets must be this bundle's face3d coefficients."""
    from talkbench.models.checkpoint import load_model

    net, meta = load_model(path, expect="audio_to_pose")
    trained_on = json.loads(meta.get("run_config", "{}")).get("loss", {}).get("face3d", "")
    if not face3d_artifact or not trained_on or Path(trained_on).resolve() != Path(face3d_artifact).resolve():
        raise TalkbenchError(f"{path} was trained on face3d {trained_on or '(fitted on the fly)'}; the bundle needs "
                             f"the same artifact: set face3d_artifact={trained_on or 'ARTIFACT'} (and train "
                             "audio_to_pose with loss.face3d=ARTIFACT)")
    if net.cfg.n_exp != n_exp or net.cfg.n_pose != f3.TARGET_DIM_POSE:
        raise TalkbenchError(f"{path}: {net.cfg.n_exp} + {net.cfg.n_pose} outputs, face3d has {n_exp} + 6")
    return net


def _trained_gan(path: str, face3d_artifact: str, render_mode: str, say: Any) -> Any:
    """A ``memory_gan`` checkpoint for the bundle (None when it was trained on another render mode: the
    sketch ablation then trains its GAN here). Its renders must come from this bundle's face3d."""
    from talkbench.models.checkpoint import load_model

    model, meta = load_model(path, expect="memory_gan")
    loss = json.loads(meta.get("run_config", "{}")).get("loss", {})
    trained_on = loss.get("face3d", "")
    if not face3d_artifact or not trained_on or Path(trained_on).resolve() != Path(face3d_artifact).resolve():
        raise TalkbenchError(f"{path} was trained on face3d {trained_on or '(fitted on the fly)'}; the bundle needs "
                             f"the same artifact: set face3d_artifact={trained_on or 'ARTIFACT'} (and train "
                             "memory_gan with loss.face3d=ARTIFACT)")
    if loss.get("render", "shaded") != render_mode:
        say(f"{path} was trained on {loss.get('render', 'shaded')} renders: training the GAN here on {render_mode}")
        return None
    return model


# ---------------------------------------------------------------------------- personalisation
def personalize(general: Yi2020, video: str | Path | Target, frames: int = 300,
                overrides: dict[str, Any] | None = None, progress: Any = None) -> tuple[Yi2020, Target]:
    """Fit the target's identity (neutral shape, vertex colours, identity feature) on its first ``frames``
    frames and fine-tune ATC-net and the GAN on them (published: 300 frames, lambda_mask 2).
    ``video`` is a file, or a :class:`Target` already prepared (the benchmark adapter's case)."""
    say = progress or log.info
    cfg = general.cfg.model_copy(update=overrides or {}) if overrides else general.cfg
    torch.manual_seed(cfg.seed)
    # only the fine-tuning frames are read: nothing of the held-out rest (not even the head box) leaks in
    target = video if isinstance(video, Target) else prepare_target(
        video, cfg.head_size, cfg.head_margin, general.pipeline_config, max_frames=frames)
    if len(target) < frames:
        say(f"{video}: {len(target)} frames, fewer than the {frames} asked for: fine-tuning on all of them")
    part = target.head(min(frames, len(target)))
    if part.valid.sum() < cfg.seq_len:
        raise TalkbenchError(f"{video}: only {int(part.valid.sum())} frames with a face in the first {len(part)}; "
                             f"need at least {cfg.seq_len}")
    import dataclasses

    # the same bases; the 70-d normalisation re-fitted on the target's own frames. Its head motion is
    # what is personal, and its expression statistics too: kept from the general model (other speakers,
    # another camera), the target's expression targets sat at ~2.5 std, their MSE ~30x the pose MSE, and
    # the fine-tuning spent itself on expression while the predicted pose stayed flat (0.004 deg at tiny)
    m3 = dataclasses.replace(general.face3d, report=dict(general.face3d.report))
    y, neutral = coefficients(m3, part)
    m3.set_normalisation(y[part.valid])
    app = appearance_of(part, neutral)
    a2p, gan, spk = build_nets(cfg, general.speaker_net.classifier.out_features)
    a2p.load_state_dict(general.audio_net.state_dict())
    gan.load_state_dict(general.gan.state_dict())
    spk.load_state_dict(general.speaker_net.state_dict())
    ident = identity_feature(identity_encoder(cfg, spk), part.crops[part.valid])
    hist: dict[str, Any] = {"frames": len(part)}
    if cfg.ablation != "no_personalisation":
        hops = cfg.audio_to_pose.window_hops
        hist["audio_loss"] = train_audio(a2p, [(mfcc_blocks(part.mfcc, hops), m3.normalise(y), part.valid)],
                                         cfg.finetune_audio, cfg.audio_loss, cfg.n_exp, cfg.seq_len, cfg.seed)
        rendered = render(m3, app, y, cfg.gan.image_size, cfg.render)
        ft_loss = cfg.gan_loss.model_copy(update={"mask": cfg.finetune_mask})
        hist["gan_l1"] = [g["l1"] for g in train_gan(gan, [(rendered, part.crops, ident)], cfg.finetune_gan, ft_loss,
                                                     cfg.seed)]
        say(f"fine-tuned on {len(part)} frames: audio loss {hist['audio_loss'][0]:.4g} -> {hist['audio_loss'][-1]:.4g}"
            if hist["audio_loss"] else f"fine-tuned on {len(part)} frames")
    personal = Yi2020(cfg, m3, a2p, gan, spk, kind="personal", appearance=app, identity=ident,
                      poses=part.pose[part.valid].astype(np.float32), pipeline_config=general.pipeline_config,
                      history={"general": general.history, "personalise": hist})
    return personal, target


# ---------------------------------------------------------------------------- generation
@torch.no_grad()
def predict_coefficients(model: Yi2020, audio: np.ndarray) -> np.ndarray:
    """16 kHz audio -> (T, 70) expression + pose, T = round(duration * 25); ``no_pose``: first pose held."""
    from talkbench.pipelines.audio import mfcc_from_audio

    n = round(len(audio) / SAMPLE_RATE * FPS)
    if n < 1:
        raise TalkbenchError("the audio is shorter than one video frame")
    mfcc = mfcc_from_audio(np.asarray(audio, np.float32), SAMPLE_RATE, n, model.pipeline_config.get("audio_features"))
    win = torch.from_numpy(mfcc_blocks(mfcc, model.cfg.audio_to_pose.window_hops))[None]
    z = model.audio_net.eval()(win)[0].numpy()  # the LSTM runs over the whole clip (state carried)
    y = model.face3d.denormalise(z)
    if model.cfg.ablation == "no_pose" and model.poses is not None and len(model.poses):
        y[:, model.face3d.n_exp :] = model.poses[0]
    return y


@torch.no_grad()
def generate_frames(model: Yi2020, audio: np.ndarray) -> dict[str, np.ndarray]:
    """Personalised checkpoint + audio -> head-crop frames (T, S, S, 3) uint8, the renders and the coefficients."""
    if model.kind != "personal":
        raise TalkbenchError("generation needs a personalised yi2020 checkpoint: run `talkbench personalize` first")
    y = predict_coefficients(model, audio)
    size = model.cfg.gan.image_size
    rendered = render(model.face3d, model.appearance, y, size, model.cfg.render)
    window = _stack_window(_img(rendered, size), model.cfg.gan.n_window)
    own = torch.from_numpy(model.identity.astype(np.float32))
    frames = []
    gan = model.gan.eval()
    for s in range(0, len(window), 64):
        r = window[s : s + 64]
        ident = gan.identity_for(r, own.expand(len(r), -1))
        frames.append(((gan(r, ident)["frames"].clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy())
    return {"frames": np.concatenate(frames), "rendered": rendered, "coefficients": y}


def blend_into_frames(head: np.ndarray, rendered: np.ndarray, coeffs: np.ndarray, target: Target,
                      model: Yi2020) -> np.ndarray:
    """Full frames: each generated head crop is pasted into the target frame of nearest head rotation
    (L1 over yaw, pitch, roll, as the authors' background choice) inside the rendered face region
    (dilated, feathered); the rest of the frame is that target frame."""
    import cv2

    if target.frames is None:
        raise TalkbenchError("full frames need the target video's frames")
    n_exp = model.face3d.n_exp
    pool = np.flatnonzero(target.valid)
    rot = target.pose[pool, :3].astype(np.float64)
    h, w = target.frame_hw
    m = model.appearance.crop_matrix
    size = head.shape[1]
    inv = cv2.invertAffineTransform((m * (size / model.appearance.crop_size)).astype(np.float64))
    b = max(1, size // 32)
    out = np.empty((len(head), h, w, 3), np.uint8)
    for i, img in enumerate(head):
        face = (rendered[i].max(-1) > 0).astype(np.uint8)
        face = cv2.dilate(face, np.ones((2 * b + 1, 2 * b + 1), np.uint8))
        feather = cv2.GaussianBlur(face.astype(np.float32), (0, 0), b)
        j = pool[np.abs(rot - coeffs[i, n_exp : n_exp + 3]).sum(1).argmin()]
        bg = target.frames[j].astype(np.float32)
        fg = cv2.warpAffine(img, inv, (w, h), flags=cv2.INTER_LINEAR).astype(np.float32)
        a = cv2.warpAffine(feather, inv, (w, h), flags=cv2.INTER_LINEAR)[..., None]
        out[i] = np.clip(a * fg + (1 - a) * bg, 0, 255).astype(np.uint8)
    return out


def pose_variation(coeffs: np.ndarray, n_exp: int) -> float:
    """Mean std over frames of the predicted rotations (degrees): 0 for a constant pose."""
    return float(np.asarray(coeffs)[:, n_exp : n_exp + 3].std(0).mean()) if len(coeffs) > 1 else math.nan


# ---------------------------------------------------------------------------- the generator protocol
class Yi2020Options(StrictModel):
    """What ``talkbench generate --option`` / ``checkpoint:CKPT?k=v`` may pass to a yi2020 checkpoint."""

    video: str | None = Field(None, description="the target video: full frames, each generated head blended "
                              "into its fine-tuning frame of nearest head rotation (talkbench generate --video)")
    preset: Literal["tiny", "small", "paper"] | None = Field(
        None, description="personalised tasks: fine-tune with this preset's steps (default: the checkpoint's)")


def _finetune_overrides(options: Yi2020Options | None) -> dict[str, Any] | None:
    if options is None or options.preset is None:
        return None
    p = preset(options.preset)
    return {k: getattr(p, k) for k in ("finetune_audio", "finetune_gan", "finetune_mask")}


def personalize_hook(model: Yi2020, frames: np.ndarray, audio: np.ndarray, options: Yi2020Options | None) -> Yi2020:
    """The spec's personalise hook (personalized benchmark tasks, per clip): fine-tune the general model on
    the clip's frames; the result keeps the prepared target, so its frames are the blending background."""
    if model.kind != "general":
        raise TalkbenchError("this yi2020 checkpoint is already personalised; submit the general checkpoint")
    cfg = model.cfg
    target = target_from_arrays(np.asarray(frames), audio, cfg.head_size, cfg.head_margin, model.pipeline_config)
    personal, target = personalize(model, target, len(frames), _finetune_overrides(options))
    personal.target = target
    return personal


def generate(model: Yi2020, inputs: Any) -> np.ndarray:
    """The spec's generate entry (``inputs``: :class:`talkbench.models.generate.GenerationInputs`): audio ->
    head crops; full frames when the target's frames are known (``video`` option, or a model personalised
    in this process by the benchmark's personalise call)."""
    if abs(inputs.fps - FPS) > 1e-6:
        raise TalkbenchError(f"yi2020 makes {FPS:g} fps video; {inputs.fps:g} fps was asked for")
    res = generate_frames(model, inputs.audio)
    target = model.target
    video = getattr(inputs.options, "video", None)
    if video is not None:
        if not Path(video).is_file():
            raise TalkbenchError(f"target video not found: {video}")
        # the background pool is the fine-tuning frames (the personalised part of the target video)
        n_ft = (model.history.get("personalise") or {}).get("frames")
        target = prepare_target(video, model.cfg.head_size, model.cfg.head_margin, model.pipeline_config,
                                max_frames=n_ft)
    if target is None:
        return res["frames"]
    return blend_into_frames(res["frames"], res["rendered"], res["coefficients"], target, model)


def load_checkpoint(folder: str | Path, device: str | torch.device = "cpu") -> Yi2020:
    """The spec's loader. The nets stay on the CPU whatever ``device``: generation is dominated by the
    NumPy rasteriser and the per-target fine-tuning of tiny/small presets."""
    if str(device) != "cpu":
        log.info("yi2020 runs on the CPU (asked for %s)", device)
    return Yi2020.load(folder)


# ---------------------------------------------------------------------------- recipe step
def recipe_step(step: Any, ctx: Any) -> Path:
    """The ``yi2020`` recipe step kind: train the general checkpoint on the recipe's shards.

    ``step.overrides`` are ``key=value`` strings of :class:`Yi2020Config`; ``preset=NAME`` picks the
    preset they apply to (default tiny). A finished step (its checkpoint folder exists) is skipped.
    """
    from talkbench.config import apply_overrides

    over = apply_overrides({}, list(step.overrides))
    name = over.pop("preset", "tiny")
    out = Path(ctx.work) / step.name
    if (out / MANIFEST).is_file():
        ctx.echo(f"{step.name}: done earlier ({out})")
        return out
    cfg = preset(name, over)
    flags = " ".join(f"-o {o}" for o in step.overrides if not o.startswith("preset="))
    ctx.echo(f"\n$ talkbench yi2020 train --shards {ctx.shards} --preset {name} --out {out} {flags}".rstrip())
    model = train_general(ctx.shards, cfg, progress=ctx.echo)
    return model.save(out)


def _check_step(step: Any) -> None:
    """Recipe check hook of the yi2020 and face3d step kinds: the overrides resolve into a valid config before anything trains."""
    from talkbench.config import apply_overrides

    over = apply_overrides({}, list(step.overrides))
    over.pop("out", None)
    if step.kind == "yi2020":
        preset(over.pop("preset", "tiny"), over)
    else:
        f3.Face3DConfig.model_validate(over)


recipe_step.check = _check_step  # type: ignore[attr-defined]

SPEC = ModelSpec(
    module=Yi2020, config=Yi2020Config, objective=None, generate=generate, generate_options=Yi2020Options,
    load=load_checkpoint, personalize=personalize_hook, reference=False,
    description="Yi et al. 2020 (seed 001): a bundle of face3d, audio_to_pose and memory_gan, personalised per "
                "target (talkbench personalize) before it generates; written by the yi2020 recipe step",
)
