"""Real fixture clips through MediaPipe once per test session (shared by the seed-001 test modules)."""

from __future__ import annotations

import functools

from conftest import GRID_CLIPS, WILD

VOX = WILD / "voxceleb_741400163.mp4"


@functools.cache
def tracked_clips() -> dict[str, dict]:
    """stem -> process_frames output + frames, hw and audio for the VoxCeleb clip and two GRID clips."""
    from talkbench.media import read_av
    from talkbench.pipelines.face import FaceMeshTracker, process_frames

    out = {}
    with FaceMeshTracker() as tracker:
        for path in [VOX, *GRID_CLIPS[:2]]:
            av = read_av(path)
            r = process_frames(av.frames, 25.0, tracker=tracker)
            out[path.stem] = {**r, "frames": av.frames, "hw": av.frames.shape[1:3], "audio": av.audio}
    return out
