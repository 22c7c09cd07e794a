"""AU estimation backends (stage 5), registered lazily by the name used in ``au.backend``.

A backend is ``fn(clip, cfg: AUConfig, ctx) -> {"AU25": (T,) float32, ...}`` on OpenFace's 0-5
scale, NaN on frames it cannot score; AUs it does not give are simply absent from the dict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from talkbench.registry import Registry

AUBackend = Callable[[Any, Any, Any], dict[str, np.ndarray]]
AU_BACKENDS: Registry[AUBackend] = Registry("AU backend")

AU_BACKENDS.register("geometric", lazy="talkbench.pipelines.au.geometric:geometric_backend")
AU_BACKENDS.register("openface", lazy="talkbench.pipelines.au.openface:openface_backend")
