"""What training each model means: the data it needs, its losses, its validation metrics.

The training loop (``talkbench.models.train``) is model-agnostic: every step it runs each optimizer
group of the objective in order (one group for most models; "generator" then "discriminator" for the
GANs), calling ``objective.loss(group, parts, batch)``. ``parts`` are the trainable modules, possibly
DDP-wrapped, so every forward goes through the wrapper.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from talkbench.config import StrictModel
from talkbench.errors import ConfigError
from talkbench.models.data import DataConfig, DataSpec
from talkbench.models.layers import to_image
from talkbench.registry import Registry

Batch = dict[str, torch.Tensor]
Logs = dict[str, float]


# ---------------------------------------------------------------------------- loss configs
class AULossConfig(StrictModel):
    intensity: float = Field(1.0, ge=0.0, description="weight of the masked L1 on AU intensities")
    occurrence: float = Field(0.5, ge=0.0, description="weight of the BCE on occurrences (AU classifier)")
    occurrence_threshold: float = Field(1.0, gt=0.0, description="intensity >= this counts as present")


class GeneratorLossConfig(StrictModel):
    reconstruction: float = Field(10.0, gt=0.0, description="L1 between generated and real frames")
    adversarial: float = Field(0.1, ge=0.0, description="ignored when model.discriminator.enabled is false")
    audio_au: float = Field(1.0, ge=0.0, description="Audio-to-AU intensity L1; ignored without use_audio_to_au")
    au_consistency: float = Field(1.0, ge=0.0, description="frozen AU classifier on generated frames vs targets")
    perceptual: float = Field(0.0, ge=0.0, description="L1 between frozen AU-classifier feature maps")
    au_classifier_checkpoint: str | None = Field(None, description="needed when au_consistency or perceptual > 0")


class SyncLossConfig(StrictModel):
    margin: float = Field(1.0, gt=0.0, description="contrastive margin on the distance of unit embeddings")


# ---------------------------------------------------------------------------- helpers
def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(pred.dtype)
    return ((pred - target).abs() * m).sum() / m.sum().clamp_min(1.0)


def au_metrics(aus: list[str], pred: np.ndarray, target: np.ndarray, mask: np.ndarray, prefix: str) -> Logs:
    """Per-AU MAE and Pearson r over the valid frames (r is NaN when either side is constant)."""
    out: Logs = {}
    for i, au in enumerate(aus):
        m = mask[:, i]
        p, t = pred[m, i], target[m, i]
        out[f"{prefix}{au}_mae"] = float(np.abs(p - t).mean()) if m.any() else float("nan")
        ok = m.sum() > 1 and p.std() > 0 and t.std() > 0
        out[f"{prefix}{au}_r"] = float(np.corrcoef(p, t)[0, 1]) if ok else float("nan")
    maes = [out[f"{prefix}{a}_mae"] for a in aus]
    out[f"{prefix}mae_mean"] = float(np.nanmean(maes)) if np.isfinite(maes).any() else float("nan")
    return out


def frame_grid(real: torch.Tensor, fake: torch.Tensor, n: int = 8) -> np.ndarray:
    """Two rows (real, generated) of up to n frames of one clip as a (2S, nS, 3) uint8 image."""
    rows = []
    for x in (real[:n], fake[:n]):
        x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()  # (n, 3, S, S)
        rows.append(np.concatenate(list(x.transpose(0, 2, 3, 1)), axis=1))
    return np.concatenate(rows, axis=0)


class Objective:
    groups: tuple[str, ...] = ("model",)
    LossConfig: type[StrictModel] = StrictModel

    def __init__(self, model_cfg: Any, loss_cfg: Any, data_cfg: DataConfig):
        self.model_cfg, self.loss_cfg, self.data_cfg = model_cfg, loss_cfg, data_cfg

    def data_spec(self) -> DataSpec:
        raise NotImplementedError

    def parts(self, model: nn.Module) -> dict[str, nn.Module]:
        """The trainable module of each optimizer group."""
        return {"model": model}

    def setup(self, device: torch.device) -> None:
        """Load frozen helpers (e.g. the AU classifier) once the device is known."""

    def loss(self, group: str, parts: dict[str, nn.Module], batch: Batch) -> tuple[torch.Tensor, Logs]:
        raise NotImplementedError

    @torch.no_grad()
    def validate(self, model: nn.Module, batches: list[Batch]) -> Logs:
        raise NotImplementedError

    @torch.no_grad()
    def sample_grid(self, model: nn.Module, batch: Batch) -> np.ndarray | None:
        return None


OBJECTIVES: Registry[type[Objective]] = Registry("objective")


# ---------------------------------------------------------------------------- AU classifier
@OBJECTIVES.register("au_classifier")
class AUClassifierObjective(Objective):
    LossConfig = AULossConfig

    def data_spec(self) -> DataSpec:
        return DataSpec(image_size=self.model_cfg.image_size, aus=tuple(self.model_cfg.aus))

    def _flat(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return to_image(batch["face"].flatten(0, 1)), batch["aus"].flatten(0, 1), batch["au_mask"].flatten(0, 1)

    def loss(self, group, parts, batch):
        faces, aus, mask = self._flat(batch)
        out = parts["model"](faces)
        l_int = masked_l1(out["intensity"], aus, mask)
        occ = (aus >= self.loss_cfg.occurrence_threshold).float()
        bce = F.binary_cross_entropy_with_logits(out["occurrence_logit"].float(), occ, reduction="none")
        l_occ = (bce * mask).sum() / mask.sum().clamp_min(1)
        loss = self.loss_cfg.intensity * l_int + self.loss_cfg.occurrence * l_occ
        return loss, {"loss": loss.item(), "intensity_l1": l_int.item(), "occurrence_bce": l_occ.item()}

    @torch.no_grad()
    def validate(self, model, batches):
        preds, targets, masks, occ_hits = [], [], [], []
        for b in batches:
            faces, aus, mask = self._flat(b)
            out = model(faces)
            preds.append(out["intensity"].float().cpu().numpy())
            targets.append(aus.cpu().numpy())
            masks.append(mask.cpu().numpy())
            occ = aus >= self.loss_cfg.occurrence_threshold
            occ_hits.append(((out["occurrence_logit"] > 0) == occ)[mask].float().cpu().numpy())
        logs = au_metrics(self.model_cfg.aus, np.concatenate(preds), np.concatenate(targets),
                          np.concatenate(masks), "val_")
        logs["val_occurrence_acc"] = float(np.concatenate(occ_hits).mean())
        return logs


# ---------------------------------------------------------------------------- Audio-to-AU
@OBJECTIVES.register("audio_to_au")
class AudioToAUObjective(Objective):
    LossConfig = AULossConfig

    def data_spec(self) -> DataSpec:
        return DataSpec(windows=True, aus=tuple(self.model_cfg.aus))

    def loss(self, group, parts, batch):
        out = parts["model"](batch["windows"])
        loss = self.loss_cfg.intensity * masked_l1(out["intensity"], batch["aus"], batch["au_mask"])
        return loss, {"loss": loss.item()}

    @torch.no_grad()
    def validate(self, model, batches):
        preds = [model(b["windows"])["intensity"].flatten(0, 1).float().cpu().numpy() for b in batches]
        targets = [b["aus"].flatten(0, 1).cpu().numpy() for b in batches]
        masks = [b["au_mask"].flatten(0, 1).cpu().numpy() for b in batches]
        return au_metrics(self.model_cfg.aus, np.concatenate(preds), np.concatenate(targets),
                          np.concatenate(masks), "val_")


# ---------------------------------------------------------------------------- generators
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


OBJECTIVES.register("au_rgan")(GeneratorObjective)
OBJECTIVES.register("tcn_sa")(GeneratorObjective)


# ---------------------------------------------------------------------------- sync expert
@OBJECTIVES.register("sync_expert")
class SyncObjective(Objective):
    """SyncNet's contrastive loss: pull in-sync pairs together, push shifted pairs beyond the margin."""

    LossConfig = SyncLossConfig

    def data_spec(self) -> DataSpec:
        c = self.model_cfg
        if self.data_cfg.audio_feature != "mfcc":
            raise ConfigError("sync_expert trains on data.audio_feature=mfcc")
        return DataSpec(mouth_size=(c.mouth_height, c.mouth_width), sync_frames=c.frames)

    def _distances(self, model, batch):
        mouths = to_image(batch["mouth"])
        d_pos = model(mouths, batch["audio"])
        d_neg = model(mouths, batch["audio_neg"])
        return d_pos.float(), d_neg.float()

    def loss(self, group, parts, batch):
        d_pos, d_neg = self._distances(parts["model"], batch)
        loss = (d_pos.pow(2).mean() + F.relu(self.loss_cfg.margin - d_neg).pow(2).mean()) / 2
        return loss, {"loss": loss.item(), "d_pos": d_pos.mean().item(), "d_neg": d_neg.mean().item()}

    @torch.no_grad()
    def validate(self, model, batches):
        pos, neg = zip(*(self._distances(model, b) for b in batches), strict=True)
        pos, neg = torch.cat(pos), torch.cat(neg)
        return {"val_d_pos": pos.mean().item(), "val_d_neg": neg.mean().item(),
                "val_pair_acc": (pos < neg).float().mean().item()}
