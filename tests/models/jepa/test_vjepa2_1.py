"""VJEPA2_1: distance weights against brute force, the dense deep-supervision loss against
numpy on images and videos, the lambda ramp, distillation from a frozen teacher, training
with the compiled fit step, and config round trips."""

import keras
import numpy as np
import pytest

from keras_jepa.models.jepa.predictor_2_1 import VJEPA2_1Predictor
from keras_jepa.models.jepa.vjepa2_1 import (
    VJEPA2_1,
    VJEPA2_1_CONFIGS,
    context_distance_weights,
)
from keras_jepa.models.vit.vision_transformer import VisionTransformer
from tests.test_case import run_serialization_test

GRID = (2, 2, 2)  # 4 frames, 8 x 8 px, patch 4, tubelet 2


@pytest.fixture(scope="module", autouse=True)
def _fast_init(fast_jax_initializers):
    """Cheaper random draws on JAX (the values do not matter to these checks)."""
    yield


def _encoder(width=24, name=None):
    return VisionTransformer(
        image_size=8, patch_size=4, num_frames=4, tubelet_size=2, hidden_dim=width,
        depth=2, num_heads=2, position_embedding="rope", rope_tiled=False,
        img_temporal_dim_size=1, modality_embedding=True, hierarchical_layers=[0, 1],
        n_output_distillation=2, name=name,
    )


def _batch(kind="videos", seed=0):
    rng = np.random.default_rng(seed)
    shape = (2, 4, 8, 8, 3) if kind == "videos" else (2, 8, 8, 3)
    ctx = np.array([[0, 1, 2, 5], [0, 3, 4, 6]])
    tgt = np.array([[3, 4, 6, 7], [1, 2, 5, 7]])
    if kind == "images":
        ctx, tgt = np.array([[0], [3]]), np.array([[1, 2, 3], [0, 1, 2]])
    return {kind: rng.random(shape).astype("float32"), "context_indices": [ctx],
            "target_indices": [tgt]}


@pytest.fixture(scope="module")
def model():
    return VJEPA2_1(_encoder(), predictor_dim=16, predictor_depth=1, predictor_heads=2,
                    num_mask_tokens=2, ema_momentum=(0.9, 0.9), context_loss_weight=0.5)


def _layer_norm_levels(h, levels):
    chunks = np.split(np.asarray(h, np.float64), levels, axis=-1)
    out = [(c - c.mean(-1, keepdims=True)) / np.sqrt(c.var(-1, keepdims=True) + 1e-5)
           for c in chunks]
    return np.concatenate(out, axis=-1)


def _brute_distance_weights(ctx, tgt, grid):
    t, h, w = grid

    def coords(i):
        return np.array([i // (h * w), (i % (h * w)) // w, i % w], float)

    out = np.zeros(ctx.shape)
    for b in range(ctx.shape[0]):
        for j, c in enumerate(ctx[b]):
            d = min(np.linalg.norm(coords(c) - coords(g)) for g in tgt[b])
            out[b, j] = 1.0 / np.sqrt(d)
    return out


def test_distance_weights_match_brute_force():
    rng = np.random.default_rng(1)
    grid = (3, 4, 5)
    perm = np.stack([rng.permutation(60) for _ in range(2)])
    ctx, tgt = perm[:, :25], perm[:, 25:40]
    got = keras.ops.convert_to_numpy(context_distance_weights(ctx, tgt, grid))
    np.testing.assert_allclose(got, _brute_distance_weights(ctx, tgt, grid), atol=1e-6)


def _numpy_loss(model, batch, out, h, lam):
    h = _layer_norm_levels(h, model.levels)
    data = batch.get("videos", batch.get("images"))
    grid = model.encoder.grid_size(data.shape)
    grid = grid if len(grid) == 3 else (1,) + grid
    ctx, tgt = batch["context_indices"][0], batch["target_indices"][0]
    pred = keras.ops.convert_to_numpy(out["predictions"][0])
    cpred = keras.ops.convert_to_numpy(out["context_predictions"][0])
    hb_t = np.take_along_axis(h, tgt[..., None], axis=1)
    hb_c = np.take_along_axis(h, ctx[..., None], axis=1)
    loss_pred = np.abs(pred - hb_t).mean()
    weights = _brute_distance_weights(ctx, tgt, grid)
    loss_ctx = (np.abs(cpred - hb_c) * weights[..., None]).mean()
    return loss_pred + lam * loss_ctx


@pytest.mark.parametrize("kind", ["videos", "images"])
def test_dense_deep_loss_matches_numpy(model, kind):
    batch = _batch(kind)
    out = model(batch)
    assert tuple(out["predictions"][0].shape)[-1] == 2 * 24  # two levels of 24
    data = batch[kind]
    h = keras.ops.convert_to_numpy(model.target_encoder(data, return_hierarchical=True))
    want = _numpy_loss(model, batch, out, h, 0.5)
    got = float(keras.ops.convert_to_numpy(model.prediction_loss(batch, out)))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_context_loss_ramp():
    enc = _encoder()
    m = VJEPA2_1(enc, predictor_dim=16, predictor_depth=1, predictor_heads=2,
                 num_mask_tokens=1, ema_momentum=(0.9, 0.9), context_loss_weight=0.5,
                 context_loss_ramp=(10, 30))
    values = [float(keras.ops.convert_to_numpy(m.context_weight_at(s)))
              for s in (0, 10, 20, 30, 100)]
    np.testing.assert_allclose(values, [0.0, 0.0, 0.25, 0.5, 0.5], atol=1e-7)


def test_distillation_targets_come_from_the_teacher():
    teacher = VisionTransformer(
        image_size=8, patch_size=4, num_frames=4, tubelet_size=2, hidden_dim=40, depth=2,
        num_heads=2, position_embedding="rope", rope_tiled=False, img_temporal_dim_size=1,
        modality_embedding=True, hierarchical_layers=[0, 1], n_output_distillation=2,
        name="teacher",
    )
    student = VJEPA2_1(_encoder(), teacher=teacher, levels=1, predictor_dim=16,
                       predictor_depth=1, predictor_heads=2, num_mask_tokens=1,
                       ema_momentum=(0.9, 0.9))
    assert student.predictor.prediction_width == 40
    batch = _batch("videos", seed=4)
    out = student(batch)
    h = keras.ops.convert_to_numpy(teacher(batch["videos"]))
    want = _numpy_loss(student, batch, out, h, 0.5)
    got = float(keras.ops.convert_to_numpy(student.prediction_loss(batch, out)))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert not any(v.trainable for v in teacher.weights)
    assert all(id(v) not in {id(t) for t in teacher.weights}
               for v in student.trainable_weights)


def test_fit_trains_with_the_compiled_step(model):
    m = VJEPA2_1.from_config(model.get_config())
    m.compile(optimizer=keras.optimizers.AdamW(1e-3))
    before = keras.ops.convert_to_numpy(m.encoder.blocks[0].attn.qkv.kernel).copy()
    target_before = keras.ops.convert_to_numpy(m.target_encoder.blocks[0].attn.qkv.kernel)
    history = m.fit(_batch("videos"), epochs=2, batch_size=2, verbose=0)
    losses = history.history["loss"]
    assert all(np.isfinite(losses)) and losses[-1] > 0
    assert history.history["context_loss"][-1] > 0
    after = keras.ops.convert_to_numpy(m.encoder.blocks[0].attn.qkv.kernel)
    assert np.abs(after - before).max() > 0
    target_after = keras.ops.convert_to_numpy(m.target_encoder.blocks[0].attn.qkv.kernel)
    assert np.abs(target_after - target_before).max() > 0  # the EMA moved


def test_config_round_trips(model):
    batch = _batch("videos", seed=2)
    run_serialization_test(model.encoder, call=lambda e: e(batch["videos"],
                                                         return_hierarchical=True))
    ctx = np.random.default_rng(0).random((2, 4, 48)).astype("float32")
    run_serialization_test(
        model.predictor,
        call=lambda p: p(ctx, batch["context_indices"][0], batch["target_indices"][0]),
    )
    clone = VJEPA2_1.from_config(model.get_config())
    assert isinstance(clone.predictor, VJEPA2_1Predictor)
    assert clone.get_config() == model.get_config()


def test_configs_describe_the_official_and_tiny_runs():
    official, tiny = VJEPA2_1_CONFIGS["vjepa2_1_vitG16_256"], VJEPA2_1_CONFIGS["vjepa2_1_tiny_cpu"]
    assert official["hierarchical_layers"] == (11, 23, 37, 47)
    assert official["context_loss_ramp"] == (15000, 30000)
    assert tiny["hidden_dim"] <= 64 and tiny["depth"] == len(tiny["hierarchical_layers"])


def test_bad_arguments():
    plain = VisionTransformer(image_size=8, patch_size=4, num_frames=4, hidden_dim=24,
                              depth=2, num_heads=2, position_embedding="rope")
    with pytest.raises(ValueError, match="hierarchical_layers"):
        VJEPA2_1(plain, predictor_dim=16, predictor_depth=1, predictor_heads=2)
    with pytest.raises(ValueError, match="levels"):
        VJEPA2_1(_encoder(), levels=3, predictor_dim=16, predictor_depth=1, predictor_heads=2)
