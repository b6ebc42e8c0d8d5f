"""Multi-head cross-attention: queries ``(B, M, D)`` attend to a context ``(B, N, Dc)``."""

import keras
from keras import ops

from keras_jepa.layers.initializers import normal_init


@keras.saving.register_keras_serializable(package="keras_jepa")
class CrossAttention(keras.layers.Layer):
    """Multi-head attention of queries ``q (B, M, D)`` over a context ``x (B, N, Dc)``.

    ``q`` is projected by ``q`` (``Dense(D)``), ``x`` by one fused ``kv`` (``Dense(2D)``, k | v
    stacked along the output axis, heads contiguous inside each); scaled dot-product
    attention through ``keras.ops.dot_product_attention``; the heads' outputs are
    concatenated and, with ``output_projection=True``, projected by ``proj``
    (``Dense(D)``). The V-JEPA attentive probes use no output projection (V-JEPA 1 builds
    one but never applies it; V-JEPA 2 has none); VistaLLM's tokenizer uses one.

    Args:
        num_heads: attention heads; the width ``D`` must be divisible by it.
        qkv_bias: bias on ``q`` and ``kv`` (``proj`` always has one).
        init_std: std of the normal kernel init.
        flash_attention: passed to ``keras.ops.dot_product_attention``.
        output_projection: apply ``proj`` to the concatenated heads.

    Call: ``layer(q, x, attention_mask=None)``; the mask (broadcastable to
    ``(B, heads, M, N)``, True = attend) is passed to the attention.

    Example:

    >>> import numpy as np
    >>> layer = CrossAttention(num_heads=2)
    >>> tuple(layer(np.zeros((3, 1, 8), "float32"), np.zeros((3, 5, 6), "float32")).shape)
    (3, 1, 8)
    """

    def __init__(self, num_heads, qkv_bias=True, init_std=0.02, flash_attention=None,
                 output_projection=False, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.qkv_bias = bool(qkv_bias)
        self.init_std = float(init_std)
        self.flash_attention = flash_attention
        self.output_projection = bool(output_projection)

    def build(self, q_shape, x_shape=None):
        dim = int(q_shape[-1])
        if dim % self.num_heads:
            raise ValueError(f"Width {dim} is not divisible by num_heads={self.num_heads}.")
        self.head_dim = dim // self.num_heads
        init = dict(kernel_initializer=normal_init(self.init_std), dtype=self.dtype_policy)
        self.q = keras.layers.Dense(dim, use_bias=self.qkv_bias, name="q", **init)
        self.q.build(q_shape)
        self.kv = keras.layers.Dense(2 * dim, use_bias=self.qkv_bias, name="kv", **init)
        self.kv.build(q_shape if x_shape is None else x_shape)
        if self.output_projection:
            self.proj = keras.layers.Dense(dim, name="proj", **init)
            self.proj.build(q_shape)
        self.built = True

    def call(self, q, x, attention_mask=None):
        num_queries, num_tokens = ops.shape(q)[1], ops.shape(x)[1]
        heads, head_dim = self.num_heads, self.head_dim
        query = ops.reshape(self.q(q), (-1, num_queries, heads, head_dim))
        kv = ops.reshape(self.kv(x), (-1, num_tokens, 2, heads, head_dim))
        out = ops.dot_product_attention(
            query, kv[:, :, 0], kv[:, :, 1], mask=attention_mask,
            flash_attention=self.flash_attention,
        )
        out = ops.reshape(out, (-1, num_queries, heads * head_dim))
        return self.proj(out) if self.output_projection else out

    def compute_output_shape(self, q_shape, x_shape=None):
        return tuple(q_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"num_heads": self.num_heads, "qkv_bias": self.qkv_bias,
                       "init_std": self.init_std, "flash_attention": self.flash_attention,
                       "output_projection": self.output_projection})
        return config
