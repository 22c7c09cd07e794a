"""The ``openface`` AU backend: run OpenFace 2.x ``FeatureExtraction`` and read its CSV.

OpenFace is the reference the method's papers used for AU labels; this backend is the way to get
exactly those numbers where OpenFace is installed. It runs on the clip's *source* video, so its rows
are source frames: they are mapped to our 25 fps frames with the decode stage's ``source_index``
(the source frame shown as each output frame). OpenFace's own ``timestamp`` column is (frame-1)/fps
as OpenCV reports it, which is wrong for variable-frame-rate video, so it is only the fallback.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from talkbench.errors import ClipError, TalkbenchError
from talkbench.pipelines.au.base import AUConfig, AUInputs
from talkbench.schema import ALL_AUS

if TYPE_CHECKING:
    import pandas as pd

    from talkbench.pipelines.core import WorkerContext

BINARY_NAME = "FeatureExtraction"
INSTALL_HINT = (
    "OpenFace 2.x FeatureExtraction was not found. Build it from https://github.com/TadasBaltrusaitis/OpenFace "
    "(see its wiki 'Unix Installation': install OpenCV 4, dlib and OpenBLAS, run download_models.sh, "
    "then cmake and make), then set au.openface_bin=/path/to/OpenFace/build/bin/FeatureExtraction or put "
    "that folder on PATH; or use au.backend=geometric, which needs no external program."
)
REQUIRED_COLUMNS = ("frame", "timestamp", "success")


def find_binary(configured: str | None) -> str:
    """The FeatureExtraction executable: ``configured`` if given, else the one on PATH.

    A missing program is a job-level error (every clip would fail the same way)."""
    if configured:
        path = Path(configured).expanduser()
        if path.is_file() and path.stat().st_mode & 0o111:
            return str(path)
        found = shutil.which(configured)
        if found:
            return found
        raise TalkbenchError(f"au.openface_bin={configured!r} is not an executable file. {INSTALL_HINT}")
    found = shutil.which(BINARY_NAME)
    if not found:
        raise TalkbenchError(INSTALL_HINT)
    return found


def run_feature_extraction(binary: str, video: str | Path, out_dir: str | Path, extra_args: list[str],
                           timeout_s: float) -> Path:
    """Run ``FeatureExtraction -f VIDEO -out_dir OUT -aus [extra]``; returns OUT/<video stem>.csv."""
    video, out_dir = Path(video), Path(out_dir)
    cmd = [binary, "-f", str(video), "-out_dir", str(out_dir), "-aus", *extra_args]
    # OpenFace finds its model files relative to the executable's folder, so run it from there
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                              cwd=Path(binary).resolve().parent)
    except subprocess.TimeoutExpired:
        raise ClipError("au_backend", f"OpenFace took longer than {timeout_s:g} s on {video}") from None
    except OSError as e:
        raise ClipError("au_backend", f"OpenFace could not be started ({binary}): {e}") from None
    csv = out_dir / f"{video.stem}.csv"
    if proc.returncode != 0 or not csv.is_file():
        tail = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise ClipError("au_backend", f"OpenFace failed on {video} (exit code {proc.returncode}, "
                        f"{'no CSV written' if not csv.is_file() else 'CSV written'}): {tail}")
    return csv


def read_openface_csv(path: str | Path) -> pd.DataFrame:
    """An OpenFace CSV as a DataFrame with stripped column names (some builds write ", "), sorted by
    frame. ClipError("au_backend") when it is empty, not CSV, or lacks frame/timestamp/success."""
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_csv(path, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ClipError("au_backend", f"OpenFace CSV {path.name} cannot be parsed: {e}") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ClipError("au_backend", f"OpenFace CSV {path.name} lacks columns {missing}")
    if df.empty:
        raise ClipError("au_backend", f"OpenFace CSV {path.name} has no rows")
    au_cols = [c for c in df.columns if c.startswith("AU") and c.endswith("_r")]
    numeric = df[list(REQUIRED_COLUMNS) + au_cols].apply(pd.to_numeric, errors="coerce")
    bad = numeric[list(REQUIRED_COLUMNS)].isna().any(axis=1)
    if bad.any():
        raise ClipError("au_backend", f"OpenFace CSV {path.name}: {int(bad.sum())} rows with non-numeric "
                        f"frame/timestamp/success (first at data row {int(np.flatnonzero(bad)[0]) + 1})")
    df[numeric.columns] = numeric
    return df.sort_values("frame", kind="stable").reset_index(drop=True)


def to_frames(df: pd.DataFrame, n_frames: int, fps: float,
              source_index: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """OpenFace rows -> {"AU25": (n_frames,) float32, ...} on our frames; NaN where OpenFace had no
    successful row. With ``source_index`` (output frame -> 0-based source frame) row ``frame == k + 1``
    is source frame k; without it, output frame i takes the last row with timestamp <= i / fps."""
    frame_no = df["frame"].to_numpy(np.int64)
    if source_index is not None:
        want = np.asarray(source_index, dtype=np.int64)[:n_frames] + 1
        pos = np.searchsorted(frame_no, want)
        pos_ok = pos < len(frame_no)
        hit = pos_ok & (frame_no[np.minimum(pos, len(frame_no) - 1)] == want)
    else:
        times = df["timestamp"].to_numpy(np.float64)
        pos = np.searchsorted(times, np.arange(n_frames) / fps + 1e-6, side="right") - 1
        hit = pos >= 0
    pos = np.clip(pos, 0, len(df) - 1)
    ok = hit & (df["success"].to_numpy()[pos] == 1)
    out = {}
    for au in ALL_AUS:
        col = f"{au}_r"
        if col in df.columns:
            vals = df[col].to_numpy(np.float32)[pos]
            out[au] = np.where(ok, vals, np.float32(np.nan)).astype(np.float32)
    return out


def estimate_aus_openface(video: str | Path, n_frames: int, fps: float, binary: str,
                          extra_args: list[str] | None = None, source_index: np.ndarray | None = None,
                          timeout_s: float = 600.0) -> dict[str, np.ndarray]:
    """Run OpenFace on ``video`` in a temporary folder and return our frames' AU intensities."""
    video = Path(video)
    if not video.is_file():
        raise ClipError("au_backend", f"OpenFace needs the source video, which is missing: {video}")
    with tempfile.TemporaryDirectory(prefix="talkbench-openface-") as tmp:
        csv = run_feature_extraction(binary, video.resolve(), tmp, list(extra_args or []), timeout_s)
        return to_frames(read_openface_csv(csv), n_frames, fps, source_index)


def openface_backend(inputs: AUInputs, cfg: AUConfig, ctx: WorkerContext) -> dict[str, np.ndarray]:
    """The backend entry: runs on ``inputs.video`` (the clip's source video)."""
    binary = ctx.resource(f"openface_bin:{cfg.openface_bin}", lambda: find_binary(cfg.openface_bin))
    return estimate_aus_openface(str(inputs.video or ""), inputs.n_frames, inputs.fps, binary, cfg.openface_args,
                                 inputs.source_index, cfg.openface_timeout_s)


openface_backend.needs_video = True  # type: ignore[attr-defined]
