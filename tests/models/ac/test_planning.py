"""Latent planning: CEM finds the optimum of a known quadratic energy (compiled, bounds
and pinned dimensions respected), the rollout energy is repeated one-step prediction with
the official L1, CEM on a world model beats a grid search, receding-horizon control runs
the first action and re-plans, the energy landscape and greedy planner agree."""

import os

import keras
import numpy as np
import pytest
from keras import ops

from keras_jepa.models.ac.data import PointReachEnv
from keras_jepa.models.ac.model import VJEPA2AC
from keras_jepa.models.ac.planning import (
    CEMPlanner,
    EnergyModel,
    action_grid,
    droid_cem_settings,
    energy_landscape,
    greedy_action,
    plot_energy_landscape,
    receding_horizon,
)
from keras_jepa.models.vit.vision_transformer import VisionTransformer
from tests.test_case import to_numpy



@pytest.fixture(autouse=True, scope="module")
def _fast_init(fast_jax_initializers):
    yield

@pytest.fixture(scope="module")
def world():
    keras.utils.set_random_seed(0)
    enc = VisionTransformer(image_size=16, patch_size=8, num_frames=2, hidden_dim=24,
                            depth=1, num_heads=2, position_embedding="rope")
    model = VJEPA2AC(enc, predictor_kwargs=dict(hidden_dim=24, depth=1, num_heads=2,
                                                action_dim=2, max_steps=4, init_std=0.3))
    rng = np.random.default_rng(0)
    context, goal = (_normed(rng.normal(0, 1, (1, 4, 24))) for _ in range(2))
    return model, context, goal, np.array([0.2, -0.1], "float32")


def _normed(x):
    x = x - x.mean(-1, keepdims=True)
    return (x / np.sqrt((x ** 2).mean(-1, keepdims=True) + 1e-5)).astype("float32")


def test_cem_finds_quadratic_optimum():
    target = np.array([[0.03, -0.02, 0.01], [-0.01, 0.04, -0.03]], "float32")  # (H=2, A=3)
    weights = ops.convert_to_tensor(np.array([1.0, 3.0, 0.5], "float32"))

    def energy(actions, _):
        return ops.sum(weights * ops.square(actions - ops.convert_to_tensor(target)),
                       axis=(1, 2))

    # The official cem defaults: 100 samples, top 10, 100 rounds, momenta 0.25 / 0.95.
    planner = CEMPlanner(None, energy_fn=energy, action_dim=3, horizon=2)
    plan = planner.plan(None, None, None, np.random.default_rng(0))
    np.testing.assert_allclose(plan, target, atol=3e-3)
    # An optimum outside the bounds: CEM ends at the bound; a pinned dimension stays 0.
    far = CEMPlanner(None, energy_fn=lambda a, _: ops.sum(ops.square(a - 0.5), axis=(1, 2)),
                     action_dim=3, horizon=2, iterations=30, fixed=[False, True, False])
    plan = far.plan(None, None, None, np.random.default_rng(1))
    np.testing.assert_allclose(plan[:, [0, 2]], 0.05, atol=2e-3)
    assert np.all(plan[:, 1] == 0.0)


def test_droid_settings_pin_rotation():
    settings = droid_cem_settings(0.075)
    assert settings["fixed"] == [False, False, False, True, True, True, False]
    assert settings["action_bound"][-1] == 0.75 and settings["init_std"][0] == 0.075


def test_rollout_energy_is_repeated_one_step_prediction(world):
    model, context, goal, state = world
    actions = np.random.default_rng(1).uniform(-0.3, 0.3, (5, 2, 2)).astype("float32")
    energies = EnergyModel(model, state_bounds=(-0.25, 0.25)).energies(
        context, state, goal, actions)
    ctx = np.repeat(context, 5, axis=0)
    s0 = np.repeat(state[None, None], 5, axis=0)
    z1 = to_numpy(model.predict_next(ctx, actions[:, :1], s0))
    s1 = np.clip(state + actions[:, :1], -0.25, 0.25)
    z2 = to_numpy(model.predict_next(np.concatenate([ctx, z1], axis=1), actions,
                                     np.concatenate([s0, s1], axis=1)))
    np.testing.assert_allclose(energies, np.abs(z2 - goal).mean(axis=(1, 2)), atol=1e-5)
    # Not the energy of the first predicted frame: only the final one counts.
    assert np.abs(energies - np.abs(z1 - goal).mean(axis=(1, 2))).max() > 1e-4
    # energy_steps="all": the sum over both predicted frames.
    every = EnergyModel(model, state_bounds=(-0.25, 0.25), energy_steps="all").energies(
        context, state, goal, actions)
    np.testing.assert_allclose(every, np.abs(z1 - goal).mean(axis=(1, 2))
                               + np.abs(z2 - goal).mean(axis=(1, 2)), atol=1e-5)
    with pytest.raises(ValueError, match="energy_steps"):
        CEMPlanner(model, energy_steps="last")
    with pytest.raises(ValueError, match="pose_update"):
        EnergyModel(model, pose_update="euler")


def test_cem_on_world_model_beats_grid_and_greedy_agrees(world, tmp_path):
    model, context, goal, state = world
    energy = EnergyModel(model)
    landscape, axes = energy_landscape(energy, context, state, goal, [0.0, 0.0], 0.3, num=7)
    grid = action_grid(0.3, 7)
    np.testing.assert_allclose(axes[0], np.linspace(-0.3, 0.3, 7), atol=1e-6)
    best = greedy_action(energy, context, state, goal, grid)
    np.testing.assert_array_equal(best, grid[np.argmin(landscape)])
    planner = CEMPlanner(model, horizon=1, num_samples=48, top_k=6, iterations=6,
                         action_bound=0.3, momentum_mean=0.25, momentum_std=0.5)
    plan = planner.plan(context, state, goal, np.random.default_rng(0))
    assert plan.shape == (1, 2) and np.all(np.abs(plan) <= 0.3)
    planned = energy.energies(context, state, goal, np.repeat(plan[None], 49, axis=0))[0]
    assert planned <= landscape.min() + 1e-4
    path = plot_energy_landscape(landscape, axes, str(tmp_path / "energy.png"), truth=best)
    assert path is None or os.path.getsize(path) > 1000


def test_receding_horizon_executes_first_action_and_replans():
    env = PointReachEnv()
    env.reset(np.random.default_rng(0), start=[0.2, 0.2], goal=[0.8, 0.5])
    calls = []

    def plan(e):
        calls.append(e.state.copy())
        step = np.clip(e.goal - e.state, -e.max_step, e.max_step)
        return np.stack([step, -step])  # a 2-step plan: only the first row is executed

    executed = receding_horizon(env, plan, 8)
    assert len(calls) == 8 and np.allclose(calls[1], calls[0] + executed[0])
    assert env.success and env.distance < 1e-5


def test_droid_pose_update_composes_rotations_as_scipy():
    from scipy.spatial.transform import Rotation

    from keras_jepa.models.ac.planning import droid_pose_update

    rng = np.random.default_rng(4)
    pose = np.concatenate([rng.normal(0, 0.3, (6, 3)), rng.uniform(-1.2, 1.2, (6, 3)),
                           rng.uniform(0, 1, (6, 1))], axis=1).astype("float32")
    action = np.concatenate([rng.normal(0, 0.05, (6, 3)), rng.uniform(-0.3, 0.3, (6, 3)),
                             rng.uniform(-0.75, 0.75, (6, 1))], axis=1).astype("float32")
    out = to_numpy(droid_pose_update(pose, action))
    rot = (Rotation.from_euler("xyz", action[:, 3:6]) * Rotation.from_euler("xyz", pose[:, 3:6]))
    np.testing.assert_allclose(out[:, :3], pose[:, :3] + action[:, :3], atol=1e-6)
    np.testing.assert_allclose(out[:, 3:6], rot.as_euler("xyz"), atol=2e-5)
    np.testing.assert_allclose(out[:, 6], np.clip(pose[:, 6] + action[:, 6], 0, 1), atol=1e-6)


def test_cem_gripper_rounding_and_close_gripper():
    def energy_to(target):
        t = ops.convert_to_tensor(np.asarray(target, "float32"))
        return lambda a, _: ops.sum(ops.square(a - t), axis=(1, 2))

    # A planned gripper of 0.1 is rounded to 0 (|g| < 0.25), one of 0.5 is kept.
    for goal, expected in ((0.1, 0.0), (0.5, 0.5)):
        planner = CEMPlanner(None, energy_fn=energy_to([[0.02, goal]]), action_dim=2,
                             action_bound=[0.05, 0.75], init_std=[0.05, 1.0], round_gripper=0.25)
        plan = planner.plan(None, None, None, np.random.default_rng(0))
        assert abs(plan[0, 1] - expected) < 0.02 and abs(plan[0, 0] - 0.02) < 3e-3
    # close_gripper=1: from the second step on, every sample's gripper is 1.
    planner = CEMPlanner(None, energy_fn=energy_to([[0.0, -0.5]] * 3), action_dim=2, horizon=3,
                         action_bound=[0.05, 0.75], init_std=[0.05, 1.0], close_gripper=1)
    plan = planner.plan(None, None, None, np.random.default_rng(1))
    np.testing.assert_allclose(plan[1:, 1], 1.0, atol=1e-5)
    assert abs(plan[0, 1] + 0.5) < 0.02
