"""VEDIT: latent diffusion over frozen clip embeddings of procedural video.

VEDIT ("Latent Prediction Architecture For Procedural Video Representation Learning", Lin et
al., ICLR 2025) keeps a public visual encoder frozen, turns each step segment of a video into
one clip embedding, and trains a diffusion transformer that *generates* the embeddings of
unseen steps conditioned on the observed ones. Light attentive classifiers then read the
generated embeddings (step forecasting, procedure planning, task classification).

There is no official code; facts and open points are in research ``methods-reference.md``
(e). What this module implements, and which choices are ours (all configurable):

* **Tokens.** A sequence of ``L`` clip embeddings ``(B, L, D)`` with a per-token *role*
  ``(B, L)``: :data:`ROLE_OBSERVED` (condition, clean), :data:`ROLE_TARGET` (hidden, to
  generate) or :data:`ROLE_PAD` (absent: excluded from attention keys and from the loss).
  Observed tokens carry their clean embedding, target tokens the noisy ``x_t``; both go
  through one input projection, plus a learned role embedding and a fixed sin-cos embedding
  of the step index ``0..L-1``. All tokens attend to each other (joint attention between
  the condition and the noisy stream, one set of weights: the paper's two-stream MMDiT
  weights are not confirmed and not implemented).
* **Blocks.** DiT blocks with adaLN-zero: the timestep embedding gives shift/scale/gate for
  the attention and MLP branches through a zero-initialised ``adaLN_modulation`` Dense, so
  every block starts as the identity; the output layer is also zero-initialised. The same
  modulation applies to condition and target tokens.
* **Flow matching (rectified flow).** ``x_t = (1 - t) x0 + t eps`` with ``eps ~ N(0, I)``,
  ``t`` in ``[0, 1]`` (``t = 0`` data, ``t = 1`` noise), one ``t`` per sequence; the network
  predicts the velocity ``v = eps - x0``; the loss is the squared error averaged over
  features and over target tokens. ``t`` is drawn ``"uniform"`` or ``"logit_normal"``
  (``t = sigmoid(m + s n)``, SD3's default ``m = 0, s = 1``) -- the paper's choice is not
  confirmed.
* **Sampling.** Euler steps from ``t = 1`` (noise) to ``t = 0`` (:func:`euler_sample`),
  ``sampling_steps`` of them; ``num_samples`` futures per input are drawn in one batched
  pass (inputs repeated along the batch axis). Observed tokens are re-imposed at every step.
* **Embedding scale.** :meth:`VEDIT.adapt` stores the per-feature mean and std of the
  training embeddings; the model works in standardised space and returns embeddings in the
  encoder's space.
* ``objective="regression"`` turns the same transformer into the deterministic baseline:
  target tokens enter as zeros, ``t = 0``, the output is the embedding itself, trained with
  MSE; all its "samples" are identical.

Masking patterns (numpy, for the input pipeline): :func:`forecast_roles` (observe a prefix,
predict the next steps), :func:`planning_roles` (observe first and last, predict the
middle), :func:`classification_roles` (observe a prefix, generate the rest for a task
classifier), :func:`random_roles` (a training mixture of them).
"""

import math

import keras
import numpy as np
from keras import ops

from keras_jepa.layers.attention import MultiHeadSelfAttention
from keras_jepa.layers.initializers import normal_init
from keras_jepa.layers.mlp import MLP
from keras_jepa.layers.position_embedding import sincos_1d
from keras_jepa.presets.mixin import deserialize_dtype

ROLE_PAD, ROLE_OBSERVED, ROLE_TARGET = 0, 1, 2
TIME_DISTRIBUTIONS = ("uniform", "logit_normal")
OBJECTIVES = ("flow", "regression")


# ---------------------------------------------------------------------------------------
# Masking patterns (numpy)
# ---------------------------------------------------------------------------------------


def _check_length(length, name="length"):
    if not isinstance(length, (int, np.integer)) or length < 2:
        raise ValueError(f"{name} must be an int >= 2; got {length!r}.")
    return int(length)


def forecast_roles(length, num_observed, num_targets=1):
    """Roles for forecasting: steps ``[0, num_observed)`` observed, the next
    ``num_targets`` targets, the rest padding.

    Example:

    >>> forecast_roles(6, 2, 3).tolist()
    [1, 1, 2, 2, 2, 0]
    """
    length = _check_length(length)
    if not 1 <= num_observed < length:
        raise ValueError(f"num_observed must be in [1, {length - 1}]; got {num_observed!r}.")
    if not 1 <= num_targets <= length - num_observed:
        raise ValueError(
            f"num_targets must be in [1, {length - num_observed}] for length={length} and "
            f"num_observed={num_observed}; got {num_targets!r}.")
    roles = np.zeros((length,), "int32")
    roles[:num_observed] = ROLE_OBSERVED
    roles[num_observed:num_observed + num_targets] = ROLE_TARGET
    return roles


def planning_roles(length, horizon, start=0):
    """Roles for procedure planning: the start step ``start`` and the goal step
    ``start + horizon + 1`` observed, the ``horizon`` steps between them targets, the rest
    padding.

    Example:

    >>> planning_roles(6, 3).tolist()
    [1, 2, 2, 2, 1, 0]
    """
    length = _check_length(length)
    if horizon < 1 or start < 0 or start + horizon + 1 >= length:
        raise ValueError(
            f"horizon={horizon!r} with start={start!r} does not fit a sequence of "
            f"length {length} (need start + horizon + 1 < length).")
    roles = np.zeros((length,), "int32")
    roles[start] = roles[start + horizon + 1] = ROLE_OBSERVED
    roles[start + 1:start + horizon + 1] = ROLE_TARGET
    return roles


def classification_roles(length, num_observed):
    """Roles for task classification from a partial video: a prefix observed, all later
    steps generated (the classifier reads the observed and generated embeddings).

    Example:

    >>> classification_roles(5, 2).tolist()
    [1, 1, 2, 2, 2]
    """
    length = _check_length(length)
    return forecast_roles(length, num_observed, length - num_observed)


def random_roles(batch_size, length, lengths=None, patterns=("forecast", "infill", "random"),
                 rng=None):
    """A training mixture of masking patterns, one pattern per sequence.

    * ``"forecast"``: a random prefix ``k >= 1`` observed, the next ``j >= 1`` steps targets.
    * ``"infill"``: a prefix ``[0, a)`` and one later step ``b`` observed, ``[a, b)``
      targets (``a = 1`` is procedure planning).
    * ``"random"``: each valid step a target with probability 1/2 (at least one observed
      and one target).

    Args:
        batch_size: sequences.
        length: ``L``.
        lengths: ``(B,)`` valid steps per sequence (``>= 2``; default all ``L``); steps
            beyond are padding.
        patterns: the patterns to draw from, uniformly.
        rng: a ``numpy.random.Generator``.

    Returns:
        ``(B, L)`` int32 roles.

    Example:

    >>> r = random_roles(4, 6, rng=np.random.default_rng(0))
    >>> r.shape, bool(((r == 1).sum(1) >= 1).all() and ((r == 2).sum(1) >= 1).all())
    ((4, 6), True)
    """
    length = _check_length(length)
    rng = np.random.default_rng() if rng is None else rng
    unknown = set(patterns) - {"forecast", "infill", "random"}
    if not patterns or unknown:
        raise ValueError(f"Unknown masking patterns {sorted(unknown) or patterns!r}; use "
                         "'forecast', 'infill' or 'random'.")
    lengths = np.full((batch_size,), length) if lengths is None else np.asarray(lengths)
    if lengths.shape != (batch_size,) or lengths.min() < 2 or lengths.max() > length:
        raise ValueError(f"lengths must be {batch_size} ints in [2, {length}]; got {lengths!r}.")
    roles = np.zeros((batch_size, length), "int32")
    choice = rng.integers(0, len(patterns), size=batch_size)
    for i in range(batch_size):  # numpy input pipeline, not a training step
        n = int(lengths[i])
        pattern = patterns[choice[i]]
        if pattern == "forecast":
            k = int(rng.integers(1, n))
            j = int(rng.integers(1, n - k + 1))
            roles[i, :k] = ROLE_OBSERVED
            roles[i, k:k + j] = ROLE_TARGET
        elif pattern == "infill" and n >= 3:
            a = int(rng.integers(1, n - 1))
            b = int(rng.integers(a + 1, n))
            roles[i, :a] = ROLE_OBSERVED
            roles[i, a:b] = ROLE_TARGET
            roles[i, b] = ROLE_OBSERVED
        else:
            row = np.where(rng.random(n) < 0.5, ROLE_TARGET, ROLE_OBSERVED)
            row[rng.integers(0, n)] = ROLE_OBSERVED
            if not (row == ROLE_TARGET).any():
                row[(np.flatnonzero(row == ROLE_OBSERVED)[-1] + 1) % n] = ROLE_TARGET
            roles[i, :n] = row
    return roles


# ---------------------------------------------------------------------------------------
# Flow-matching pieces
# ---------------------------------------------------------------------------------------


def timestep_embedding(t, dim, max_period=10000.0, scale=1000.0):
    """DiT's sinusoidal embedding of ``t`` (``(B,)``, in ``[0, 1]``, multiplied by
    ``scale``): ``[cos(t f) | sin(t f)]`` with ``f_i = max_period ** (-i / (dim / 2))``.

    Example:

    >>> tuple(timestep_embedding(np.array([0.0, 0.5], "float32"), 8).shape)
    (2, 8)
    """
    half = dim // 2
    freqs = np.exp(-math.log(max_period) * np.arange(half, dtype="float64") / half)
    args = ops.cast(t, "float32")[:, None] * ops.convert_to_tensor(
        (freqs * scale).astype("float32"))[None, :]
    return ops.concatenate([ops.cos(args), ops.sin(args)], axis=-1)


def euler_sample(velocity_fn, noise, steps, t_start=1.0, t_end=0.0):
    """Integrates ``dx/dt = v(x, t)`` with ``steps`` Euler steps from ``t_start`` (noise) to
    ``t_end`` (data): ``x <- x + (t_next - t) v(x, t)``.

    Exact for a constant field (the rectified-flow path of one pair) and for the field
    ``v = (x - x0) / t`` that points straight at ``x0``.

    Args:
        velocity_fn: ``f(x, t)`` with ``t`` a Python float.
        noise: the starting point ``x(t_start)``.
        steps: number of Euler steps (>= 1).

    Example:

    >>> x = euler_sample(lambda x, t: np.full_like(x, 2.0), np.zeros(3), steps=4)
    >>> np.asarray(x).tolist()
    [-2.0, -2.0, -2.0]
    """
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive int; got {steps!r}.")
    times = np.linspace(t_start, t_end, int(steps) + 1)
    x = noise
    for i in range(int(steps)):
        x = x + float(times[i + 1] - times[i]) * velocity_fn(x, float(times[i]))
    return x


# ---------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------


def _modulate(x, shift, scale):
    return x * (1.0 + scale[:, None, :]) + shift[:, None, :]


@keras.saving.register_keras_serializable(package="keras_jepa")
class DiTBlock(keras.layers.Layer):
    """A DiT block with adaLN-zero conditioning.

    ``(shift1, scale1, gate1, shift2, scale2, gate2) = adaLN_modulation(silu(c))``;
    ``x += gate1 * attn(norm1(x) * (1 + scale1) + shift1)``;
    ``x += gate2 * mlp(norm2(x) * (1 + scale2) + shift2)``. The norms have no affine
    parameters and ``adaLN_modulation`` starts at zero, so the block starts as the identity.

    Call: ``block(x, c, attention_mask=None)`` with ``x (B, N, W)``, ``c (B, W)``.

    Example:

    >>> import numpy as np
    >>> block = DiTBlock(num_heads=2)
    >>> x = np.ones((2, 3, 8), "float32")
    >>> out = block(x, np.ones((2, 8), "float32"))
    >>> tuple(out.shape), bool(np.allclose(keras.ops.convert_to_numpy(out), x))  # identity at init
    ((2, 3, 8), True)
    """

    def __init__(self, num_heads, mlp_ratio=4.0, layer_norm_epsilon=1e-6, init_std=0.02,
                 flash_attention=None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.mlp_ratio = float(mlp_ratio)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.init_std = float(init_std)
        self.flash_attention = flash_attention

    def build(self, x_shape, c_shape=None):
        dim = int(x_shape[-1])
        common = dict(dtype=self.dtype_policy)
        norm = dict(epsilon=self.layer_norm_epsilon, center=False, scale=False, **common)
        self.norm1 = keras.layers.LayerNormalization(name="norm1", **norm)
        self.norm1.build(x_shape)
        self.attn = MultiHeadSelfAttention(self.num_heads, init_std=self.init_std,
                                           flash_attention=self.flash_attention,
                                           name="attn", **common)
        self.attn.build(x_shape)
        self.norm2 = keras.layers.LayerNormalization(name="norm2", **norm)
        self.norm2.build(x_shape)
        self.mlp = MLP(hidden_dim=int(dim * self.mlp_ratio), init_std=self.init_std,
                       name="mlp", **common)
        self.mlp.build(x_shape)
        self.adaLN_modulation = keras.layers.Dense(6 * dim, kernel_initializer="zeros",
                                                   name="adaLN_modulation", **common)
        self.adaLN_modulation.build((None, dim))
        self.built = True

    def call(self, x, c, attention_mask=None):
        mod = self.adaLN_modulation(ops.silu(c))
        shift1, scale1, gate1, shift2, scale2, gate2 = ops.split(mod, 6, axis=-1)
        h = self.attn(_modulate(self.norm1(x), shift1, scale1), attention_mask=attention_mask)
        x = x + gate1[:, None, :] * h
        h = self.mlp(_modulate(self.norm2(x), shift2, scale2))
        return x + gate2[:, None, :] * h

    def compute_output_shape(self, x_shape, c_shape=None):
        return tuple(x_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "mlp_ratio": self.mlp_ratio,
                       "layer_norm_epsilon": self.layer_norm_epsilon,
                       "init_std": self.init_std, "flash_attention": self.flash_attention})
        return config


# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------


def _unpack_inputs(inputs):
    if isinstance(inputs, dict):
        if "embeddings" not in inputs or "roles" not in inputs:
            raise ValueError("VEDIT inputs need 'embeddings' (B, L, D) and 'roles' (B, L); "
                             f"got keys {sorted(inputs)}.")
        return inputs["embeddings"], inputs["roles"]
    if isinstance(inputs, (tuple, list)) and len(inputs) == 2:
        return inputs[0], inputs[1]
    raise ValueError("VEDIT inputs must be a dict with 'embeddings' and 'roles' or an "
                     f"(embeddings, roles) pair; got {type(inputs).__name__}.")


@keras.saving.register_keras_serializable(package="keras_jepa")
class VEDIT(keras.Model):
    """Diffusion transformer over clip embeddings (see the module docstring).

    Inputs: ``{"embeddings": (B, L, D), "roles": (B, L) int}`` (roles
    :data:`ROLE_PAD`/:data:`ROLE_OBSERVED`/:data:`ROLE_TARGET`; the embeddings at target
    and padding positions are only read as training targets). For tests, ``"noise"``
    ``(B, L, D)`` and ``"t"`` ``(B,)`` may be given to replace the random draws.

    ``model(inputs)`` is the training forward: it returns ``{"output", "target",
    "weights"}`` (predicted and true velocity in standardised space, or the embedding with
    ``objective="regression"``; ``weights`` ``(B, L)`` = 1 on targets) and
    :meth:`compute_loss` is their weighted mean squared error, so ``compile(optimizer)`` +
    ``fit(dataset)`` train it on every backend. :meth:`generate` (eager) and
    :meth:`sample` (compiled, batched ``predict``) return ``(B, K, L, D)`` embeddings with
    the observed steps kept and ``K = num_samples`` futures.

    Args:
        embed_dim: clip-embedding width ``D``.
        max_length: longest sequence ``L`` (size of the step-index position table).
        hidden_dim, depth, num_heads, mlp_ratio: the transformer (the paper's size is not
            confirmed).
        objective: ``"flow"`` (VEDIT) or ``"regression"`` (deterministic baseline).
        time_distribution: ``"uniform"`` or ``"logit_normal"``; ``time_mean``/``time_std``
            are the logit-normal's ``m, s``.
        sampling_steps: Euler steps of the sampler.
        num_samples: futures per input drawn by :meth:`sample` / :meth:`generate`.
        frequency_dim: width of the sinusoidal timestep features.
        layer_norm_epsilon, init_std, flash_attention: as in the other transformers.
        seed: seed of the layer-owned ``SeedGenerator`` (noise and ``t``).

    Example:

    >>> import numpy as np
    >>> model = VEDIT(embed_dim=8, max_length=5, hidden_dim=16, depth=1, num_heads=2,
    ...               sampling_steps=2, num_samples=3, seed=0)
    >>> x = {"embeddings": np.zeros((2, 5, 8), "float32"),
    ...      "roles": np.stack([forecast_roles(5, 2, 3)] * 2)}
    >>> tuple(model(x)["output"].shape), tuple(model.generate(x).shape)
    ((2, 5, 8), (2, 3, 5, 8))
    """

    def __init__(self, embed_dim, max_length, hidden_dim=256, depth=6, num_heads=8,
                 mlp_ratio=4.0, objective="flow", time_distribution="logit_normal",
                 time_mean=0.0, time_std=1.0, sampling_steps=20, num_samples=5,
                 frequency_dim=256, layer_norm_epsilon=1e-6, init_std=0.02,
                 flash_attention=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}; got {objective!r}.")
        if time_distribution not in TIME_DISTRIBUTIONS:
            raise ValueError(f"time_distribution must be one of {TIME_DISTRIBUTIONS}; got "
                             f"{time_distribution!r}.")
        for name, value in (("embed_dim", embed_dim), ("max_length", max_length),
                            ("hidden_dim", hidden_dim), ("depth", depth),
                            ("sampling_steps", sampling_steps), ("num_samples", num_samples)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}.")
        if hidden_dim % num_heads or hidden_dim % 2:
            raise ValueError(f"hidden_dim={hidden_dim} must be even and divisible by "
                             f"num_heads={num_heads}.")
        self.embed_dim = int(embed_dim)
        self.max_length = int(max_length)
        self.hidden_dim = int(hidden_dim)
        self.depth = int(depth)
        self.num_heads = int(num_heads)
        self.mlp_ratio = float(mlp_ratio)
        self.objective = objective
        self.time_distribution = time_distribution
        self.time_mean = float(time_mean)
        self.time_std = float(time_std)
        self.sampling_steps = int(sampling_steps)
        self.num_samples = int(num_samples)
        self.frequency_dim = int(frequency_dim)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.init_std = float(init_std)
        self.flash_attention = flash_attention
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")
        self._position_table = sincos_1d(self.hidden_dim, np.arange(self.max_length)).astype(
            "float32")
        self._samplers = _SamplerCache()

        common = dict(dtype=self.dtype_policy)
        width = self.hidden_dim
        self.embedding_mean = self.add_weight(
            name="embedding_mean", shape=(self.embed_dim,), initializer="zeros",
            trainable=False)
        self.embedding_std = self.add_weight(
            name="embedding_std", shape=(self.embed_dim,), initializer="ones",
            trainable=False)
        self.input_proj = keras.layers.Dense(width, kernel_initializer=normal_init(init_std),
                                             name="input_proj", **common)
        self.input_proj.build((None, None, self.embed_dim))
        self.role_embed = self.add_weight(name="role_embed", shape=(3, width),
                                          initializer=normal_init(init_std))
        self.t_embedder_fc1 = keras.layers.Dense(width, kernel_initializer=normal_init(init_std),
                                                 name="t_embedder_fc1", **common)
        self.t_embedder_fc1.build((None, self.frequency_dim))
        self.t_embedder_fc2 = keras.layers.Dense(width, kernel_initializer=normal_init(init_std),
                                                 name="t_embedder_fc2", **common)
        self.t_embedder_fc2.build((None, width))
        self.blocks = []
        for i in range(self.depth):
            block = DiTBlock(self.num_heads, mlp_ratio=self.mlp_ratio,
                             layer_norm_epsilon=self.layer_norm_epsilon, init_std=init_std,
                             flash_attention=flash_attention, name=f"blocks_{i}", **common)
            block.build((None, None, width), (None, width))
            self.blocks.append(block)
        self.final_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, center=False, scale=False, name="final_norm",
            **common)
        self.final_norm.build((None, None, width))
        self.final_modulation = keras.layers.Dense(2 * width, kernel_initializer="zeros",
                                                   name="final_modulation", **common)
        self.final_modulation.build((None, width))
        self.final_proj = keras.layers.Dense(self.embed_dim, kernel_initializer="zeros",
                                             name="final_proj", **common)
        self.final_proj.build((None, None, width))
        self.built = True

    # ------------------------------------------------------------------ standardisation

    def adapt(self, embeddings, roles=None):
        """Stores the per-feature mean and std of ``embeddings`` (``(..., D)`` numpy; with
        ``roles``, only non-padding steps count)."""
        x = np.asarray(embeddings, dtype="float64").reshape(-1, self.embed_dim)
        if roles is not None:
            x = x[np.asarray(roles).reshape(-1) != ROLE_PAD]
        self.embedding_mean.assign(x.mean(0).astype("float32"))
        self.embedding_std.assign(np.maximum(x.std(0), 1e-6).astype("float32"))

    def _standardise(self, x):
        x = ops.cast(x, "float32")
        return (x - self.embedding_mean) / self.embedding_std

    def _destandardise(self, x):
        return ops.cast(x, "float32") * self.embedding_std + self.embedding_mean

    # ------------------------------------------------------------------ network

    def sample_time(self, batch_size):
        """``t`` for a batch, from ``time_distribution`` (float32, ``(B,)``)."""
        if self.time_distribution == "uniform":
            return keras.random.uniform((batch_size,), seed=self.seed_generator)
        n = keras.random.normal((batch_size,), seed=self.seed_generator)
        return ops.sigmoid(self.time_mean + self.time_std * n)

    def velocity(self, x, roles, t, training=False):
        """The network: tokens ``x (B, L, D)`` in standardised space (clean at observed
        steps, ``x_t`` at targets), ``roles (B, L)``, ``t (B,)`` -> ``(B, L, D)`` float32."""
        roles = ops.cast(roles, "int32")
        length = ops.shape(x)[1]
        dtype = self.compute_dtype
        h = self.input_proj(ops.cast(x, dtype))
        h = h + ops.cast(ops.take(self.role_embed, roles, axis=0), dtype)
        positions = ops.convert_to_tensor(self._position_table)[:length]
        h = h + ops.cast(positions, dtype)[None]
        c = self.t_embedder_fc2(ops.silu(self.t_embedder_fc1(
            ops.cast(timestep_embedding(t, self.frequency_dim), dtype))))
        keys = ops.not_equal(roles, ROLE_PAD)[:, None, None, :]
        for block in self.blocks:
            h = block(h, c, attention_mask=keys)
        shift, scale = ops.split(self.final_modulation(ops.silu(c)), 2, axis=-1)
        h = _modulate(self.final_norm(h), shift, scale)
        return ops.cast(self.final_proj(h), "float32")

    def _roles_masks(self, roles):
        roles = ops.cast(roles, "int32")
        target = ops.cast(ops.equal(roles, ROLE_TARGET), "float32")
        observed = ops.cast(ops.equal(roles, ROLE_OBSERVED), "float32")
        return roles, target, observed

    def call(self, inputs, training=False):
        embeddings, roles = _unpack_inputs(inputs)
        if len(embeddings.shape) != 3 or embeddings.shape[-1] != self.embed_dim:
            raise ValueError(f"embeddings must be (B, L, {self.embed_dim}); got shape "
                             f"{tuple(embeddings.shape)}.")
        if embeddings.shape[1] is not None and embeddings.shape[1] > self.max_length:
            raise ValueError(f"Sequence length {embeddings.shape[1]} exceeds "
                             f"max_length={self.max_length}.")
        x0 = self._standardise(embeddings)
        roles, target, observed = self._roles_masks(roles)
        clean = x0 * observed[..., None]
        if self.objective == "regression":
            t = ops.zeros(ops.shape(x0)[:1], "float32")
            out = self.velocity(clean, roles, t, training=training)
            return {"output": out, "target": x0, "weights": target}
        noise = inputs.get("noise") if isinstance(inputs, dict) else None
        t = inputs.get("t") if isinstance(inputs, dict) else None
        if noise is None:
            noise = keras.random.normal(ops.shape(x0), seed=self.seed_generator)
        if t is None:
            t = self.sample_time(ops.shape(x0)[0])
        noise, t = ops.cast(noise, "float32"), ops.cast(t, "float32")
        tt = t[:, None, None]
        x_t = (1.0 - tt) * x0 + tt * noise
        x_in = target[..., None] * x_t + clean
        out = self.velocity(x_in, roles, t, training=training)
        return {"output": out, "target": noise - x0, "weights": target}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y_pred is None:
            y_pred = self(x, training=training)
        err = ops.mean(ops.square(y_pred["output"] - ops.stop_gradient(y_pred["target"])),
                       axis=-1)
        weights = y_pred["weights"]
        loss = ops.sum(err * weights) / ops.maximum(ops.sum(weights), 1.0)
        return loss + ops.sum(self.losses) if self.losses else loss

    # ------------------------------------------------------------------ sampling

    def generate(self, inputs, num_samples=None, steps=None, noise=None):
        """``num_samples`` generated sequences per input, ``(B, K, L, D)`` (observed steps
        copied from the input, target steps generated, padding steps zero).

        Args:
            inputs: as for ``call``.
            num_samples: ``K`` (default ``self.num_samples``).
            steps: Euler steps (default ``self.sampling_steps``).
            noise: optional ``(B * K, L, D)`` starting noise (row ``b * K + k``).
        """
        embeddings, roles = _unpack_inputs(inputs)
        k = self.num_samples if num_samples is None else int(num_samples)
        steps = self.sampling_steps if steps is None else int(steps)
        x0 = self._standardise(embeddings)
        length = x0.shape[1]
        x0 = ops.repeat(x0, k, axis=0)
        roles, target, observed = self._roles_masks(ops.repeat(ops.cast(roles, "int32"), k,
                                                               axis=0))
        clean = x0 * observed[..., None]
        batch = ops.shape(x0)[0]
        if self.objective == "regression":
            x = self.velocity(clean, roles, ops.zeros((batch,), "float32"))
        else:
            if noise is None:
                noise = keras.random.normal(ops.shape(x0), seed=self.seed_generator)
            tmask = target[..., None]

            def field(x, t):
                x_in = tmask * x + clean
                return self.velocity(x_in, roles, ops.full((batch,), t, "float32"))

            x = euler_sample(field, ops.cast(noise, "float32"), steps)
        mask = target[..., None]
        out = self._destandardise(mask * x + (1.0 - mask) * x0)
        out = out * ops.cast(ops.not_equal(roles, ROLE_PAD), "float32")[..., None]
        return ops.reshape(out, (-1, k, length, self.embed_dim))

    def sampler(self, num_samples=None, steps=None):
        """A Keras model whose compiled ``predict`` runs :meth:`generate` (cached per
        ``(num_samples, steps)``)."""
        key = (self.num_samples if num_samples is None else int(num_samples),
               self.sampling_steps if steps is None else int(steps))
        if key not in self._samplers.models:
            self._samplers.models[key] = VEDITSampler(self, num_samples=key[0], steps=key[1])
        return self._samplers.models[key]

    def sample(self, embeddings, roles, num_samples=None, steps=None, batch_size=64,
               verbose=0):
        """Compiled, batched :meth:`generate` over numpy arrays: ``(B, K, L, D)`` numpy."""
        model = self.sampler(num_samples, steps)
        data = {"embeddings": np.asarray(embeddings, "float32"),
                "roles": np.asarray(roles, "int32")}
        return np.asarray(model.predict(data, batch_size=batch_size, verbose=verbose))

    def get_config(self):
        return {
            "name": self.name, "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "embed_dim": self.embed_dim, "max_length": self.max_length,
            "hidden_dim": self.hidden_dim, "depth": self.depth, "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio, "objective": self.objective,
            "time_distribution": self.time_distribution, "time_mean": self.time_mean,
            "time_std": self.time_std, "sampling_steps": self.sampling_steps,
            "num_samples": self.num_samples, "frequency_dim": self.frequency_dim,
            "layer_norm_epsilon": self.layer_norm_epsilon, "init_std": self.init_std,
            "flash_attention": self.flash_attention, "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_dtype(config))


class _SamplerCache:
    """Holds the sampler models outside Keras's attribute tracking (a sampler refers back
    to its VEDIT, so a tracked dict would make a cycle)."""

    def __init__(self):
        self.models = {}


class VEDITSampler(keras.Model):
    """Wraps a :class:`VEDIT` so that ``predict`` compiles its sampler (Keras's JAX
    ``predict`` calls ``call``, not an overridden ``predict_step``)."""

    def __init__(self, vedit, num_samples, steps, **kwargs):
        super().__init__(**kwargs)
        self.vedit = vedit
        self.num_samples = int(num_samples)
        self.steps = int(steps)

    def call(self, inputs):
        return self.vedit.generate(inputs, num_samples=self.num_samples, steps=self.steps)
