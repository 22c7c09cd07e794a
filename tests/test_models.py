"""Every model's forward/backward shapes, one-batch overfitting, TCN properties, generation to video."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from shards_factory import first_batch, write_shards
from shards_factory import tiny_config as tiny

from talkbench.errors import ConfigError
from talkbench.models.registry import MODELS, trainable_names
from talkbench.models.train import load_run_config

torch.set_num_threads(1)  # the CI box is shared: intra-op threads only add contention at these sizes
NAMES = trainable_names()  # every model the loop trains gets every generic test (timm's pattern)


@pytest.fixture(scope="session")
def shards(tmp_path_factory):
    """name -> the shards its tests read: synthetic ones, or (spec ``extra["shards"] == "face_mesh"``) real
    tracked fixture faces, for models whose targets come from face3d (real landmarks and pose)."""
    made = {}

    def get(name: str):
        kind = MODELS.get(name).extra.get("shards", "synthetic")
        if kind not in made:
            root = tmp_path_factory.mktemp(kind)
            if kind == "face_mesh":
                from yi2020_fixtures import write_fixture_shards

                made[kind] = write_fixture_shards(root)
            else:
                made[kind] = write_shards(root, n_frames=24)
        return made[kind]

    return get


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_shapes(name, shards):
    """Generic for any registered model: its objective's loss on a real batch reaches every trainable weight.

    The shape checks below are the known models' own; a new model gets the generic part."""
    cfg = tiny(name)
    torch.manual_seed(0)
    model = MODELS.get(name).build(cfg.model)
    obj, batch = first_batch(cfg, name, shards(name))
    b = 4
    if name == "au_classifier":
        with torch.no_grad():
            out = model(torch.randn(b, 3, 32, 32))
        assert out["intensity"].shape == out["occurrence_logit"].shape == (b, 5)
        assert float(out["intensity"].min()) >= 0 and float(out["intensity"].max()) <= 5
    elif name == "audio_to_au":
        out = model(batch["windows"])
        assert batch["windows"].shape == (b, 8, 12, 35)
        assert out["features"].shape == (b, 8, 2, 4) and out["intensity"].shape == (b, 8, 2)
    elif name in ("au_rgan", "tcn_sa"):
        out = model(torch.randn(b, 3, 32, 32), batch["windows"])
        assert out["frames"].shape == (b, 4, 3, 32, 32) and out["au_intensity"].shape == (b, 4, 2)
        assert model.discriminator(out["frames"][:, 0], torch.randn(b, 3, 32, 32)).shape[:2] == (b, 1)
    elif name == "audio_to_pose":  # tiny: 8-frame sequences of 12 x 28 MFCC blocks -> 16 + 6 face3d targets
        assert batch["windows"].shape == (b, 8, 12, 28) and batch["targets"].shape == (b, 8, 22)
        assert model(batch["windows"]).shape == (b, 8, 22)
    elif name == "sync_expert":
        assert batch["mouth"].shape == (b, 5, 3, 16, 32) and batch["audio"].shape == (b, 12, 20)
        mouths = batch["mouth"].float() / 127.5 - 1
        v, a = model.embed_video(mouths), model.embed_audio(batch["audio"])
        assert v.shape == a.shape == (b, 16)
        assert torch.allclose(v.norm(dim=-1), torch.ones(b), atol=1e-5)
    loss, logs = obj.loss(obj.groups[0], obj.parts(model), batch)
    loss.backward()
    trainable = obj.parts(model)[obj.groups[0]]
    missing = [n for n, p in trainable.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(np.isfinite(v) for v in logs.values())


def test_per_au_networks_and_lstm_fusion():
    """The paper's one-network-per-AU Audio-to-AU and the LSTM fusion cell build and run."""
    cfg = tiny("au_rgan", "model.audio_to_au.shared_trunk=false", "model.fusion.cell=lstm", "model.use_skips=false")
    model = MODELS.get("au_rgan").build(cfg.model)
    assert len(model.generator.audio_to_au.trunks) == 2
    out = model(torch.randn(2, 3, 32, 32), torch.randn(2, 3, 12, 35))
    assert out["frames"].shape == (2, 3, 3, 32, 32)


def test_ablation_switches_remove_components():
    cfg = tiny("tcn_sa", "model.use_audio_to_au=false", "model.discriminator.enabled=false")
    model = MODELS.get("tcn_sa").build(cfg.model)
    assert model.generator.audio_to_au is None and model.discriminator is None
    out = model(torch.randn(1, 3, 32, 32), torch.randn(1, 5, 12, 35))
    assert "au_intensity" not in out
    obj = MODELS.get("tcn_sa").objective(cfg.model, cfg.loss, cfg.data)
    assert obj.groups == ("generator",)


def test_tcn_is_length_preserving_non_causal_and_weight_normed():
    from talkbench.models.tcn_sa import TCNConfig, TCNSAFusion

    cfg = TCNConfig(channels=[16, 32], dropout=0.0)
    fusion = TCNSAFusion(cfg, 12, 8).eval()
    convs = [m for m in fusion.modules() if isinstance(m, torch.nn.Conv1d) and m.kernel_size == (3,)]
    assert [c.dilation[0] for c in convs] == [1, 1, 2, 2] and [c.padding[0] for c in convs] == [1, 1, 2, 2]
    assert all(hasattr(c, "parametrizations") for c in convs)
    x = torch.randn(1, 10, 12, requires_grad=True)
    y = fusion(x)
    assert y.shape == (1, 10, 8)
    y[0, 0].sum().backward()  # frame 0 sees the future (non-causal)
    assert x.grad[0, 5:].abs().sum() > 0


@pytest.mark.parametrize("bad", ["model.fusion.kernel_size=2", "model.fusion.channels=[10,20]", "model.nope=1",
                                 "model.levels=0", "data.seq_len=0"])
def test_bad_config_values_are_clear_errors(bad):
    with pytest.raises(ConfigError) as e:
        tiny("tcn_sa", bad)
    assert bad.split("=")[0].split(".")[-1] in str(e.value)


@pytest.mark.parametrize("name", NAMES)
def test_shipped_configs_hold_the_reference_values(name):
    from conftest import ROOT

    cfg = load_run_config(name, ROOT / "configs" / "models" / f"{name}.yaml")
    if name == "tcn_sa":
        f = cfg.model.fusion
        assert (f.channels, f.kernel_size, f.dilations, f.dropout, f.heads) == ([512, 1024], 3, [1, 2], 0.2, 4)
    if name in ("audio_to_au", "au_rgan", "tcn_sa"):
        a = cfg.model if name == "audio_to_au" else cfg.model.audio_to_au
        assert (a.lstm_hidden, a.lstm_layers, a.fc_dims, a.aus) == (128, 2, [128, 64], ["AU10", "AU14", "AU20", "AU25", "AU26"])
    if name in ("au_rgan", "tcn_sa"):
        assert cfg.model.image_size == 128 and cfg.data.window_hops == 35


@pytest.mark.parametrize("name", NAMES)
def test_shipped_model_yaml_is_generated_from_the_classes(name):
    from talkbench.models.configs import ROOT, render

    assert (ROOT / f"{name}.yaml").read_text() == render(name), "stale: run python -m talkbench.models.configs"


def test_train_without_config_uses_the_published_setup():
    """`talkbench train MODEL` with no --config trains with configs/models/MODEL.yaml (batch 64, lr 1e-4)."""
    cfg = load_run_config("au_classifier")
    assert (cfg.train.batch_size, cfg.train.lr, cfg.data.seq_len) == (64, 1e-4, 1)
    assert load_run_config("au_classifier", None, ["train.lr=0.5"]).train.lr == 0.5


def test_au_consistency_needs_a_classifier_checkpoint():
    cfg = tiny("au_rgan", "loss.au_consistency=1")
    with pytest.raises(ConfigError, match="au_classifier_checkpoint"):
        MODELS.get("au_rgan").objective(cfg.model, cfg.loss, cfg.data)


@pytest.mark.parametrize("name", NAMES)
def test_overfitting_one_batch_lowers_the_loss_5x(name, shards):
    """The full objective of each model (generators: reconstruction + Audio-to-AU terms, no GAN)."""
    extra, steps, lr, batch_size = MODELS.get(name).overfit  # tuned so each runs in seconds on one core
    cfg = tiny(name, *extra)
    torch.manual_seed(0)
    model = MODELS.get(name).build(cfg.model)
    obj, batch = first_batch(cfg, name, shards(name), batch_size)
    group = obj.groups[0]
    opt = torch.optim.Adam(obj.parts(model)[group].parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss, _ = obj.loss(group, obj.parts(model), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-5:]) * 5 <= losses[0], f"{name}: {losses[0]:.4f} -> {losses[-1]:.4f}"
