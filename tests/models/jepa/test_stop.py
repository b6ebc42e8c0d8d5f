"""StoP (stochastic positions, FlexPredict) in the JEPA predictor and I-JEPA: where the noise
enters, through which projection, when, and that sigma = 0 is I-JEPA with the projection
bias as mask token."""

import keras
import numpy as np
import pytest

from keras_jepa.masks import MultiBlockMask
from keras_jepa.models import IJEPA, JEPAPredictor, VisionTransformer
from keras_jepa.models.jepa.recipes import build_model, get_config
from tests.numpy_reference import to_numpy
from tests.test_case import run_serialization_test

GRID = (4, 4)
WIDTH = 16  # encoder width == predictor width, so predictor_embed can be set to a scaled I


def predictor(**kwargs):
    args = dict(grid_size=GRID, output_dim=WIDTH, hidden_dim=WIDTH, depth=1, num_heads=2)
    args.update(kwargs)
    return JEPAPredictor(**args)


def inputs(batch=3, kc=6, kt=4, seed=0):
    rng = np.random.RandomState(seed)
    ctx = rng.randn(batch, kc, WIDTH).astype("float32")
    ctx_idx = np.stack([np.sort(rng.permutation(16)[:kc]) for _ in range(batch)]).astype("int32")
    tgt_idx = np.stack([np.sort(rng.permutation(16)[:kt]) for _ in range(batch)]).astype("int32")
    return ctx, ctx_idx, tgt_idx


def set_embed(pred, scale, bias):
    pred.predictor_embed.kernel.assign(scale * np.eye(WIDTH, dtype="float32"))
    pred.predictor_embed.bias.assign(np.asarray(bias, "float32"))


@pytest.fixture(scope="module")
def stop_pred():
    pred = predictor(stochastic_positions=True, stop_std=0.25, stop_seed=3)
    pred.build()
    return pred


def test_noise_enters_target_queries_only_in_training(stop_pred):
    ctx, ctx_idx, tgt_idx = inputs()
    bias = np.linspace(-1, 1, WIDTH)
    set_embed(stop_pred, 2.0, bias)
    pos = to_numpy(stop_pred._positions(tgt_idx))
    x1, q1, _ = stop_pred.embed_inputs(ctx, ctx_idx, tgt_idx, training=True)
    x2, q2, _ = stop_pred.embed_inputs(ctx, ctx_idx, tgt_idx, training=True)
    # Context tokens: no noise (identical draws, and = 2 * ctx + bias + positions).
    np.testing.assert_allclose(to_numpy(x1), to_numpy(x2))
    ctx_pos = to_numpy(stop_pred._positions(ctx_idx))
    np.testing.assert_allclose(to_numpy(x1), 2.0 * ctx + bias + ctx_pos, atol=1e-5)
    # Target queries: position + A n + b with A = 2 I: the noise has std 2 * 0.25.
    noise1, noise2 = to_numpy(q1) - pos - bias, to_numpy(q2) - pos - bias
    assert not np.allclose(noise1, noise2)
    all_ids = np.tile(np.arange(16, dtype="int32"), (64, 1))
    big = to_numpy(stop_pred.embed_inputs(np.repeat(ctx[:1], 64, 0), np.repeat(ctx_idx[:1], 64, 0),
                                           all_ids, training=True)[1])
    big = big - to_numpy(stop_pred._positions(all_ids)) - bias
    assert abs(big.std() - 0.5) < 0.03 and abs(big.mean()) < 0.03
    # Inference: the deterministic query position + bias.
    _, q_eval, _ = stop_pred.embed_inputs(ctx, ctx_idx, tgt_idx, training=False)
    np.testing.assert_allclose(to_numpy(q_eval), pos + bias, atol=1e-6)
    out1 = to_numpy(stop_pred(ctx, ctx_idx, tgt_idx))
    np.testing.assert_allclose(out1, to_numpy(stop_pred(ctx, ctx_idx, tgt_idx)))


def test_noise_goes_through_the_context_projection(stop_pred):
    ctx, ctx_idx, tgt_idx = inputs()
    # A = 0 removes the noise: it is projected by the same layer as the context tokens.
    set_embed(stop_pred, 0.0, np.zeros(WIDTH))
    pos = to_numpy(stop_pred._positions(tgt_idx))
    _, q, _ = stop_pred.embed_inputs(ctx, ctx_idx, tgt_idx, training=True)
    np.testing.assert_allclose(to_numpy(q), pos, atol=1e-6)
    # The untied ablation projects it with its own layer, so A = 0 keeps the noise.
    untied = predictor(stochastic_positions=True, stop_tied=False, stop_seed=1)
    untied.build()
    set_embed(untied, 0.0, np.zeros(WIDTH))
    untied.stop_proj.kernel.assign(np.eye(WIDTH, dtype="float32"))
    _, q, _ = untied.embed_inputs(ctx, ctx_idx, tgt_idx, training=True)
    assert 0.15 < (to_numpy(q) - pos).std() < 0.35


def test_context_noise_ablation():
    ctx, ctx_idx, tgt_idx = inputs()
    pred = predictor(stochastic_positions=True, stop_context_noise=True, stop_seed=2)
    pred.build()
    set_embed(pred, 1.0, np.zeros(WIDTH))
    x1 = to_numpy(pred.embed_inputs(ctx, ctx_idx, tgt_idx, training=True)[0])
    x2 = to_numpy(pred.embed_inputs(ctx, ctx_idx, tgt_idx, training=True)[0])
    x_eval = to_numpy(pred.embed_inputs(ctx, ctx_idx, tgt_idx, training=False)[0])
    assert 0.15 < (x1 - x_eval).std() < 0.35 and not np.allclose(x1, x2)


def test_sigma_zero_is_ijepa_with_bias_as_mask_token():
    ctx, ctx_idx, tgt_idx = inputs(seed=1)
    plain = predictor()
    plain.build()
    stop = predictor(stochastic_positions=True, stop_std=0.0)
    stop.build()
    plain_vars = {v.path.split("/", 1)[1]: v for v in plain.weights}
    for v in stop.weights:
        key = v.path.split("/", 1)[1]
        if key in plain_vars:
            v.assign(plain_vars[key])
    bias = to_numpy(plain.predictor_embed.bias)
    assert np.abs(bias).max() == 0.0  # Dense bias starts at zero: give it a value
    bias = np.random.RandomState(0).randn(WIDTH).astype("float32")
    plain.predictor_embed.bias.assign(bias)
    stop.predictor_embed.bias.assign(bias)
    plain.mask_tokens.assign(bias.reshape(1, 1, 1, WIDTH))
    for training in (True, False):
        np.testing.assert_allclose(
            to_numpy(stop(ctx, ctx_idx, tgt_idx, training=training)),
            to_numpy(plain(ctx, ctx_idx, tgt_idx, training=training)), atol=1e-5)
    # With another mask token the outputs differ: the check above can fail.
    plain.mask_tokens.assign(np.zeros((1, 1, 1, WIDTH), "float32"))
    assert not np.allclose(to_numpy(stop(ctx, ctx_idx, tgt_idx)),
                           to_numpy(plain(ctx, ctx_idx, tgt_idx)), atol=1e-3)


def test_defaults_unchanged_and_config_round_trip(stop_pred):
    plain = predictor()
    plain.build()
    assert not plain.stochastic_positions and plain.stop_seed_generator is None
    assert plain.stop_proj is None
    names = sorted(v.path.split("/", 1)[1] for v in plain.weights)
    assert "mask_tokens" in names and all("stop" not in n for n in names)
    ctx, ctx_idx, tgt_idx = inputs()
    clone = run_serialization_test(stop_pred, call=lambda p: p(ctx, ctx_idx, tgt_idx),
                                   atol=1e-6)
    assert clone.get_config()["stop_std"] == 0.25


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="stop_std"):
        predictor(stochastic_positions=True, stop_std=-0.1)
    with pytest.raises(ValueError, match="rope"):
        predictor(stochastic_positions=True, position_embedding="rope")


def test_stop_configs():
    tiny = get_config("ijepa_stop_tiny_cpu")
    assert tiny.stop_std == 0.25 and get_config("ijepa_tiny_cpu").stop_std is None
    vith = get_config("ijepa_stop_vith16_in1k")
    assert (vith.stop_std, vith.patch_size, vith.predictor_depth) == (0.2, 16, 12)
    model = build_model(tiny.replace(depth=1, predictor_depth=1), ema_steps=10)
    assert model.predictor.stochastic_positions and model.predictor.stop_std == 0.25
    assert not build_model(get_config("ijepa_tiny_cpu").replace(depth=1, predictor_depth=1),
                           ema_steps=10).predictor.stochastic_positions


def test_ijepa_with_stop_trains_compiled():
    masks = MultiBlockMask(grid_size=GRID, min_keep=2, seed=0)
    encoder = VisionTransformer(image_size=16, patch_size=4, hidden_dim=32, depth=1,
                                num_heads=2, sincos_order="wh")
    model = IJEPA(encoder, predictor_dim=16, predictor_depth=1, ema_steps=40,
                  stochastic_positions=True, stop_std=0.25)
    rng = np.random.RandomState(0)
    images = rng.rand(8, 16, 16, 3).astype("float32")
    m = masks(8, step=0)
    batch = {"images": images, **{k: tuple(v) for k, v in m.items()}}
    model.compile(optimizer=keras.optimizers.AdamW(2e-3))
    kernel0 = to_numpy(model.predictor.predictor_embed.kernel).copy()
    state0 = to_numpy(model.predictor.stop_seed_generator.state).copy()
    history = model.fit(batch, epochs=6, batch_size=8, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.9 * losses[0]
    kernel = to_numpy(model.predictor.predictor_embed.kernel)
    # A trains and does not collapse.
    assert not np.allclose(kernel, kernel0)
    assert np.linalg.norm(kernel) > 0.5 * np.linalg.norm(kernel0)
    # The predictor's noise generator advanced inside the compiled step.
    assert not np.array_equal(to_numpy(model.predictor.stop_seed_generator.state), state0)
