"""Two official-recipe details of the JEPA models:

* a mask padded to its static budget repeats some tokens; the loss counts every distinct
  target token of a row once, so it equals the official loss over the unpadded masks
  (float64 numpy reference on the target encoder);
* V-JEPA 2 picks the predictor's mask token by clip-length group (one group: token 0 for
  every mask config), and one model trains on batches of several clip lengths.
"""

import keras
import numpy as np
import pytest

from keras_jepa.masks.base import fit_rows
from keras_jepa.models.jepa.base import first_occurrence_weights
from keras_jepa.models.jepa.ijepa import IJEPA
from keras_jepa.models.jepa.vjepa import VJEPA
from keras_jepa.models.vit.vision_transformer import VisionTransformer
from tests.numpy_reference import vit_forward


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), np.float64)


def test_first_occurrence_weights_count_each_index_once():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 6, size=(5, 9)).astype("int32")  # unsorted, many repeats
    weights = _np(first_occurrence_weights(rows))
    assert set(np.unique(weights)) <= {0.0, 1.0}
    for row, w in zip(rows, weights):
        for value in np.unique(row):
            assert w[row == value].sum() == 1.0, (row, w)


def _padded_masks(rng, batch, num_tokens, sizes, budget):
    """Sorted ``(B, budget)`` rows of ``sizes[b]`` distinct tokens each, padded by repeats
    (the samplers' ``fit_rows``), and the unpadded rows."""
    chosen = np.zeros((batch, num_tokens), bool)
    for b, size in enumerate(sizes):
        chosen[b, rng.choice(num_tokens, size, replace=False)] = True
    padded = fit_rows(chosen, budget, rng)
    return padded, [np.flatnonzero(row) for row in chosen]


def _reference_targets(encoder, x):
    """Float64 layer-normed (no affine, eps 1e-5) target features."""
    h = vit_forward(encoder, x)
    mean = h.mean(-1, keepdims=True)
    return (h - mean) / np.sqrt(((h - mean) ** 2).mean(-1, keepdims=True) + 1e-5)


def _first_positions(padded_row, real):
    return np.array([np.flatnonzero(padded_row == t)[0] for t in real])


def _smooth_l1(d):
    d = np.abs(d)
    return np.where(d < 1.0, 0.5 * d * d, d - 0.5)


@pytest.fixture(scope="module")
def ijepa():
    enc = VisionTransformer(image_size=16, patch_size=4, hidden_dim=24, depth=1, num_heads=2,
                            sincos_order="wh")
    return IJEPA(enc, predictor_dim=16, predictor_depth=1, predictor_heads=2, ema_steps=10)


def _predictions(rng, targets, num_tokens, dim, batch):
    """Predictions for padded target rows: one random vector per (sample, token), so a
    repeat gets the same prediction as its original (as the predictor gives it)."""
    table = 2.0 * rng.standard_normal((batch, num_tokens, dim)).astype("float32")
    return [table[np.arange(batch)[:, None], t] for t in targets]


def test_ijepa_loss_is_the_official_loss_on_the_unpadded_masks(ijepa):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 16, 16, 3)).astype("float32")
    context, _ = _padded_masks(rng, 3, 16, [6, 6, 6], 6)
    sizes = [[3, 5, 5], [4, 2, 5]]  # real target tokens per row, budget 5 (repeats)
    targets, real = zip(*(_padded_masks(rng, 3, 16, s, 5) for s in sizes))
    batch = {"images": x, "context_indices": [context], "target_indices": list(targets)}
    preds = _predictions(rng, targets, 16, 24, 3)
    loss = float(_np(ijepa.prediction_loss(batch, {"predictions": preds})))
    # Official: one smooth-L1 mean over every real (target block, sample, token, channel).
    h = _reference_targets(ijepa.target_encoder, x)
    total, count, padded_mean = 0.0, 0, []
    for j, pred in enumerate(preds):
        for b in range(3):
            keep = _first_positions(targets[j][b], real[j][b])
            total += _smooth_l1(pred[b, keep] - h[b, real[j][b]]).sum()
            count += keep.size * h.shape[-1]
        padded_mean.append(_smooth_l1(pred - h[np.arange(3)[:, None], targets[j]]).mean())
    reference = total / count
    np.testing.assert_allclose(loss, reference, rtol=1e-5)
    # Counting the repeats (the padded mean) would be another number.
    assert abs(np.mean(padded_mean) - reference) > 1e-2 * reference


@pytest.fixture(scope="module")
def vjepa():
    enc = VisionTransformer(image_size=16, patch_size=8, num_frames=4, hidden_dim=24,
                            depth=1, num_heads=2, uniform_power=True)
    return VJEPA(enc, predictor_dim=16, predictor_depth=1, predictor_heads=2,
                 ema_momentum=(0.998, 1.0), ema_steps=10)


def test_vjepa_loss_is_the_official_loss_on_the_unpadded_masks(vjepa):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 16, 16, 3)).astype("float32")
    contexts = [_padded_masks(rng, 2, 8, [3, 3], 3)[0], _padded_masks(rng, 2, 8, [2, 2], 2)[0]]
    sizes = [[2, 4], [5, 3]]
    targets, real = zip(*(_padded_masks(rng, 2, 8, s, b) for s, b in zip(sizes, (4, 5))))
    batch = {"videos": x, "context_indices": list(contexts), "target_indices": list(targets)}
    preds = _predictions(rng, targets, 8, 24, 2)
    loss = float(_np(vjepa.prediction_loss(batch, {"predictions": preds})))
    # Official: per mask config, mean |pred - target| over its real tokens; then the mean
    # over the configs.
    h = _reference_targets(vjepa.target_encoder, x)
    per_config, padded = [], []
    for j, pred in enumerate(preds):
        diffs = [np.abs(pred[b, _first_positions(targets[j][b], real[j][b])]
                        - h[b, real[j][b]]) for b in range(2)]
        per_config.append(np.concatenate(diffs).mean())
        padded.append(np.abs(pred - h[np.arange(2)[:, None], targets[j]]).mean())
    np.testing.assert_allclose(loss, np.mean(per_config), rtol=1e-5)
    assert abs(np.mean(padded) - np.mean(per_config)) > 1e-2 * np.mean(per_config)


# --------------------------------------------------------------------------- clip lengths


@pytest.fixture(scope="module")
def vjepa2_two_lengths():
    enc = VisionTransformer(image_size=16, patch_size=8, num_frames=8, hidden_dim=24,
                            depth=1, num_heads=2, position_embedding="rope")
    model = VJEPA(enc, predictor_dim=24, predictor_depth=1, predictor_heads=2,
                  num_mask_tokens=4, clip_lengths=(4, 8), ema_momentum=(0.99925,) * 2)
    tokens = model.predictor.mask_tokens
    tokens.assign(np.random.default_rng(0).standard_normal(tokens.shape).astype("float32"))
    return model


@pytest.mark.parametrize("frames,group", [(4, 0), (8, 1)])
def test_vjepa2_mask_token_is_the_clip_length_group(vjepa2_two_lengths, frames, group):
    model = vjepa2_two_lengths
    assert model.mask_token_by == "clip_length"
    rng = np.random.default_rng(frames)
    x = rng.standard_normal((2, frames, 16, 16, 3)).astype("float32")
    n = frames // 2 * 4
    ids = [np.stack([np.sort(rng.permutation(n)) for _ in range(2)]).astype("int32")
           for _ in range(2)]
    contexts, targets = [ids[0][:, :3], ids[1][:, :2]], [ids[0][:, 3:], ids[1][:, 2:]]
    out = model({"videos": x, "context_indices": contexts, "target_indices": targets})
    for i in range(2):  # both mask configs use the group's token
        z = model.encoder(x, token_indices=contexts[i])
        expected = _np(model.predictor(z, contexts[i], targets[i], mask_index=group))
        other = _np(model.predictor(z, contexts[i], targets[i], mask_index=1 - group))
        got = _np(out["predictions"][i])
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert np.abs(got - other).max() > 1e-3


def test_vjepa2_clip_lengths_are_checked_and_serialised(vjepa2_two_lengths):
    model = vjepa2_two_lengths
    with pytest.raises(ValueError, match="6-frame clips.*\\(4, 8\\)"):
        model.mask_index(0, 6)
    config = model.get_config()
    assert config["clip_lengths"] == [4, 8] and config["mask_token_by"] == "clip_length"
    enc = model.encoder
    with pytest.raises(ValueError, match="need as many mask tokens"):
        VJEPA(enc, predictor_dim=24, predictor_depth=1, predictor_heads=2,
              num_mask_tokens=1, clip_lengths=(4, 8), ema_momentum=(0.99925,) * 2)
    with pytest.raises(ValueError, match="up to 16 frames"):
        VJEPA(enc, predictor=model.predictor, clip_lengths=(4, 16),
              ema_momentum=(0.99925,) * 2)
    # V-JEPA 1 (sin-cos) keeps one mask token per config.
    assert VJEPA(VisionTransformer(image_size=16, patch_size=8, num_frames=4, hidden_dim=24,
                                   depth=1, num_heads=2), predictor_dim=16,
                 predictor_depth=1, ema_steps=1).mask_index(1, 4) == 1
