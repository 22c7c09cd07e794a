"""The local store of pretrained weight files (LPIPS, FID Inception, SyncNet, ArcFace).

Why a store: metrics that need published weights must say *which* file produced a number (its sha256
goes into every benchmark run) and must never download anything behind the user's back. Files enter
the store only through ``talkbench weights import NAME FILE`` or ``talkbench weights fetch NAME``.

Location: ``$TALKBENCH_WEIGHTS`` or ``~/.cache/talkbench/weights``. Next to the files, ``hashes.json``
records the sha256 of every imported file. Where the published sha256 is not known with certainty the
registry leaves it ``None`` and the first import pins it (trust on first use); a later import of a
different file under the same name is refused unless forced. torchvision-style file names carry the
first 8 hex digits of the sha256 (``alexnet-owt-7be5be79.pth``): that prefix is checked.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from talkbench.errors import TalkbenchError, WeightsMissingError
from talkbench.io import atomic_path, atomic_write, sha256_file

HASHES_FILE = "hashes.json"


@dataclass(frozen=True)
class WeightSpec:
    name: str
    filename: str
    url: str | None  # None: no direct download link (manual download)
    licence: str
    used_by: str
    source: str  # where to get it, in words
    sha256: str | None = None  # published full hash, only when known with certainty
    sha256_prefix: str | None = None  # torchvision/pytorch-fid style hash prefix in the file name
    fmt: str = "state_dict"  # "state_dict" (torch.load weights_only) or "torchscript"


WEIGHTS: dict[str, WeightSpec] = {
    w.name: w
    for w in [
        WeightSpec(
            name="lpips-alex-v0.1",
            filename="lpips_alex_v0.1.pth",
            url="https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/alex.pth",
            licence="BSD-2-Clause (richzhang/PerceptualSimilarity)",
            used_by="lpips (linear heads lin0..lin4)",
            source="lpips/weights/v0.1/alex.pth in the `lpips` wheel or the PerceptualSimilarity repository",
        ),
        WeightSpec(
            name="alexnet-imagenet",
            filename="alexnet-owt-7be5be79.pth",
            url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            licence="BSD-3-Clause (torchvision); trained on ImageNet (research use terms)",
            used_by="lpips (AlexNet trunk)",
            source="torchvision's ImageNet AlexNet (also in ~/.cache/torch/hub/checkpoints/)",
            sha256_prefix="7be5be79",
        ),
        WeightSpec(
            name="inception-fid",
            filename="inception-2015-12-05.pt",
            url="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
            licence="Apache-2.0 (TensorFlow Inception-v3 2015-12-05 weights); TorchScript port by NVIDIA "
            "(stylegan2-ada-pytorch, also used by clean-fid): check its terms",
            used_by="fid (pool3 features, TorchScript called with return_features=True)",
            source="the TorchScript Inception of stylegan2-ada-pytorch / clean-fid",
            fmt="torchscript",
        ),
        WeightSpec(
            name="syncnet_v2",
            filename="syncnet_v2.model",
            url="http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",
            licence="syncnet_python (joonson) repository terms; VGG Oxford research release",
            used_by="lse and lse-pycrop (LSE-D, LSE-C, AV offset; benchmark/syncnet.py)",
            source="download_model.sh of github.com/joonson/syncnet_python",
        ),
        WeightSpec(
            name="arcface-iresnet50",
            filename="arcface_iresnet50_backbone.pth",
            url=None,
            licence="non-commercial research only (insightface pretrained models)",
            used_by="csim (ArcFace identity embedding)",
            source="insightface arcface_torch model zoo, e.g. ms1mv3_arcface_r50_fp16/backbone.pth "
            "(OneDrive/Baidu links in deepinsight/insightface recognition/arcface_torch)",
        ),
        WeightSpec(
            name="tb-sync-expert",
            filename="tb_sync_expert.ckpt",
            url=None,
            licence="this project's own (trained with `talkbench train sync_expert`)",
            used_by="tb-sync (talkbench's own sync expert; never reported as LSE)",
            source="a checkpoint from `talkbench train sync_expert`",
            fmt="talkbench-checkpoint",
        ),
    ]
}


def store_dir() -> Path:
    env = os.environ.get("TALKBENCH_WEIGHTS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "talkbench" / "weights"


def spec(name: str) -> WeightSpec:
    try:
        return WEIGHTS[name]
    except KeyError:
        raise TalkbenchError(f"unknown weights {name!r}; known: {', '.join(sorted(WEIGHTS))}") from None


def weight_path(name: str) -> Path:
    return store_dir() / spec(name).filename


def is_present(name: str) -> bool:
    return weight_path(name).is_file()


def missing_weights(names: tuple[str, ...] | list[str]) -> list[str]:
    return [n for n in names if not is_present(n)]


def _read_hashes() -> dict[str, str]:
    p = store_dir() / HASHES_FILE
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise TalkbenchError(f"{p} is not valid JSON ({e}); fix or delete it") from None


def _write_hashes(hashes: dict[str, str]) -> None:
    atomic_write(store_dir() / HASHES_FILE, json.dumps(hashes, indent=2, sort_keys=True) + "\n")


def pinned_sha256(name: str) -> str | None:
    """The hash a file under this name must have: the published one, else the one pinned at import."""
    return spec(name).sha256 or _read_hashes().get(name)


def missing_message(name: str) -> str:
    s = spec(name)
    where = s.url or s.source
    return (
        f"weights {name!r} ({s.used_by}) missing: no file {weight_path(name)}. Get {s.filename!r} from {where} "
        f"and run: talkbench weights import {name} /path/to/{s.filename}"
        + (f"  (or: talkbench weights fetch {name})" if s.url else "")
    )


def _check_hash(name: str, digest: str, force: bool) -> None:
    s = spec(name)
    if s.sha256 and digest != s.sha256:
        raise TalkbenchError(f"{name}: sha256 {digest} does not match the published {s.sha256}")
    if s.sha256_prefix and not digest.startswith(s.sha256_prefix):
        raise TalkbenchError(f"{name}: sha256 {digest[:16]}... does not start with {s.sha256_prefix} "
                             f"(the hash prefix in the published file name {s.filename})")
    pinned = _read_hashes().get(name)
    if pinned and pinned != digest and not force:
        raise TalkbenchError(f"{name}: the store pinned sha256 {pinned} at an earlier import; this file has "
                             f"{digest}. Pass --force to replace it (results will not be comparable).")


def import_weights(name: str, src: str | Path, force: bool = False) -> Path:
    """Copy ``src`` into the store after checking its hash; record the hash. Returns the stored path."""
    src = Path(src)
    if not src.is_file():
        raise TalkbenchError(f"cannot import {name}: {src} is not a file")
    digest = sha256_file(src)
    _check_hash(name, digest, force)
    dest = weight_path(name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    hashes = _read_hashes()
    hashes[name] = digest
    _write_hashes(hashes)
    _VERIFIED.pop(str(dest), None)
    return dest


def fetch(name: str, timeout_s: float = 60.0) -> Path:
    """Download with urllib (only when the user asks), then import as above."""
    import urllib.error
    import urllib.request

    s = spec(name)
    if not s.url:
        raise TalkbenchError(f"{name} has no direct download link: {missing_message(name)}")
    store_dir().mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=store_dir(), prefix=".fetch-")
    os.close(fd)
    try:
        try:
            with urllib.request.urlopen(s.url, timeout=timeout_s) as r, open(tmp, "wb") as f:
                shutil.copyfileobj(r, f)
        except (urllib.error.URLError, OSError) as e:
            raise TalkbenchError(f"could not download {name} from {s.url}: {e}. Without network access, "
                                 f"download it elsewhere and run: talkbench weights import {name} FILE") from None
        return import_weights(name, tmp)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


_VERIFIED: dict[str, tuple[int, float, str]] = {}


def require(name: str) -> Path:
    """The path of a stored file whose hash still matches its pin; WeightsMissingError when absent."""
    path = weight_path(name)
    if not path.is_file():
        raise WeightsMissingError(missing_message(name))
    st = path.stat()
    cached = _VERIFIED.get(str(path))
    if cached and cached[:2] == (st.st_size, st.st_mtime):
        return path
    digest = sha256_file(path)
    pinned = pinned_sha256(name)
    if pinned and digest != pinned:
        raise TalkbenchError(f"{path} has sha256 {digest} but {pinned} was pinned for {name!r}: the file changed; "
                             f"re-import it with `talkbench weights import {name} FILE --force`")
    _VERIFIED[str(path)] = (st.st_size, st.st_mtime, digest)
    return path


def verified_sha256(name: str) -> str:
    """The verified sha256 of the stored weights ``name`` (for run records)."""
    path = require(name)
    return _VERIFIED[str(path)][2]


def load_state_dict(name: str) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` on CPU; unwraps a top-level ``state_dict`` key."""
    import torch

    path = require(name)
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise TalkbenchError(f"{path} is not a state dict (got {type(obj).__name__})")
    return obj


def load_torchscript(name: str, device: str = "cpu") -> Any:
    import torch

    path = require(name)
    try:
        return torch.jit.load(str(path), map_location=device).eval()
    except RuntimeError as e:
        raise TalkbenchError(f"{path} is not a TorchScript file ({e.__class__.__name__}); {name} must be "
                             f"the TorchScript export described in `talkbench weights list`") from None


def list_rows() -> list[dict[str, Any]]:
    hashes = _read_hashes()
    rows = []
    for name, s in sorted(WEIGHTS.items()):
        rows.append({
            "name": name,
            "present": is_present(name),
            "sha256": hashes.get(name) or s.sha256,
            "sha256_source": "published" if s.sha256 else ("pinned at import" if name in hashes else None),
            "sha256_prefix": s.sha256_prefix,
            "licence": s.licence,
            "used_by": s.used_by,
            "file": s.filename,
            "url": s.url,
            "source": s.source,
        })
    return rows
