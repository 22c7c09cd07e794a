"""Seed 001's networks: ATC-net shapes and loss terms, the memory's rules, the memory-augmented GAN."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from talkbench.models.audio_to_pose import AudioToPose, AudioToPoseConfig, AudioToPoseLossConfig, atc_loss
from talkbench.models.memory_gan import (
    KeyValueMemory,
    MemoryConfig,
    MemoryGAN,
    MemoryGANConfig,
    MemoryGANLossConfig,
    discriminator_loss,
    generator_loss,
    total_variation,
)

torch.set_num_threads(1)


def test_atcnet_paper_layout_flattens_to_12288_and_outputs_70_per_frame():
    model = AudioToPose(AudioToPoseConfig())
    assert model.flat_dim == 512 * 12 * 2
    assert model.lstm.num_layers == 3 and model.lstm.hidden_size == 256
    tiny = AudioToPose(AudioToPoseConfig(conv_channels=[4, 4, 8, 8, 8], fc_dims=[16], lstm_hidden=8))
    out = tiny(torch.randn(2, 16, 12, 28))
    assert out.shape == (2, 16, 70)
    assert tiny.flat_dim == 8 * 12 * 2


def test_atc_loss_terms_equal_hand_computations():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 5, 70, generator=g), torch.randn(2, 5, 70, generator=g)
    loss, logs = atc_loss(pred, target, 64, AudioToPoseLossConfig())
    mse_exp = sum(float((pred[b, t, k] - target[b, t, k]) ** 2) for b in range(2) for t in range(5) for k in range(64)) / (2 * 5 * 64)
    mse_pose = sum(float((pred[b, t, k] - target[b, t, k]) ** 2) for b in range(2) for t in range(5) for k in range(64, 70)) / (2 * 5 * 6)
    sp = sum(float((pred[b, t, k] - pred[b, t - 1, k]) ** 2) for b in range(2) for t in range(1, 5) for k in range(64, 70)) / 2
    se = sum(float((pred[b, t, k] - pred[b, t - 1, k]) ** 2) for b in range(2) for t in range(1, 5) for k in range(64)) / 2
    assert logs["mse_exp"] == pytest.approx(mse_exp, rel=1e-5)
    assert logs["mse_pose"] == pytest.approx(mse_pose, rel=1e-5)
    assert logs["smooth_pose"] == pytest.approx(sp, rel=1e-5)
    assert logs["smooth_exp"] == pytest.approx(se, rel=1e-5)
    assert float(loss) == pytest.approx(mse_exp + 0.2 * mse_pose + 0.01 * sp + 1e-4 * se, rel=1e-5)
    # a masked frame leaves both MSEs and the differences that touch it
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[0, 2] = False
    _, m = atc_loss(pred, target, 64, AudioToPoseLossConfig(), mask)
    keep = [(b, t) for b in range(2) for t in range(5) if (b, t) != (0, 2)]
    mse_m = sum(float(((pred[b, t, :64] - target[b, t, :64]) ** 2).sum()) for b, t in keep) / (len(keep) * 64)
    assert m["mse_exp"] == pytest.approx(mse_m, rel=1e-5)
    sp_m = sum(float(((pred[b, t, 64:] - pred[b, t - 1, 64:]) ** 2).sum()) for b in range(2) for t in range(1, 5)
               if (b, t) not in ((0, 2), (0, 3))) / 2
    assert m["smooth_pose"] == pytest.approx(sp_m, rel=1e-5)


def test_atcnet_learns_a_toy_mapping():
    torch.manual_seed(0)
    model = AudioToPose(AudioToPoseConfig(conv_channels=[4, 4, 8, 8, 8], fc_dims=[16], lstm_hidden=16, lstm_layers=1))
    x = torch.randn(2, 6, 12, 28)
    y = torch.cat([x.mean(dim=(2, 3))[..., None].expand(2, 6, 64), torch.zeros(2, 6, 6)], -1)
    opt = torch.optim.Adam(model.parameters(), 2e-3, betas=(0.5, 0.999))
    first = None
    for _ in range(30):
        loss, _ = atc_loss(model(x), y, 64, AudioToPoseLossConfig())
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.3 * first


# ---------------------------------------------------------------------------- memory
def _memory(slots=4, threshold=0.9, margin=0.3, top_k=3):
    cfg = MemoryConfig(slots=slots, key_dim=2, top_k=top_k, margin=margin, threshold=threshold, age_noise=0.0)
    mem = KeyValueMemory(cfg, value_dim=2)
    mem.keys[:] = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]), dim=1)
    mem.values[:] = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    mem.age[:] = torch.tensor([3.0, 1.0, 7.0, 2.0])
    return mem


def test_update_merges_into_top1_when_values_agree():
    mem = _memory()
    q = F.normalize(torch.tensor([[1.0, 0.5]]), dim=1)  # top-1 = slot 0, value (1, 0)
    stats = mem.update(q, torch.tensor([[1.0, 0.0]]))
    assert stats == {"merged": 1, "replaced": 0}
    assert torch.allclose(mem.keys[0], F.normalize(torch.tensor([1.0, 0.0]) + q[0], dim=0))
    assert mem.age.tolist() == [0.0, 2.0, 8.0, 3.0]
    assert torch.equal(mem.values[0], torch.tensor([1.0, 0.0]))


def test_update_replaces_the_oldest_slot_when_values_disagree():
    mem = _memory()
    q = F.normalize(torch.tensor([[1.0, 0.5]]), dim=1)  # top-1 = slot 0, whose value (1, 0) disagrees
    stats = mem.update(q, torch.tensor([[0.0, 1.0]]))
    assert stats == {"merged": 0, "replaced": 1}
    assert torch.allclose(mem.keys[2], q[0]) and torch.equal(mem.values[2], torch.tensor([0.0, 1.0]))
    assert mem.age.tolist() == [4.0, 2.0, 0.0, 3.0]  # slot 2 (age 7 -> 8) was the oldest
    assert torch.equal(mem.keys[0], torch.tensor([1.0, 0.0]))


def test_margin_loss_on_toy_tensors():
    mem = _memory(threshold=0.9, margin=0.3, top_k=4)
    q = F.normalize(torch.tensor([[1.0, 0.2]]), dim=1)
    s = (q @ mem.keys.t())[0]  # scores of the 4 slots
    # value (1, 0) agrees with slots 0 and 2 -> pos = max(s0, s2); neg = max(s1, s3)
    expect = max(0.0, float(max(s[1], s[3]) - max(s[0], s[2]) + 0.3))
    assert float(mem.margin_loss(q, torch.tensor([[1.0, 0.0]]))) == pytest.approx(expect, abs=1e-6)
    assert float(mem.margin_loss(q, torch.tensor([[1.0, 0.0]]))) == 0.0  # pos >> neg: zero hinge
    # value (0, 1) agrees with slots 1 and 3 only: pos = s1 = 0.196, neg = s0 = 0.98 -> 0.98 - 0.196 + 0.3
    expect2 = float(max(s[0], s[2]) - max(s[1], s[3]) + 0.3)
    assert float(mem.margin_loss(q, torch.tensor([[0.0, 1.0]]))) == pytest.approx(expect2, abs=1e-6)
    assert mem.read(q).tolist() == [[1.0, 0.0]]


# ---------------------------------------------------------------------------- GAN
def _tiny_gan(**mem):
    return MemoryGAN(MemoryGANConfig(image_size=32, base_channels=4, levels=4, id_dim=8, disc_channels=4,
                                     disc_layers=2, memory=MemoryConfig(slots=16, key_dim=8, top_k=4, **mem)))


def test_memory_gan_shapes_and_attention_blend():
    torch.manual_seed(0)
    gan = _tiny_gan()
    rendered = torch.rand(2, 9, 32, 32) * 2 - 1
    ident = F.normalize(torch.randn(2, 8), dim=1)
    out = gan(rendered, ident)
    assert out["frames"].shape == out["image"].shape == (2, 3, 32, 32) and out["mask"].shape == (2, 1, 32, 32)
    a = out["mask"]
    assert torch.allclose(out["frames"], a * rendered[:, 6:] + (1 - a) * out["image"])
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    d = gan.discriminator(torch.cat([rendered, out["frames"]], 1))
    assert d.shape[:2] == (2, 1)
    # a different identity feature changes the output through AdaIN once AdaIN is not the identity map
    torch.nn.init.normal_(gan.generator.adain[0].affine.weight)
    o1 = gan(rendered, ident)["image"]
    o2 = gan(rendered, F.normalize(torch.randn(2, 8), dim=1))["image"]
    assert not torch.allclose(o1, o2)
    assert gan.identity_for(rendered, ident).shape == (2, 8)
    off = _tiny_gan(enabled=False)
    assert torch.equal(off.identity_for(rendered, ident), ident)


def test_generator_loss_weights():
    out = {"frames": torch.zeros(1, 3, 4, 4), "mask": torch.zeros(1, 1, 4, 4)}
    out["mask"][0, 0, 1, 1] = 1.0
    real = torch.ones(1, 3, 4, 4)
    d_fake = torch.zeros(1, 1, 2, 2)
    loss, logs = generator_loss(out, real, d_fake, MemoryGANLossConfig(mask=2.0))
    assert logs["l1"] == pytest.approx(1.0) and logs["mask_mean"] == pytest.approx(1 / 16)
    assert float(total_variation(out["mask"])) == pytest.approx(4.0)  # the single 1 has 4 neighbours
    gan = float(torch.log(torch.tensor(2.0)))
    assert float(loss) == pytest.approx(gan + 100 * 1.0 + 2.0 / 16 + 1e-5 * 4.0, rel=1e-6)
    assert float(discriminator_loss(d_fake, d_fake)) == pytest.approx(gan, rel=1e-6)
