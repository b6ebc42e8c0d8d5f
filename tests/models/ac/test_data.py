"""The reaching world: known dynamics (clipped actions and walls), images that move with
the point, image distances that grow with position distance (the glow), and random
trajectories whose actions explain their states."""

import numpy as np

from keras_jepa.models.ac.data import PointReachEnv, random_trajectories


def test_dynamics_clip_actions_and_walls():
    env = PointReachEnv()
    env.reset(np.random.default_rng(0), start=[0.5, 0.85], goal=[0.5, 0.2])
    env.step([0.5, 0.5])  # clipped to 0.1 per axis, then to the wall at 0.9
    np.testing.assert_allclose(env.state, [0.6, 0.9], atol=1e-6)
    assert not env.success and abs(env.distance - np.hypot(0.1, 0.7)) < 1e-6


def test_images_follow_the_point_and_distances_grow():
    env = PointReachEnv()
    a, b = env.render([0.3, 0.3]), env.render([0.3, 0.3])
    np.testing.assert_array_equal(a, b)
    assert a.shape == (32, 32, 3) and 0.0 <= a.min() and a.max() <= 1.0
    # The disc is red where the point is (x is the column, y the row).
    assert a[9, 9, 0] > 0.9 and a[22, 22, 0] < 0.5
    gaps = [np.abs(env.render([0.2 + d, 0.5]) - env.render([0.2, 0.5])).mean()
            for d in (0.0, 0.2, 0.4, 0.6)]
    assert gaps[0] == 0.0 and gaps[1] < gaps[2] < gaps[3]
    # Without the glow, far positions all look equally far (why the glow is there).
    flat = PointReachEnv(glow_sigma=0.0)
    far = [np.abs(flat.render([0.2 + d, 0.5]) - flat.render([0.2, 0.5])).mean()
           for d in (0.4, 0.6)]
    assert abs(far[0] - far[1]) < 0.01 * far[0]
    assert gaps[3] - gaps[2] > 0.1 * gaps[2]


def test_random_trajectories_actions_explain_states():
    env = PointReachEnv()
    data = random_trajectories(env, 6, 5, np.random.default_rng(1))
    assert data["frames"].shape == (6, 5, 32, 32, 3)
    np.testing.assert_allclose(data["states"][:, 1:] - data["states"][:, :-1],
                               data["actions"], atol=1e-6)
    assert np.abs(data["actions"]).max() <= env.max_step + 1e-6
    np.testing.assert_allclose(data["frames"][2, 3], env.render(data["states"][2, 3]))
