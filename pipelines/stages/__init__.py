"""Per-clip stages, one module each. ``talkbench.pipelines.core.STAGES`` names them (lazily, in the
default order); a module registers its stage with ``@register_stage`` when it is imported."""
