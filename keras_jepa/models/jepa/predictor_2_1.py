"""The V-JEPA 2.1 predictor: a ``JEPAPredictor`` with multi-level inputs and outputs.

Differences from the V-JEPA 2 predictor (same narrow ViT, 3-D RoPE, mask tokens):

* **levels** (``n_output_distillation``, 1 or 4): the context tokens are the encoder's
  hierarchical output, ``levels`` normalised layer outputs concatenated on channels
  (``levels * D`` wide). One level is embedded by one linear layer (``predictor_embed``);
  several by ``Linear(levels * D -> D)``, GELU, ``Linear(D -> width)``
  (``predictor_embed.0`` / ``predictor_embed.2``).
* **outputs**: ``predictor_proj`` writes ``levels * out`` channels, with ``out =
  teacher_embed_dim // levels`` when a teacher width is given (the distilled ViT-B and
  ViT-L predict the 1664-wide ViT-G features), otherwise the encoder width ``D``.
* **all tokens** (``return_all_tokens``): the context positions are projected too, by their
  own ``predictor_proj_context``; the call then returns ``(targets, context)``, which the
  dense loss of V-JEPA 2.1 uses.
* **modality embedding**: ``img_mod_embed`` or ``video_mod_embed`` (``(1, 1, width)``) is
  added to every token (``modality="image"`` or ``"video"``).
* **RoPE** in the textbook interleaved layout (``rope_tiled=False``), optionally
  interpolated as in the encoder (``interpolate_rope``; the released hub predictors leave
  it off).
* ``mask_index`` wraps around the mask tokens (``mask_index % num_mask_tokens``); the
  official default is 1.

The official predictor sorts context and target tokens by position before the blocks and
unsorts them after; attention without a mask and with per-token RoPE does not depend on
token order, so this port keeps ``[context, targets]`` as they come.
"""

import keras
from keras import ops

from keras_jepa.layers.initializers import normal_init
from keras_jepa.layers.rotary_embedding import interpolated_position_scale, rope_tables
from keras_jepa.models.jepa.predictor import JEPAPredictor

MODALITIES = ("video", "image")


@keras.saving.register_keras_serializable(package="keras_jepa")
class VJEPA2_1Predictor(JEPAPredictor):
    """V-JEPA 2.1 predictor (see the module docstring).

    Args:
        grid_size: ``(T, H, W)`` token grid of the encoder (for RoPE positions).
        output_dim: encoder width ``D`` (per level).
        n_output_distillation: number of levels (1 for the distilled ViT-B/L, 4 for
            ViT-g/G).
        teacher_embed_dim: total width of the teacher features to predict (1664 for the
            distilled models); ``None``: ``levels * D``.
        return_all_tokens: also project the context tokens (``predictor_proj_context``).
        modality_embedding: hold and add ``img_mod_embed`` / ``video_mod_embed``.
        interpolate_rope: scale row/column RoPE positions as the V-JEPA 2.1 encoder does.
        patch_size: the encoder's patch size (sets the reference grid of
            ``interpolate_rope``: 256 px, or 252 px at patch 14).
        Other arguments as ``JEPAPredictor``; the defaults here are the V-JEPA 2.1 ones
        (width 384, 12 heads, 8 zero-initialised mask tokens, RoPE in the interleaved
        layout, depth-scaled init).

    Example:

    >>> import numpy as np
    >>> pred = VJEPA2_1Predictor(grid_size=(1, 4, 4), output_dim=16, hidden_dim=24,
    ...                          depth=1, num_heads=2, n_output_distillation=4)
    >>> ctx, ctx_idx = np.zeros((2, 5, 64), "float32"), np.tile(np.arange(5), (2, 1))
    >>> targets, context = pred(ctx, ctx_idx, np.tile(np.arange(10, 13), (2, 1)))
    >>> tuple(targets.shape), tuple(context.shape)
    ((2, 3, 64), (2, 5, 64))
    """

    def __init__(
        self,
        grid_size,
        output_dim,
        hidden_dim=384,
        depth=24,
        num_heads=12,
        num_mask_tokens=8,
        zero_init_mask_tokens=True,
        position_embedding="rope",
        rope_tiled=False,
        depth_scaled_init=True,
        n_output_distillation=4,
        teacher_embed_dim=None,
        return_all_tokens=True,
        modality_embedding=True,
        interpolate_rope=False,
        patch_size=16,
        **kwargs,
    ):
        if position_embedding != "rope":
            raise ValueError("The V-JEPA 2.1 predictor uses RoPE (position_embedding='rope').")
        if kwargs.get("stochastic_positions"):
            raise ValueError("stochastic_positions is not supported by VJEPA2_1Predictor.")
        super().__init__(
            grid_size,
            output_dim,
            hidden_dim=hidden_dim,
            depth=depth,
            num_heads=num_heads,
            num_mask_tokens=num_mask_tokens,
            zero_init_mask_tokens=zero_init_mask_tokens,
            position_embedding=position_embedding,
            rope_tiled=rope_tiled,
            depth_scaled_init=depth_scaled_init,
            **kwargs,
        )
        if len(self.grid_size) != 3:
            raise ValueError(f"grid_size must be (T, H, W); got {self.grid_size}.")
        self.n_output_distillation = int(n_output_distillation)
        if self.n_output_distillation < 1:
            raise ValueError("n_output_distillation must be >= 1.")
        self.teacher_embed_dim = None if teacher_embed_dim is None else int(teacher_embed_dim)
        if self.teacher_embed_dim is not None and (
            self.teacher_embed_dim % self.n_output_distillation
        ):
            raise ValueError(
                f"teacher_embed_dim={self.teacher_embed_dim} is not divisible by "
                f"n_output_distillation={self.n_output_distillation}."
            )
        self.return_all_tokens = bool(return_all_tokens)
        self.modality_embedding = bool(modality_embedding)
        self.interpolate_rope = bool(interpolate_rope)
        self.patch_size = int(patch_size)

    @property
    def input_width(self):
        """Width of the context tokens: ``levels * D``."""
        return self.n_output_distillation * self.output_dim

    @property
    def level_width(self):
        """Width of one predicted level."""
        if self.teacher_embed_dim is not None:
            return self.teacher_embed_dim // self.n_output_distillation
        return self.output_dim

    @property
    def prediction_width(self):
        """Width of the predictions: ``levels * level_width``."""
        return self.n_output_distillation * self.level_width

    def build(self, input_shape=None):
        super().build(input_shape)
        common = dict(dtype=self.dtype_policy)
        width = self.hidden_dim
        init = normal_init(self.init_std)
        # Replace the single-level layers of the parent by the multi-level ones; the
        # parent's are dropped from the tracked layers so their weights disappear too.
        for old in (self.predictor_embed, self.predictor_proj):
            self._layers.remove(old)
        self.predictor_embed_hidden = None
        if self.n_output_distillation == 1:
            self.predictor_embed = keras.layers.Dense(
                width, kernel_initializer=init, name="predictor_embed", **common
            )
            self.predictor_embed.build((None, None, self.input_width))
        else:
            self.predictor_embed_hidden = keras.layers.Dense(
                self.output_dim, kernel_initializer=init, name="predictor_embed_0", **common
            )
            self.predictor_embed_hidden.build((None, None, self.input_width))
            self.predictor_embed = keras.layers.Dense(
                width, kernel_initializer=init, name="predictor_embed_2", **common
            )
            self.predictor_embed.build((None, None, self.output_dim))
        self.predictor_proj = keras.layers.Dense(
            self.prediction_width, kernel_initializer=init, name="predictor_proj", **common
        )
        self.predictor_proj.build((None, None, width))
        self.predictor_proj_context = None
        if self.return_all_tokens:
            self.predictor_proj_context = keras.layers.Dense(
                self.prediction_width, kernel_initializer=init,
                name="predictor_proj_context", **common,
            )
            self.predictor_proj_context.build((None, None, width))
        self.img_mod_embed = self.video_mod_embed = None
        if self.modality_embedding:
            mod_init = keras.initializers.RandomNormal(stddev=1e-6)
            self.video_mod_embed = self.add_weight(
                name="video_mod_embed", shape=(1, 1, width), initializer=mod_init
            )
            self.img_mod_embed = self.add_weight(
                name="img_mod_embed", shape=(1, 1, width), initializer=mod_init
            )
        self.built = True

    def _embed_context(self, context_tokens):
        x = context_tokens
        if self.predictor_embed_hidden is not None:
            x = keras.activations.gelu(self.predictor_embed_hidden(x), approximate=False)
        return x

    def call(self, context_tokens, context_indices, target_indices, mask_index=1,
             modality="video", training=False):
        """``(B, Kc, levels * D)``, ``(B, Kc)``, ``(B, Kt)`` int -> predictions
        ``(B, Kt, levels * out)``, or ``(predictions, context (B, Kc, levels * out))`` with
        ``return_all_tokens``."""
        if modality not in MODALITIES:
            raise ValueError(f"modality must be 'video' or 'image'; got {modality!r}.")
        if context_tokens.shape[-1] is not None and context_tokens.shape[-1] != self.input_width:
            raise ValueError(
                f"Expected context tokens of width {self.input_width} "
                f"({self.n_output_distillation} level(s) of {self.output_dim}); got "
                f"{context_tokens.shape[-1]}."
            )
        mask_index = int(mask_index) % self.num_mask_tokens
        x, queries, rope = self.embed_inputs(
            self._embed_context(context_tokens), context_indices, target_indices,
            mask_index, training,
        )
        if self.interpolate_rope:
            ids = ops.concatenate(
                [ops.cast(context_indices, "int32"), ops.cast(target_indices, "int32")], axis=1
            )
            reference = (252 if self.patch_size == 14 else 256) // self.patch_size
            rope = rope_tables(
                ids, self.grid_size, self.hidden_dim // self.num_heads, tiled=self.rope_tiled,
                position_scale=interpolated_position_scale(self.grid_size, reference),
            )
        sequence = ops.concatenate([x, queries], axis=1)
        if self.modality_embedding:
            mod = self.img_mod_embed if modality == "image" else self.video_mod_embed
            sequence = sequence + ops.cast(mod, sequence.dtype)
        for block in self.predictor_blocks:
            sequence = block(sequence, rope=rope, training=training)
        sequence = self.predictor_norm(sequence)
        num_context = x.shape[1]
        predictions = self.predictor_proj(sequence[:, num_context:])
        if not self.return_all_tokens:
            return predictions
        return predictions, self.predictor_proj_context(sequence[:, :num_context])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "n_output_distillation": self.n_output_distillation,
                "teacher_embed_dim": self.teacher_embed_dim,
                "return_all_tokens": self.return_all_tokens,
                "modality_embedding": self.modality_embedding,
                "interpolate_rope": self.interpolate_rope,
                "patch_size": self.patch_size,
            }
        )
        return config
