"""VistaLLM building blocks: mask <-> sequence (numpy), the instruction-guided tokenizer
and the small vision-language model.

The numpy tests do not depend on the backend (they run in every backend's process and
cost milliseconds); the Keras tests run on every backend.
"""

import keras
import numpy as np
import pytest

from keras_jepa.models.vistallm import sequences as seq
from keras_jepa.models.vistallm.model import VistaLLM, evaluate_tasks, sequence_loss
from keras_jepa.models.vistallm.scenes import (
    make_scenes,
    random_shape_mask,
    sampling_fidelity,
    scene_examples,
    scene_vocabulary,
)
from keras_jepa.models.vistallm.tokenizer import CrossAttention, InstructionGuidedTokenizer
from tests.test_case import run_serialization_test

# ------------------------------------------------------------------- sampling (numpy)


def _rectangle_mask(size=12, box=(2, 3, 9, 8)):
    mask = np.zeros((size, size), bool)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = True
    return mask


def test_contour_of_rectangle_is_its_pixel_boundary():
    contour = seq.mask_to_contours(_rectangle_mask())[0]
    # one vertex per unit step, starting at the top-left corner, clockwise on screen
    assert len(contour) == 2 * (7 + 5)
    assert contour[0].tolist() == [2.0, 3.0]
    assert contour[1].tolist() == [3.0, 3.0]
    assert seq.polygon_area(contour) == 35.0


def test_contours_fill_back_to_the_mask_without_holes():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    for _ in range(10):
        mask = rng.random((16, 16)) < 0.55
        filled = seq.polygons_to_mask(seq.mask_to_contours(mask), mask.shape)
        # 4-connected foreground: holes are 8-connected background regions
        expected = ndimage.binary_fill_holes(mask, structure=np.ones((3, 3)))
        np.testing.assert_array_equal(filled, expected)


def test_sharpness_is_distance_to_the_neighbour_chord():
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 10, (9, 2))
    scores = seq.sharpness_scores(points, offset=2)
    for i in range(2, 7):
        a, b, p = points[i - 2], points[i + 2], points[i]
        # closed form: twice the triangle area over the base length
        area2 = abs((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]))
        assert np.isclose(scores[i], area2 / np.linalg.norm(b - a))
    assert scores[:2].tolist() == [180.0, 180.0] and scores[-2:].tolist() == [180.0, 180.0]


def test_pruning_keeps_endpoints_order_and_length():
    rng = np.random.default_rng(2)
    points = rng.uniform(0, 50, (40, 2))
    out = seq.prune_points(points, 16)
    assert out.shape == (16, 2)
    np.testing.assert_array_equal(out[0], points[0])
    np.testing.assert_array_equal(out[-1], points[-1])
    rows = [int(np.flatnonzero((points == row).all(1))[0]) for row in out]
    assert rows == sorted(rows)  # order preserved
    # the kept points are the 16 highest scores
    scores = seq.sharpness_scores(points)
    assert set(rows) == set(np.argsort(-scores, kind="stable")[:16].tolist())


def test_pruning_pads_short_contours_with_minus_one():
    out = seq.adaptive_sample(np.array([[0, 0], [4, 0], [4, 4]], float), num_points=6)
    assert out.shape == (6, 2)
    assert out[:3].tolist() == [[0, 0], [4, 0], [4, 4]]
    assert (out[3:] == -1).all()
    assert seq.strip_padding(out).shape == (3, 2)


def test_square_corners_survive_pruning():
    contour = seq.mask_to_contours(_rectangle_mask(box=(2, 2, 10, 10)))[0]
    assert len(contour) == 32 <= 40  # no pre-sampling stride
    kept = seq.adaptive_sample(contour, num_points=5).tolist()
    for corner in ([2, 2], [10, 2], [10, 10], [2, 10]):
        assert corner in kept
    # the reference scores the closed contour as an open chain: its last point is kept
    assert kept[-1] == contour[-1].tolist()
    closed = seq.adaptive_sample(contour, num_points=4, closed=True).tolist()
    assert closed == [[2, 2], [10, 2], [10, 10], [2, 10]]


def _prune_brute_force(points, n, closed):
    """Removes the lowest-scoring point, recomputing every score each time."""
    keep = list(range(len(points)))
    while len(keep) > n:
        scores = seq.sharpness_scores(points[keep], closed=closed)
        del keep[int(np.argmin(scores))]
    return points[keep]


def test_rescored_pruning_matches_brute_force_and_keeps_square_corners():
    rng = np.random.default_rng(5)
    for closed in (False, True):
        points = rng.uniform(0, 50, (30, 2))
        out = seq.prune_points(points, 9, closed=closed, rescore=True)
        np.testing.assert_allclose(out, _prune_brute_force(points, 9, closed))
    contour = seq.mask_to_contours(_rectangle_mask(box=(2, 2, 10, 10)))[0]
    kept = seq.sample_mask(_rectangle_mask(box=(2, 2, 10, 10)), 4, "adaptive_refined")[0]
    assert sorted(kept.tolist()) == sorted([[2, 2], [10, 2], [10, 10], [2, 10]])
    assert len(contour) == 32


def test_refined_adaptive_beats_uniform_where_the_reference_does_not():
    rng = np.random.default_rng(0)
    masks = [random_shape_mask("star", 64, rng) for _ in range(6)]
    refined = sampling_fidelity(masks, 8, "adaptive_refined")
    uniform = sampling_fidelity(masks, 8, "uniform")
    assert refined > uniform + 0.01, (refined, uniform)
    with pytest.raises(ValueError, match="adaptive_refined"):
        seq.sample_mask(masks[0], 8, "sharpest")


def test_presample_stride_is_ceil():
    contour = np.stack([np.arange(101), np.zeros(101)], 1)
    pre = seq.uniform_presample(contour, 40)
    assert len(pre) == 34 and pre[1, 0] == 3  # stride ceil(101 / 40) = 3


def test_bins_round_trip_within_a_thousandth():
    values = np.random.default_rng(3).uniform(0, 1, 1000)
    bins = seq.quantize(values)
    assert bins.min() >= 0 and bins.max() <= 1000
    assert np.abs(seq.dequantize(bins) - values).max() <= 0.5 / 1000 + 1e-12
    tokens = seq.coordinates_to_tokens(values[:4] * 64, (64, 48))
    assert np.abs(seq.tokens_to_coordinates(tokens, (64, 48)) - values[:4] * 64).max() < 64e-3


def test_box_and_point_tokens():
    assert seq.box_to_tokens([0, 8, 16, 12], (16, 16)) == [
        "<bin_0>", "<bin_500>", "<bin_1000>", "<bin_750>"
    ]
    assert seq.point_to_tokens([4, 2], (8, 16)) == ["<bin_250>", "<bin_125>"]
    with pytest.raises(ValueError, match="4 numbers"):
        seq.box_to_tokens([1, 2, 3], (8, 8))


def test_decoder_rasterises_a_known_polygon_exactly():
    # triangle x/8 + y/6 < 1: no pixel centre lies on its hypotenuse
    mask = seq.polygons_to_mask([np.array([[0, 0], [8, 0], [0, 6]], float)], (7, 9))
    r, c = np.mgrid[0:7, 0:9]
    expected = (c + 0.5) / 8 + (r + 0.5) / 6 < 1
    np.testing.assert_array_equal(mask, expected)
    # through tokens: the full contour of a mask decodes back to the mask
    rect = _rectangle_mask()
    tokens = seq.polygons_to_tokens(seq.mask_to_contours(rect), rect.shape)
    np.testing.assert_array_equal(seq.tokens_to_mask(tokens, rect.shape), rect)


def test_multi_polygon_sequences():
    mask = _rectangle_mask(16, (1, 1, 5, 5)) | _rectangle_mask(16, (8, 9, 15, 14))
    tokens = seq.mask_to_tokens(mask, num_points=5)
    assert tokens[0] == "<m_st>" and tokens[-1] == "<m_ed>"
    assert tokens.count("<m_sep>") == 1
    assert len(tokens) == 2 + 1 + 2 * 2 * 5
    np.testing.assert_array_equal(seq.tokens_to_mask(tokens, mask.shape), mask)
    polygons = seq.tokens_to_polygons(tokens, mask.shape)
    assert [len(p) for p in polygons] == [5, 5]
    # the larger component comes first
    assert polygons[0][:, 0].min() == 8


def test_iou_and_ciou_closed_forms():
    a, b = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    a[:2], b[1:3] = True, True
    assert seq.mask_iou(a, b) == pytest.approx(4 / 12)
    c, d = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    c[0, 0], d[0, :2] = True, True
    assert seq.cumulative_iou([a, c], [b, d]) == pytest.approx((4 + 1) / (12 + 2))
    assert seq.box_iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    with pytest.raises(ValueError, match="shapes differ"):
        seq.mask_iou(a, np.zeros((3, 3)))


def test_adaptive_beats_uniform_on_sharp_corners():
    rng = np.random.default_rng(0)
    for kind in ("rectangle", "triangle"):
        masks = [random_shape_mask(kind, 64, rng) for _ in range(8)]
        adaptive = sampling_fidelity(masks, 8, "adaptive")
        uniform = sampling_fidelity(masks, 8, "uniform")
        assert adaptive > uniform + 0.01, (kind, adaptive, uniform)


def test_bad_inputs_name_the_value():
    with pytest.raises(ValueError, match="num_points"):
        seq.prune_points(np.zeros((4, 2)), 0)
    with pytest.raises(ValueError, match=r"\(L, 2\)"):
        seq.sharpness_scores(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="method"):
        seq.sample_mask(np.ones((4, 4)), 4, method="random")
    with pytest.raises(ValueError, match="2-D"):
        seq.mask_to_contours(np.ones((2, 2, 2)))


# ---------------------------------------------------------------- tokenizer (Keras)


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("output_projection", [True, False])
def test_cross_attention_matches_numpy(output_projection):
    # VistaLLM's tokenizer projects the heads' output; the attentive probes do not.
    layer = CrossAttention(num_heads=2, output_projection=output_projection)
    rng = np.random.default_rng(0)
    q_in = rng.normal(size=(2, 3, 8)).astype("float32")
    ctx = rng.normal(size=(2, 5, 6)).astype("float32")
    out = keras.ops.convert_to_numpy(layer(q_in, ctx))
    w = {v.path.split("/")[-2] + "/" + v.name: keras.ops.convert_to_numpy(v)
         for v in layer.weights}
    q = (q_in @ w["q/kernel"] + w["q/bias"]).reshape(2, 3, 2, 4)
    kv = (ctx @ w["kv/kernel"] + w["kv/bias"]).reshape(2, 5, 2, 2, 4)
    k, v = kv[:, :, 0], kv[:, :, 1]
    att = _softmax(np.einsum("bmhd,bnhd->bhmn", q, k) / 2.0)
    ref = np.einsum("bhmn,bnhd->bmhd", att, v).reshape(2, 3, 8)
    if output_projection:
        ref = ref @ w["proj/kernel"] + w["proj/bias"]
    else:
        assert not any(name.startswith("proj/") for name in w)
    np.testing.assert_allclose(out, ref, atol=1e-5)


@pytest.fixture(scope="module")
def tokenizer_layer():
    layer = InstructionGuidedTokenizer(num_queries=3, num_heads=2, output_dim=12)
    layer.build((None, 6, 8), (None, 4, 10))
    # make the queries and projections large enough for the instruction to matter
    rng = np.random.default_rng(0)
    for v in layer.trainable_weights:
        if "kernel" in v.path or "queries" in v.path:
            v.assign(rng.normal(0, 0.5, v.shape).astype("float32"))
    return layer


def test_tokenizer_shapes_single_and_multi_image(tokenizer_layer):
    rng = np.random.default_rng(1)
    images = rng.normal(size=(2, 3, 6, 8)).astype("float32")
    text = rng.normal(size=(2, 4, 10)).astype("float32")
    multi = keras.ops.convert_to_numpy(tokenizer_layer(images, text))
    assert multi.shape == (2, 3, 3, 12)
    # each image is tokenised on its own, with the same instruction: the same as six
    # single-image examples (same internal shapes, so eager JAX reuses its compiled ops)
    single = tokenizer_layer(images.reshape(6, 6, 8), np.repeat(text, 3, axis=0))
    single = keras.ops.convert_to_numpy(single).reshape(2, 3, 3, 12)
    np.testing.assert_allclose(multi, single, atol=1e-5)
    assert not np.allclose(multi[:, 0], multi[:, 1], atol=1e-3)
    assert tokenizer_layer.compute_output_shape((2, 3, 6, 8), (2, 4, 10)) == (2, 3, 3, 12)


def test_tokenizer_depends_on_the_instruction_but_not_its_padding(tokenizer_layer):
    rng = np.random.default_rng(2)
    images = rng.normal(size=(6, 6, 8)).astype("float32")
    text = rng.normal(size=(6, 4, 10)).astype("float32")
    other = rng.normal(size=(6, 4, 10)).astype("float32")
    mask = np.array([[True, True, False, False]] * 6)
    base = keras.ops.convert_to_numpy(tokenizer_layer(images, text, mask))
    changed = keras.ops.convert_to_numpy(tokenizer_layer(images, other, mask))
    assert np.abs(base - changed).mean() > 1e-2
    padded = text.copy()
    padded[:, 2:] = other[:, 2:]
    same = keras.ops.convert_to_numpy(tokenizer_layer(images, padded, mask))
    np.testing.assert_allclose(base, same, atol=1e-5)


def test_tokenizer_config_round_trip():
    layer = InstructionGuidedTokenizer(num_queries=3, num_heads=2, depth=2, output_dim=12)
    rng = np.random.default_rng(3)
    images = rng.normal(size=(2, 6, 8)).astype("float32")
    text = rng.normal(size=(2, 4, 10)).astype("float32")
    mask = np.array([[True, True, True, False]] * 2)
    run_serialization_test(layer, call=lambda tok: tok(images, text, mask), atol=1e-6)
    config = layer.get_config()
    assert config["num_queries"] == 3 and config["depth"] == 2 and config["output_dim"] == 12
    with pytest.raises(ValueError, match="num_queries"):
        InstructionGuidedTokenizer(num_queries=0)


# -------------------------------------------------------------------- model (Keras)


@pytest.fixture(scope="module")
def scene_data():
    vocab = scene_vocabulary()
    scenes = make_scenes(6, image_size=16, seed=0)
    inputs, targets, meta = scene_examples(scenes, vocab, tasks=("box", "mask"), num_points=8)
    return vocab, inputs, targets, meta


def test_scene_examples_are_teacher_forcing_pairs(scene_data):
    vocab, inputs, targets, meta = scene_data
    assert inputs["tokens"].shape == targets.shape == (len(meta), 19)
    np.testing.assert_array_equal(inputs["tokens"][:, 1:], targets[:, :-1])
    assert (inputs["tokens"][:, 0] == vocab.bos_id).all()
    ious = []
    for answer, info in zip(targets, meta):
        tokens = vocab.decode(answer)
        if info["task"] == "mask":
            assert tokens[0] == "<m_st>" and tokens[-1] == "<m_ed>" and len(tokens) <= 18
            ious.append(seq.mask_iou(seq.tokens_to_mask(tokens, (16, 16)), info["mask"]))
        else:
            box = seq.tokens_to_coordinates(tokens, (16, 16))
            np.testing.assert_allclose(box, info["box"], atol=16e-3)
    assert np.mean(ious) > 0.6, ious  # 8 points on 16-pixel shapes


def test_model_trains_and_decodes(scene_data):
    vocab, inputs, targets, meta = scene_data
    model = VistaLLM(
        len(vocab), image_size=16, patch_size=8, hidden_dim=32, encoder_depth=1,
        decoder_depth=1, num_heads=2, num_queries=2, instruction_length=3,
        target_length=targets.shape[1],
    )
    model.compile(keras.optimizers.Adam(5e-3), sequence_loss())
    # one full batch per epoch: the first logged loss is the untrained model's
    losses = model.fit(inputs, targets, batch_size=len(targets), epochs=8, verbose=0)
    losses = losses.history["loss"]
    assert np.isclose(losses[0], np.log(len(vocab)), atol=0.5)  # untrained: ~uniform
    assert losses[-1] < losses[0] - 1.0 and losses[-1] == min(losses), losses
    generated = model.generate(inputs, vocab, max_length=3)
    assert generated.shape == targets.shape
    assert (generated[:, 3:] == 0).all()
    scores = evaluate_tasks(generated, meta, vocab, (16, 16))
    assert set(scores) >= {"mask_miou", "baseline_miou", "box_miou"}
    run_serialization_test(model)
    config = model.get_config()
    # the tokenizer's init scales with the width unless given
    assert model.image_tokenizer.init_std == 32 ** -0.5
    config["tokenizer_init_std"] = 0.02
    assert VistaLLM.from_config(config).image_tokenizer.init_std == 0.02


def test_soft_bin_loss_matches_cross_entropy_in_the_sharp_limit():
    vocab = seq.Vocabulary(["a"], num_bins=11)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, len(vocab))).astype("float32")
    targets = np.array([[vocab.first_bin_id + 4, 7, 0], [vocab.first_bin_id, 2, 2]])
    soft = keras.ops.convert_to_numpy(sequence_loss(vocab, bin_sigma=1e-3)(targets, logits))
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    token = -np.take_along_axis(logp, targets[..., None], -1)[..., 0]
    mask = targets != 0
    np.testing.assert_allclose(soft, (token * mask).sum(1) / mask.sum(1), rtol=1e-5)
    # a wider Gaussian spreads the target: a near miss now costs less than a far one
    near = np.zeros((1, 1, len(vocab)), "float32")
    near[..., vocab.first_bin_id + 5] = 5.0
    far = np.zeros_like(near)
    far[..., vocab.first_bin_id + 9] = 5.0
    target = np.array([[vocab.first_bin_id + 4]])
    loss = sequence_loss(vocab, bin_sigma=1.5)
    near_loss = keras.ops.convert_to_numpy(loss(target, near))
    far_loss = keras.ops.convert_to_numpy(loss(target, far))
    assert near_loss[0] < far_loss[0]
    with pytest.raises(ValueError, match="vocabulary"):
        sequence_loss(None, bin_sigma=1.0)
