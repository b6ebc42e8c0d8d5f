"""XRM: twin training, environment inference, phase-2 learners and the spurious datasets.

Runs on every backend (``KERAS_BACKEND``). The compiled-step tests use the default
(jit/tf.function) ``fit``; the end-to-end acceptance run is ``slow``.
"""

import math
import os

import keras
import numpy as np
import pytest
from keras import ops

from keras_jepa.models.xrm.data import (
    COLOR_MNIST_VARIANTS,
    IndexedBatches,
    load_feature_arrays,
    load_images,
    make_color_digits,
    make_spurious_features,
    read_group_metadata,
    save_feature_arrays,
)
from keras_jepa.models.xrm.discovery import run_xrm, train_group_robust
from keras_jepa.models.xrm.groups import (
    adjusted_rand_index,
    best_report,
    cross_mistakes,
    flip_rate,
    group_agreement,
    group_ids,
    group_metrics,
    infer_environments,
    is_degenerate,
    reweighting_weights,
    sample_hparams,
    select_by_flip_rate,
    select_by_worst_group,
    subsample_groups,
)
from keras_jepa.models.xrm.group_robust import ERM, GroupDRO
from keras_jepa.models.xrm.model import XRM, class_balanced_cross_entropy, flip_probability
from tests.test_case import REPO_ROOT, run_keras_file_test, run_serialization_test


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _constant_classifier(probabilities):
    """A Dense classifier whose softmax is ``probabilities`` for every input."""
    bias = np.log(np.asarray(probabilities, "float64")).astype("float32")
    return keras.Sequential(
        [
            keras.layers.Dense(
                len(bias),
                kernel_initializer="zeros",
                bias_initializer=keras.initializers.Constant(bias),
            )
        ]
    )


# ----------------------------------------------------------------------------- formulas
@pytest.mark.parametrize("num_classes", [2, 3, 10])
def test_flip_probability_formula(num_classes):
    rng = np.random.default_rng(num_classes)
    logits = rng.normal(size=(64, num_classes)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = (probs.max(-1) - 1 / num_classes) * num_classes / (num_classes - 1)
    np.testing.assert_allclose(_np(flip_probability(probs.astype("float32"))), expected,
                               atol=1e-5)
    uniform = np.full((1, num_classes), 1 / num_classes, "float32")
    one_hot = np.eye(num_classes, dtype="float32")[:1]
    assert abs(float(_np(flip_probability(uniform))[0])) < 1e-6
    assert abs(float(_np(flip_probability(one_hot))[0]) - 1.0) < 1e-6
    if num_classes == 2:
        np.testing.assert_allclose(expected, 2 * probs.max(-1) - 1, atol=1e-12)


def test_flip_probability_rejects_one_class():
    with pytest.raises(ValueError, match=r"C >= 2.*\(4, 1\)"):
        flip_probability(np.ones((4, 1), "float32"))


def test_class_balanced_cross_entropy_is_sum_of_class_means():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 3)).astype("float32")
    labels = np.array([0, 0, 0, 2, 2, 0, 2])  # class 1 absent
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ce = -log_p[np.arange(7), labels]
    expected = ce[labels == 0].mean() + ce[labels == 2].mean()
    got = float(_np(class_balanced_cross_entropy(labels, logits)))
    assert abs(got - expected) < 1e-5


# ----------------------------------------------------------------------------- twin training
def test_flips_follow_q_and_persist_in_the_label_store_compiled(tmp_path):
    """Compiled fit: twins fixed (lr 0) at p = 0.8 for class 1, labels all 0, so each visit
    flips with q = 0.6; flipped labels persist (1 - 0.4^2 after two epochs), survive
    save/restore, and the restored model continues with the same flips."""
    n = 1000
    x = np.zeros((n, 3), "float32")
    y = np.zeros(n, "int32")
    inputs = {"features": x, "index": np.arange(n)}

    def make():
        model = XRM(_constant_classifier([0.2, 0.8]), num_examples=n, flip_seed=3)
        model.compile(optimizer=keras.optimizers.SGD(0.0))
        return model

    model = make()
    assignments = model.assignment_array().copy()
    history = model.fit(inputs, y, batch_size=250, epochs=1, shuffle=False, verbose=0)
    store = model.label_store()
    assert set(np.unique(store)) <= {0, 1}
    assert abs(store.mean() - 0.6) < 0.05, store.mean()
    assert model.flip_rate() == pytest.approx(flip_rate(store, y))
    assert history.history["flip_rate"][-1] == pytest.approx(model.flip_rate(), abs=1e-6)
    first = store.copy()

    model.fit(inputs, y, batch_size=250, epochs=1, shuffle=False, verbose=0)
    store = model.label_store()
    assert np.all(store[first == 1] == 1)  # flipped towards the twin's class and stays
    assert abs(store.mean() - (1 - 0.4**2)) < 0.05, store.mean()
    assert int(_np(model.step_counter)) == 8
    np.testing.assert_array_equal(model.assignment_array(), assignments)  # fixed across epochs

    path = str(tmp_path / "xrm.weights.h5")
    model.save_weights(path)
    restored = run_serialization_test(model)
    restored.compile(optimizer=keras.optimizers.SGD(0.0))
    restored(x[:2])
    restored.load_weights(path)
    for name in ("dynamic_labels", "assignments", "flip_count", "step_counter"):
        np.testing.assert_array_equal(_np(getattr(restored, name)), _np(getattr(model, name)))
    np.testing.assert_array_equal(
        _np(restored.flip_seed_generator.state), _np(model.flip_seed_generator.state)
    )
    model.fit(inputs, y, batch_size=250, epochs=1, shuffle=False, verbose=0)
    restored.fit(inputs, y, batch_size=250, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_array_equal(restored.label_store(), model.label_store())


def test_assignments_are_seeded_random_halves():
    template = keras.Sequential([keras.layers.Dense(2)])
    first = XRM(template, num_examples=400, assignment_seed=5).assignment_array()
    assert 0.4 < first.mean() < 0.6
    same = XRM(template, num_examples=400, assignment_seed=5).assignment_array()
    other = XRM(template, num_examples=400, assignment_seed=6).assignment_array()
    np.testing.assert_array_equal(same, first)
    assert np.any(other != first)


def test_only_held_in_examples_reach_each_twin():
    """One compiled step from the same state: changing the inputs of the examples held in
    by twin B leaves twin A's update unchanged and changes twin B's; the loss is the
    class-balanced CE on the held-in logits."""
    n = 16
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 5)).astype("float32")
    y = rng.integers(0, 2, n).astype("int32")
    template = keras.Sequential([keras.layers.Dense(2)])
    template.build((None, 5))
    model = XRM(template, num_examples=n, assignment_seed=2, flip_seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    model(x[:1])
    initial = model.get_weights()
    assign = model.assignment_array()
    assert 0 < assign.sum() < n

    kernel_a, bias_a = (_np(w) for w in model.twin_a.weights)
    kernel_b, bias_b = (_np(w) for w in model.twin_b.weights)
    held_in = np.where(assign[:, None] == 1, x @ kernel_a + bias_a, x @ kernel_b + bias_b)
    expected_loss = float(_np(class_balanced_cross_entropy(y, held_in)))

    inputs = {"features": x, "index": np.arange(n)}
    loss = model.train_on_batch(inputs, y, return_dict=True)["loss"]
    assert loss == pytest.approx(expected_loss, rel=1e-4)
    after_a = [_np(w) for w in model.twin_a.weights]
    after_b = [_np(w) for w in model.twin_b.weights]
    assert not np.allclose(after_a[0], kernel_a)

    model.set_weights(initial)
    perturbed = x.copy()
    perturbed[assign == 0] += 3.0
    model.train_on_batch({"features": perturbed, "index": np.arange(n)}, y)
    for w, ref in zip(model.twin_a.weights, after_a):
        np.testing.assert_allclose(_np(w), ref, atol=1e-6)
    assert not np.allclose(_np(model.twin_b.weights[0]), after_b[0])

    # All examples held in by twin A: twin B does not move.
    model.set_weights(initial)
    model.assignments.assign(np.ones(n, "int32"))
    model.train_on_batch(inputs, y)
    for w, ref in zip(model.twin_b.weights, (kernel_b, bias_b)):
        np.testing.assert_allclose(_np(w), ref, atol=1e-7)


def test_training_without_index_names_the_fix():
    model = XRM(keras.Sequential([keras.layers.Dense(2)]), num_examples=8)
    model.compile(optimizer="sgd", run_eagerly=True)
    with pytest.raises(ValueError, match="'index'"):
        model.fit({"features": np.zeros((8, 3), "float32")}, np.zeros(8, "int32"), verbose=0)


def test_cross_mistakes_use_both_twins():
    n = 6
    x = np.eye(n, 3, dtype="float32")  # rows 0,1,2 one-hot, rows 3..5 zero
    x[3:] = [[1, 1, 0], [0, 1, 1], [1, 0, 1]]
    y = np.array([0, 0, 0, 1, 1, 1], "int32")
    model = XRM(keras.Sequential([keras.layers.Dense(2, use_bias=False)]), num_examples=n)
    model(x[:1])
    # twin A predicts class 1 only from feature 0; twin B only from feature 1.
    model.twin_a.set_weights([np.array([[0, 2], [1, 0], [1, 0]], "float32")])
    model.twin_b.set_weights([np.array([[1, 0], [0, 2], [1, 0]], "float32")])
    pa = _np(model.twin_a(x)).argmax(-1)
    pb = _np(model.twin_b(x)).argmax(-1)
    out = infer_environments(model, x, y, index=np.arange(n))
    expected = ((pa != y) | (pb != y)).astype("int32")
    np.testing.assert_array_equal(out["m"], expected)
    assert np.any((pa != y) & (pb == y)) and np.any((pb != y) & (pa == y))
    np.testing.assert_array_equal(cross_mistakes(out["logits_a"], out["logits_b"], y), expected)
    # held-out probabilities come from the twin that did not hold the example in
    assign = model.assignment_array()
    held_out_pred = out["held_out"].argmax(-1)
    np.testing.assert_array_equal(held_out_pred, np.where(assign == 1, pb, pa))


def test_degeneracy_rule():
    y = np.array([0, 0, 1, 1])
    assert not is_degenerate({"tr": (y, [0, 1, 1, 0]), "va": (y, [1, 0, 0, 1])})
    assert is_degenerate({"tr": (y, [0, 1, 1, 0]), "va": (y, [1, 0, 0, 0])})
    assert is_degenerate({"tr": (y, np.zeros(4))})
    assert select_by_flip_rate([0.0, 0.2, 0.2, 0.1]) == 1


def test_xrm_config_round_trip_and_keras_file(tmp_path):
    model = XRM(keras.Sequential([keras.layers.Dense(3)]), num_examples=10,
                assignment_seed=4, flip_seed=7, l2=1e-4, name="twins")
    model(np.zeros((2, 5), "float32"))
    run_serialization_test(model, call=lambda m: m(np.ones((2, 5), "float32")), atol=1e-6)
    loaded = run_keras_file_test(model, tmp_path / "xrm.keras",
                                 call=lambda m: m.assignment_array(), atol=0)
    assert loaded.l2 == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="num_examples >= 2.*got 1"):
        XRM(keras.Sequential([keras.layers.Dense(2)]), num_examples=1)


def test_xrm_recovers_planted_split_on_synthetic_data():
    """End to end on a small Gaussian set (official one-minute recipe, shortened)."""
    data = make_spurious_features(num_train=400, num_val=200, num_test=200, seed=1)
    result = run_xrm(
        data["tr"], data["va"],
        lambda: keras.Sequential(
            [keras.layers.Dense(2, use_bias=False, kernel_initializer="zeros")]
        ),
        lambda: keras.optimizers.SGD(0.1),
        num_steps=60, batch_size=-1, report_every=30, seed=0,
    )
    assert not result["degenerate"]
    assert result["flip_rate"] > 0.01
    for split in ("tr", "va"):
        agreement = group_agreement(result["m"][split], data[split]["m"], data[split]["y"])
        assert agreement["ari"] > 0.8, (split, agreement)


# ----------------------------------------------------------------------------- phase 2
def test_group_dro_weights_update_as_the_formula_says():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4)).astype("float32")
    y = rng.integers(0, 2, 12).astype("int32")
    groups = np.array([0, 0, 1, 1, 1, 3, 3, 0, 1, 3, 3, 3], "int32")  # group 2 absent
    eta = 0.5
    model = GroupDRO(keras.Sequential([keras.layers.Dense(2)]), num_groups=4, eta=eta)
    model.compile(optimizer=keras.optimizers.SGD(0.3))
    model(x[:1])
    q = np.full(4, 0.25)
    inputs = {"features": x, "group": groups}
    for _ in range(2):
        logits = _np(model.predict(x, verbose=0)).astype("float64")
        log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        ce = -log_p[np.arange(12), y]
        losses = np.array([ce[groups == g].mean() if np.any(groups == g) else 0.0
                           for g in range(4)])
        present = np.array([np.any(groups == g) for g in range(4)])
        q = q * np.exp(eta * losses * present)
        q = q / q.sum()
        loss = model.train_on_batch(inputs, y, return_dict=True)["loss"]
        np.testing.assert_allclose(_np(model.group_weights), q, rtol=1e-5)
        assert loss == pytest.approx(float(np.sum(q * losses)), rel=1e-5)
    assert q[2] < 0.25  # absent group only shrinks through the renormalisation


def test_phase2_models_round_trip(tmp_path):
    for model in (
        GroupDRO(keras.Sequential([keras.layers.Dense(2)]), num_groups=4, eta=0.2, l2=0.01),
        ERM(keras.Sequential([keras.layers.Dense(2)]), l2=0.01),
    ):
        x = np.random.default_rng(0).normal(size=(2, 3)).astype("float32")
        model(x)
        run_serialization_test(model, call=lambda m: m(x), atol=1e-6)
    with pytest.raises(ValueError, match="num_groups must be >= 1; got 0"):
        GroupDRO(keras.Sequential([keras.layers.Dense(2)]), num_groups=0)


def test_group_metrics_selection_and_samplers():
    metrics = group_metrics([0, 0, 1, 1, 1], [[1, 0], [0, 1], [0, 1], [0, 1], [1, 0]],
                            group_ids([0, 0, 1, 1, 1], [0, 1, 0, 0, 1]))
    assert metrics["avg_acc"] == pytest.approx(0.6)
    assert metrics["wga"] == 0.0 and metrics["per_group"] == {0: 1.0, 1: 0.0, 2: 1.0, 3: 0.0}
    assert adjusted_rand_index([0, 0, 1, 1, 2], [5, 5, 7, 7, 9]) == pytest.approx(1.0)
    assert abs(adjusted_rand_index(np.arange(200) % 2, np.arange(200) // 100)) < 0.05
    assert select_by_worst_group([0.4, 0.6, 0.6], [0.9, 0.7, 0.8]) == 2
    assert best_report([{"val_wga": 0.3}, {"val_wga": 0.5}, {"val_wga": 0.5},
                        {"val_wga": 0.1}]) == 2
    groups = np.array([0] * 30 + [1] * 5 + [2] * 10 + [3] * 2)
    weights = reweighting_weights(groups)
    per_group = [weights[groups == g].sum() for g in range(4)]
    np.testing.assert_allclose(per_group, len(groups))
    rows = subsample_groups(groups, seed=1)
    assert np.bincount(groups[rows]).tolist() == [2, 2, 2, 2]
    h0 = sample_hparams(0, "mlp", "GroupDRO")
    rs = np.random.RandomState(0)
    assert h0["lr"] == pytest.approx(10 ** rs.uniform(-5, -3))
    assert h0["batch_size"] == int(2 ** rs.uniform(3, 6))
    assert h0["weight_decay"] == pytest.approx(10 ** rs.uniform(-6, -3))
    assert h0["eta"] == pytest.approx(10 ** rs.uniform(-3, -1))


def test_train_group_robust_learners_run():
    data = make_spurious_features(num_train=200, num_val=100, num_test=100, seed=2)
    linear = lambda: keras.Sequential([keras.layers.Dense(2)])  # noqa: E731
    out = train_group_robust(
        "rwg", data["tr"], data["va"], linear, lambda: keras.optimizers.SGD(0.1),
        data["tr"]["m"], data["va"]["m"], test=data["te"], num_steps=20,
        batch_size=50, report_every=10,
    )
    assert [r["step"] for r in out["reports"]] == [10, 20]
    assert 0.0 <= out["best"]["test_wga"] <= out["best"]["test_avg_acc"] <= 1.0
    with pytest.raises(ValueError, match="'jtt'"):
        train_group_robust("jtt", data["tr"], data["va"], linear, None,
                           data["tr"]["m"], data["va"]["m"])


# ----------------------------------------------------------------------------- data
def test_indexed_batches_passes_weights_and_rows():
    ds = IndexedBatches(np.arange(10)[:, None], np.arange(10), batch_size=4,
                        steps_per_epoch=5, seed=3)
    seen = [ds[i][0]["index"] for i in range(5)]
    assert [len(s) for s in seen] == [4, 4, 2, 4, 4]
    assert sorted(np.concatenate(seen[:3]).tolist()) == list(range(10))
    ds.on_epoch_end()  # next epoch continues at global step 5 (second pass, batch 2)
    np.testing.assert_array_equal(ds[0][0]["index"], ds.batch_rows(5))
    groups = np.array([0] * 90 + [1] * 10)
    weighted = IndexedBatches(np.zeros((100, 1)), np.zeros(100), batch_size=100,
                              groups=groups, weights=reweighting_weights(groups), seed=0,
                              steps_per_epoch=20)
    drawn = np.concatenate([weighted[i][0]["group"] for i in range(20)])
    assert abs(drawn.mean() - 0.5) < 0.05
    subset = IndexedBatches(np.zeros((100, 1)), np.zeros(100), batch_size=-1, rows=[3, 7])
    assert sorted(subset[0][0]["index"].tolist()) == [3, 7]
    with pytest.raises(ValueError, match=r"rows must index the 100 examples.*\[3, 100\]"):
        IndexedBatches(np.zeros((100, 1)), np.zeros(100), batch_size=4, rows=[3, 100])


def test_color_digits_follow_the_official_recipe():
    data = make_color_digits(seed=0)
    config = COLOR_MNIST_VARIANTS["ColorMNIST"]
    tr = data["tr"]
    assert tr["x"].shape[1] == 128 and tr["x"].dtype == np.float32
    np.testing.assert_array_equal(tr["clean_y"], (tr["digit"] < 5).astype("int32"))
    for env, color_noise in enumerate(config["tr_va_color_noise"]):
        picked = tr["env"] == env
        assert abs(np.mean(tr["y"][picked] != tr["clean_y"][picked]) - 0.25) < 0.06
        assert abs(np.mean(tr["color"][picked] != tr["y"][picked]) - color_noise) < 0.05
    assert abs(np.mean(data["te"]["m"]) - 0.9) < 0.06
    np.testing.assert_array_equal(tr["m"], (tr["color"] != tr["y"]).astype("int32"))
    images = tr["x"].reshape(-1, 2, 8, 8)
    off = images[np.arange(len(images)), 1 - tr["color"]]
    on = images[np.arange(len(images)), tr["color"]]
    assert np.all(off == 0) and np.all(on.reshape(len(on), -1).max(-1) > 0)
    channels_last = make_color_digits(seed=0, layout="channels_last")["tr"]["x"]
    np.testing.assert_array_equal(channels_last, np.transpose(images, (0, 2, 3, 1)))
    with pytest.raises(ValueError, match="'Nope'"):
        make_color_digits(variant="Nope")


def test_spurious_features_correlations():
    data = make_spurious_features(num_train=4000, num_val=100, num_test=4000, seed=0)
    assert abs(data["tr"]["m"].mean() - 0.05) < 0.015
    assert abs(data["te"]["m"].mean() - 0.5) < 0.03
    a = data["tr"]["a"]
    assert np.all(np.sign(data["tr"]["x"][:, 1]) == 2 * a - 1)


def test_metadata_folder_and_feature_arrays(tmp_path):
    from PIL import Image

    rows = [("a.png", 0, 1, 0), ("b.png", 1, 0, 1), ("c.png", 1, 1, 2), ("d.png", 0, 0, 0)]
    for name, *_ in rows:
        Image.fromarray(np.full((20, 30, 3), 128, "uint8")).save(tmp_path / name)
    csv_path = tmp_path / "metadata.csv"
    csv_path.write_text(
        "filename,y,a,split\n" + "".join(f"{n},{y},{a},{s}\n" for n, y, a, s in rows)
    )
    meta = read_group_metadata(str(csv_path))
    assert meta["tr"]["y"].tolist() == [0, 0] and meta["tr"]["m"].tolist() == [1, 0]
    assert [os.path.basename(p) for p in meta["te"]["paths"]] == ["c.png"]
    images = load_images(meta["tr"]["paths"], image_size=16)
    assert images.shape == (2, 16, 16, 3)
    expected = (128 / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(images[0, 0, 0], expected, atol=1e-4)
    bad = tmp_path / "bad.csv"
    bad.write_text("filename,y,split\na.png,0,0\n")
    with pytest.raises(ValueError, match=r"\['a'\]"):
        read_group_metadata(str(bad))

    data = make_spurious_features(num_train=10, num_val=5, num_test=5)
    path = str(tmp_path / "features.npz")
    save_feature_arrays(path, data)
    loaded = load_feature_arrays(path)
    for split in ("tr", "va", "te"):
        np.testing.assert_array_equal(loaded[split]["m"], data[split]["m"])
    if keras.backend.backend() == "torch":  # the official features.pt layout
        import torch

        pt = str(tmp_path / "features.pt")
        torch.save({s: {k: torch.tensor(data[s][k]) for k in ("x", "y", "m")}
                    for s in ("tr", "va", "te")}, pt)
        np.testing.assert_allclose(load_feature_arrays(pt)["te"]["x"], data["te"]["x"])


# ----------------------------------------------------------------------------- acceptance
@pytest.mark.slow
def test_acceptance_color_digits_and_synthetic(tmp_path):
    """XRM groups recover the planted split; GroupDRO with them is close to GroupDRO with
    the true groups and far above ERM (reduced search: 2 combinations on ColorDigits)."""
    from keras_jepa.programs.xrm import run_benchmark

    for dataset, combs in (("synthetic", 1), ("color_digits", 2)):
        out = run_benchmark(dataset, num_combs=combs, out_dir=str(tmp_path), log=print)
        rows = out["rows"]
        assert out["agreement"]["tr"]["ari"] > 0.9, out["agreement"]
        assert out["agreement"]["va"]["ari"] > 0.9, out["agreement"]
        xrm, true, erm = rows["GroupDRO + XRM groups"], rows["GroupDRO + true groups"], rows["ERM"]
        assert xrm["test_wga"] >= true["test_wga"] - 0.1, rows
        assert xrm["test_wga"] >= erm["test_wga"] + 0.2, rows
        assert math.isfinite(out["seconds"])


@pytest.mark.slow
def test_guide_runs_quick():
    import subprocess
    import sys

    root = REPO_ROOT
    env = dict(os.environ, KERAS_JEPA_GUIDE_QUICK="1", PYTHONPATH=root)
    done = subprocess.run([sys.executable, os.path.join(root, "guides", "xrm.py")], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "label store restored: True" in done.stdout
    assert "GroupDRO + XRM groups" in done.stdout
