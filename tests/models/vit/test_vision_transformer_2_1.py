"""V-JEPA 2.1 options of VisionTransformer: defaults leave a model unchanged, images go
through the tubelet-1 tokenizer with the image modality embedding, interpolated RoPE
positions, hierarchical and intermediate outputs, config round trip, bad arguments, the
ViT-G size."""

import keras
import numpy as np
import pytest

from keras_jepa.layers.rotary_embedding import interpolated_position_scale, rope_tables
from keras_jepa.models.vit.vision_transformer import (
    VIT_SIZES,
    VJEPA2_1_HIERARCHICAL_LAYERS,
    VisionTransformer,
)
from tests.test_case import run_serialization_test


def _v21(**kwargs):
    config = dict(image_size=8, patch_size=4, num_frames=4, tubelet_size=2, hidden_dim=24,
                  depth=2, num_heads=2, position_embedding="rope", rope_tiled=False,
                  img_temporal_dim_size=1, modality_embedding=True, interpolate_rope=True,
                  hierarchical_layers=[0, 1], n_output_distillation=2)
    config.update(kwargs)
    return VisionTransformer(**config)


@pytest.fixture(scope="module")
def model():
    return _v21()


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_defaults_keep_the_existing_model():
    plain = VisionTransformer(image_size=8, patch_size=4, num_frames=4, hidden_dim=24,
                              depth=1, num_heads=2)
    assert plain.patch_embed_img is None and plain.img_mod_embed is None
    assert plain.norms_block == [] and plain.norm is not None
    names = sorted(w.path.split("/", 1)[1] for w in plain.weights)
    assert not any("mod_embed" in n or "norms_block" in n or "patch_embed_img" in n
                   for n in names)
    with pytest.raises(ValueError, match="rank 5"):
        plain(np.zeros((1, 8, 8, 3), "float32"))


def test_images_use_their_tokenizer_and_modality(model):
    rng = np.random.default_rng(0)
    image = rng.random((2, 8, 8, 3)).astype("float32")
    out = model(image)
    assert tuple(out.shape) == (2, 4, 24)
    np.testing.assert_allclose(_np(model(image[:, None])), _np(out), atol=1e-6)
    # Changing the image modality embedding (not by a constant, which the norms remove)
    # changes images only.
    video = rng.random((2, 4, 8, 8, 3)).astype("float32")
    video_before = _np(model(video))
    saved = _np(model.img_mod_embed)
    model.img_mod_embed.assign(saved + rng.standard_normal(saved.shape).astype("float32"))
    try:
        assert np.abs(_np(model(image)) - _np(out)).max() > 1e-3
        np.testing.assert_allclose(_np(model(video)), video_before, atol=1e-6)
    finally:
        model.img_mod_embed.assign(saved)
    assert model.grid_size((2, 8, 8, 3)) == (1, 2, 2)
    assert model.grid_size((2, 4, 8, 8, 3)) == (2, 2, 2)


def test_hierarchical_and_intermediate_outputs(model):
    video = np.random.default_rng(1).random((1, 4, 8, 8, 3)).astype("float32")
    layers = model(video, output_layers=[0, 1])
    hier = model(video, return_hierarchical=True)
    np.testing.assert_allclose(_np(hier), np.concatenate([_np(x) for x in layers], -1),
                               atol=1e-6)
    np.testing.assert_allclose(_np(model(video)), _np(layers[1]), atol=1e-6)
    one = _v21(n_output_distillation=1)
    one.set_weights(model.get_weights())
    np.testing.assert_allclose(_np(one(video, return_hierarchical=True)), _np(layers[1]),
                               atol=1e-6)
    with pytest.raises(ValueError, match="no output norm"):
        _v21(depth=3, hierarchical_layers=[0, 2])(video, output_layers=[1])


def test_interpolated_rope_positions():
    np.testing.assert_allclose(interpolated_position_scale((4, 24, 24), 16),
                               (1.0, 15 / 23, 15 / 23))
    np.testing.assert_allclose(interpolated_position_scale((1, 2, 5), 16), (1.0, 15.0, 3.75))
    ids = np.array([[0, 7, 9]])
    cos, _ = rope_tables(ids, (1, 2, 5), 12, tiled=False, position_scale=(1.0, 15.0, 3.75))
    # Token 7 sits at row 1, column 2: the row segment (channels 4-7) turns by 15,
    # the column segment (channels 8-11) by 7.5, both at frequency 1 on their first pair.
    cos = _np(cos)[0, :, 0]
    np.testing.assert_allclose(cos[1, [4, 5, 8, 9]],
                               np.cos([15.0, 15.0, 7.5, 7.5]), atol=1e-5)


def test_config_round_trip(model):
    video = np.random.default_rng(2).random((1, 4, 8, 8, 3)).astype("float32")
    run_serialization_test(model, call=lambda m: m(video, return_hierarchical=True))


def test_bad_arguments():
    with pytest.raises(ValueError, match="video model"):
        VisionTransformer(image_size=8, patch_size=4, hidden_dim=24, depth=1, num_heads=2,
                          img_temporal_dim_size=1)
    with pytest.raises(ValueError, match="hierarchical_layers"):
        _v21(hierarchical_layers=[1, 0])
    with pytest.raises(ValueError, match="interpolate_rope"):
        _v21(position_embedding="sincos")
    with pytest.raises(ValueError, match="n_output_distillation"):
        _v21(n_output_distillation=3)


def test_official_sizes():
    g = VIT_SIZES["gigantic_xformers_2_1"]
    assert int(g["hidden_dim"] * g["mlp_ratio"]) == 8192 and g["num_heads"] == 26
    assert VJEPA2_1_HIERARCHICAL_LAYERS[48] == (11, 23, 37, 47)
    assert VJEPA2_1_HIERARCHICAL_LAYERS[12] == (2, 5, 8, 11)


@pytest.mark.parametrize("frames", [None, 1, 4])
def test_compute_output_shape_matches_the_call(frames):
    # Three output norms, two of them in the hierarchical output: its width is 2 x 24.
    enc = _v21(depth=3, hierarchical_layers=[0, 1, 2], n_output_distillation=2)
    shape = (2, 8, 12, 3) if frames is None else (2, frames, 8, 12, 3)
    x = np.random.default_rng(0).random(shape).astype("float32")
    n = enc.num_tokens(shape)
    one = np.tile(np.arange(3), (2, 1))
    two = [one, np.tile(np.arange(1, 4), (2, 1))]
    cases = [dict(), dict(return_hierarchical=True), dict(output_layers=[2, 0]),
             dict(token_indices=one, return_hierarchical=True),
             dict(token_indices=two, output_layers=[1]), dict(token_indices=two)]
    for kwargs in cases:
        out = enc(x, **kwargs)
        index_shape = kwargs.get("token_indices")
        if index_shape is not None:
            index_shape = ([tuple(i.shape) for i in index_shape]
                           if isinstance(index_shape, list) else tuple(index_shape.shape))
        want = enc.compute_output_shape(
            shape, index_shape, return_hierarchical=kwargs.get("return_hierarchical", False),
            output_layers=kwargs.get("output_layers"),
        )
        got = ([tuple(o.shape) for o in out] if isinstance(out, list)
               else tuple(out.shape))
        assert got == want, (kwargs, got, want)
    assert enc.compute_output_shape(shape, return_hierarchical=True) == (2, n, 48)
    with pytest.raises(ValueError, match="no output norm"):
        enc.compute_output_shape(shape, output_layers=[5])
    plain = VisionTransformer(image_size=8, patch_size=4, hidden_dim=24, depth=1,
                              num_heads=2)
    with pytest.raises(ValueError, match="hierarchical_layers"):
        plain.compute_output_shape((2, 8, 8, 3), return_hierarchical=True)
