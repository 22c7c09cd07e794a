"""What a run keeps besides numbers: the generated videos (adapters only) and side-by-side face grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class VideoKeeper:
    """Writes each generated clip as ``<dir>/<clip_id>.mp4`` with the task's driving audio (and its
    predicted AUs as ``<clip_id>.aus.csv`` when the generator has them)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def keep(self, clip_id: str, frames: np.ndarray, fps: float, audio: np.ndarray, sample_rate: int,
             predicted_aus: dict[str, np.ndarray] | None = None) -> Path:
        """The video, plus ``<clip_id>.aus.csv`` when the generator exposed its predicted AUs: the folder
        is then itself a complete outputs-first submission (re-scoring it gives the same AU comparison)."""
        from talkbench.benchmark.submissions.base import AUS_SUFFIX, write_au_sidecar
        from talkbench.media import write_video

        if predicted_aus:
            write_au_sidecar(self.folder / f"{clip_id}{AUS_SUFFIX}", predicted_aus)
        return write_video(self.folder / f"{clip_id}.mp4", frames, fps=fps, audio=audio, sample_rate=sample_rate)


def face_grid(generated: np.ndarray, reference: np.ndarray, n: int = 6) -> np.ndarray:
    """Two rows of ``n`` evenly spaced aligned face crops: generated on top, ground truth below."""
    t = min(len(generated), len(reference))
    idx = np.linspace(0, t - 1, num=min(n, t)).round().astype(int)
    top = np.concatenate(list(generated[idx]), axis=1)
    bottom = np.concatenate(list(reference[idx]), axis=1)
    gap = np.full((4, top.shape[1], 3), 255, np.uint8)
    return np.concatenate([top, gap, bottom], axis=0)
