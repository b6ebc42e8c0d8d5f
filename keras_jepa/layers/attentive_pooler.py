"""The attentive probe of V-JEPA and V-JEPA 2, and loading of the official probe weights.

``AttentiveClassifier`` pools the frozen encoder's tokens with one learned query through a
cross-attention block and classifies the pooled vector with a linear layer. Two forms exist
in the reference code (facts: research ``jepa-reference.md`` §2.5, §3.2; checked in
``src/models/attentive_pooler.py`` and ``src/models/utils/modules.py`` of both repos):

* ``variant="vjepa"`` (V-JEPA 1): ``q = q + xattn(q, norm1(x))`` (``norm1`` normalises the
  keys/values, not the query), ``q = q + mlp(norm2(q))``; with ``depth > 1`` the extra
  ``depth - 1`` self-attention blocks process the query *after* the cross-attention. The
  released files store an ``xattn.proj`` that the forward pass never applies; it is dropped
  on loading.
* ``variant="vjepa2"`` (V-JEPA 2, ``num_probe_blocks=4``, 16 heads): the ``depth - 1``
  self-attention blocks run over the encoder tokens *before* the cross-attention; the cross
  attention has no ``proj`` at all.

Both: ``q`` is ``Linear(D, D)``, ``kv`` is ``Linear(D, 2D)`` (k | v stacked, heads contiguous
inside each), both with bias; scaled dot-product attention with scale ``head_dim ** -0.5``;
exact-GELU MLP of ratio 4; LayerNorms with PyTorch's default ``eps=1e-5`` (the probe builds
``nn.LayerNorm`` without an epsilon, unlike the encoders' 1e-6; Hugging Face's
``VJEPA2AttentivePooler`` uses its config's ``layer_norm_eps``, 1e-6, instead: pass
``layer_norm_epsilon=1e-6`` to match it); the pooled query goes through ``linear``
``Linear(D, num_classes)``.

Sub-layers carry the official names, so ``keras_jepa.checkpoints.probes`` maps every
official key (``pooler.query_tokens``, ``pooler.cross_attention_block.xattn.kv.weight``,
``pooler.blocks.{i}.attn.qkv.weight``, ``linear.bias``...) to its Keras variable.

Initialisation, as officially: the pooler (query token, attention, MLP) draws its kernels
from a normal of std ``init_std`` (0.02) with zero biases, and divides ``attn.proj`` /
``mlp.fc2`` by the depth factor; the classifier ``linear`` is *not* re-initialised by the
pooler's ``_init_weights`` and keeps PyTorch's ``nn.Linear`` default (kaiming-uniform with
``a = sqrt(5)``): kernel and bias both uniform in ``[-1/sqrt(D), 1/sqrt(D)]``, variance
``1 / (3 D)``. ``linear_init="normal"`` gives the linear layer the pooler's init instead
(normal of std ``init_std``, zero bias).
"""

import math

import keras
import numpy as np
from keras import ops

from keras_jepa.layers.cross_attention import CrossAttention
from keras_jepa.layers.initializers import normal_init
from keras_jepa.layers.mlp import MLP
from keras_jepa.layers.transformer_block import TransformerBlock

PROBE_VARIANTS = ("vjepa", "vjepa2")

# Initialisations of the classifier ``linear``: PyTorch's nn.Linear default (official), or
# the pooler's normal init.
LINEAR_INITS = ("pytorch", "normal")

# The official default number of probe blocks per variant (V-JEPA 1: one cross-attention
# block; V-JEPA 2 configs: ``num_probe_blocks: 4``, i.e. 3 self-attention blocks + 1).
DEFAULT_DEPTH = {"vjepa": 1, "vjepa2": 4}

# Keys of the released V-JEPA 1 probes that the forward pass does not use.
VJEPA1_UNUSED_KEYS = (r"pooler\.cross_attention_block\.xattn\.proj\..*",)


@keras.saving.register_keras_serializable(package="keras_jepa")
class CrossAttentionBlock(keras.layers.Layer):
    """``q = q + xattn(q, norm1(x))`` then ``q = q + mlp(norm2(q))`` (official order:
    ``norm1`` is applied to the tokens ``x``, not to the query).

    Args:
        num_heads, qkv_bias, init_std, flash_attention: see :class:`CrossAttention`.
        mlp_ratio: MLP hidden width over the model width.
        layer_norm_epsilon: 1e-5, PyTorch's ``nn.LayerNorm`` default used by the probes.
        fc2_init_std: init std of ``mlp.fc2`` (the official depth rescaling).

    Example:

    >>> import numpy as np
    >>> block = CrossAttentionBlock(num_heads=2)
    >>> tuple(block(np.zeros((3, 1, 8), "float32"), np.zeros((3, 5, 8), "float32")).shape)
    (3, 1, 8)
    """

    def __init__(self, num_heads, mlp_ratio=4.0, qkv_bias=True, layer_norm_epsilon=1e-5,
                 init_std=0.02, fc2_init_std=None, flash_attention=None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.mlp_ratio = float(mlp_ratio)
        self.qkv_bias = bool(qkv_bias)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.init_std = float(init_std)
        self.fc2_init_std = None if fc2_init_std is None else float(fc2_init_std)
        self.flash_attention = flash_attention

    def build(self, q_shape, x_shape=None):
        x_shape = q_shape if x_shape is None else x_shape
        dim = int(q_shape[-1])
        common = dict(dtype=self.dtype_policy)
        self.norm1 = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="norm1", **common)
        self.norm1.build(x_shape)
        self.xattn = CrossAttention(self.num_heads, qkv_bias=self.qkv_bias,
                                    init_std=self.init_std,
                                    flash_attention=self.flash_attention, name="xattn",
                                    **common)
        self.xattn.build(q_shape, x_shape)
        self.norm2 = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="norm2", **common)
        self.norm2.build(q_shape)
        self.mlp = MLP(hidden_dim=int(dim * self.mlp_ratio), init_std=self.init_std,
                       fc2_init_std=self.fc2_init_std, name="mlp", **common)
        self.mlp.build(q_shape)
        self.built = True

    def call(self, q, x):
        q = q + self.xattn(q, self.norm1(x))
        return q + self.mlp(self.norm2(q))

    def compute_output_shape(self, q_shape, x_shape=None):
        return tuple(q_shape)

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_heads": self.num_heads, "mlp_ratio": self.mlp_ratio,
            "qkv_bias": self.qkv_bias, "layer_norm_epsilon": self.layer_norm_epsilon,
            "init_std": self.init_std, "fc2_init_std": self.fc2_init_std,
            "flash_attention": self.flash_attention,
        })
        return config


@keras.saving.register_keras_serializable(package="keras_jepa")
class AttentiveClassifier(keras.Model):
    """The V-JEPA / V-JEPA 2 attentive probe: learned query, cross-attention pooling over
    frozen tokens, linear classifier (see the module docstring for the two forms).

    Input: tokens ``(B, N, D)`` (for multi-segment video, the tokens of all segments
    concatenated along ``N``; see ``keras_jepa.evaluation.segment_tokens``). Output: logits
    ``(B, num_classes)``.

    Args:
        num_classes: classes of the linear layer.
        embed_dim: token width ``D`` (the encoder's ``output_width``).
        num_heads: attention heads (V-JEPA 1: the encoder's; V-JEPA 2: 16).
        variant: ``"vjepa"`` (extra blocks after the cross-attention, on the query) or
            ``"vjepa2"`` (extra blocks before it, on the tokens).
        depth: probe blocks in all, the cross-attention block included (official
            ``depth`` / ``num_probe_blocks``); ``None``: 1 for ``"vjepa"``, 4 for
            ``"vjepa2"``.
        mlp_ratio, qkv_bias: as in the encoder blocks (4, True).
        layer_norm_epsilon: 1e-5 (``nn.LayerNorm``'s default, what the probes use).
        init_std: 0.02; ``fc2`` / ``attn.proj`` kernels get the official
            ``1/sqrt(2 * layer_id)`` rescaling.
        linear_init: init of the classifier ``linear``: ``"pytorch"`` (official: kernel and
            bias uniform in ``[-1/sqrt(embed_dim), 1/sqrt(embed_dim)]``, as ``nn.Linear``
            leaves them) or ``"normal"`` (normal of std ``init_std``, zero bias).
        flash_attention: passed to ``keras.ops.dot_product_attention``.

    Example:

    >>> import numpy as np
    >>> probe = AttentiveClassifier(num_classes=5, embed_dim=16, num_heads=2)
    >>> tuple(probe(np.zeros((3, 7, 16), "float32")).shape)
    (3, 5)
    """

    def __init__(self, num_classes, embed_dim, num_heads=16, variant="vjepa", depth=None,
                 mlp_ratio=4.0, qkv_bias=True, layer_norm_epsilon=1e-5, init_std=0.02,
                 linear_init="pytorch", flash_attention=None, **kwargs):
        super().__init__(**kwargs)
        if variant not in PROBE_VARIANTS:
            raise ValueError(f"variant must be one of {PROBE_VARIANTS}; got {variant!r}.")
        if linear_init not in LINEAR_INITS:
            raise ValueError(
                f"linear_init must be one of {LINEAR_INITS}; got {linear_init!r}.")
        depth = DEFAULT_DEPTH[variant] if depth is None else depth
        if not isinstance(depth, (int, np.integer)) or depth < 1:
            raise ValueError(f"depth must be an int >= 1; got {depth!r}.")
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int; got {num_classes!r}.")
        if int(embed_dim) % int(num_heads):
            raise ValueError(
                f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}.")
        self.num_classes = int(num_classes)
        self.embed_dim = int(embed_dim)
        self.num_heads = int(num_heads)
        self.variant = variant
        self.depth = int(depth)
        self.mlp_ratio = float(mlp_ratio)
        self.qkv_bias = bool(qkv_bias)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.init_std = float(init_std)
        self.linear_init = linear_init
        self.flash_attention = flash_attention

        common = dict(dtype=self.dtype_policy)
        num_blocks = self.depth - 1
        # Official depth rescaling (``_rescale_blocks``): block i (0-based) divides its
        # attn.proj and mlp.fc2 by sqrt(2 * (i + 1)) in V-JEPA 2 and sqrt(2 * (i + 2)) in
        # V-JEPA 1 (whose cross block counts as layer 1); the cross block's fc2 is layer 1
        # in V-JEPA 1 and layer max(num_blocks, 1) in V-JEPA 2.
        first = 1 if variant == "vjepa2" else 2
        cross_layer = 1 if variant == "vjepa" else max(num_blocks, 1)
        self.cross_attention_block = CrossAttentionBlock(
            self.num_heads, mlp_ratio=self.mlp_ratio, qkv_bias=self.qkv_bias,
            layer_norm_epsilon=self.layer_norm_epsilon, init_std=self.init_std,
            fc2_init_std=self.init_std / math.sqrt(2.0 * cross_layer),
            flash_attention=self.flash_attention, name="cross_attention_block", **common)
        self.blocks = [
            TransformerBlock(
                num_heads=self.num_heads, mlp_ratio=self.mlp_ratio, qkv_bias=self.qkv_bias,
                layer_norm_epsilon=self.layer_norm_epsilon, init_std=self.init_std,
                residual_init_scale=1.0 / math.sqrt(2.0 * (i + first)),
                flash_attention=self.flash_attention, name=f"blocks_{i}", **common)
            for i in range(num_blocks)
        ]
        if linear_init == "pytorch":
            bound = 1.0 / math.sqrt(self.embed_dim)  # kaiming_uniform(a=sqrt(5)): 1/sqrt(fan_in)
            kernel_init = keras.initializers.RandomUniform(-bound, bound)
            bias_init = keras.initializers.RandomUniform(-bound, bound)
        else:
            kernel_init, bias_init = normal_init(self.init_std), "zeros"
        self.linear = keras.layers.Dense(
            self.num_classes, kernel_initializer=kernel_init, bias_initializer=bias_init,
            name="linear", **common)
        self.build((None, None, self.embed_dim))

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if input_shape[-1] is not None and int(input_shape[-1]) != self.embed_dim:
            raise ValueError(
                f"AttentiveClassifier(embed_dim={self.embed_dim}) got tokens of width "
                f"{input_shape[-1]} (input shape {input_shape}).")
        q_shape = (None, 1, self.embed_dim)
        token_shape = (None, None, self.embed_dim)
        self.query_tokens = self.add_weight(
            shape=(1, 1, self.embed_dim), initializer=normal_init(self.init_std),
            name="query_tokens")
        for block in self.blocks:
            block.build(q_shape if self.variant == "vjepa" else token_shape)
        self.cross_attention_block.build(q_shape, token_shape)
        self.linear.build((None, self.embed_dim))
        self.built = True

    def pool(self, tokens, training=False):
        """The pooled query ``(B, D)`` for ``tokens (B, N, D)`` (before ``linear``)."""
        x = tokens
        if len(x.shape) != 3:
            raise ValueError(
                f"AttentiveClassifier expects tokens (B, N, D); got shape {tuple(x.shape)}. "
                "Concatenate segments along N and put views in the batch first.")
        if self.variant == "vjepa2":
            for block in self.blocks:
                x = block(x, training=training)
        q = ops.cast(self.query_tokens, x.dtype)
        q = ops.broadcast_to(q, (ops.shape(x)[0], 1, self.embed_dim))
        q = self.cross_attention_block(q, x)
        if self.variant == "vjepa":
            for block in self.blocks:
                q = block(q, training=training)
        return q[:, 0]

    def call(self, tokens, training=False):
        return self.linear(self.pool(tokens, training=training))

    def compute_output_shape(self, tokens_shape):
        return (tokens_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_classes": self.num_classes, "embed_dim": self.embed_dim,
            "num_heads": self.num_heads, "variant": self.variant, "depth": self.depth,
            "mlp_ratio": self.mlp_ratio, "qkv_bias": self.qkv_bias,
            "layer_norm_epsilon": self.layer_norm_epsilon, "init_std": self.init_std,
            "linear_init": self.linear_init, "flash_attention": self.flash_attention,
        })
        return config
