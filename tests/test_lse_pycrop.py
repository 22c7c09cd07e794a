"""``lse-pycrop``: SyncNet on syncnet_python's own face-box crop; its geometry checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from talkbench.benchmark.syncnet import PYCROP_FILL, mesh_boxes, pycrop_faces, pycrop_track, pycrop_window


def _frame(h: int, w: int) -> np.ndarray:
    """Every pixel distinct: value = row * w + col in channel 0 (mod 256 per channel through 3 channels)."""
    idx = np.arange(h * w, dtype=np.int64).reshape(h, w)
    return np.stack([idx % 256, (idx // 256) % 256, np.full_like(idx, 7)], axis=2).astype(np.uint8)


def test_pycrop_window_hand_computed() -> None:
    frame = _frame(100, 120)
    # box x 30..70, y 20..60: s = 20, centre (50, 40). crop_scale 0.4: the frame is padded by
    # int(20 * 1.8) = 36 px; rows int(40 + 36 - 20) = 56 .. int(40 + 36 + 36) = 112 and columns
    # int(50 + 36 - 28) = 58 .. int(50 + 36 + 28) = 114 of the padded frame = frame rows 20..76, cols 22..78
    win = pycrop_window(frame, 20.0, 50.0, 40.0)
    assert win.shape == (56, 56, 3) and np.array_equal(win, frame[20:76, 22:78])
    # a box at the top-left corner: x -10..30, y -10..30 -> s 20, centre (10, 10): frame rows -10..46,
    # cols -18..38: the first 10 rows and 18 columns are grey 110, the rest is frame[0:46, 0:38]
    win = pycrop_window(frame, 20.0, 10.0, 10.0)
    assert win.shape == (56, 56, 3)
    assert (win[:10] == PYCROP_FILL).all() and (win[:, :18] == PYCROP_FILL).all()
    assert np.array_equal(win[10:, 18:], frame[0:46, 0:38])
    # a fractional box: s = 12.5, centre x 60.25, y 50.75: pad int(22.5) = 22; rows int(50.75 + 22 - 12.5)
    # = 60 .. int(72.75 + 22.5) = 95, cols int(82.25 - 17.5) = 64 .. int(82.25 + 17.5) = 99
    # -> frame rows 38..73, cols 42..77
    win = pycrop_window(frame, 12.5, 60.25, 50.75)
    assert np.array_equal(win, frame[38:73, 42:77])


def test_pycrop_track_is_syncnet_pythons_smoothing() -> None:
    # boxes of a face growing 2 px a frame: s = max(w, h) / 2 with h > w; 13-tap median, zero-padded ends
    t = 20
    boxes = np.stack([np.full(t, 10.0), np.full(t, 5.0), np.full(t, 40.0), 45.0 + 2 * np.arange(t)], axis=1)
    s, cx, cy = pycrop_track(boxes)
    raw = (40 + 2 * np.arange(t)) / 2  # h = 40 + 2t -> s = 20 + t
    assert np.allclose(s[6:14], raw[6:14])  # a monotone series is its own median inside
    # at frame 0 the window holds 6 zeros and raw[0..6]: the 7th smallest of 13 is raw[0]; frame 19 holds
    # raw[13..19] and 6 zeros: the 7th smallest is raw[13]
    assert s[0] == raw[0] and s[19] == raw[13]
    assert np.allclose(cx[6:14], 25.0) and cx[0] == 25.0  # a constant survives the zero padding (7 of 13)


def test_pycrop_faces_and_mesh_boxes() -> None:
    frame = _frame(100, 120)
    crops = pycrop_faces(np.stack([frame] * 3), np.tile([30.0, 20.0, 70.0, 60.0], (3, 1)))
    import cv2

    assert crops.shape == (3, 224, 224, 3)
    assert np.array_equal(crops[1], cv2.resize(frame[20:76, 22:78], (224, 224)))
    # mesh points in crop pixels under a similarity source -> crop (scale 2, shift -20, -10): back in
    # frame pixels their extent is the box; a frame without a face takes the neighbours' mean
    pts = np.array([[0.0, 0.0], [80.0, 40.0], [40.0, 80.0]])  # crop pixels
    lm = np.zeros((3, 3, 3), np.float32)
    lm[:, :, :2] = pts
    m = np.tile(np.array([[2.0, 0, -20], [0, 2.0, -10]]), (3, 1, 1))
    m[2, :, 2] += 20.0  # frame 2: the face 10 px further up-left in the frame
    boxes = mesh_boxes(lm, m, np.array([True, False, True]))
    assert boxes[0] == pytest.approx([10, 5, 50, 45])  # x = (0 + 20) / 2 .. (80 + 20) / 2
    assert boxes[2] == pytest.approx([0, -5, 40, 35])
    assert boxes[1] == pytest.approx([5, 0, 45, 40])


def test_lse_pycrop_runs_with_imported_syncnet_weights(tmp_path, monkeypatch) -> None:
    from talkbench import weights
    from talkbench.benchmark.metrics import METRICS, AlignedVideo, ClipPair
    from talkbench.benchmark.syncnet import SyncNet

    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(tmp_path / "store"))
    torch.manual_seed(0)
    torch.save(SyncNet().state_dict(), tmp_path / "s.pth")
    weights.import_weights("syncnet_v2", str(tmp_path / "s.pth"))
    cls = METRICS.get("lse-pycrop")
    assert cls.variant.startswith("lse-pycrop") and cls.weights == ("syncnet_v2",)
    t = 8
    rng = np.random.default_rng(0)
    lm = np.zeros((t, 478, 3), np.float32)
    lm[:, :, :2] = rng.uniform(20, 100, (t, 478, 2))
    gen = AlignedVideo(faces=np.zeros((t, 16, 16, 3), np.uint8), mouths=np.zeros((t, 8, 8, 3), np.uint8),
                       landmarks=lm, face_found=np.ones(t, bool), pose=np.zeros((t, 6), np.float32), aus={},
                       align_matrix=np.tile(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (t, 1, 1)))
    frames = rng.integers(0, 256, (t, 120, 140, 3), dtype=np.uint8)
    pair = ClipPair("c", gen, None, (0.1 * rng.standard_normal(t * 640)).astype(np.float32), frames=frames)
    values = cls(device="cpu").update(pair)
    assert set(cls.directions) <= set(values) and values["lse_pycrop_d"] > 0
    with pytest.raises(ValueError, match="needs the submission's frames"):
        cls(device="cpu").update(ClipPair("c", gen, None, pair.audio))


@pytest.mark.parametrize("metric", ["lse", "lse-pycrop", "csim"])
def test_without_weights_the_reason_names_the_missing_file_and_the_import_command(metric, tmp_path, monkeypatch):
    from talkbench import weights
    from talkbench.benchmark.metrics import METRICS

    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(tmp_path / "store"))
    cls = METRICS.get(metric)
    reason = cls.unavailable_reason()
    for name in cls.weights:
        spec = weights.spec(name)
        assert str(tmp_path / "store" / spec.filename) in reason  # exactly which file is missing
        assert f"talkbench weights import {name} /path/to/{spec.filename}" in reason  # and how to import it
