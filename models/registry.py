"""Models by name. Each model class carries its pydantic config class as ``Config``."""

from __future__ import annotations

from talkbench.registry import Registry

#: name -> nn.Module subclass with a ``Config`` attribute and ``__init__(self, cfg)``
MODELS: Registry[type] = Registry("model")
register_model = MODELS.register


def load_all() -> None:
    """Import every model module so the registry is full (imports torch)."""
    from talkbench.models import au_classifier, au_rgan, audio_to_au, sync_expert, tcn_sa  # noqa: F401
