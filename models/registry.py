"""Models by name: one ``ModelSpec`` per model, registered lazily so listing names imports no torch.

A spec bundles everything talkbench needs to know about a model (timm's create-by-name): the
``nn.Module`` class, its config class, its training objective, its generate entry (generators only, see
``talkbench.models.generate``) and the tiny/small variants tests and perf runs use. The spec lives in
the model's own file as ``SPEC``; the one line below that names it is the only place the name is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from talkbench.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    """What one registered model is made of.

    ``tiny`` / ``small`` are ``-o`` overrides: ``tiny`` trains in seconds on one CPU core at 32 px (the
    parametrised model tests), ``small`` is the CPU-friendly size of ``talkbench perf training``.
    ``overfit`` = (extra overrides, steps, lr, batch size) for the one-batch overfitting test.
    ``defaults`` are the published training setup (``-o`` overrides on top of the config classes'
    defaults: batch size, learning rate, clip length); ``configs/models/NAME.yaml`` is generated from
    the classes plus these (``python -m talkbench.models.configs``).
    """

    module: type  # nn.Module subclass: __init__(self, cfg)
    config: type  # its pydantic config class
    #: talkbench.models.objective.Objective subclass (carries LossConfig); None = not trained by the shared
    #: loop (a bundle of trained parts, e.g. yi2020, written by its recipe step)
    objective: type | None
    generate: Callable[..., Any] | None = None  # generators: (model, GenerationInputs) -> (T, S, S, 3) uint8
    generate_options: type | None = None  # StrictModel of the options generate accepts (checkpoint:CKPT?k=v)
    #: bundles of several files: (checkpoint folder, device) -> model (default: weights into ``build(cfg)``)
    load: Callable[..., Any] | None = None
    #: personalised generators: (model, frames (T, H, W, 3) uint8, audio 16 kHz, options) -> the model
    #: fine-tuned on that target (benchmark personalized tasks call it per clip, before generate)
    personalize: Callable[..., Any] | None = None
    reference: bool = True  # generate uses inputs.identity (False: the model draws its own target person)
    #: closed-form models (face3d): (shards, out_dir, overrides) -> exit code; ``talkbench train NAME`` calls it
    fit: Callable[..., int] | None = None
    description: str = ""
    defaults: tuple[str, ...] = ()
    tiny: tuple[str, ...] = ()
    small: tuple[str, ...] = ()
    seq_len: int = 16  # frames per sample in perf training
    overfit: tuple[tuple[str, ...], int, float, int] = ((), 60, 3e-3, 2)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def loss_config(self) -> type:
        return self.objective.LossConfig

    @property
    def is_generator(self) -> bool:
        return self.generate is not None

    @property
    def trainable(self) -> bool:
        """Trained by ``talkbench train`` (the shared loop); the generic model tests cover exactly these."""
        return self.objective is not None

    def build(self, cfg: Any) -> Any:
        """The model for a validated config (``cfg`` = ``spec.config`` instance)."""
        return self.module(cfg)


#: name -> ModelSpec. Add a model: write models/NAME.py with SPEC = ModelSpec(...) and one line here
#: (or ``MODELS.register(NAME)(SPEC)`` from anywhere, as tests/test_toy_generator.py does).
MODELS: Registry[ModelSpec] = Registry("model")
MODELS.register("au_classifier", lazy="talkbench.models.au_classifier:SPEC")
MODELS.register("audio_to_au", lazy="talkbench.models.audio_to_au:SPEC")
MODELS.register("au_rgan", lazy="talkbench.models.au_rgan:SPEC")
MODELS.register("tcn_sa", lazy="talkbench.models.tcn_sa:SPEC")
MODELS.register("sync_expert", lazy="talkbench.models.sync_expert:SPEC")
MODELS.register("au_attention", lazy="talkbench.models.au_attention:SPEC")
MODELS.register("face_autoencoder", lazy="talkbench.models.face_autoencoder:SPEC")
MODELS.register("mftfg", lazy="talkbench.models.mftfg:SPEC")
MODELS.register("face3d", lazy="talkbench.models.yi2020_cli:FACE3D_SPEC")
MODELS.register("audio_to_pose", lazy="talkbench.models.audio_to_pose:SPEC")
MODELS.register("memory_gan", lazy="talkbench.models.memory_gan:SPEC")
MODELS.register("yi2020", lazy="talkbench.models.yi2020:SPEC")


def get_spec(name: str) -> ModelSpec:
    return MODELS.get(name)


def trainable_names() -> list[str]:
    """Registered models the shared training loop trains (materialises the specs: imports torch)."""
    return [n for n, s in MODELS.items() if s.trainable]


def generator_names() -> list[str]:
    """Registered models with a generate entry (materialises the specs: imports torch)."""
    return [n for n, s in MODELS.items() if s.is_generator]
