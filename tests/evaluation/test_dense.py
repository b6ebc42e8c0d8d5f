"""Dense linear probing: patch majority labels, the closed-form probe on decodable and
random labels, per-image scores against hand counts, intervals, and features of a tiny
encoder."""

import keras
import numpy as np
import pytest

from keras_jepa.evaluation.dense import (
    DenseLinearProbe,
    extract_dense_features,
    mean_interval,
    per_image_scores,
    token_labels,
)
from keras_jepa.models.vit.vision_transformer import VisionTransformer


def test_token_labels_take_the_patch_majority():
    maps = np.zeros((1, 4, 4), int)
    maps[0, 0, 0:3] = 2  # 2 pixels of label 2 in patch 0 (of 4): label 0 wins
    maps[0, 2:4, 2:4] = 1  # patch 3 all ones
    maps[0, 0:2, 2] = 2  # patch 1: pixels (0,2),(1,2) = 2 -> tie 2 vs 0 -> smaller (0)
    maps[0, 2, 0:2] = 2
    maps[0, 3, 0] = 2  # patch 2: three 2s
    np.testing.assert_array_equal(token_labels(maps, 2), [[0, 0, 2, 1]])
    with pytest.raises(ValueError, match="divisible"):
        token_labels(np.zeros((1, 5, 4), int), 2)


def test_probe_decodes_linear_labels_and_not_random_ones():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 16, 6))
    labels = np.argmax(features[..., :3] @ rng.normal(size=(3, 3)), axis=-1)
    probe = DenseLinearProbe(3, l2=1e-4).fit(features[:30], labels[:30])
    acc, iou = per_image_scores(probe.predict(features[30:]), labels[30:], 3)
    assert acc.mean() > 0.85 and iou.mean() > 0.7
    noise = rng.integers(0, 3, size=labels.shape)
    probe = DenseLinearProbe(3).fit(features[:30], noise[:30])
    acc, _ = per_image_scores(probe.predict(features[30:]), noise[30:], 3)
    assert acc.mean() < 0.5


def test_per_image_scores_and_interval_by_hand():
    pred = np.array([[0, 0, 1, 1], [1, 1, 1, 1]])
    true = np.array([[0, 1, 1, 1], [1, 1, 1, 1]])
    acc, iou = per_image_scores(pred, true, 2)
    np.testing.assert_allclose(acc, [0.75, 1.0])
    np.testing.assert_allclose(iou, [(1 / 2 + 2 / 3) / 2, 1.0])
    mean, half = mean_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and abs(half - 1.96 / np.sqrt(3)) < 1e-12


def test_features_of_an_encoder():
    enc = VisionTransformer(image_size=8, patch_size=4, hidden_dim=24, depth=1, num_heads=2)
    data = np.random.default_rng(1).random((5, 8, 8, 3)).astype("float32")
    feats = extract_dense_features(enc, data, batch_size=2)
    assert feats.shape == (5, 4, 24) and feats.dtype == np.float32
    np.testing.assert_allclose(feats[:2], keras.ops.convert_to_numpy(enc(data[:2])), atol=1e-5)
