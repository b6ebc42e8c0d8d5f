"""Frozen-backbone probes: official probe parity, loading errors, protocols, k-NN, features."""

import math
import os

import keras
import numpy as np
import pytest

from keras_jepa.checkpoints.probes import (
    attentive_probe_entries,
    export_official_probe,
    load_official_probe,
    load_official_probe_grid,
)
from keras_jepa.evaluation.attentive_probe import AttentiveClassifier
from keras_jepa.evaluation.features import (
    FeatureExtractor,
    extract_features,
    images_as_video,
    segment_tokens,
)
from keras_jepa.evaluation.probes import (
    PROBE_GRIDS,
    LinearClassifier,
    ProbeGrid,
    ProbeGridAdamW,
    ProbeGridCrossEntropy,
    aggregate_views,
    evaluate_probe,
    knn_classify,
    probe_grid,
    probe_grid_optimizer,
    topk_accuracy,
    train_probe,
    train_probe_grid,
)
from keras_jepa.models import VisionTransformer
from keras_jepa.backend.seeding import seed_everything
from tests.official_reference import (
    PROBE_CLASSES as CLASSES,
    PROBE_DIM as D,
    PROBE_HEADS as HEADS,
    official_probe_forward,
    official_probe_state_dict,
)
from tests.test_case import run_serialization_test

TOKENS = 10


@pytest.mark.parametrize("variant,depth", [("vjepa", 1), ("vjepa", 2), ("vjepa2", 4)])
def test_official_probe_loads_and_matches_numpy(variant, depth):
    rng = np.random.default_rng(depth)
    state = official_probe_state_dict(variant, depth, rng)
    probe = AttentiveClassifier(CLASSES, D, num_heads=HEADS, variant=variant, depth=depth)
    report = load_official_probe(probe, state)
    stripped = {k[len("module."):] for k in state}
    # Every key accounted for: loaded, or dropped on purpose (V-JEPA 1's unused proj).
    assert set(report.loaded) | set(report.dropped) == stripped
    assert report.missing == [] and report.unexpected == []
    expected_dropped = (["pooler.cross_attention_block.xattn.proj.bias",
                         "pooler.cross_attention_block.xattn.proj.weight"]
                        if variant == "vjepa" else [])
    assert sorted(report.dropped) == expected_dropped
    x = rng.normal(0, 1, (3, TOKENS, D)).astype(np.float32)
    got = keras.ops.convert_to_numpy(probe(x))
    want = official_probe_forward(state, x, variant, depth)
    assert np.abs(got - want).max() <= 1e-4
    assert np.abs(want).max() > 0.5  # not a degenerate comparison


def test_export_round_trip_and_serialization():
    probe = AttentiveClassifier(CLASSES, D, num_heads=HEADS, variant="vjepa2", depth=2)
    x = np.random.default_rng(0).normal(0, 1, (2, TOKENS, D)).astype(np.float32)
    exported = export_official_probe(probe)
    assert exported["pooler.cross_attention_block.xattn.kv.weight"].shape == (2 * D, D)
    assert exported["linear.weight"].shape == (CLASSES, D)
    assert set(exported) == set(attentive_probe_entries(probe))
    other = run_serialization_test(probe)  # a clone with its own (random) weights
    assert not np.allclose(keras.ops.convert_to_numpy(other(x)),
                           keras.ops.convert_to_numpy(probe(x)))
    load_official_probe(other, exported)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(other(x)),
                               keras.ops.convert_to_numpy(probe(x)), atol=1e-6)


def test_malformed_probe_state_dicts_raise_naming_the_key():
    probe = AttentiveClassifier(CLASSES, D, num_heads=HEADS)
    before = [keras.ops.convert_to_numpy(w).copy() for w in probe.weights]
    state = official_probe_state_dict("vjepa", 1, np.random.default_rng(0))
    missing = dict(state)
    del missing["module.pooler.cross_attention_block.mlp.fc1.bias"]
    with pytest.raises(ValueError, match=r"missing.*pooler\.cross_attention_block\.mlp\.fc1\.bias"):
        load_official_probe(probe, missing)
    wrong = dict(state)
    wrong["module.linear.weight"] = np.zeros((CLASSES + 1, D), np.float32)
    with pytest.raises(ValueError, match=r"'linear\.weight'.*\(8, 32\).*\(7, 32\)"):
        load_official_probe(probe, wrong)
    extra = dict(state)
    extra["module.pooler.blocks.0.norm1.weight"] = np.ones((D,), np.float32)
    with pytest.raises(ValueError, match=r"unexpected.*pooler\.blocks\.0\.norm1\.weight"):
        load_official_probe(probe, extra)
    # V-JEPA 2 probes have no xattn.proj: a file that holds one is not a V-JEPA 2 probe.
    probe2 = AttentiveClassifier(CLASSES, D, num_heads=HEADS, variant="vjepa2", depth=1)
    with pytest.raises(ValueError, match=r"xattn\.proj"):
        load_official_probe(probe2, state)
    after = [keras.ops.convert_to_numpy(w) for w in probe.weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))  # nothing written
    with pytest.raises(ValueError, match="'vjepa3'"):
        AttentiveClassifier(CLASSES, D, variant="vjepa3")


def test_classifier_init_is_pytorch_linear_default_or_normal():
    """``linear`` keeps nn.Linear's default, U(-1/sqrt(D), 1/sqrt(D)) for kernel and bias
    (variance 1 / (3 D)); ``linear_init="normal"``: N(0, init_std), zero bias."""
    dim, classes = 64, 512
    seed_everything(0)
    probe = AttentiveClassifier(classes, dim, num_heads=2)
    kernel = keras.ops.convert_to_numpy(probe.linear.kernel).astype(np.float64)
    bias = keras.ops.convert_to_numpy(probe.linear.bias).astype(np.float64)
    bound = 1.0 / math.sqrt(dim)
    for w, tol in ((kernel, 0.03), (bias, 0.2)):
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.98 * bound            # fills the interval
        assert abs(w.mean()) < 4 * bound / math.sqrt(3 * w.size)   # 4 standard errors
        assert w.var() == pytest.approx(1.0 / (3 * dim), rel=tol)
    # The pooler keeps its normal(0.02) init.
    q = keras.ops.convert_to_numpy(probe.cross_attention_block.xattn.q.kernel)
    assert q.std() == pytest.approx(0.02, rel=0.1)
    old = AttentiveClassifier(classes, dim, num_heads=2, linear_init="normal")
    kernel = keras.ops.convert_to_numpy(old.linear.kernel).astype(np.float64)
    assert kernel.std() == pytest.approx(0.02, rel=0.03)
    assert not keras.ops.convert_to_numpy(old.linear.bias).any()
    assert run_serialization_test(old).linear_init == "normal"
    with pytest.raises(ValueError, match="'xavier'"):
        AttentiveClassifier(classes, dim, num_heads=2, linear_init="xavier")


# ----------------------------------------------------------------- training on a toy task


def _toy_tokens(n, rng):
    """Class = which of 3 directions is added to the tokens (plus unit noise), stronger in
    one random token: linearly separable after mean pooling."""
    dirs = np.eye(16)[:3]
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 1, (n, 6, 16)) + dirs[y][:, None]
    x[np.arange(n), rng.integers(0, 6, n)] += 2 * dirs[y]
    return x.astype(np.float32), y.astype(np.int32)


def test_probes_learn_a_separable_task():
    seed_everything(0)
    rng = np.random.default_rng(0)
    x, y = _toy_tokens(240, rng)
    tx, ty = _toy_tokens(120, rng)
    attentive = AttentiveClassifier(3, 16, num_heads=2)
    out = train_probe(attentive, x, y, epochs=6, batch_size=48, lr=1e-2,
                      validation_data=(tx, ty))
    linear = LinearClassifier(3, 16)
    out_lin = train_probe(linear, x, y, epochs=6, batch_size=48, lr=5e-2,
                          validation_data=(tx, ty))
    assert out["val"]["top1"] >= 0.9, out["val"]
    assert out_lin["val"]["top1"] >= 0.9, out_lin["val"]
    assert out["history"]["loss"][-1] < out["history"]["loss"][0]


# ----------------------------------------------------------------- V-JEPA 2 grid of probes


def _pytorch_adamw(w, grads, lrs, wd, b1=0.9, b2=0.999, eps=1e-8):
    """torch.optim.AdamW on one parameter group in float64: w *= 1 - lr * wd, then the
    Adam step with epsilon added to the bias-corrected root."""
    w = np.asarray(w, np.float64)
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        w = w * (1 - lr * wd)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr / (1 - b1 ** t) * m / (np.sqrt(v) / math.sqrt(1 - b2 ** t) + eps)
    return w


def test_probe_grid_optimizer_matches_pytorch_adamw_per_probe():
    """Each probe: its own lr schedule (official warmup-cosine, stepped before the update)
    and weight decay on *every* weight (biases, norms, query token), no clipping."""
    steps, per_epoch = 4, 2
    hyper = [dict(lr=1e-2, weight_decay=0.1),
             dict(lr=3e-3, weight_decay=0.8, start_lr=1e-3, warmup_epochs=1)]
    cosine = [0.5 * 1e-2 * (1 + math.cos(math.pi * t / steps)) for t in range(1, steps + 1)]
    warm = [1e-3 + 0.5 * 2e-3] + [0.5 * 3e-3 * (1 + math.cos(math.pi * (t - 2) / 2))
                                  for t in range(2, steps + 1)]
    grid = ProbeGrid(3, 8, num_probes=2, num_heads=2)
    variables = grid.trainable_variables
    start = [keras.ops.convert_to_numpy(v).astype(np.float64) for v in variables]
    rng = np.random.default_rng(0)
    grads = [[rng.normal(0, 0.1, v.shape) for v in variables] for _ in range(steps)]
    opt = probe_grid_optimizer(grid, hyper, total_steps=steps, steps_per_epoch=per_epoch)
    for g in grads:
        opt.apply([keras.ops.convert_to_tensor(x, "float32") for x in g], variables)
    for i, v in enumerate(variables):
        k = 0 if v.path.startswith("probe_0/") else 1
        want = _pytorch_adamw(start[i], [g[i] for g in grads], (cosine, warm)[k],
                              hyper[k]["weight_decay"])
        got = keras.ops.convert_to_numpy(v)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=v.path)
    clone = run_serialization_test(opt)
    assert clone.groups == ["probe_0", "probe_1"]
    assert [float(x) for x in clone.group_values()[1]] == pytest.approx(
        [float(x) for x in opt.group_values()[1]])
    with pytest.raises(ValueError, match="one learning rate and one weight decay"):
        ProbeGridAdamW(["probe_0"], [1e-3, 1e-4], [0.01])
    with pytest.raises(ValueError, match="2 probes"):
        probe_grid_optimizer(grid, hyper[:1], total_steps=steps)


def test_probe_grid_trains_each_probe_with_its_own_rate_in_one_fit():
    """One compiled fit: the probe with lr 1e-2 learns the toy task, the one with lr 0 stays
    exactly where it started; every probe is scored and the best one is named."""
    seed_everything(0)
    rng = np.random.default_rng(0)
    x, y = _toy_tokens(240, rng)
    tx, ty = _toy_tokens(120, rng)
    grid = ProbeGrid(3, 16, num_probes=2, num_heads=2)
    np.testing.assert_allclose(  # probe k's logits at [:, k]
        keras.ops.convert_to_numpy(grid(tx[:4]))[:, 1],
        keras.ops.convert_to_numpy(grid.probes[1](tx[:4])), atol=1e-6)
    before = [keras.ops.convert_to_numpy(w).copy() for w in grid.probes[1].weights]
    hyper = probe_grid((1e-2, 0.0), (0.01,))
    out = train_probe_grid(grid, x, y, hyper, epochs=5, batch_size=48,
                           validation_data=(tx, ty))
    assert [p["lr"] for p in out["probes"]] == [1e-2, 0.0]
    assert out["best"] == 0 and out["probes"][0]["val"]["top1"] >= 0.9, out["probes"]
    after = [keras.ops.convert_to_numpy(w) for w in grid.probes[1].weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert out["history"]["loss"][-1] < out["history"]["loss"][0]


def test_evaluate_program_vjepa2_recipe_reports_every_probe_and_the_best():
    import argparse

    from keras_jepa.programs.evaluate import add_arguments, recipe_grid, run_probes

    args = add_arguments(argparse.ArgumentParser()).parse_args(
        ["--data", "digits", "--recipe", "vjepa2", "--grid-lrs", "1e-2", "0",
         "--grid-weight-decays", "0.1"])
    grid = recipe_grid(True, args.grid_lrs, args.grid_weight_decays)
    assert [(h["lr"], h["weight_decay"]) for h in grid] == [(1e-2, 0.1), (0.0, 0.1)]
    seed_everything(0)
    x, y = _toy_tokens(64, np.random.default_rng(3))   # one batch shape to compile
    rows = run_probes({"train": x, "val": x}, {"train": y, "val": y}, probes=("attentive",),
                      num_heads=2, epochs=5, batch_size=16, variant="vjepa",
                      recipe=args.recipe, grid=grid)
    assert [r["probe"] for r in rows] == ["attentive", "attentive lr=0.01 wd=0.1",
                                          "attentive lr=0 wd=0.1"]
    assert rows[0]["top1"] == max(r["top1"] for r in rows[1:]) == rows[1]["top1"]
    assert rows[1]["top1"] > rows[2]["top1"]
    with pytest.raises(ValueError, match="'vjepa3'"):
        run_probes({"train": x, "val": x}, {"train": y, "val": y}, recipe="vjepa3")


def test_probe_grid_serialization_loss_and_official_grids():
    grid = ProbeGrid(4, 8, num_probes=2, num_heads=2, variant="vjepa2", depth=2)
    x = np.random.default_rng(0).normal(0, 1, (2, 5, 8)).astype(np.float32)
    clone = run_serialization_test(grid, call=lambda m: m(x))
    assert clone.probes[1].variant == "vjepa2" and clone.probes[1].depth == 2
    # An official file's list of heads: head k goes to probe k.
    other = ProbeGrid(4, 8, num_probes=2, num_heads=2, variant="vjepa2", depth=2)
    heads = [export_official_probe(p) for p in grid.probes][::-1]
    load_official_probe_grid(other, heads)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(other(x))[:, ::-1],
                               keras.ops.convert_to_numpy(grid(x)), atol=1e-6)
    with pytest.raises(ValueError, match="1 probe state dicts for a grid of 2"):
        load_official_probe_grid(other, heads[:1])
    logits = np.random.default_rng(1).normal(0, 1, (3, 2, 4))
    labels = np.array([0, 3, 1])
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    want = -log_p[np.arange(3), :, labels].sum(-1).mean()
    got = ProbeGridCrossEntropy()(labels, logits.astype(np.float32))
    assert float(got) == pytest.approx(want, rel=1e-5)
    video = PROBE_GRIDS["vjepa2_video"]
    assert len(video) == 20 and video[0] == dict(lr=5e-3, weight_decay=0.01,
                                                  final_weight_decay=0.01)
    assert {h["lr"] for h in video} == {5e-3, 3e-3, 1e-3, 3e-4, 1e-4}
    assert {h["weight_decay"] for h in video} == {0.01, 0.1, 0.4, 0.8}
    assert len(PROBE_GRIDS["vjepa2_image"]) == 21
    with pytest.raises(ValueError, match="num_probes"):
        ProbeGrid(4, 8, num_probes=0)


# ----------------------------------------------------------------- protocols


def test_aggregate_views_averages_softmax_over_views():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (4, 3, 5))  # B=4, V=3
    want = np.mean([np.exp(v) / np.exp(v).sum(-1, keepdims=True)
                    for v in logits.transpose(1, 0, 2)], axis=0)
    np.testing.assert_allclose(aggregate_views(logits.reshape(12, 5), 3), want, atol=1e-12)
    np.testing.assert_allclose(aggregate_views(logits, 3), want, atol=1e-12)
    with pytest.raises(ValueError, match="num_views=5"):
        aggregate_views(logits.reshape(12, 5), 5)
    s = np.array([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    assert topk_accuracy(s, [2, 0, 1], 1) == pytest.approx(1 / 3)
    assert topk_accuracy(s, [2, 0, 1], 2) == pytest.approx(2 / 3)
    assert topk_accuracy(s, [2, 0, 1], 3) == 1.0


def test_segment_tokens_concatenates_segments_per_view():
    b, s, v, n = 2, 3, 2, 4
    tokens = np.random.default_rng(0).normal(size=(b * s * v, n, 5)).astype(np.float32)
    out = keras.ops.convert_to_numpy(segment_tokens(tokens, s, v))
    for bi in range(b):
        for vi in range(v):
            want = np.concatenate([tokens[(bi * s + si) * v + vi] for si in range(s)])
            np.testing.assert_array_equal(out[bi, vi], want)


@pytest.fixture(scope="module")
def video_encoder():
    seed_everything(0)
    return VisionTransformer(image_size=16, patch_size=8, num_frames=4, tubelet_size=2,
                             hidden_dim=16, depth=1, num_heads=2)


def test_feature_extractor_segments_views_and_images_as_video(video_encoder):
    rng = np.random.default_rng(0)
    clips = rng.normal(size=(2, 3, 2, 4, 16, 16, 3)).astype(np.float32)  # B, S, V, T, H, W, C
    ext = FeatureExtractor(video_encoder, num_segments=3, num_views=2)
    got = keras.ops.convert_to_numpy(ext.predict_on_batch(clips))
    assert got.shape == (2, 2, 3 * 8, 16)
    # One encoder call per clip (all clips in one batch), then the official concatenation.
    per_clip = keras.ops.convert_to_numpy(video_encoder(clips.reshape(12, 4, 16, 16, 3)))
    per_clip = per_clip.reshape(2, 3, 2, 8, 16)
    for bi in range(2):
        for vi in range(2):
            want = np.concatenate([per_clip[bi, si, vi] for si in range(3)])
            np.testing.assert_allclose(got[bi, vi], want, atol=1e-5)
    images = rng.normal(size=(2, 16, 16, 3)).astype(np.float32)
    pooled = FeatureExtractor(video_encoder, pool="mean", image_frames=4)
    got = keras.ops.convert_to_numpy(pooled.predict_on_batch(images))
    video = np.repeat(images[:, None], 4, axis=1)
    assert np.array_equal(images_as_video(images, 4), video)
    want = keras.ops.convert_to_numpy(video_encoder(video)).mean(1)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_extract_features_is_deterministic_and_writes_npy(video_encoder, tmp_path):
    rng = np.random.default_rng(0)
    videos = rng.normal(size=(5, 4, 16, 16, 3)).astype(np.float32)
    labels = np.arange(5) % 2
    a, la = extract_features(video_encoder, (videos, labels), batch_size=2, verbose=0)
    path = os.path.join(tmp_path, "feats.npy")
    b, lb = extract_features(video_encoder, (videos, labels), batch_size=2, output=path,
                             verbose=0)
    assert a.shape == (5, 16) and np.array_equal(a, np.asarray(b))
    assert np.array_equal(la, labels) and np.array_equal(lb, labels)
    np.testing.assert_array_equal(np.load(path), a)
    np.testing.assert_array_equal(np.load(os.path.join(tmp_path, "feats_labels.npy")), labels)
    want = keras.ops.convert_to_numpy(video_encoder(videos)).mean(1)
    np.testing.assert_allclose(a, want, atol=1e-5)


# ----------------------------------------------------------------- k-NN


def test_knn_matches_brute_force():
    rng = np.random.default_rng(3)
    train = rng.normal(size=(60, 8))
    labels = rng.integers(0, 4, 60)
    test = rng.normal(size=(13, 8))
    votes = knn_classify(train, labels, test, k=7, temperature=0.07, batch_size=5)
    for i, t in enumerate(test):
        sims = [float(t @ r / np.linalg.norm(t) / np.linalg.norm(r)) for r in train]
        order = sorted(range(60), key=lambda j: -sims[j])[:7]
        want = np.zeros(4)
        for j in order:
            want[labels[j]] += math.exp(sims[j] / 0.07)
        np.testing.assert_allclose(votes[i], want, rtol=1e-4)
    acc = topk_accuracy(knn_classify(train, labels, train, k=1), labels, 1)
    assert acc == 1.0  # each point is its own nearest neighbour
    with pytest.raises(ValueError, match="temperature"):
        knn_classify(train, labels, test, temperature=0)


def test_linear_classifier_standardises_and_round_trips():
    rng = np.random.default_rng(0)
    feats = rng.normal(5, 3, (40, 6, 8)).astype(np.float32)
    probe = LinearClassifier(3, 8)
    probe.adapt(feats)
    pooled = feats.mean(1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(probe.feature_mean),
                               pooled.mean(0), rtol=1e-5)
    want = ((pooled - pooled.mean(0)) / (pooled.std(0) + 1e-6)) @ keras.ops.convert_to_numpy(
        probe.linear.kernel) + keras.ops.convert_to_numpy(probe.linear.bias)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(probe(feats)), want, atol=1e-4)
    run_serialization_test(probe, call=lambda p: p(feats), atol=1e-6)
    metrics = evaluate_probe(probe, feats[:, None], np.zeros(40, int), num_views=1)
    assert set(metrics) == {"top1", "top5"} and metrics["top5"] == 1.0


# ----------------------------------------------------------------- the evaluate program


def _write_videos(root, rng):
    av = pytest.importorskip("av")

    for label in ("a", "b"):
        os.makedirs(os.path.join(root, label))
        for i in range(3):
            path = os.path.join(root, label, f"{i}.mp4")
            with av.open(path, "w") as out:
                stream = out.add_stream("libx264", rate=25)
                stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
                base = 40 if label == "a" else 200
                for t in range(12):
                    frame = np.full((32, 48, 3), base, "uint8")
                    frame += rng.integers(0, 20, frame.shape, dtype="uint8")
                    out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                out.mux(stream.encode(None))


def test_evaluate_program_on_a_video_folder_with_segments_and_views(tmp_path):
    from keras_jepa.programs.evaluate import add_arguments, run_from_args
    import argparse
    import json

    seed_everything(0)
    root = os.path.join(tmp_path, "videos")
    _write_videos(root, np.random.default_rng(0))
    out = os.path.join(tmp_path, "out")
    args = add_arguments(argparse.ArgumentParser()).parse_args(
        ["--data", root, "--video", "--val", root, "--config", "vjepa_tiny_cpu",
         "--segments", "2", "--views", "2", "--frames", "4", "--frame-step", "1",
         "--probes", "knn", "--knn-k", "1", "--feature-batch-size", "4", "--output", out,
         "--save-features"])
    rows = run_from_args(args)
    # Validation = training videos: 1-NN finds each video itself.
    assert rows == [{"encoder": "random_init", "probe": "knn", "top1": 1.0, "top5": 1.0,
                     "train_top1": 1.0, "seconds": rows[0]["seconds"]}]
    feats = np.load(os.path.join(out, "random_init_val.npy"))
    assert feats.shape == (6, 2, 2 * 2 * 4 * 4, 64)  # (N, views, segments x tokens, D)
    assert json.load(open(os.path.join(out, "metrics.json")))["results"][0]["top1"] == 1.0
    assert "| random_init | knn | 100.0 |" in open(os.path.join(out, "metrics.md")).read()


def test_vjepa2_probe_matches_hugging_face_pooler():
    """An independent implementation: transformers' ``VJEPA2AttentivePooler`` + classifier
    with random weights, renamed to the official keys (q|k|v fused into ``qkv``, k|v into
    ``kv``). transformers builds the pooler norms with ``layer_norm_eps`` (1e-6 by default;
    the official probe uses ``nn.LayerNorm``'s 1e-5), so the probe takes that epsilon."""
    torch = pytest.importorskip("torch")
    modeling = pytest.importorskip("transformers.models.vjepa2.modeling_vjepa2")
    from transformers import VJEPA2Config

    config = VJEPA2Config(hidden_size=D, num_attention_heads=HEADS, num_pooler_layers=3,
                          mlp_ratio=4.0, layer_norm_eps=1e-6)
    torch.manual_seed(0)
    pooler = modeling.VJEPA2AttentivePooler(config).eval()
    head = torch.nn.Linear(D, CLASSES)
    with torch.no_grad():
        for p in list(pooler.parameters()) + list(head.parameters()):
            p.normal_(0, 0.3)
    hf = {k: v.detach().numpy() for k, v in pooler.state_dict().items()}
    state = {"pooler.query_tokens": hf["query_tokens"],
             "linear.weight": head.weight.detach().numpy(),
             "linear.bias": head.bias.detach().numpy()}
    renames = {"layer_norm1": "norm1", "layer_norm2": "norm2", "mlp.fc1": "mlp.fc1",
               "mlp.fc2": "mlp.fc2"}
    for kind in ("weight", "bias"):
        c = "cross_attention_layer"
        for src, dst in renames.items():
            state[f"pooler.cross_attention_block.{dst}.{kind}"] = hf[f"{c}.{src}.{kind}"]
        state[f"pooler.cross_attention_block.xattn.q.{kind}"] = hf[f"{c}.cross_attn.q_proj.{kind}"]
        state[f"pooler.cross_attention_block.xattn.kv.{kind}"] = np.concatenate(
            [hf[f"{c}.cross_attn.{n}_proj.{kind}"] for n in ("k", "v")])
        for i in range(3):
            s = f"self_attention_layers.{i}"
            for src, dst in renames.items():
                state[f"pooler.blocks.{i}.{dst}.{kind}"] = hf[f"{s}.{src}.{kind}"]
            state[f"pooler.blocks.{i}.attn.qkv.{kind}"] = np.concatenate(
                [hf[f"{s}.self_attn.{n}_proj.{kind}"] for n in ("q", "k", "v")])
            state[f"pooler.blocks.{i}.attn.proj.{kind}"] = hf[f"{s}.self_attn.out_proj.{kind}"]
    probe = AttentiveClassifier(CLASSES, D, num_heads=HEADS, variant="vjepa2", depth=4,
                                layer_norm_epsilon=1e-6)
    report = load_official_probe(probe, {"module." + k: v for k, v in state.items()})
    assert len(report.loaded) == len(state)
    x = np.random.default_rng(5).normal(0, 1, (2, TOKENS, D)).astype(np.float32)
    with torch.no_grad():
        want = head(pooler(torch.from_numpy(x))).numpy()
    got = keras.ops.convert_to_numpy(probe(x))
    assert np.abs(got - want).max() <= 1e-4, np.abs(got - want).max()
