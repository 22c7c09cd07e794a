"""The talking-head generator both papers share; only the temporal fusion differs (GRU/LSTM vs TCN-SA).

identity frame -> identity encoder (vector + skip maps); MFCC windows -> audio encoder (per frame);
MFCC windows -> Audio-to-AU (per-AU 64-d features); [identity, audio, AU] per frame -> fusion ->
frame decoder with skip connections from the identity. Every component has a switch for ablations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from talkbench.config import StrictModel
from talkbench.errors import ConfigError
from talkbench.models.audio_to_au import AudioToAU, AudioToAUConfig
from talkbench.models.data import DataSpec
from talkbench.models.discriminator import DiscriminatorConfig, FrameDiscriminator
from talkbench.models.layers import FrameDecoder, ImageEncoder, MfccCNN, to_image
from talkbench.models.objective import Objective, au_metrics, frame_grid, masked_l1
from talkbench.models.registry import ModelSpec
from talkbench.schema import MFCC_DIM


class GeneratorConfig(StrictModel):
    image_size: int = Field(128, ge=8)
    base_channels: int = Field(32, ge=1)
    levels: int = Field(4, ge=1)
    identity_dim: int = Field(256, ge=1)
    audio_dim: int = Field(256, ge=1)
    audio_cnn_channels: list[int] = Field(default_factory=lambda: [32, 64, 128], min_length=1)
    n_coeffs: int = Field(MFCC_DIM, ge=1)
    latent_dim: int = Field(256, ge=1)
    use_audio_encoder: bool = True
    use_audio_to_au: bool = True
    use_skips: bool = True
    audio_to_au: AudioToAUConfig = Field(default_factory=AudioToAUConfig)
    discriminator: DiscriminatorConfig = Field(default_factory=DiscriminatorConfig)


class TalkingHeadGenerator(nn.Module):
    """(identity (B, 3, S, S) in [-1, 1], windows (B, T, C, H)) -> frames (B, T, 3, S, S) in [-1, 1]."""

    def __init__(self, cfg: GeneratorConfig, make_fusion: Callable[[int, int], nn.Module]):
        super().__init__()
        if not (cfg.use_audio_encoder or cfg.use_audio_to_au):
            raise ValueError("the generator needs audio: enable use_audio_encoder or use_audio_to_au")
        self.cfg = cfg
        self.identity_encoder = ImageEncoder(3, cfg.image_size, cfg.base_channels, cfg.levels, cfg.identity_dim)
        self.audio_encoder = MfccCNN(cfg.audio_cnn_channels, cfg.audio_dim) if cfg.use_audio_encoder else None
        self.audio_to_au = None
        if cfg.use_audio_to_au:
            self.audio_to_au = AudioToAU(cfg.audio_to_au.model_copy(update={"n_coeffs": cfg.n_coeffs}))
        fused_in = cfg.identity_dim
        fused_in += cfg.audio_dim if self.audio_encoder is not None else 0
        fused_in += len(cfg.audio_to_au.aus) * cfg.audio_to_au.fc_dims[-1] if self.audio_to_au is not None else 0
        self.fusion = make_fusion(fused_in, cfg.latent_dim)
        skips = self.identity_encoder.channels if cfg.use_skips else None
        self.decoder = FrameDecoder(cfg.latent_dim, cfg.image_size, cfg.base_channels, cfg.levels, skips)

    def forward(self, identity: torch.Tensor, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        b, t = windows.shape[:2]
        id_vec, id_maps = self.identity_encoder(identity)
        parts = [id_vec.unsqueeze(1).expand(b, t, -1)]
        out: dict[str, torch.Tensor] = {}
        if self.audio_encoder is not None:
            parts.append(self.audio_encoder(windows.flatten(0, 1)).view(b, t, -1))
        if self.audio_to_au is not None:
            au = self.audio_to_au(windows)
            parts.append(au["features"].flatten(2))
            out["au_intensity"] = au["intensity"]
        latent = self.fusion(torch.cat(parts, dim=-1))  # (B, T, latent)
        skips = None
        if self.cfg.use_skips:  # the same identity maps for every frame of the clip
            skips = [m.unsqueeze(1).expand(b, t, *m.shape[1:]).flatten(0, 1) for m in id_maps]
        frames = self.decoder(latent.flatten(0, 1), skips)
        out["frames"] = frames.view(b, t, *frames.shape[1:])
        return out


# ---------------------------------------------------------------------------- training objective
class FusionGAN(nn.Module):
    """What both papers train: the shared generator around a temporal fusion plus the optional frame
    discriminator. A paper's model is a subclass naming its ``Config`` (a :class:`GeneratorConfig` with a
    ``fusion`` section) and its ``Fusion`` module, built as ``Fusion(cfg.fusion, d_in, d_out)``."""

    Config: ClassVar[type[GeneratorConfig]]
    Fusion: ClassVar[Callable[[Any, int, int], nn.Module]]

    def __init__(self, cfg: Any):
        super().__init__()
        self.cfg = cfg
        fusion = type(self).Fusion
        self.generator = TalkingHeadGenerator(cfg, lambda d_in, d_out: fusion(cfg.fusion, d_in, d_out))
        self.discriminator = FrameDiscriminator(cfg.discriminator) if cfg.discriminator.enabled else None

    def forward(self, identity: torch.Tensor, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.generator(identity, windows)


class GeneratorLossConfig(StrictModel):
    reconstruction: float = Field(10.0, gt=0.0, description="L1 between generated and real frames")
    adversarial: float = Field(0.1, ge=0.0, description="ignored when model.discriminator.enabled is false")
    audio_au: float = Field(1.0, ge=0.0, description="Audio-to-AU intensity L1; ignored without use_audio_to_au")
    au_consistency: float = Field(1.0, ge=0.0, description="frozen AU classifier on generated frames vs targets")
    perceptual: float = Field(0.0, ge=0.0, description="L1 between frozen AU-classifier feature maps")
    au_classifier_checkpoint: str | None = Field(None, description="needed when au_consistency or perceptual > 0")


class GeneratorObjective(Objective):
    """AU-RGAN and TCN-SA: reconstruction + adversarial + Audio-to-AU + AU consistency (+ perceptual)."""

    LossConfig = GeneratorLossConfig

    def __init__(self, model_cfg, loss_cfg, data_cfg):
        super().__init__(model_cfg, loss_cfg, data_cfg)
        self.use_adv = model_cfg.discriminator.enabled
        self.groups = ("generator", "discriminator") if self.use_adv else ("generator",)
        needs_cls = loss_cfg.au_consistency > 0 or loss_cfg.perceptual > 0
        if needs_cls and not loss_cfg.au_classifier_checkpoint:
            raise ConfigError(
                "loss.au_consistency / loss.perceptual need a trained AU classifier: set "
                "loss.au_classifier_checkpoint=PATH (train au_classifier first) or set them to 0 (ablation)"
            )
        self.classifier: nn.Module | None = None
        self._fake: torch.Tensor | None = None  # the generator's frames, reused by the discriminator step

    def data_spec(self) -> DataSpec:
        return DataSpec(image_size=self.model_cfg.image_size, identity=True, windows=True,
                        aus=tuple(self.model_cfg.audio_to_au.aus))

    def setup(self, device):
        if self.loss_cfg.au_consistency > 0 or self.loss_cfg.perceptual > 0:
            from talkbench.models.checkpoint import load_model

            model, _ = load_model(self.loss_cfg.au_classifier_checkpoint, expect="au_classifier")
            self.classifier = model.to(device).eval().requires_grad_(False)
            missing = set(self.model_cfg.audio_to_au.aus) - set(self.classifier.cfg.aus)
            if missing:
                raise ConfigError(f"the AU classifier does not predict {sorted(missing)}")

    def parts(self, model):
        parts = {"generator": model.generator}
        if self.use_adv:
            parts["discriminator"] = model.discriminator
        return parts

    def _classify(self, frames: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        size = self.classifier.cfg.image_size
        if frames.shape[-1] != size:
            frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
        out, maps = self.classifier.forward_features(frames)
        cols = [self.classifier.cfg.aus.index(a) for a in self.model_cfg.audio_to_au.aus]
        return out["intensity"][:, cols], maps

    def loss(self, group, parts, batch):
        real = to_image(batch["face"])  # (B, T, 3, S, S)
        identity = to_image(batch["identity"])
        b, t = real.shape[:2]
        ident_t = identity.unsqueeze(1).expand_as(real).flatten(0, 1)
        mask = batch["mask"]
        if group == "discriminator":
            fake = self._fake.detach().flatten(0, 1)
            logits = parts["discriminator"](torch.cat([real.flatten(0, 1), fake]), torch.cat([ident_t, ident_t]))
            lr, lf = logits.float().chunk(2)
            loss = F.binary_cross_entropy_with_logits(lr, torch.ones_like(lr)) + F.binary_cross_entropy_with_logits(
                lf, torch.zeros_like(lf))
            return loss, {"d_loss": loss.item()}
        out = parts["generator"](identity, batch["windows"])
        fake = out["frames"]
        self._fake = fake
        cfg = self.loss_cfg
        pix_mask = mask[:, :, None, None, None].expand_as(fake)
        l_rec = masked_l1(fake, real, pix_mask)
        loss = cfg.reconstruction * l_rec
        logs = {"recon_l1": l_rec.item()}
        if self.use_adv:
            logits = parts["discriminator"](fake.flatten(0, 1), ident_t).float()
            l_adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            loss = loss + cfg.adversarial * l_adv
            logs["g_adv"] = l_adv.item()
        if "au_intensity" in out and cfg.audio_au > 0:
            l_au = masked_l1(out["au_intensity"], batch["aus"], batch["au_mask"])
            loss = loss + cfg.audio_au * l_au
            logs["audio_au_l1"] = l_au.item()
        if self.classifier is not None:
            pred, maps_fake = self._classify(fake.flatten(0, 1))
            if cfg.au_consistency > 0:
                l_cons = masked_l1(pred, batch["aus"].flatten(0, 1), batch["au_mask"].flatten(0, 1))
                loss = loss + cfg.au_consistency * l_cons
                logs["au_consistency_l1"] = l_cons.item()
            if cfg.perceptual > 0:
                with torch.no_grad():
                    _, maps_real = self._classify(real.flatten(0, 1))
                l_per = sum(F.l1_loss(a, r) for a, r in zip(maps_fake, maps_real, strict=True)) / len(maps_real)
                loss = loss + cfg.perceptual * l_per
                logs["perceptual_l1"] = l_per.item()
        logs["loss"] = loss.item()
        return loss, logs

    @torch.no_grad()
    def validate(self, model, batches):
        l1s, psnrs, au_p, au_t, au_m, cons = [], [], [], [], [], []
        for batch in batches:
            real = to_image(batch["face"])
            out = model.generator(to_image(batch["identity"]), batch["windows"])
            fake = out["frames"].float()
            m = batch["mask"]
            err = (fake - real).abs().mean(dim=(2, 3, 4))[m]
            l1s.append(err.cpu().numpy())
            mse = ((fake - real) ** 2).mean(dim=(2, 3, 4))[m] / 4.0  # [-1, 1] -> [0, 1] scale
            psnrs.append((10 * torch.log10(1.0 / mse.clamp_min(1e-10))).cpu().numpy())
            if "au_intensity" in out:
                au_p.append(out["au_intensity"].flatten(0, 1).float().cpu().numpy())
                au_t.append(batch["aus"].flatten(0, 1).cpu().numpy())
                au_m.append(batch["au_mask"].flatten(0, 1).cpu().numpy())
            if self.classifier is not None:
                pred, _ = self._classify(fake.flatten(0, 1))
                e = (pred - batch["aus"].flatten(0, 1)).abs()[batch["au_mask"].flatten(0, 1)]
                cons.append(e.float().cpu().numpy())
        logs = {"val_recon_l1": float(np.concatenate(l1s).mean()), "val_psnr": float(np.concatenate(psnrs).mean())}
        if au_p:
            logs.update(au_metrics(self.model_cfg.audio_to_au.aus, np.concatenate(au_p), np.concatenate(au_t),
                                   np.concatenate(au_m), "val_audio_"))
        if cons:
            logs["val_au_consistency_mae"] = float(np.concatenate(cons).mean())
        return logs

    @torch.no_grad()
    def sample_grid(self, model, batch):
        out = model.generator(to_image(batch["identity"][:1]), batch["windows"][:1])
        return frame_grid(to_image(batch["face"][0]), out["frames"][0])


# ---------------------------------------------------------------------------- generate entry
class GANGenerateOptions(StrictModel):
    max_frames_per_chunk: int = Field(250, ge=1, description="bounds memory on long audio; the recurrent "
                                      "state restarts per chunk (documented limit)")


def generate_frames(model: nn.Module, inputs: Any) -> Any:
    """One forward pass per chunk of MFCC windows (AU-RGAN, TCN-SA): GenerationInputs -> ``Generated``:
    (T, S, S, 3) uint8 frames and, with the Audio-to-AU branch on, its per-frame AU intensities (0-5)."""
    from talkbench.models.generate import Generated
    from talkbench.pipelines.audio import mfcc_from_audio, mfcc_windows
    from talkbench.schema import FPS, SAMPLE_RATE

    if abs(inputs.fps - FPS) > 1e-6:
        raise ValueError(f"this generator makes {FPS} fps video (4 MFCC hops per frame); got fps={inputs.fps}")
    n = inputs.n_frames
    chunk = (inputs.options or GANGenerateOptions()).max_frames_per_chunk
    windows = mfcc_windows(mfcc_from_audio(inputs.audio, SAMPLE_RATE, n, inputs.pipeline_config.get("audio_features")))
    crop = inputs.identity[0]
    identity = to_image(torch.from_numpy(crop.transpose(2, 0, 1).copy())[None]).to(inputs.device)
    out, aus = [], []
    with torch.inference_mode():
        for s in range(0, n, chunk):
            w = torch.from_numpy(windows[None, s : s + chunk]).to(inputs.device)
            res = model.generator(identity, w)
            frames = res["frames"][0]
            out.append(((frames.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy())
            if "au_intensity" in res:
                aus.append(res["au_intensity"][0].float().cpu().numpy())  # (t, n_aus)
    predicted = None
    if aus:
        table = np.concatenate(aus)
        predicted = {au: table[:, i].astype(np.float32) for i, au in enumerate(model.cfg.audio_to_au.aus)}
    return Generated(np.concatenate(out), predicted)


#: the tiny variant of both generators (model tests), before the fusion-specific overrides
TINY_GENERATOR = ("model.image_size=32", "model.base_channels=8", "model.levels=3", "model.identity_dim=32",
                  "model.audio_dim=32", "model.audio_cnn_channels=[8,16]", "model.latent_dim=32",
                  "model.audio_to_au.aus=[AU25,AU26]", "model.audio_to_au.cnn_channels=[8]",
                  "model.audio_to_au.cnn_dim=16", "model.audio_to_au.lstm_hidden=8",
                  "model.audio_to_au.lstm_layers=1", "model.audio_to_au.fc_dims=[8,4]",
                  "model.audio_to_au.shared_trunk=true", "model.discriminator.base_channels=8",
                  "model.discriminator.levels=2", "data.seq_len=4", "data.stride=null", "loss.au_consistency=0")
SMALL_GENERATOR = ("model.base_channels=16", "model.audio_to_au.shared_trunk=true",
                   "model.discriminator.base_channels=32")


def fusion_gan_spec(module: type[FusionGAN], description: str, tiny: tuple[str, ...] = (),
                    small: tuple[str, ...] = ()) -> ModelSpec:
    """The ``ModelSpec`` of a :class:`FusionGAN`: the objective, generate entry, published training setup
    and overfit check both papers share; ``tiny``/``small`` add the fusion's own overrides."""
    return ModelSpec(
        module=module, config=module.Config, objective=GeneratorObjective, generate=generate_frames,
        generate_options=GANGenerateOptions, description=description,
        defaults=("data.seq_len=50", "data.stride=25", "train.batch_size=8"),
        tiny=(*TINY_GENERATOR, *tiny), small=(*SMALL_GENERATOR, *small), seq_len=16,
        overfit=(("model.discriminator.enabled=false",), 60, 5e-3, 1),
    )
