"""Adapter classes the benchmark tests load through ``--submission bench_adapters:Class``.

They exercise the adapter protocol (generate, generate_batch + batch_size, setup) and the per-clip
checks on what an adapter returns; none of them is a model.
"""

from __future__ import annotations

import numpy as np


class StillFace:
    """The reference image repeated, produced through generate_batch (batches of 2)."""

    model = "still-face"
    version = "0.1"
    batch_size = 2

    def __init__(self) -> None:
        self.ready = False
        self.batches: list[int] = []

    def setup(self) -> None:
        self.ready = True

    def generate_batch(self, references: list[np.ndarray], audios: list[np.ndarray], fps: float) -> list[np.ndarray]:
        assert self.ready, "setup() must run before generation"
        self.batches.append(len(references))
        return [np.repeat(ref[None], int(round(len(a) / 16_000 * fps)), axis=0)
                for ref, a in zip(references, audios, strict=True)]


class Broken:
    """Bad output of one kind per instance: ``?mode=nan|empty|short|gray|raise``."""

    def __init__(self, mode: str = "nan") -> None:
        self.mode = mode

    def generate(self, reference_image: np.ndarray, audio_16k: np.ndarray, fps: float) -> object:
        n = int(round(len(audio_16k) / 16_000 * fps))
        h, w = reference_image.shape[:2]
        if self.mode == "nan":
            frames = np.zeros((n, h, w, 3), np.float32)
            frames[3] = np.nan
            return frames
        if self.mode == "empty":
            return np.zeros((0, h, w, 3), np.uint8)
        if self.mode == "short":
            return np.repeat(reference_image[None], n // 2, axis=0)
        if self.mode == "gray":
            return np.zeros((n, h, w), np.uint8)
        raise RuntimeError("the model crashed")


class NearestFrame:
    """Personalised-task baseline: ``personalize(frames, audio)`` keeps the fine-tuning frames; ``generate``
    repeats the last of them (the "nearest-frame" baseline of seed 001). Records what it was given."""

    model = "nearest-frame"
    version = "0.1"
    calls: list[tuple[int, int]] = []  # (frames, audio samples) per personalize call, across instances

    def __init__(self) -> None:
        self.frames: np.ndarray | None = None

    def personalize(self, frames: np.ndarray, audio: np.ndarray) -> None:
        self.frames = np.asarray(frames)
        NearestFrame.calls.append((len(frames), len(audio)))

    def generate(self, reference_image: np.ndarray, audio_16k: np.ndarray, fps: float) -> np.ndarray:
        assert self.frames is not None, "personalize() must run first on a personalized task"
        n = int(round(len(audio_16k) / 16_000 * fps))
        return np.repeat(self.frames[-1:], n, axis=0)
