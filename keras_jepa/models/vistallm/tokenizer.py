"""VistaLLM's instruction-guided image tokenizer as a Keras layer (``keras.ops`` only)."""

import keras
from keras import ops

from keras_jepa.layers.attention import MultiHeadSelfAttention
from keras_jepa.layers.cross_attention import CrossAttention
from keras_jepa.layers.initializers import normal_init
from keras_jepa.layers.mlp import MLP


@keras.saving.register_keras_serializable(package="keras_jepa")
class InstructionGuidedTokenizer(keras.layers.Layer):
    """Filters image tokens with the task instruction into ``num_queries`` tokens per image.

    VistaLLM's tokenizer (Q-Former/InstructBLIP-like): ``num_queries`` learned queries and
    the instruction tokens share a self-attention, so the queries read the instruction;
    then the queries cross-attend to the image tokens; then an MLP. Each of ``depth``
    blocks is pre-norm with residuals (LayerNorm eps 1e-6)::

        [q; t] += SelfAttn(LN([q; t]))        # t: instruction tokens (padding masked)
        q += CrossAttn(LN(q), LN_img(image))
        q += MLP(LN(q))

    The result goes through a final LayerNorm and an ``output`` Dense to ``output_dim``
    (the language model's width).

    Call: ``layer(image_tokens, instruction, instruction_mask=None)``.

    - ``image_tokens``: ``(B, N, D)`` for one image per example, or ``(B, I, N, D)`` for
      ``I`` images per example; each image is tokenised on its own (the images are folded
      into the batch, the instruction repeated, no Python loop).
    - ``instruction``: ``(B, L, Dt)`` instruction embeddings (projected to ``D`` by
      ``instruction_proj``).
    - ``instruction_mask``: optional ``(B, L)`` bool, True for real tokens.

    Returns ``(B, num_queries, output_dim)`` or ``(B, I, num_queries, output_dim)``.

    Args:
        num_queries: tokens per image (``M``).
        num_heads: attention heads (the image-token width must be divisible by it).
        depth: number of blocks.
        mlp_ratio: MLP hidden width over the image-token width.
        output_dim: output width; ``None`` keeps the image-token width.
        init_std: std of the normal init of kernels and queries.
        layer_norm_epsilon: LayerNorm epsilon.

    Example:

    >>> import numpy as np
    >>> layer = InstructionGuidedTokenizer(num_queries=4, num_heads=2, output_dim=12)
    >>> images, text = np.zeros((2, 9, 8), "float32"), np.ones((2, 3, 6), "float32")
    >>> tuple(layer(images, text).shape)
    (2, 4, 12)
    >>> tuple(layer(np.zeros((2, 3, 9, 8), "float32"), text).shape)
    (2, 3, 4, 12)
    """

    def __init__(
        self,
        num_queries=8,
        num_heads=4,
        depth=1,
        mlp_ratio=4.0,
        output_dim=None,
        init_std=0.02,
        layer_norm_epsilon=1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(num_queries) < 1 or int(depth) < 1:
            raise ValueError(
                f"num_queries and depth must be >= 1; got {num_queries} and {depth}."
            )
        self.num_queries = int(num_queries)
        self.num_heads = int(num_heads)
        self.depth = int(depth)
        self.mlp_ratio = float(mlp_ratio)
        self.output_dim = None if output_dim is None else int(output_dim)
        self.init_std = float(init_std)
        self.layer_norm_epsilon = float(layer_norm_epsilon)

    def _norm(self, name, shape):
        norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name
        )
        norm.build(shape)
        return norm

    def build(self, image_tokens_shape, instruction_shape, instruction_mask_shape=None):
        if len(image_tokens_shape) not in (3, 4):
            raise ValueError(
                "image_tokens must be (B, N, D) or (B, images, N, D); got shape "
                f"{tuple(image_tokens_shape)}."
            )
        if len(instruction_shape) != 3:
            raise ValueError(
                f"instruction must be (B, L, D) embeddings; got shape {tuple(instruction_shape)}."
            )
        dim = int(image_tokens_shape[-1])
        if dim % self.num_heads:
            raise ValueError(f"Width {dim} is not divisible by num_heads={self.num_heads}.")
        token_shape = (None, None, dim)
        common = dict(dtype=self.dtype_policy)
        self.queries = self.add_weight(
            shape=(1, self.num_queries, dim), initializer=normal_init(self.init_std),
            name="queries",
        )
        self.instruction_proj = keras.layers.Dense(
            dim, kernel_initializer=normal_init(self.init_std), name="instruction_proj",
            **common,
        )
        self.instruction_proj.build(instruction_shape)
        self.blocks = []
        for i in range(self.depth):
            block = dict(
                norm1=self._norm(f"blocks_{i}_norm1", token_shape),
                attn=MultiHeadSelfAttention(
                    self.num_heads, init_std=self.init_std, name=f"blocks_{i}_attn", **common
                ),
                norm_cross=self._norm(f"blocks_{i}_norm_cross", token_shape),
                norm_context=self._norm(f"blocks_{i}_norm_context", token_shape),
                cross=CrossAttention(
                    self.num_heads, init_std=self.init_std, output_projection=True,
                    name=f"blocks_{i}_cross", **common
                ),
                norm2=self._norm(f"blocks_{i}_norm2", token_shape),
                mlp=MLP(int(dim * self.mlp_ratio), init_std=self.init_std,
                        name=f"blocks_{i}_mlp", **common),
            )
            block["attn"].build(token_shape)
            block["cross"].build(token_shape, token_shape)
            block["mlp"].build(token_shape)
            self.blocks.append(block)
        self.norm = self._norm("norm", token_shape)
        self.output_proj = keras.layers.Dense(
            self.output_dim or dim, kernel_initializer=normal_init(self.init_std),
            name="output", **common,
        )
        self.output_proj.build(token_shape)
        self.built = True

    def call(self, image_tokens, instruction, instruction_mask=None):
        multi = len(image_tokens.shape) == 4
        dim = image_tokens.shape[-1]
        num_images = image_tokens.shape[1] if multi else 1
        if multi:
            image_tokens = ops.reshape(image_tokens, (-1, image_tokens.shape[2], dim))
        text = self.instruction_proj(instruction)
        length = text.shape[1]
        if instruction_mask is None:
            instruction_mask = ops.ones(ops.shape(text)[:2], "bool")
        instruction_mask = ops.cast(instruction_mask, "bool")
        if num_images > 1:
            text = ops.repeat(text, num_images, axis=0)
            instruction_mask = ops.repeat(instruction_mask, num_images, axis=0)
        m = self.num_queries
        q = ops.broadcast_to(ops.cast(self.queries, text.dtype), (ops.shape(text)[0], m, dim))
        # Queries always attend; instruction padding is masked as a key.
        key_mask = ops.concatenate(
            [ops.ones((ops.shape(text)[0], m), "bool"), instruction_mask], axis=1
        )
        attention_mask = key_mask[:, None, None, :]
        for block in self.blocks:
            h = ops.concatenate([q, text], axis=1)
            h = h + block["attn"](block["norm1"](h), attention_mask=attention_mask)
            q, text = h[:, :m], h[:, m : m + length]
            context = block["norm_context"](image_tokens)
            q = q + block["cross"](block["norm_cross"](q), context)
            q = q + block["mlp"](block["norm2"](q))
        out = self.output_proj(self.norm(q))
        if multi:
            out = ops.reshape(out, (-1, num_images, m, out.shape[-1]))
        return out

    def compute_output_shape(self, image_tokens_shape, instruction_shape,
                             instruction_mask_shape=None):
        width = self.output_dim or image_tokens_shape[-1]
        if len(image_tokens_shape) == 4:
            return (image_tokens_shape[0], image_tokens_shape[1], self.num_queries, width)
        return (image_tokens_shape[0], self.num_queries, width)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_queries": self.num_queries,
                "num_heads": self.num_heads,
                "depth": self.depth,
                "mlp_ratio": self.mlp_ratio,
                "output_dim": self.output_dim,
                "init_std": self.init_std,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
