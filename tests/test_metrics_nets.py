"""Network metrics (SyncNet LSE, LPIPS, CSIM, FID, tb-sync) with weight files the tests make themselves.

Randomly initialised modules are saved, imported into a temporary store and loaded back *by name*:
this checks the parameter names/shapes the released files must match and the whole code path; the
values themselves are meaningless with random weights and are not asserted beyond basic properties.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from talkbench import weights
from talkbench.benchmark.metrics import METRICS, AlignedVideo, ClipPair
from talkbench.benchmark.metrics.arcface import IResNet
from talkbench.benchmark.metrics.lpips_alex import LPIPSAlex
from talkbench.benchmark.syncnet import SyncNet, audio_windows, n_windows


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(tmp_path / "store"))
    return tmp_path


def _save(obj, path) -> str:
    torch.save(obj, path)
    return str(path)


def _clip(t: int, size: int = 64, seed: int = 0) -> AlignedVideo:
    rng = np.random.default_rng(seed)
    faces = rng.integers(0, 256, (t, size, size, 3), dtype=np.uint8)
    return AlignedVideo(faces=faces, mouths=faces[:, size // 2:], landmarks=np.zeros((t, 478, 3), np.float32),
                        face_found=np.ones(t, bool), pose=np.zeros((t, 6), np.float32), aus={})


def test_syncnet_matches_the_released_checkpoint_layout() -> None:
    state = SyncNet().state_dict()
    expected = {  # syncnet_python SyncNetModel.S, the layout of syncnet_v2.model
        "netcnnaud.0.weight": (64, 1, 3, 3), "netcnnaud.18.weight": (512, 256, 5, 4),
        "netfcaud.0.weight": (512, 512), "netfcaud.3.weight": (1024, 512),
        "netcnnlip.0.weight": (96, 3, 5, 7, 7), "netcnnlip.4.weight": (256, 96, 1, 5, 5),
        "netcnnlip.18.weight": (512, 256, 1, 6, 6), "netcnnlip.19.running_var": (512,),
        "netfclip.3.weight": (1024, 512),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    assert {k.split(".")[0] for k in state} == {"netcnnaud", "netfcaud", "netcnnlip", "netfclip"}


def test_syncnet_input_windows() -> None:
    assert n_windows(75, 48000) == 70  # syncnet_python scores min(frames, samples/640) - 5 windows
    win = audio_windows(np.zeros(16000 * 12 // 25, np.float32), n_windows(12, 7680))
    assert win.shape == (7, 1, 13, 20)


def test_lse_with_imported_syncnet_weights(store) -> None:
    torch.manual_seed(0)
    weights.import_weights("syncnet_v2", _save(SyncNet().state_dict(), store / "syncnet.pth"))
    cls = METRICS.get("lse")
    assert cls.available()
    metric = cls(device="cpu")
    rng = np.random.default_rng(0)
    pair = ClipPair("c", _clip(8), None, (0.1 * rng.standard_normal(8 * 640)).astype(np.float32))
    v, a = (metric._ensure_setup(), metric.embed(pair.generated.faces, pair.audio, 16000))[1]
    assert v.shape == a.shape == (3, 1024)
    values = metric.update(pair)
    assert set(cls.directions) <= set(values)
    assert values["lse_d"] > 0 and values["lse_c"] >= 0 and -15 <= values["lse_offset"] <= 15


def _lpips_files(store, monkeypatch) -> None:
    """Random LPIPS trunk (saved with torchvision's ``features.N`` keys) and heads (the lpips file's keys)."""
    torch.manual_seed(0)
    state = LPIPSAlex().state_dict()
    trunk = {f"features.{k.split('.')[2]}.{k.split('.')[3]}": v for k, v in state.items() if k.startswith("net.")}
    trunk["classifier.1.weight"] = torch.zeros(2, 2)  # the torchvision file also has the classifier: ignored
    heads = {k: v.abs() for k, v in state.items() if k.startswith("lin")}
    # a random file cannot carry the published hash prefix of alexnet-owt-7be5be79.pth
    spec = dataclasses.replace(weights.spec("alexnet-imagenet"), sha256_prefix=None)
    monkeypatch.setitem(weights.WEIGHTS, "alexnet-imagenet", spec)
    weights.import_weights("alexnet-imagenet", _save(trunk, store / "alex.pth"))
    weights.import_weights("lpips-alex-v0.1", _save(heads, store / "lin.pth"))


def test_lpips_state_dict_names_match_the_lpips_package() -> None:
    keys = set(LPIPSAlex().state_dict())
    for k in ("scaling_layer.shift", "scaling_layer.scale", "net.slice1.0.weight", "net.slice2.3.weight",
              "net.slice3.6.weight", "net.slice4.8.weight", "net.slice5.10.bias", "lin0.model.1.weight",
              "lin4.model.1.weight"):
        assert k in keys


def test_lpips_with_imported_weights(store, monkeypatch) -> None:
    _lpips_files(store, monkeypatch)
    cls = METRICS.get("lpips")
    assert cls.available()
    gt = _clip(4)
    metric = cls(device="cpu")
    assert metric.update(ClipPair("same", gt, gt, np.zeros(1)))["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert metric.update(ClipPair("diff", _clip(4, seed=1), gt, np.zeros(1)))["lpips"] > 0


def test_csim_with_imported_arcface(store) -> None:
    torch.manual_seed(0)
    net = IResNet(layers=(1, 1, 1, 1), num_features=8).eval()  # small, same key scheme as iresnet50
    weights.import_weights("arcface-iresnet50", _save(net.state_dict(), store / "backbone.pth"))
    cls = METRICS.get("csim")
    video = _clip(3, size=112)
    metric = cls(device="cpu")
    out = metric.update(ClipPair("c", video, None, np.zeros(1), reference_image=video.faces[0]))
    from talkbench.benchmark.metrics.identity import cosine_to_reference

    per_frame = cosine_to_reference(metric.net, video.faces[0], video.faces, "cpu")
    assert per_frame[0] == pytest.approx(1.0, abs=1e-5)  # the reference itself
    assert out["csim"] == pytest.approx(per_frame.mean(), abs=1e-6)
    with pytest.raises(ValueError, match="reference image"):
        cls(device="cpu").update(ClipPair("c", video, None, np.zeros(1)))


class _ToyInception(torch.nn.Module):
    """Stands in for the TorchScript Inception: same call convention, (N, 16) features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 5)

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = torch.nn.functional.interpolate(img / 255.0, size=(32, 32), mode="bilinear", align_corners=False)
        f = torch.relu(self.conv(x)).mean(dim=(2, 3))
        return f if return_features else f.sum(1)


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # toy features: some ReLU channels are always 0
def test_fid_is_corpus_level_with_torchscript_weights(store) -> None:
    torch.manual_seed(0)
    path = store / "inception.pt"
    torch.jit.script(_ToyInception()).save(str(path))
    weights.import_weights("inception-fid", path)
    cls = METRICS.get("fid")
    assert cls.corpus_level and cls.available()
    same, other = cls(device="cpu"), cls(device="cpu")
    for seed in range(3):
        gt = _clip(12, seed=seed)
        assert same.update(ClipPair(f"c{seed}", gt, gt, np.zeros(1))) == {}  # no per-clip value
        noisy = dataclasses.replace(gt, faces=(gt.faces // 2).astype(np.uint8))
        other.update(ClipPair(f"c{seed}", noisy, gt, np.zeros(1)))
    a, b = same.compute(), other.compute()
    assert a["fid"] == pytest.approx(0.0, abs=1e-3) and a["fid_n_gen"] == a["fid_n_ref"] == 36
    assert b["fid"] > a["fid"] + 1e-3
    same.reset()
    assert np.isnan(same.compute()["fid"])


def test_tb_sync_glue_with_the_model_packages_sync_expert(store, monkeypatch) -> None:
    """The tb-sync pipeline around a (random) talkbench SyncExpert: windows, shapes, LSE math."""
    from talkbench.benchmark.metrics import lse
    from talkbench.models import features
    from talkbench.models.sync_expert import SyncExpert, SyncExpertConfig

    torch.manual_seed(0)
    expert = SyncExpert(SyncExpertConfig()).eval()
    monkeypatch.setattr(lse, "_load_sync_expert", lambda device: expert)
    rng = np.random.default_rng(0)
    monkeypatch.setattr(features, "mfcc_from_audio",  # the pipeline's MFCC may not be installed here
                        lambda audio, sample_rate, n_frames: rng.standard_normal((n_frames, 48)).astype(np.float32))
    pair = ClipPair("c", _clip(30), None, np.zeros(30 * 640, np.float32))
    values = METRICS.get("tb-sync")(device="cpu").update(pair)
    assert set(values) == {"tb_sync_d", "tb_sync_c", "tb_sync_offset", "tb_sync_abs_offset"}
    assert values["tb_sync_d"] >= 0 and values["tb_sync_c"] >= 0
