"""VEDIT: flow matching, Euler sampler, masking patterns, procedural metrics, fit."""

import itertools
import json
import os

import keras
import numpy as np
import pytest

from keras_jepa.models.vedit.data import (
    StepGrammar,
    StepSequences,
    read_step_annotations,
    save_embedding_cache,
)
from keras_jepa.models.vedit.metrics import (
    edit_distance,
    majority_vote,
    min_edit_distance,
    planning_metrics,
    top1_accuracy,
)
from keras_jepa.models.vedit.model import (
    ROLE_OBSERVED,
    ROLE_PAD,
    ROLE_TARGET,
    VEDIT,
    classification_roles,
    euler_sample,
    forecast_roles,
    planning_roles,
    random_roles,
)
from keras_jepa.backend.seeding import seed_everything
from tests.test_case import run_serialization_test

D, L = 4, 5


def _tiny(**kwargs):
    args = dict(embed_dim=D, max_length=L, hidden_dim=16, depth=1, num_heads=2,
                sampling_steps=3, num_samples=2, frequency_dim=16, seed=1)
    args.update(kwargs)
    return VEDIT(**args)


def _randomise_output(model, seed=0):
    """Non-zero output layers, so the output depends on the input tokens."""
    rng = np.random.default_rng(seed)
    for layer in [model.final_proj, model.final_modulation] + [
            b.adaLN_modulation for b in model.blocks]:
        for v in layer.weights:
            v.assign(rng.normal(0, 0.3, tuple(v.shape)).astype("float32"))


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    emb = rng.normal(2.0, 3.0, (3, L, D)).astype("float32")
    roles = np.stack([forecast_roles(L, 2, 2), planning_roles(L, 2),
                      classification_roles(L, 1)])
    return {"embeddings": emb, "roles": roles}


def test_flow_matching_loss_matches_numpy(inputs):
    model = _tiny()
    model.adapt(inputs["embeddings"])
    _randomise_output(model)
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(3, L, D)).astype("float32")
    t = np.array([0.1, 0.5, 0.9], "float32")
    out = model(dict(inputs, noise=noise, t=t))
    mean = inputs["embeddings"].reshape(-1, D).mean(0)
    std = inputs["embeddings"].reshape(-1, D).std(0)
    x0 = (inputs["embeddings"] - mean) / std
    roles = inputs["roles"]
    target = (roles == ROLE_TARGET)[..., None]
    observed = (roles == ROLE_OBSERVED)[..., None]
    x_t = (1 - t[:, None, None]) * x0 + t[:, None, None] * noise
    x_in = np.where(target, x_t, np.where(observed, x0, 0.0)).astype("float32")
    v = keras.ops.convert_to_numpy(model.velocity(x_in, roles, t))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out["output"]), v, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out["target"]), noise - x0,
                               atol=1e-5)
    expected = ((v - (noise - x0)) ** 2).mean(-1)[roles == ROLE_TARGET].mean()
    loss = float(keras.ops.convert_to_numpy(model.compute_loss(x=inputs, y_pred=out)))
    assert loss == pytest.approx(expected, rel=1e-5)
    # The output at a target token depends on x_t, so a wrong interpolation would show.
    other = model(dict(inputs, noise=noise, t=np.full((3,), 0.3, "float32")))
    assert not np.allclose(keras.ops.convert_to_numpy(other["output"]), v, atol=1e-3)


def test_regression_objective_predicts_embeddings(inputs):
    model = _tiny(objective="regression")
    out = model(inputs)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out["target"]),
                               inputs["embeddings"], atol=1e-5)  # mean 0 / std 1 before adapt
    samples = keras.ops.convert_to_numpy(model.generate(inputs, num_samples=3))
    np.testing.assert_allclose(samples[:, 0], samples[:, 2])


def test_euler_is_exact_on_constant_and_straight_fields():
    x1 = np.array([1.0, -2.0, 0.5])
    c = np.array([0.3, 0.7, -1.1])
    for steps in (1, 3, 10):
        np.testing.assert_allclose(euler_sample(lambda x, t: c, x1, steps), x1 - c)
    x0 = np.array([4.0, 0.0, -3.0])
    path = []
    out = euler_sample(lambda x, t: path.append(t) or (x - x0) / t, x1, 5)
    np.testing.assert_allclose(out, x0, atol=1e-12)
    np.testing.assert_allclose(path, [1.0, 0.8, 0.6, 0.4, 0.2])
    with pytest.raises(ValueError, match="steps"):
        euler_sample(lambda x, t: x, x1, 0)


def test_generate_integrates_known_field_and_keeps_observed(inputs):
    model = _tiny(num_samples=2)
    model.adapt(inputs["embeddings"])
    c = np.linspace(-1, 1, D).astype("float32")
    model.velocity = lambda x, roles, t, training=False: keras.ops.broadcast_to(
        keras.ops.convert_to_tensor(c), keras.ops.shape(x))
    noise = np.random.default_rng(2).normal(size=(6, L, D)).astype("float32")
    out = keras.ops.convert_to_numpy(model.generate(inputs, noise=noise, steps=4))
    assert out.shape == (3, 2, L, D)
    mean = inputs["embeddings"].reshape(-1, D).mean(0)
    std = inputs["embeddings"].reshape(-1, D).std(0)
    expected = ((noise - c) * std + mean).reshape(3, 2, L, D)
    roles = np.repeat(inputs["roles"][:, None], 2, axis=1)
    np.testing.assert_allclose(out[roles == ROLE_TARGET], expected[roles == ROLE_TARGET],
                               atol=1e-4)
    emb = np.repeat(inputs["embeddings"][:, None], 2, axis=1)
    np.testing.assert_allclose(out[roles == ROLE_OBSERVED], emb[roles == ROLE_OBSERVED],
                               atol=1e-4)
    assert np.all(out[roles == ROLE_PAD] == 0)


def test_masking_patterns():
    assert forecast_roles(6, 3).tolist() == [1, 1, 1, 2, 0, 0]
    assert planning_roles(7, 3, start=1).tolist() == [0, 1, 2, 2, 2, 1, 0]
    assert classification_roles(4, 1).tolist() == [1, 2, 2, 2]
    r = random_roles(200, 6, lengths=np.full(200, 4), rng=np.random.default_rng(0))
    assert (r[:, 4:] == ROLE_PAD).all()
    assert ((r == ROLE_OBSERVED).sum(1) >= 1).all() and ((r == ROLE_TARGET).sum(1) >= 1).all()
    plans = random_roles(50, 6, patterns=("infill",), rng=np.random.default_rng(1))
    assert (plans[:, 0] == ROLE_OBSERVED).all()
    for bad in (lambda: forecast_roles(5, 0), lambda: forecast_roles(5, 3, 3),
                lambda: planning_roles(5, 4), lambda: random_roles(2, 5, patterns=("x",))):
        with pytest.raises(ValueError):
            bad()


def test_time_distributions():
    seed_everything(0)
    uni = keras.ops.convert_to_numpy(_tiny(time_distribution="uniform").sample_time(4000))
    assert uni.min() >= 0 and uni.max() <= 1 and abs(uni.mean() - 0.5) < 0.03
    ln = keras.ops.convert_to_numpy(_tiny(time_mean=1.0, time_std=0.5).sample_time(4000))
    assert abs(np.median(ln) - 1 / (1 + np.exp(-1.0))) < 0.02
    with pytest.raises(ValueError, match="time_distribution"):
        _tiny(time_distribution="cosine")


def test_metrics_against_hand_computed_values():
    m = planning_metrics([[1, 2, 3], [3, 2, 1], [5, 5, 6]], [[1, 2, 3], [1, 2, 3], [5, 6, 7]])
    assert m["success_rate"] == pytest.approx(1 / 3)
    assert m["mean_accuracy"] == pytest.approx(5 / 9)  # 3 + 1 + 1 of 9
    assert m["miou"] == pytest.approx((1 + 1 + 2 / 3) / 3)  # {5,6} vs {5,6,7}
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], [1, 2]) == 2
    assert min_edit_distance([[[1, 2, 3, 4], [9, 9, 9, 9]], [[1, 1, 1, 1], [2, 2, 2, 2]]],
                             [[1, 2, 4, 4], [2, 2, 1, 2]]) == pytest.approx((1 + 1) / 2 / 4)
    assert top1_accuracy([0, 1, 1, 2], [0, 1, 2, 2]) == 0.75
    # Majority vote over K samples; a tie goes to the larger mean probability.
    assert majority_vote([[4, 2, 4], [0, 1, 2]]).tolist() == [4, 0]
    assert majority_vote([[1, 2, 2, 1]], [[0.0, 0.3, 0.7]]).tolist() == [2]
    with pytest.raises(ValueError):
        planning_metrics([[1, 2]], [[1, 2, 3]])


def test_grammar_oracle_plan_is_the_most_probable_path():
    g = StepGrammar(num_tasks=2, num_steps=5, seed=3)
    seqs, tasks = g.sample(6, 4, rng=np.random.default_rng(1))
    got = g.most_likely_path(seqs[:, 0], seqs[:, 3], tasks, 2)

    def prob(a, p, b, k):
        return g.transitions[k, a, p[0]] * g.transitions[k, p[0], p[1]] * g.transitions[k, p[1], b]

    for (a, b, k), path in zip(zip(seqs[:, 0], seqs[:, 3], tasks), got):
        best = max(prob(a, p, b, k) for p in itertools.product(range(5), repeat=2))
        assert best > 0 and prob(a, path, b, k) == pytest.approx(best)
    steps, tasks = g.sample(100, 6, rng=np.random.default_rng(0))
    assert (g.transitions[tasks[:, None], steps[:, :-1], steps[:, 1:]] > 0).all()


def test_annotations_and_embedding_cache(tmp_path):
    path = os.path.join(tmp_path, "steps.json")
    with open(path, "w") as f:
        json.dump([{"video": "b", "start": 3, "end": 4, "step": 7, "task": 1},
                   {"video": "a", "start": 0, "end": 2, "step": 5, "task": 0},
                   {"video": "b", "start": 0, "end": 1, "step": 6, "task": 1}], f)
    videos = read_step_annotations(path)
    assert [v["video"] for v in videos] == ["b", "a"]
    assert [s["step"] for s in videos[0]["segments"]] == [6, 7]
    segments = [{"video": v["video"], "task": v["task"], **s} for v in videos
                for s in v["segments"]]
    emb = np.arange(3 * 2, dtype="float32").reshape(3, 2)
    seq = StepSequences.from_cache(save_embedding_cache(tmp_path, emb, segments),
                                   max_length=3, min_length=1)
    assert seq.steps.tolist() == [[6, 7, -1], [5, -1, -1]]
    assert seq.tasks.tolist() == [1, 0] and seq.lengths.tolist() == [2, 1]
    np.testing.assert_array_equal(seq.embeddings[0, :2], emb[:2])
    with open(path, "w") as f:
        json.dump([{"video": "a", "start": 0, "end": 2, "step": 5}], f)
    with pytest.raises(ValueError, match="task"):
        read_step_annotations(path)


def test_config_round_trip_and_bad_input(inputs):
    model = _tiny(time_distribution="uniform", objective="flow")
    noise = np.zeros((3, L, D), "float32")
    t = np.full((3,), 0.5, "float32")
    run_serialization_test(model, call=lambda m: m(dict(inputs, noise=noise, t=t))["output"],
                           atol=1e-6)
    with pytest.raises(ValueError, match="objective"):
        _tiny(objective="ddpm")
    with pytest.raises(ValueError, match="embeddings"):
        model({"embeddings": np.zeros((1, L, D + 1), "float32"), "roles": inputs["roles"][:1]})


def test_fit_decreases_loss_and_compiled_sampler():
    seed_everything(0)
    rng = np.random.default_rng(0)
    # Two modes of the future: steps alternate a fixed pattern with a sign flip.
    base = rng.normal(size=(1, L, D)).astype("float32")
    sign = rng.choice([-1.0, 1.0], size=(256, 1, 1)).astype("float32")
    emb = base * sign + 0.05 * rng.normal(size=(256, L, D)).astype("float32")
    roles = random_roles(256, L, rng=rng)
    model = _tiny(hidden_dim=32)
    model.adapt(emb)
    fixed = {"embeddings": emb[:64], "roles": roles[:64],
             "noise": rng.normal(size=(64, L, D)).astype("float32"),
             "t": rng.uniform(size=(64,)).astype("float32")}

    def fixed_loss():
        return float(keras.ops.convert_to_numpy(model.compute_loss(fixed, y_pred=model(fixed))))

    before = fixed_loss()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit({"embeddings": emb, "roles": roles}, epochs=12, batch_size=32, verbose=0)
    after = fixed_loss()
    assert after < 0.85 * before, (before, after)
    test_roles = np.stack([forecast_roles(L, 2, 3)] * 4)
    out = model.sample(emb[:4], test_roles, num_samples=3, steps=2)
    assert out.shape == (4, 3, L, D)
    np.testing.assert_allclose(out[:, :, :2], np.repeat(emb[:4, None, :2], 3, axis=1),
                               atol=1e-4)
    assert np.isfinite(out).all() and not np.allclose(out[:, 0, 2:], out[:, 1, 2:])
