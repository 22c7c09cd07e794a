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
from talkbench.benchmark.metrics.lpips_alex import LPIPSAlex
from talkbench.benchmark.syncnet import SyncNet, audio_windows, n_windows
from talkbench.models.arcface import IResNet


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


def _tb_sync_by_hand(net, mouths: np.ndarray, audio: np.ndarray, audio_cfg) -> dict[str, float]:
    """tb-sync written out independently of the metric: the MFCC of the whole stored audio on centred
    10 ms hops, sliced into blocks of ``frames`` x 4 hops (frame i owns hops 4i .. 4i+3)."""
    import torch.nn.functional as F

    from talkbench.benchmark.metrics.lse import lse_from_embeddings
    from talkbench.pipelines.audio import reference_mfcc
    from talkbench.schema import from_pcm16, to_pcm16

    cfg = net.cfg
    t = min(len(mouths), len(audio) // 640)
    hops = reference_mfcc(from_pcm16(to_pcm16(audio)), 16_000, audio_cfg).astype(np.float32)  # (12, >= 4 t)
    n = t - cfg.frames + 1
    blocks = np.stack([hops[:, 4 * i : 4 * (i + cfg.frames)] for i in range(n)])
    x = torch.as_tensor(mouths[:t]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    x = F.interpolate(x, size=(cfg.mouth_height, cfg.mouth_width), mode="bilinear", align_corners=False)
    video = torch.stack([x[i : i + cfg.frames] for i in range(n)])
    with torch.inference_mode():
        r = lse_from_embeddings(net.embed_video(video), net.embed_audio(torch.as_tensor(blocks)))
    return {"tb_sync_d": r.lse_d, "tb_sync_c": r.lse_c, "tb_sync_offset": r.offset}


def test_tb_sync_scores_real_speech_with_its_checkpoints_audio_settings(store, tmp_path, fixtures_dir) -> None:
    """tb-sync on a real GRID clip's speech through a (random) SyncExpert checkpoint whose shards used
    non-default MFCC settings: the metric must compute the features the checkpoint records (not the
    defaults), and agree with the metric written out by hand."""
    import json

    from conftest import GRID

    from talkbench.media import read_av
    from talkbench.models.checkpoint import save_checkpoint
    from talkbench.models.sync_expert import SyncExpert, SyncExpertConfig, load_sync_expert
    from talkbench.pipelines.audio import AudioFeaturesConfig

    torch.manual_seed(0)
    cfg = SyncExpertConfig(base_channels=8, levels=2, audio_channels=[16, 32], embed_dim=32)
    recorded = {"preemphasis": 0.0, "fmin": 100.0, "fmax": 7000.0}
    folder = save_checkpoint(tmp_path / "expert", SyncExpert(cfg).eval(), "sync_expert", {}, 0,
                             metadata={"pipeline_config": json.dumps({"audio_features": recorded})})
    weights.import_weights("tb-sync-expert", folder / "model.safetensors")
    net, audio_cfg = load_sync_expert(str(weights.require("tb-sync-expert")))
    assert audio_cfg == AudioFeaturesConfig(**recorded)

    clip = read_av(GRID / "bbaf2n.mpg", fps=25.0, sample_rate=16_000)
    t = 30
    pair = ClipPair("c", _clip(t), None, np.asarray(clip.audio[: t * 640], np.float32))
    values = METRICS.get("tb-sync")(device="cpu").update(pair)
    assert set(values) == {"tb_sync_d", "tb_sync_c", "tb_sync_offset", "tb_sync_abs_offset"}
    want = _tb_sync_by_hand(net, pair.generated.mouths, pair.audio, audio_cfg)
    for k, v in want.items():
        assert values[k] == pytest.approx(v, rel=1e-4, abs=1e-5), k
    defaults = _tb_sync_by_hand(net, pair.generated.mouths, pair.audio, AudioFeaturesConfig())
    assert abs(defaults["tb_sync_d"] - values["tb_sync_d"]) > 1e-4  # the settings matter for this net
