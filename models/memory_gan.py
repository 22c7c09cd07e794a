"""``memory_gan``: Yi et al.'s memory-augmented GAN, rendered face frames -> photo-real frames.

Authors' design (render-to-video/models/memory_seq_model.py, networks.py, memory_network.py @8ebc028):

* input: the Nw = 3 latest rendered frames stacked (9 channels);
* generator: a U-Net whose decoder normalisation is AdaIN, its scale and shift predicted from a
  512-d identity feature; two heads: an image and an attention mask A (sigmoid);
  output = A * (last rendered frame) + (1 - A) * image;
* discriminator: PatchGAN 70x70 on (9 rendered + 3 output) channels, vanilla GAN loss;
* generator loss: GAN + 100 * L1 + lambda_mask * mean(A) (0.1 general, 2 fine-tuning) + 1e-5 * TV(A);
* memory: slots of (key = normalised query feature of the rendered input, value = identity feature,
  age); training pulls a query towards a slot whose value agrees with its identity (cos > threshold)
  and away from the nearest slot that does not (hinge with margin alpha); the update merges the query
  into the top-1 slot when its value agrees, else replaces the oldest slot (age + uniform noise).
  At test time the top-1 retrieved value drives AdaIN. Published defaults: 30,000 slots, top-k 256,
  margin 0.3, threshold 0.98.

talkbench differences (SEEDS-DESIGN §B): the query encoder is a small CNN trained with the margin loss
(the authors use a frozen ImageNet ResNet-18 + linear, and no ImageNet weights are available offline);
the identity feature comes from ArcFace when the weights store has it, else from a speaker-ID
embedding trained on the shards (:class:`SpeakerEmbedding`). GroupNorm replaces BatchNorm in the
encoder so results do not depend on the batch size.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from talkbench.config import StrictModel
from talkbench.errors import ConfigError
from talkbench.models.data import DataSpec
from talkbench.models.layers import norm
from talkbench.models.objective import Objective
from talkbench.models.registry import ModelSpec

log = logging.getLogger(__name__)


class MemoryConfig(StrictModel):
    enabled: bool = Field(True, description="false = ablation 'no memory': AdaIN from the target's own identity feature")
    slots: int = Field(30_000, ge=1, description="published: 30,000")
    key_dim: int = Field(512, ge=1)
    top_k: int = Field(256, ge=1, description="published: 256 neighbours in the margin loss")
    margin: float = Field(0.3, ge=0.0, description="published alpha: 0.3")
    threshold: float = Field(0.98, ge=-1.0, le=1.0, description="values agree when their cosine exceeds this")
    age_noise: float = Field(4.0, ge=0.0, description="uniform noise on the age when choosing the slot to replace")


class MemoryGANConfig(StrictModel):
    image_size: int = Field(256, ge=16, description="published: 256 (crop of 286)")
    n_window: int = Field(3, ge=1, description="consecutive rendered frames in the input (Nw)")
    base_channels: int = Field(64, ge=1)
    levels: int = Field(8, ge=2, description="U-Net depth; 8 halvings = unet_256")
    id_dim: int = Field(512, ge=1, description="identity feature size (ArcFace: 512)")
    disc_channels: int = Field(64, ge=1)
    disc_layers: int = Field(3, ge=1, description="PatchGAN n_layers; 3 = 70x70 receptive field")
    memory: MemoryConfig = Field(default_factory=MemoryConfig)


class MemoryGANLossConfig(StrictModel):
    l1: float = Field(100.0, ge=0.0)
    mask: float = Field(0.1, ge=0.0, description="lambda_mask: 0.1 general training, 2 for fine-tuning")
    mask_tv: float = Field(1e-5, ge=0.0)
    gan: float = Field(1.0, ge=0.0)
    memory: float = Field(1.0, ge=0.0, description="weight of the memory's margin loss on the query encoder")


# ---------------------------------------------------------------------------- memory
class KeyValueMemory(nn.Module):
    """Slots of (unit key, unit value, age); buffers, not parameters: only the update rule writes them."""

    def __init__(self, cfg: MemoryConfig, value_dim: int, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("keys", F.normalize(torch.rand(cfg.slots, cfg.key_dim, generator=g) * 0.02 - 0.01, dim=1))
        self.register_buffer("values", F.normalize(torch.rand(cfg.slots, value_dim, generator=g) * 0.01, dim=1))
        self.register_buffer("age", torch.zeros(cfg.slots))

    def scores(self, query: torch.Tensor) -> torch.Tensor:
        return query @ self.keys.t()

    def margin_loss(self, query: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Hinge ``max(0, s_neg - s_pos + margin)`` over the top-k neighbours of each (unit) query:
        s_pos = best score among slots whose value agrees with ``value`` (cos > threshold), s_neg =
        best among those that do not (0 where there is none, as the authors' masked top-1)."""
        k = min(self.cfg.top_k, self.cfg.slots)
        top, idx = self.scores(query).topk(k, dim=1)
        agree = ((self.values[idx] * F.normalize(value, dim=1)[:, None]).sum(-1) > self.cfg.threshold).to(top.dtype)
        pos = (top * agree).max(dim=1).values
        neg = (top * (1 - agree)).max(dim=1).values
        return (neg - pos + self.cfg.margin).clamp_min(0).mean()

    @torch.no_grad()
    def update(self, query: torch.Tensor, value: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, int]:
        """Merge into the top-1 slot when its value agrees (key += query, renormalised, age 0), else
        write (query, value) into the oldest slots (age + noise); every slot ages by one."""
        query, value = F.normalize(query.detach(), dim=1), F.normalize(value.detach(), dim=1)
        top1 = self.scores(query).argmax(dim=1)
        agree = (self.values[top1] * value).sum(-1) > self.cfg.threshold
        self.age += 1.0
        merge = top1[agree]
        if len(merge):
            self.keys.index_add_(0, merge, query[agree])
            self.keys[merge] = F.normalize(self.keys[merge], dim=1)
            self.age[merge] = 0.0
        n_new = int((~agree).sum())
        if n_new:
            noise = torch.rand(self.cfg.slots, generator=generator) * 2 - 1 if self.cfg.age_noise > 0 else 0.0
            old = (self.age + noise * self.cfg.age_noise).topk(n_new).indices
            self.keys[old] = query[~agree]
            self.values[old] = value[~agree]
            self.age[old] = 0.0
        return {"merged": int(agree.sum()), "replaced": n_new}

    def read(self, query: torch.Tensor) -> torch.Tensor:
        """The top-1 slot's value per query: the identity feature that drives AdaIN at test time."""
        return self.values[self.scores(query).argmax(dim=1)]


# ---------------------------------------------------------------------------- networks
class AdaIN(nn.Module):
    """Instance-normalise, then scale and shift with parameters predicted from the identity feature."""

    def __init__(self, channels: int, id_dim: int):
        super().__init__()
        self.affine = nn.Linear(id_dim, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        with torch.no_grad():
            self.affine.bias[:channels].fill_(1.0)
            self.affine.bias[channels:].zero_()

    def forward(self, x: torch.Tensor, ident: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(ident).chunk(2, dim=1)
        x = F.instance_norm(x) if x.shape[-1] * x.shape[-2] > 1 else x - x.mean(dim=(2, 3), keepdim=True)
        return x * gamma[:, :, None, None] + beta[:, :, None, None]


def _chs(base: int, levels: int) -> list[int]:
    return [base * min(2**i, 8) for i in range(levels)]


class AdaINUNet(nn.Module):
    """U-Net (pix2pix unet_256 layout at levels=8) whose decoder normalisation is AdaIN; two heads."""

    def __init__(self, cfg: MemoryGANConfig):
        super().__init__()
        if cfg.image_size % 2**cfg.levels:
            raise ValueError(f"image_size {cfg.image_size} must be divisible by 2**levels = {2**cfg.levels}")
        chs = _chs(cfg.base_channels, cfg.levels)
        cin = 3 * cfg.n_window
        self.downs = nn.ModuleList()
        for i, c in enumerate(chs):
            layers: list[nn.Module] = [nn.Conv2d(cin, c, 4, 2, 1)]
            if 0 < i < len(chs) - 1:
                layers.append(norm(c))
            self.downs.append(nn.Sequential(*layers))
            cin = c
        self.ups = nn.ModuleList()
        self.adain = nn.ModuleList()
        for i in reversed(range(1, cfg.levels)):
            up_in = chs[i] if i == cfg.levels - 1 else 2 * chs[i]
            self.ups.append(nn.ConvTranspose2d(up_in, chs[i - 1], 4, 2, 1))
            self.adain.append(AdaIN(chs[i - 1], cfg.id_dim))
        self.to_image = nn.ConvTranspose2d(2 * chs[0], 3, 4, 2, 1)
        self.to_mask = nn.ConvTranspose2d(2 * chs[0], 1, 4, 2, 1)

    def forward(self, x: torch.Tensor, ident: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skips = []
        for i, layer in enumerate(self.downs):
            x = layer(x if i == 0 else F.leaky_relu(x, 0.2))
            skips.append(x)
        y = skips[-1]
        for k, (up, ada) in enumerate(zip(self.ups, self.adain, strict=True)):
            y = ada(up(F.relu(y)), ident)
            y = torch.cat([y, skips[-2 - k]], dim=1)
        y = F.relu(y)
        return torch.tanh(self.to_image(y)), torch.sigmoid(self.to_mask(y))


class PatchDiscriminator(nn.Module):
    """pix2pix's NLayerDiscriminator (70x70 patches at 3 layers) on (rendered window ++ frame)."""

    def __init__(self, in_channels: int, base: int, n_layers: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = base
        for i in range(1, n_layers + 1):
            c_out = base * min(2**i, 8)
            layers += [nn.Conv2d(c, c_out, 4, 2 if i < n_layers else 1, 1), norm(c_out), nn.LeakyReLU(0.2)]
            c = c_out
        layers.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class QueryEncoder(nn.Module):
    """Rendered window -> unit key (the authors: frozen ImageNet ResNet-18 + a trained linear)."""

    def __init__(self, in_channels: int, base: int, key_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, base, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(base, 2 * base, 4, 2, 1), norm(2 * base), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * base, 4 * base, 4, 2, 1), norm(4 * base), nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * base, key_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=1)


class SpeakerEmbedding(nn.Module):
    """The identity feature without ArcFace weights: a face CNN trained as a speaker classifier on the
    shards; the unit 512-d embedding before the classifier is the feature."""

    def __init__(self, n_speakers: int, dim: int = 512, base: int = 32, image_size: int = 64):
        super().__init__()
        self.image_size = image_size
        self.net = nn.Sequential(
            nn.Conv2d(3, base, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(base, 2 * base, 4, 2, 1), norm(2 * base), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * base, 4 * base, 4, 2, 1), norm(4 * base), nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * base, dim),
        )
        self.classifier = nn.Linear(dim, max(n_speakers, 1))

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        if faces.shape[-1] != self.image_size:
            faces = F.interpolate(faces, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return F.normalize(self.net(faces), dim=1)


class MemoryGAN(nn.Module):
    Config = MemoryGANConfig

    def __init__(self, cfg: MemoryGANConfig):
        super().__init__()
        self.cfg = cfg
        self.generator = AdaINUNet(cfg)
        self.discriminator = PatchDiscriminator(3 * cfg.n_window + 3, cfg.disc_channels, cfg.disc_layers)
        self.query = QueryEncoder(3 * cfg.n_window, cfg.base_channels, cfg.memory.key_dim)
        self.memory = KeyValueMemory(cfg.memory, cfg.id_dim)

    def forward(self, rendered: torch.Tensor, ident: torch.Tensor) -> dict[str, torch.Tensor]:
        """rendered (B, 3 Nw, S, S) in [-1, 1], newest frame last; ident (B, id_dim) -> output, image, mask."""
        image, mask = self.generator(rendered, ident)
        last = rendered[:, -3:]
        return {"frames": mask * last + (1 - mask) * image, "image": image, "mask": mask}

    def identity_for(self, rendered: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
        """Test time: the memory's top-1 value for the rendered input (or ``fallback`` without memory)."""
        if not self.cfg.memory.enabled:
            return fallback
        return self.memory.read(self.query(rendered))


def total_variation(a: torch.Tensor) -> torch.Tensor:
    """Sum of absolute neighbour differences of the mask, averaged over the batch (pix2pix-TV as theirs)."""
    return ((a[..., 1:, :] - a[..., :-1, :]).abs().sum() + (a[..., :, 1:] - a[..., :, :-1]).abs().sum()) / a.shape[0]


def generator_loss(out: dict[str, torch.Tensor], real: torch.Tensor, d_fake: torch.Tensor,
                   cfg: MemoryGANLossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """GAN + l1 * L1 + mask * mean(A) + mask_tv * TV(A)."""
    gan = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
    l1 = (out["frames"] - real).abs().mean()
    mean_a = out["mask"].mean()
    tv = total_variation(out["mask"])
    loss = cfg.gan * gan + cfg.l1 * l1 + cfg.mask * mean_a + cfg.mask_tv * tv
    return loss, {"g_loss": loss.item(), "g_gan": gan.item(), "l1": l1.item(), "mask_mean": mean_a.item(),
                  "mask_tv": tv.item()}


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))


# ---------------------------------------------------------------------------- training (talkbench train)
class MemoryGANTrainConfig(MemoryGANConfig):
    """The GAN plus where its identity feature comes from (the trained checkpoint records the resolved one)."""

    identity: Literal["auto", "arcface", "speaker"] = Field(
        "auto", description="AdaIN identity feature: ArcFace (arcface-iresnet50 in the weights store), a speaker-ID "
        "embedding trained here on the shards, or auto (ArcFace when the store has it)")
    n_speakers: int = Field(256, ge=1, description="speaker classes of the embedding (>= the shards' speakers)")
    speaker_dim_base: int = Field(32, ge=1)


class MemoryGANModel(nn.Module):
    """What ``talkbench train memory_gan`` trains: the GAN, and the speaker embedding when ArcFace is absent.
    ``identity: auto`` is resolved here, so the checkpoint's config says which feature was used."""

    Config = MemoryGANTrainConfig

    def __init__(self, cfg: MemoryGANTrainConfig):
        super().__init__()
        from talkbench.models.arcface import arcface_identity, identity_source

        source = identity_source(cfg.identity, log.warning)
        update: dict[str, Any] = {"identity": source}
        if source == "arcface" and cfg.identity == "auto":
            update["id_dim"] = arcface_identity().dim
        self.cfg = cfg = cfg.model_copy(update=update)
        if source == "arcface" and cfg.id_dim != arcface_identity().dim:
            raise ConfigError(f"model.id_dim={cfg.id_dim} but ArcFace gives {arcface_identity().dim}-d features")
        self.gan = MemoryGAN(MemoryGANConfig.model_validate(cfg.model_dump(include=set(MemoryGANConfig.model_fields))))
        self.speaker = (SpeakerEmbedding(cfg.n_speakers, cfg.id_dim, cfg.speaker_dim_base, min(64, cfg.image_size))
                        if source == "speaker" else None)


class _GeneratorSide(nn.Module):
    """The generator and the memory's query encoder as one trainable part (one optimizer, DDP-wrappable)."""

    def __init__(self, gan: MemoryGAN):
        super().__init__()
        self.generator, self.query = gan.generator, gan.query
        self.n_window = gan.cfg.n_window

    def forward(self, rendered: torch.Tensor, ident: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        image, mask = self.generator(rendered, ident)
        frames = mask * rendered[:, -3:] + (1 - mask) * image
        return {"frames": frames, "image": image, "mask": mask}, self.query(rendered)


class MemoryGANLossTrainConfig(MemoryGANLossConfig):
    """The memory GAN's loss weights plus what ``talkbench train`` needs to build its inputs: the face3d
    artifact and how its coefficients are rendered (``sketch``: the yi2020 recipe's ablation)."""

    face3d: str = Field("", description="the face3d artifact whose coefficients are rendered (talkbench train "
                        "face3d); empty: fit one on the training split (closed form)")
    render: Literal["shaded", "sketch"] = "shaded"


class MemoryGANObjective(Objective):
    """The memory GAN on the shards: each clip's frames rendered from its face3d coefficients (its own vertex
    colours) -> its head crops. Groups: generator (+ query encoder: GAN + L1 + mask terms + the memory's
    margin loss), discriminator (PatchGAN), speaker (cross-entropy, without ArcFace); after each step the
    memory takes the batch's (query, identity) pairs."""

    LossConfig = MemoryGANLossTrainConfig

    def __init__(self, model_cfg, loss_cfg, data_cfg):
        super().__init__(model_cfg, loss_cfg, data_cfg)
        self._model: MemoryGANModel | None = None
        self._face3d: Any = None
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None
        self._gen = torch.Generator().manual_seed(data_cfg.seed)

    @property
    def groups(self) -> tuple[str, ...]:  # type: ignore[override]
        speaker = self._model.speaker is not None if self._model is not None else self.model_cfg.identity == "speaker"
        return ("generator", "discriminator", "speaker") if speaker else ("generator", "discriminator")

    def data_spec(self) -> DataSpec:
        return DataSpec()

    def parts(self, model: Any) -> dict[str, nn.Module]:
        """``model``: a :class:`MemoryGANModel`, or anything with ``gan`` and ``speaker`` (yi2020's fine-tuning)."""
        self._model = model
        parts: dict[str, nn.Module] = {"generator": _GeneratorSide(model.gan), "discriminator": model.gan.discriminator}
        if model.speaker is not None:
            parts["speaker"] = model.speaker
        return parts

    def make_dataset(self, index: Any, spec: DataSpec, cfg: Any, *, split: str, train: bool, rank: int = 0,
                     world_size: int = 1, batch_size: int = 1, skip_batches: int = 0) -> Any:
        from talkbench.models import face3d as f3
        from talkbench.models import yi2020_data as data

        clips = data.targets_from_shards(index.root, split, tuple(cfg.statuses))
        if self._face3d is None:
            self._face3d = (f3.Face3D.load(self.loss_cfg.face3d) if self.loss_cfg.face3d
                            else f3.fit([data.clip_shapes(t) for t in clips]))
        speakers = sorted({c["speaker_id"] or c["clip_id"] for c in index.clips})
        if len(speakers) > self.model_cfg.n_speakers:
            raise ConfigError(f"{len(speakers)} speakers in {index.root}; set model.n_speakers={len(speakers)}")
        size, out = self.model_cfg.image_size, []
        for t in clips:
            y, neutral = data.coefficients(self._face3d, t)
            rendered = data.render(self._face3d, data.appearance_of(t, neutral), y, size, self.loss_cfg.render,
                                   crop_matrices=t.crop_matrix)
            real = t.crops if t.crops.shape[1] == size else _resize(t.crops, size)
            label = speakers.index(t.speaker) if t.speaker in speakers else 0
            out.append({"rendered": rendered, "real": real, "speaker": np.full(len(t), label, np.int64),
                        "mask": t.valid})
        return data.ClipSlices(out, self.model_cfg.n_window, train, cfg.seed, rank, batch_size, skip_batches)

    def random_batch(self, seq_len: int, batch_size: int) -> dict[str, torch.Tensor]:
        """Random tensors of a batch's shapes (``talkbench perf training``)."""
        s, w = self.model_cfg.image_size, self.model_cfg.n_window
        return {"rendered": torch.randint(0, 255, (batch_size, w, s, s, 3), dtype=torch.uint8),
                "real": torch.randint(0, 255, (batch_size, w, s, s, 3), dtype=torch.uint8),
                "speaker": torch.zeros(batch_size, w, dtype=torch.long), "mask": torch.ones(batch_size, w, dtype=torch.bool)}

    def _inputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rendered window (B, 3 Nw, S, S), the newest real frame (B, 3, S, S), its identity feature).
        The loader's batches hold uint8 frame slices; yi2020's fine-tuning passes the float tensors and the
        target's fixed ``identity``."""
        rend, real = batch["rendered"], batch["real"]
        if rend.dtype == torch.uint8:
            rend = rend.float().div(127.5).sub(1).permute(0, 1, 4, 2, 3).flatten(1, 2)
            real = real[:, -1].float().div(127.5).sub(1).permute(0, 3, 1, 2)
        if "identity" in batch:
            return rend, real, batch["identity"]
        with torch.no_grad():
            if self._model.speaker is not None:
                ident = self._model.speaker(real)
            else:
                from talkbench.models.arcface import arcface_identity

                ident = arcface_identity()(real.cpu()).to(real.device)
        return rend, real, ident

    def loss(self, group, parts, batch):
        rend, real, ident = self._inputs(batch)
        if group == "speaker":
            logits = parts["speaker"].classifier(parts["speaker"](real) * 8.0)
            loss = F.cross_entropy(logits, batch["speaker"][:, -1])
            return loss, {"speaker_ce": loss.item()}
        if group == "discriminator":
            with torch.no_grad():
                fake = parts["generator"](rend, ident)[0]["frames"]
            d = parts["discriminator"]
            loss = discriminator_loss(d(torch.cat([rend, real], 1)), d(torch.cat([rend, fake], 1)))
            return loss, {"d_loss": loss.item()}
        out, query = parts["generator"](rend, ident)
        loss, logs = generator_loss(out, real, parts["discriminator"](torch.cat([rend, out["frames"]], 1)), self.loss_cfg)
        memory = self._model.gan.memory
        if self._model.gan.cfg.memory.enabled and self.loss_cfg.memory > 0:
            margin = memory.margin_loss(query, ident)
            loss = loss + self.loss_cfg.memory * margin
            logs["memory_margin"] = margin.item()
        self._last = (query.detach(), ident)
        return loss, logs

    def after_step(self) -> None:
        if self._last is not None and self._model.gan.cfg.memory.enabled:
            self._model.gan.memory.update(*self._last, generator=self._gen)

    @torch.no_grad()
    def validate(self, model, batches):
        l1 = []
        for b in batches:
            rend, real, ident = self._inputs(b)
            l1.append(float((model.gan(rend, model.gan.identity_for(rend, ident))["frames"] - real).abs().mean()))
        return {"val_l1": float(np.mean(l1))}


def _resize(crops: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops])


SPEC = ModelSpec(
    module=MemoryGANModel, config=MemoryGANTrainConfig, objective=MemoryGANObjective,
    description="Yi 2020 memory-augmented GAN (seed 001): 3 rendered face3d frames -> the photo-real frame (AdaIN "
                "U-Net from an ArcFace or speaker-embedding identity, attention mask, PatchGAN, key-value memory).",
    defaults=("data.seq_len=3", "train.batch_size=8", "train.lr=0.0002", "train.betas=[0.5,0.999]"),
    tiny=("model.image_size=32", "model.base_channels=8", "model.levels=4", "model.id_dim=16", "model.disc_channels=8",
          "model.disc_layers=2", "model.memory.slots=64", "model.memory.key_dim=16", "model.memory.top_k=8",
          "model.speaker_dim_base=8", "model.identity=speaker"),
    small=("model.image_size=128", "model.base_channels=32", "model.levels=7", "model.id_dim=256",
           "model.disc_channels=32", "model.memory.slots=4096", "model.memory.key_dim=256", "model.memory.top_k=64"),
    seq_len=3, overfit=(("loss.gan=0", "loss.memory=0"), 60, 3e-3, 2),
    extra={"shards": "face_mesh"},  # tests: real tracked faces (the renders need real landmarks and pose)
)
