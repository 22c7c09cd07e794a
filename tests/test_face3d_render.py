"""Seed 001's 3-D face: the linear face model on real fixture landmarks, and the mesh rasteriser."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import GRID_CLIPS
from yi2020_fixtures import VOX, tracked_clips

from talkbench.models import face3d as F3
from talkbench.models import mesh_render as R

N_TRAIN = 250  # the personalisation split of issue 13: first 250 frames to fit, the rest held out


@pytest.fixture(scope="module")
def tracked(fixtures_dir):
    """Landmarks, pose, align matrices and frames of the VoxCeleb clip and two GRID clips (one MediaPipe pass)."""
    out = tracked_clips()
    assert all(d["face_found"].all() for d in out.values())
    return out


def _clip(t, name, sl=slice(None)):
    d = t[name]
    return F3.ClipShapes(name, F3.frontalise(d["landmarks"][sl], d["pose"][sl], d["hw"][0]), d["pose"][sl])


@pytest.fixture(scope="module")
def model_and_clips(tracked):
    train = [_clip(tracked, VOX.stem, slice(0, N_TRAIN))] + [_clip(tracked, p.stem) for p in GRID_CLIPS[:2]]
    held = _clip(tracked, VOX.stem, slice(N_TRAIN, None))
    return F3.fit(train, n_id=40, n_exp=64), train, held


def test_frontalise_then_pose_returns_the_landmarks(tracked):
    d = tracked[VOX.stem]
    x = F3.frontalise(d["landmarks"], d["pose"], d["hw"][0])
    back = F3.to_pixels(x, d["pose"], d["hw"])
    assert np.abs(back[..., :2] - d["landmarks"][:, :468, :2]).max() < 0.05
    # frontal shapes are in head coordinates: the head turns (|yaw| up to ~30 deg here) but the eye-corner
    # line of the frontal shapes stays parallel to the image plane
    def depth_slope(p):
        v = p[:, 263] - p[:, 33]
        return np.abs(v[:, 2] / v[:, 0])

    assert np.abs(d["pose"][:, 0]).max() > 15
    assert depth_slope(x).mean() < 0.5 * depth_slope(d["landmarks"].astype(np.float64)).mean()


def test_face3d_beats_the_mean_shape_on_held_out_frames(model_and_clips, tracked):
    model, train, held = model_and_clips
    d = tracked[VOX.stem]
    err = F3.crop_pixel_errors(model, held, train[0].neutral, d["landmarks"][N_TRAIN:], d["align_matrix"][N_TRAIN:],
                               d["hw"])
    assert err["identity_expression"] < 0.8 * err["mean_shape"], err
    assert err["identity_expression"] < err["identity"], err


def test_64_expression_components_explain_95_percent(model_and_clips):
    model, train, held = model_and_clips
    assert model.n_exp == 64 and model.n_id == 2  # 3 training clips: identity rank 2
    assert F3.explained_variance(model, train) >= 0.95
    assert F3.explained_variance(model, [held]) >= 0.9  # held-out frames of the same person
    assert F3.explained_variance(model, train, k=4) < F3.explained_variance(model, train)


def test_identical_frames_get_identical_coefficients(model_and_clips):
    model, train, _ = model_and_clips
    shapes = train[0].shapes[:8].copy()
    shapes[5] = shapes[0]
    e = model.expression_coefficients(shapes, train[0].neutral)
    assert np.array_equal(e[0], e[5])
    assert not np.array_equal(e[0], e[1])
    naive = model.expression_coefficients_naive(shapes, train[0].neutral)
    np.testing.assert_allclose(e, naive, atol=1e-8)


def test_targets_round_trip_and_artifact_reloads(model_and_clips, tmp_path):
    model, train, _ = model_and_clips
    t = model.targets(model.expression_coefficients(train[0].shapes, train[0].neutral), train[0].pose)
    assert t.shape == (len(train[0].shapes), 70)
    np.testing.assert_allclose(model.denormalise(model.normalise(t)), t, rtol=1e-4, atol=1e-3)
    path = model.save(tmp_path / "f3")
    again = F3.Face3D.load(path)
    np.testing.assert_allclose(again.exp_basis, model.exp_basis, atol=1e-6)
    assert again.report["n_exp"] == 64


# ---------------------------------------------------------------------------- the rasteriser
def test_the_mesh_has_854_triangles_and_none_bridges_lips_or_eyes():
    tris = R.triangles()
    assert tris.shape == (854, 3)
    sets = [set(t) for t in tris]
    up, lo = set(R.INNER_LIP_UPPER[1:-1]), set(R.INNER_LIP_LOWER[1:-1])
    assert not any(s & up and s & lo for s in sets)
    for upper, lower in R.EYELIDS.values():
        assert not any(s & set(upper) and s & set(lower) for s in sets)


def test_depth_order_on_a_synthetic_scene():
    # two overlapping triangles: the far one listed first, then the near one; and the reverse order
    far = [[2, 2, 10], [28, 2, 10], [2, 28, 10]]
    near = [[6, 6, 1], [30, 6, 1], [6, 30, 1]]
    cols = [[255, 0, 0]] * 3 + [[0, 0, 255]] * 3
    for order in ([0, 1], [1, 0]):
        tri_list = [[0, 1, 2], [3, 4, 5]]
        tris = np.array([tri_list[i] for i in order])
        img, ids = R.rasterise(np.array(far + near, float), tris, np.array(cols, float), (32, 32))
        assert tuple(img[10, 10]) == (0, 0, 255)  # overlap: the near (blue) one
        assert tuple(img[3, 3]) == (255, 0, 0)  # only the far one covers this
        assert tuple(img[31, 31]) == (0, 0, 0)
    # a tilted triangle crossing a flat one: each wins where it is nearer
    tilted = [[0, 16, 0], [31, 16, 20], [16, 0, 10]]
    flat = [[0, 0, 10], [31, 0, 10], [16, 31, 10]]
    img, _ = R.rasterise(np.array(tilted + flat, float), np.array([[0, 1, 2], [3, 4, 5]]),
                         np.array(cols, float), (32, 32))
    assert tuple(img[12, 8]) == (255, 0, 0) and tuple(img[12, 24]) == (0, 0, 255)


def test_vectorised_rasteriser_equals_the_naive_loop(tracked):
    v = tracked[VOX.stem]["landmarks_crop"][0, :468].astype(np.float64) * 0.25  # 32 px face: quick naive loop
    cols = np.random.default_rng(0).uniform(0, 255, (468, 3))
    a, ia = R.rasterise(v, R.triangles(), cols, (32, 32))
    b, ib = R.rasterise_naive(v, R.triangles(), cols, (32, 32))
    assert np.array_equal(ia, ib) and np.array_equal(a, b)


def test_rendered_fitted_face_overlaps_the_face_oval(model_and_clips, tracked):
    from talkbench.pipelines.face import apply_affine

    model, train, held = model_and_clips
    d = tracked[VOX.stem]
    i = N_TRAIN + 10
    neutral = train[0].neutral
    shape = model.reconstruct(neutral, model.expression_coefficients(held.shapes[10:11], neutral))
    px = F3.to_pixels(shape, d["pose"][i : i + 1], d["hw"])
    m = d["align_matrix"][i : i + 1].astype(np.float64)
    verts = np.concatenate([apply_affine(m, px[..., :2]), px[..., 2:] * 0.5], axis=-1)[0]
    cols = R.sample_vertex_colours(d["face_crop"][:N_TRAIN:25],
                                   d["landmarks_crop"][:N_TRAIN:25, :468, :2].astype(np.float64))
    img, mask = R.render_shaded(verts, cols, (128, 128))
    oval = R.face_oval_mask(d["landmarks_crop"][i, :468], (128, 128))
    iou = (mask & oval).sum() / (mask | oval).sum()
    assert iou > 0.8, iou
    # the render looks like the face: colours close to the real crop inside the face
    inside = mask & oval
    assert np.abs(img[inside].astype(float) - d["face_crop"][i][inside]).mean() < 40
    mouth = R.INNER_LIP_UPPER + R.INNER_LIP_LOWER
    sketch, smask = R.render_sketch(verts, (128, 128))
    assert (smask & oval).sum() / (smask | oval).sum() > 0.8 and len(mouth) == 22
