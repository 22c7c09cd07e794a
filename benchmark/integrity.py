"""Integrity checks per clip: flags that say a result should not be trusted as a generator's output.

``suspect_copy``: the generated MOUTH crop is a near-copy of the ground truth's (PSNR on the aligned
mouth crops at or above :data:`SUSPECT_COPY_MOUTH_PSNR_DB`). The mouth is what a talking-head model
must synthesise, so inpainting methods, which copy everything outside the mouth by design, are not
flagged, while a folder holding the (public) ground-truth videos, even re-encoded, is.

The line, measured on the five GRID fixtures (mean per-frame PSNR of the mouth crop, cropped in the
ground truth's geometry; README "Integrity flags"): a ground-truth copy re-encoded as MPEG-4 Part 2 at
4 Mbit/s keeps 40.3-41.0 dB on every clip; the same video delayed by 5 frames reaches 31.3-34.9 dB, a
blurred and noised copy (Gaussian sigma 1.5 px + noise sigma 4) 32.5-35.4 dB, the reference frame
repeated 25.3-31.0 dB, the copy with the head displaced by 12 px 15.9-19.0 dB, and the demo's trained
generator ~19 dB on the whole face. The line sits at 38.0 dB: 2.3 dB below the lowest re-encode, 2.6 dB
above the highest degraded copy.
"""

from __future__ import annotations

import math

import numpy as np

from talkbench.benchmark.metrics.base import ClipPair
from talkbench.benchmark.metrics.common import paired_mask
from talkbench.benchmark.metrics.image import psnr_frames

SUSPECT_COPY_MOUTH_PSNR_DB = 38.0
FLAGS = {"suspect_copy": f"the generated mouth crop is a near-copy of the ground truth "
                         f"(mouth PSNR >= {SUSPECT_COPY_MOUTH_PSNR_DB} dB)"}


def mouth_psnr(pair: ClipPair) -> float:
    """Mean per-frame PSNR (dB) of the aligned mouth crops, generated vs ground truth; NaN when unpaired."""
    if pair.reference is None:
        return math.nan
    m = paired_mask(pair.generated, pair.reference)
    n = len(m)
    if not m.any():
        return math.nan
    return float(psnr_frames(pair.generated.mouths[:n][m], pair.reference.mouths[:n][m]).mean())


def check_clip(pair: ClipPair) -> dict[str, float | bool]:
    """The integrity values and flags of one scored clip (``flag.<name>`` columns of the per-clip table)."""
    psnr = mouth_psnr(pair)
    return {"integrity.mouth_psnr": psnr, "flag.suspect_copy": bool(np.isfinite(psnr) and
                                                                     psnr >= SUSPECT_COPY_MOUTH_PSNR_DB)}
