"""``face3d``: a linear 3-D face model on MediaPipe's 468 mesh vertices (seed 001, Yi et al. 2020).

Yi et al. fit a 3DMM (BFM09) per frame and regress 64 expression + 6 pose coefficients from audio.
BFM, FLAME and the DECA family all need registration downloads, so talkbench learns its own linear
model from the shards' landmarks (SEEDS-DESIGN §B):

1. **frontalise** every frame with the *stored* pose: ``X = R^T (x - c) / s`` where ``x`` are the
   478 landmarks in source pixels, ``R`` the rotation of the stored yaw/pitch/roll, ``s`` the
   pixels-per-cm scale implied by the stored ``tz`` (``s = focal / tz``, the pinhole camera of the
   pose stage) and ``c`` the centroid of the rigid points -> head coordinates in cm;
2. **identity**: PCA over per-clip neutral shapes (per-vertex median over the clip's frames),
   ``K_id`` components (~40; at most clips - 1);
3. **expression**: PCA over within-clip residuals (frame - clip neutral), ``K_exp`` = 64;
4. **coefficients** in closed form: ridge regression with a prior variance per component, one
   matrix product for all frames (:meth:`Face3D.expression_coefficients`).

The 70-d per-frame target of the audio net is (64 expression, yaw, pitch, roll, tx, ty, tz) exactly
as in Yi et al.'s layout (expression indices 80..143 + 3 angles + 3 translations).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from talkbench.config import StrictModel
from talkbench.errors import TalkbenchError
from talkbench.facemesh import RIGID_POINTS  # the points the pose stage fits: nose, eye corners, forehead

N_VERTICES = 468  # the mesh without the 10 iris points
TARGET_DIM_POSE = 6
#: smallest normalisation std of yaw, pitch, roll (deg) and tx, ty, tz (cm): a near-static training set
#: (GRID) must not blow a moving target's pose up to tens of standard deviations
POSE_STD_FLOOR = np.array([2.0, 2.0, 2.0, 0.5, 0.5, 0.5])

ARTIFACT = "face3d.safetensors"


class Face3DConfig(StrictModel):
    """``talkbench train face3d -o key=value`` (and the recipe's face3d step)."""

    n_id: int = Field(40, ge=1, description="identity components (at most clips - 1)")
    n_exp: int = Field(64, ge=1, description="expression components (Yi et al.: 64)")
    face3d_ridge: float = Field(1.0, ge=0.0, description="ridge strength of the closed-form coefficients")


# ---------------------------------------------------------------------------- pose <-> pixels
def rotation_matrices(pose: np.ndarray) -> np.ndarray:
    """(T, 6) stored pose -> (T, 3, 3) rotations R with ``x_pixels ~ s R X_head + c``.

    The inverse of ``talkbench.pipelines.face.estimate_pose``: it stores yaw = -ey, pitch = -ex,
    roll = ez of the intrinsic Y-X-Z Euler angles of R.
    """
    from scipy.spatial.transform import Rotation

    pose = np.asarray(pose, dtype=np.float64)
    angles = np.stack([-pose[:, 0], -pose[:, 1], pose[:, 2]], axis=1)
    return Rotation.from_euler("YXZ", angles, degrees=True).as_matrix()


def focal_length(frame_h: int, vertical_fov_deg: float = 63.0) -> float:
    """The pose stage's pinhole focal length in pixels (principal point at the frame centre)."""
    return (frame_h / 2) / math.tan(math.radians(vertical_fov_deg) / 2)


def frontalise(landmarks: np.ndarray, pose: np.ndarray, frame_h: int, vertical_fov_deg: float = 63.0) -> np.ndarray:
    """(T, >=468, 3) landmarks in source pixels + (T, 6) stored pose -> (T, 468, 3) head coordinates (cm)."""
    x = np.asarray(landmarks, dtype=np.float64)[:, :N_VERTICES]
    rot = rotation_matrices(pose)
    s = focal_length(frame_h, vertical_fov_deg) / np.asarray(pose, dtype=np.float64)[:, 5]
    c = x[:, list(RIGID_POINTS)].mean(1, keepdims=True)
    return ((x - c) @ rot) / s[:, None, None]  # row form of R^T (x - c) / s


def to_pixels(shapes: np.ndarray, pose: np.ndarray, frame_hw: tuple[int, int],
              vertical_fov_deg: float = 63.0) -> np.ndarray:
    """(T, 468, 3) head-coordinate shapes posed into source pixels: ``s R X + c`` with the rigid
    centroid ``c`` at the stored (tx, ty) and ``s = focal / tz``; z keeps the pixel scale (larger =
    farther from the camera)."""
    h, w = frame_hw
    pose = np.asarray(pose, dtype=np.float64)
    rot = rotation_matrices(pose)
    s = focal_length(h, vertical_fov_deg) / pose[:, 5]
    shapes = np.asarray(shapes, dtype=np.float64)
    shapes = shapes - shapes[:, list(RIGID_POINTS)].mean(1, keepdims=True)
    c = np.stack([pose[:, 3] * s + w / 2, pose[:, 4] * s + h / 2, np.zeros_like(s)], axis=1)
    return s[:, None, None] * (shapes @ np.swapaxes(rot, 1, 2)) + c[:, None, :]


# ---------------------------------------------------------------------------- the model
@dataclass
class Face3D:
    """mean (468, 3); bases (K, 1404) with orthonormal rows; variances (K,) of each coefficient."""

    mean: np.ndarray
    id_basis: np.ndarray
    id_var: np.ndarray
    exp_basis: np.ndarray
    exp_var: np.ndarray
    ridge: float = 1.0
    target_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    target_std: np.ndarray = field(default_factory=lambda: np.zeros(0))
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def n_exp(self) -> int:
        return len(self.exp_var)

    @property
    def n_id(self) -> int:
        return len(self.id_var)

    @property
    def target_dim(self) -> int:
        return self.n_exp + TARGET_DIM_POSE

    # -- coefficients: closed-form ridge, all frames in one product -----------------------------------
    def _solver(self, basis: np.ndarray, var: np.ndarray) -> np.ndarray:
        """(K, 1404) P with coefficients = P @ residual: argmin ||r - B^T a||^2 + ridge * sum(a_k^2 / var_k)."""
        prior = self.ridge / np.maximum(var, 1e-12)
        return np.linalg.solve(basis @ basis.T + np.diag(prior), basis)

    def identity_coefficients(self, neutral: np.ndarray) -> np.ndarray:
        """(468, 3) neutral shape -> (K_id,) identity coefficients."""
        r = (np.asarray(neutral, np.float64) - self.mean).reshape(-1)
        return self._solver(self.id_basis, self.id_var) @ r

    def identity_shape(self, id_coeffs: np.ndarray) -> np.ndarray:
        return self.mean + (np.asarray(id_coeffs, np.float64) @ self.id_basis).reshape(N_VERTICES, 3)

    def expression_coefficients(self, shapes: np.ndarray, neutral: np.ndarray) -> np.ndarray:
        """(T, 468, 3) frontal shapes, (468, 3) their clip's neutral -> (T, K_exp), one matrix product."""
        r = (np.asarray(shapes, np.float64) - neutral).reshape(len(shapes), -1)
        return r @ self._solver(self.exp_basis, self.exp_var).T

    def expression_coefficients_naive(self, shapes: np.ndarray, neutral: np.ndarray) -> np.ndarray:
        """The textbook per-frame loop (one least-squares solve each): the perf baseline."""
        b = self.exp_basis.T
        a = b.T @ b + np.diag(self.ridge / np.maximum(self.exp_var, 1e-12))
        out = np.empty((len(shapes), self.n_exp))
        for i, x in enumerate(np.asarray(shapes, np.float64)):
            out[i] = np.linalg.solve(a, b.T @ (x - neutral).reshape(-1))
        return out

    def reconstruct(self, neutral: np.ndarray, exp_coeffs: np.ndarray) -> np.ndarray:
        """(468, 3) neutral + (T, K_exp) -> (T, 468, 3) frontal shapes."""
        e = np.asarray(exp_coeffs, np.float64)
        return neutral[None] + (e @ self.exp_basis).reshape(len(e), N_VERTICES, 3)

    # -- the 70-d target ----------------------------------------------------------------------------
    def targets(self, exp_coeffs: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """(T, K_exp + 6): expression coefficients then yaw, pitch, roll (deg), tx, ty, tz (cm)."""
        return np.concatenate([exp_coeffs, pose], axis=1).astype(np.float32)

    def set_normalisation(self, targets: np.ndarray) -> None:
        """Per-dimension mean and std of (T, 70) targets (pose std floored at :data:`POSE_STD_FLOOR`)."""
        t = np.asarray(targets, np.float64)
        self.target_mean = t.mean(0)
        std = np.maximum(t.std(0), 1e-6)
        std[self.n_exp :] = np.maximum(std[self.n_exp :], POSE_STD_FLOOR)
        self.target_std = std

    def normalise(self, targets: np.ndarray) -> np.ndarray:
        return ((targets - self.target_mean) / self.target_std).astype(np.float32)

    def denormalise(self, z: np.ndarray) -> np.ndarray:
        return (np.asarray(z, np.float64) * self.target_std + self.target_mean).astype(np.float32)

    # -- persistence --------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        import os

        from safetensors.numpy import save_file

        path = Path(path)
        if path.suffix != ".safetensors":
            path.mkdir(parents=True, exist_ok=True)
            path = path / ARTIFACT
        arrays = {k: np.ascontiguousarray(getattr(self, k), dtype=np.float32) for k in
                  ("mean", "id_basis", "id_var", "exp_basis", "exp_var", "target_mean", "target_std")}
        meta = {"talkbench_model": "face3d", "ridge": str(self.ridge), "report": json.dumps(self.report, sort_keys=True)}
        tmp = path.with_name(path.name + ".tmp")
        save_file(arrays, str(tmp), metadata=meta)
        os.replace(tmp, path)  # never a half-written artifact under the real name
        return path

    @classmethod
    def load(cls, path: str | Path) -> Face3D:
        from safetensors import safe_open

        path = Path(path)
        if path.is_dir():
            path = path / ARTIFACT
        if not path.is_file():
            raise TalkbenchError(f"face3d artifact not found: {path} (train one: talkbench train face3d --shards DIR)")
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            if meta.get("talkbench_model") != "face3d":
                raise TalkbenchError(f"{path} is not a face3d artifact")
            arrays = {k: f.get_tensor(k).astype(np.float64) for k in f.keys()}  # noqa: SIM118
        return cls(ridge=float(meta["ridge"]), report=json.loads(meta.get("report", "{}")), **arrays)


# ---------------------------------------------------------------------------- fitting
@dataclass
class ClipShapes:
    """The frontal shapes of one clip's usable frames, with their stored pose."""

    clip_id: str
    shapes: np.ndarray  # (T, 468, 3) head coordinates (cm)
    pose: np.ndarray  # (T, 6)

    @property
    def neutral(self) -> np.ndarray:
        """Per-vertex median over frames: robust to speech and blinks."""
        return np.median(self.shapes, axis=0)


def _pca(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Rows of x (already centred) -> (basis (k, D), variances (k,), explained fraction at k)."""
    _, sig, vt = np.linalg.svd(x, full_matrices=False)
    var = sig**2 / max(len(x) - 1, 1)
    k = min(k, len(var))
    total = var.sum()
    return vt[:k], var[:k], float(var[:k].sum() / total) if total > 0 else 1.0


def fit(clips: list[ClipShapes], n_id: int = 40, n_exp: int = 64, ridge: float = 1.0) -> Face3D:
    """Fit the identity and expression bases (PCA) and the target normalisation from training clips."""
    if len(clips) < 2:
        raise TalkbenchError(f"face3d needs at least 2 clips to learn an identity basis, got {len(clips)}")
    neutrals = np.stack([c.neutral for c in clips]).reshape(len(clips), -1)
    mean = neutrals.mean(0)
    id_basis, id_var, id_expl = _pca(neutrals - mean, min(n_id, len(clips) - 1))
    resid = np.concatenate([(c.shapes - c.neutral).reshape(len(c.shapes), -1) for c in clips])
    exp_basis, exp_var, exp_expl = _pca(resid, n_exp)
    model = Face3D(mean.reshape(N_VERTICES, 3), id_basis, id_var, exp_basis, exp_var, ridge)
    targets = np.concatenate([model.targets(model.expression_coefficients(c.shapes, c.neutral), c.pose) for c in clips])
    model.set_normalisation(targets)
    model.report = {"n_clips": len(clips), "n_frames": int(len(resid)), "n_id": model.n_id, "n_exp": model.n_exp,
                    "identity_explained": id_expl, "expression_explained": exp_expl, "ridge": ridge}
    return model


def explained_variance(model: Face3D, clips: list[ClipShapes], k: int | None = None) -> float:
    """Fraction of the within-clip (expression) variance of ``clips`` that the first k components
    reconstruct with the fitted coefficients."""
    k = model.n_exp if k is None else k
    num = den = 0.0
    for c in clips:
        r = (c.shapes - c.neutral).reshape(len(c.shapes), -1)
        e = r @ model.exp_basis[:k].T  # orthonormal rows: plain projection (no ridge shrinkage)
        num += float(((r - e @ model.exp_basis[:k]) ** 2).sum())
        den += float((r**2).sum())
    return 1.0 - num / den if den > 0 else 1.0


def crop_pixel_errors(model: Face3D, clip: ClipShapes, neutral: np.ndarray, landmarks: np.ndarray,
                      align_matrix: np.ndarray, frame_hw: tuple[int, int], fov: float = 63.0) -> dict[str, float]:
    """Mean per-vertex 2-D error in aligned-crop pixels of (mean shape, identity only, identity +
    expression) reconstructions of ``clip``'s frames, each posed with the stored pose."""
    from talkbench.pipelines.face import apply_affine

    id_shape = model.identity_shape(model.identity_coefficients(neutral))
    variants = {
        "mean_shape": np.repeat(model.mean[None], len(clip.shapes), 0),
        "identity": np.repeat(id_shape[None], len(clip.shapes), 0),
        "identity_expression": model.reconstruct(id_shape, model.expression_coefficients(clip.shapes, id_shape)),
    }
    real = apply_affine(align_matrix.astype(np.float64), landmarks[:, :N_VERTICES, :2].astype(np.float64))
    out = {}
    for name, shapes in variants.items():
        px = to_pixels(shapes, clip.pose, frame_hw, fov)[..., :2]
        crop = apply_affine(align_matrix.astype(np.float64), px)
        out[name] = float(np.linalg.norm(crop - real, axis=-1).mean())
    return out
