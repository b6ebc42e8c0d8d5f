"""Image World Models: paired views and their parameters, the action vector, the
conditioned predictor, the IWM model, MRR, and predictor finetuning."""

import keras
import numpy as np
import pytest

from keras_jepa.models.iwm.views import (
    ACTION_DIM,
    PairedViewDataset,
    PairedViews,
    action_vector,
    color_jitter,
    gaussian_blur,
)
from keras_jepa.models.iwm.metrics import (
    chance_mrr,
    mean_reciprocal_rank,
    reciprocal_ranks,
    world_model_banks,
    world_model_mrr,
)
from keras_jepa.masks import MultiBlockMask
from keras_jepa.models import (
    IWM,
    ConditionedPredictor,
    GroupLearningRateAdamW,
    IWMClassifier,
    VisionTransformer,
    iwm_recipe,
)
from tests.numpy_reference import to_numpy
from tests.test_case import run_serialization_test

RNG = np.random.RandomState(0)
IMAGES = RNG.rand(8, 20, 20, 3).astype("float32")


# ----------------------------------------------------------------------------- views


def test_color_jitter_closed_forms():
    image = np.random.RandomState(1).rand(4, 5, 3).astype("float32")
    np.testing.assert_allclose(color_jitter(image, brightness=0.5), image * 0.5, atol=1e-6)
    grey = image @ np.array([0.299, 0.587, 0.114], "float32")
    np.testing.assert_allclose(color_jitter(image, saturation=0.0),
                               np.repeat(grey[..., None], 3, -1), atol=1e-6)
    np.testing.assert_allclose(color_jitter(image, contrast=0.0),
                               np.full_like(image, grey.mean()), atol=1e-6)
    red = np.zeros((1, 1, 3), "float32")
    red[..., 0] = 0.8
    np.testing.assert_allclose(color_jitter(red, hue=1 / 3)[0, 0], [0, 0.8, 0], atol=1e-6)
    np.testing.assert_allclose(color_jitter(image, hue=0.0), image)


def test_gaussian_blur_matches_scipy():
    from scipy.ndimage import gaussian_filter

    image = np.random.RandomState(2).rand(12, 12, 3).astype("float32")
    ours = gaussian_blur(image, 1.2)
    ref = gaussian_filter(image.astype("float64"), sigma=(1.2, 1.2, 0), mode="mirror",
                          truncate=np.ceil(3 * 1.2) / 1.2)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_action_is_zero_for_identical_views():
    views = PairedViews(16, jitter_probability=0.0, blur_probability=0.0,
                        grayscale_probability=0.0, solarize_probability=0.0, seed=0)
    source, target, params = views(IMAGES[0])
    np.testing.assert_array_equal(action_vector(params), np.zeros(ACTION_DIM))
    np.testing.assert_allclose(source, target)
    same = dict(params, source_jitter=np.array([1.2, 0.9, 1.1, 0.05]),
                target_jitter=np.array([1.2, 0.9, 1.1, 0.05]))
    np.testing.assert_array_equal(action_vector(same), np.zeros(ACTION_DIM))
    other = dict(same, target_jitter=np.array([1.0, 0.9, 1.1, 0.0]), solarize=True)
    np.testing.assert_allclose(action_vector(other), [-0.2, 0, 0, -0.05, 0, 0, 1], atol=1e-6)


def test_views_share_geometry_and_reproduce_from_params():
    views = PairedViews(16, jitter_probability=1.0, blur_probability=1.0,
                        grayscale_probability=1.0, solarize_probability=1.0, seed=3)
    for image in (IMAGES[1], (IMAGES[1] * 255).astype("uint8")):
        source, target, params = views(image)
        assert params["grayscale"] and params["solarize"] and params["blur_sigma"] > 0
        rebuilt_source, rebuilt_target = views.apply(image, params)
        np.testing.assert_array_equal(rebuilt_source, source)
        np.testing.assert_array_equal(rebuilt_target, target)
        # The source is grey (channels equal before normalisation).
        unit = source * np.array([0.229, 0.224, 0.225]) + np.array([0.485, 0.456, 0.406])
        np.testing.assert_allclose(unit[..., 0], unit[..., 1], atol=1e-5)
    # Geometry is shared: the target equals the jittered crop of the same box.
    plain = PairedViews(16, jitter_probability=0.0, seed=4)
    _, target, params = plain(IMAGES[2])
    top, left, h, w = params["crop"]
    assert 1 <= h <= 20 and 1 <= w <= 20
    base = plain.geometry(IMAGES[2], params)
    np.testing.assert_allclose(target, plain.normalize(base), atol=1e-6)
    with pytest.raises(ValueError, match="hue"):
        PairedViews(16, hue=0.7)


def test_paired_view_dataset_batches():
    masks = MultiBlockMask(grid_size=4, enc_mask_scale=(1.0, 1.0), min_keep=2,
                           faithful=False, seed=0)
    ds = PairedViewDataset(IMAGES, batch_size=4, views=PairedViews(16), mask_sampler=masks,
                           seed=0)
    batch = ds[1]
    assert batch["source"].shape == batch["target"].shape == (4, 16, 16, 3)
    assert batch["action"].shape == (4, ACTION_DIM)
    assert batch["target_indices"].shape == (4, 4 * masks.num_target_tokens)
    # The context is everything outside the union of the 4 target blocks.
    for ctx, tgt in zip(batch["context_indices"], batch["target_indices"]):
        assert not set(ctx) & set(tgt)
    again = ds[1]
    for key in batch:
        np.testing.assert_array_equal(batch[key], again[key])


# ----------------------------------------------------------------------------- MRR


def test_mrr_perfect_and_constant_predictors():
    bank = np.random.RandomState(5).randn(20, 16, 4, 8)
    assert mean_reciprocal_rank(bank, bank) == 1.0
    constant = np.zeros_like(bank) + bank.mean(axis=(0, 1))
    # One prediction per image: the true member's rank runs over 1..N exactly once.
    assert abs(mean_reciprocal_rank(constant, bank) - chance_mrr(16)) < 1e-12
    noisy = bank + 0.05 * np.random.RandomState(6).randn(*bank.shape)
    assert mean_reciprocal_rank(noisy, bank, metric="cosine") > 0.95
    rr = reciprocal_ranks(bank[:, :2], bank, true_indices=np.tile([3, 5], (20, 1)))
    assert rr.shape == (20, 2) and rr.max() < 1.0
    assert abs(chance_mrr(4) - (1 + 1 / 2 + 1 / 3 + 1 / 4) / 4) < 1e-12
    with pytest.raises(ValueError, match="true_indices"):
        reciprocal_ranks(bank, bank, true_indices=np.zeros((3, 3), "int32"))


def test_world_model_banks_actions():
    views = PairedViews(16, seed=0)
    sources, targets, actions = world_model_banks(views, IMAGES[:2], bank_size=5, seed=0)
    assert targets.shape == (2, 5, 16, 16, 3) and actions.shape == (2, 5, ACTION_DIM)
    assert np.all(actions[..., 4:] == 0)  # clean source: no destructive flags
    assert np.all(np.abs(actions[..., :4]).sum(-1) > 0)  # every member is jittered


# ----------------------------------------------------------------------------- models


def encoder():
    return VisionTransformer(image_size=16, patch_size=4, hidden_dim=32, depth=1, num_heads=2)


def iwm_batch(batch=4, seed=0):
    rng = np.random.RandomState(seed)
    return {"source": rng.rand(batch, 16, 16, 3).astype("float32"),
            "target": rng.rand(batch, 16, 16, 3).astype("float32"),
            "action": rng.randn(batch, ACTION_DIM).astype("float32"),
            "context_indices": np.tile(np.arange(10, dtype="int32"), (batch, 1)),
            "target_indices": np.tile(np.arange(10, 16, dtype="int32"), (batch, 1))}


@pytest.mark.parametrize("conditioning", ["feature", "sequence", "none"])
def test_conditioned_predictor_uses_the_action(conditioning):
    pred = ConditionedPredictor(grid_size=(4, 4), output_dim=32, hidden_dim=16, depth=1,
                                num_heads=2, conditioning=conditioning)
    pred.build()
    b = iwm_batch()
    ctx = np.random.RandomState(1).randn(4, 10, 32).astype("float32")
    out = to_numpy(pred(ctx, b["context_indices"], b["target_indices"], b["action"]))
    other = to_numpy(pred(ctx, b["context_indices"], b["target_indices"], b["action"] + 1.0))
    null = to_numpy(pred(ctx, b["context_indices"], b["target_indices"], None))
    zeros = to_numpy(pred(ctx, b["context_indices"], b["target_indices"],
                          np.zeros((4, ACTION_DIM), "float32")))
    assert out.shape == (4, 6, 32)
    np.testing.assert_allclose(null, zeros, atol=1e-6)
    if conditioning == "none":
        np.testing.assert_allclose(out, other, atol=1e-6)
    else:
        assert np.abs(out - other).max() > 1e-4
    run_serialization_test(
        pred, call=lambda p: p(ctx, b["context_indices"], b["target_indices"], b["action"]),
        atol=1e-6)


def test_conditioned_predictor_bad_inputs():
    with pytest.raises(ValueError, match="conditioning"):
        ConditionedPredictor(grid_size=(4, 4), output_dim=8, conditioning="film")
    pred = ConditionedPredictor(grid_size=(4, 4), output_dim=32, hidden_dim=16, depth=1,
                                num_heads=2)
    b = iwm_batch()
    with pytest.raises(ValueError, match="action"):
        pred(np.zeros((4, 10, 32), "float32"), b["context_indices"], b["target_indices"],
             np.zeros((4, 3), "float32"))


def test_iwm_loss_targets_and_fit():
    model = IWM(encoder(), predictor_dim=16, predictor_depth=1, ema_steps=50)
    b = iwm_batch()
    # The loss compares with the target encoder's layer-normed features of the TARGET view.
    pred = model(b)["predictions"]
    h = to_numpy(model.target_encoder(b["target"]))
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5)
    expected = np.mean((to_numpy(pred) - h[:, 10:16]) ** 2)
    loss = float(to_numpy(model.compute_loss(b, y_pred={"predictions": pred}, training=False)))
    assert abs(loss - expected) < 1e-4
    model.compile(optimizer=keras.optimizers.AdamW(2e-3))
    losses = model.fit(b, epochs=5, batch_size=4, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.9 * losses[0]
    restored = run_serialization_test(model)
    assert restored.predictor.conditioning == "feature" and restored.loss_name == "l2"
    mrr = world_model_mrr(model, IMAGES[:2], PairedViews(16), bank_size=4, seed=0,
                          masked=False)
    assert 0 < mrr["mrr"] <= 1 and mrr["chance"] == chance_mrr(4)


def test_recipes():
    assert iwm_recipe("iwm_inv_12x384")["predictor_depth"] == 12
    equi = iwm_recipe("iwm_equi_18x384")
    assert (equi["predictor_depth"], equi["predictor_dim"]) == (18, 384)
    assert equi["views"]["solarize_probability"] == 0.1
    assert iwm_recipe("iwm_inv_12x384")["views"]["blur_probability"] == 0.0
    with pytest.raises(ValueError, match="nope"):
        iwm_recipe("nope")


def test_group_learning_rate_scales_the_predictor_step():
    class Two(keras.Model):
        def __init__(self):
            super().__init__()
            self.predictor = keras.layers.Dense(1, use_bias=False, name="predictor")
            self.other = keras.layers.Dense(1, use_bias=False, name="other")

        def call(self, x):
            return self.predictor(x) + self.other(x)

    model = Two()
    model(np.ones((1, 1), "float32"))
    opt = GroupLearningRateAdamW(learning_rate=1e-2, weight_decay=0.0,
                                 lr_multipliers={"predictor": 0.1})
    before = [to_numpy(v).copy() for v in (model.predictor.kernel, model.other.kernel)]
    grads = [np.ones((1, 1), "float32"), np.ones((1, 1), "float32")]
    opt.apply(grads, [model.predictor.kernel, model.other.kernel])
    steps = [abs(float((to_numpy(v) - b).ravel()[0]))
             for v, b in zip((model.predictor.kernel, model.other.kernel), before)]
    # Adam's first step is lr * g / (|g| + eps): the learning rate itself.
    np.testing.assert_allclose(steps, [1e-3, 1e-2], rtol=1e-3)


def test_predictor_finetuning_freezes_the_encoder():
    iwm = IWM(encoder(), predictor_dim=16, predictor_depth=1, ema_steps=10)
    clf = IWMClassifier(iwm.target_encoder, iwm.predictor, num_classes=3)
    images = np.random.RandomState(0).rand(6, 16, 16, 3).astype("float32")
    labels = np.array([0, 1, 2, 0, 1, 2])
    # Null action, full image: the predictor's input is every encoder token.
    feats = to_numpy(clf.features(images))
    z = iwm.target_encoder(images)
    ids = np.tile(np.arange(16, dtype="int32"), (6, 1))
    np.testing.assert_allclose(feats, to_numpy(iwm.predictor(z, ids, ids, None)), atol=1e-5)
    enc_before = [to_numpy(v).copy() for v in clf.encoder.weights]
    pred_before = [to_numpy(v).copy() for v in clf.predictor.weights]
    clf.compile(optimizer=GroupLearningRateAdamW(learning_rate=1e-3, weight_decay=0.0,
                                                 lr_multipliers={"predictor": 0.1}),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    clf.fit(images, labels, epochs=1, batch_size=6, verbose=0)
    for v, b in zip(clf.encoder.weights, enc_before):
        np.testing.assert_array_equal(to_numpy(v), b)
    moved = max(np.abs(to_numpy(v) - b).max() for v, b in zip(clf.predictor.weights,
                                                               pred_before))
    assert 0 < moved <= 1.01e-4
    # The pretrained model is untouched (the classifier holds copies).
    for v, b in zip(iwm.predictor.weights, pred_before):
        np.testing.assert_array_equal(to_numpy(v), b)
    baseline = IWMClassifier(iwm.target_encoder, iwm.predictor, num_classes=3,
                             use_predictor=False)
    np.testing.assert_allclose(to_numpy(baseline.features(images)), to_numpy(z), atol=1e-6)
