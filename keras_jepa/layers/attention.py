"""Multi-head self-attention with a fused qkv projection and optional 3-D RoPE."""

import keras
from keras import ops

from keras_jepa.layers.initializers import normal_init
from keras_jepa.layers.rotary_embedding import apply_rope


@keras.saving.register_keras_serializable(package="keras_jepa")
class MultiHeadSelfAttention(keras.layers.Layer):
    """Self-attention as in the JEPA encoders: one fused ``qkv`` Dense (q | k | v stacked
    along the output axis, heads contiguous inside each), scaled dot-product attention via
    ``keras.ops.dot_product_attention`` (flash/cuDNN kernels where the backend has them),
    and an output ``proj`` Dense.

    Args:
        num_heads: number of heads; the input width must be divisible by it.
        qkv_bias: bias on the qkv projection (True in every JEPA model).
        init_std: std of the normal kernel init.
        proj_init_std: std for the output projection (defaults to ``init_std``).
        flash_attention: passed to ``keras.ops.dot_product_attention`` (None = auto).

    Call: ``layer(x, rope=None, attention_mask=None)`` with ``x (B, N, D)``, ``rope`` a
    ``(cos, sin)`` pair from ``rotary_embedding.rope_tables`` and an optional boolean mask
    broadcastable to ``(B, heads, N, N)`` (True = attend).

    Example:

    >>> import numpy as np
    >>> tuple(MultiHeadSelfAttention(num_heads=2)(np.zeros((1, 5, 8), "float32")).shape)
    (1, 5, 8)
    """

    def __init__(
        self,
        num_heads,
        qkv_bias=True,
        init_std=0.02,
        proj_init_std=None,
        flash_attention=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.qkv_bias = bool(qkv_bias)
        self.init_std = float(init_std)
        self.proj_init_std = None if proj_init_std is None else float(proj_init_std)
        self.flash_attention = flash_attention

    def build(self, input_shape):
        dim = int(input_shape[-1])
        if dim % self.num_heads:
            raise ValueError(
                f"Width {dim} is not divisible by num_heads={self.num_heads}."
            )
        self.head_dim = dim // self.num_heads
        proj_std = self.init_std if self.proj_init_std is None else self.proj_init_std
        self.qkv = keras.layers.Dense(
            3 * dim,
            use_bias=self.qkv_bias,
            kernel_initializer=normal_init(self.init_std),
            dtype=self.dtype_policy,
            name="qkv",
        )
        self.qkv.build(input_shape)
        self.proj = keras.layers.Dense(
            dim,
            kernel_initializer=normal_init(proj_std),
            dtype=self.dtype_policy,
            name="proj",
        )
        self.proj.build(tuple(input_shape[:-1]) + (dim,))
        self.built = True

    def call(self, x, rope=None, attention_mask=None):
        num_tokens = ops.shape(x)[1]
        dim = self.num_heads * self.head_dim
        qkv = ops.reshape(
            self.qkv(x), (-1, num_tokens, 3, self.num_heads, self.head_dim)
        )
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if rope is not None:
            cos, sin = rope
            q = apply_rope(q, cos, sin)
            k = apply_rope(k, cos, sin)
        out = ops.dot_product_attention(
            q, k, v, mask=attention_mask, flash_attention=self.flash_attention
        )
        return self.proj(ops.reshape(out, (-1, num_tokens, dim)))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "qkv_bias": self.qkv_bias,
                "init_std": self.init_std,
                "proj_init_std": self.proj_init_std,
                "flash_attention": self.flash_attention,
            }
        )
        return config
