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

``WallReachEnv`` puts a wall in the middle of the square, between every start and its goal.
Moving straight at the goal ends pressed against the wall, where no single step brings the
point closer: a one-step greedy planner stops there, while a planner that looks a few steps
ahead goes round an end of the wall. The point slides along the wall (each step is done in
small sub-steps, one axis at a time, and a sub-step into the wall is undone). The predictor
gets the *commanded* actions and no end-effector state (zeros): it has to learn from the
images where the wall stops the point (with the executed displacement as the action, or
the true position as the state, contact would be given away and the planner's state update
``state + action``, the official one, would walk through the wall).
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

    #: ``random_trajectories`` labels actions with the executed displacement.
    action_labels = "executed"

    def sample_position(self, rng):
        low, high = self.bounds
        while True:
            position = rng.uniform(low, high, 2).astype(np.float32)
            if not self.blocked(position):
                return position

    def blocked(self, position):
        """Whether ``position`` is inside an obstacle (none here)."""
        return False

    def sample_near_obstacle(self, rng):
        """A free position next to an obstacle (anywhere, without one)."""
        return self.sample_position(rng)

    def proprio(self, state):
        """The end-effector state the predictor and planners see (here the position)."""
        return np.asarray(state, np.float32)

    @property
    def proprio_bounds(self):
        """Clip of the planners' predicted end-effector states."""
        return self.bounds

    def sample_task(self, rng, min_distance=0.3):
        """A ``(start, goal)`` pair for an evaluation episode (at least ``min_distance``
        apart)."""
        start = self.sample_position(rng)
        goal = self.sample_position(rng)
        while np.linalg.norm(goal - start) < min_distance:
            goal = self.sample_position(rng)
        return start, goal

    def reset(self, rng, start=None, goal=None, min_distance=0.3):
        """Starts an episode (random start and goal at least ``min_distance`` apart, unless
        given); returns the first observation."""
        if start is None or goal is None:
            task = self.sample_task(rng, min_distance)
            start = task[0] if start is None else start
            goal = task[1] if goal is None else goal
        self.state = np.asarray(start, np.float32)
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


class WallReachEnv(PointReachEnv):
    """The reaching world with a wall between start and goal (module docstring).

    Args:
        wall: the drawn wall ``(x0, y0, x1, y1)`` in units of the square. The point's
            centre may not come closer to it than ``radius`` (the disc touches the wall).
        max_step: 0.15 per axis; radius 0.07 (the disc); the rest as ``PointReachEnv``.

    Evaluation tasks (``sample_task``) start on one side of the wall and end on the other,
    both at heights the wall covers, so the straight line to the goal runs into the wall.

    Example:

    >>> env = WallReachEnv()
    >>> _ = env.reset(np.random.default_rng(0), start=[0.2, 0.5], goal=[0.8, 0.5])
    >>> for _ in range(4):
    ...     _ = env.step([0.15, 0.0])
    >>> round(float(env.state[0]), 2), bool(env.success)   # pressed against the wall
    (0.39, False)
    >>> env.proprio(env.state).tolist()                      # no end-effector state
    [0.0, 0.0]
    """

    action_labels = "commanded"

    def __init__(self, wall=(0.47, 0.35, 0.53, 0.65), max_step=0.15, radius=0.07,
                 substeps=8, **kwargs):
        super().__init__(max_step=max_step, radius=radius, **kwargs)
        self.wall = tuple(float(v) for v in wall)
        self.substeps = int(substeps)
        x0, y0, x1, y1 = self.wall
        inside = ((self._xx >= x0) & (self._xx <= x1) & (self._yy >= y0) & (self._yy <= y1))
        self._wall_mask = inside[..., None].astype(np.float32)

    def blocked(self, position):
        x0, y0, x1, y1 = self.wall
        r = self.radius
        return bool(x0 - r < position[0] < x1 + r and y0 - r < position[1] < y1 + r)

    def sample_near_obstacle(self, rng, gap=0.12):
        """A free position at most ``gap`` from the wall's blocked rectangle."""
        x0, y0, x1, y1 = self.wall
        r = self.radius
        while True:
            position = rng.uniform([x0 - r - gap, y0 - r - gap],
                                   [x1 + r + gap, y1 + r + gap]).astype(np.float32)
            low, high = self.bounds
            if np.all((position >= low) & (position <= high)) and not self.blocked(position):
                return position

    def proprio(self, state):
        return np.zeros(2, np.float32)

    @property
    def proprio_bounds(self):
        return 0.0, 0.0

    def render(self, position):
        image = super().render(position)
        wall = np.array([0.75, 0.75, 0.8], np.float32)
        return (image * (1 - self._wall_mask) + wall * self._wall_mask).astype(np.float32)

    def next_state(self, state, action):
        """Sub-steps, one axis at a time; a sub-step into the wall or out of the square is
        undone (so the point slides along the wall)."""
        low, high = self.bounds
        position = np.asarray(state, np.float32).copy()
        delta = self.clip_action(action) / self.substeps
        for _ in range(self.substeps):
            for axis in (0, 1):
                moved = position.copy()
                moved[axis] = np.clip(moved[axis] + delta[axis], low, high)
                if not self.blocked(moved):
                    position = moved
        return position.astype(np.float32)

    def sample_task(self, rng, min_distance=0.3):
        x0, y0, x1, y1 = self.wall
        low, high = self.bounds
        ys = rng.uniform(y0 + 0.03, y1 - 0.03, 2)
        near = rng.uniform(low, x0 - self.radius - 0.1)
        far = rng.uniform(x1 + self.radius + 0.1, high)
        start, goal = np.array([near, ys[0]]), np.array([far, ys[1]])
        if rng.random() < 0.5:
            start[0], goal[0] = 1.0 - start[0], 1.0 - goal[0]
        return start.astype(np.float32), goal.astype(np.float32)


def random_trajectories(env, num, steps, rng, persistent=0.0, near_obstacle=0.0):
    """``num`` random-action trajectories of ``steps`` frames: ``{"frames" (num, steps, S,
    S, 3), "actions" (num, steps - 1, 2), "states" (num, steps, 2)}`` (float32), with
    uniform actions in ``[-max_step, max_step]`` and uniform random starts. Actions are the
    executed displacements or the commanded ones (``env.action_labels``); states are
    ``env.proprio`` of the positions. A fraction ``persistent`` of the trajectories repeat
    their first action (so they push into walls for several steps, as a teleoperator
    reaching for something does); the rest draw each action independently. A fraction
    ``near_obstacle`` start next to an obstacle (``env.sample_near_obstacle``).

    Example:

    >>> data = random_trajectories(PointReachEnv(), 3, 4, np.random.default_rng(0))
    >>> {k: v.shape for k, v in data.items()}["actions"]
    (3, 3, 2)
    """
    size = env.image_size
    frames = np.zeros((num, steps, size, size, 3), np.float32)
    actions = rng.uniform(-env.max_step, env.max_step, (num, steps - 1, 2)).astype(np.float32)
    repeat = rng.random(num) < persistent
    actions[repeat] = actions[repeat, :1]
    states = np.zeros((num, steps, 2), np.float32)
    near = rng.random(num) < near_obstacle
    for i in range(num):
        state = env.sample_near_obstacle(rng) if near[i] else env.sample_position(rng)
        for t in range(steps):
            states[i, t] = state
            frames[i, t] = env.render(state)
            if t < steps - 1:
                state = env.next_state(state, actions[i, t])
    if env.action_labels == "executed":
        # Clipping at the border included, so the actions explain the frames.
        actions = states[:, 1:] - states[:, :-1]
    states = np.stack([[env.proprio(s) for s in row] for row in states]).astype(np.float32)
    return {"frames": frames, "actions": actions.astype(np.float32), "states": states}
