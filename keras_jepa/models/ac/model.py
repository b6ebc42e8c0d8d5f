"""V-JEPA 2-AC: an action-conditioned predictor over the frozen features of a V-JEPA 2
encoder (Assran et al., 2025), trained with teacher forcing and a short rollout.

Sequence layout. For ``T`` time steps the predictor sees, step after step, the action
token, the end-effector state token (an optional extrinsics token) and the ``H * W`` frame
tokens of that step: ``[a_0, s_0, f_0(0..HW-1), a_1, s_1, f_1(...), ...]``, i.e.
``T * (K + H * W)`` tokens with ``K = 2`` (3 with extrinsics).

Attention is block-causal over time: every token of step ``t1`` attends to every token of
the steps ``t2 <= t1`` (its own step included) and to nothing later. The boolean mask is
built once, at construction, for ``max_steps`` steps and sliced to the sequence (as the
official model does).

Positions (3-D RoPE, V-JEPA 2's tiled frequency layout, see
``keras_jepa.layers.rotary_embedding``): frame tokens rotate three segments of
``2 * ((head_dim // 3) // 2)`` channels by their frame index, row and column (the column
is multiplied by ``grid_h / grid_w``, which is 1 for square inputs: the official code
scales both spatial axes by ``grid_size / H`` and ``grid_size / W`` with
``grid_size = grid_h``); action, state and extrinsics tokens rotate only the first segment,
by their step index, and keep every other channel as it is. There is no position table.

Outputs: the action/state tokens are dropped, then ``predictor_norm`` and
``predictor_proj``; the output slot of frame ``t`` is the prediction of frame ``t + 1``.

Training (``VJEPA2AC.fit``, official ``app/vjepa_droid``): the frozen encoder embeds
every frame (a frame is repeated into one tubelet) and its tokens are layer-normed
(no affine, eps 1e-5). The **teacher-forcing** loss predicts frames ``1..T-1`` from the
ground-truth frames ``0..T-2``, actions ``0..T-2`` and states ``0..T-2``; the **rollout**
loss starts from frame 0 and the teacher-forced prediction of frame 1 and calls the
predictor ``auto_steps - 1`` more times on its own (layer-normed) outputs, with the
ground-truth actions and states, then compares the ``auto_steps`` predicted frames with
frames ``1..auto_steps``. Both are ``mean(|z - h| ** p) / p`` with ``p = 1`` and the total is
their plain sum (official ``droid-256px-8f.yaml``: ``auto_steps: 2``, ``loss_exp: 1``).
"""

import math

import keras
import numpy as np
from keras import ops

from keras_jepa.backend.loss_scaling import scale_loss_for_replicas
from keras_jepa.layers.initializers import normal_init
from keras_jepa.layers.rotary_embedding import rope_segment_dim
from keras_jepa.layers.transformer_block import TransformerBlock
from keras_jepa.models.jepa.base import layer_norm_no_affine, lp_loss, resolve_encoder
from keras_jepa.presets.mixin import PresetMixin


def block_causal_mask(num_steps, tokens_per_step):
    """Boolean ``(N, N)`` numpy mask, ``N = num_steps * tokens_per_step``; True where
    query token ``i`` may attend key token ``j``: ``step(j) <= step(i)``.

    Example:

    >>> block_causal_mask(2, 2).astype(int).tolist()
    [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]
    """
    step = np.arange(num_steps * tokens_per_step) // tokens_per_step
    return step[:, None] >= step[None, :]


def _angles(positions, dim, tiled):
    """``(N, dim)`` float64 angles of one RoPE segment of ``dim`` channels."""
    omega = 1.0 / 10000.0 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    omega = np.concatenate([omega, omega]) if tiled else np.repeat(omega, 2)
    return np.asarray(positions, np.float64)[:, None] * omega[None, :]


def ac_rope_tables(num_steps, grid_size, head_dim, cond_tokens=2, tiled=True):
    """``(cos, sin)`` numpy tables ``(N, 1, head_dim)`` of the interleaved AC sequence.

    Frame tokens: 3-D RoPE at (frame, row, col * grid_h / grid_w); conditioning tokens:
    the first segment at their step index, identity elsewhere (see the module docstring).
    """
    grid_h, grid_w = grid_size
    seg = rope_segment_dim(head_dim)
    if seg == 0:
        raise ValueError(f"RoPE needs a head width of at least 6; got head_dim={head_dim}.")
    per_frame = grid_h * grid_w
    rows = []
    ids = np.arange(per_frame)
    row, col = ids // grid_w, ids % grid_w
    col_scale = grid_h / grid_w
    for t in range(num_steps):
        cond = np.zeros((cond_tokens, head_dim))
        cond[:, :seg] = _angles(np.full(cond_tokens, t), seg, tiled)
        frame = np.zeros((per_frame, head_dim))
        frame[:, :seg] = _angles(np.full(per_frame, t), seg, tiled)
        frame[:, seg:2 * seg] = _angles(row, seg, tiled)
        frame[:, 2 * seg:3 * seg] = _angles(col * col_scale, seg, tiled)
        rows += [cond, frame]
    angles = np.concatenate(rows, axis=0)
    # Unrotated channels: angle 0 gives cos 1, sin 0.
    return (np.cos(angles)[:, None, :].astype("float32"),
            np.sin(angles)[:, None, :].astype("float32"))


@keras.saving.register_keras_serializable(package="keras_jepa")
class ACPredictor(keras.layers.Layer):
    """The action-conditioned predictor of V-JEPA 2-AC (``VisionTransformerPredictorAC``).

    Call: ``predictor(tokens, actions, states, extrinsics=None)`` with ``tokens
    (B, T * H * W, embed_dim)`` (encoder features of ``T`` frames, frame after frame),
    ``actions (B, T, action_dim)``, ``states (B, T, action_dim)`` (and ``extrinsics
    (B, T, action_dim - 1)`` when ``use_extrinsics``). Returns ``(B, T * H * W,
    embed_dim)``: slot ``t`` predicts frame ``t + 1``. ``T`` is read from the static shape.

    Args:
        grid_size: ``(H, W)`` patch grid of one frame (16 x 16 at 256 px).
        embed_dim: encoder width (input and output width; 1408 for ViT-g).
        hidden_dim: predictor width (1024).
        depth: blocks (24).
        num_heads: heads (16).
        mlp_ratio: 4.
        action_dim: width of actions and states (7 for DROID: xyz, Euler xyz, gripper).
        max_steps: time steps covered by the prebuilt block-causal mask (the hub builds it
            for 64 frames / tubelet 2 = 32 steps); longer sequences raise ``ValueError``.
        is_frame_causal: block-causal attention (True); False attends everything.
        use_extrinsics: add an extrinsics token (width ``action_dim - 1``) per step. The
            ``extrinsics_encoder`` exists either way, as in the official checkpoints.
        rope_tiled: the released tiled-frequency RoPE layout (see ``rotary_embedding``).
        depth_scaled_init: divide the init std of block ``i``'s ``attn.proj`` and
            ``mlp.fc2`` by ``sqrt(2 i)`` (official ``_rescale_blocks``).
        layer_norm_epsilon: 1e-6.
        init_std: 0.02.
        drop_path_rate: stochastic depth, linear over the blocks (0 officially).
        flash_attention: passed to ``keras.ops.dot_product_attention``.

    Example:

    >>> import numpy as np
    >>> pred = ACPredictor(grid_size=(2, 2), embed_dim=16, hidden_dim=24, depth=1,
    ...                    num_heads=2, action_dim=3, max_steps=4)
    >>> out = pred(np.zeros((1, 3 * 4, 16), "float32"), np.zeros((1, 3, 3), "float32"),
    ...            np.zeros((1, 3, 3), "float32"))
    >>> tuple(out.shape)
    (1, 12, 16)
    """

    def __init__(self, grid_size=(16, 16), embed_dim=1408, hidden_dim=1024, depth=24,
                 num_heads=16, mlp_ratio=4.0, action_dim=7, max_steps=32,
                 is_frame_causal=True, use_extrinsics=False, rope_tiled=True,
                 depth_scaled_init=True, layer_norm_epsilon=1e-6, init_std=0.02,
                 drop_path_rate=0.0, flash_attention=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(grid_size, int):
            grid_size = (grid_size, grid_size)
        self.grid_size = tuple(int(g) for g in grid_size)
        if len(self.grid_size) != 2:
            raise ValueError(f"grid_size must be (H, W) patches; got {grid_size!r}.")
        self.embed_dim = int(embed_dim)
        self.hidden_dim = int(hidden_dim)
        self.depth = int(depth)
        self.num_heads = int(num_heads)
        self.mlp_ratio = float(mlp_ratio)
        self.action_dim = int(action_dim)
        self.max_steps = int(max_steps)
        self.is_frame_causal = bool(is_frame_causal)
        self.use_extrinsics = bool(use_extrinsics)
        self.rope_tiled = bool(rope_tiled)
        self.depth_scaled_init = bool(depth_scaled_init)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.init_std = float(init_std)
        self.drop_path_rate = float(drop_path_rate)
        self.flash_attention = flash_attention
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim={hidden_dim} is not divisible by "
                             f"num_heads={num_heads}.")
        if self.action_dim < 2 and self.use_extrinsics:
            raise ValueError(f"use_extrinsics needs action_dim >= 2; got {action_dim}.")
        self.head_dim = self.hidden_dim // self.num_heads
        self.cond_tokens = 3 if self.use_extrinsics else 2
        self.tokens_per_frame = self.grid_size[0] * self.grid_size[1]
        self.tokens_per_step = self.cond_tokens + self.tokens_per_frame
        self._mask = None  # built once, at the first call; every call slices it
        self._rope_cache = {}

    def build(self, input_shape=None):
        common = dict(dtype=self.dtype_policy)
        width = self.hidden_dim

        def dense(units, name, in_dim):
            layer = keras.layers.Dense(units, kernel_initializer=normal_init(self.init_std),
                                       name=name, **common)
            layer.build((None, None, in_dim))
            return layer

        self.predictor_embed = dense(width, "predictor_embed", self.embed_dim)
        self.action_encoder = dense(width, "action_encoder", self.action_dim)
        self.state_encoder = dense(width, "state_encoder", self.action_dim)
        self.extrinsics_encoder = dense(width, "extrinsics_encoder",
                                        max(self.action_dim - 1, 1))
        rates = np.linspace(0.0, self.drop_path_rate, self.depth) if self.depth else []
        self.predictor_blocks = []
        for i in range(self.depth):
            block = TransformerBlock(
                num_heads=self.num_heads, mlp_ratio=self.mlp_ratio,
                layer_norm_epsilon=self.layer_norm_epsilon, drop_path_rate=float(rates[i]),
                init_std=self.init_std,
                residual_init_scale=(1.0 / math.sqrt(2.0 * (i + 1))
                                     if self.depth_scaled_init else 1.0),
                flash_attention=self.flash_attention, name=f"predictor_blocks_{i}", **common,
            )
            block.build((None, None, width))
            self.predictor_blocks.append(block)
        self.predictor_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="predictor_norm", **common)
        self.predictor_norm.build((None, None, width))
        self.predictor_proj = dense(self.embed_dim, "predictor_proj", width)
        self.built = True

    @property
    def attention_mask(self):
        """The block-causal boolean mask of ``max_steps`` steps (numpy; True = attend),
        or ``None`` without ``is_frame_causal``."""
        if self.is_frame_causal and self._mask is None:
            self._mask = block_causal_mask(self.max_steps, self.tokens_per_step)
        return self._mask if self.is_frame_causal else None

    def num_steps(self, tokens_shape):
        """Time steps ``T`` of a ``(B, T * H * W, D)`` token tensor shape."""
        n = tokens_shape[1]
        if n is None or n % self.tokens_per_frame:
            raise ValueError(
                f"The token axis ({n}) must be a known multiple of the {self.tokens_per_frame} "
                f"tokens of one {self.grid_size[0]}x{self.grid_size[1]} frame; got tokens "
                f"of shape {tuple(tokens_shape)}.")
        return n // self.tokens_per_frame

    def rope(self, num_steps):
        """The ``(cos, sin)`` tables of a ``num_steps`` sequence (numpy, cached)."""
        if num_steps not in self._rope_cache:
            self._rope_cache[num_steps] = ac_rope_tables(
                num_steps, self.grid_size, self.head_dim, self.cond_tokens, self.rope_tiled)
        return self._rope_cache[num_steps]

    def _check(self, name, tensor, steps, width):
        shape = tuple(tensor.shape)
        if len(shape) != 3 or shape[1] != steps or shape[2] != width:
            raise ValueError(
                f"{name} must have shape (B, {steps}, {width}) for {steps} frames of "
                f"tokens; got {shape}.")

    def call(self, tokens, actions, states, extrinsics=None, training=False):
        steps = self.num_steps(tuple(tokens.shape))
        if steps > self.max_steps:
            raise ValueError(
                f"{steps} time steps exceed max_steps={self.max_steps} of the prebuilt "
                "block-causal mask; build the predictor with a larger max_steps.")
        self._check("actions", actions, steps, self.action_dim)
        self._check("states", states, steps, self.action_dim)
        width, hw = self.hidden_dim, self.tokens_per_frame
        x = ops.reshape(self.predictor_embed(tokens), (-1, steps, hw, width))
        cond = [self.action_encoder(actions), self.state_encoder(states)]
        if self.use_extrinsics:
            if extrinsics is None:
                raise ValueError("use_extrinsics=True: pass extrinsics (B, T, action_dim - 1).")
            self._check("extrinsics", extrinsics, steps, self.action_dim - 1)
            cond.append(self.extrinsics_encoder(extrinsics))
        cond = [ops.cast(c, x.dtype)[:, :, None] for c in cond]
        x = ops.concatenate(cond + [x], axis=2)
        length = steps * self.tokens_per_step
        x = ops.reshape(x, (-1, length, width))
        mask = None
        if self.is_frame_causal:
            mask = ops.convert_to_tensor(self.attention_mask[None, None, :length, :length])
        cos, sin = self.rope(steps)
        rope = (ops.convert_to_tensor(cos), ops.convert_to_tensor(sin))
        for block in self.predictor_blocks:
            x = block(x, rope=rope, attention_mask=mask, training=training)
        x = ops.reshape(x, (-1, steps, self.tokens_per_step, width))[:, :, self.cond_tokens:]
        x = ops.reshape(x, (-1, steps * hw, width))
        return self.predictor_proj(self.predictor_norm(x))

    def compute_output_shape(self, tokens_shape, actions_shape=None, states_shape=None,
                             extrinsics_shape=None):
        return tuple(tokens_shape[:2]) + (self.embed_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "grid_size": list(self.grid_size),
                "embed_dim": self.embed_dim,
                "hidden_dim": self.hidden_dim,
                "depth": self.depth,
                "num_heads": self.num_heads,
                "mlp_ratio": self.mlp_ratio,
                "action_dim": self.action_dim,
                "max_steps": self.max_steps,
                "is_frame_causal": self.is_frame_causal,
                "use_extrinsics": self.use_extrinsics,
                "rope_tiled": self.rope_tiled,
                "depth_scaled_init": self.depth_scaled_init,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "init_std": self.init_std,
                "drop_path_rate": self.drop_path_rate,
                "flash_attention": self.flash_attention,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_jepa")
class VJEPA2AC(PresetMixin, keras.Model):
    """V-JEPA 2-AC: a frozen V-JEPA 2 encoder and an ``ACPredictor``, trained with
    ``model.fit`` on the official teacher-forcing and rollout losses (module docstring).

    Batches (``fit`` / ``call``): a dict with ``"actions" (B, T - 1, A)``, ``"states"
    (B, T, A)`` and either ``"frames" (B, T, H, W, C)`` (encoded here, under
    ``stop_gradient``) or ``"tokens" (B, T * h * w, D)`` (features you encoded once with
    :meth:`encode`: layer-normed, as the loss expects). ``call`` returns
    ``{"teacher_forcing": (B, (T - 1) * hw, D), "rollout": (B, auto_steps * hw, D)}``,
    both layer-normed; the metrics ``teacher_forcing_loss`` and ``rollout_loss`` are logged.

    Args:
        encoder: a ``VisionTransformer`` (video models get each frame repeated into one
            tubelet, as officially; image models encode frames as images). Frozen.
        predictor: an ``ACPredictor`` (default: built from the encoder's width and grid
            with ``predictor_kwargs``).
        auto_steps: predicted frames in the rollout loss (official 2; 1 drops the extra
            predictor call, the rollout term then repeats the first teacher-forced frame).
        loss_exp: 1 (L1) officially.
        teacher_forcing_weight, rollout_weight: 1 and 1 officially (``jloss + sloss``).
        normalize_reps: layer-norm encoder features and predictions (True officially).

    Example:

    >>> import numpy as np
    >>> from keras_jepa.models.vit.vision_transformer import VisionTransformer
    >>> enc = VisionTransformer(image_size=16, patch_size=8, num_frames=2, hidden_dim=24,
    ...                         depth=1, num_heads=2, position_embedding="rope")
    >>> model = VJEPA2AC(enc, predictor_kwargs=dict(hidden_dim=24, depth=1, num_heads=2,
    ...                                            action_dim=2, max_steps=4))
    >>> batch = {"frames": np.zeros((1, 3, 16, 16, 3), "float32"),
    ...          "actions": np.zeros((1, 2, 2), "float32"),
    ...          "states": np.zeros((1, 3, 2), "float32")}
    >>> {k: tuple(v.shape) for k, v in model(batch).items()}
    {'teacher_forcing': (1, 8, 24), 'rollout': (1, 8, 24)}
    """

    def __init__(self, encoder, predictor=None, predictor_kwargs=None, auto_steps=2,
                 loss_exp=1.0, teacher_forcing_weight=1.0, rollout_weight=1.0,
                 normalize_reps=True, **kwargs):
        super().__init__(**kwargs)
        encoder = resolve_encoder(encoder)
        if isinstance(predictor, dict):
            predictor = keras.saving.deserialize_keras_object(predictor)
        self.predictor_kwargs = dict(predictor_kwargs or {})
        if predictor is None:
            grid = encoder.grid_size()[-2:]
            predictor = ACPredictor(grid_size=grid, embed_dim=encoder.output_width,
                                    name="predictor", **self.predictor_kwargs)
        if not isinstance(predictor, ACPredictor):
            raise ValueError(f"predictor must be an ACPredictor; got {type(predictor).__name__}.")
        if predictor.embed_dim != encoder.output_width:
            raise ValueError(
                f"The predictor's embed_dim ({predictor.embed_dim}) must equal the encoder "
                f"width ({encoder.output_width}).")
        if int(auto_steps) < 1:
            raise ValueError(f"auto_steps must be >= 1; got {auto_steps}.")
        self.auto_steps = int(auto_steps)
        self.loss_exp = float(loss_exp)
        self.teacher_forcing_weight = float(teacher_forcing_weight)
        self.rollout_weight = float(rollout_weight)
        self.normalize_reps = bool(normalize_reps)
        self.encoder = encoder
        self.encoder.trainable = False
        for variable in self.encoder.weights:
            variable.trainable = False  # TensorFlow reads the variable flag (see JEPA)
        self.predictor = predictor
        if not predictor.built:
            predictor.build()
        self.teacher_forcing_tracker = keras.metrics.Mean(name="teacher_forcing_loss")
        self.rollout_tracker = keras.metrics.Mean(name="rollout_loss")
        self.built = True

    # ------------------------------------------------------------------ pieces

    @property
    def tokens_per_frame(self):
        return self.predictor.tokens_per_frame

    def _norm(self, x):
        return layer_norm_no_affine(x) if self.normalize_reps else ops.cast(x, "float32")

    def encode(self, frames):
        """Layer-normed encoder features of ``frames (B, T, H, W, C)``: ``(B, T * hw, D)``
        (float32). A video encoder sees each frame repeated ``tubelet_size`` times."""
        shape = tuple(frames.shape)
        if len(shape) != 5:
            raise ValueError(f"frames must be (B, T, H, W, C); got shape {shape}.")
        steps = shape[1]
        flat = ops.reshape(frames, (-1,) + shape[2:])
        if self.encoder.is_video:
            flat = ops.repeat(flat[:, None], self.encoder.tubelet_size, axis=1)
        h = self.encoder(flat, training=False)
        h = ops.reshape(h, (-1, steps * h.shape[1], h.shape[-1]))
        return ops.stop_gradient(self._norm(h))

    def step(self, tokens, actions, states, extrinsics=None, training=False):
        """One predictor call; returns the (layer-normed) prediction of every next frame
        ``(B, T * hw, D)``."""
        return self._norm(self.predictor(tokens, actions, states, extrinsics,
                                         training=training))

    def predict_next(self, tokens, actions, states, extrinsics=None):
        """The (layer-normed) next frame after ``T`` context frames: ``(B, hw, D)``, as
        the official planning wrapper's step (the last frame's output slot)."""
        out = self.step(tokens, actions, states, extrinsics)
        return out[:, out.shape[1] - self.tokens_per_frame:]

    # ------------------------------------------------------------------ training

    def _tokens(self, inputs):
        if "tokens" in inputs:
            return ops.stop_gradient(ops.cast(inputs["tokens"], "float32"))
        if "frames" in inputs:
            return self.encode(inputs["frames"])
        raise ValueError(f"A batch needs 'frames' or 'tokens'; got keys {sorted(inputs)}.")

    def call(self, inputs, training=False):
        h = self._tokens(inputs)
        actions, states = inputs["actions"], inputs["states"]
        extrinsics = inputs.get("extrinsics")
        hw = self.tokens_per_frame
        steps = h.shape[1] // hw
        if steps < 2:
            raise ValueError(f"Training needs at least 2 frames; got {steps}.")
        if actions.shape[1] != steps - 1 or states.shape[1] != steps:
            raise ValueError(
                f"For {steps} frames the batch needs actions (B, {steps - 1}, A) and states "
                f"(B, {steps}, A); got {tuple(actions.shape)} and {tuple(states.shape)}.")
        if self.auto_steps > steps - 1:
            raise ValueError(f"auto_steps={self.auto_steps} needs at least "
                             f"{self.auto_steps + 1} frames; got {steps}.")
        ext = (lambda n: None) if extrinsics is None else (lambda n: extrinsics[:, :n])
        z_tf = self.step(h[:, :(steps - 1) * hw], actions, states[:, :steps - 1],
                         ext(steps - 1), training=training)
        seq = ops.concatenate([h[:, :hw], z_tf[:, :hw]], axis=1)
        for n in range(1, self.auto_steps):
            nxt = self.step(seq, actions[:, :n + 1], states[:, :n + 1], ext(n + 1),
                            training=training)
            seq = ops.concatenate([seq, nxt[:, nxt.shape[1] - hw:]], axis=1)
        return {"teacher_forcing": z_tf, "rollout": seq[:, hw:]}

    def losses_of(self, inputs, outputs):
        """``(teacher_forcing_loss, rollout_loss)`` of a batch and its ``call`` outputs."""
        h = self._tokens(inputs)
        hw = self.tokens_per_frame

        def against(z):
            return lp_loss(z, h[:, hw:hw + z.shape[1]], self.loss_exp)

        return against(outputs["teacher_forcing"]), against(outputs["rollout"])

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        jloss, sloss = self.losses_of(x, y_pred)
        self.teacher_forcing_tracker.update_state(jloss)
        self.rollout_tracker.update_state(sloss)
        loss = self.teacher_forcing_weight * jloss + self.rollout_weight * sloss
        loss = loss + sum(self.losses) if self.losses else loss
        return scale_loss_for_replicas(loss)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "predictor": keras.saving.serialize_keras_object(self.predictor),
            "auto_steps": self.auto_steps,
            "loss_exp": self.loss_exp,
            "teacher_forcing_weight": self.teacher_forcing_weight,
            "rollout_weight": self.rollout_weight,
            "normalize_reps": self.normalize_reps,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
