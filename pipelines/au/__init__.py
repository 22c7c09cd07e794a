"""AU estimation backends (the ``au`` step), registered lazily by the name used in ``au.backend``.

The contract (:class:`AUInputs` in, intensities out), the settings and the registry are in
:mod:`talkbench.pipelines.au.base`; the backends are :mod:`.geometric` and :mod:`.openface`.
"""

from talkbench.pipelines.au.base import AU_BACKENDS, AUBackend, AUConfig, AUInputs, estimate_aus

__all__ = ["AU_BACKENDS", "AUBackend", "AUConfig", "AUInputs", "estimate_aus"]
