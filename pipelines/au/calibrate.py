"""Fit the geometric backend's feature -> intensity mapping against real OpenFace output.

    python -m talkbench.pipelines.au.calibrate --fixtures ../shared/fixtures --out FILE

Pairs: every source frame of each fixture clip (MediaPipe landmarks, the pipeline's tracker) with the
OpenFace row of the same frame (row ``frame`` k = source frame k-1, ``success == 1`` only). Pairing on
*source* frames keeps the variable-frame-rate clip usable: OpenFace's timestamps there are not real
times, but its frame numbers are. The model per AU is a least-squares line over 1-3 named features
(:data:`AU_FEATURES`), each clip weighted equally, clipped to [0, 5]. Agreement is Pearson r over each
clip's frames, averaged over clips (clips where OpenFace's output is constant are skipped), and MAE;
reported in-sample and leave-one-clip-out (fit on the other clips, score the held-out one).

The feature lists were chosen by looking at all fixture clips, so the leave-one-out numbers measure
how well the *weights* generalise, not the choice of features. :func:`reference_ceilings` says how
much of a clip's OpenFace signal a lip-gap calibration could follow at best, so a low score can be
told apart from a bad fit.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from talkbench.pipelines.au.geometric import AUModel, Calibration, clip_features
from talkbench.pipelines.au.openface import read_openface_csv

if TYPE_CHECKING:
    import pandas as pd

#: the features of each AU's model (1-3, interpretable; see geometric.FEATURES)
AU_FEATURES: dict[str, list[str]] = {
    "AU10": ["upper_lip_raise", "lower_lip_drop"],  # OpenFace's AU10 also rises with mouth opening
    "AU12": ["corner_raise", "mouth_width"],
    "AU14": ["mouth_width"],
    "AU15": ["lip_pucker"],
    "AU17": ["chin_raise", "upper_lip_inner_raise"],
    "AU20": ["mouth_width", "corner_raise"],
    "AU23": ["upper_lip_raise", "lip_thinning"],
    # one gap feature: adding the lateral-vs-middle shape of the opening gains ~0.01 r on GRID only
    # through large, opposite-signed weights that chase one clip (brbk7n), so it is left out. Also tried,
    # none above 0.84 leave-one-out on GRID: inner-lip polygon area, other inner-lip point pairs (single,
    # min/median/max, non-negative mixes), sqrt/log/tanh/min transforms of the gap, other baseline
    # percentiles and smoothing widths, other face scales. Even the best monotone map of the gap fitted
    # to each clip separately reaches only r = 0.61 on brbk7n (GRID mean 0.90, an overfitted ceiling).
    "AU25": ["lip_gap"],
    "AU26": ["jaw_drop"],
    "AU45": ["eye_closure"],
}
#: the AUs with agreement targets (mean r over the GRID clips) and the targets
TARGETS = {"AU25": 0.85, "AU26": 0.75, "AU10": 0.5, "AU20": 0.5}
SMOOTHING_SIGMA = 1.0
BASELINE_PERCENTILE = 5.0
#: OpenFace output this flat over a clip carries no signal to correlate with
MIN_TARGET_STD = 0.02
DEFAULT_OUT = Path(__file__).with_name("geometric_calibration.json")


@dataclass
class ClipSample:
    """One fixture clip's paired frames: baseline-normalised features and OpenFace intensities."""

    name: str
    features: dict[str, np.ndarray]  # (N,) each
    targets: dict[str, np.ndarray]  # AU name -> (N,)
    #: OpenFace's own inner-lip gap on the same frames (from its 68 landmarks), for the ceiling check
    openface_lip_gap: np.ndarray | None = None

    @property
    def is_grid(self) -> bool:
        return self.name.endswith(".mpg")


def source_frames(path: Path) -> np.ndarray:
    """Every decoded frame in presentation order, (T, H, W, 3) RGB -- no fps resampling, so index k
    is OpenFace's frame k + 1 (OpenCV reads the same sequence)."""
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])])


def source_landmarks(path: Path, tracker: object) -> tuple[np.ndarray, np.ndarray]:
    from talkbench.pipelines.face import LandmarksConfig, detect_landmarks

    track = detect_landmarks(source_frames(path), tracker, LandmarksConfig().max_gap_frames)
    return track.landmarks, track.face_found


def fixture_pairs(fixtures: Path) -> list[tuple[Path, Path]]:
    """(video, OpenFace CSV) for every clip with a recorded dynamic-model CSV."""
    videos = sorted((fixtures / "grid").glob("*.mpg")) + sorted((fixtures / "wild").glob("*.mp4"))
    pairs = [(v, fixtures / "openface" / f"{v.stem}.csv") for v in videos]
    pairs = [p for p in pairs if p[1].is_file()]
    if not pairs:
        raise SystemExit(f"no fixture clips with OpenFace CSVs under {fixtures}")
    return pairs


def load_samples(pairs: list[tuple[Path, Path]], features: list[str] | None = None) -> list[ClipSample]:
    """Landmarks -> features on every source frame, paired with the OpenFace rows of those frames."""
    from talkbench.pipelines.face import FaceMeshTracker, LandmarksConfig

    names = features or sorted({f for fs in AU_FEATURES.values() for f in fs})
    samples = []
    with FaceMeshTracker.from_config(LandmarksConfig()) as tracker:
        for video, csv in pairs:
            landmarks, found = source_landmarks(video, tracker)
            feats = clip_features(landmarks, found, names, SMOOTHING_SIGMA, BASELINE_PERCENTILE)
            df = read_openface_csv(csv)
            idx = df["frame"].to_numpy(np.int64) - 1
            keep = (df["success"].to_numpy() == 1) & (idx >= 0) & (idx < len(found))
            keep[keep] &= found[idx[keep]]
            idx = idx[keep]
            samples.append(ClipSample(
                video.name,
                {f: v[idx] for f, v in feats.items()},
                {au: df[f"{au}_r"].to_numpy(np.float64)[keep] for au in AU_FEATURES if f"{au}_r" in df},
                openface_lip_gap(df)[keep],
            ))
    return samples


#: OpenFace's 68-point inner lip: (upper, lower) pairs 61/67, 62/66, 63/65; eye outer corners 36/45
_OPENFACE_INNER_LIP = ((61, 67), (62, 66), (63, 65))


def openface_lip_gap(df: pd.DataFrame) -> np.ndarray:
    """OpenFace's own 2-D inner-lip gap per row, in eye-corner distances (NaN without landmarks)."""
    if not all(f"y_{i}" in df for pair in _OPENFACE_INNER_LIP for i in pair):
        return np.full(len(df), np.nan)
    gap = np.mean([df[f"y_{lo}"].to_numpy() - df[f"y_{up}"].to_numpy() for up, lo in _OPENFACE_INNER_LIP], axis=0)
    eyes = np.hypot(df["x_45"].to_numpy() - df["x_36"].to_numpy(), df["y_45"].to_numpy() - df["y_36"].to_numpy())
    return gap / eyes


def reference_ceilings(sample: ClipSample, au: str = "AU25", feature: str = "lip_gap") -> dict[str, float]:
    """How far *any* calibration of ``feature`` can follow OpenFace's ``au`` on this clip.

    - ``monotone_fit_r``: r of the best non-decreasing map of the feature fitted to this clip's own
      OpenFace values (isotonic regression, in-sample) -- an optimistic upper bound for every
      single-feature calibration, whatever its shape or weights.
    - ``openface_self_r``: r between OpenFace's AU and the inner-lip gap of OpenFace's *own* landmarks;
      low means OpenFace's AU is not following the lip opening on this clip.
    """
    from sklearn.isotonic import IsotonicRegression

    x, y = sample.features[feature], sample.targets[au]
    fitted = IsotonicRegression(out_of_bounds="clip").fit_transform(x, y)
    out = {"monotone_fit_r": score(fitted, y)[0], "openface_self_r": float("nan")}
    gap = sample.openface_lip_gap
    if gap is not None and np.isfinite(gap).all():
        out["openface_self_r"] = score(gap, y)[0]
    return out


def fit_au(samples: list[ClipSample], au: str, features: list[str]) -> AUModel:
    """Least squares with an intercept; every clip counts equally whatever its length."""
    xs, ys, ws = [], [], []
    for s in samples:
        if au not in s.targets:
            continue
        xs.append(np.stack([s.features[f] for f in features], axis=1))
        ys.append(s.targets[au])
        ws.append(np.full(len(ys[-1]), 1.0 / np.sqrt(len(ys[-1]))))
    x, y, w = np.concatenate(xs), np.concatenate(ys), np.concatenate(ws)
    a = np.c_[x, np.ones(len(x))] * w[:, None]
    coef = np.linalg.lstsq(a, y * w, rcond=None)[0]
    return AUModel(list(features), [round(float(c), 5) for c in coef[:-1]], round(float(coef[-1]), 5))


def fit(samples: list[ClipSample], spec: dict[str, list[str]] | None = None) -> Calibration:
    spec = spec or AU_FEATURES
    return Calibration({au: fit_au(samples, au, fs) for au, fs in spec.items()}, SMOOTHING_SIGMA, BASELINE_PERCENTILE)


def predict(sample: ClipSample, model: AUModel) -> np.ndarray:
    y = model.intercept + sum(w * sample.features[f] for f, w in zip(model.features, model.weights, strict=True))
    return np.clip(y, 0.0, 5.0)


def score(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """(Pearson r, MAE); r is NaN where either side is flat (no signal to correlate)."""
    mae = float(np.mean(np.abs(pred - target)))
    if target.std() < MIN_TARGET_STD or pred.std() < 1e-9:
        return float("nan"), mae
    return float(np.corrcoef(pred, target)[0, 1]), mae


def agreement(samples: list[ClipSample], spec: dict[str, list[str]] | None = None,
              leave_one_out: bool = False) -> dict[str, dict[str, tuple[float, float]]]:
    """{clip name: {AU: (r, MAE)}}, in-sample or with each clip held out of its own fit."""
    spec = spec or AU_FEATURES
    full = fit(samples, spec) if not leave_one_out else None
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for s in samples:
        cal = full or fit([t for t in samples if t is not s], spec)
        out[s.name] = {au: score(predict(s, cal.aus[au]), s.targets[au]) for au in spec if au in s.targets}
    return out


def score_calibration(cal: Calibration, samples: list[ClipSample]) -> dict[str, dict[str, tuple[float, float]]]:
    """{clip name: {AU: (r, MAE)}} of a given (e.g. the shipped) calibration."""
    return {s.name: {au: score(predict(s, m), s.targets[au]) for au, m in cal.aus.items() if au in s.targets}
            for s in samples}


def summarise(per_clip: dict[str, dict[str, tuple[float, float]]], clips: list[str]) -> dict[str, dict[str, float]]:
    """{AU: {"r": mean r over clips, "mae": mean MAE, "n": clips with an r}}."""
    aus = sorted({au for c in clips for au in per_clip[c]})
    out = {}
    for au in aus:
        rs = [per_clip[c][au][0] for c in clips if au in per_clip[c]]
        maes = [per_clip[c][au][1] for c in clips if au in per_clip[c]]
        valid = [r for r in rs if np.isfinite(r)]
        out[au] = {"r": float(np.mean(valid)) if valid else float("nan"), "mae": float(np.mean(maes)),
                   "n": len(valid)}
    return out


def markdown_table(samples: list[ClipSample], insample: dict, loo: dict, ceilings: dict) -> str:
    grid = [s.name for s in samples if s.is_grid]
    every = [s.name for s in samples]
    cols = [("GRID in-sample", insample, grid), ("GRID leave-one-out", loo, grid),
            ("all in-sample", insample, every), ("all leave-one-out", loo, every)]
    sums = [(title, summarise(table, clips)) for title, table, clips in cols]
    lines = ["| AU | target r | " + " | ".join(f"{t} r / MAE" for t, _ in sums) + " |",
             "|---|---|" + "---|" * len(sums)]
    for au in sorted(AU_FEATURES):
        cells = []
        for _, s in sums:
            v = s.get(au)
            cells.append("n/a" if v is None or not v["n"] else f"{v['r']:.2f} / {v['mae']:.2f} (n={v['n']})")
        lines.append(f"| {au} | {TARGETS.get(au, '')} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Per clip, leave-one-out r: " + "; ".join(
        f"{c}: " + ", ".join(f"{au} {loo[c][au][0]:.2f}" for au in TARGETS if au in loo[c]) for c in every))
    lines += ["", "AU25 reference ceilings per clip (r; see reference_ceilings):",
              "| clip | leave-one-out | best monotone map of lip_gap, fitted to the clip | "
              "OpenFace's own lip gap |", "|---|---|---|---|"]
    for s in samples:
        c = ceilings[s.name]
        lines.append(f"| {s.name} | {loo[s.name]['AU25'][0]:.2f} | {c['monotone_fit_r']:.2f} | "
                     f"{c['openface_self_r']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m talkbench.pipelines.au.calibrate", description=__doc__.split("\n")[0])
    p.add_argument("--fixtures", type=Path, default=Path("../shared/fixtures"),
                   help="folder with grid/, wild/ and openface/ (default ../shared/fixtures)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"calibration JSON to write (default {DEFAULT_OUT})")
    args = p.parse_args(argv)
    pairs = fixture_pairs(args.fixtures)
    samples = load_samples(pairs)
    insample, loo = agreement(samples), agreement(samples, leave_one_out=True)
    ceilings = {s.name: reference_ceilings(s) for s in samples}
    cal = fit(samples)
    grid = [s.name for s in samples if s.is_grid]
    cal.meta = {
        "fitted_on": [s.name for s in samples],
        "frames": {s.name: int(len(next(iter(s.targets.values())))) for s in samples},
        "reference": "OpenFace 2.2 FeatureExtraction, dynamic AU models (fixtures/openface/*.csv)",
        "date": date.today().isoformat(),
        "agreement_grid_in_sample": summarise(insample, grid),
        "agreement_grid_leave_one_out": summarise(loo, grid),
        "au25_reference_ceilings": {name: {k: round(v, 3) for k, v in c.items()} for name, c in ceilings.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cal.save(args.out)
    print(markdown_table(samples, insample, loo, ceilings))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
