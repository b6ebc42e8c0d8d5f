"""VisionTransformer: shapes, numerics against the numpy reference, serialization, presets,
mixed precision, bad input, and equality across backends."""

import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_jepa as kj
from keras_jepa.models import VisionTransformer
from keras_jepa.presets import storage as preset_utils
from tests.numpy_reference import to_numpy, vit_forward
from tests.test_case import (
    REPO_ROOT,
    run_keras_file_test,
    run_output_shape_test,
    run_preset_test,
    run_serialization_test,
)

ROOT = REPO_ROOT


def tiny(**kwargs):
    defaults = dict(image_size=16, patch_size=4, hidden_dim=24, depth=2, num_heads=2)
    return VisionTransformer(**{**defaults, **kwargs})


def tiny_video(**kwargs):
    return tiny(num_frames=4, tubelet_size=2, **kwargs)


@pytest.fixture(scope="module")
def image_batch():
    return np.random.RandomState(1).rand(2, 16, 16, 3).astype("float32")


@pytest.fixture(scope="module")
def video_batch():
    return np.random.RandomState(2).rand(2, 4, 16, 16, 3).astype("float32")


# ------------------------------------------------------------------ shapes


def test_image_and_video_shapes(image_batch, video_batch):
    run_output_shape_test(tiny(), image_batch, (2, 16, 24))
    run_output_shape_test(tiny_video(), video_batch, (2, 32, 24))
    idx = np.array([[0, 3, 7], [1, 2, 31]])
    assert tuple(tiny_video()(video_batch, token_indices=idx).shape) == (2, 3, 24)
    assert tuple(tiny()(image_batch, token_indices=np.array([5, 6])).shape) == (2, 2, 24)


def test_other_resolution_and_frame_count(video_batch):
    model = tiny_video()
    # fewer frames: first rows of the table; other spatial size: interpolation
    assert tuple(model(video_batch[:, :2]).shape) == (2, 16, 24)
    big = np.random.rand(1, 6, 24, 20, 3).astype("float32")
    assert tuple(model(big).shape) == (1, 3 * 6 * 5, 24)
    rope_model = tiny_video(position_embedding="rope")
    assert tuple(rope_model(big).shape) == (1, 90, 24)


def test_output_dim_expands_last_block(image_batch):
    model = tiny(output_dim=40)
    assert tuple(model(image_batch).shape) == (2, 16, 40)
    assert model.output_width == 40
    assert model.blocks[0].output_dim is None and model.blocks[-1].output_dim == 40


def test_sizes_match_official_factories():
    from keras_jepa.models.vit.vision_transformer import VIT_SIZES

    assert VIT_SIZES["huge"] == dict(hidden_dim=1280, depth=32, num_heads=16, mlp_ratio=4.0)
    assert VIT_SIZES["giant"]["num_heads"] == 16
    assert VIT_SIZES["giant_xformers"]["num_heads"] == 22
    assert int(1408 * VIT_SIZES["giant"]["mlp_ratio"]) == 6144
    with pytest.raises(ValueError, match="'enormous'"):
        VisionTransformer.from_size("enormous")


# ------------------------------------------------------------------ numerics


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(sincos_order="wh"),
        dict(sincos_order="hw", output_dim=32),
        dict(mlp_type="swiglu", wide_swiglu=False),
    ],
    ids=["ijepa", "vjepa-2d-expand", "swiglu"],
)
def test_image_model_matches_numpy_reference(kwargs, image_batch):
    model = tiny(**kwargs)
    idx = np.array([[0, 5, 9, 15], [3, 4, 2, 1]])
    for indices in (None, idx):
        out = to_numpy(model(image_batch, token_indices=indices))
        ref = vit_forward(model, image_batch, indices)
        np.testing.assert_allclose(out, ref, atol=2e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(uniform_power=True),
        dict(position_embedding="rope", hidden_dim=36, num_heads=2),
        dict(position_embedding="rope", hidden_dim=36, num_heads=2, rope_tiled=False),
    ],
    ids=["vjepa-sincos", "vjepa2-rope-tiled", "rope-interleaved"],
)
def test_video_model_matches_numpy_reference(kwargs, video_batch):
    model = tiny_video(**kwargs)
    idx = np.array([[0, 7, 20, 31], [31, 2, 16, 9]])
    for indices in (None, idx):
        out = to_numpy(model(video_batch, token_indices=indices))
        ref = vit_forward(model, video_batch, indices)
        np.testing.assert_allclose(out, ref, atol=2e-5)


def test_rope_keeps_positions_of_gathered_tokens(video_batch):
    # Gathering before the blocks must equal running on all tokens only when the blocks
    # see the same token set; here we check the positional part: a permutation of the
    # kept tokens permutes the output identically (positions travel with the tokens).
    model = tiny_video(position_embedding="rope", hidden_dim=36)
    idx = np.array([[1, 9, 30]] * 2)
    perm = idx[:, [2, 0, 1]]
    a = to_numpy(model(video_batch, token_indices=idx))
    b = to_numpy(model(video_batch, token_indices=perm))
    np.testing.assert_allclose(a[:, [2, 0, 1]], b, atol=1e-5)


def test_depth_scaled_init():
    model = VisionTransformer(
        image_size=16, patch_size=8, hidden_dim=256, depth=3, num_heads=4,
        depth_scaled_init=True,
    )
    for i, block in enumerate(model.blocks, start=1):
        expected = 0.02 / math.sqrt(2 * i)
        assert abs(to_numpy(block.attn.proj.kernel).std() / expected - 1) < 0.03
        assert abs(to_numpy(block.mlp.fc2.kernel).std() / expected - 1) < 0.03
    plain = VisionTransformer(image_size=16, patch_size=8, hidden_dim=256, depth=3, num_heads=4)
    assert abs(to_numpy(plain.blocks[2].attn.proj.kernel).std() / 0.02 - 1) < 0.03


def test_position_table_is_frozen_and_closed_form():
    model = tiny(sincos_order="wh")
    table = model.pos_embed.table
    assert not table.trainable
    assert all(w is not table for w in model.trainable_weights)
    np.testing.assert_allclose(to_numpy(table)[0], kj.layers.sincos_2d(24, (4, 4), "wh"), atol=1e-6)


# ------------------------------------------------------------------ serialization and presets


def test_config_and_keras_serialization_round_trip(image_batch):
    # JSON config, from_config, Keras serialization, same outputs with the same weights.
    model = tiny(output_dim=32, drop_path_rate=0.1)
    run_serialization_test(model, call=lambda m: m(image_batch), atol=1e-6)


def test_keras_file_round_trip(tmp_path, image_batch):
    run_keras_file_test(tiny(), tmp_path / "vit.keras", call=lambda m: m(image_batch), atol=1e-6)


def test_builtin_preset_builds_runs_and_round_trips(tmp_path):
    model = VisionTransformer.from_preset("vit_tiny_patch16_224")
    assert model.hidden_dim == 192 and model.depth == 12 and model.sincos_order == "wh"
    x = np.random.RandomState(0).rand(2, 224, 224, 3).astype("float32")
    out = to_numpy(model(x))
    assert out.shape == (2, 196, 192)
    run_preset_test(model, tmp_path / "preset", call=lambda m: m(x), atol=1e-5,
                    expected_files=["config.json", "metadata.json", "model.weights.h5"])
    with open(tmp_path / "preset" / "config.json") as f:
        assert json.load(f)["registered_name"] == "keras_jepa>VisionTransformer"
    assert "vit_tiny_patch16_224" in VisionTransformer.presets
    assert "vit_huge_patch14_224" in VisionTransformer.presets


def test_preset_dtype_override(tmp_path):
    loaded = run_preset_test(tiny(), tmp_path / "p", call=None, dtype="mixed_bfloat16")
    assert loaded.dtype_policy.name == "mixed_bfloat16"
    assert loaded.blocks[0].attn.qkv.compute_dtype == "bfloat16"


def test_preset_errors(tmp_path):
    with pytest.raises(ValueError, match="vit_tiny_patch16_224"):
        VisionTransformer.from_preset("vit_tiny_patch16_22")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        VisionTransformer.from_preset(str(tmp_path / "empty"))

    class NotAViT(kj.models.Backbone):
        pass

    with pytest.raises(ValueError, match="not a NotAViT"):
        NotAViT.from_preset("vit_tiny_patch16_224")


def test_remote_handles_resolve_to_a_preset_directory(tmp_path, monkeypatch, image_batch):
    model = tiny()
    model.save_to_preset(str(tmp_path / "remote"))
    calls = []

    def fake_download(handle):
        calls.append(handle)
        return str(tmp_path / "remote")

    monkeypatch.setattr(preset_utils, "_download", fake_download)
    for handle in ("hf://someone/tiny-vit", "kaggle://someone/vit/keras/tiny"):
        loaded = VisionTransformer.from_preset(handle)
        np.testing.assert_allclose(to_numpy(loaded(image_batch)), to_numpy(model(image_batch)), atol=1e-6)
    assert calls == ["hf://someone/tiny-vit", "kaggle://someone/vit/keras/tiny"]


# ------------------------------------------------------------------ precision


def test_mixed_bfloat16_forward(video_batch):
    model = tiny_video(position_embedding="rope", hidden_dim=36)
    ref = to_numpy(model(video_batch))
    mixed = tiny_video(position_embedding="rope", hidden_dim=36, dtype="mixed_bfloat16")
    mixed.set_weights(model.get_weights())
    out = mixed(video_batch)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    assert all(w.dtype == "float32" for w in mixed.weights)
    out = to_numpy(keras.ops.cast(out, "float32"))
    assert np.isfinite(out).all()
    assert np.abs(out - ref).max() < 0.1 * np.abs(ref).max()


# ------------------------------------------------------------------ bad input


def test_bad_inputs_raise_value_errors(image_batch, video_batch):
    image_model, video_model = tiny(), tiny_video()
    with pytest.raises(ValueError, match=r"rank 4.*\(2, 4, 16, 16, 3\)"):
        image_model(video_batch)
    with pytest.raises(ValueError, match="repeat them along a time axis"):
        video_model(image_batch)
    with pytest.raises(ValueError, match="height 18 is not divisible by patch_size=4"):
        image_model(np.zeros((1, 18, 16, 3), "float32"))
    with pytest.raises(ValueError, match="frame count 3"):
        video_model(np.zeros((1, 3, 16, 16, 3), "float32"))
    with pytest.raises(ValueError, match="Expected 3 channels"):
        image_model(np.zeros((1, 16, 16, 1), "float32"))
    with pytest.raises(ValueError, match="index 16, outside \\[0, 16\\)"):
        image_model(image_batch, token_indices=np.array([[0, 16], [1, 2]]))
    with pytest.raises(ValueError, match="index -1"):
        image_model(image_batch, token_indices=np.array([-1, 2]))
    with pytest.raises(ValueError, match="integers"):
        image_model(image_batch, token_indices=np.array([0.5, 2.0]))


def test_bad_configs_raise_value_errors():
    with pytest.raises(ValueError, match="image_size \\(30, 30\\)"):
        tiny(image_size=30)
    with pytest.raises(ValueError, match="num_heads=5"):
        tiny(num_heads=5)
    with pytest.raises(ValueError, match="num_frames=3"):
        tiny(num_frames=3)
    with pytest.raises(ValueError, match="'learned'"):
        tiny(position_embedding="learned")


# ------------------------------------------------------------------ training and backends


def test_fit_updates_encoder_weights():
    """The encoder trains with model.fit on this backend (compiled step)."""
    encoder = tiny(depth=1, position_embedding="rope")
    inputs = keras.Input((16, 16, 3))
    tokens = encoder(inputs, token_indices=np.array([0, 5, 10, 15]))
    logits = keras.layers.Dense(3)(keras.ops.mean(tokens, axis=1))
    classifier = keras.Model(inputs, logits)
    classifier.compile(
        optimizer=keras.optimizers.AdamW(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = np.random.RandomState(0).rand(16, 16, 16, 3).astype("float32")
    y = np.arange(16) % 3
    before = to_numpy(encoder.blocks[0].attn.qkv.kernel).copy()
    history = classifier.fit(x, y, batch_size=8, epochs=3, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert np.abs(to_numpy(encoder.blocks[0].attn.qkv.kernel) - before).max() > 0


NEXT_BACKEND = {"jax": "torch", "torch": "tensorflow", "tensorflow": "jax"}

_CROSS_BACKEND_SCRIPT = """
import sys, numpy as np, keras
from keras_jepa.models import VisionTransformer
root = sys.argv[1]
model = VisionTransformer.from_preset(root + "/{name}")
x = np.load(root + "/x_{name}.npy")
idx = np.load(root + "/idx_{name}.npy")
np.save(root + "/out_{name}_full.npy", keras.ops.convert_to_numpy(model(x)))
np.save(root + "/out_{name}_idx.npy", keras.ops.convert_to_numpy(model(x, token_indices=idx)))
print(keras.backend.backend())
"""


def test_weights_saved_here_give_same_outputs_on_another_backend(tmp_path, backend):
    """Save under this backend, load under the next one in a subprocess, compare."""
    other = NEXT_BACKEND[backend]
    rng = np.random.RandomState(3)
    cases = {
        "image": (tiny(sincos_order="wh"), rng.rand(2, 16, 16, 3), np.array([[0, 5, 9], [1, 2, 15]])),
        "video": (
            tiny_video(position_embedding="rope", hidden_dim=36, depth_scaled_init=True),
            rng.rand(2, 4, 16, 16, 3),
            np.array([[0, 7, 31], [4, 5, 6]]),
        ),
    }
    script = ""
    expected = {}
    for name, (model, x, idx) in cases.items():
        x = x.astype("float32")
        model.save_to_preset(str(tmp_path / name))
        np.save(tmp_path / f"x_{name}.npy", x)
        np.save(tmp_path / f"idx_{name}.npy", idx)
        expected[name] = (to_numpy(model(x)), to_numpy(model(x, token_indices=idx)))
        script += _CROSS_BACKEND_SCRIPT.format(name=name)
    env = dict(os.environ, KERAS_BACKEND=other, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1] == other
    for name, (full, gathered) in expected.items():
        assert np.abs(np.load(tmp_path / f"out_{name}_full.npy") - full).max() <= 1e-4
        assert np.abs(np.load(tmp_path / f"out_{name}_idx.npy") - gathered).max() <= 1e-4
