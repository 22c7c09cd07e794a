"""Full-reference comparisons in the GROUND TRUTH's geometry (issue 10, item 3).

Tracking each side on its own gives each its own alignment transform: on a blurred copy of the ground
truth the two differ by ~1 px, which costs ~2.8 dB of PSNR, and a generator that puts the head in the
wrong place is silently re-aligned and not penalised. So the task declares the geometry of its outputs:

- ``full``: frames the size of the source video. The generated frames are cropped with the ground
  truth's OWN face and mouth transforms (variant ``align-gt``); :func:`head_placement_error` measures how
  far the generated face sits from the real one, in crop pixels.
- ``aligned``: S x S face crops in the task's alignment (what talkbench's generators and most GRID papers
  output), compared directly with the ground-truth crops (variant ``aligned-crop``); the mouth crop is
  taken with the ground truth's mouth box. Any S: for S other than the task's crop size the ground
  truth's reference crop is made at S x S with the same alignment (its transform scaled by S / size),
  variant ``aligned-crop-S`` (e.g. ``aligned-crop-64`` for the demo's 64 px AU-RGAN).

Frames the size of the source video are cropped with the ground truth's transforms in an ``aligned`` task
too (the built-in references deliver full frames). A submission in neither geometry falls back to each
side's own alignment, named
``align-per-side`` and counted per run, so the leaderboard can mark it. Landmark metrics (LMD, jitter,
AUs, pose) keep each side's own tracking: they compare shapes, not pixels.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from talkbench.benchmark.metrics.base import AlignedVideo

GEOMETRIES = ("full", "aligned")
ALIGN_GT, ALIGNED_CROP, PER_SIDE = "align-gt", "aligned-crop", "align-per-side"


def _invert(m: np.ndarray) -> np.ndarray:
    """(T, 2, 3) affine matrices -> their inverses (NaN stays NaN)."""
    a, t = m[:, :, :2], m[:, :, 2:]
    inv = np.linalg.inv(np.where(np.isfinite(a), a, np.eye(2)))
    inv = np.where(np.isfinite(a).all(axis=(1, 2))[:, None, None], inv, np.nan)
    return np.concatenate([inv, -inv @ t], axis=2)


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """x -> outer(inner(x)) for (T, 2, 3) affine matrices."""
    a = outer[:, :, :2] @ inner[:, :, :2]
    t = outer[:, :, :2] @ inner[:, :, 2:] + outer[:, :, 2:]
    return np.concatenate([a, t], axis=2)


def in_reference_geometry(frames: np.ndarray, generated: AlignedVideo, reference: AlignedVideo, geometry: str,
                          gt_frames: np.ndarray | None = None) -> tuple[AlignedVideo, AlignedVideo, str]:
    """Both sides of a full-reference comparison in the ground truth's geometry.

    Returns (generated, reference, variant): the generated video with its face and mouth crops taken in
    the ground truth's geometry; the reference as it is, except for ``aligned`` outputs of another square
    size S, where its face crops are re-made at S x S from ``gt_frames`` (the ground truth's source frames)
    with its own transforms scaled by S / size. Landmarks, pose and AUs stay each side's own tracking.
    """
    from talkbench.pipelines.face import warp_crops

    if reference.align_matrix is None or reference.mouth_matrix is None:
        return generated, reference, PER_SIDE
    n = min(len(frames), len(reference.faces))
    size = tuple(reference.faces.shape[1:3])
    mouth_hw = reference.mouths.shape[1:3]
    face_m, mouth_m = reference.align_matrix[:n], reference.mouth_matrix[:n]
    hw = tuple(frames.shape[1:3])
    if geometry == "aligned" and hw == size:
        faces = np.ascontiguousarray(frames[:n])
        mouths = warp_crops(faces, _compose(mouth_m, _invert(face_m)), mouth_hw, antialias=False)
        variant = ALIGNED_CROP
    elif reference.frame_hw is not None and hw == reference.frame_hw:  # full frames, in either geometry
        faces = warp_crops(frames[:n], face_m, size)
        mouths = warp_crops(frames[:n], mouth_m, mouth_hw)
        variant = ALIGN_GT
    elif geometry == "aligned" and hw[0] == hw[1] and gt_frames is not None and size[0] == size[1]:
        k = hw[0] / size[0]  # the task's alignment at S x S: every transform scaled by S / size
        face_s = face_m * k
        faces = np.ascontiguousarray(frames[:n])
        mouths = warp_crops(faces, _compose(mouth_m, _invert(face_s)), mouth_hw, antialias=False)
        ref_faces = warp_crops(np.asarray(gt_frames)[:n], face_s, hw)
        reference = dataclasses.replace(reference, faces=ref_faces)
        variant = f"{ALIGNED_CROP}-{hw[0]}"
    else:
        return generated, reference, PER_SIDE
    return dataclasses.replace(generated, faces=faces, mouths=mouths), reference, variant


def head_placement_error(generated: AlignedVideo, reference: AlignedVideo) -> np.ndarray:
    """Per frame: mean distance (crop pixels) between where the generated face's landmarks fall in the
    ground truth's crop and where they fall in their own aligned crop; NaN where either has no face.

    0 when the generated head sits exactly where the real one does; a head displaced by d source pixels
    reads d x the crop scale.
    """
    if generated.align_matrix is None or reference.align_matrix is None:
        return np.full(len(generated.faces), np.nan)
    n = min(len(generated.faces), len(reference.faces))
    own = generated.landmarks[:n, :, :2].astype(np.float64)  # generated landmarks, own crop pixels
    to_source = _invert(generated.align_matrix[:n].astype(np.float64))
    m = _compose(reference.align_matrix[:n].astype(np.float64), to_source)  # own crop -> GT crop
    moved = own @ np.transpose(m[:, :, :2], (0, 2, 1)) + m[:, None, :, 2]
    d = np.linalg.norm(moved - own, axis=2).mean(axis=1)
    ok = np.asarray(generated.face_found[:n], bool) & np.asarray(reference.face_found[:n], bool)
    return np.where(ok, d, np.nan)
