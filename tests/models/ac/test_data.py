"""The reaching world: known dynamics (clipped actions and walls), images that move with
the point, image distances that grow with position distance (the glow), and random
trajectories whose actions explain their states."""

import numpy as np

from keras_jepa.models.ac.data import PointReachEnv, WallReachEnv, random_trajectories


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


def test_wall_stops_the_point_and_it_slides_along():
    env = WallReachEnv()
    x0, y0, x1, y1 = env.wall
    # Straight at the wall: stops with the disc touching it, never inside.
    state = np.array([0.2, 0.5], np.float32)
    for _ in range(5):
        state = env.next_state(state, [0.15, 0.0])
        assert not env.blocked(state)
    assert abs(state[0] - (x0 - env.radius)) < 0.15 / env.substeps + 1e-6
    # A diagonal push slides along the wall: y moves, x stays.
    slid = env.next_state(state, [0.15, 0.1])
    assert abs(slid[0] - state[0]) < 0.15 / env.substeps + 1e-6 and slid[1] > state[1] + 0.09
    # Free space: the plain dynamics.
    np.testing.assert_allclose(env.next_state([0.2, 0.15], [0.05, -0.02]), [0.25, 0.13],
                               atol=1e-6)
    # The wall is drawn (light) in every image, where it is.
    image = env.render([0.2, 0.5])
    assert image[16, 15].mean() > 0.7 and image[2, 15].mean() < 0.5


def test_wall_tasks_cross_the_wall_and_one_step_greed_gets_stuck():
    env = WallReachEnv()
    rng = np.random.default_rng(0)
    for _ in range(20):
        start, goal = env.sample_task(rng)
        assert not env.blocked(start) and not env.blocked(goal)
        assert (start[0] - 0.5) * (goal[0] - 0.5) < 0  # opposite sides
        assert env.wall[1] < start[1] < env.wall[3] and env.wall[1] < goal[1] < env.wall[3]
        # Greedy on the true distance: stuck against the wall, short of the goal.
        env.reset(rng, start=start, goal=goal)
        for _ in range(15):
            env.step(np.clip(env.goal - env.state, -env.max_step, env.max_step))
        assert env.distance > 0.25


def test_wall_trajectories_command_actions_and_hide_the_state():
    env = WallReachEnv()
    data = random_trajectories(env, 40, 4, np.random.default_rng(2), persistent=0.5,
                               near_obstacle=0.5)
    assert np.all(data["states"] == 0.0)
    # Commanded actions: some do not explain the motion (the wall stopped the point).
    positions = [[np.argwhere(f[..., 0] > 0.9).mean(0) for f in row] for row in data["frames"]]
    moved = np.abs(np.diff(np.array(positions), axis=1)).sum(-1) / env.image_size
    assert np.any(moved + 0.05 < np.abs(data["actions"]).sum(-1))
    # Persistent trajectories repeat their first action.
    same = np.all(np.abs(data["actions"] - data["actions"][:, :1]) < 1e-7, axis=(1, 2))
    assert 10 <= same.sum() <= 30
    near = env.sample_near_obstacle(np.random.default_rng(3))
    assert not env.blocked(near) and abs(near[0] - 0.5) < 0.25
