"""VJEPA2_1 beyond one modality per batch: joint image + video batches (the loss is the
weighted sum of the image-only and video-only losses, with per-modality lambda; one SGD
step moves the weights by the same weighted sum of the two single-modality steps; the
compiled fit step trains both tokenizers from batches of different sizes), the
``offset_context_loss`` weights and loss against hand-computed values, VJEPA2_1 as a VJEPA,
and the V-JEPA 2.1 pretraining configs as ``PretrainConfig``s."""

import keras
import numpy as np
import pytest

from keras_jepa.models.jepa.recipes import CONFIGS, build_model, get_config
from keras_jepa.models.jepa.vjepa import VJEPA
from keras_jepa.models.jepa.vjepa2_1 import (
    VJEPA2_1,
    VJEPA2_1_CONFIGS,
    context_distance_weights,
)
from keras_jepa.models.vit.vision_transformer import VisionTransformer

R = 0.25  # image_loss_weight: distinct from 1/2 so that swapped weights would fail


@pytest.fixture(scope="module", autouse=True)
def _fast_init(fast_jax_initializers):
    yield


def _encoder():
    return VisionTransformer(
        image_size=8, patch_size=4, num_frames=4, tubelet_size=2, hidden_dim=24, depth=2,
        num_heads=2, position_embedding="rope", rope_tiled=False, img_temporal_dim_size=1,
        modality_embedding=True, hierarchical_layers=[0, 1], n_output_distillation=2,
    )


def _model(**kwargs):
    options = dict(predictor_dim=16, predictor_depth=1, predictor_heads=2, num_mask_tokens=2,
                   ema_momentum=(0.9, 0.9), context_loss_weight=0.5,
                   image_context_loss_weight=0.2, image_loss_weight=R)
    options.update(kwargs)
    return VJEPA2_1(_encoder(), **options)


@pytest.fixture(scope="module")
def model():
    return _model()


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _videos(seed=0):
    rng = np.random.default_rng(seed)
    return {"videos": rng.random((2, 4, 8, 8, 3)).astype("float32"),
            "context_indices": [np.array([[0, 1, 2, 5], [0, 3, 4, 6]])],
            "target_indices": [np.array([[3, 4, 6, 7], [1, 2, 5, 7]])]}


def _images(seed=1, prefix=""):
    rng = np.random.default_rng(seed)
    return {"images": rng.random((3, 8, 8, 3)).astype("float32"),
            prefix + "context_indices": [np.array([[0], [3], [1]])],
            prefix + "target_indices": [np.array([[1, 2, 3], [0, 1, 2], [0, 2, 3]])]}


def _joint(seed=0):
    return {**_videos(seed), **_images(seed + 1, prefix="image_")}


def _loss(model, batch):
    return float(_np(model.prediction_loss(batch, model(batch))))


def test_joint_loss_is_the_weighted_sum_of_the_two(model):
    joint = _joint()
    out = model(joint)
    assert tuple(out["predictions"][0].shape) == (2, 4, 48)
    assert tuple(out["image_predictions"][0].shape) == (3, 3, 48)
    assert tuple(out["image_context_predictions"][0].shape) == (3, 1, 48)
    video, image = _loss(model, _videos()), _loss(model, _images())
    np.testing.assert_allclose(_loss(model, joint), (1 - R) * video + R * image, rtol=1e-5)
    # Each part uses its own lambda: 0.5 for videos, 0.2 for images.
    for batch, lam in ((_videos(), 0.5), (_images(), 0.2)):
        (modality, data, ctx, tgt, _), = model.streams(batch)
        y = model(batch)
        pred, context = model._stream_losses(data, ctx, tgt, y["predictions"],
                                             y["context_predictions"])
        np.testing.assert_allclose(_loss(model, batch),
                                   float(_np(pred)) + lam * float(_np(context)), rtol=1e-5)
        assert float(_np(context)) > 0


def _sgd_delta(config, weights, batch):
    m = VJEPA2_1.from_config(config)
    m.set_weights(weights)
    m.compile(optimizer=keras.optimizers.SGD(0.5), run_eagerly=True)
    m.train_on_batch(batch)
    owner = {id(v): part for part in ("encoder", "target_encoder", "predictor")
             for v in getattr(m, part).weights}
    return [(f"{owner.get(id(v), 'model')}:{v.path}", _np(v) - w)
            for v, w in zip(m.weights, weights)]


@pytest.mark.skipif(keras.backend.backend() == "jax",
                    reason="three eager SGD steps cost ~90 s on JAX (every op compiles); "
                           "torch and tensorflow run it, and the loss test above covers JAX")
def test_one_joint_step_is_the_weighted_sum_of_the_two_steps(model):
    # Plain SGD from the same weights: the update is -lr * gradient, so the joint update
    # must be (1 - r) x the video-only update + r x the image-only one, and both
    # tokenizers (tubelet and tubelet-1) and both modality embeddings move in one step.
    config, weights = model.get_config(), [_np(w) for w in model.weights]
    joint = _sgd_delta(config, weights, _joint())
    video = _sgd_delta(config, weights, _videos())
    image = _sgd_delta(config, weights, _images())
    moved = {}
    for (path, dj), (_, dv), (_, di) in zip(joint, video, image):
        if not path.startswith(("encoder:", "predictor:")):
            continue  # the EMA copy (step 0 applies no update) and the step counter
        np.testing.assert_allclose(dj, (1 - R) * dv + R * di, atol=2e-6, rtol=1e-4,
                                   err_msg=path)
        moved[path] = (np.abs(dj).max(), np.abs(dv).max(), np.abs(di).max())
    video_embed = [p for p in moved if p.startswith("encoder:") and "patch_embed/" in p]
    image_embed = [p for p in moved if p.startswith("encoder:") and "patch_embed_img/" in p]
    assert video_embed and image_embed
    for p in video_embed:
        joint_move, video_move, image_move = moved[p]
        assert joint_move > 0 and video_move > 0 and image_move == 0, p
    for p in image_embed:
        joint_move, video_move, image_move = moved[p]
        assert joint_move > 0 and image_move > 0 and video_move == 0, p
    for name in ("img_mod_embed", "video_mod_embed"):
        assert any(name in p and v[0] > 0 for p, v in moved.items()
                   if p.startswith("encoder:")), name


class _JointBatches(keras.utils.PyDataset):
    """Joint batches of different sizes (2 clips, 3 images), as the pretraining data
    (masks in tuples, as the samplers give them: tf.data rejects lists)."""

    def __len__(self):
        return 2

    def __getitem__(self, index):
        batch = _joint(seed=10 * int(index))
        return {k: tuple(v) if isinstance(v, list) else v for k, v in batch.items()}


def test_compiled_fit_trains_both_tokenizers(model):
    m = VJEPA2_1.from_config(model.get_config())
    m.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.0))
    embeds = [m.encoder.patch_embed.proj.kernel, m.encoder.patch_embed_img.proj.kernel]
    before = [_np(v).copy() for v in embeds]
    history = m.fit(_JointBatches(), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1]) and history.history["loss"][-1] > 0
    assert history.history["context_loss"][-1] > 0
    for v, b in zip(embeds, before):
        assert np.abs(_np(v) - b).max() > 0, v.path


def test_offset_context_weights_by_hand():
    # A 1 x 32 x 32 grid: offset_context_loss divides the distances by 32 // 16 = 2.
    # Target (0, 0, 1) = token 1; context tokens 0 (d = 1), 4 (d = 3), 97 = (0, 3, 1)
    # (d = 3): weights 1/sqrt(1/2), 1/sqrt(3/2), 1/sqrt(3/2) = 1.41421, 0.81650, 0.81650.
    ctx, tgt = np.array([[0, 4, 97]]), np.array([[1]])
    got = _np(context_distance_weights(ctx, tgt, (1, 32, 32), offset=True))
    np.testing.assert_allclose(got, [[1.4142135, 0.8164966, 0.8164966]], rtol=1e-6)
    plain = _np(context_distance_weights(ctx, tgt, (1, 32, 32)))
    np.testing.assert_allclose(plain, [[1.0, 0.5773503, 0.5773503]], rtol=1e-6)
    # On a 16-token grid the offset divides by 1: no change.
    small = np.array([[0, 4, 49]]), tgt  # 49 = (0, 3, 1) on 16 columns
    np.testing.assert_allclose(
        _np(context_distance_weights(*small, (1, 16, 16), offset=True)),
        _np(context_distance_weights(*small, (1, 16, 16))), rtol=1e-7)
    with pytest.raises(ValueError, match="16 tokens high"):
        context_distance_weights(ctx, tgt, (1, 8, 8), offset=True)


def test_offset_context_loss_by_hand():
    # 128 x 128 images at patch 4: the 32 x 32 grid above. Predictions equal to the
    # targets give L_pred = 0; context predictions off by exactly 1 in every channel give
    # L1 = 1 per token, so the loss is lambda x the mean weight:
    # 0.5 x (1.41421 + 0.81650 + 0.81650) / 3 = 0.50806.
    m = _model(offset_context_loss=True, image_context_loss_weight=None)
    batch = {"images": np.random.default_rng(3).random((1, 128, 128, 3)).astype("float32"),
             "context_indices": [np.array([[0, 4, 97]])], "target_indices": [np.array([[1]])]}
    h = _np(m.target_features(batch))
    y = {"predictions": [h[:, [1]]], "context_predictions": [h[:, [0, 4, 97]] + 1.0]}
    want = 0.5 * (2 ** 0.5 + 2 * (2 / 3) ** 0.5) / 3
    np.testing.assert_allclose(float(_np(m.prediction_loss(batch, y))), want, rtol=1e-5)
    m.offset_context_loss = False
    plain = 0.5 * (1 + 2 * 3 ** -0.5) / 3
    np.testing.assert_allclose(float(_np(m.prediction_loss(batch, y))), plain, rtol=1e-5)


def test_vjepa2_1_is_a_vjepa_with_its_own_config(model):
    assert isinstance(model, VJEPA)
    config = model.get_config()
    assert "mask_token_by" not in config and config["image_loss_weight"] == R
    assert config["image_context_loss_weight"] == 0.2
    clone = VJEPA2_1.from_config(config)
    assert clone.get_config() == config
    assert set(VJEPA2_1.presets) <= set(VJEPA.presets)
    assert "vjepa2_1_vitb16_384" in VJEPA.presets
    with pytest.raises(ValueError, match="image_loss_weight"):
        _model(image_loss_weight=1.5)


def test_configs_build_the_2_1_model():
    # Every 2.1 config is a named PretrainConfig with exactly the listed fields.
    assert set(VJEPA2_1_CONFIGS) <= set(CONFIGS)
    for name, fields in VJEPA2_1_CONFIGS.items():
        config = get_config(name).to_dict()
        assert config["name"] == name
        assert {k: config[k] for k in fields} == fields
    tiny = get_config("vjepa2_1_tiny_cpu")
    official = get_config("vjepa2_1_vitG16_256")
    assert official.hierarchical_layers == (11, 23, 37, 47)
    assert official.context_loss_ramp == (15000, 30000)
    assert (official.hidden_dim, official.depth, official.num_heads) == (1664, 48, 26)
    assert official.image_masks[0]["num_blocks"] == 10 and official.image_batch_size == 36
    m = build_model(tiny)
    assert type(m) is VJEPA2_1 and m.levels == 4
    enc = m.encoder
    assert list(enc.hierarchical_layers) == [0, 1, 2, 3] and enc.modality_embedding
    assert enc.patch_embed_img is not None and enc.rope_tiled is False
    assert m.predictor.n_output_distillation == 4 and m.predictor.return_all_tokens
    assert (m.context_loss_weight, m.image_context_loss_weight, m.image_loss_weight) == (
        0.5, 0.5, 0.5)
    assert m.weight_distance_loss and m.context_loss_ramp is None
