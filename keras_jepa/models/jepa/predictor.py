"""The JEPA predictor: a narrow ViT that predicts target-token features from context tokens.

One class serves the three official predictors:

=========  =====  =====  =====  ===========  ======================================
family     width  depth  heads  mask tokens  positions
=========  =====  =====  =====  ===========  ======================================
I-JEPA     384    12/16  = encoder heads (16)  1 (normal init)  2-D sin-cos, column first
V-JEPA     384    12     16     2 (zeros)    3-D sin-cos, uniform_power
V-JEPA 2   384    12     12     10 (zeros)   3-D RoPE (tiled), depth-scaled init
=========  =====  =====  =====  ===========  ======================================

Forward (``predictor(context_tokens, context_indices, target_indices, mask_index)``):
project the context tokens to the predictor width and add their positions; build one query
per target token as ``mask_token[mask_index] + position`` (with RoPE the position enters
through the attention rotation instead); run the blocks over ``[context, queries]``;
normalise; keep the query outputs; project back to the encoder width.

Stochastic positions (StoP, FlexPredict; Bar et al.), ``stochastic_positions=True``: each
target query is ``position + predictor_embed(n)`` with ``n ~ N(0, stop_std^2)`` drawn in the
*encoder* width, so the same linear layer that projects the context tokens (``A`` of the paper)
also scales the positional noise, which keeps ``A`` from collapsing to zero; the bias of
``predictor_embed`` plays the role of the mask token (``mask_tokens`` is then unused, kept so
the variables stay the same). Noise is drawn from the layer's own ``keras.random.SeedGenerator``
and only when ``training=True``; in inference the query is ``position + bias`` (the noise
mean). Ablations: ``stop_tied=False`` projects the noise with a separate layer
(``stop_proj``), ``stop_context_noise=True`` also adds noise to the context tokens.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_jepa.layers.initializers import normal_init
from keras_jepa.layers.position_embedding import SinCosPositionEmbedding
from keras_jepa.layers.rotary_embedding import rope_tables
from keras_jepa.layers.token_ops import check_indices
from keras_jepa.layers.transformer_block import TransformerBlock


@keras.saving.register_keras_serializable(package="keras_jepa")
class JEPAPredictor(keras.layers.Layer):
    """Predicts target-token features of a JEPA encoder.

    Args:
        grid_size: token grid of the encoder, ``(H, W)`` or ``(T, H, W)``.
        output_dim: encoder width (the prediction width).
        hidden_dim: predictor width (384 in every release).
        depth: number of blocks.
        num_heads: attention heads.
        mlp_ratio: MLP ratio.
        num_mask_tokens: learnable mask tokens; ``mask_index`` picks one per call.
        zero_init_mask_tokens: V-JEPA's zero init; otherwise normal(0.02) as I-JEPA.
        position_embedding: ``"sincos"`` or ``"rope"``.
        sincos_order: 2-D order (``"wh"`` for I-JEPA).
        uniform_power: V-JEPA's 3-D channel split.
        rope_tiled: V-JEPA 2's tiled-frequency RoPE layout.
        depth_scaled_init: V-JEPA 2's ``1/sqrt(2 i)`` init scaling of block outputs.
        drop_path_rate: stochastic depth, linear over the blocks.
        layer_norm_epsilon: 1e-6.
        init_std: 0.02.
        stochastic_positions: StoP target queries (see the module docstring).
        stop_std: standard deviation of the StoP noise (official: 0.25 for ViT-B/L, 0.2 for
            ViT-H). ``0`` gives the deterministic query ``position + bias``.
        stop_tied: project the noise with ``predictor_embed`` (the paper); ``False`` is the
            untied ablation (a separate ``stop_proj`` layer).
        stop_context_noise: ablation: also perturb the context tokens with the same noise
            (``predictor_embed(z + n)``).
        stop_seed: seed of the noise generator (``None``: random).

    Example:

    >>> import numpy as np
    >>> pred = JEPAPredictor(grid_size=(4, 4), output_dim=32, hidden_dim=16, depth=1,
    ...                      num_heads=2)
    >>> ctx, ctx_idx = np.zeros((2, 5, 32), "float32"), np.tile(np.arange(5), (2, 1))
    >>> tuple(pred(ctx, ctx_idx, np.tile(np.arange(10, 13), (2, 1))).shape)
    (2, 3, 32)
    """

    def __init__(
        self,
        grid_size,
        output_dim,
        hidden_dim=384,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        num_mask_tokens=1,
        zero_init_mask_tokens=False,
        position_embedding="sincos",
        sincos_order="hw",
        uniform_power=False,
        rope_tiled=True,
        depth_scaled_init=False,
        drop_path_rate=0.0,
        layer_norm_epsilon=1e-6,
        init_std=0.02,
        flash_attention=None,
        stochastic_positions=False,
        stop_std=0.25,
        stop_tied=True,
        stop_context_noise=False,
        stop_seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.grid_size = tuple(int(g) for g in grid_size)
        self.output_dim = int(output_dim)
        self.hidden_dim = int(hidden_dim)
        self.depth = int(depth)
        self.num_heads = int(num_heads)
        self.mlp_ratio = float(mlp_ratio)
        self.num_mask_tokens = int(num_mask_tokens)
        self.zero_init_mask_tokens = bool(zero_init_mask_tokens)
        if position_embedding not in ("sincos", "rope"):
            raise ValueError(
                f"position_embedding must be 'sincos' or 'rope'; got {position_embedding!r}."
            )
        self.position_embedding = position_embedding
        self.sincos_order = sincos_order
        self.uniform_power = bool(uniform_power)
        self.rope_tiled = bool(rope_tiled)
        self.depth_scaled_init = bool(depth_scaled_init)
        self.drop_path_rate = float(drop_path_rate)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.init_std = float(init_std)
        self.flash_attention = flash_attention
        self.num_positions = int(np.prod(self.grid_size))
        self.stochastic_positions = bool(stochastic_positions)
        self.stop_std = float(stop_std)
        if self.stop_std < 0:
            raise ValueError(f"stop_std must be >= 0; got {stop_std!r}.")
        self.stop_tied = bool(stop_tied)
        self.stop_context_noise = bool(stop_context_noise)
        self.stop_seed = stop_seed
        if self.stochastic_positions and position_embedding != "sincos":
            raise ValueError(
                "stochastic_positions needs position_embedding='sincos' (the noise replaces "
                f"the mask token next to an additive position); got {position_embedding!r}."
            )
        self.stop_seed_generator = (
            keras.random.SeedGenerator(stop_seed, name="stop_seed_generator")
            if self.stochastic_positions else None
        )

    def build(self, input_shape=None):
        common = dict(dtype=self.dtype_policy)
        width = self.hidden_dim
        self.predictor_embed = keras.layers.Dense(
            width, kernel_initializer=normal_init(self.init_std),
            name="predictor_embed", **common,
        )
        self.predictor_embed.build((None, None, self.output_dim))
        self.mask_tokens = self.add_weight(
            name="mask_tokens",
            shape=(self.num_mask_tokens, 1, 1, width),
            initializer="zeros" if self.zero_init_mask_tokens else normal_init(self.init_std),
        )
        if self.stochastic_positions:
            # Unused with StoP (the projection bias is the mask token); kept, frozen, so the
            # variables stay those of the plain predictor.
            self.mask_tokens.trainable = False
        self.predictor_pos_embed = None
        if self.position_embedding == "sincos":
            self.predictor_pos_embed = SinCosPositionEmbedding(
                grid_size=self.grid_size, order=self.sincos_order,
                uniform_power=self.uniform_power, name="predictor_pos_embed", **common,
            )
            self.predictor_pos_embed.build((None, self.num_positions, width))
        rates = np.linspace(0.0, self.drop_path_rate, self.depth) if self.depth else []
        self.predictor_blocks = []
        for i in range(self.depth):
            block = TransformerBlock(
                num_heads=self.num_heads, mlp_ratio=self.mlp_ratio,
                layer_norm_epsilon=self.layer_norm_epsilon,
                drop_path_rate=float(rates[i]), init_std=self.init_std,
                residual_init_scale=(
                    1.0 / math.sqrt(2.0 * (i + 1)) if self.depth_scaled_init else 1.0
                ),
                flash_attention=self.flash_attention,
                name=f"predictor_blocks_{i}", **common,
            )
            block.build((None, None, width))
            self.predictor_blocks.append(block)
        self.predictor_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="predictor_norm", **common
        )
        self.predictor_norm.build((None, None, width))
        self.predictor_proj = keras.layers.Dense(
            self.output_dim, kernel_initializer=normal_init(self.init_std),
            name="predictor_proj", **common,
        )
        self.predictor_proj.build((None, None, width))
        self.stop_proj = None
        if self.stochastic_positions and not self.stop_tied:
            self.stop_proj = keras.layers.Dense(
                width, kernel_initializer=normal_init(self.init_std), name="stop_proj",
                **common,
            )
            self.stop_proj.build((None, None, self.output_dim))
        self.built = True

    def _positions(self, indices):
        table = ops.cast(self.predictor_pos_embed.table[0], self.compute_dtype)
        return ops.take(table, indices, axis=0)

    def _stop_noise(self, shape, training):
        """StoP noise in the encoder width, or zeros outside training."""
        if training and self.stop_std > 0:
            return keras.random.normal(
                shape, stddev=self.stop_std, dtype=self.compute_dtype,
                seed=self.stop_seed_generator,
            )
        return ops.zeros(shape, self.compute_dtype)

    def embed_inputs(self, context_tokens, context_indices, target_indices, mask_index=0,
                     training=False):
        """Predictor-width context tokens and target queries (positions included), and the
        RoPE tables (or ``None``): the input side of :meth:`call`."""
        if not 0 <= int(mask_index) < self.num_mask_tokens:
            raise ValueError(
                f"mask_index={mask_index} but the predictor has "
                f"{self.num_mask_tokens} mask token(s)."
            )
        num_tokens = math.prod(self.grid_size)
        batch_size = context_tokens.shape[0]
        check_indices(context_indices, num_tokens, "context_indices", batch_size)
        check_indices(target_indices, num_tokens, "target_indices", batch_size)
        context_indices = ops.cast(context_indices, "int32")
        target_indices = ops.cast(target_indices, "int32")
        num_targets = target_indices.shape[1]
        if self.stochastic_positions:
            if self.stop_context_noise:
                context_tokens = ops.cast(context_tokens, self.compute_dtype)
                context_tokens = context_tokens + self._stop_noise(
                    ops.shape(context_tokens), training
                )
            x = self.predictor_embed(context_tokens)
            batch = ops.shape(x)[0]
            noise = self._stop_noise((batch, num_targets, self.output_dim), training)
            project = self.predictor_embed if self.stop_tied else self.stop_proj
            queries = project(noise)
        else:
            x = self.predictor_embed(context_tokens)
            batch = ops.shape(x)[0]
            token = ops.cast(self.mask_tokens[int(mask_index)], x.dtype)
            queries = ops.broadcast_to(token, (batch, num_targets, self.hidden_dim))
        rope = None
        if self.predictor_pos_embed is not None:
            x = x + self._positions(context_indices)
            queries = queries + self._positions(target_indices)
        else:
            ids = ops.concatenate([context_indices, target_indices], axis=1)
            grid3 = self.grid_size if len(self.grid_size) == 3 else (1,) + self.grid_size
            rope = rope_tables(
                ids, grid3, self.hidden_dim // self.num_heads, tiled=self.rope_tiled
            )
        return x, queries, rope

    def decode(self, sequence, num_queries, rope=None, training=False):
        """Runs the blocks over ``sequence`` and projects its last ``num_queries`` tokens
        back to the encoder width: the output side of :meth:`call`."""
        x = sequence
        for block in self.predictor_blocks:
            x = block(x, rope=rope, training=training)
        x = self.predictor_norm(x)
        x = x[:, x.shape[1] - num_queries:]
        return self.predictor_proj(x)

    def call(self, context_tokens, context_indices, target_indices, mask_index=0, training=False):
        """``(B, Kc, D)``, ``(B, Kc)``, ``(B, Kt)`` int -> predictions ``(B, Kt, D)``."""
        x, queries, rope = self.embed_inputs(
            context_tokens, context_indices, target_indices, mask_index, training
        )
        x = ops.concatenate([x, queries], axis=1)
        return self.decode(x, queries.shape[1], rope=rope, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "grid_size": list(self.grid_size),
                "output_dim": self.output_dim,
                "hidden_dim": self.hidden_dim,
                "depth": self.depth,
                "num_heads": self.num_heads,
                "mlp_ratio": self.mlp_ratio,
                "num_mask_tokens": self.num_mask_tokens,
                "zero_init_mask_tokens": self.zero_init_mask_tokens,
                "position_embedding": self.position_embedding,
                "sincos_order": self.sincos_order,
                "uniform_power": self.uniform_power,
                "rope_tiled": self.rope_tiled,
                "depth_scaled_init": self.depth_scaled_init,
                "drop_path_rate": self.drop_path_rate,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "init_std": self.init_std,
                "flash_attention": self.flash_attention,
                "stochastic_positions": self.stochastic_positions,
                "stop_std": self.stop_std,
                "stop_tied": self.stop_tied,
                "stop_context_noise": self.stop_context_noise,
                "stop_seed": self.stop_seed,
            }
        )
        return config
