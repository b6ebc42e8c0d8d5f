"""Layers: closed-form position tables, resampling, RoPE, token gathering, blocks."""

import math

import numpy as np
import pytest
from keras import ops

from keras_jepa import layers
from keras_jepa.layers import position_embedding as pe
from keras_jepa.layers import rotary_embedding as rope
from tests.numpy_reference import position_table, rope_rotate, to_numpy
from tests.test_case import run_output_shape_test, run_serialization_test


# ------------------------------------------------------------------ sin-cos tables


def test_sincos_1d_closed_form():
    table = layers.sincos_1d(4, [0, 1, 2])
    # omega = [1, 1/100]; columns [sin(p), sin(p/100), cos(p), cos(p/100)]
    expected = np.array(
        [[math.sin(p), math.sin(p / 100), math.cos(p), math.cos(p / 100)] for p in (0, 1, 2)]
    )
    np.testing.assert_allclose(table, expected, atol=1e-12)


def test_sincos_1d_rejects_odd_width():
    with pytest.raises(ValueError, match="dim=5"):
        layers.sincos_1d(5, [0])


@pytest.mark.parametrize("order", ["hw", "wh"])
def test_sincos_2d_matches_loop(order):
    np.testing.assert_allclose(
        layers.sincos_2d(16, (3, 5), order=order),
        position_table((3, 5), 16, order=order),
        atol=1e-12,
    )


def test_sincos_2d_orders_are_half_swaps():
    hw = layers.sincos_2d(32, 4, order="hw")
    wh = layers.sincos_2d(32, 4, order="wh")
    np.testing.assert_array_equal(hw[:, :16], wh[:, 16:])
    np.testing.assert_array_equal(hw[:, 16:], wh[:, :16])
    # token 1 is (row 0, col 1): in I-JEPA ("wh") the first half encodes the column
    np.testing.assert_allclose(wh[1, :16], layers.sincos_1d(16, [1])[0])
    np.testing.assert_allclose(wh[1, 16:], layers.sincos_1d(16, [0])[0])


@pytest.mark.parametrize("uniform_power", [False, True])
def test_sincos_3d_matches_loop(uniform_power):
    np.testing.assert_allclose(
        layers.sincos_3d(24, (2, 3, 2), uniform_power=uniform_power),
        position_table((2, 3, 2), 24, uniform_power=uniform_power),
        atol=1e-12,
    )


def test_sincos_3d_uniform_power_split():
    # ViT-L: ceil(1024/6)*2 = 342 channels per axis, truncated to 1024.
    table = layers.sincos_3d(1024, (2, 2, 2), uniform_power=True)
    assert table.shape == (8, 1024)
    # The width channels start at 684 and only 340 of their 342 survive.
    np.testing.assert_allclose(table[3, 684:], layers.sincos_1d(342, [1])[0][:340])


# ------------------------------------------------------------------ interpolation


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("sizes", [(4, 7), (7, 4), (14, 16), (3, 3)])
def test_interpolation_matrix_matches_torch(mode, sizes):
    torch = pytest.importorskip("torch")
    n_in, n_out = sizes
    x = np.random.RandomState(0).randn(n_in)
    t = torch.tensor(x)[None, None]
    if mode == "linear":
        y = torch.nn.functional.interpolate(t, size=n_out, mode="linear", align_corners=False)
    else:
        y = torch.nn.functional.interpolate(
            t[..., None].expand(1, 1, n_in, 1), size=(n_out, 1), mode="bicubic",
            align_corners=False,
        )
    expected = y.numpy().reshape(-1)
    np.testing.assert_allclose(layers.interpolation_matrix(n_in, n_out, mode) @ x, expected, atol=1e-10)


def test_position_embedding_resampling_matches_torch_trilinear():
    torch = pytest.importorskip("torch")
    layer = layers.SinCosPositionEmbedding(grid_size=(4, 3, 3), uniform_power=True)
    layer.build((None, 36, 12))
    out = to_numpy(layer.resampled_table((2, 5, 4)))
    table = to_numpy(layer.table).reshape(1, 4, 3, 3, 12)
    ref = torch.nn.functional.interpolate(
        torch.tensor(table).permute(0, 4, 1, 2, 3), size=(2, 5, 4), mode="trilinear",
        align_corners=False,
    ).permute(0, 2, 3, 4, 1).reshape(1, -1, 12).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_position_embedding_fewer_frames_keeps_first_rows():
    layer = layers.SinCosPositionEmbedding(grid_size=(4, 2, 2))
    layer.build((None, 16, 8))
    out = to_numpy(layer.resampled_table((2, 2, 2)))
    np.testing.assert_array_equal(out, to_numpy(layer.table)[:, :8])


def test_position_embedding_adds_table_and_serializes():
    layer = layers.SinCosPositionEmbedding(grid_size=(2, 3), order="wh")
    x = np.ones((2, 6, 8), "float32")
    y = to_numpy(layer(x))
    np.testing.assert_allclose(y - 1.0, np.broadcast_to(layers.sincos_2d(8, (2, 3), "wh"), (2, 6, 8)), atol=1e-6)
    run_serialization_test(layer, call=lambda l: l(x), atol=1e-6)


def test_position_embedding_bad_grid():
    with pytest.raises(ValueError, match="grid_size"):
        layers.SinCosPositionEmbedding(grid_size=(2,))


# ------------------------------------------------------------------ RoPE


@pytest.mark.parametrize("tiled", [True, False])
def test_rope_matches_direct_computation(tiled):
    grid = (2, 3, 4)
    head_dim = 20  # segments of 6 channels, 2 channels unrotated
    rng = np.random.RandomState(0)
    ids = np.array([[0, 5, 13, 23], [7, 8, 9, 22]])
    x = rng.randn(2, 4, 3, head_dim).astype("float32")
    cos, sin = rope.rope_tables(ids, grid, head_dim, tiled=tiled)
    out = to_numpy(rope.apply_rope(ops.convert_to_tensor(x), cos, sin))
    seg = rope.rope_segment_dim(head_dim)
    assert seg == 6
    expected = x.astype("float64").copy()
    for b in range(2):
        frame, rest = ids[b] // 12, ids[b] % 12
        row, col = rest // 4, rest % 4
        for h in range(3):
            for s, pos in enumerate((frame, row, col)):
                sl = slice(s * seg, (s + 1) * seg)
                expected[b, :, h, sl] = rope_rotate(x[b, :, h, sl].astype("float64"), pos, seg, tiled)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    # unrotated tail untouched
    np.testing.assert_allclose(out[..., 18:], x[..., 18:], atol=0)


def test_rope_tiled_differs_from_interleaved():
    ids = np.arange(24)[None]
    x = ops.ones((1, 24, 1, 64))
    a = to_numpy(rope.apply_rope(x, *rope.rope_tables(ids, (2, 3, 4), 64, tiled=True)))
    b = to_numpy(rope.apply_rope(x, *rope.rope_tables(ids, (2, 3, 4), 64, tiled=False)))
    assert np.abs(a - b).max() > 0.1


def test_rope_segment_sizes():
    # V-JEPA 2: 20 for head_dim 64 (L, g), 26 for 80 (H), 10 for 32 (predictor)
    assert [rope.rope_segment_dim(d) for d in (64, 80, 32)] == [20, 26, 10]


def test_token_coordinates():
    f, r, c = rope.token_coordinates(np.array([0, 13, 23]), (2, 3, 4))
    assert to_numpy(f).tolist() == [0, 1, 1]
    assert to_numpy(r).tolist() == [0, 0, 2]
    assert to_numpy(c).tolist() == [0, 1, 3]


# ------------------------------------------------------------------ token ops


def test_gather_tokens_and_apply_masks():
    x = np.arange(2 * 5 * 3, dtype="float32").reshape(2, 5, 3)
    idx = np.array([[4, 0], [1, 1]])
    out = to_numpy(layers.gather_tokens(x, idx))
    np.testing.assert_array_equal(out, np.stack([x[0, [4, 0]], x[1, [1, 1]]]))
    shared = to_numpy(layers.gather_tokens(x, np.array([2, 3])))
    np.testing.assert_array_equal(shared, x[:, [2, 3]])
    both = to_numpy(layers.apply_masks(x, [idx, np.array([[0, 1], [2, 3]])]))
    assert both.shape == (4, 2, 3)
    np.testing.assert_array_equal(both[2:], np.stack([x[0, [0, 1]], x[1, [2, 3]]]))


def test_repeat_interleave_batch():
    x = np.arange(4, dtype="float32").reshape(4, 1)  # two chunks of batch 2
    out = to_numpy(layers.repeat_interleave_batch(x, batch_size=2, repeat=2)).ravel()
    assert out.tolist() == [0, 1, 0, 1, 2, 3, 2, 3]


# ------------------------------------------------------------------ embeddings and blocks


def test_patch_embedding_token_order_image_and_video():
    # Each patch holds a constant equal to its row-major index; a kernel that averages
    # the patch recovers that index in channel 0.
    layer = layers.PatchEmbedding(2, patch_size=2)
    img = np.kron(np.arange(6).reshape(2, 3), np.ones((2, 2)))[None, :, :, None]
    img = np.repeat(img, 3, axis=-1).astype("float32")
    layer.build(img.shape)
    layer.proj.kernel.assign(np.full((2, 2, 3, 2), 1 / 12, "float32"))
    np.testing.assert_allclose(to_numpy(layer(img))[0, :, 0], np.arange(6), atol=1e-5)

    video_layer = layers.PatchEmbedding(2, patch_size=2, tubelet_size=2)
    frames = np.stack([img[0] + 100 * (t // 2) for t in range(4)])[None]
    video_layer.build(frames.shape)
    video_layer.proj.kernel.assign(np.full((2, 2, 2, 3, 2), 1 / 24, "float32"))
    out = to_numpy(video_layer(frames))[0, :, 0]
    np.testing.assert_allclose(out, np.concatenate([np.arange(6), 100 + np.arange(6)]), atol=1e-4)


def test_patch_embedding_matmul_equals_the_convolution():
    # With static sizes the layer runs a matmul over flattened patches; it must give the
    # convolution's result (random kernel and bias), also where "valid" drops a remainder.
    rng = np.random.RandomState(0)
    for shape, tubelet in (((2, 17, 18, 3), None), ((2, 5, 18, 16, 3), 2)):
        layer = layers.PatchEmbedding(6, patch_size=4, tubelet_size=tubelet)
        x = rng.rand(*shape).astype("float32")
        layer.build(x.shape)
        layer.proj.bias.assign(rng.rand(6).astype("float32"))
        conv = to_numpy(layer.proj(x))
        np.testing.assert_allclose(to_numpy(layer(x)), conv.reshape(2, -1, 6), atol=1e-5)


def test_drop_path():
    layer = layers.DropPath(0.5, seed=1)
    x = np.ones((64, 3, 2), "float32")
    np.testing.assert_array_equal(to_numpy(layer(x)), x)
    y = to_numpy(layer(x, training=True))
    per_sample = y[:, 0, 0]
    assert set(np.unique(per_sample)) <= {0.0, 2.0}
    assert 10 < (per_sample == 0).sum() < 54
    assert np.all(y == y[:, :1, :1])


def test_transformer_block_output_dim_and_config():
    block = layers.TransformerBlock(num_heads=2, mlp_ratio=2.0, output_dim=12)
    x = np.random.rand(2, 5, 8).astype("float32")
    run_output_shape_test(block, x, (2, 5, 12))
    run_serialization_test(block, call=lambda b: b(x), atol=1e-6)


def test_swiglu_hidden_width():
    # V-JEPA 2 rule: 2/3 of the nominal width rounded up to a multiple of 8.
    assert layers.mlp.swiglu_hidden_dim(4096) == 2736
    assert layers.mlp.swiglu_hidden_dim(4096, wide=False) == 4096
    mlp = layers.SwiGLU(hidden_dim=48)
    mlp.build((None, 4, 16))
    assert tuple(mlp.fc1.kernel.shape) == (16, 32)
    assert tuple(mlp.fc3.kernel.shape) == (32, 16)


def test_block_init_matches_official():
    block = layers.TransformerBlock(num_heads=4, residual_init_scale=1 / math.sqrt(2 * 3))
    block.build((None, 4, 256))
    qkv = to_numpy(block.attn.qkv.kernel)
    proj = to_numpy(block.attn.proj.kernel)
    fc2 = to_numpy(block.mlp.fc2.kernel)
    assert abs(qkv.std() - 0.02) < 0.0005
    assert abs(proj.std() - 0.02 / math.sqrt(6)) < 0.0003
    assert abs(fc2.std() - 0.02 / math.sqrt(6)) < 0.0003
    # untruncated normal (Keras's TruncatedNormal would cut at 2 std = 0.04)
    assert np.abs(qkv).max() > 0.045
    assert np.all(to_numpy(block.attn.qkv.bias) == 0)
    assert np.all(to_numpy(block.norm1.gamma) == 1) and np.all(to_numpy(block.norm1.beta) == 0)


# (layer, input shape, output shape): the building blocks, on tokens (2, 5, 8) or images.
LAYER_CASES = [
    (lambda: layers.MultiHeadSelfAttention(num_heads=2), (2, 5, 8), (2, 5, 8)),
    (lambda: layers.MLP(hidden_dim=16), (2, 5, 8), (2, 5, 8)),
    (lambda: layers.SwiGLU(hidden_dim=16, wide=False), (2, 5, 8), (2, 5, 8)),
    (lambda: layers.TransformerBlock(num_heads=2, mlp_type="swiglu", drop_path_rate=0.1),
     (2, 5, 8), (2, 5, 8)),
    (lambda: layers.PatchEmbedding(8, patch_size=4), (2, 8, 12, 3), (2, 6, 8)),
    (lambda: layers.DropPath(0.2), (2, 5, 8), (2, 5, 8)),
]
LAYER_IDS = ["MultiHeadSelfAttention", "MLP", "SwiGLU", "TransformerBlock", "PatchEmbedding",
             "DropPath"]


@pytest.mark.parametrize("make,input_shape,output_shape", LAYER_CASES, ids=LAYER_IDS)
def test_layer_serialization_round_trip(make, input_shape, output_shape):
    # get_config/from_config and Keras serialization keep the config; with the weights
    # copied, the clone computes the same outputs (inference: DropPath is the identity).
    x = np.random.RandomState(0).rand(*input_shape).astype("float32")
    run_serialization_test(make(), call=lambda layer: layer(x), atol=1e-6)


@pytest.mark.parametrize("make,input_shape,output_shape", LAYER_CASES, ids=LAYER_IDS)
def test_layer_output_shapes(make, input_shape, output_shape):
    x = np.random.RandomState(0).rand(*input_shape).astype("float32")
    run_output_shape_test(make(), x, output_shape)
