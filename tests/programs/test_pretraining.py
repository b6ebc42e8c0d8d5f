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
