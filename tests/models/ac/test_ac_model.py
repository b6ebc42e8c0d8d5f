"""V-JEPA 2-AC model: block-causal attention (no future leak), rollout = repeated one-step
prediction, the official losses against a float64 reference, fit on the compiled step,
config / preset / .keras round trips, and bad inputs."""

import keras
import numpy as np
import pytest

from keras_jepa.checkpoints.ac import export_ac_state
from keras_jepa.models.ac.model import ACPredictor, VJEPA2AC, block_causal_mask
from keras_jepa.models.vit.vision_transformer import VisionTransformer
from tests.models.ac.ac_reference import reference_losses
from tests.test_case import (
    run_keras_file_test,
    run_preset_test,
    run_serialization_test,
    to_numpy,
)

GRID, HEADS, ACTION = (2, 2), 2, 3


def _model(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    enc = VisionTransformer(image_size=16, patch_size=8, num_frames=2, hidden_dim=32,
                            depth=1, num_heads=2, position_embedding="rope")
    return VJEPA2AC(enc, predictor_kwargs=dict(hidden_dim=32, depth=2, num_heads=HEADS,
                                               action_dim=ACTION, max_steps=4), **kwargs)



@pytest.fixture(autouse=True, scope="module")
def _fast_init(fast_jax_initializers):
    yield

@pytest.fixture(scope="module")
def model():
    return _model()


def _batch(rng, batch=2, steps=4):
    return {
        "frames": rng.uniform(0, 1, (batch, steps, 16, 16, 3)).astype("float32"),
        "actions": rng.normal(0, 1, (batch, steps - 1, ACTION)).astype("float32"),
        "states": rng.normal(0, 1, (batch, steps, ACTION)).astype("float32"),
    }


def test_block_causal_mask_closed_form():
    mask = block_causal_mask(3, 2)
    expected = np.kron(np.tril(np.ones((3, 3), bool)), np.ones((2, 2), bool))
    np.testing.assert_array_equal(mask, expected)


def test_no_future_leak(model):
    rng = np.random.default_rng(0)
    hw = 4
    tokens = rng.normal(0, 1, (1, 3 * hw, 32)).astype("float32")
    actions = rng.normal(0, 1, (1, 3, ACTION)).astype("float32")
    states = rng.normal(0, 1, (1, 3, ACTION)).astype("float32")
    base = to_numpy(model.predictor(tokens, actions, states))
    later = tokens.copy()
    later[:, 2 * hw:] += 3.0
    later_actions, later_states = actions.copy(), states.copy()
    later_actions[:, 2] += 3.0
    later_states[:, 2] -= 3.0
    changed = to_numpy(model.predictor(later, later_actions, later_states))
    # Steps 0 and 1 see nothing of step 2; step 2 does change.
    np.testing.assert_allclose(changed[:, :2 * hw], base[:, :2 * hw], atol=1e-6)
    assert np.abs(changed[:, 2 * hw:] - base[:, 2 * hw:]).max() > 1e-4
    # An earlier action does reach later steps.
    early = actions.copy()
    early[:, 0] += 3.0
    moved = to_numpy(model.predictor(tokens, early, states))
    assert np.abs(moved[:, hw:] - base[:, hw:]).max() > 1e-4


def test_full_attention_option_leaks(model):
    """The mask is what stops the leak: without it, step 0 sees step 2."""
    free = ACPredictor(**{**model.predictor.get_config(), "is_frame_causal": False})
    free.build()
    free.set_weights(model.predictor.get_weights())
    rng = np.random.default_rng(1)
    tokens = rng.normal(0, 1, (1, 12, 32)).astype("float32")
    a = rng.normal(0, 1, (1, 3, ACTION)).astype("float32")
    later = tokens.copy()
    later[:, 8:] += 3.0
    diff = to_numpy(free(later, a, a)) - to_numpy(free(tokens, a, a))
    assert np.abs(diff[:, :4]).max() > 1e-4


def test_rollout_is_repeated_one_step_prediction_and_losses_match_reference(model):
    rng = np.random.default_rng(2)
    batch = _batch(rng)
    out = model(batch)
    h = to_numpy(model.encode(batch["frames"]))
    hw = 4
    # Rollout: frame 0, the teacher-forced frame 1, then one more predictor call.
    first = to_numpy(model.predict_next(h[:, :hw], batch["actions"][:, :1],
                                        batch["states"][:, :1]))
    seq = np.concatenate([h[:, :hw], first], axis=1)
    second = to_numpy(model.predict_next(seq, batch["actions"][:, :2], batch["states"][:, :2]))
    np.testing.assert_allclose(to_numpy(out["rollout"]),
                               np.concatenate([first, second], axis=1), atol=1e-5)
    np.testing.assert_allclose(to_numpy(out["teacher_forcing"])[:, :hw], first, atol=1e-5)
    # The official losses, from a float64 re-implementation of the official predictor.
    state = {k: v for k, v in export_ac_state(model)["predictor"].items()}
    jref, sref = reference_losses(state, h.astype(np.float64), batch["actions"],
                                  batch["states"], GRID, HEADS, auto_steps=2)
    jloss, sloss = (float(to_numpy(v)) for v in model.losses_of(batch, out))
    assert abs(jloss - jref) < 1e-4 and abs(sloss - sref) < 1e-4
    # (The features themselves are checked against the official encoder in
    # test_ac_converter.py.)


def test_fit_trains_the_predictor_only():
    model = _model(seed=3)
    rng = np.random.default_rng(3)
    batch = _batch(rng, batch=4)
    tokens = to_numpy(model.encode(batch["frames"]))
    data = {"tokens": tokens, "actions": batch["actions"], "states": batch["states"]}
    encoder_before = [to_numpy(w) for w in model.encoder.weights]
    model.compile(optimizer=keras.optimizers.AdamW(3e-3))
    history = model.fit(data, batch_size=4, epochs=6, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.9 * losses[0], losses
    logs = history.history
    np.testing.assert_allclose(
        np.array(logs["teacher_forcing_loss"]) + np.array(logs["rollout_loss"]),
        np.array(losses), rtol=1e-4)
    for before, after in zip(encoder_before, model.encoder.weights):
        np.testing.assert_array_equal(before, to_numpy(after))


def test_serialization_and_round_trips(model, tmp_path):
    rng = np.random.default_rng(4)
    tokens = rng.normal(0, 1, (1, 8, 32)).astype("float32")
    a = rng.normal(0, 1, (1, 2, ACTION)).astype("float32")
    run_serialization_test(model.predictor, call=lambda p: p(tokens, a, a))
    batch = _batch(rng, batch=1, steps=3)
    call = lambda m: m(batch)  # noqa: E731
    run_preset_test(model, tmp_path / "preset", call)
    run_keras_file_test(model, tmp_path / "ac.keras", call)


def test_bad_inputs_raise(model):
    tokens = np.zeros((1, 8, 32), "float32")
    a = np.zeros((1, 2, ACTION), "float32")
    with pytest.raises(ValueError, match="multiple of the 4"):
        model.predictor(np.zeros((1, 7, 32), "float32"), a, a)
    with pytest.raises(ValueError, match="actions must have shape"):
        model.predictor(tokens, np.zeros((1, 3, ACTION), "float32"), a)
    with pytest.raises(ValueError, match="max_steps=4"):
        model.predictor(np.zeros((1, 20, 32), "float32"), np.zeros((1, 5, ACTION), "float32"),
                        np.zeros((1, 5, ACTION), "float32"))
    with pytest.raises(ValueError, match="auto_steps=2 needs at least 3"):
        model({"tokens": tokens, "actions": a[:, :1], "states": a})
