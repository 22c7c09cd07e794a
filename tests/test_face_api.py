"""The one face-and-AU API: FaceProcessor gives what the pipeline stages give, and nothing outside
pipelines/ builds a pipeline Clip to reach it."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from conftest import GRID, ROOT

from talkbench.media import read_av
from talkbench.pipelines.au import AUInputs, estimate_aus
from talkbench.pipelines.au.base import AUConfig
from talkbench.pipelines.core import WorkerContext
from talkbench.pipelines.face import FaceProcessor, FaceSettings

N = 24  # frames: enough for a pose fit and an AU baseline, cheap on CPU


@pytest.fixture(scope="module")
def clip_frames(fixtures_dir) -> np.ndarray:
    return read_av(GRID / "bbaf2n.mpg", fps=25.0, sample_rate=16_000).frames[:N]


def test_processor_matches_the_pipeline_stages(clip_frames):
    """The benchmark and generation call FaceProcessor.process; the stages call its steps one by one:
    both must give the same arrays on the same frames."""
    from talkbench.pipelines.config import PipelineConfig
    from talkbench.pipelines.core import STAGES, Clip, ClipRecord

    cfg = PipelineConfig()
    clip = Clip(record=ClipRecord("c", "test", str(GRID / "bbaf2n.mpg"), "s"), video=clip_frames.copy(), fps=25.0)
    clip.frames_table["timestamp_s"] = np.arange(N) / 25.0
    ctx = WorkerContext()
    try:
        for name in ("landmarks", "align", "pose", "au"):
            clip = STAGES.get(name)(clip, getattr(cfg, name), ctx)
    finally:
        ctx.close()
    with FaceProcessor(FaceSettings(), fps=25.0) as face:
        track = face.process(clip_frames)
    ft = clip.frames_table
    np.testing.assert_array_equal(track.landmarks, ft["landmarks"])
    np.testing.assert_array_equal(track.face_found, ft["face_found"])
    np.testing.assert_array_equal(track.face_crop, ft["face_crop"])
    np.testing.assert_array_equal(track.align_matrix.reshape(N, 6), ft["align_matrix"])
    np.testing.assert_array_equal(track.pose[:, 0], ft["yaw"])
    assert set(track.aus) == {"AU10", "AU12", "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45"}
    for name, values in track.aus.items():
        np.testing.assert_array_equal(values, ft[f"{name}_r"])
    assert track.aus["AU25"].max() > 0.5  # GRID speech opens the lips


def test_au_backend_takes_arrays_and_checks_lengths(clip_frames):
    with FaceProcessor() as face:
        lm = face.landmarks(clip_frames)
    ctx = WorkerContext()
    out = estimate_aus(AUInputs(n_frames=N, fps=25.0, landmarks=lm.landmarks, face_found=lm.face_found),
                       AUConfig(), ctx)
    assert all(v.shape == (N,) and v.dtype == np.float32 for v in out.values())
    with pytest.raises(RuntimeError, match="returned 24 values for 30 frames"):
        estimate_aus(AUInputs(n_frames=30, fps=25.0, landmarks=lm.landmarks, face_found=lm.face_found),
                     AUConfig(), ctx)
    with pytest.raises(RuntimeError, match="needs landmarks"):
        estimate_aus(AUInputs(n_frames=N, fps=25.0), AUConfig(), ctx)


def test_aus_are_measured_from_the_neutral_baseline_given(clip_frames):
    """The benchmark measures a generated clip from the real clip's neutral face: AUInputs carries it
    through FaceProcessor to the geometric backend; OpenFace (calibrated per video inside) has none."""
    from talkbench.pipelines.au import geometric

    with FaceProcessor() as face:
        lm = face.landmarks(clip_frames)
        own = face.au_baseline(lm.landmarks, lm.face_found)
        assert own == geometric.feature_baselines(lm.landmarks, lm.face_found)
        other = face.au_baseline(lm.landmarks[: N // 3], lm.face_found[: N // 3])  # "another clip's" face
        assert other != own
        given = face.aus(N, lm.landmarks, lm.face_found, neutral_baseline=other)
        expected = geometric.estimate_aus(lm.landmarks, lm.face_found, baseline=other)
        assert given.keys() == expected.keys()
        for name in expected:
            np.testing.assert_array_equal(given[name], expected[name])
        mine = face.aus(N, lm.landmarks, lm.face_found)
        assert any(not np.array_equal(mine[k], given[k], equal_nan=True) for k in mine)
    with FaceProcessor(FaceSettings(au=AUConfig(backend="openface"))) as face:
        assert face.au_baseline(lm.landmarks, lm.face_found) is None


def _calls(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            f = node.func
            names.add(f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else "")
    return names


def test_no_pipeline_clip_is_built_outside_pipelines():
    """The pipeline's mutable Clip is its own state object: other areas reach face work through FaceProcessor."""
    offenders = [str(p.relative_to(ROOT)) for area in ("benchmark", "models", "talkbench")
                 for p in sorted((ROOT / area).rglob("*.py")) if _calls(p) & {"Clip", "ClipRecord"}]
    assert offenders == []
