"""The ``geometric`` AU backend: OpenFace-scale (0-5) intensities from face-mesh geometry.

Why geometry: OpenFace cannot be installed everywhere, and the speech AUs (lips part, jaw drop, lip
stretch, upper-lip raise) are mostly shape changes that 478 MediaPipe points see directly.

How, per clip:

1. *Frontalise*: every frame's rigid points (nose, eye corners, forehead, temples) are fitted to the
   clip's own mean shape in head coordinates (:func:`talkbench.pipelines.face.pose.reference_shape`), so
   features are measured in a face-fixed frame (x across the face, y eyes -> mouth, z into the scene)
   whatever the head pose, in units of the inter-pupillary distance (the face scale).
2. *Features*: a dozen named distances (:data:`FEATURES`), each oriented so that "larger = more of
   the movement", smoothed over time (Gaussian, ``smoothing_sigma`` frames).
3. *Person-specific baseline*: each feature minus its ``baseline_percentile`` over the clip's face
   frames -- the neutral face of this person, like OpenFace's dynamic calibration.
4. *Mapping*: per AU, ``clip(intercept + weights . features, 0, 5)`` with 1-3 features; the weights
   are fitted against real OpenFace output by :mod:`talkbench.pipelines.au.calibrate` and shipped in
   ``geometric_calibration.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from talkbench import facemesh as fm
from talkbench.errors import ConfigError
from talkbench.pipelines.au.base import AUConfig, AUInputs
from talkbench.pipelines.face.align import smooth_over_time, umeyama
from talkbench.pipelines.face.pose import reference_shape

if TYPE_CHECKING:
    from talkbench.pipelines.core import WorkerContext

DEFAULT_CALIBRATION = "geometric_calibration.json"
MAX_INTENSITY = 5.0


def _y(a: np.ndarray, *idx: int) -> np.ndarray:
    return a[:, list(idx), 1].mean(axis=1)


def _gap(a: np.ndarray, pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Mean vertical distance between (upper, lower) lip points."""
    return np.mean([a[:, lo, 1] - a[:, up, 1] for up, lo in pairs], axis=0)


# MediaPipe face-mesh indices (talkbench.facemesh): inner and outer lip midpoints, outer and inner mouth
# corners, chin, upper/lower eyelids.
_MID = ((fm.INNER_UPPER_LIP, fm.INNER_LOWER_LIP),)
_UP_IN, _LO_IN, _UP_OUT, _LO_OUT = fm.INNER_UPPER_LIP, fm.INNER_LOWER_LIP, fm.OUTER_UPPER_LIP, fm.OUTER_LOWER_LIP
_IN_R, _IN_L = fm.INNER_MOUTH_CORNERS

#: name -> function of frontal shapes (T, 478, 3) (y down, z into the scene) -> (T,); larger = more.
FEATURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "lip_gap": lambda a: _gap(a, (*_MID, *fm.LATERAL_INNER_LIP_PAIRS)),
    "lip_gap_mid": lambda a: _gap(a, _MID),
    "lip_gap_lateral": lambda a: _gap(a, fm.LATERAL_INNER_LIP_PAIRS),
    "jaw_drop": lambda a: _y(a, fm.CHIN),
    "lower_lip_drop": lambda a: _y(a, _LO_IN),
    "upper_lip_raise": lambda a: -_y(a, _UP_OUT),
    "upper_lip_inner_raise": lambda a: -_y(a, _UP_IN),
    "mouth_width": lambda a: np.abs(a[:, _IN_L, 0] - a[:, _IN_R, 0]),
    "corner_raise": lambda a: -_y(a, *fm.MOUTH_CORNERS),
    "chin_raise": lambda a: a[:, _LO_OUT, 1] - a[:, fm.CHIN, 1],  # lower lip towards the chin
    "lip_thinning": lambda a: -((a[:, _UP_IN, 1] - a[:, _UP_OUT, 1]) + (a[:, _LO_OUT, 1] - a[:, _LO_IN, 1])),
    "lip_pucker": lambda a: -(a[:, _UP_OUT, 2] + a[:, _LO_OUT, 2]) / 2,  # lips towards the camera
    "eye_closure": lambda a: -_gap(a, fm.EYELID_PAIRS),
}


@dataclass
class AUModel:
    """``intensity = clip(intercept + sum(weights * features), 0, 5)``."""

    features: list[str]
    weights: list[float]
    intercept: float = 0.0


@dataclass
class Calibration:
    """Everything that turns landmarks into intensities; stored as JSON next to this module."""

    aus: dict[str, AUModel]
    smoothing_sigma: float = 1.0
    baseline_percentile: float = 5.0
    #: provenance and the agreement table of the fit (free-form, written by calibrate.py)
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        try:
            aus = {name: AUModel(**m) for name, m in data["aus"].items()}
            cal = cls(aus, float(data.get("smoothing_sigma", 1.0)), float(data.get("baseline_percentile", 5.0)),
                      dict(data.get("meta", {})))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"AU calibration is malformed: {e!r}") from None
        for name, m in cal.aus.items():
            unknown = [f for f in m.features if f not in FEATURES]
            if unknown or len(m.features) != len(m.weights):
                raise ConfigError(f"AU calibration for {name}: unknown features {unknown} or "
                                  f"{len(m.weights)} weights for {len(m.features)} features")
        return cal

    @classmethod
    def load(cls, path: str | Path | None = None) -> Calibration:
        """The shipped calibration, or the JSON file at ``path``."""
        if path is None:
            text = resources.files("talkbench.pipelines.au").joinpath(DEFAULT_CALIBRATION).read_text("utf-8")
            return cls.from_dict(json.loads(text))
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"AU calibration file not found: {path}")
        try:
            return cls.from_dict(json.loads(path.read_text("utf-8")))
        except json.JSONDecodeError as e:
            raise ConfigError(f"AU calibration {path} is not valid JSON: {e}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")

    @property
    def feature_names(self) -> list[str]:
        return sorted({f for m in self.aus.values() for f in m.features})


def frontalise(landmarks: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(T, 478, 3) landmarks -> the same points in the clip's head frame, in inter-pupillary
    distances; NaN on invalid frames. Rigid-point fit per frame, so yaw/pitch/roll/scale cancel."""
    out = np.full(landmarks.shape, np.nan, dtype=np.float64)
    if not valid.any():
        return out
    pts = landmarks[valid].astype(np.float64)
    ref = reference_shape(pts, np.ones(len(pts), bool), interpupillary_cm=1.0)
    rigid = list(fm.RIGID_POINTS)
    s, rot, t = umeyama(ref[rigid], pts[:, rigid])  # ref -> frame; invert it
    out[valid] = (pts - t[:, None]) @ rot / s[:, None, None]  # R^T (x - t) / s, per frame
    return out


def clip_features(landmarks: np.ndarray, face_found: np.ndarray, names: list[str], smoothing_sigma: float,
                  baseline_percentile: float, baseline: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """Per-frame features relative to a neutral baseline; NaN where no face.

    The baseline is this clip's own (each feature's ``baseline_percentile``) unless ``baseline`` is given:
    the benchmark passes the REAL clip's baselines for the generated side, so a mouth held open on every
    frame is not subtracted away as that face's "neutral" (issue 10).
    """
    landmarks, valid = _check_inputs(landmarks, face_found)
    frontal = frontalise(landmarks, valid)
    out = {}
    for name in names:
        x = smooth_over_time(FEATURES[name](frontal), valid, smoothing_sigma)
        if baseline is not None:
            x = x - baseline[name]
        elif valid.any():
            x = x - np.percentile(x[valid], baseline_percentile)
        out[name] = x
    return out


def feature_baselines(landmarks: np.ndarray, face_found: np.ndarray, calibration: Calibration | None = None
                      ) -> dict[str, float]:
    """This clip's neutral value of every calibrated feature (what :func:`clip_features` subtracts)."""
    cal = calibration or Calibration.load()
    raw = clip_features(landmarks, face_found, cal.feature_names, cal.smoothing_sigma, cal.baseline_percentile,
                        baseline=dict.fromkeys(cal.feature_names, 0.0))
    _, valid = _check_inputs(landmarks, face_found)
    return {k: float(np.percentile(v[valid], cal.baseline_percentile)) if valid.any() else 0.0
            for k, v in raw.items()}


def apply_calibration(feats: dict[str, np.ndarray], cal: Calibration) -> dict[str, np.ndarray]:
    """Features -> {AU name: (T,) float32 intensity in [0, 5]} (NaN stays NaN)."""
    out = {}
    for au, m in cal.aus.items():
        y = m.intercept + sum(w * feats[f] for f, w in zip(m.features, m.weights, strict=True))
        out[au] = np.clip(y, 0.0, MAX_INTENSITY).astype(np.float32)
    return out


def estimate_aus(landmarks: np.ndarray, face_found: np.ndarray, calibration: Calibration | None = None,
                 baseline: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """(T, 478, 3) landmarks + (T,) face_found -> {"AU25": (T,) float32, ...}, NaN where no face.

    ``baseline``: the neutral feature values to subtract (another clip's, see :func:`feature_baselines`);
    default this clip's own."""
    cal = calibration or Calibration.load()
    feats = clip_features(landmarks, face_found, cal.feature_names, cal.smoothing_sigma, cal.baseline_percentile,
                          baseline)
    return apply_calibration(feats, cal)


def _check_inputs(landmarks: np.ndarray, face_found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    landmarks = np.asarray(landmarks)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (478, 3):
        raise ValueError(f"landmarks must be (T, 478, 3), got {landmarks.shape}")
    valid = np.asarray(face_found, dtype=bool)
    if valid.shape != (len(landmarks),):
        raise ValueError(f"face_found must be ({len(landmarks)},), got {valid.shape}")
    # a frame flagged as a face but with NaN points would poison the fit: treat it as faceless
    valid = valid & np.isfinite(landmarks).all(axis=(1, 2))
    return landmarks, valid


def _inputs(inputs: AUInputs, cfg: AUConfig, ctx: WorkerContext) -> tuple[np.ndarray, np.ndarray, Calibration]:
    if inputs.landmarks is None or inputs.face_found is None:
        raise RuntimeError("the geometric AU backend needs landmarks (run the landmarks stage first)")
    cal = ctx.resource(f"au_calibration:{cfg.calibration}", lambda: Calibration.load(cfg.calibration))
    return inputs.landmarks, inputs.face_found, cal


def geometric_backend(inputs: AUInputs, cfg: AUConfig, ctx: WorkerContext) -> dict[str, np.ndarray]:
    """The backend entry: needs the landmarks step's ``landmarks`` and ``face_found``; measured from
    ``inputs.neutral_baseline`` when given, else from this clip's own neutral face."""
    landmarks, face_found, cal = _inputs(inputs, cfg, ctx)
    return estimate_aus(landmarks, face_found, cal, inputs.neutral_baseline)


def _neutral_baseline(inputs: AUInputs, cfg: AUConfig, ctx: WorkerContext) -> dict[str, float]:
    """This clip's neutral feature values (:func:`feature_baselines`), for ``AUInputs.neutral_baseline``."""
    return feature_baselines(*_inputs(inputs, cfg, ctx))


geometric_backend.neutral_baseline = _neutral_baseline  # type: ignore[attr-defined]
