"""The pre-norm ViT block shared by every encoder and predictor in keras_jepa."""

import keras

from keras_jepa.layers.attention import MultiHeadSelfAttention
from keras_jepa.layers.initializers import normal_init
from keras_jepa.layers.drop_path import DropPath
from keras_jepa.layers.mlp import MLP, SwiGLU


@keras.saving.register_keras_serializable(package="keras_jepa")
class TransformerBlock(keras.layers.Layer):
    """``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``, as in the JEPA reference ViTs.

    LayerNorm ``epsilon=1e-6``, fused qkv with bias, exact-GELU MLP (or SwiGLU), optional
    per-sample drop path. Sub-layer names (``norm1``, ``attn.qkv``, ``attn.proj``,
    ``norm2``, ``mlp.fc1``, ``mlp.fc2``) mirror the official checkpoint keys.

    Args:
        num_heads: attention heads.
        mlp_ratio: MLP hidden width over the model width (4; 48/11 for the giant models).
        qkv_bias: bias on qkv.
        layer_norm_epsilon: LayerNorm epsilon.
        mlp_type: ``"gelu"`` or ``"swiglu"``.
        wide_swiglu: SwiGLU hidden width rule (see ``SwiGLU``).
        drop_path_rate: stochastic depth rate of this block.
        init_std: std of the normal kernel init.
        residual_init_scale: multiplies the init std of ``attn.proj`` and ``mlp.fc2``
            (``1/sqrt(2 * layer_id)`` reproduces the official depth rescaling).
        output_dim: width of the block output. ``None`` keeps the model width. A different
            value (the "expand or narrow your representation" knob, Bordes et al.) makes the
            MLP write ``output_dim`` channels and adds a linear ``shortcut`` projection of
            the residual stream, as a ResNet's last stage does when it changes width.
        flash_attention: passed to ``keras.ops.dot_product_attention``.

    Example:

    >>> import numpy as np
    >>> tuple(TransformerBlock(num_heads=2)(np.zeros((1, 5, 8), "float32")).shape)
    (1, 5, 8)
    """

    def __init__(
        self,
        num_heads,
        mlp_ratio=4.0,
        qkv_bias=True,
        layer_norm_epsilon=1e-6,
        mlp_type="gelu",
        wide_swiglu=True,
        drop_path_rate=0.0,
        init_std=0.02,
        residual_init_scale=1.0,
        output_dim=None,
        flash_attention=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mlp_type not in ("gelu", "swiglu"):
            raise ValueError(f"mlp_type must be 'gelu' or 'swiglu'; got {mlp_type!r}.")
        self.num_heads = int(num_heads)
        self.mlp_ratio = float(mlp_ratio)
        self.qkv_bias = bool(qkv_bias)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.mlp_type = mlp_type
        self.wide_swiglu = bool(wide_swiglu)
        self.drop_path_rate = float(drop_path_rate)
        self.init_std = float(init_std)
        self.residual_init_scale = float(residual_init_scale)
        self.output_dim = None if output_dim is None else int(output_dim)
        self.flash_attention = flash_attention

    def build(self, input_shape):
        dim = int(input_shape[-1])
        scaled_std = self.init_std * self.residual_init_scale
        common = dict(dtype=self.dtype_policy)
        self.norm1 = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="norm1", **common
        )
        self.norm1.build(input_shape)
        self.attn = MultiHeadSelfAttention(
            self.num_heads,
            qkv_bias=self.qkv_bias,
            init_std=self.init_std,
            proj_init_std=scaled_std,
            flash_attention=self.flash_attention,
            name="attn",
            **common,
        )
        self.attn.build(input_shape)
        self.norm2 = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="norm2", **common
        )
        self.norm2.build(input_shape)
        mlp_cls = MLP if self.mlp_type == "gelu" else SwiGLU
        mlp_kwargs = {} if self.mlp_type == "gelu" else {"wide": self.wide_swiglu}
        self.mlp = mlp_cls(
            hidden_dim=int(dim * self.mlp_ratio),
            output_dim=self.output_dim,
            init_std=self.init_std,
            fc2_init_std=scaled_std,
            name="mlp",
            **mlp_kwargs,
            **common,
        )
        self.mlp.build(input_shape)
        self.shortcut = None
        if self.output_dim is not None and self.output_dim != dim:
            self.shortcut = keras.layers.Dense(
                self.output_dim,
                kernel_initializer=normal_init(self.init_std),
                name="shortcut",
                **common,
            )
            self.shortcut.build(input_shape)
        self.drop_path = DropPath(self.drop_path_rate, name="drop_path", **common)
        self.built = True

    def call(self, x, rope=None, attention_mask=None, training=False):
        x = x + self.drop_path(
            self.attn(self.norm1(x), rope=rope, attention_mask=attention_mask),
            training=training,
        )
        residual = x if self.shortcut is None else self.shortcut(x)
        return residual + self.drop_path(self.mlp(self.norm2(x)), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_dim or input_shape[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "mlp_ratio": self.mlp_ratio,
                "qkv_bias": self.qkv_bias,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "mlp_type": self.mlp_type,
                "wide_swiglu": self.wide_swiglu,
                "drop_path_rate": self.drop_path_rate,
                "init_std": self.init_std,
                "residual_init_scale": self.residual_init_scale,
                "output_dim": self.output_dim,
                "flash_attention": self.flash_attention,
            }
        )
        return config
