"""MFTFG-AU (seed 002; SEEDS-DESIGN (A)): multimodal fusion of speech-related AUs, audio and upper-face
landmarks conditioning a diffusion renderer.

Per frame: audio window (12 MFCC × 25 hops) -> audio token; upper-face landmarks (39 of the 68-point
layout) -> landmark token; the Audio-to-AU network -> one 64-d feature per speech AU; the Audio-face
(what the AU-attention mask leaves to speech) -> a 4-d code. Their concatenation goes through the
dilated TCN self-attention fusion of ``tcn_sa`` -> one fused token. The renderer, a conditional UNet,
predicts ε from [noisy x ‖ masked ground truth ‖ Identity-face] and attends (learned projections) over
the frame's tokens: the fused token, the audio token, the landmark token and one token per AU.

Differences from the released code, on purpose (README, model section):
- cross-attention K/V projections are learned (the release makes fresh random ones every call);
- several tokens per frame, so the attention softmax is not identically 1;
- the fusion attends over time by default (``attention_axis: channel`` is the authors' axis: channels as
  tokens, time as features, so it only accepts the clip length it was built for);
- Identity/Audio-face are A·ref in [-1, 1] (the release multiplies a [-1, 1] image by 255);
- the masked ground truth is dropped (zeroed) for a fraction of training samples so the same network
  samples the full face (one-shot task) as well as inpainting the lower face (dubbing task);
- the UNet corrects the posterior mean under a prior centred on the Identity-face, and the ε-MSE is
  weighted so its target has unit variance at every noise level (``renderer.precondition``,
  ``prior_mean``, ``sigma_data``, ``loss_weighting``): with the authors' raw ε-UNet and plain ε-MSE the
  x0 error at high noise weighs ~0, and a model overfitting one clip never learned to draw its face.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from talkbench.config import StrictModel
from talkbench.errors import ConfigError
from talkbench.models.au_attention import AUAttention, AUAttentionConfig
from talkbench.models.audio_to_au import AudioToAU, AudioToAUConfig
from talkbench.models.data import DataSpec
from talkbench.models.diffusion import DiffusionConfig, GaussianDiffusion
from talkbench.models.face_autoencoder import FaceAutoencoder, FaceAutoencoderConfig
from talkbench.models.face_regions import UPPER_FACE_68
from talkbench.models.layers import MfccCNN, to_image
from talkbench.models.objective import Objective, frame_grid, load_frozen_helper, masked_l1, psnr
from talkbench.models.registry import ModelSpec
from talkbench.models.tcn_sa import TCNConfig, TemporalBlock
from talkbench.models.unet import ConditionalUNet, UNetConfig
from talkbench.schema import MFCC_DIM, SPEECH_AUS


class FusionConfig(TCNConfig):
    attention_axis: Literal["time", "channel"] = Field(
        "time", description="time: frames are tokens (talkbench); channel: channels are tokens (the authors')")
    trained_length: int = Field(50, ge=1, description="the only clip length attention_axis=channel accepts")
    channel_head_dim: int = Field(14, ge=1, description="d_k = d_v of the channel-axis attention (the authors': 14)")


class RendererConfig(StrictModel):
    space: Literal["pixel", "latent"] = "pixel"
    unet: UNetConfig = Field(default_factory=UNetConfig)
    latent_channels: int = Field(3, ge=1, description="must match the face autoencoder (latent space)")
    latent_factor: int = Field(4, ge=1, description="the face autoencoder's downsampling factor")
    autoencoder: FaceAutoencoderConfig | None = Field(
        None, description="the face autoencoder's config (set from loss.autoencoder_checkpoint when training)")
    precondition: bool = Field(
        True, description="x̂0 = E[x0 | x_t] under the prior N(μ, sigma_data²) + its posterior std · UNet(...) (EDM-style, "
                          "talkbench): the UNet only learns what the prior cannot explain; false = the authors' raw ε-UNet")
    prior_mean: Literal["identity", "zero"] = Field(
        "identity", description="μ of the prior: the Identity-face (the UNet learns the change from it) or zero")
    sigma_data: float = Field(0.5, gt=0.0, description="std of the prior around μ (EDM's σ_data)")
    loss_weighting: Literal["eps", "unit"] = Field(
        "unit", description="eps: plain ε-MSE (the authors'; it weighs the x0 error by SNR(t), ~0 at high noise, so "
                            "drawing the face from the conditioning is barely trained); unit: ε-MSE rescaled so the "
                            "UNet's target has unit variance at every t (EDM's weighting; needs precondition)")


class SamplingConfig(StrictModel):
    inpaint: bool = Field(True, description="true: only the lower face is generated (dubbing); false: full face")
    use_ema: bool = True


class MFTFGConfig(StrictModel):
    aus: list[str] = Field(default_factory=lambda: list(SPEECH_AUS), min_length=1)
    image_size: int = Field(128, ge=8)
    n_coeffs: int = Field(MFCC_DIM, ge=1)
    window_hops: int = Field(25, ge=1, description="MFCC hops per frame window (the authors': 25 = 250 ms)")
    n_landmarks: int = Field(len(UPPER_FACE_68), ge=1)
    audio_dim: int = Field(8, ge=1, description="audio token input (the authors' AudioNet: 8)")
    audio_cnn_channels: list[int] = Field(default_factory=lambda: [32, 64], min_length=1)
    landmark_dim: int = Field(64, ge=1)
    audio_face_dim: int = Field(4, ge=1, description="Audio-face code (the authors': 4)")
    context_dim: int = Field(128, ge=1, description="token size the UNet attends over")
    use_audio_to_au: bool = True
    audio_to_au: AudioToAUConfig = Field(default_factory=AudioToAUConfig)
    attention_mask: Literal["au", "landmark"] = Field(
        "au", description="au: the trained AU-attention net splits the identity; landmark: a lower-face mask (ablation)")
    au_attention: AUAttentionConfig = Field(default_factory=AUAttentionConfig)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    renderer: RendererConfig = Field(default_factory=RendererConfig)
    diffusion: DiffusionConfig = Field(default_factory=DiffusionConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    masked_gt_dropout: float = Field(0.5, ge=0.0, le=1.0, description="training: zero the masked GT this often")
    ema_decay: float = Field(0.9999, ge=0.0, lt=1.0, description="0 disables the EMA copy")

    @model_validator(mode="after")
    def _check(self) -> MFTFGConfig:
        if self.renderer.loss_weighting == "unit" and not self.renderer.precondition:
            raise ValueError("renderer.loss_weighting=unit needs renderer.precondition=true (use eps otherwise)")
        if self.audio_to_au.aus != self.aus and self.use_audio_to_au:
            raise ValueError(f"audio_to_au.aus {self.audio_to_au.aus} must equal aus {self.aus}")
        if self.attention_mask == "au" and self.au_attention.aus != self.aus:
            raise ValueError(f"au_attention.aus {self.au_attention.aus} must equal aus {self.aus}")
        return self


class ChannelAttention(nn.Module):
    """The authors' TCSAN attention: tokens = channels, features = time (d_model = the clip length)."""

    def __init__(self, length: int, heads: int, head_dim: int, dropout: float):
        super().__init__()
        self.length, self.heads, self.dk = length, heads, head_dim
        self.qkv = nn.Linear(length, 3 * heads * head_dim, bias=False)
        self.out = nn.Linear(heads * head_dim, length)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        if x.shape[-1] != self.length:
            raise ValueError(f"attention_axis=channel was built for clips of exactly {self.length} frames "
                             f"(time is its feature axis); got {x.shape[-1]}. Use attention_axis=time for any length")
        b, c, _ = x.shape
        q, k, v = self.qkv(x).view(b, c, 3, self.heads, self.dk).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=self.drop.p if self.training else 0.0)
        return self.norm(x + self.drop(self.out(a.transpose(1, 2).reshape(b, c, -1))))


class ChannelAxisBlock(TemporalBlock):
    """``tcn_sa``'s temporal block (same convs and residual) with the attention over channels."""

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int, dropout: float, heads: int,
                 length: int, head_dim: int):
        super().__init__(cin, cout, kernel, dilation, dropout, heads)
        del self.attn, self.norm
        self.channel_attn = ChannelAttention(length, heads, head_dim, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel_attn(torch.relu(self.convs(x) + self.residual(x)))


class Fusion(nn.Module):
    """(B, T, D_in) -> (B, T, D_out): dilated non-causal TCN blocks with self-attention on the chosen axis."""

    def __init__(self, cfg: FusionConfig, d_in: int, d_out: int):
        super().__init__()
        cins = [d_in, *cfg.channels[:-1]]
        blocks = []
        for a, b, d in zip(cins, cfg.channels, cfg.dilations, strict=True):
            if cfg.attention_axis == "time":
                blocks.append(TemporalBlock(a, b, cfg.kernel_size, d, cfg.dropout, cfg.heads))
            else:
                blocks.append(ChannelAxisBlock(a, b, cfg.kernel_size, d, cfg.dropout, cfg.heads,
                                               cfg.trained_length, cfg.channel_head_dim))
        self.blocks = nn.Sequential(*blocks)
        self.proj = nn.Linear(cfg.channels[-1], d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.blocks(x.transpose(1, 2)).transpose(1, 2))


@dataclass
class Condition:
    """What the denoiser sees besides x_t, computed once per clip (not per sampling step)."""

    spatial: torch.Tensor  # (N, 2 * C, h, w): masked ground truth ‖ Identity-face (renderer space)
    tokens: torch.Tensor  # (N, K, context_dim)
    au_intensity: torch.Tensor | None  # (B, T, n_aus) from Audio-to-AU
    identity_face: torch.Tensor  # (N, C, h, w): the Identity-face per frame (renderer space)


class MFTFGNet(nn.Module):
    """The trained part: context encoders, fusion and the UNet (what the EMA copy mirrors)."""

    def __init__(self, cfg: MFTFGConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.context_dim
        self.audio = nn.Sequential(MfccCNN(cfg.audio_cnn_channels, cfg.audio_dim), nn.LeakyReLU(0.02))
        self.landmarks = nn.Sequential(nn.Linear(2 * cfg.n_landmarks, 128), nn.LeakyReLU(0.02), nn.Linear(128, 64),
                                       nn.LeakyReLU(0.02), nn.Linear(64, cfg.landmark_dim))
        rc = 3 if cfg.renderer.space == "pixel" else cfg.renderer.latent_channels
        self.audio_face = nn.Sequential(nn.Conv2d(rc, 16, 4, stride=2, padding=1), nn.LeakyReLU(0.02),
                                        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(16 * 16, 112),
                                        nn.LeakyReLU(0.02), nn.Linear(112, cfg.audio_face_dim))
        self.audio_to_au = AudioToAU(cfg.audio_to_au.model_copy(update={"n_coeffs": cfg.n_coeffs})) \
            if cfg.use_audio_to_au else None
        n_aus = len(cfg.aus) if cfg.use_audio_to_au else 0
        au_dim = cfg.audio_to_au.fc_dims[-1]
        d_in = cfg.audio_dim + cfg.audio_face_dim + cfg.landmark_dim + n_aus * au_dim
        self.fusion = Fusion(cfg.fusion, d_in, c)
        self.tok_audio = nn.Linear(cfg.audio_dim, c)
        self.tok_landmarks = nn.Linear(cfg.landmark_dim, c)
        self.tok_au = nn.Linear(au_dim, c) if n_aus else None
        self.token_type = nn.Parameter(torch.randn(3 + n_aus, c) * 0.02)
        self.unet = ConditionalUNet(cfg.renderer.unet, 3 * rc, rc, c)

    def condition(self, windows: torch.Tensor, landmarks: torch.Tensor, audio_face: torch.Tensor,
                  masked_gt: torch.Tensor, identity_face: torch.Tensor) -> Condition:
        """windows (B,T,C,H), landmarks (B,T,L,2), audio_face (B,c,h,w), masked_gt (B,T,c,h,w), identity_face (B,c,h,w)."""
        b, t = windows.shape[:2]
        aud = self.audio(windows.flatten(0, 1)).view(b, t, -1)
        lmk = self.landmarks(landmarks.flatten(2).to(aud.dtype))
        af = self.audio_face(audio_face)[:, None].expand(b, t, -1)
        parts, toks = [aud, af, lmk], None
        au_int = None
        if self.audio_to_au is not None:
            au = self.audio_to_au(windows)
            au_int = au["intensity"]
            parts.append(au["features"].flatten(2))
            toks = self.tok_au(au["features"])  # (B, T, n_aus, c)
        fused = self.fusion(torch.cat(parts, dim=-1))  # (B, T, c)
        tokens = [fused[:, :, None], self.tok_audio(aud)[:, :, None], self.tok_landmarks(lmk)[:, :, None]]
        if toks is not None:
            tokens.append(toks)
        tokens = torch.cat(tokens, dim=2) + self.token_type
        ident = identity_face[:, None].expand(b, t, *identity_face.shape[1:])
        spatial = torch.cat([masked_gt, ident], dim=2).flatten(0, 1)
        return Condition(spatial=spatial, tokens=tokens.flatten(0, 1), au_intensity=au_int,
                         identity_face=ident.flatten(0, 1))

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, cond: Condition) -> torch.Tensor:
        return self.unet(torch.cat([x_t, cond.spatial], dim=1), t, cond.tokens)


class MFTFG(nn.Module):
    """The whole generator: frozen helpers (AU-attention, face autoencoder) + the trained net + its EMA."""

    Config = MFTFGConfig

    def __init__(self, cfg: MFTFGConfig):
        super().__init__()
        self.cfg = cfg
        self.net = MFTFGNet(cfg)
        self.ema = copy.deepcopy(self.net).requires_grad_(False) if cfg.ema_decay > 0 else None
        self.au_attention = AUAttention(cfg.au_attention.model_copy(update={"image_size": cfg.image_size})) \
            if cfg.attention_mask == "au" else None
        if self.au_attention is not None:
            self.au_attention.requires_grad_(False)
        self.autoencoder = None
        if cfg.renderer.space == "latent":
            self.autoencoder = FaceAutoencoder(cfg.renderer.autoencoder or FaceAutoencoderConfig(
                image_size=cfg.image_size, latent_channels=cfg.renderer.latent_channels,
                downsamples=cfg.renderer.latent_factor.bit_length() - 1)).requires_grad_(False)
        self.diffusion = GaussianDiffusion(cfg.diffusion)
        # the training identities' mean AUs: generation's stand-in when a reference image's AUs are unknown
        self.register_buffer("identity_au_mean", torch.zeros(len(cfg.aus)))
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    # -- helpers ---------------------------------------------------------------------------------
    @torch.no_grad()
    def update_ema(self) -> None:
        if self.ema is None:
            return
        # warm-up (timm/LDM): early on the average follows the weights closely, so a short run's EMA is not
        # its random initialisation; n counts updates and is saved with the model (resumes continue it)
        n = int(self.ema_updates.item())
        d = min(self.cfg.ema_decay, (1 + n) / (10 + n))
        self.ema_updates += 1
        for e, p in zip(self.ema.parameters(), self.net.parameters(), strict=True):
            e.lerp_(p.detach(), 1 - d)
        for e, p in zip(self.ema.buffers(), self.net.buffers(), strict=True):
            e.copy_(p)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, S, S) in [-1, 1] -> renderer space."""
        return x if self.autoencoder is None else self.autoencoder.encode(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z if self.autoencoder is None else self.autoencoder.decode(z)

    def split_identity(self, identity: torch.Tensor, identity_aus: torch.Tensor | None,
                       identity_lower: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Identity-face, Audio-face) in image space: the AU-attention mask, or 1 − the lower-face mask."""
        if self.au_attention is not None:
            if identity_aus is None:
                raise ValueError("attention_mask=au needs the identity frame's AU intensities")
            with torch.no_grad():
                a = self.au_attention(identity, identity_aus)["mask"]
        else:
            a = 1 - identity_lower
        return a * identity, (1 - a) * identity

    def condition(self, net: MFTFGNet, inputs: dict[str, torch.Tensor], drop_masked_gt: torch.Tensor | None
                  ) -> Condition:
        """Inputs (images in [-1, 1]): identity (B,3,S,S), identity_lower (B,1,S,S), identity_aus (B,n) or
        absent, windows (B,T,C,H), landmarks (B,T,L,2) in [0, 1] crop units, masked_gt (B,T,3,S,S).
        ``drop_masked_gt`` (B,) bool: those clips see zeros instead of the masked ground truth."""
        id_face, aud_face = self.split_identity(inputs["identity"], inputs.get("identity_aus"), inputs["identity_lower"])
        b, t = inputs["windows"].shape[:2]
        masked = inputs["masked_gt"]
        if drop_masked_gt is not None:
            masked = masked * (~drop_masked_gt).to(masked.dtype)[:, None, None, None, None]
        with torch.no_grad():
            z_masked = self.encode(masked.flatten(0, 1))
            z_masked = z_masked.view(b, t, *z_masked.shape[1:])
            z_id, z_aud = self.encode(id_face), self.encode(aud_face)
        return net.condition(inputs["windows"], inputs["landmarks"], z_aud, z_masked, z_id)

    def _prior(self, t: torch.Tensor, ndim: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """ᾱ_t and c_t = ᾱ_t·σ_d² + 1 − ᾱ_t (the variance of x_t under the prior), shaped to broadcast."""
        a = self.diffusion.abar(t, ndim, dtype)
        return a, a * self.cfg.renderer.sigma_data ** 2 + 1 - a

    def eps(self, net: MFTFGNet, x_t: torch.Tensor, t: torch.Tensor, cond: Condition) -> torch.Tensor:
        """The ε prediction. Preconditioned: x̂0 = μ + √ᾱ·σ_d²/c·(x_t − √ᾱ·μ) + σ_d·√((1 − ᾱ)/c)·UNet, the
        posterior mean under x0 ~ N(μ, σ_d²) plus a correction of the posterior's scale; with μ = the
        Identity-face an untrained UNet already draws the identity at high noise and a trained one learns
        only the change (the mouth), and its target has unit variance at every t."""
        raw = net.denoise(x_t, t, cond)
        r = self.cfg.renderer
        if not r.precondition:
            return raw
        a, c = self._prior(t, x_t.ndim, x_t.dtype)
        mu = cond.identity_face.to(x_t.dtype) if r.prior_mean == "identity" else torch.zeros_like(x_t)
        x0 = mu + a.sqrt() * r.sigma_data ** 2 / c * (x_t - a.sqrt() * mu) + r.sigma_data * ((1 - a) / c).sqrt() * raw
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """Per-sample weight of the ε-MSE: 1 (eps), or c/(ᾱ·σ_d²) (unit: = the UNet output's own MSE)."""
        if self.cfg.renderer.loss_weighting == "eps":
            return torch.ones(t.shape, device=t.device)
        a, c = self._prior(t, 1, torch.float32)
        return c / (a * self.cfg.renderer.sigma_data ** 2)

    # -- training --------------------------------------------------------------------------------
    def loss(self, inputs: dict[str, torch.Tensor], target: torch.Tensor, valid: torch.Tensor,
             generator: torch.Generator | None = None, net: MFTFGNet | None = None) -> tuple[torch.Tensor, Condition]:
        """ε-prediction MSE (the authors' l_simple, weighted per ``renderer.loss_weighting``) over valid frames;
        target (B,T,3,S,S), valid (B,T). ``net``: the weights to score (default the trained ones; the EMA copy)."""
        net = self.net if net is None else net
        b, t = target.shape[:2]
        if self.training and "identity_aus" in inputs:
            with torch.no_grad():
                self.identity_au_mean.lerp_(inputs["identity_aus"].float().mean(0), 0.01)
        drop = torch.rand(b, generator=generator, device=target.device) < self.cfg.masked_gt_dropout
        cond = self.condition(net, inputs, drop)
        with torch.no_grad():
            x0 = self.encode(target.flatten(0, 1))
        n = x0.shape[0]
        ts = self.diffusion.sample_timesteps(n, x0.device, generator)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        eps = self.eps(net, self.diffusion.q_sample(x0, ts, noise), ts, cond)
        per = ((eps.float() - noise.float()) ** 2).mean(dim=(1, 2, 3)) * self.loss_weight(ts)
        m = valid.flatten().to(per.dtype)
        return (per * m).sum() / m.sum().clamp_min(1.0), cond

    # -- sampling --------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, inputs: dict[str, torch.Tensor], *, inpaint: bool | None = None, ddim_steps: int | None = None,
               gt: torch.Tensor | None = None, keep: torch.Tensor | None = None, use_ema: bool | None = None,
               generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
        """Frames (B, T, 3, S, S) in [-1, 1].

        inpaint=True needs ``gt`` (B,T,3,S,S) and ``keep`` (B,T,1,S,S), 1 outside the lower-face polygon:
        the kept region is the ground truth (the authors' protocol; pasted again in pixels after decoding).
        inpaint=False: the masked ground truth is withheld too (zeros): the full face is generated.
        """
        inpaint = self.cfg.sampling.inpaint if inpaint is None else inpaint
        use_ema = self.cfg.sampling.use_ema if use_ema is None else use_ema
        net = self.ema if (use_ema and self.ema is not None) else self.net
        b, t = inputs["windows"].shape[:2]
        if not inpaint:
            inputs = {**inputs, "masked_gt": torch.zeros_like(inputs["masked_gt"])}
        cond = self.condition(net, inputs, None)
        s = self.cfg.image_size
        f = 1 if self.autoencoder is None else self.cfg.renderer.latent_factor
        c = 3 if self.autoencoder is None else self.cfg.renderer.latent_channels
        shape = (b * t, c, s // f, s // f)
        known = keep_z = None
        if inpaint:
            if gt is None or keep is None:
                raise ValueError("inpainting needs the ground-truth frames and the keep mask")
            known = self.encode(gt.flatten(0, 1))
            keep_z = keep.flatten(0, 1).to(known.dtype)
            if f > 1:  # the mask at latent resolution: keep only latent cells fully outside the polygon
                keep_z = -F.max_pool2d(-keep_z, f)
        x = self.diffusion.ddim_sample(lambda x_t, tt: self.eps(net, x_t, tt, cond), shape, steps=ddim_steps,
                                       known=known, keep=keep_z, generator=generator, device=inputs["windows"].device,
                                       progress=progress)
        frames = self.decode(x).clamp(-1, 1).view(b, t, 3, s, s)
        if inpaint:  # exact ground truth outside the polygon in pixels too (matters in latent space)
            k = keep.to(frames.dtype)
            frames = k * gt + (1 - k) * frames
        return frames


def adopt_helper(path: str, expect: str, image_size: int) -> nn.Module:
    """A trained helper checkpoint (au_attention, face_autoencoder), frozen, taken over whole with its own
    config (so a recipe's helper sizes need not be repeated in the mftfg config)."""
    from talkbench.models.checkpoint import load_model

    helper, _ = load_model(path, expect=expect)
    if helper.cfg.image_size != image_size:
        raise ConfigError(f"{path}: trained at {helper.cfg.image_size} px, mftfg runs at {image_size} px")
    return helper.requires_grad_(False).eval()


# ---------------------------------------------------------------------------- MFTFG
class MFTFGLossConfig(StrictModel):
    audio_au: float = Field(1.0, ge=0.0, description="Audio-to-AU intensity L1 (when it trains jointly)")
    au_attention_checkpoint: str | None = Field(None, description="trained au_attention (model.attention_mask=au)")
    autoencoder_checkpoint: str | None = Field(None, description="trained face_autoencoder (renderer.space=latent)")
    audio_to_au_checkpoint: str | None = Field(None, description="a trained audio_to_au to freeze (the authors' way)")
    val_ddim_steps: int = Field(10, ge=1, description="DDIM steps of the sampled frames in validation")


def batch_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Loader batch (uint8 images) -> MFTFG inputs (images in [-1, 1])."""
    inputs = {"identity": to_image(batch["identity"]), "identity_lower": batch["identity_lower"].float(),
              "windows": batch["windows"], "landmarks": batch["landmarks"], "masked_gt": to_image(batch["masked"])}
    if "identity_aus" in batch:
        inputs["identity_aus"] = batch["identity_aus"].float()
    return inputs


class MFTFGObjective(Objective):
    LossConfig = MFTFGLossConfig

    def __init__(self, model_cfg, loss_cfg, data_cfg):
        super().__init__(model_cfg, loss_cfg, data_cfg)
        if data_cfg.window_hops != model_cfg.window_hops:
            raise ConfigError(f"data.window_hops={data_cfg.window_hops} but model.window_hops={model_cfg.window_hops}")
        if data_cfg.audio_feature != "mfcc":
            raise ConfigError("mftfg trains on data.audio_feature=mfcc")
        if model_cfg.fusion.attention_axis == "channel" and data_cfg.seq_len != model_cfg.fusion.trained_length:
            raise ConfigError(f"model.fusion.attention_axis=channel needs data.seq_len = model.fusion.trained_length "
                              f"({model_cfg.fusion.trained_length}); got {data_cfg.seq_len}")
        if model_cfg.attention_mask == "au" and not loss_cfg.au_attention_checkpoint:
            raise ConfigError("model.attention_mask=au needs loss.au_attention_checkpoint=PATH (train au_attention "
                              "first) or model.attention_mask=landmark (ablation)")
        if model_cfg.renderer.space == "latent" and not loss_cfg.autoencoder_checkpoint:
            raise ConfigError("model.renderer.space=latent needs loss.autoencoder_checkpoint=PATH "
                              "(train face_autoencoder first) or renderer.space=pixel")
        self.model: nn.Module | None = None

    def data_spec(self) -> DataSpec:
        return DataSpec(image_size=self.model_cfg.image_size, identity=True, windows=True,
                        aus=tuple(self.model_cfg.aus), regions=True)

    def parts(self, model):
        if self.model is not model:  # first call: put the trained helpers in place, frozen
            c = self.loss_cfg
            if model.au_attention is not None and c.au_attention_checkpoint:
                helper = adopt_helper(c.au_attention_checkpoint, "au_attention", model.cfg.image_size)
                model.cfg.au_attention = helper.cfg  # the checkpoint rebuilds it with the trained config
                model.au_attention = helper
            if model.autoencoder is not None and c.autoencoder_checkpoint:
                helper = adopt_helper(c.autoencoder_checkpoint, "face_autoencoder", model.cfg.image_size)
                model.cfg.renderer.autoencoder = helper.cfg
                if (helper.cfg.latent_channels, 2 ** helper.cfg.downsamples) != (
                        model.cfg.renderer.latent_channels, model.cfg.renderer.latent_factor):
                    raise ConfigError(f"{c.autoencoder_checkpoint}: latents have {helper.cfg.latent_channels} "
                                      f"channels at f{2 ** helper.cfg.downsamples}; set model.renderer.latent_channels "
                                      "and latent_factor to match")
                model.autoencoder = helper
            if model.net.audio_to_au is not None and c.audio_to_au_checkpoint:
                load_frozen_helper(model.net.audio_to_au, c.audio_to_au_checkpoint, "audio_to_au")
            if model.ema is not None:
                model.ema.load_state_dict(model.net.state_dict())
            self.model = model
        return {"model": model.net}

    def after_step(self) -> None:
        if self.model is not None:
            self.model.update_ema()

    def _mftfg(self, net_or_model: nn.Module) -> nn.Module:
        """The loss sees the (possibly DDP-wrapped) net; the MFTFG wrapper around it does the diffusion."""
        if self.model is None:
            raise RuntimeError("call parts(model) before loss()")
        return self.model

    def loss(self, group, parts, batch):
        model = self._mftfg(parts["model"])
        loss, cond = model.loss(batch_inputs(batch), to_image(batch["face"]), batch["mask"])
        logs = {"eps_mse": loss.item()}
        if cond.au_intensity is not None and self.loss_cfg.audio_au > 0 and not self.loss_cfg.audio_to_au_checkpoint:
            l_au = masked_l1(cond.au_intensity, batch["aus"], batch["au_mask"])
            loss = loss + self.loss_cfg.audio_au * l_au
            logs["audio_au_l1"] = l_au.item()
        logs["loss"] = loss.item()
        return loss, logs

    @torch.no_grad()
    def validate(self, model, batches):
        g = torch.Generator(device=batches[0]["windows"].device).manual_seed(0)
        eps = [model.loss(batch_inputs(b), to_image(b["face"]), b["mask"], generator=g)[0].item() for b in batches]
        b = batches[0]
        real = to_image(b["face"])
        logs = {"val_eps_mse": float(np.mean(eps))}
        for inpaint in (False, True):
            fake = model.sample(batch_inputs(b), inpaint=inpaint, ddim_steps=self.loss_cfg.val_ddim_steps,
                                gt=real, keep=1 - b["lower"].float(), generator=g)
            m = b["mask"].flatten()
            logs[f"val_psnr_{'inpaint' if inpaint else 'full_face'}"] = float(psnr(fake.flatten(0, 1), real.flatten(0, 1))[m].mean())
        ident = to_image(b["identity"])[:, None].expand_as(real)
        logs["val_psnr_identity_copy"] = float(psnr(ident.flatten(0, 1), real.flatten(0, 1))[b["mask"].flatten()].mean())
        return logs

    @torch.no_grad()
    def sample_grid(self, model, batch):
        b = {k: v[:1] for k, v in batch.items()}
        fake = model.sample(batch_inputs(b), inpaint=False, ddim_steps=self.loss_cfg.val_ddim_steps)
        return frame_grid(to_image(b["face"][0]), fake[0])


# ---------------------------------------------------------------------------- generation
class MFTFGGenerateOptions(StrictModel):
    """Sampling variant of a submission (recorded with its results: PSNR/SSIM differ between them)."""

    ddim_steps: int | None = Field(None, ge=1, description="25 fast, 50 default, 200 the authors'; "
                                   "None: the checkpoint's model.diffusion.ddim_steps")
    inpaint: bool | None = Field(None, description="None: from the task (dubbing -> true, one-shot -> false)")
    clip_frames: int = Field(50, ge=1, description="frames per sampled window (the authors': 50)")
    batch_clips: int = Field(4, ge=1, description="windows sampled together (memory bound)")
    seed: int = 0
    progress: bool = True


def variant_name(options: MFTFGGenerateOptions | None, model_config: dict | None = None) -> str:
    """The submission variant recorded on the leaderboard: ``ddim50-inpaint`` / ``ddim25-full_face``, or
    ``-by_task`` (inpaint on a dubbing task, full face on a one-shot task: ``sampling.inpaint`` true)."""
    options = options or MFTFGGenerateOptions()
    inpaint = options.inpaint
    if inpaint is None and model_config is not None and not model_config.get("sampling", {}).get("inpaint", True):
        inpaint = False
    mode = {True: "inpaint", False: "full_face", None: "by_task"}[inpaint]
    steps = options.ddim_steps or (model_config or {}).get("diffusion", {}).get("ddim_steps", 50)
    return f"ddim{steps}-{mode}"


def _windows(model: MFTFG, inputs) -> np.ndarray:
    from talkbench.pipelines.audio import mfcc_from_audio, mfcc_windows
    from talkbench.schema import FPS, SAMPLE_RATE

    if abs(inputs.fps - FPS) > 1e-6:
        raise ValueError(f"mftfg makes {FPS} fps video (4 MFCC hops per frame); got fps={inputs.fps}")
    mfcc = mfcc_from_audio(inputs.audio, SAMPLE_RATE, inputs.n_frames, inputs.pipeline_config.get("audio_features"))
    return mfcc_windows(mfcc, n_hops=model.cfg.window_hops)


def generate(model: MFTFG, inputs) -> np.ndarray:
    """GenerationInputs -> (n_frames, S, S, 3) uint8.

    One-shot (only a reference image): the full face is sampled from the Identity-face, the audio and the
    reference's upper-face landmarks held still (the aligned crop's template layout). Dubbing (``inputs``
    carries ``target_frames`` (T, S, S, 3) and ``target_lower`` (T, S, S) masks, see the dubbing task):
    the lower-face polygon is inpainted and everything outside it is the target video's frame.
    """
    from talkbench.models.face_regions import masked_frames, polygon_mask, template68, upper_face

    opts = inputs.options or MFTFGGenerateOptions()
    s, n = model.cfg.image_size, inputs.n_frames
    target = getattr(inputs, "target_frames", None)
    inpaint = (target is not None and model.cfg.sampling.inpaint) if opts.inpaint is None else opts.inpaint
    if inpaint and target is None:
        raise ValueError("inpaint=true needs the target video's frames (a dubbing task); a one-shot task has none")
    if model.cfg.fusion.attention_axis == "channel" and opts.clip_frames != model.cfg.fusion.trained_length:
        raise ValueError(f"this checkpoint's fusion attends over channels: clip_frames must be "
                         f"{model.cfg.fusion.trained_length}")
    dev = inputs.device
    windows = _windows(model, inputs)
    pts = np.repeat(template68(s)[None], n, axis=0)
    ident = inputs.identity[0].transpose(2, 0, 1)[None]  # (1, 3, S, S) uint8
    ident_lower = polygon_mask(pts[:1], s)
    hidden = np.zeros((1, 1, s, s), np.float32)  # identity pixels the task withholds
    if target is not None:
        faces = np.asarray(target).transpose(0, 3, 1, 2)
        lower = np.asarray(inputs.target_lower, dtype=np.float32)[:, None]
        masked = faces * (1 - lower).astype(np.uint8)
        # a dubbing task's identity frame is a masked target frame: its black (−1) mouth is no face. Where
        # it is hidden the Identity-face gets 0, the value the lower face has in training (landmark split),
        # so the renderer's prior there is neutral, not black
        hidden = lower[:1]
        ident_lower = np.maximum(ident_lower, hidden[0])
    else:
        faces = np.zeros((n, 3, s, s), np.uint8)
        lower = polygon_mask(pts, s)[:, None]
        masked = masked_frames(faces, pts)
    lmk = upper_face(pts, s)
    L = min(opts.clip_frames, n) if model.cfg.fusion.attention_axis == "time" else opts.clip_frames
    starts = list(range(0, n, L))
    out = np.zeros((n, s, s, 3), np.uint8)
    g = torch.Generator(device=dev).manual_seed(opts.seed)

    def stack(a: np.ndarray, group: list[int]) -> torch.Tensor:  # L frames per start, the last one repeated
        idx = np.minimum(np.asarray(group)[:, None] + np.arange(L)[None], n - 1)
        return torch.from_numpy(np.ascontiguousarray(a[idx])).to(dev)

    with torch.inference_mode():
        for k in range(0, len(starts), opts.batch_clips):
            group = starts[k : k + opts.batch_clips]
            b = len(group)
            identity = to_image(torch.from_numpy(ident).to(dev)) * (1 - torch.from_numpy(hidden).to(dev))
            batch = {"identity": identity.expand(b, -1, -1, -1),
                     "identity_lower": torch.from_numpy(ident_lower).to(dev).expand(b, -1, -1, -1),
                     "identity_aus": model.identity_au_mean[None].expand(b, -1),
                     "windows": stack(windows, group), "landmarks": stack(lmk, group), "masked_gt": to_image(stack(masked, group))}
            gt = to_image(stack(faces, group)) if inpaint else None
            keep = (1 - stack(lower, group).float()) if inpaint else None
            frames = model.sample(batch, inpaint=inpaint, ddim_steps=opts.ddim_steps, gt=gt, keep=keep,
                                  generator=g, progress=opts.progress)
            frames = ((frames.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 1, 3, 4, 2).cpu().numpy()
            for st, f in zip(group, frames, strict=True):
                m = min(L, n - st)
                out[st : st + m] = f[:m]
    return out


def _tiny() -> tuple[str, ...]:
    aus = ("model.aus=[AU25,AU26]", "model.audio_to_au.aus=[AU25,AU26]", "model.au_attention.aus=[AU25,AU26]")
    return (*aus, "model.image_size=32", "model.audio_cnn_channels=[8]", "model.context_dim=32",
            "model.audio_to_au.cnn_channels=[8]", "model.audio_to_au.cnn_dim=16", "model.audio_to_au.lstm_hidden=8",
            "model.audio_to_au.lstm_layers=1", "model.audio_to_au.fc_dims=[8,4]", "model.audio_to_au.shared_trunk=true",
            "model.au_attention.conv_dim=8", "model.au_attention.res_blocks=1", "model.attention_mask=landmark",
            "model.fusion.channels=[8,16]", "model.fusion.dropout=0.0", "model.renderer.unet.channels=[8,16]",
            "model.renderer.unet.attention_levels=[1]", "model.renderer.unet.heads=2", "model.diffusion.ddim_steps=4",
            "model.ema_decay=0.9", "data.seq_len=4", "data.window_hops=25", "loss.val_ddim_steps=2")


SPEC = ModelSpec(
    module=MFTFG, config=MFTFGConfig, objective=MFTFGObjective, generate=generate,
    generate_options=MFTFGGenerateOptions,
    description="MFTFG-AU: AU/audio/landmark fusion conditioning a DDIM diffusion renderer (seed 002)",
    # the authors': 50-frame windows, 25-hop MFCC, AdamW, grad clip 0.1 (their lr ~1e-6 x batch is for
    # fine-tuning a pretrained LDM; from scratch talkbench uses 1e-4)
    defaults=("data.seq_len=50", "data.stride=25", "data.window_hops=25", "train.batch_size=2", "train.lr=1e-4",
              "train.betas=[0.9,0.999]", "train.weight_decay=0.01", "train.grad_clip=0.1"),
    tiny=_tiny(),
    small=("model.image_size=64", "model.attention_mask=landmark", "model.fusion.channels=[128,256]",
           "model.renderer.unet.channels=[32,64,128]", "model.audio_to_au.shared_trunk=true", "data.window_hops=25",
           "model.context_dim=64"),
    seq_len=8,
    overfit=((), 60, 5e-3, 1),
    extra={"variant": variant_name},
)
