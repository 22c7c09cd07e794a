"""Seed 001 end to end on real fixtures: general training (tiny), ``personalize`` on the first 250 frames of
the 13.9 s VoxCeleb clip, ``generate`` on the held-out rest; ``train face3d``; head boxes."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from yi2020_fixtures import VOX, tracked_clips, write_fixture_shards

from talkbench.app.cli import main
from talkbench.models import yi2020 as Y

pytestmark = pytest.mark.slow
N_FT = 250


@pytest.fixture(scope="module")
def general(tmp_path_factory, fixtures_dir):
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("yi")
    shards = write_fixture_shards(root / "shards")
    assert main(["yi2020", "train", "--shards", str(shards), "--preset", "tiny", "--out", str(root / "general")]) == 0
    return root, shards


@pytest.fixture(scope="module")
def personal(general):
    root, _ = general
    assert main(["personalize", "--checkpoint", str(root / "general"), "--video", str(VOX), "--frames", str(N_FT),
                 "--preset", "tiny", "--out", str(root / "personal")]) == 0
    held = tracked_clips()[VOX.stem]["audio"][N_FT * 640 :]
    sf.write(root / "held_out.wav", held, 16000)
    return root, held


def test_general_checkpoint_bundles_the_three_parts(general):
    root, _ = general
    m = Y.Yi2020.load(root / "general")
    assert m.kind == "general" and m.face3d.n_exp == 16 and m.face3d.report["n_clips"] == 2
    assert {p.name for p in (root / "general").iterdir()} >= {"yi2020.json", "face3d.safetensors", "model.safetensors"}
    from talkbench.models.checkpoint import read_metadata

    assert read_metadata(root / "general")["talkbench_model"] == "yi2020"  # found by the generator protocol


def test_personalize_then_generate_head_crops(personal):
    root, held = personal
    out = root / "head.mp4"
    assert main(["generate", "--checkpoint", str(root / "personal"), "--audio", str(root / "held_out.wav"),
                 "--out", str(out)]) == 0
    from talkbench.media import read_av

    av = read_av(out)
    assert av.n_frames == round(len(held) / 640) and av.frames.shape[1:3] == (32, 32)
    assert av.audio is not None and abs(len(av.audio) - len(held)) <= 640
    model = Y.Yi2020.load(root / "personal")
    assert model.kind == "personal" and model.history["personalise"]["frames"] == N_FT
    coeffs = Y.predict_coefficients(model, held)
    rot = coeffs[:, model.face3d.n_exp : model.face3d.n_exp + 3]
    assert len(coeffs) == av.n_frames
    # the pose moves, on the scale of the real head motion (before the target's own expression normalisation
    # and ~25 fine-tuning epochs: 0.004 deg std at tiny vs 3.2 deg in the real held-out frames)
    real = tracked_clips()[VOX.stem]["pose"]
    real_var = float(real[N_FT:, :3].std(0).mean())
    assert Y.pose_variation(coeffs, model.face3d.n_exp) > 0.25 * real_var, (rot.std(0), real[N_FT:, :3].std(0))
    assert rot[:, 0].std() > 1.0  # yaw, the largest real motion: degrees, not hundredths
    # the pose lives where the target's head is (the personal normalisation), not at the GRID speakers' pose
    assert abs(rot[:, 0].mean() - real[:N_FT, 0].mean()) < 10
    # ablation: no pose prediction = the target's first pose held
    model.cfg = model.cfg.model_copy(update={"ablation": "no_pose"})
    held_pose = Y.predict_coefficients(model, held)[:, model.face3d.n_exp :]
    assert np.all(held_pose == held_pose[0]) and np.allclose(held_pose[0], model.poses[0])


def test_generate_full_frames_with_the_target_video(personal):
    root, held = personal
    out = root / "full.mp4"
    assert main(["generate", "--checkpoint", str(root / "personal"), "--audio", str(root / "held_out.wav"),
                 "--video", str(VOX), "--out", str(out)]) == 0
    from talkbench.media import read_av

    av = read_av(out)
    assert av.frames.shape[1:3] == (224, 224) and av.n_frames == round(len(held) / 640)


def test_generate_and_personalize_errors(general, personal, capsys):
    root, _ = general
    assert main(["generate", "--checkpoint", str(root / "general"), "--audio", str(root / "held_out.wav"),
                 "--out", str(root / "x.mp4")]) != 0
    assert "personalize" in capsys.readouterr().err
    assert main(["personalize", "--checkpoint", str(root / "personal"), "--video", str(VOX), "--out",
                 str(root / "y")]) != 0
    assert "already personalised" in capsys.readouterr().err


def test_train_face3d_cli_reports_reconstruction(general, tmp_path, capsys):
    _, shards = general
    assert main(["train", "face3d", "--shards", str(shards), "-o", f"out={tmp_path}", "-o", "n_exp=32"]) == 0
    from talkbench.models.face3d import Face3D

    m = Face3D.load(tmp_path)
    err = m.report["train_crop_px_error"]
    assert m.n_exp == 32 and err["identity_expression"] < err["mean_shape"]
    assert m.report["train_expression_explained"] >= 0.95
    # a closed-form fit has no loop: loop flags are a clear error, never silently ignored
    capsys.readouterr()
    assert main(["train", "face3d", "--shards", str(shards), "--max-steps", "3", "--resume"]) == 2
    assert "--max-steps, --resume cannot be used" in capsys.readouterr().err


def test_head_box_covers_every_frame_of_the_clip():
    d = tracked_clips()[VOX.stem]
    m = Y.head_box_matrix(d["landmarks"], d["face_found"], 64, 1.2)
    from talkbench.pipelines.face import apply_affine

    pts = apply_affine(np.repeat(m[None], len(d["landmarks"]), 0), d["landmarks"][..., :2].astype(np.float64))
    assert pts.min() >= 0 and pts.max() <= 64
    assert m[0, 1] == 0 and m[1, 0] == 0 and m[0, 0] == m[1, 1]  # no rotation: pose stays visible


def test_checkpoint_generator_personalizes_per_clip_then_generates_full_frames(general):
    """The generator protocol: the yi2020 ModelSpec's personalise hook, then its generate entry."""
    from talkbench.models.generate import CheckpointGenerator

    root, _ = general
    d = tracked_clips()[VOX.stem]
    gen = CheckpointGenerator(root / "general", preset="tiny")
    gen.setup()
    with pytest.raises(Exception, match="personalize"):
        gen.generate(d["frames"][0], d["audio"][:16000], 25.0)
    gen.personalize(d["frames"][:60], d["audio"][: 60 * 640])
    assert gen.model.kind == "personal" and gen.model.history["personalise"]["frames"] == 60
    assert gen._general.kind == "general"  # the next clip starts again from the general model
    out = gen.generate(None, d["audio"][60 * 640 : 90 * 640], 25.0)  # no reference face is needed
    assert out.shape == (30, 224, 224, 3) and out.dtype == np.uint8
    # a generator without a personalise hook has no personalize attribute: scored as a baseline
    from talkbench.models.registry import MODELS

    assert MODELS.get("yi2020").personalize is not None and MODELS.get("mftfg").personalize is None


def test_shards_with_and_without_head_crops(general, tmp_path):
    _, shards = general
    with_head = Y.targets_from_shards(shards)
    assert with_head[0].crops.shape[1:] == (64, 64, 3)  # the head column
    m = with_head[0].crop_matrix
    assert np.allclose(m, m[0]) and m[0, 0, 1] == 0  # one fixed box per clip, no rotation
    old = write_fixture_shards(tmp_path / "v1_0", head=False)  # a schema-1.0 folder: no head columns
    import json

    assert json.loads((old / "manifest.json").read_text())["schema_version"] == "1.0"
    without = Y.targets_from_shards(old)  # read without the column: the aligned face crops instead
    assert without[0].crops.shape[1:] == (128, 128, 3) and not np.allclose(without[0].crop_matrix,
                                                                              without[0].crop_matrix[0])


@pytest.fixture(scope="module")
def short_target(general):
    root, _ = general
    d = tracked_clips()[VOX.stem]
    g = Y.Yi2020.load(root / "general")
    return g, Y.target_from_arrays(d["frames"][:40], d["audio"][: 40 * 640], g.cfg.head_size, g.cfg.head_margin)


@pytest.mark.parametrize("ablation", ["render=sketch", "ablation=no_memory", "ablation=no_personalisation"])
def test_ablations(short_target, ablation):
    import torch

    general, target = short_target
    key, value = ablation.split("=")
    few = general.cfg.finetune_audio.model_copy(update={"steps": 8})  # what each variant changes, not quality
    personal, _ = Y.personalize(general, target, 40, {key: value, "finetune_audio": few})
    audio = tracked_clips()[VOX.stem]["audio"][40 * 640 : 60 * 640]
    res = Y.generate_frames(personal, audio)
    assert res["frames"].shape == (20, 32, 32, 3)
    if key == "render":  # flat grey face region and coloured contours, no texture
        face = res["rendered"].reshape(-1, 3)
        assert ((face == 150).all(1)).mean() > 0.1
    elif value == "no_memory":
        r = Y._stack_window(Y._img(res["rendered"], 32), 3)
        own = torch.from_numpy(personal.identity.astype(np.float32)).expand(len(r), -1)
        assert torch.equal(personal.gan.identity_for(r, own), own)
    else:  # no fine-tuning: the audio net and the GAN are the general ones
        for a, b in zip(personal.audio_net.state_dict().values(), general.audio_net.state_dict().values(), strict=True):
            assert torch.equal(a, b)
        assert "audio_loss" not in personal.history["personalise"]


def test_checkpoint_submission_of_a_yi2020_bundle_goes_through_its_model_spec(general):
    from talkbench.benchmark.submissions import load_submission

    root, _ = general
    from talkbench.errors import ConfigError
    from talkbench.models.generate import CheckpointGenerator

    sub = load_submission(f"checkpoint:{root / 'general'}?preset=tiny")
    assert isinstance(sub.obj, CheckpointGenerator) and sub.obj.options.preset == "tiny"
    assert callable(sub.obj.personalize)
    assert any(k.endswith("face3d.safetensors") for k in sub.identity["files"])
    with pytest.raises(ConfigError, match="preset"):  # options are the spec's, validated
        CheckpointGenerator(root / "general", preset="huge")


def test_recipe_run_yi2020_tiny_on_cpu(general, tmp_path, monkeypatch, capsys):
    from talkbench.app.recipes import load_recipe, plan_steps

    _, shards = general
    plans = plan_steps(load_recipe("yi2020"), "tiny", ablations=True, gpu=False)
    assert [(p.name, p.kind) for p in plans[:4]] == [("face3d", "face3d"), ("audio_to_pose", "train"),
                                                      ("memory_gan", "train"), ("yi2020", "yi2020")]
    assert [p.variant for p in plans[3:]] == [None, "no_memory", "sketch", "no_pose", "no_personalisation"]
    assert plans[3].overrides == ["preset=tiny"] and "render=sketch" in plans[5].overrides
    # the training step is the `yi2020 train` the `general` fixture already ran (same function, same preset):
    # its checkpoint in the work folder makes the recipe skip it, so this test pays for scoring only
    import shutil

    root, _ = general
    shutil.copytree(root / "general", tmp_path / "work" / "yi2020")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("TALKBENCH_ARTIFACT_ROOT", (tmp_path / "mlartifacts").as_uri())
    from talkbench.app.recipes import RecipeContext, make_task

    ctx = RecipeContext(load_recipe("yi2020"), shards, tmp_path / "work", "tiny", echo=print)
    task = make_task(ctx, "yi2020-tiny", tmp_path / "tasks")  # the recipe's own task: personalised, 40 frames
    assert task.kind == "personalized" and {c.personalize_frames for c in task.clips} == {40}
    # score one clip only (time): the same kind of task, cut to its first clip
    assert main(["bench", "make-task", "--shards", str(shards), "--name", "yi1", "--kind", "personalized",
                 "--personalize-frames", "40", "--max-clips", "1", "--split", "train",
                 "--tasks-dir", str(tmp_path / "tasks")]) == 0
    args = ["recipe", "run", "yi2020", "--shards", str(shards), "--preset", "tiny", "--out", str(tmp_path / "work"),
            "--tasks-dir", str(tmp_path / "tasks"), "--metrics", "hs-w1", "--task", "yi1"]
    assert main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "yi2020: done earlier" in out and "--kind personalized --personalize-frames 40" in out
    # the chain before the bundle: face3d (closed form), then audio_to_pose through `talkbench train`
    assert "$ talkbench train face3d" in out and "loss.face3d=" in out
    assert "$ talkbench train audio_to_pose" in out and "$ talkbench train memory_gan" in out
    board = (tmp_path / "reports" / "leaderboards" / "yi1.md").read_text()
    assert "ground-truth" in board and "yi2020 (tiny)" in board


def test_arcface_identity_feature_when_the_store_has_it(general, tmp_path, monkeypatch):
    """No ArcFace file: the speaker embedding, and the run says which file is missing. A (random-initialised)
    ArcFace imported into the store: AdaIN's identity comes from it, and the checkpoint records that."""
    import torch
    import torch.nn.functional as F

    from talkbench import weights
    from talkbench.errors import TalkbenchError
    from talkbench.models.arcface import IResNet, arcface_identity

    _, shards = general
    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(tmp_path / "store"))
    arcface_identity.cache_clear()
    fast = {"general_audio": {"steps": 1}, "general_gan": {"steps": 1}, "speaker": {"steps": 1}}
    said: list[str] = []
    m = Y.train_general(shards, Y.preset("tiny", fast), progress=said.append)
    assert m.cfg.identity == "speaker" and "speaker_loss" in m.history
    assert any("not found" in s and str(weights.weight_path(Y.ARCFACE)) in s for s in said)

    torch.manual_seed(0)
    net = IResNet(layers=(1, 1, 1, 1), num_features=8).eval()  # insightface's key scheme, tiny
    torch.save(net.state_dict(), tmp_path / "backbone.pth")
    weights.import_weights(Y.ARCFACE, str(tmp_path / "backbone.pth"))
    arcface_identity.cache_clear()
    m = Y.train_general(shards, Y.preset("tiny", fast), progress=said.append)
    assert m.cfg.identity == "arcface" and m.cfg.gan.id_dim == 8 and "speaker_loss" not in m.history
    back = Y.Yi2020.load(m.save(tmp_path / "ck"))
    assert back.cfg.identity == "arcface" and back.history["identity_feature"] == Y.ARCFACE
    # memory_gan trained by `talkbench train` resolves `identity: auto` the same way, and records it
    from shards_factory import tiny_config

    from talkbench.models.registry import MODELS

    gan_model = MODELS.get("memory_gan").build(tiny_config("memory_gan", "model.identity=auto").model)
    assert gan_model.cfg.identity == "arcface" and gan_model.cfg.id_dim == 8 and gan_model.speaker is None
    # personalising takes the target's identity from ArcFace: the network's mean unit embedding of its crops
    d = tracked_clips()[VOX.stem]
    target = Y.target_from_arrays(d["frames"][:30], d["audio"][: 30 * 640], back.cfg.head_size, back.cfg.head_margin)
    personal, _ = Y.personalize(back, target, 30, {"ablation": "no_personalisation"})
    crops = target.crops[target.valid]
    idx = np.linspace(0, len(crops) - 1, min(32, len(crops))).astype(int)
    x = torch.from_numpy(crops[idx]).float().div(127.5).sub(1).permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(112, 112), mode="bilinear", align_corners=False, antialias=True)
    with torch.no_grad():
        expect = F.normalize(F.normalize(net(x), dim=1).mean(0), dim=0).numpy()
    assert personal.identity.shape == (8,) and np.allclose(personal.identity, expect, atol=1e-5)
    # the file gone: personalising an ArcFace checkpoint names what is missing (no silent fallback)
    monkeypatch.setenv("TALKBENCH_WEIGHTS", str(tmp_path / "empty"))
    with pytest.raises(TalkbenchError, match=Y.ARCFACE):
        Y.personalize(back, target, 30, {"ablation": "no_personalisation"})


def test_train_the_parts_with_the_shared_loop_then_bundle_them(general, tmp_path, monkeypatch):
    """`talkbench train audio_to_pose`: the shared loop (MLflow, --max-steps, exact --resume) on the face3d
    coefficients of real tracked faces; `talkbench train memory_gan` on their renders; the yi2020 bundle
    then takes both checkpoints instead of training its own parts."""
    import mlflow
    from safetensors.torch import load_file

    from talkbench.models.checkpoint import load_state
    from talkbench.models.registry import MODELS

    _, shards = general
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("TALKBENCH_ARTIFACT_ROOT", (tmp_path / "mlartifacts").as_uri())
    assert main(["train", "face3d", "--shards", str(shards), "-o", "out=f3", "-o", "n_exp=16", "-o", "n_id=8"]) == 0
    face3d = str(tmp_path / "f3" / "face3d.safetensors")
    over = [*MODELS.get("audio_to_pose").tiny, f"loss.face3d={face3d}", "train.out_dir=runs", "data.num_workers=0",
            "train.checkpoint_every=2", "train.val_every=0", "train.batch_size=2", "train.lr=0.003", "train.log_every=1"]
    base = ["train", "audio_to_pose", "--shards", str(shards), *[x for o in over for x in ("-o", o)]]
    assert main([*base, "--run-name", "r", "--max-steps", "2"]) == 0
    assert main([*base, "--run-name", "r", "--max-steps", "4", "--resume"]) == 0
    assert main([*base, "--run-name", "u", "--max-steps", "4"]) == 0
    resumed, whole = tmp_path / "runs/audio_to_pose/r/step_0000004", tmp_path / "runs/audio_to_pose/u/step_0000004"
    a, b = load_file(str(resumed / "model.safetensors")), load_file(str(whole / "model.safetensors"))
    assert all(torch_equal(a[k], b[k]) for k in a)  # resuming draws exactly the samples an unbroken run does
    run_id = load_state(resumed)["mlflow_run_id"]
    steps = [m.step for m in mlflow.tracking.MlflowClient().get_metric_history(run_id, "mse_pose")]
    assert max(steps) == 4 and 1 in steps  # one MLflow run across the resume

    # memory_gan through the same loop: renders of the face3d coefficients -> head crops, speaker identity
    over = [*MODELS.get("memory_gan").tiny, f"loss.face3d={face3d}", "train.out_dir=runs", "data.num_workers=0",
            "train.val_every=0", "train.batch_size=2", "train.mlflow=false"]
    assert main(["train", "memory_gan", "--shards", str(shards), "--run-name", "g", "--max-steps", "2",
                 *[x for o in over for x in ("-o", o)]]) == 0
    gan_ckpt = tmp_path / "runs/memory_gan/g/step_0000002"
    g = load_file(str(gan_ckpt / "model.safetensors"))
    assert any(k.startswith("speaker.") for k in g) and any(k.startswith("gan.memory.") for k in g)

    fast = {"general_gan": {"steps": 1}, "speaker": {"steps": 1}, "face3d_artifact": face3d,
            "audio_to_pose_checkpoint": str(resumed), "memory_gan_checkpoint": str(gan_ckpt)}
    bundle = Y.train_general(shards, Y.preset("tiny", fast))
    assert bundle.history["audio_to_pose"] == str(resumed) and bundle.history["audio_loss"] == []
    assert all(torch_equal(v, a[k]) for k, v in bundle.audio_net.state_dict().items())
    assert bundle.history["memory_gan"] == str(gan_ckpt) and bundle.history["gan_l1"] == []
    assert all(torch_equal(v, g[f"gan.{k}"]) for k, v in bundle.gan.state_dict().items())
    assert all(torch_equal(v, g[f"speaker.{k}"]) for k, v in bundle.speaker_net.state_dict().items())
    assert bundle.cfg.identity == "speaker"  # what the memory_gan checkpoint recorded
    import shutil

    other = shutil.copy(face3d, tmp_path / "other.safetensors")
    with pytest.raises(Exception, match="same artifact"):  # an audio net trained against another face3d
        Y.train_general(shards, Y.preset("tiny", {**fast, "face3d_artifact": str(other)}))


def torch_equal(x, y) -> bool:
    import torch

    return bool(torch.equal(x, y))
