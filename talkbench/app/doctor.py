"""``talkbench doctor``: is this machine ready? One line per component, OK or what to do."""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def _python() -> Check:
    ok = sys.version_info >= (3, 10)
    return Check("python", ok, platform.python_version() + ("" if ok else ": talkbench needs Python >= 3.10"))


def _torch() -> Check:
    try:
        import torch
    except ImportError:
        return Check("torch", False, "not installed: run `make setup` (pins torch==2.13.0 via constraints.txt)")
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return Check("torch", True, f"{torch.__version__}, CUDA {torch.version.cuda}: {names}")
    return Check("torch", True, f"{torch.__version__}, CPU only (training and metrics run on the CPU)")


def _mediapipe() -> Check:
    try:
        import mediapipe
    except ImportError as e:
        return Check("mediapipe", False, f"cannot import ({e}): install mediapipe==0.10.21 (`make setup`)")
    model = Path(mediapipe.__file__).parent / "modules" / "face_landmark" / "face_landmark_with_attention.tflite"
    if not model.is_file():
        return Check("mediapipe", False, f"{mediapipe.__version__} has no bundled face-mesh model; "
                     "use mediapipe==0.10.21, the last release that ships it")
    return Check("mediapipe", True, f"{mediapipe.__version__}, face-mesh model bundled (478 landmarks, offline)")


def _pyav() -> Check:
    try:
        import av
    except ImportError:
        return Check("pyav", False, "not installed: `make setup`")
    missing = [c for c in ("libx264", "aac") if c not in av.codecs_available]
    if missing:
        return Check("pyav", False, f"{av.__version__} lacks encoders {missing}: writing videos will fail")
    return Check("pyav", True, f"{av.__version__}, H.264 and AAC encoders present")


def _openface() -> Check:
    exe = os.environ.get("TALKBENCH_OPENFACE_BIN") or shutil.which("FeatureExtraction")
    if exe:
        return Check("openface", True, f"FeatureExtraction at {exe} (--au-backend openface available)", False)
    return Check("openface", False, "FeatureExtraction not on PATH (optional): the default `geometric` AU "
                 "backend works without it; build OpenFace 2.x and put its bin/ on PATH or set "
                 "TALKBENCH_OPENFACE_BIN to use --au-backend openface", required=False)


def _weights() -> list[Check]:
    try:
        from talkbench import weights
    except ImportError as e:
        return [Check("weights", False, f"weights store unavailable: {e}", required=False)]
    checks = []
    for entry in weights.WEIGHTS.values():
        if weights.is_present(entry.name):
            checks.append(Check(f"weights:{entry.name}", True, str(weights.weight_path(entry.name)),
                                required=False))
        else:
            where = entry.url or entry.source
            checks.append(Check(f"weights:{entry.name}", False,
                                f"missing (optional; {entry.used_by} reports unavailable): get it from "
                                f"{where}, then `talkbench weights import {entry.name} FILE`", required=False))
    return checks


def _mlflow() -> Check:
    try:
        from talkbench.tracking import tracking_uri
    except ImportError as e:
        return Check("mlflow", False, f"tracking unavailable: {e}")
    uri = tracking_uri()
    try:
        importlib.import_module("mlflow")
    except ImportError:
        return Check("mlflow", False, f"mlflow not installed; tracking URI would be {uri}")
    if uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///"):]).resolve().parent
        if not os.access(folder, os.W_OK):
            return Check("mlflow", False, f"{uri}: folder {folder} is not writable")
    return Check("mlflow", True, f"tracking store {uri} (MLFLOW_TRACKING_URI overrides it)")


def _dask() -> Check:
    try:
        import dask
        import distributed
    except ImportError:
        return Check("dask", False, "dask[distributed] not installed: `make setup`")
    return Check("dask", True, f"dask {dask.__version__}, distributed {distributed.__version__}, "
                 f"{os.cpu_count()} cores -> {os.cpu_count()} local workers by default")


def _chromium() -> Check:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe:
        return Check("chromium", True, f"{exe} (HTML leaderboard browser test)", required=False)
    return Check("chromium", False, "not found (optional, only for the HTML leaderboard browser test): "
                 "apt-get install chromium", required=False)


CHECKS: list[Callable[[], Check | list[Check]]] = [
    _python, _torch, _mediapipe, _pyav, _dask, _mlflow, _openface, _weights, _chromium,
]


def run_checks() -> list[Check]:
    results: list[Check] = []
    for fn in CHECKS:
        out = fn()
        results.extend(out if isinstance(out, list) else [out])
    return results


def main() -> int:
    results = run_checks()
    width = max(len(c.name) for c in results)
    for c in results:
        mark = "OK  " if c.ok else ("FAIL" if c.required else "--  ")
        print(f"{mark} {c.name:<{width}}  {c.detail}")
    failed = [c for c in results if c.required and not c.ok]
    print(f"\n{len(failed)} required check(s) failed" if failed else "\nready")
    return 1 if failed else 0
