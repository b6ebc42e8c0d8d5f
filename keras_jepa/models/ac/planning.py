"""Planning in the latent space of a V-JEPA 2-AC world model (official
``notebooks/utils/mpc_utils.py`` and ``world_model_wrapper.py``).

Energy. An action sequence ``a_0..a_{H-1}`` is rolled out from the encoded context frame
and the current end-effector state: step ``h`` runs the predictor on every frame so far
(the context, then its own layer-normed predictions), every action and every state so far,
keeps the last frame's tokens and layer-norms them; the next state is ``state + action``
(``pose_update="add"``), clipped to ``state_bounds``; ``pose_update="droid"`` is the
official 7-D pose update: xyz added, the rotation composed as ``R(delta) @ R(pose)``
through extrinsic ``xyz`` Euler angles, the gripper added and clipped to ``[0, 1]``. The energy is the official L1: ``mean |z_H - z_goal|`` over the tokens and
channels of the **final** predicted frame only. ``energy_steps="all"`` (not official) sums
that L1 over every predicted frame instead: with a horizon above one, the final-frame
energy leaves the first action (the one executed) free as long as the sequence ends at the
goal, so a receding-horizon controller wanders around a goal it has reached; the sum
prefers getting there early and staying.

Cross-entropy method (``cem``). A Gaussian over action sequences (mean 0, std
``init_std``) is refined for ``iterations`` rounds: draw ``num_samples`` sequences, clip
them to ``+-action_bound``, pin ``fixed`` dimensions, score them all in one batch, keep the
``top_k`` lowest energies, and move the mean and std towards the elites' mean and
(unbiased) std: ``new = (1 - m) * elite + m * old`` with ``momentum_mean`` /
``momentum_std``. The plan is the final mean. Defaults are those of the official ``cem``:
horizon 1, 100 samples, top 10, 100 iterations, momenta 0.25 / 0.95, ``maxnorm`` 0.05
(``init_std`` = ``action_bound``). The official ``WorldModel`` wrapper uses horizon 2, 400
samples, 10 iterations and momenta 0.15 / 0.15; its notebook horizon 2, 25 samples, 2
iterations, 0.15 / 0.75 and ``maxnorm`` 0.075. ``droid_cem_settings`` gives the per-dimension
settings of the official 7-D DROID actions (rotation pinned to 0, gripper bound 0.75, std
1, momenta 0.15, the DROID pose update, a planned gripper ``|g| < 0.25`` rounded to 0);
``close_gripper=k`` sets the sampled gripper action to 1 from horizon step ``k`` on, as
officially.

Everything runs as **one traced function** per planner (``predict_on_batch``: ``jax.jit``
on JAX, ``tf.function`` on TensorFlow; Keras runs torch eagerly unless the planner is
compiled with ``jit_compile=True``): the samples are a batch axis, the rounds an
``ops.fori_loop``, and the Gaussian noise of every round is drawn up front (numpy) and fed
in, so no random state lives in the graph.

``receding_horizon`` executes the first action of each plan in an environment and plans
again; ``energy_landscape`` scores a grid of actions around a reference and
``plot_energy_landscape`` saves it as a PNG.
"""

import keras
import numpy as np
from keras import ops

from keras_jepa.models.jepa.base import layer_norm_no_affine


def droid_cem_settings(maxnorm=0.05):
    """Per-dimension CEM settings of the official planner for 7-D DROID actions
    (xyz, Euler xyz, gripper): ``dict(action_bound, init_std, momentum_mean,
    momentum_std, fixed, pose_update, round_gripper)`` for :class:`CEMPlanner` (momenta
    are those of the official ``WorldModel``: 0.15 everywhere)."""
    m = float(maxnorm)
    return dict(
        action_bound=[m, m, m, 0.0, 0.0, 0.0, 0.75],
        init_std=[m, m, m, 0.0, 0.0, 0.0, 1.0],
        momentum_mean=[0.15] * 7,
        momentum_std=[0.15] * 7,
        fixed=[False, False, False, True, True, True, False],
        pose_update="droid",
        round_gripper=0.25,
    )


def _vector(value, dim, name):
    arr = np.broadcast_to(np.asarray(value, "float32"), (dim,)).copy()
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got {value!r}.")
    return arr


def euler_xyz_to_matrix(angles):
    """Rotation matrices ``(..., 3, 3)`` of extrinsic ``xyz`` Euler angles ``(..., 3)``
    (``R = Rz(c) @ Ry(b) @ Rx(a)``, scipy's ``from_euler("xyz", ...)``)."""
    angles = ops.cast(angles, "float32")
    ca, cb, cc = (ops.cos(angles[..., i]) for i in range(3))
    sa, sb, sc = (ops.sin(angles[..., i]) for i in range(3))
    rows = [[cc * cb, cc * sb * sa - sc * ca, cc * sb * ca + sc * sa],
            [sc * cb, sc * sb * sa + cc * ca, sc * sb * ca - cc * sa],
            [-sb, cb * sa, cb * ca]]
    return ops.stack([ops.stack(row, axis=-1) for row in rows], axis=-2)


def matrix_to_euler_xyz(matrix):
    """Extrinsic ``xyz`` Euler angles ``(..., 3)`` of rotation matrices ``(..., 3, 3)``
    (the inverse of ``euler_xyz_to_matrix`` away from gimbal lock, ``|b| < pi / 2``)."""
    a = ops.arctan2(matrix[..., 2, 1], matrix[..., 2, 2])
    b = -ops.arcsin(ops.clip(matrix[..., 2, 0], -1.0, 1.0))
    c = ops.arctan2(matrix[..., 1, 0], matrix[..., 0, 0])
    return ops.stack([a, b, c], axis=-1)


def droid_pose_update(pose, action):
    """The official 7-D pose update (``compute_new_pose``): ``pose, action (N, 7)`` = xyz,
    Euler xyz, gripper -> ``(N, 7)``."""
    rotation = ops.matmul(euler_xyz_to_matrix(action[:, 3:6]), euler_xyz_to_matrix(pose[:, 3:6]))
    return ops.concatenate([pose[:, :3] + action[:, :3], matrix_to_euler_xyz(rotation),
                            ops.clip(pose[:, 6:] + action[:, 6:], 0.0, 1.0)], axis=-1)


def rollout_energy(world_model, context, state, goal, actions, state_bounds=None,
                   energy_steps="final", pose_update="add"):
    """Energies ``(N,)`` of ``N`` action sequences ``actions (N, H, A)`` from one context.

    Args:
        world_model: a ``VJEPA2AC`` (its predictor is used; the encoder is not).
        context: layer-normed tokens of the context frame, ``(1, hw, D)`` or ``(hw, D)``.
        state: the current end-effector state ``(1, A)`` or ``(A,)``.
        goal: layer-normed tokens of the goal frame, like ``context``.
        state_bounds: ``(low, high)`` to clip the predicted states, or ``None``.
        energy_steps: ``"final"`` (official): the L1 of the last predicted frame;
            ``"all"``: the sum over every predicted frame.
        pose_update: ``"add"`` (``state + action``) or ``"droid"`` (``droid_pose_update``).
    """
    if pose_update not in ("add", "droid"):
        raise ValueError(f"pose_update must be 'add' or 'droid'; got {pose_update!r}.")
    if energy_steps not in ("final", "all"):
        raise ValueError(f"energy_steps must be 'final' or 'all'; got {energy_steps!r}.")
    num, horizon = actions.shape[0], actions.shape[1]
    hw = world_model.tokens_per_frame
    context = ops.reshape(ops.cast(context, "float32"), (1, hw, -1))
    goal = ops.reshape(ops.cast(goal, "float32"), (1, hw, -1))
    state = ops.reshape(ops.cast(state, "float32"), (1, -1))
    frames = ops.broadcast_to(context, (num, hw, context.shape[-1]))
    states = ops.broadcast_to(state, (num, state.shape[-1]))[:, None]
    actions = ops.cast(actions, "float32")
    nxt = frames
    total = 0.0

    def l1(pred):
        diff = ops.abs(pred - ops.broadcast_to(goal, ops.shape(pred)))
        return ops.mean(ops.reshape(diff, (num, -1)), axis=-1)

    for h in range(horizon):
        nxt = world_model.predict_next(frames, actions[:, :h + 1], states)
        if energy_steps == "all":
            total = total + l1(nxt)
        if h + 1 < horizon:
            frames = ops.concatenate([frames, nxt], axis=1)
            new = (droid_pose_update(states[:, -1], actions[:, h]) if pose_update == "droid"
                   else states[:, -1] + actions[:, h])
            if state_bounds is not None:
                new = ops.clip(new, state_bounds[0], state_bounds[1])
            states = ops.concatenate([states, new[:, None]], axis=1)
    return total if energy_steps == "all" else l1(nxt)


def cem(energy_fn, noise, init_mean, init_std, action_bound, top_k, momentum_mean,
        momentum_std, fixed=None, close_gripper=None):
    """The cross-entropy method with pre-drawn noise; returns ``(mean, std)`` ``(H, A)``.

    Args:
        energy_fn: ``actions (S, H, A) -> energies (S,)`` (keras ops).
        noise: standard normal ``(iterations, S, H, A)``.
        init_mean, init_std: ``(H, A)`` (or broadcastable) initial Gaussian.
        action_bound: ``(A,)``: samples are clipped to ``[-bound, bound]``.
        top_k: elites per round (>= 2: their std is the unbiased one).
        momentum_mean, momentum_std: ``(A,)`` momenta of the updates.
        fixed: ``(A,)`` bool: dimensions pinned to ``init_mean`` (the official ``axis``).
        close_gripper: horizon step from which the last action dimension is set to 1.

    Example (a quadratic energy with its minimum at 0.3):

    >>> import numpy as np
    >>> from keras import ops
    >>> noise = np.random.default_rng(0).normal(size=(30, 64, 1, 1)).astype("float32")
    >>> mean, _ = cem(lambda a: ops.sum((a - 0.3) ** 2, axis=(1, 2)), noise,
    ...               np.zeros((1, 1), "float32"), np.ones((1, 1), "float32"),
    ...               np.ones(1, "float32"), 8, np.zeros(1, "float32"),
    ...               np.zeros(1, "float32"))
    >>> bool(abs(float(ops.convert_to_numpy(mean)[0, 0]) - 0.3) < 0.01)
    True
    """
    noise = ops.cast(noise, "float32")
    iterations, _, horizon, dim = noise.shape
    if top_k < 2 or top_k > noise.shape[1]:
        raise ValueError(f"top_k must be in [2, samples={noise.shape[1]}]; got {top_k}.")
    bound = ops.convert_to_tensor(np.asarray(action_bound, "float32"))
    mm = ops.convert_to_tensor(np.asarray(momentum_mean, "float32"))
    ms = ops.convert_to_tensor(np.asarray(momentum_std, "float32"))
    mean = ops.broadcast_to(ops.cast(init_mean, "float32"), (horizon, dim))
    std = ops.broadcast_to(ops.cast(init_std, "float32"), (horizon, dim))
    pinned = None if fixed is None else ops.convert_to_tensor(np.asarray(fixed, bool))
    anchor = mean
    closed = None
    if close_gripper is not None:
        closed = np.zeros((horizon, dim), bool)
        closed[int(close_gripper):, -1] = True
        closed = ops.convert_to_tensor(closed)

    def body(i, carry):
        mean, std = carry
        eps = ops.take(noise, i, axis=0)
        samples = ops.clip(mean[None] + std[None] * eps, -bound, bound)
        if pinned is not None:
            samples = ops.where(pinned, anchor[None], samples)
        if closed is not None:
            samples = ops.where(closed[None], 1.0, samples)
        energies = energy_fn(samples)
        _, idx = ops.top_k(-energies, top_k)
        elites = ops.take(samples, idx, axis=0)
        e_mean = ops.mean(elites, axis=0)
        e_std = ops.sqrt(ops.sum(ops.square(elites - e_mean[None]), axis=0) / (top_k - 1))
        return ((1.0 - mm) * e_mean + mm * mean, (1.0 - ms) * e_std + ms * std)

    return ops.fori_loop(0, iterations, body, (mean, std))


class _Planner(keras.Model):
    """Shared pieces: the world model and the clipping of predicted states."""

    def __init__(self, world_model, state_bounds=None, energy_steps="final",
                 pose_update="add", **kwargs):
        super().__init__(**kwargs)
        self.world_model = world_model
        self.state_bounds = None if state_bounds is None else tuple(
            float(v) for v in state_bounds)
        if energy_steps not in ("final", "all"):
            raise ValueError(f"energy_steps must be 'final' or 'all'; got {energy_steps!r}.")
        self.energy_steps = energy_steps
        if pose_update not in ("add", "droid"):
            raise ValueError(f"pose_update must be 'add' or 'droid'; got {pose_update!r}.")
        self.pose_update = pose_update

    def _energy(self, inputs):
        return lambda actions: rollout_energy(
            self.world_model, inputs["context"][0], inputs["state"][0], inputs["goal"][0],
            actions, self.state_bounds, self.energy_steps, self.pose_update)


class CEMPlanner(_Planner):
    """Cross-entropy-method planner over action sequences (module docstring).

    ``planner.plan(context, state, goal, rng)`` returns the planned sequence ``(H, A)``
    (numpy); ``context`` and ``goal`` are the layer-normed tokens of one frame
    (``world_model.encode``), ``state`` the current end-effector state.

    Args:
        world_model: a ``VJEPA2AC``. ``None`` with ``energy_fn``: plan against any energy.
        horizon, num_samples, top_k, iterations: official ``cem`` defaults 1, 100, 10, 100.
        momentum_mean, momentum_std: 0.25, 0.95 (scalars or per action dimension).
        action_bound: ``maxnorm`` 0.05 (scalar or per dimension).
        init_std: initial std (default ``action_bound``).
        fixed: per-dimension bools: dimensions pinned to 0 (the official rotation).
        state_bounds: ``(low, high)`` clip of predicted states, or ``None``.
        energy_steps: ``"final"`` (official) or ``"all"`` (module docstring).
        pose_update: ``"add"`` or ``"droid"`` (module docstring).
        round_gripper: a planned last dimension below this in magnitude becomes 0
            (official 0.25 for DROID), or ``None``.
        close_gripper: horizon step from which the gripper action is 1, or ``None``.
        energy_fn: ``(actions (S, H, A), inputs) -> (S,)`` instead of the world model.
        action_dim: needed with ``energy_fn`` (else the predictor's).

    Example (a known quadratic energy, minimum at ``(0.02, -0.01)``):

    >>> import numpy as np
    >>> from keras import ops
    >>> target = ops.convert_to_tensor(np.array([0.02, -0.01], "float32"))
    >>> planner = CEMPlanner(None, energy_fn=lambda a, _: ops.sum((a - target) ** 2, (1, 2)),
    ...                      action_dim=2, iterations=20)
    >>> plan = planner.plan(None, None, None, np.random.default_rng(0))
    >>> bool(np.abs(plan[0] - ops.convert_to_numpy(target)).max() < 2e-3)
    True
    """

    def __init__(self, world_model, horizon=1, num_samples=100, top_k=10, iterations=100,
                 momentum_mean=0.25, momentum_std=0.95, action_bound=0.05, init_std=None,
                 fixed=None, state_bounds=None, energy_steps="final", pose_update="add",
                 round_gripper=None, close_gripper=None, energy_fn=None, action_dim=None,
                 **kwargs):
        super().__init__(world_model, state_bounds, energy_steps, pose_update, **kwargs)
        self.round_gripper = None if round_gripper is None else float(round_gripper)
        self.close_gripper = None if close_gripper is None else int(close_gripper)
        if world_model is None and energy_fn is None:
            raise ValueError("Pass a world_model or an energy_fn.")
        dim = int(action_dim or world_model.predictor.action_dim)
        self.action_dim = dim
        self.horizon = int(horizon)
        self.num_samples = int(num_samples)
        self.top_k = int(top_k)
        self.iterations = int(iterations)
        if not 2 <= self.top_k <= self.num_samples:
            raise ValueError(f"top_k must be in [2, num_samples={num_samples}]; got {top_k}.")
        if self.horizon < 1 or self.iterations < 1:
            raise ValueError(f"horizon and iterations must be >= 1; got {horizon}, "
                             f"{iterations}.")
        self.momentum_mean = _vector(momentum_mean, dim, "momentum_mean")
        self.momentum_std = _vector(momentum_std, dim, "momentum_std")
        self.action_bound = _vector(action_bound, dim, "action_bound")
        self.init_std = _vector(self.action_bound if init_std is None else init_std, dim,
                                "init_std")
        self.fixed = None if fixed is None else np.broadcast_to(
            np.asarray(fixed, bool), (dim,)).copy()
        self.energy_fn = energy_fn

    def call(self, inputs):
        energy = (self._energy(inputs) if self.energy_fn is None
                  else (lambda a: self.energy_fn(a, inputs)))
        zeros = np.zeros((self.horizon, self.action_dim), "float32")
        mean, std = cem(energy, inputs["noise"][0], zeros, self.init_std[None],
                        self.action_bound, self.top_k, self.momentum_mean,
                        self.momentum_std, self.fixed, self.close_gripper)
        if self.round_gripper is not None:
            small = np.zeros((self.horizon, self.action_dim), bool)
            small[:, -1] = True
            mean = ops.where(ops.logical_and(ops.convert_to_tensor(small),
                                             ops.abs(mean) < self.round_gripper), 0.0, mean)
        return {"plan": mean[None], "std": std[None]}

    def plan(self, context, state, goal, rng):
        """The planned action sequence ``(H, A)`` (numpy) from one context frame."""
        noise = rng.standard_normal(
            (1, self.iterations, self.num_samples, self.horizon, self.action_dim)
        ).astype("float32")
        inputs = {"noise": noise}
        if self.energy_fn is None:
            inputs.update(context=_one(context), state=_one(state), goal=_one(goal))
        out = self.predict_on_batch(inputs)
        return np.asarray(out["plan"])[0]


class EnergyModel(_Planner):
    """Energies of given action sequences: ``inputs["actions"] (1, N, H, A)`` -> ``(1, N)``
    (one compiled call scores all ``N``). The one-step greedy planner and the energy
    landscape use it."""

    def call(self, inputs):
        return self._energy(inputs)(inputs["actions"][0])[None]

    def energies(self, context, state, goal, actions):
        """``(N,)`` numpy energies of ``actions (N, H, A)``."""
        out = self.predict_on_batch(dict(context=_one(context), state=_one(state),
                                         goal=_one(goal),
                                         actions=np.asarray(actions, "float32")[None]))
        return np.asarray(out)[0]


class FrameEncoder(keras.Model):
    """The world model's ``encode`` as one compiled call: ``encode(frames (B, T, H, W, C))``
    -> layer-normed tokens ``(B, T * hw, D)`` (numpy), for control loops that encode one
    observation per step."""

    def __init__(self, world_model, **kwargs):
        super().__init__(**kwargs)
        self.world_model = world_model

    def call(self, frames):
        return self.world_model.encode(frames)

    def encode(self, frames):
        return np.asarray(self.predict_on_batch(np.asarray(frames, "float32")))


def _one(x):
    """One batch item as a ``(1, ...)`` float32 array (adds the axis if absent)."""
    x = np.asarray(keras.ops.convert_to_numpy(x), "float32")
    return x if x.ndim and x.shape[0] == 1 and x.ndim >= 2 else x[None]


def action_grid(bound, num, dim=2):
    """``(num ** dim, dim)`` evenly spaced actions in ``[-bound, bound] ** dim``."""
    axis = np.linspace(-bound, bound, num, dtype="float32")
    mesh = np.meshgrid(*([axis] * dim), indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=-1)


def greedy_action(energy_model, context, state, goal, candidates):
    """The one-step greedy planner: the candidate action ``(A,)`` whose one-step
    prediction is closest to the goal (``candidates (N, A)``, e.g. ``action_grid``)."""
    energies = energy_model.energies(context, state, goal, np.asarray(candidates)[:, None])
    return np.asarray(candidates)[int(np.argmin(energies))]


def receding_horizon(env, choose_action, steps):
    """Receding-horizon control: ``steps`` times, ``choose_action(env) -> (H, A) plan or
    (A,) action``; execute its first action with ``env.step`` and plan again. Returns the
    executed actions ``(steps, A)``."""
    executed = []
    for _ in range(int(steps)):
        action = np.asarray(choose_action(env), "float32")
        first = action[0] if action.ndim == 2 else action
        env.step(first)
        executed.append(first)
    return np.stack(executed)


def energy_landscape(energy_model, context, state, goal, center, radius, num=21,
                     dims=(0, 1)):
    """Energies of one-step actions on a ``num x num`` grid around ``center (A,)``, over
    action dimensions ``dims`` (others stay at ``center``), spanning ``+-radius``.

    Returns ``(grid (num, num), axis_values (num,) per swept dimension)``: ``grid[i, j]``
    is the energy of ``center`` with ``dims[0]`` moved by ``axis[0][i]`` and ``dims[1]``
    by ``axis[1][j]``.
    """
    center = np.asarray(center, "float32")
    offsets = np.linspace(-radius, radius, num, dtype="float32")
    axes = [center[d] + offsets for d in dims]
    actions = np.repeat(center[None], num * num, axis=0)
    ii, jj = np.meshgrid(np.arange(num), np.arange(num), indexing="ij")
    actions[:, dims[0]] = axes[0][ii.ravel()]
    actions[:, dims[1]] = axes[1][jj.ravel()]
    energies = energy_model.energies(context, state, goal, actions[:, None])
    return energies.reshape(num, num), axes


def plot_energy_landscape(grid, axes, path, truth=None, title="V-JEPA 2-AC energy",
                          labels=("action 0", "action 1")):
    """Saves the energy ``grid`` of ``energy_landscape`` as a heat map PNG at ``path``
    (matplotlib, Agg), marking its minimum and, if given, the true action ``truth``.
    Returns ``path``, or ``None`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(4.5, 4))
    extent = [axes[1][0], axes[1][-1], axes[0][0], axes[0][-1]]
    image = ax.imshow(grid, origin="lower", extent=extent, aspect="auto", cmap="viridis")
    fig.colorbar(image, ax=ax, label="L1 to goal")
    i, j = np.unravel_index(np.argmin(grid), grid.shape)
    ax.plot(axes[1][j], axes[0][i], "w+", markersize=12, label="minimum")
    if truth is not None:
        ax.plot(truth[1], truth[0], "rx", markersize=10, label="true action")
    ax.set_xlabel(labels[1])
    ax.set_ylabel(labels[0])
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
