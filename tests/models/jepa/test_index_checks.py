"""Token indices outside ``[0, num_tokens)`` never give a silent wrong result.

Backends disagree on an out-of-range gather (JAX returns NaN or clamps, torch wraps 64 to
token 0, every backend wraps -1), so indices whose value is known are refused with an error,
whatever their type; inside a compiled step the producers (samplers, datasets) must stay in
range, which is tested here for the pretraining datasets (the samplers are in test_masks).
"""

import keras
import numpy as np
import pytest

from keras_jepa.models import IJEPA, VisionTransformer
from keras_jepa.models.jepa.predictor import JEPAPredictor


@pytest.fixture(scope="module")
def encoder():
    # 32x32, patch 8: 16 tokens.
    return VisionTransformer(image_size=32, patch_size=8, hidden_dim=32, depth=1,
                             num_heads=2, sincos_order="wh")


def _images(batch=2):
    return np.random.default_rng(0).random((batch, 32, 32, 3)).astype("float32")


@pytest.mark.parametrize("as_tensor", [False, True], ids=["numpy", "tensor"])
@pytest.mark.parametrize("bad", [16, 64, -1])
def test_encoder_refuses_out_of_range_indices(encoder, as_tensor, bad):
    idx = np.array([[0, 3, bad], [1, 2, 5]], "int32")
    if as_tensor:
        idx = keras.ops.convert_to_tensor(idx)
    with pytest.raises(ValueError, match=rf"token_indices holds index {bad}, outside \[0, 16\)"):
        encoder(_images(), token_indices=idx)
    # A list of masks (the official apply_masks form) is checked mask by mask.
    with pytest.raises(ValueError, match=f"index {bad}"):
        encoder(_images(), token_indices=[np.array([[0, 1, 2]] * 2), idx])


def test_encoder_accepts_boundary_indices(encoder):
    idx = np.array([[0, 15], [15, 0]], "int32")
    out = keras.ops.convert_to_numpy(
        encoder(_images(), token_indices=keras.ops.convert_to_tensor(idx)))
    assert out.shape == (2, 2, 32) and np.isfinite(out).all()
    # Same image twice, kept tokens swapped: the outputs swap (attention is
    # order-equivariant), so token 15 is gathered as itself, not clamped or wrapped to 0.
    images = np.concatenate([_images()[:1]] * 2)
    out = keras.ops.convert_to_numpy(encoder(images, token_indices=idx))
    np.testing.assert_allclose(out[0, 1], out[1, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[0, 0], out[1, 1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(out[0, 0], out[0, 1], atol=1e-3)


def test_encoder_refuses_mismatched_batch(encoder):
    with pytest.raises(ValueError, match=r"batch size 3 .* input batch has 2"):
        encoder(_images(2), token_indices=np.zeros((3, 4), "int32"))
    # One row for all elements stays allowed.
    out = encoder(_images(2), token_indices=np.array([[0, 1, 2, 3]], "int32"))
    assert tuple(out.shape) == (2, 4, 32)


@pytest.mark.parametrize("which", ["context_indices", "target_indices"])
def test_predictor_refuses_out_of_range_tensor_indices(which):
    predictor = JEPAPredictor(grid_size=(4, 4), output_dim=32, hidden_dim=16, depth=1,
                              num_heads=2)
    context = np.tile(np.arange(8, dtype="int32"), (2, 1))
    target = np.tile(np.arange(8, 12, dtype="int32"), (2, 1))
    args = {"context_indices": context, "target_indices": target}
    args[which] = args[which].copy()
    args[which][1, -1] = 16
    tokens = np.zeros((2, 8, 32), "float32")
    with pytest.raises(ValueError, match=rf"{which} holds index 16"):
        predictor(tokens, keras.ops.convert_to_tensor(args["context_indices"]),
                  keras.ops.convert_to_tensor(args["target_indices"]))


def test_ijepa_fit_refuses_out_of_range_target_before_first_step(encoder):
    model = IJEPA(encoder, predictor_dim=16, predictor_depth=1, ema_steps=10)
    model.compile(optimizer="adamw")
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    n = 4
    data = {
        "images": _images(n),
        "context_indices": [np.tile(np.arange(8, dtype="int32"), (n, 1))],
        "target_indices": [np.tile(np.array([10, 11, 12, 16], "int32"), (n, 1))],
    }
    with pytest.raises(ValueError, match=r"target_indices\[0\] holds index 16"):
        model.fit(data, batch_size=2, epochs=1, verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0
    for b, w in zip(before, model.trainable_weights):
        np.testing.assert_array_equal(b, keras.ops.convert_to_numpy(w))


def test_pretraining_dataset_indices_stay_in_range():
    from keras_jepa.models.jepa.recipes import build_dataset, build_encoder, get_config

    config = get_config("ijepa_tiny_cpu")
    num_tokens = build_encoder(config).num_tokens()
    images = (np.random.default_rng(0).random((24, 32, 32, 3)) * 255).astype("uint8")
    dataset = build_dataset(config, images, batch_size=8, seed=0)
    for i in range(len(dataset)):
        batch = dataset[i][0] if isinstance(dataset[i], tuple) else dataset[i]
        for key in ("context_indices", "target_indices"):
            for mask in batch[key]:
                mask = np.asarray(mask)
                assert mask.shape[0] == 8
                assert mask.min() >= 0 and mask.max() < num_tokens, (key, mask.max())
