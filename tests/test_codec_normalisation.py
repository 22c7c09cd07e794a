"""Codec normalisation (``make-task --codec``): every scored video, ground truth included, re-encoded with
one recorded setting; measured on a real GRID clip."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from talkbench.errors import ConfigError

METRICS = ["psnr", "ssim", "cpbd"]


def _write(path, frames: np.ndarray, codec: str, options: dict, bit_rate: int | None = None) -> None:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=Fraction(25))
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if bit_rate:
            s.bit_rate = bit_rate
        s.options = options
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode(None))


def test_reencode_keeps_shape_and_is_reproducible() -> None:
    from talkbench.benchmark.codec import get_codec, reencode

    frames = np.random.default_rng(0).integers(0, 256, (3, 17, 22, 3), dtype=np.uint8)  # odd size: padded
    a, b = reencode(frames, 25.0, get_codec("h264-crf23")), reencode(frames, 25.0, get_codec("h264-crf23"))
    assert a.shape == frames.shape and np.array_equal(a, b) and not np.array_equal(a, frames)
    assert get_codec("h264-crf23").describe().startswith("h264-crf23: libx264 crf=23 preset=medium pix_fmt=yuv420p")
    with pytest.raises(ConfigError, match="known: h264-crf23"):
        get_codec("nope")


@pytest.mark.slow
def test_ground_truth_and_submission_share_one_recorded_setting_and_encodings_score_closer(tmp_path) -> None:
    from bench_tasks import one_grid_clip_task

    from talkbench.benchmark.evaluator import evaluate
    from talkbench.benchmark.preprocess import Preprocessor
    from talkbench.benchmark.submissions import load_submission
    from talkbench.media import read_av

    with pytest.raises(ConfigError, match="codec setting"):
        one_grid_clip_task(tmp_path / "bad", "bad", codec="nope")
    plain = one_grid_clip_task(tmp_path / "plain", "plain")
    norm = one_grid_clip_task(tmp_path / "norm", "norm", codec="h264-crf23")
    assert norm.codec == "h264-crf23" and plain.codec is None
    assert norm.content_hash() != norm.model_copy(update={"codec": None}).content_hash()  # a different task
    clip = plain.clips[0]
    gt = read_av(clip.ground_truth, fps=25).frames
    folders = {}
    for name, codec, options, rate in [("mpeg4-4M", "mpeg4", {}, 4_000_000), ("x264-crf28", "libx264", {"crf": "28"}, None)]:
        (tmp_path / name).mkdir()
        _write(tmp_path / name / f"{clip.clip_id}.mp4", gt, codec, options, rate)
        folders[name] = str(tmp_path / name)
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for task in (plain, norm):
        pre = Preprocessor(task)
        try:
            for name, spec in [("gt", "builtin:ground-truth"), *folders.items()]:
                res = evaluate(task, load_submission(spec), metric_names=METRICS, preprocessor=pre)
                assert res.rows[0]["status"] == "ok" and res.rows[0].get("codec") == task.codec
                assert (res.codec or "").startswith(task.codec or "None") if task.codec else res.codec is None
                scores.setdefault(task.name, {})[name] = {k: res.aggregates[k].value for k in METRICS}
        finally:
            pre.close()
    p, n = scores["plain"], scores["norm"]
    # both sides re-encoded with the same setting: the ground truth against itself stays identical (100 dB;
    # re-encoding one side only would give ~40 dB), and its own sharpness moved (measured 0.289 -> 0.276)
    assert n["gt"]["psnr"] == 100.0 and n["gt"]["ssim"] == pytest.approx(1.0)
    assert n["gt"]["cpbd"] != p["gt"]["cpbd"]
    # two encodings of the same content score closer to each other after normalisation. Measured:
    # PSNR 40.62 vs 35.83 dB (gap 4.79) -> 38.80 vs 36.78 (2.03); SSIM 0.9828 vs 0.9562 (0.0266) -> 0.9781 vs
    # 0.9663 (0.0118); CPBD 0.2826 vs 0.2455 (0.0371) -> 0.2662 vs 0.2346 (0.0316)
    for k in METRICS:
        before = abs(p["mpeg4-4M"][k] - p["x264-crf28"][k])
        after = abs(n["mpeg4-4M"][k] - n["x264-crf28"][k])
        assert after < before, (k, before, after)
    assert abs(n["mpeg4-4M"]["psnr"] - n["x264-crf28"]["psnr"]) < 0.6 * abs(p["mpeg4-4M"]["psnr"] - p["x264-crf28"]["psnr"])
