"""Gaussian diffusion for the renderers: the linear-β schedule, noising, ε-prediction targets, DDPM and
DDIM sampling with optional inpainting (MFTFG-AU's protocol; SEEDS-DESIGN (A)).

Why hand-written rather than ``diffusers``' schedulers: the whole of it is ~150 lines of closed-form
arithmetic on one ``alphas_cumprod`` table; writing it here keeps the inpainting step (replace the
known region by the noised ground truth at every step, the exact ground truth after the last step)
in one readable place, keeps the dependency list short, and avoids diffusers' import-time cost on
the CPU test box. It is tested against the DDPM ancestral sampler (DDIM with every training step,
η = 1, is DDPM) and against the noising round trip.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import Field, model_validator

from talkbench.config import StrictModel

#: (x_t, t as a (B,) long tensor) -> predicted ε, same shape as x_t
EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class DiffusionConfig(StrictModel):
    timesteps: int = Field(1000, ge=2, description="T of training (the authors': 1000)")
    beta_start: float = Field(0.0015, gt=0.0, lt=1.0)
    beta_end: float = Field(0.0195, gt=0.0, lt=1.0)
    ddim_steps: int = Field(50, ge=1, description="sampling steps (25 fast, 50 default, 200 the authors')")
    eta: float = Field(0.0, ge=0.0, description="DDIM stochasticity; 0 = deterministic (the authors')")

    @model_validator(mode="after")
    def _check(self) -> DiffusionConfig:
        if self.beta_end < self.beta_start:
            raise ValueError(f"beta_end {self.beta_end} < beta_start {self.beta_start}")
        if self.ddim_steps > self.timesteps:
            raise ValueError(f"ddim_steps {self.ddim_steps} > timesteps {self.timesteps}")
        return self


def _bcast(v: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
    """Gather v[t] per sample and shape it (B, 1, 1, ...) to broadcast against an ndim tensor."""
    return v.to(t.device)[t].view(-1, *([1] * (ndim - 1)))


class GaussianDiffusion:
    """The schedule tables (float64 for accuracy, cast per use) and the samplers over them."""

    def __init__(self, cfg: DiffusionConfig):
        self.cfg = cfg
        # the authors' (CompVis LDM) "linear" schedule is linear in sqrt(β)
        betas = torch.linspace(cfg.beta_start ** 0.5, cfg.beta_end ** 0.5, cfg.timesteps, dtype=torch.float64) ** 2
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)

    @property
    def timesteps(self) -> int:
        return self.cfg.timesteps

    def abar(self, t: torch.Tensor, ndim: int, dtype: torch.dtype) -> torch.Tensor:
        return _bcast(self.alphas_cumprod, t, ndim).to(dtype)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε."""
        a = self.abar(t, x0.ndim, x0.dtype)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def predict_x0(self, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`q_sample` given ε."""
        a = self.abar(t, xt.ndim, xt.dtype)
        return (xt - (1 - a).sqrt() * eps) / a.sqrt()

    def sample_timesteps(self, n: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(0, self.timesteps, (n,), device=device, generator=generator)

    def ddim_timesteps(self, steps: int) -> list[int]:
        """Evenly spaced training steps, descending, always ending at 0 (uniform DDIM schedule)."""
        if not 1 <= steps <= self.timesteps:
            raise ValueError(f"ddim steps must be in 1..{self.timesteps}, got {steps}")
        seq = torch.linspace(0, self.timesteps - 1, steps).round().long().unique().tolist()
        return sorted(seq, reverse=True)

    @torch.no_grad()
    def ddim_sample(self, eps_model: EpsModel, shape: tuple[int, ...], *, steps: int | None = None,
                    eta: float | None = None, known: torch.Tensor | None = None, keep: torch.Tensor | None = None,
                    generator: torch.Generator | None = None, device: torch.device | str = "cpu",
                    progress: bool = False, x_T: torch.Tensor | None = None) -> torch.Tensor:
        """DDIM (Song et al. 2021) from pure noise to x0.

        Inpainting (``known`` and ``keep`` given, ``keep`` = 1 where the ground truth is kept): after
        every step the kept region is replaced by the ground truth noised to the step's level, and
        after the last step by the ground truth itself, so it comes out equal to ``known``.
        """
        steps = steps or self.cfg.ddim_steps
        eta = self.cfg.eta if eta is None else eta
        if (known is None) != (keep is None):
            raise ValueError("inpainting needs both known and keep")
        x = x_T if x_T is not None else torch.randn(shape, generator=generator, device=device)
        seq = self.ddim_timesteps(steps)
        nxt = [*seq[1:], -1]
        it = zip(seq, nxt, strict=True)
        if progress:
            from talkbench.progress import track

            it = track(list(it), f"DDIM {len(seq)} steps", unit="step", leave=False)
        ac = self.alphas_cumprod
        for t, tp in it:
            tt = torch.full((shape[0],), t, device=x.device, dtype=torch.long)
            eps = eps_model(x, tt).to(x.dtype)
            a_t = float(ac[t])
            a_p = float(ac[tp]) if tp >= 0 else 1.0
            x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
            sigma = eta * ((1 - a_p) / (1 - a_t) * (1 - a_t / a_p)) ** 0.5
            x = a_p ** 0.5 * x0 + max(1 - a_p - sigma ** 2, 0.0) ** 0.5 * eps
            if sigma > 0:
                x = x + sigma * torch.randn(x.shape, generator=generator, device=x.device)
            if keep is not None:
                if tp >= 0:
                    noise = torch.randn(x.shape, generator=generator, device=x.device)
                    known_t = self.q_sample(known, torch.full_like(tt, tp), noise)
                else:
                    known_t = known
                x = keep * known_t + (1 - keep) * x
        return x

    @torch.no_grad()
    def ddpm_sample(self, eps_model: EpsModel, shape: tuple[int, ...], *, generator: torch.Generator | None = None,
                    device: torch.device | str = "cpu", x_T: torch.Tensor | None = None,
                    noises: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Ancestral DDPM sampling with the posterior variance β̃_t (the reference DDIM is checked against)."""
        x = x_T if x_T is not None else torch.randn(shape, generator=generator, device=device)
        ac = self.alphas_cumprod
        for i, t in enumerate(range(self.timesteps - 1, -1, -1)):
            tt = torch.full((shape[0],), t, device=x.device, dtype=torch.long)
            eps = eps_model(x, tt).to(x.dtype)
            a_t, a_p, b_t = float(ac[t]), float(ac[t - 1]) if t > 0 else 1.0, float(self.betas[t])
            x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
            mean = (a_p ** 0.5 * b_t / (1 - a_t)) * x0 + ((1 - b_t) ** 0.5 * (1 - a_p) / (1 - a_t)) * x
            if t > 0:
                var = (1 - a_p) / (1 - a_t) * b_t
                z = noises[i] if noises is not None else torch.randn(x.shape, generator=generator, device=x.device)
                x = mean + var ** 0.5 * z
            else:
                x = mean
        return x
