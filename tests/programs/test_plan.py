"""``keras-jepa plan``: the world's defaults reach the data, the training and the planners;
options given on the command line win; ``results.json`` holds the controllers' numbers.
The heavy steps are replaced by recorders (the guide runs the real pipeline)."""

import json

import numpy as np
import pytest

from keras_jepa import cli
from keras_jepa.models.ac.data import PointReachEnv, WallReachEnv
from keras_jepa.programs import plan


def _record(monkeypatch):
    calls = {}

    def pretrain_encoder(frames, steps, seed=0):
        calls["frames"] = frames
        return "encoder"

    def train_world_model(encoder, data, epochs, seed=0, learning_rate=None):
        calls["train"] = dict(data=data, epochs=epochs, learning_rate=learning_rate)
        return "model", {"loss": [1.0, 0.5]}

    def evaluate(model, env, episodes, steps, seed=0, **kwargs):
        calls["evaluate"] = dict(env=env, episodes=episodes, steps=steps, **kwargs)
        rows = {"greedy (1-step)": [0.01, 0.5, 0.5], "CEM (horizon 3)": [0.01, 0.01, 0.5]}
        return {name: dict(plan.summarize(d, env.success_radius), final_distances=d)
                for name, d in rows.items()}

    def landscape_plot(model, env, path, seed=0):
        return path, np.zeros(2), np.zeros(2)

    for name, fn in dict(pretrain_encoder=pretrain_encoder, train_world_model=train_world_model,
                         evaluate=evaluate, landscape_plot=landscape_plot).items():
        monkeypatch.setattr(plan, name, fn)
    return calls


def test_wall_world_defaults_reach_data_training_and_planner(monkeypatch, tmp_path):
    calls = _record(monkeypatch)
    out = tmp_path / "run"
    assert cli.main(["plan", "--world", "wall", "--trajectories", "6", "--out", str(out)]) == 0
    ev = calls["evaluate"]
    assert isinstance(ev["env"], WallReachEnv)
    assert ev["horizon"] == 3 and ev["energy_steps"] == "all" and ev["steps"] == 14
    assert calls["train"]["epochs"] == 40 and calls["train"]["learning_rate"] == 2e-3
    assert np.all(calls["train"]["data"]["states"] == 0.0)  # the wall world hides the state
    saved = json.loads((out / "results.json").read_text())
    assert saved["settings"]["world"] == "wall"
    assert saved["controllers"]["greedy (1-step)"]["success_rate"] == 1 / 3
    paired = saved["cem_vs_greedy"]
    assert (paired["a_only"], paired["b_only"], paired["p_value"]) == (1, 0, 1.0)


def test_open_world_keeps_the_official_planner_and_flags_win(monkeypatch, tmp_path):
    calls = _record(monkeypatch)
    assert cli.main(["plan", "--trajectories", "6", "--horizon", "2", "--energy-steps", "all",
                     "--out", str(tmp_path)]) == 0
    ev = calls["evaluate"]
    assert type(ev["env"]) is PointReachEnv and ev["steps"] == 10
    assert ev["horizon"] == 2 and ev["energy_steps"] == "all"
    assert calls["train"]["epochs"] == 12
    data = calls["train"]["data"]
    np.testing.assert_allclose(data["states"][:, 1:] - data["states"][:, :-1],
                               data["actions"], atol=1e-6)


def test_paired_comparison_counts_discordant_tasks_and_mcnemar_p():
    # Tasks: both reach, CEM alone x3, greedy alone x1, neither.
    cem = [0.01, 0.01, 0.02, 0.03, 0.5, 0.6]
    greedy = [0.02, 0.4, 0.3, 0.2, 0.05, 0.7]
    r = plan.paired_comparison(cem, greedy, success_radius=0.08)
    assert (r["episodes"], r["a_only"], r["b_only"]) == (6, 3, 1)
    # Two-sided exact binomial tail of 1 of 4 discordant tasks: 2 (1 + 4) / 16.
    assert abs(r["p_value"] - 0.625) < 1e-12
    diff = np.subtract(cem, greedy)
    assert abs(r["distance_difference"] - diff.mean()) < 1e-12
    lo, hi = r["distance_difference_interval"]
    assert lo < diff.mean() < hi
    # The same tasks for both: unequal lengths are refused.
    with pytest.raises(ValueError, match="same tasks"):
        plan.paired_comparison(cem, greedy[:-1], 0.08)


def test_seeds_run_once_each_and_pool_the_same_tasks(monkeypatch, tmp_path):
    calls = _record(monkeypatch)
    seeds = []
    original = plan.run_pipeline

    def run_pipeline(args, settings=None):
        seeds.append(settings["seed"])
        return original(args, settings)

    monkeypatch.setattr(plan, "run_pipeline", run_pipeline)
    assert cli.main(["plan", "--world", "wall", "--trajectories", "6", "--seeds", "3", "4",
                     "--out", str(tmp_path)]) == 0
    assert seeds == [3, 4] and calls["evaluate"]["episodes"] == 50
    assert (tmp_path / "seed_3" / "results.json").exists()
    pooled = json.loads((tmp_path / "pooled.json").read_text())
    assert pooled["seeds"] == [3, 4]
    greedy = pooled["controllers"]["greedy (1-step)"]
    assert greedy["episodes"] == 6 and abs(greedy["success_rate"] - 1 / 3) < 1e-12
    # Each run: CEM alone reaches one task; pooled, two of six.
    assert (pooled["cem_vs_greedy"]["a_only"], pooled["cem_vs_greedy"]["b_only"]) == (2, 0)
