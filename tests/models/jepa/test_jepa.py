"""I-JEPA and V-JEPA pretraining models: online path, EMA target, loss, fit on every
backend, schedules, resume, mixed precision."""

import os

import keras
import numpy as np
import pytest
from keras import ops

from keras_jepa.masks import MultiBlockMask, MultiBlockMask3D
from keras_jepa.models import IJEPA, VJEPA, JEPAPredictor, VisionTransformer
from keras_jepa.models.jepa.base import layer_norm_no_affine, smooth_l1
from keras_jepa.training.optimizers import CosineSchedule, JEPAAdamW, WarmupCosineSchedule
from keras_jepa.backend.seeding import seed_everything
from tests.numpy_reference import to_numpy
from tests.test_case import run_serialization_test

IMAGE_MASKS = MultiBlockMask(grid_size=(4, 4), min_keep=2, seed=0)
VIDEO_MASKS = MultiBlockMask3D(
    grid_size=(2, 4, 4),
    configs=[
        dict(spatial_scale=(0.15, 0.15), temporal_scale=(1.0, 1.0), aspect_ratio=(0.75, 1.5), num_blocks=2),
        dict(spatial_scale=(0.5, 0.5), temporal_scale=(1.0, 1.0), aspect_ratio=(0.75, 1.5), num_blocks=1),
    ],
    seed=0,
)


def image_batch(step, batch_size=8):
    rng = np.random.RandomState(step % 4)
    batch = {"images": rng.rand(batch_size, 16, 16, 3).astype("float32")}
    batch.update({k: tuple(v) for k, v in IMAGE_MASKS(batch_size, step=step).items()})
    return batch


def video_batch(step, batch_size=4):
    rng = np.random.RandomState(step % 4)
    batch = {"videos": rng.rand(batch_size, 4, 16, 16, 3).astype("float32")}
    batch.update({k: tuple(v) for k, v in VIDEO_MASKS(batch_size, step=step).items()})
    return batch


class Batches(keras.utils.PyDataset):
    """Deterministic batches: a pure function of the batch index."""

    def __init__(self, make, length=4):
        super().__init__()
        self.make, self.length = make, length

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        return self.make(index)


def make_ijepa(ema_steps=50, **kwargs):
    encoder = VisionTransformer(
        image_size=16, patch_size=4, hidden_dim=32, depth=1, num_heads=2, sincos_order="wh"
    )
    return IJEPA(encoder, predictor_dim=16, predictor_depth=1, ema_steps=ema_steps, **kwargs)


def video_encoder(rope=True):
    return VisionTransformer(
        image_size=16, patch_size=4, num_frames=4, hidden_dim=36, depth=1, num_heads=2,
        position_embedding="rope" if rope else "sincos", uniform_power=not rope,
    )


def make_vjepa(rope=True, **kwargs):
    return VJEPA(video_encoder(rope), predictor_dim=24, predictor_depth=1, predictor_heads=2, **kwargs)


def jepa_optimizer(steps=40):
    return JEPAAdamW(
        learning_rate=WarmupCosineSchedule(2e-4, 2e-3, 1e-6, warmup_steps=4, total_steps=steps),
        weight_decay=CosineSchedule(0.04, 0.4, steps),
    )


# ------------------------------------------------------------------ structure


def test_official_predictor_defaults():
    ijepa = make_ijepa()
    assert ijepa.predictor.num_heads == ijepa.encoder.num_heads
    assert ijepa.predictor.num_mask_tokens == 1 and not ijepa.predictor.zero_init_mask_tokens
    assert ijepa.predictor.sincos_order == "wh"
    v2 = VJEPA(video_encoder(rope=True), predictor_depth=1, ema_momentum=(0.99925, 0.99925))
    assert v2.predictor.position_embedding == "rope" and v2.predictor.num_mask_tokens == 10
    assert v2.predictor.num_heads == 12 and v2.predictor.hidden_dim == 384
    assert v2.predictor.depth_scaled_init
    assert np.all(to_numpy(v2.predictor.mask_tokens) == 0)
    v1 = VJEPA(video_encoder(rope=False), predictor_depth=1, ema_steps=10, ema_momentum=(0.998, 1.0))
    assert v1.predictor.num_mask_tokens == 2 and v1.predictor.uniform_power
    assert v1.predictor.num_heads == v1.encoder.num_heads


def test_target_encoder_is_frozen_copy():
    model = make_ijepa()
    trainable = {id(w) for w in model.trainable_weights}
    assert all(id(w) not in trainable for w in model.target_encoder.weights)
    assert len(model.trainable_weights) == len(model.encoder.trainable_weights) + len(
        model.predictor.trainable_weights
    )
    for t, o in zip(model.target_encoder.weights, model.encoder.weights):
        np.testing.assert_array_equal(to_numpy(t), to_numpy(o))


def test_ijepa_predictions_follow_official_pairing():
    """Predictions are target-major over (target mask, context mask) pairs and equal the
    predictor applied to the matching context tokens."""
    model = make_ijepa()
    batch = image_batch(0, batch_size=2)
    ctx = batch["context_indices"][0]
    batch["context_indices"] = (ctx, ctx[:, ::-1].copy())  # two context masks
    preds = model(batch)["predictions"]
    assert len(preds) == len(batch["target_indices"])
    z = model.encoder(batch["images"], token_indices=ctx)
    expected = model.predictor(z, ctx, batch["target_indices"][1])
    np.testing.assert_allclose(to_numpy(preds[1])[:2], to_numpy(expected), atol=1e-5)
    assert tuple(preds[1].shape) == (4, batch["target_indices"][1].shape[1], 32)


def test_loss_matches_manual_computation():
    model = make_ijepa()
    batch = image_batch(1, batch_size=2)
    y_pred = model(batch)
    loss = to_numpy(model.compute_loss(x=batch, y_pred=y_pred, training=False))
    h = to_numpy(model.target_encoder(batch["images"]))
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5)
    manual = []
    for target, pred in zip(batch["target_indices"], y_pred["predictions"]):
        ht = np.stack([h[b, target[b]] for b in range(2)])
        d = np.abs(to_numpy(pred) - ht)
        manual.append(np.where(d < 1, 0.5 * d * d, d - 0.5).mean())
    np.testing.assert_allclose(loss, np.mean(manual), rtol=1e-5)


def test_loss_helpers():
    x = np.array([[0.0, 0.5, 3.0]], "float32")
    np.testing.assert_allclose(to_numpy(smooth_l1(x, np.zeros_like(x))), (0 + 0.125 + 2.5) / 3, rtol=1e-6)
    y = to_numpy(layer_norm_no_affine(np.array([[1.0, 2.0, 3.0]])))
    np.testing.assert_allclose(y, [[-1.2247357, 0.0, 1.2247357]], rtol=1e-5)


# ------------------------------------------------------------------ EMA and training


def test_ema_follows_official_formula():
    """After two steps the target equals m0 * theta0 + (1 - m0) * theta1, where theta1 is
    the online encoder after the first update; step 0 applies no update."""
    model = make_ijepa(ema_steps=10, ema_momentum=(0.9, 1.0))
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    theta0 = [to_numpy(w).copy() for w in model.encoder.weights]
    model.train_on_batch(image_batch(0))
    for t, o in zip(model.target_encoder.weights, theta0):
        np.testing.assert_allclose(to_numpy(t), o, atol=1e-7)
    theta1 = [to_numpy(w).copy() for w in model.encoder.weights]
    assert any(np.abs(a - b).max() > 1e-4 for a, b in zip(theta0, theta1))
    model.train_on_batch(image_batch(1))
    for t, a, b in zip(model.target_encoder.weights, theta0, theta1):
        np.testing.assert_allclose(to_numpy(t), 0.9 * a + 0.1 * b, atol=1e-6)
    assert float(to_numpy(model.ema_step)) == 2.0
    # momentum ramp: update k uses m0 + k (m1 - m0) / ema_steps
    np.testing.assert_allclose(to_numpy(model.momentum_at(5.0)), 0.95, rtol=1e-6)


@pytest.mark.parametrize("rope", [True, False], ids=["vjepa2", "vjepa"])
def test_vjepa_fit(rope):
    momentum = dict(ema_momentum=(0.99925, 0.99925)) if rope else dict(ema_momentum=(0.998, 1.0), ema_steps=20)
    model = make_vjepa(rope=rope, **momentum)
    model.compile(optimizer=jepa_optimizer(20))
    history = model.fit(Batches(video_batch, 4), epochs=3, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
    # no gradient reaches the target encoder: it moved only by the EMA
    for t, o in zip(model.target_encoder.weights, model.encoder.weights):
        assert np.abs(to_numpy(t) - to_numpy(o)).max() < 0.05


def test_fit_loss_falls_traces_once_and_resumes_exactly(tmp_path):
    """I-JEPA trains with fit (the loss falls, JAX/TF trace the step once), and a run
    interrupted after epoch 2 and resumed with BackupAndRestore reproduces the
    uninterrupted losses."""
    backup = str(tmp_path / "backup")

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("interrupted")

    def run(callbacks, traces=None):
        seed_everything(7)
        model = make_ijepa(ema_steps=24)
        if traces is not None:
            original_call = model.call

            def counting_call(*args, **kwargs):
                traces.append(1)  # Python runs only while tracing a compiled step
                return original_call(*args, **kwargs)

            model.call = counting_call
        model.compile(optimizer=jepa_optimizer(24))
        # shuffle=False: Keras would otherwise reorder batches with Python's global RNG,
        # which a resumed run cannot replay.
        return model, model.fit(
            Batches(image_batch, 6), epochs=4, verbose=0, shuffle=False, callbacks=callbacks
        )

    traces = []
    full_model, full = run([], traces)
    losses = full.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.8 * losses[0], losses
    if keras.backend.backend() != "torch":  # torch runs the step eagerly
        assert len(traces) <= 2, len(traces)
    assert 0.996 <= full.history["ema_momentum"][-1] <= 1.0
    assert float(to_numpy(full_model.ema_step)) == 24.0

    with pytest.raises(RuntimeError, match="interrupted"):
        run([keras.callbacks.BackupAndRestore(backup), Interrupt()])
    resumed_model, resumed = run([keras.callbacks.BackupAndRestore(backup)])
    assert len(resumed.history["loss"]) == 2  # epochs 2 and 3 only
    np.testing.assert_allclose(resumed.history["loss"], losses[2:], atol=1e-5)
    assert float(to_numpy(resumed_model.ema_step)) == 24.0


def test_mixed_bfloat16_fit():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = make_ijepa(ema_steps=8)
    assert model.encoder.blocks[0].attn.qkv.compute_dtype == "bfloat16"
    model.compile(optimizer=jepa_optimizer(8))
    history = model.fit(Batches(image_batch, 4), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert all(w.dtype == "float32" for w in model.target_encoder.weights)
    assert float(to_numpy(model.ema_step)) == 8.0


# ------------------------------------------------------------------ schedules and optimizer


def test_warmup_cosine_matches_official_values():
    s = WarmupCosineSchedule(2e-4, 1e-3, 1e-6, warmup_steps=10, total_steps=110)
    # update k uses the scheduler's value at step k + 1
    np.testing.assert_allclose(float(s(0)), 2e-4 + 1 / 10 * 8e-4, rtol=1e-6)
    np.testing.assert_allclose(float(s(9)), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(float(s(59)), 1e-6 + (1e-3 - 1e-6) * 0.5, rtol=1e-5)
    np.testing.assert_allclose(float(s(109)), 1e-6, rtol=1e-5)
    constant = WarmupCosineSchedule(1e-4, 5.25e-4, 5.25e-4, 10, 100, cosine=False)
    np.testing.assert_allclose(float(constant(50)), 5.25e-4, rtol=1e-6)
    wd = CosineSchedule(0.04, 0.4, 100)
    np.testing.assert_allclose([float(wd(-1)), float(wd(49)), float(wd(99))], [0.04, 0.22, 0.4], rtol=1e-5)


def test_adamw_weight_decay_groups_and_schedule():
    opt = JEPAAdamW(learning_rate=0.1, weight_decay=CosineSchedule(0.5, 0.5, 10))
    kernel = keras.Variable(np.ones((2, 2), "float32"), name="kernel")
    bias = keras.Variable(np.ones((2,), "float32"), name="bias")
    token = keras.Variable(np.ones((1, 1, 2), "float32"), name="mask_tokens")
    variables = [kernel, bias, token]
    opt.build(variables)
    opt.apply([np.zeros(v.shape, "float32") for v in variables], variables)
    np.testing.assert_allclose(to_numpy(kernel), 1 - 0.1 * 0.5, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(token), 1 - 0.1 * 0.5, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(bias), 1.0)
    restored = run_serialization_test(opt)
    assert isinstance(restored.weight_decay_schedule, CosineSchedule)


def _adamw_run(optimizer_step, grads):
    """Applies ``grads`` (a list of per-step (kernel, bias) gradients) with
    ``optimizer_step`` starting from fixed weights; returns the final weights."""
    kernel0 = np.linspace(-0.02, 0.02, 12, dtype="float32").reshape(3, 4)
    bias0 = np.linspace(0.01, 0.04, 4, dtype="float32")
    return optimizer_step(kernel0, bias0, grads)


def _torch_adamw(kernel0, bias0, grads, lr, wd):
    torch = pytest.importorskip("torch")
    kernel = torch.nn.Parameter(torch.tensor(kernel0))
    bias = torch.nn.Parameter(torch.tensor(bias0))
    # The official parameter groups: biases and 1-D weights are not decayed.
    opt = torch.optim.AdamW([{"params": [kernel]}, {"params": [bias], "weight_decay": 0.0}],
                            lr=lr, weight_decay=wd, eps=1e-8)
    for gk, gb in grads:
        kernel.grad, bias.grad = torch.tensor(gk), torch.tensor(gb)
        opt.step()
    return kernel.detach().numpy(), bias.detach().numpy()


def _keras_adamw(kernel0, bias0, grads, lr, wd, **kwargs):
    kernel = keras.Variable(kernel0, name="kernel")
    bias = keras.Variable(bias0, name="bias")
    opt = JEPAAdamW(learning_rate=lr, weight_decay=wd, **kwargs)
    opt.build([kernel, bias])
    for gk, gb in grads:
        opt.apply([gk, gb], [kernel, bias])
    return to_numpy(kernel), to_numpy(bias)


@pytest.mark.parametrize("scale", [1e-6, 1.0], ids=["small_grads", "ordinary_grads"])
def test_adamw_steps_like_torch_adamw(scale):
    rng = np.random.default_rng(0)
    grads = [(rng.normal(0, scale, (3, 4)).astype("float32"),
              rng.normal(0, scale, (4,)).astype("float32")) for _ in range(20)]
    lr, wd = 1e-3, 0.05
    start = _adamw_run(lambda k, b, g: (k, b), grads)
    expected = _adamw_run(lambda k, b, g: _torch_adamw(k, b, g, lr, wd), grads)
    ours = _adamw_run(lambda k, b, g: _keras_adamw(k, b, g, lr, wd), grads)
    for s, e, o in zip(start, expected, ours):
        # Relative to the distance the weights moved, 1e-4.
        np.testing.assert_allclose(o - s, e - s, rtol=1e-4, atol=1e-4 * np.abs(e - s).max())
    if scale < 1e-3:
        # Keras's own epsilon form moves small-gradient weights very differently: the
        # comparison above would catch it.
        keras_form = _adamw_run(
            lambda k, b, g: _keras_adamw(k, b, g, lr, wd, epsilon=1e-7, epsilon_form="keras"),
            grads)
        moved, off = np.abs(expected[0] - start[0]), np.abs(keras_form[0] - expected[0])
        assert off.max() > 0.1 * moved.max()
    restored = run_serialization_test(JEPAAdamW(epsilon_form="keras"))
    assert restored.epsilon_form == "keras" and JEPAAdamW().epsilon == 1e-8


def test_gradient_clipping_per_group_after_warmup():
    opt = JEPAAdamW(learning_rate=1.0, weight_decay=0.0, clip_norm=1.0, clip_start_step=1)
    a = keras.Variable(np.zeros((3,), "float32"), name="a")
    b = keras.Variable(np.zeros((4,), "float32"), name="b")
    opt.build([a, b])
    grads = [np.full((3,), 4.0, "float32"), np.full((4,), 0.1, "float32")]
    # before clip_start_step nothing is clipped
    out = opt.clip_by_group(grads, [a, b])
    np.testing.assert_allclose(to_numpy(out[0]), grads[0])
    opt.iterations.assign(1)
    out = opt.clip_by_group(grads, [a, b])
    # separate groups ("a" and "b"): the big one is scaled to norm 1, the small one kept
    np.testing.assert_allclose(np.linalg.norm(to_numpy(out[0])), 1.0, rtol=1e-5)
    np.testing.assert_allclose(to_numpy(out[1]), grads[1], rtol=1e-6)
    assert run_serialization_test(opt).clip_norm == 1.0


def test_config_round_trip_and_weights(tmp_path):
    model = make_vjepa(rope=False, ema_steps=10, ema_momentum=(0.998, 1.0))
    clone = run_serialization_test(model)
    path = str(tmp_path / "vjepa.weights.h5")
    model.ema_step.assign(5.0)
    model.save_weights(path)
    clone.load_weights(path)
    assert float(to_numpy(clone.ema_step)) == 5.0
    batch = video_batch(0, 2)
    for a, b in zip(model(batch)["predictions"], clone(batch)["predictions"]):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), atol=1e-6)


def test_bad_arguments():
    encoder = VisionTransformer(image_size=16, patch_size=4, hidden_dim=32, depth=1, num_heads=2)
    with pytest.raises(ValueError, match="ema_steps"):
        IJEPA(encoder, predictor_dim=16, predictor_depth=1)
    with pytest.raises(ValueError, match="VisionTransformer"):
        IJEPA(keras.layers.Dense(3), predictor_dim=16, predictor_depth=1, ema_steps=5)
    predictor = JEPAPredictor(grid_size=(4, 4), output_dim=32, hidden_dim=16, depth=1, num_heads=2)
    with pytest.raises(ValueError, match="mask_index=3"):
        predictor(np.zeros((1, 2, 32), "float32"), np.zeros((1, 2), "int32"), np.ones((1, 2), "int32"), mask_index=3)
