"""The metric protocol (the torchmetrics pattern): ``update()`` per clip, ``compute()`` to reduce.

The math lives in pure functions in each metric module (e.g. ``image.psnr_frames``) so the same code serves training,
evaluation and distributed reduction; a Metric class only keeps per-clip values and aggregates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from talkbench.registry import Registry


@dataclass
class AlignedVideo:
    """A video after the preparation pipeline's face tracking and alignment (same for both sides)."""

    faces: np.ndarray  # (T, S, S, 3) uint8 aligned face crops
    mouths: np.ndarray  # (T, h, w, 3) uint8 mouth crops
    landmarks: np.ndarray  # (T, 478, 3) float32, in aligned-crop pixel coordinates
    face_found: np.ndarray  # (T,) bool
    pose: np.ndarray  # (T, 6) float32: yaw, pitch, roll (degrees), tx, ty, tz
    aus: dict[str, np.ndarray]  # "AU25" -> (T,) float32 intensities on the 0-5 scale
    fps: float = 25.0
    #: the transforms this side was cropped with (source -> face crop, source -> mouth crop) and the
    #: source frame size: the ground truth's are reused to crop the generated side (benchmark/geometry.py)
    align_matrix: np.ndarray | None = None  # (T, 2, 3)
    mouth_matrix: np.ndarray | None = None  # (T, 2, 3)
    frame_hw: tuple[int, int] | None = None
    #: this side's own neutral AU feature values (geometric backend): the generated side is measured from
    #: the real clip's, never its own (no per-side normalisation)
    au_baseline: dict[str, float] | None = None


@dataclass
class ClipPair:
    """What a metric sees for one clip of a task."""

    clip_id: str
    generated: AlignedVideo
    reference: AlignedVideo | None  # None for unpaired tasks
    audio: np.ndarray  # float32 mono driving audio
    sample_rate: int = 16_000
    reference_image: np.ndarray | None = None  # aligned identity face, (S, S, 3) uint8
    #: CSIM's identity reference: an aligned frame of ANOTHER clip of the same speaker, when the task has one
    identity_image: np.ndarray | None = None
    #: the submission's frames as scored (their own size: full frames or crops), for metrics that crop
    #: them their own way (``lse-pycrop``: syncnet_python's face-box crop)
    frames: np.ndarray | None = None
    #: the generator's own Audio-to-AU prediction (AU -> (T,) intensities 0-5), when it exposes one
    predicted_aus: dict[str, np.ndarray] | None = None
    extra: dict = field(default_factory=dict)


class Metric:
    """Base class. Subclasses set the class attributes and implement ``score(pair)``."""

    name: ClassVar[str]
    variant: ClassVar[str] = "default"
    #: "higher" or "lower" is better, per value key returned by score(); a key absent here is
    #: informational (e.g. a signed offset) and has no better/worse direction
    directions: ClassVar[dict[str, Literal["higher", "lower"]]] = {}
    #: value keys that have a direction but must not rank submissions: they do not separate good from bad
    #: (e.g. av_xcorr_peak barely moves under a 5-frame desync). Shown, never used to order a leaderboard.
    unranked: ClassVar[frozenset[str]] = frozenset()
    requires_reference: ClassVar[bool] = True
    #: weights-store names this metric needs; missing weights make it unavailable, never zero
    weights: ClassVar[tuple[str, ...]] = ()
    #: True when the value exists only over the whole task (FID): per-clip rows stay empty and
    #: ``compute()`` gives the value; the harness must not bootstrap it over clips.
    corpus_level: ClassVar[bool] = False

    def __init__(self, device: str | None = None) -> None:
        """``device``: torch device for batched metrics (None = CUDA when available, else CPU)."""
        self.per_clip: dict[str, dict[str, float]] = {}
        self.device = device
        self._ready = False

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this metric cannot run here (missing weights...), or None when it can.

        The harness records the reason ("unavailable: ...") instead of a value; never zero.
        """
        if not cls.weights:
            return None
        from talkbench.weights import missing_message, missing_weights

        missing = missing_weights(cls.weights)
        if missing:  # per file: where it is expected, where to get it, the import command
            return "; ".join(missing_message(w) for w in missing)
        return None

    @classmethod
    def available(cls) -> bool:
        return cls.unavailable_reason() is None

    def not_scored_reason(self) -> str | None:
        """Why no clip got a value although the metric could run (e.g. the submission does not expose
        what it compares); the run records it as the metric's unavailable reason, never a zero."""
        return None

    def setup(self) -> None:
        """Load models once (called lazily by ``update``); raise WeightsMissingError when unavailable."""

    def _ensure_setup(self) -> None:
        if not self._ready:
            self.setup()
            self._ready = True

    def score(self, pair: ClipPair) -> dict[str, float]:
        raise NotImplementedError

    def update(self, pair: ClipPair) -> dict[str, float]:
        if self.requires_reference and pair.reference is None:
            raise ValueError(f"metric {self.name!r} needs a reference video; clip {pair.clip_id!r} has none")
        self._ensure_setup()
        values = self.score(pair)
        self.per_clip[pair.clip_id] = values
        return values

    def compute(self) -> dict[str, float]:
        """Mean over clips of each value, ignoring NaN (a clip where the value is undefined)."""
        keys = sorted({k for v in self.per_clip.values() for k in v})
        out = {}
        for k in keys:
            vals = np.array([v.get(k, np.nan) for v in self.per_clip.values()], dtype=np.float64)
            out[k] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
        return out

    def reset(self) -> None:
        self.per_clip.clear()


METRICS: Registry[type[Metric]] = Registry("metric")


def register_metric(name: str) -> Any:
    """``@register_metric("psnr")``: registers the class and gives it that ``name``. The decorator is the
    one place a metric's name is written: a class that sets ``name`` itself is an error."""

    def decorator(cls: type[Metric]) -> type[Metric]:
        if "name" in cls.__dict__:
            raise ValueError(f"metric class {cls.__name__} sets name={cls.__dict__['name']!r}: drop it, "
                             f"@register_metric({name!r}) names the class")
        cls.name = name
        return METRICS.register(name)(cls)

    return decorator
