"""Per-clip stages. Importing this package registers every stage in ``talkbench.pipelines.core.STAGES``."""

from talkbench.pipelines.stages import (  # noqa: F401  (import registers)
    align,
    au,
    audio_features,
    decode,
    encode,
    head,
    landmarks,
    pose,
    quality,
)
