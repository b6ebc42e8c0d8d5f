"""A small transformer text encoder: the text tower of the image-text models (Llip,
SigLIP, CLIP)."""

import keras
from keras import ops

from keras_jepa.layers.initializers import normal_init
from keras_jepa.layers.transformer_block import TransformerBlock
from keras_jepa.presets.mixin import Backbone


@keras.saving.register_keras_serializable(package="keras_jepa")
class TextEncoder(Backbone):
    """Token ids ``(B, L)`` -> one vector per text ``(B, hidden_dim)``.

    Token embedding plus a learned position embedding, ``depth`` pre-norm
    :class:`~keras_jepa.layers.TransformerBlock` s (bidirectional attention over the
    non-padding tokens, or causal with ``causal=True`` as in CLIP), a final LayerNorm, and a
    pooling over the sequence. Id 0 is padding (the keras_jepa tokenizers in
    :mod:`keras_jepa.models.llip.tokenizers` put ``bos`` first and ``eos`` after the last token).

    Args:
        vocabulary_size: number of token ids (``tokenizer.vocabulary_size``).
        max_length: longest sequence (size of the position table).
        hidden_dim, depth, num_heads, mlp_ratio: transformer size.
        pooling: ``"mean"`` (mean over non-padding tokens, default), ``"first"`` (the
            ``bos`` token, like a class token) or ``"eos"`` (the last non-padding token, as
            in CLIP; pair it with ``causal=True``).
        causal: causal self-attention (CLIP's text tower).
        init_std: std of the normal init.
        layer_norm_epsilon: LayerNorm epsilon.

    Example:

    >>> import numpy as np
    >>> enc = TextEncoder(vocabulary_size=20, max_length=6, hidden_dim=16, depth=1, num_heads=2)
    >>> tuple(enc(np.array([[1, 5, 6, 2, 0, 0]], "int32")).shape)
    (1, 16)
    """

    def __init__(
        self,
        vocabulary_size,
        max_length=32,
        hidden_dim=256,
        depth=4,
        num_heads=4,
        mlp_ratio=4.0,
        pooling="mean",
        causal=False,
        init_std=0.02,
        layer_norm_epsilon=1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if pooling not in ("mean", "first", "eos"):
            raise ValueError(f"pooling must be 'mean', 'first' or 'eos'; got {pooling!r}.")
        if int(vocabulary_size) < 2:
            raise ValueError(f"vocabulary_size must be >= 2; got {vocabulary_size!r}.")
        if int(hidden_dim) % int(num_heads):
            raise ValueError(
                f"hidden_dim={hidden_dim} is not divisible by num_heads={num_heads}."
            )
        self.vocabulary_size = int(vocabulary_size)
        self.max_length = int(max_length)
        self.hidden_dim = int(hidden_dim)
        self.depth = int(depth)
        self.num_heads = int(num_heads)
        self.mlp_ratio = float(mlp_ratio)
        self.pooling = pooling
        self.causal = bool(causal)
        self.init_std = float(init_std)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        common = dict(dtype=self.dtype_policy)
        self.token_embedding = keras.layers.Embedding(
            self.vocabulary_size, self.hidden_dim,
            embeddings_initializer=normal_init(self.init_std), name="token_embedding", **common,
        )
        self.blocks = [
            TransformerBlock(
                num_heads=self.num_heads, mlp_ratio=self.mlp_ratio,
                layer_norm_epsilon=self.layer_norm_epsilon, init_std=self.init_std,
                name=f"blocks_{i}", **common,
            )
            for i in range(self.depth)
        ]
        self.norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="norm", **common
        )
        self.build((None, self.max_length))

    def build(self, input_shape):
        self.token_embedding.build(input_shape)
        self.position_embedding = self.add_weight(
            name="position_embedding", shape=(self.max_length, self.hidden_dim),
            initializer=normal_init(self.init_std),
        )
        shape = tuple(input_shape) + (self.hidden_dim,)
        for block in self.blocks:
            block.build(shape)
        self.norm.build(shape)
        self.built = True

    def call(self, token_ids, training=False):
        if len(token_ids.shape) != 2:
            raise ValueError(
                f"token_ids must be (batch, length) ints; got shape {tuple(token_ids.shape)}."
            )
        length = token_ids.shape[1]
        if length is not None and length > self.max_length:
            raise ValueError(
                f"Sequences of length {length} exceed max_length={self.max_length}."
            )
        token_ids = ops.cast(token_ids, "int32")
        valid = ops.not_equal(token_ids, 0)
        x = self.token_embedding(token_ids)
        x = x + ops.cast(self.position_embedding[None, :length], x.dtype)
        # (B, 1, 1, L): every query attends to the non-padding keys.
        mask = valid[:, None, None, :]
        if self.causal:
            causal = ops.tril(ops.ones((length, length), "bool"))
            mask = ops.logical_and(mask, causal[None, None])
        for block in self.blocks:
            x = block(x, attention_mask=mask, training=training)
        x = self.norm(x)
        return self.pool(x, valid)

    def pool(self, x, valid):
        if self.pooling == "first":
            return x[:, 0]
        weights = ops.cast(valid, x.dtype)
        if self.pooling == "eos":
            last = ops.sum(ops.cast(valid, "int32"), axis=1) - 1
            weights = ops.cast(
                ops.equal(ops.arange(ops.shape(x)[1])[None], last[:, None]), x.dtype
            )
        weights = weights / ops.maximum(ops.sum(weights, axis=1, keepdims=True), 1.0)
        return ops.einsum("bl,bld->bd", weights, x)

    def compute_output_shape(self, token_ids_shape):
        return (token_ids_shape[0], self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "max_length": self.max_length,
                "hidden_dim": self.hidden_dim,
                "depth": self.depth,
                "num_heads": self.num_heads,
                "mlp_ratio": self.mlp_ratio,
                "pooling": self.pooling,
                "causal": self.causal,
                "init_std": self.init_std,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
