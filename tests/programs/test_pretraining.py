"""keras_jepa.models.jepa.recipes: official configs, ``pretrain`` on an image folder (outputs and
resume), the ``pretrain`` CLI subcommand and the application wrappers."""

import csv
import os

import numpy as np
import pytest
from PIL import Image

from keras_jepa import cli
from keras_jepa.models.jepa.recipes import (
    CONFIGS,
    build_mask_sampler,
    build_optimizer,
    get_config,
    schedule_steps,
)
from keras_jepa.programs.pretrain import pretrain


def test_ijepa_official_config_matches_reference():
    c = get_config("ijepa_vith14_in1k")
    assert (c.image_size, c.patch_size, c.hidden_dim, c.depth, c.num_heads) == (224, 14, 1280, 32, 16)
    assert (c.predictor_dim, c.predictor_depth) == (384, 12)
    assert c.masks == dict(enc_mask_scale=(0.85, 1.0), pred_mask_scale=(0.15, 0.2),
                           aspect_ratio=(0.75, 1.5), nenc=1, npred=4, min_keep=10,
                           allow_overlap=False)
    assert (c.start_lr, c.lr, c.final_lr) == (2e-4, 1e-3, 1e-6)
    assert c.weight_decay == (0.04, 0.4) and c.ema_momentum == (0.996, 1.0)
    assert (c.batch_size, c.per_device_batch_size) == (2048, 128)
    # ImageNet-1k at 2048 images per step: 625 steps per epoch, 40 warmup epochs of 300.
    assert schedule_steps(c, 300, 625) == {
        "total_steps": 187500, "warmup_steps": 25000, "ema_steps": 187500}
    sampler = build_mask_sampler(c)
    assert sampler.grid_size == (16, 16)
    assert (sampler.num_context_tokens, sampler.num_target_tokens) == (69, 44)
    opt = build_optimizer(c, 187500, 25000)
    assert float(opt.learning_rate) == pytest.approx(2e-4 + 1 / 25000 * 8e-4, rel=1e-5)


def test_vjepa_official_configs_match_reference():
    v1 = get_config("vjepa_vitl16")
    assert [(m["spatial_scale"], m["num_blocks"]) for m in v1.masks] == [
        ((0.15, 0.15), 8), ((0.7, 0.7), 2)]
    assert all(m["temporal_scale"] == (1.0, 1.0) for m in v1.masks)
    assert (v1.lr, v1.ema_momentum, v1.ipe_scale, v1.grad_clip) == (6.25e-4, (0.998, 1.0), 1.25, 10.0)
    assert (v1.num_frames, v1.tubelet_size, v1.batch_size) == (16, 2, 3072)
    # 300 epochs x 300 iterations, T_max = 1.25 x 90K, warmup 12K.
    assert schedule_steps(v1, 300, 300) == {
        "total_steps": 112500, "warmup_steps": 12000, "ema_steps": 112500}
    opt1 = build_optimizer(v1, 112500, 12000, steps_per_epoch=300)
    assert (opt1.clip_norm, opt1.clip_start_step) == (10.0, 12300)
    v2 = get_config("vjepa2_vitl16")
    assert v2.position_embedding == "rope" and not v2.cosine_lr
    assert (v2.start_lr, v2.lr, v2.final_lr) == (1e-4, 5.25e-4, 5.25e-4)
    assert v2.ema_momentum == (0.99925, 0.99925) and v2.weight_decay == (0.04, 0.04)
    assert (v2.predictor_heads, v2.num_mask_tokens, v2.image_size) == (12, 10, 256)
    opt = build_optimizer(v2, 1000, 100)
    assert float(opt._learning_rate(500)) == pytest.approx(5.25e-4)


def test_get_config_rejects_unknown_name():
    with pytest.raises(ValueError, match="ijepa_tiny_cpu"):
        get_config("ijepa_huge")
    assert set(CONFIGS) >= {"ijepa_tiny_cpu", "vjepa_tiny_cpu", "ijepa_vith14_in1k"}


@pytest.fixture
def image_folder(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    rng = np.random.RandomState(0)
    for i in range(16):
        pixels = rng.randint(0, 255, (36, 40, 3)).astype("uint8")
        Image.fromarray(pixels).save(root / f"{i}.png")
    return str(root)


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _stop_after_first_epoch():
    """A callback that ends ``fit`` after epoch 0, as an interruption would (the backup of
    epoch 0 is already written)."""
    import keras

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    return Stop()


def test_pretrain_folder_writes_outputs_and_resumes(image_folder, tmp_path):
    from keras_jepa.models import VisionTransformer
    from keras_jepa.programs.pretrain import RunMismatchError

    config = get_config("ijepa_tiny_cpu").replace(
        image_size=16, depth=1, predictor_depth=1, hidden_dim=32, num_heads=2,
        predictor_dim=16, predictor_heads=2)
    out = str(tmp_path / "run")
    first = pretrain(config, image_folder, epochs=2, batch_size=8, output_dir=out, verbose=0,
                     callbacks=[_stop_after_first_epoch()])
    for name in ("log.csv", "loss.png", "config.json", "run_identity.json",
                 "checkpoints/model.weights.h5"):
        assert os.path.exists(os.path.join(out, name)), name
    encoder = VisionTransformer.from_preset(first["encoder_dir"])
    target = first["model"].target_encoder
    for a, b in zip(encoder.get_weights(), target.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert len(_rows(first["log_path"])) == 1
    # Rerun with the same arguments: BackupAndRestore continues at epoch 1 (one more epoch).
    second = pretrain(config, image_folder, epochs=2, batch_size=8, output_dir=out, verbose=0)
    rows = _rows(second["log_path"])
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert float(np.asarray(second["model"].ema_step)) == 4.0  # 2 steps/epoch x 2 epochs
    assert int(np.asarray(second["model"].optimizer.iterations)) == 4
    # More epochs would stretch the schedules under the finished part: refused.
    with pytest.raises(RunMismatchError, match="epochs: 2 -> 3") as info:
        pretrain(config, image_folder, epochs=3, batch_size=8, output_dir=out, verbose=0)
    assert "overwrite=True (CLI: --overwrite)" in str(info.value)
    with pytest.raises(RunMismatchError, match="config.depth: 1 -> 2"):
        pretrain(config.replace(depth=2), image_folder, epochs=2, batch_size=8,
                 output_dir=out, verbose=0)
    assert len(_rows(second["log_path"])) == 2


def test_pretrain_cli_parses_and_rejects_kind_mismatch(capsys):
    args = cli._parser().parse_args(
        ["pretrain", "--config", "ijepa_tiny_cpu", "--data", "d", "--epochs", "3",
         "--batch-size", "16", "--output", "o"])
    assert (args.command, args.config, args.data, args.epochs, args.batch_size, args.output) == (
        "pretrain", "ijepa_tiny_cpu", "d", 3, 16, "o")
    assert args.video is False
    assert cli.main(["pretrain", "--config", "vjepa_tiny_cpu", "--data", "d"]) == 2
    assert "--video" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli._parser().parse_args(["pretrain", "--config", "nope", "--data", "d"])


# --------------------------------------------------------------------------- V-JEPA 2 phases


def test_vjepa2_cooldown_configs_match_official():
    from keras_jepa.models.jepa.recipes import config_from_official
    from keras_jepa.training.optimizers import LinearDecaySchedule

    for name, size, frames, per_device in (
            ("vjepa2_vitl16_cooldown", 256, 64, 12), ("vjepa2_vith16_cooldown", 256, 64, 12),
            ("vjepa2_vitg16_384_cooldown", 384, 64, 6)):
        c = get_config(name)
        assert (c.image_size, c.num_frames, c.frames_per_clip, c.per_device_batch_size) == (
            size, frames, frames, per_device), name
        assert c.linear_decay and (c.lr, c.final_lr, c.warmup_epochs) == (5.25e-4, 1e-6, 0)
        assert (c.epochs, c.ipe_scale, c.batch_size) == (40, 1.25, 3072)
        assert c.ema_momentum == (0.99925, 0.99925) and c.weight_decay == (0.04, 0.04)
    assert get_config("vjepa2_vitg16_384_cooldown").num_heads == 22
    # 40 epochs x 300 iterations over T_max = 1.25 x 12K: the official line, stepped before
    # each update, stops at 80% of the way to final_lr.
    c = get_config("vjepa2_vitl16_cooldown")
    lengths = schedule_steps(c, 40, 300)
    assert lengths == {"total_steps": 15000, "warmup_steps": 0, "ema_steps": 15000}
    opt = build_optimizer(c, lengths["total_steps"], lengths["warmup_steps"], 300)
    assert isinstance(opt._learning_rate, LinearDecaySchedule)
    official = [5.25e-4 + (k + 1) / 15000 * (1e-6 - 5.25e-4) for k in (0, 5999, 11999)]
    ours = [float(opt._learning_rate(k)) for k in (0, 5999, 11999)]
    np.testing.assert_allclose(ours, official, rtol=1e-5)
    assert ours[-1] == pytest.approx(5.25e-4 - 0.8 * (5.25e-4 - 1e-6), rel=1e-5)
    # An official cooldown YAML (is_anneal) with two clip lengths in dataset_fpcs.
    yaml_dict = {"model": {"model_name": "vit_large", "use_rope": True, "pred_num_heads": 12},
                 "data": {"crop_size": 256, "dataset_fpcs": [64, 32, 64]},
                 "mask": [{}, {}],
                 "optimization": {"is_anneal": True, "lr": 5.25e-4, "final_lr": 1e-6,
                                  "warmup": 0, "epochs": 40}}
    official_config = config_from_official(yaml_dict)
    assert official_config.linear_decay and official_config.clip_lengths == (64, 32)
    assert (official_config.num_frames, official_config.num_mask_tokens) == (64, 6)


def _write_video(path, frames, size=24):
    av = pytest.importorskip("av")
    with av.open(path, "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        for i in range(frames):
            frame = np.full((size, size, 3), 15 * i, "uint8")
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))


_TINY_V2 = dict(hidden_dim=24, depth=1, num_heads=2, predictor_dim=16, predictor_depth=1,
                predictor_heads=2, frame_step=1)


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory):
    videos = tmp_path_factory.mktemp("videos")
    for i in range(4):
        _write_video(str(videos / f"{i}.mp4"), 12)
    return str(videos)


def _phase1():
    return get_config("vjepa2_tiny_cpu").replace(
        image_size=16, num_frames=4, frames_per_clip=4, clip_lengths=(2, 4), **_TINY_V2)


def _cooldown():
    return get_config("vjepa2_cooldown_tiny_cpu").replace(
        image_size=24, num_frames=8, frames_per_clip=8, **_TINY_V2)


def test_clip_length_groups_give_one_length_per_batch(video_folder):
    from keras_jepa.models.jepa.recipes import build_dataset

    dataset = build_dataset(_phase1(), video_folder, batch_size=2, seed=4)
    lengths = [dataset.clip_length_at(0, i) for i in range(2)]
    assert lengths == [2, 4]  # seed 4: both lengths in the epoch's two batches
    assert [dataset.clip_length_at(1, i) for i in range(2)] == [
        dataset.clip_length_at(1, i) for i in range(2)]
    for i, frames in enumerate(lengths):
        batch = dataset[i]
        assert batch["videos"].shape == (2, frames, 16, 16, 3)
        # Each length's masks live on its own grid (frames / 2 x 2 x 2 tokens).
        grid_tokens = frames // 2 * 4
        for key in ("context_indices", "target_indices"):
            assert max(int(m.max()) for m in batch[key]) < grid_tokens
    np.testing.assert_array_equal(dataset[1]["videos"], batch["videos"])  # reproducible


def _fake_run_folder(path, config, model):
    """A finished ``pretrain`` run folder: identity, config and last checkpoint."""
    import json

    os.makedirs(os.path.join(path, "checkpoints"))
    with open(os.path.join(path, "run_identity.json"), "w") as f:
        json.dump({"config": config.to_dict()}, f, default=list)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump({"config": config.to_dict()}, f, default=list)
    model.save_weights(os.path.join(path, "checkpoints", "model.weights.h5"))


def test_init_from_a_run_folder_takes_over_every_weight(tmp_path):
    from keras_jepa.models.jepa.recipes import build_model
    from keras_jepa.programs.pretrain import init_weights_from, load_init_model, run_identity

    phase1 = build_model(_phase1())
    run = str(tmp_path / "phase1")
    _fake_run_folder(run, _phase1(), phase1)
    cooldown = build_model(_cooldown())
    source = load_init_model(run, "video")
    assert init_weights_from(cooldown, source) == len(cooldown.weights) - 1  # not ema_step
    for part in ("encoder", "target_encoder", "predictor"):
        for got, want in zip(getattr(cooldown, part).weights, getattr(phase1, part).weights):
            np.testing.assert_array_equal(np.array(got), np.array(want))
    # Other widths cannot be taken over: the message names the weight and both shapes.
    wider = build_model(_cooldown().replace(hidden_dim=32))
    with pytest.raises(ValueError, match=r"encoder weight 'blocks_0/attn/proj/bias' has "
                                         r"shape \(24,\) in the init_from model and "
                                         r"\(32,\) here"):
        init_weights_from(wider, source)
    with pytest.raises(ValueError, match="is a video run .* for images"):
        load_init_model(run, "image")
    # The run identity records where the weights came from.
    dataset = type("Files", (), {"paths": ["a.mp4"]})()
    identity = run_identity(_cooldown(), ["a.mp4"], dataset, 2, 1, 1, 0, init_from=run)
    assert identity["init_from"] == os.path.realpath(run)
    assert "init_from" not in run_identity(_cooldown(), ["a.mp4"], dataset, 2, 1, 1, 0)


def test_sincos_tables_are_recomputed_for_the_new_grid():
    from keras_jepa.models.jepa.recipes import build_model
    from keras_jepa.programs.pretrain import init_weights_from

    small = dict(hidden_dim=24, depth=1, num_heads=2, predictor_dim=16, predictor_depth=1,
                 predictor_heads=2)
    v1 = get_config("vjepa_tiny_cpu").replace(image_size=16, num_frames=4, **small)
    source = build_model(v1, ema_steps=1)
    longer = build_model(v1.replace(image_size=24, num_frames=8), ema_steps=1)
    before = np.array(longer.encoder.pos_embed.table)
    init_weights_from(longer, source)
    np.testing.assert_array_equal(np.array(longer.encoder.pos_embed.table), before)
    assert before.shape == (1, 4 * 3 * 3, 24)
    np.testing.assert_array_equal(np.array(longer.encoder.blocks[0].attn.qkv.kernel),
                                  np.array(source.encoder.blocks[0].attn.qkv.kernel))


@pytest.mark.slow
def test_two_clip_lengths_then_cooldown_from_the_run(video_folder, tmp_path):
    """End to end with compiled ``fit``: pretraining on batches of 2 and 4 frames, then a
    cooldown at 8 frames and a larger crop that starts from its weights (TensorFlow:
    several clip lengths in one run are refused with the reason)."""
    import json

    import keras

    if keras.backend.backend() == "tensorflow":
        with pytest.raises(ValueError, match="clip_lengths=\\[2, 4\\].*jax or torch"):
            pretrain(_phase1(), video_folder, epochs=1, batch_size=2, verbose=0,
                     output_dir=str(tmp_path / "phase1"))
        return
    first = pretrain(_phase1(), video_folder, epochs=1, batch_size=2, verbose=0, seed=4,
                     output_dir=str(tmp_path / "phase1"))
    trained = first["model"]
    seen = {}

    class Capture(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen["weights"] = {part: [np.array(w) for w in getattr(self.model, part).weights]
                               for part in ("encoder", "target_encoder", "predictor")}

    out2 = str(tmp_path / "cooldown")
    second = pretrain(_cooldown(), video_folder, epochs=1, batch_size=2, verbose=0,
                      output_dir=out2, init_from=str(tmp_path / "phase1"),
                      callbacks=[Capture()])
    for part, values in seen["weights"].items():
        for got, want in zip(values, getattr(trained, part).weights):
            np.testing.assert_array_equal(got, np.array(want))
    assert np.isfinite(second["history"]["loss"]).all()
    with open(os.path.join(out2, "run_identity.json")) as f:
        assert json.load(f)["init_from"] == os.path.realpath(tmp_path / "phase1")


def test_pretrain_cli_takes_init_from(monkeypatch):
    from keras_jepa.programs import pretrain as program

    seen = {}
    monkeypatch.setattr(program, "pretrain", lambda config, data, **kw: seen.update(kw))
    args = cli._parser().parse_args(
        ["pretrain", "--config", "vjepa2_cooldown_tiny_cpu", "--video", "--data", "d",
         "--init-from", "runs/phase1"])
    assert program.run(args) == 0 and seen["init_from"] == "runs/phase1"


# --------------------------------------------------------------------------- LeJEPA runs


def test_pretrain_cli_sends_lejepa_configs_to_pretrain_lejepa(monkeypatch):
    import keras_jepa.programs.pretrain_lejepa
    from keras_jepa.programs import pretrain as program

    seen = {}
    monkeypatch.setattr(keras_jepa.programs.pretrain_lejepa, "pretrain_lejepa",
                        lambda config, data, **kw: seen.update(kw, config=config, data=data))
    monkeypatch.setattr(program, "pretrain", lambda *a, **kw: pytest.fail("JEPA pretrain"))
    assert cli.main(["pretrain", "--config", "lejepa_tiny_cpu", "--data", "d", "--epochs",
                     "2", "--batch-size", "4", "--output", "o", "--steps-per-epoch", "1",
                     "--seed", "3", "--workers", "2", "--overwrite"]) == 0
    assert seen == dict(config="lejepa_tiny_cpu", data="d", epochs=2, batch_size=4,
                        output_dir="o", steps_per_epoch=1, seed=3, workers=2, overwrite=True)
    help_text = {a.dest: a.help for a in cli._parser()._subparsers._group_actions[0]
                 .choices["pretrain"]._actions}
    assert "LeJEPA" in help_text["config"]


def _tiny_lejepa():
    from keras_jepa.models.lejepa.recipes import get_lejepa_config

    return get_lejepa_config("lejepa_tiny_cpu").replace(
        image_size=16, patch_size=4, hidden_dim=24, depth=1, num_heads=2,
        projector_dims=(32, 8), num_slices=16, local_image_size=8)


def test_pretrain_lejepa_identity_refuses_other_seed_and_overwrite_starts_fresh(
        tmp_path, capsys):
    import json

    from keras_jepa.programs.pretrain import RunMismatchError
    from keras_jepa.programs.pretrain_lejepa import pretrain_lejepa

    images = np.random.RandomState(0).randint(0, 255, (8, 20, 20, 3)).astype("uint8")
    out = str(tmp_path / "run")
    run = dict(epochs=1, batch_size=4, steps_per_epoch=1, output_dir=out)
    first = pretrain_lejepa(_tiny_lejepa(), images, verbose=0, **run)
    with open(os.path.join(out, "run_identity.json")) as f:
        identity = json.load(f)
    assert identity["config"]["depth"] == 1 and identity["config"]["name"] == "lejepa_tiny_cpu"
    assert (identity["data"]["source"], identity["data"]["num_samples"]) == (
        "array of shape [8, 20, 20, 3], uint8", 8)
    assert (identity["batch_size"], identity["epochs"], identity["steps_per_epoch"],
            identity["seed"]) == (4, 1, 1, 0)
    assert len(_rows(first["log_path"])) == 1
    assert np.isfinite(float(_rows(first["log_path"])[0]["lejepa_loss"]))

    # Another seed (or config) is refused before anything is touched.
    before = {name: os.path.getmtime(os.path.join(out, name))
              for name in ("log.csv", "run_identity.json", "config.json")}
    with pytest.raises(RunMismatchError, match="seed: 0 -> 1") as info:
        pretrain_lejepa(_tiny_lejepa(), images, seed=1, verbose=0, **run)
    assert info.value.differences == [("seed", 0, 1)]
    with pytest.raises(RunMismatchError, match="config.depth: 1 -> 2"):
        pretrain_lejepa(_tiny_lejepa().replace(depth=2), images, verbose=0, **run)
    assert before == {name: os.path.getmtime(os.path.join(out, name)) for name in before}

    # The same arguments resume: the run is finished, nothing more is trained.
    capsys.readouterr()
    pretrain_lejepa(_tiny_lejepa(), images, verbose=1, **run)
    assert "(resuming)" in capsys.readouterr().out
    assert len(_rows(first["log_path"])) == 1

    # overwrite deletes the run's own files only, then trains from scratch.
    with open(os.path.join(out, "notes.txt"), "w") as f:
        f.write("mine")
    again = pretrain_lejepa(_tiny_lejepa(), images, seed=1, overwrite=True, verbose=0, **run)
    assert len(_rows(again["log_path"])) == 1  # a fresh log, not appended to
    with open(os.path.join(out, "run_identity.json")) as f:
        assert json.load(f)["seed"] == 1
    with open(os.path.join(out, "notes.txt")) as f:
        assert f.read() == "mine"


# --------------------------------------------------------------------------- V-JEPA 2.1


def test_pretrain_cli_lists_and_checks_the_2_1_configs(capsys):
    from keras_jepa.models.jepa.recipes import VJEPA2_1_CONFIGS

    parser = cli._parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["pretrain", "--help"])
    text = capsys.readouterr().out
    for name in VJEPA2_1_CONFIGS:
        assert name in text
    assert "--image-data" in text
    # Images only join V-JEPA 2.1 runs.
    assert cli.main(["pretrain", "--config", "vjepa2_tiny_cpu", "--video", "--data", "d",
                     "--image-data", "i"]) == 2
    assert "--image-data is for V-JEPA 2.1" in capsys.readouterr().err


def test_pretrain_cli_runs_vjepa2_1_on_videos_and_images(video_folder, image_folder,
                                                          tmp_path):
    """``keras-jepa pretrain --config vjepa2_1_tiny_cpu`` end to end with compiled ``fit``:
    every step holds 2 clips and 3 images; the log has both loss terms, the saved target
    encoder is the 2.1 encoder, the identity records the images."""
    import json

    from keras_jepa.models import VisionTransformer

    out = str(tmp_path / "run21")
    code = cli.main(["pretrain", "--config", "vjepa2_1_tiny_cpu", "--video",
                     "--data", video_folder, "--image-data", image_folder,
                     "--image-batch-size", "3", "--epochs", "1", "--batch-size", "2",
                     "--output", out])
    assert code == 0
    rows = _rows(os.path.join(out, "log.csv"))
    assert len(rows) == 1
    for key in ("loss", "prediction_loss", "context_loss"):
        assert np.isfinite(float(rows[0][key])) and float(rows[0][key]) > 0, key
    encoder = VisionTransformer.from_preset(os.path.join(out, "encoder"))
    assert list(encoder.hierarchical_layers) == [0, 1, 2, 3]
    assert encoder.patch_embed_img is not None and encoder.modality_embedding
    with open(os.path.join(out, "run_identity.json")) as f:
        identity = json.load(f)
    assert identity["image_batch_size"] == 3
    assert identity["image_data"]["num_samples"] == 16
    assert identity["config"]["hierarchical_layers"] == [0, 1, 2, 3]
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["config"]["name"] == "vjepa2_1_tiny_cpu"
