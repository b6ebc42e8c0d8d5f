"""``keras-jepa plan``: the world's defaults reach the data, the training and the planners;
options given on the command line win; ``results.json`` holds the controllers' numbers.
The heavy steps are replaced by recorders (the guide runs the real pipeline)."""

import json

import numpy as np

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
        return {"greedy": plan.summarize([0.01, 0.5], env.success_radius)}

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
    assert saved["controllers"]["greedy"]["success_rate"] == 0.5


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
