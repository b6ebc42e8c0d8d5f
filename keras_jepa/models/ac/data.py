"""A world to run V-JEPA 2-AC on a CPU: a 2-D point reaching a goal, seen through
32-pixel images.

``PointReachEnv``: the end effector is a point ``p`` in the unit square; an action is a
2-D displacement, clipped to ``[-max_step, max_step]`` per axis, and the (known, exact)
dynamics are ``p <- clip(p + a, margin, 1 - margin)``. Observations are RGB images: a dark
floor with a faint fixed checker pattern (so every patch has content), a red disc at
``p`` (anti-aliased, so sub-pixel moves change the image) and a wide soft green glow
around it (a Gaussian of std ``glow_sigma``). The glow is what makes image (and latent)
distances grow with the distance between positions beyond the disc's own width: without
it, any two images whose discs do not overlap are equally far apart, and a goal 0.3 away
gives a planner nothing to follow. The end-effector state given to
the predictor is ``p`` itself (2-D, like the 7-D DROID pose); a goal is an image of the disc
at the goal position. ``random_trajectories`` gives random-action training data in the
layout ``VJEPA2AC.fit`` takes.
"""

import numpy as np


class PointReachEnv:
    """The reaching world (module docstring).

    Args:
        image_size: pixels per side (32).
        max_step: largest displacement per axis and step (0.1 of the square).
        radius: disc radius, in units of the square (0.12).
        margin: the point stays in ``[margin, 1 - margin]``.
        success_radius: ``success`` is ``distance < success_radius`` (0.08).
        glow_sigma: std of the green glow, in units of the square (0.3; 0 turns it off).

    Example:

    >>> env = PointReachEnv()
    >>> obs = env.reset(np.random.default_rng(0))
    >>> obs.shape, env.state.shape
    ((32, 32, 3), (2,))
    >>> d0 = env.distance; _ = env.step(np.clip(env.goal - env.state, -0.1, 0.1))
    >>> bool(env.distance < d0)
    True
    """

    action_dim = 2

    def __init__(self, image_size=32, max_step=0.1, radius=0.12, margin=0.1,
                 success_radius=0.08, glow_sigma=0.3):
        self.image_size = int(image_size)
        self.max_step = float(max_step)
        self.radius = float(radius)
        self.margin = float(margin)
        self.success_radius = float(success_radius)
        self.glow_sigma = float(glow_sigma)
        n = self.image_size
        centers = (np.arange(n, dtype=np.float32) + 0.5) / n
        self._yy, self._xx = np.meshgrid(centers, centers, indexing="ij")
        cells = (np.arange(n)[:, None] // 4 + np.arange(n)[None, :] // 4) % 2
        floor = 0.12 + 0.06 * cells.astype(np.float32)
        self._floor = np.stack([floor, floor, floor * 1.3], axis=-1)
        self.state = np.full(2, 0.5, np.float32)
        self.goal = np.full(2, 0.5, np.float32)

    @property
    def bounds(self):
        """``(low, high)`` of the point's coordinates."""
        return self.margin, 1.0 - self.margin

    def render(self, position):
        """The ``(S, S, 3)`` float32 image (values in ``[0, 1]``) of the point at
        ``position (2,)`` = ``(x, y)``."""
        x, y = float(position[0]), float(position[1])
        dist = np.sqrt((self._xx - x) ** 2 + (self._yy - y) ** 2)
        alpha = np.clip((self.radius - dist) * self.image_size + 0.5, 0.0, 1.0)[..., None]
        disc = np.array([0.95, 0.25, 0.15], np.float32)
        image = self._floor * (1 - alpha) + disc * alpha
        if self.glow_sigma > 0:
            glow = np.exp(-dist ** 2 / (2 * self.glow_sigma ** 2))
            image[..., 1] += 0.6 * glow
        return np.clip(image, 0.0, 1.0).astype(np.float32)

    def sample_position(self, rng):
        low, high = self.bounds
        return rng.uniform(low, high, 2).astype(np.float32)

    def reset(self, rng, start=None, goal=None, min_distance=0.3):
        """Starts an episode (random start and goal at least ``min_distance`` apart, unless
        given); returns the first observation."""
        self.state = (np.asarray(start, np.float32) if start is not None
                      else self.sample_position(rng))
        if goal is None:
            goal = self.sample_position(rng)
            while np.linalg.norm(goal - self.state) < min_distance:
                goal = self.sample_position(rng)
        self.goal = np.asarray(goal, np.float32)
        return self.observe()

    def clip_action(self, action):
        return np.clip(np.asarray(action, np.float32), -self.max_step, self.max_step)

    def next_state(self, state, action):
        """The known dynamics: ``clip(state + clip(action), margin, 1 - margin)``."""
        low, high = self.bounds
        return np.clip(state + self.clip_action(action), low, high).astype(np.float32)

    def step(self, action):
        """Applies ``action``; returns the new observation."""
        self.state = self.next_state(self.state, action)
        return self.observe()

    def observe(self):
        return self.render(self.state)

    def goal_image(self):
        return self.render(self.goal)

    @property
    def distance(self):
        """Euclidean distance from the point to the goal."""
        return float(np.linalg.norm(self.state - self.goal))

    @property
    def success(self):
        return self.distance < self.success_radius


def random_trajectories(env, num, steps, rng):
    """``num`` random-action trajectories of ``steps`` frames: ``{"frames" (num, steps, S,
    S, 3), "actions" (num, steps - 1, 2), "states" (num, steps, 2)}`` (float32), with
    uniform actions in ``[-max_step, max_step]`` and uniform random starts.

    Example:

    >>> data = random_trajectories(PointReachEnv(), 3, 4, np.random.default_rng(0))
    >>> {k: v.shape for k, v in data.items()}["actions"]
    (3, 3, 2)
    """
    size = env.image_size
    frames = np.zeros((num, steps, size, size, 3), np.float32)
    actions = rng.uniform(-env.max_step, env.max_step, (num, steps - 1, 2)).astype(np.float32)
    states = np.zeros((num, steps, 2), np.float32)
    for i in range(num):
        state = env.sample_position(rng)
        for t in range(steps):
            states[i, t] = state
            frames[i, t] = env.render(state)
            if t < steps - 1:
                state = env.next_state(state, actions[i, t])
    # Actions as executed (clipping at the walls included), so they explain the frames.
    actions = states[:, 1:] - states[:, :-1]
    return {"frames": frames, "actions": actions.astype(np.float32), "states": states}
