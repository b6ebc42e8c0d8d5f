"""One Vision Transformer for images and video: the I-JEPA, V-JEPA and V-JEPA 2 encoder."""

import math

import keras
import numpy as np
from keras import ops

from keras_jepa.layers.patch_embedding import PatchEmbedding
from keras_jepa.layers.position_embedding import SinCosPositionEmbedding
from keras_jepa.layers.rotary_embedding import rope_tables
from keras_jepa.layers.token_ops import apply_masks, check_indices, gather_tokens
from keras_jepa.layers.transformer_block import TransformerBlock
from keras_jepa.presets.mixin import Backbone

# Width, depth, heads and MLP ratio of the official factories (``vit_<size>``).
VIT_SIZES = {
    "tiny": dict(hidden_dim=192, depth=12, num_heads=3, mlp_ratio=4.0),
    "small": dict(hidden_dim=384, depth=12, num_heads=6, mlp_ratio=4.0),
    "base": dict(hidden_dim=768, depth=12, num_heads=12, mlp_ratio=4.0),
    "large": dict(hidden_dim=1024, depth=24, num_heads=16, mlp_ratio=4.0),
    "huge": dict(hidden_dim=1280, depth=32, num_heads=16, mlp_ratio=4.0),
    # I-JEPA ViT-g (and V-JEPA 2's plain ``vit_giant``): 16 heads of 88 channels.
    "giant": dict(hidden_dim=1408, depth=40, num_heads=16, mlp_ratio=48 / 11),
    # V-JEPA 2's released "ViT-g" (``vit_giant_xformers``): 22 heads of 64 channels.
    "giant_xformers": dict(hidden_dim=1408, depth=40, num_heads=22, mlp_ratio=48 / 11),
    # The official ``vit_gigantic*`` factories misspell ``mlp_ratio`` (``mpl_ratio``), so
    # the intended 64/13 never reaches the model and the MLP ratio stays 4.
    "gigantic": dict(hidden_dim=1664, depth=48, num_heads=16, mlp_ratio=4.0),
    "gigantic_xformers": dict(hidden_dim=1664, depth=48, num_heads=26, mlp_ratio=4.0),
}


@keras.saving.register_keras_serializable(package="keras_jepa")
class VisionTransformer(Backbone):
    """The JEPA Vision Transformer for images (``num_frames=None``) and video.

    Pre-norm blocks (LayerNorm eps 1e-6, fused qkv with bias, exact GELU), no class token,
    a final LayerNorm. Inputs are channels-last: images ``(B, H, W, C)``, videos
    ``(B, T, H, W, C)``. The output is one token per patch (or tubelet), in row-major
    ``(t, h, w)`` order: ``(B, N, D)``.

    ``model(inputs, token_indices=idx)`` embeds all patches, adds positions, then keeps
    only the tokens at ``idx`` (``(B, K)`` or ``(K,)`` int) before the blocks, as the
    official encoders do with their context masks. With RoPE the kept tokens keep their
    original positions. A list of index tensors (same K) gathers each and stacks the
    results along the batch axis (the official ``apply_masks``): ``(len(list) * B, K, D)``.
    Indices must lie in ``[0, N)``: when their value is known (numpy, lists, eager
    tensors) any other index raises ``ValueError``; inside a compiled step (``fit`` on JAX
    and TensorFlow) it cannot be checked and the backends disagree (JAX gives NaN, torch
    and TensorFlow wrap), so producers must stay in range, as ``keras_jepa.masks`` does.

    Args:
        image_size: training resolution, int or ``(H, W)``; sets the stored sin-cos table
            (other resolutions are interpolated at call time).
        patch_size: spatial patch size (14 or 16 in the releases).
        num_frames: frames per clip for video; ``None`` for an image model.
        tubelet_size: frames per tubelet (2 in V-JEPA).
        num_channels: input channels.
        hidden_dim, depth, num_heads, mlp_ratio: the transformer size (see ``VIT_SIZES``
            and ``from_size``).
        qkv_bias: bias on qkv (True in every release).
        position_embedding: ``"sincos"`` (I-JEPA, V-JEPA) or ``"rope"`` (V-JEPA 2).
        sincos_order: 2-D channel order, ``"wh"`` (I-JEPA: column first) or ``"hw"``
            (V-JEPA).
        uniform_power: V-JEPA's equal 3-D channel split (True in its configs).
        rope_tiled: keep V-JEPA 2's tiled-frequency RoPE layout (needed by its released
            weights); ``False`` uses the textbook interleaved layout.
        mlp_type: ``"gelu"`` or ``"swiglu"``; ``wide_swiglu`` as in V-JEPA 2.
        drop_path_rate: stochastic depth, increasing linearly from 0 over the blocks.
        layer_norm_epsilon: 1e-6 as official.
        output_dim: width of the last block's output ("expand or narrow your
            representation", Bordes et al.): the last block's MLP writes ``output_dim``
            channels, its residual stream goes through a linear ``shortcut``, and the final
            norm has that width. ``None`` keeps ``hidden_dim``.
        depth_scaled_init: divide the init std of block i's ``attn.proj`` and ``mlp.fc2``
            by ``sqrt(2 i)`` (i from 1). The official code applies this at construction,
            but I-JEPA's and V-JEPA's training scripts re-initialise every Linear layer
            afterwards, which undoes it; V-JEPA 2 keeps it. Default False (I-JEPA/V-JEPA).
        init_std: std of the normal init of every kernel (0.02).
        final_norm: apply the final LayerNorm.
        flash_attention: passed to ``keras.ops.dot_product_attention`` (None = auto).

    Example:

    >>> import numpy as np
    >>> model = VisionTransformer.from_size("tiny", image_size=32, patch_size=16, depth=2)
    >>> tuple(model(np.zeros((2, 32, 32, 3), "float32")).shape)
    (2, 4, 192)
    >>> tuple(model(np.zeros((2, 32, 32, 3), "float32"), token_indices=np.array([[0, 3]] * 2)).shape)
    (2, 2, 192)
    """

    def __init__(
        self,
        image_size=224,
        patch_size=16,
        num_frames=None,
        tubelet_size=2,
        num_channels=3,
        hidden_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        qkv_bias=True,
        position_embedding="sincos",
        sincos_order="hw",
        uniform_power=False,
        rope_tiled=True,
        mlp_type="gelu",
        wide_swiglu=True,
        drop_path_rate=0.0,
        layer_norm_epsilon=1e-6,
        output_dim=None,
        depth_scaled_init=False,
        init_std=0.02,
        final_norm=True,
        flash_attention=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.image_size = _pair(image_size)
        self.patch_size = int(patch_size)
        self.num_frames = None if num_frames is None else int(num_frames)
        self.tubelet_size = int(tubelet_size)
        self.num_channels = int(num_channels)
        self.hidden_dim = int(hidden_dim)
        self.depth = int(depth)
        self.num_heads = int(num_heads)
        self.mlp_ratio = float(mlp_ratio)
        self.qkv_bias = bool(qkv_bias)
        self.position_embedding = position_embedding
        self.sincos_order = sincos_order
        self.uniform_power = bool(uniform_power)
        self.rope_tiled = bool(rope_tiled)
        self.mlp_type = mlp_type
        self.wide_swiglu = bool(wide_swiglu)
        self.drop_path_rate = float(drop_path_rate)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.output_dim = None if output_dim is None else int(output_dim)
        self.depth_scaled_init = bool(depth_scaled_init)
        self.init_std = float(init_std)
        self.final_norm = bool(final_norm)
        self.flash_attention = flash_attention
        self._validate_config()

        common = dict(dtype=self.dtype_policy)
        self.patch_embed = PatchEmbedding(
            self.hidden_dim,
            patch_size=self.patch_size,
            tubelet_size=self.tubelet_size if self.is_video else None,
            init_std=self.init_std,
            name="patch_embed",
            **common,
        )
        self.pos_embed = None
        if self.position_embedding == "sincos":
            self.pos_embed = SinCosPositionEmbedding(
                grid_size=self.grid_size(),
                order=self.sincos_order,
                uniform_power=self.uniform_power,
                name="pos_embed",
                **common,
            )
        rates = np.linspace(0.0, self.drop_path_rate, self.depth) if self.depth else []
        self.blocks = [
            TransformerBlock(
                num_heads=self.num_heads,
                mlp_ratio=self.mlp_ratio,
                qkv_bias=self.qkv_bias,
                layer_norm_epsilon=self.layer_norm_epsilon,
                mlp_type=self.mlp_type,
                wide_swiglu=self.wide_swiglu,
                drop_path_rate=float(rates[i]),
                init_std=self.init_std,
                residual_init_scale=(
                    1.0 / math.sqrt(2.0 * (i + 1)) if self.depth_scaled_init else 1.0
                ),
                output_dim=self.output_dim if i == self.depth - 1 else None,
                flash_attention=self.flash_attention,
                name=f"blocks_{i}",
                **common,
            )
            for i in range(self.depth)
        ]
        self.norm = None
        if self.final_norm:
            self.norm = keras.layers.LayerNormalization(
                epsilon=self.layer_norm_epsilon, name="norm", **common
            )
        self.build(self.default_input_shape)

    # ----------------------------------------------------------------------------- sizes

    @classmethod
    def from_size(cls, size, **kwargs):
        """Builds the official ``vit_<size>`` architecture; ``kwargs`` override any field.

        Sizes: tiny, small, base, large, huge, giant (16 heads, I-JEPA), giant_xformers
        (22 heads, V-JEPA 2), gigantic, gigantic_xformers.
        """
        if size not in VIT_SIZES:
            raise ValueError(f"Unknown size {size!r}; choose from {sorted(VIT_SIZES)}.")
        return cls(**{**VIT_SIZES[size], **kwargs})

    @property
    def is_video(self):
        return self.num_frames is not None

    @property
    def output_width(self):
        """Channels of the output tokens."""
        return self.output_dim or self.hidden_dim

    @property
    def default_input_shape(self):
        spatial = self.image_size + (self.num_channels,)
        return (None, self.num_frames) + spatial if self.is_video else (None,) + spatial

    def grid_size(self, input_shape=None):
        """Token grid ``(H', W')`` or ``(T', H', W')`` for an input shape (default: the
        configured one)."""
        shape = self.default_input_shape if input_shape is None else tuple(input_shape)
        h, w = shape[-3] // self.patch_size, shape[-2] // self.patch_size
        if self.is_video:
            return (shape[1] // self.tubelet_size, h, w)
        return (h, w)

    def num_tokens(self, input_shape=None):
        return int(np.prod(self.grid_size(input_shape)))

    def _validate_config(self):
        if self.position_embedding not in ("sincos", "rope"):
            raise ValueError(
                "position_embedding must be 'sincos' or 'rope'; got "
                f"{self.position_embedding!r}."
            )
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                f"hidden_dim={self.hidden_dim} is not divisible by "
                f"num_heads={self.num_heads}."
            )
        for size in self.image_size:
            if size % self.patch_size:
                raise ValueError(
                    f"image_size {self.image_size} is not divisible by "
                    f"patch_size={self.patch_size}."
                )
        if self.is_video and self.num_frames % self.tubelet_size:
            raise ValueError(
                f"num_frames={self.num_frames} is not divisible by "
                f"tubelet_size={self.tubelet_size}."
            )

    def _check_input_shape(self, shape):
        rank = 5 if self.is_video else 4
        kind = "videos (B, T, H, W, C)" if self.is_video else "images (B, H, W, C)"
        if len(shape) != rank:
            hint = (
                " To feed images to a video model, repeat them along a time axis "
                "(the official protocol uses 16 frames)."
                if self.is_video
                else ""
            )
            raise ValueError(
                f"This VisionTransformer expects {kind} of rank {rank}; got an input of "
                f"shape {tuple(shape)}.{hint}"
            )
        if shape[-1] is not None and shape[-1] != self.num_channels:
            raise ValueError(
                f"Expected {self.num_channels} channels (channels last); got shape "
                f"{tuple(shape)}."
            )
        for axis, name in ((-3, "height"), (-2, "width")):
            if shape[axis] is not None and shape[axis] % self.patch_size:
                raise ValueError(
                    f"Input {name} {shape[axis]} is not divisible by patch_size="
                    f"{self.patch_size} (input shape {tuple(shape)})."
                )
        if self.is_video and shape[1] is not None and shape[1] % self.tubelet_size:
            raise ValueError(
                f"Input frame count {shape[1]} is not divisible by tubelet_size="
                f"{self.tubelet_size} (input shape {tuple(shape)})."
            )

    # ----------------------------------------------------------------------------- graph

    def build(self, input_shape):
        self._check_input_shape(input_shape)
        self.patch_embed.build(input_shape)
        token_shape = (None, self.num_tokens(input_shape), self.hidden_dim)
        if self.pos_embed is not None:
            self.pos_embed.build(token_shape)
        for block in self.blocks:
            block.build(token_shape)
            token_shape = block.compute_output_shape(token_shape)
        if self.norm is not None:
            self.norm.build(token_shape)
        self.built = True

    def __call__(self, inputs, *args, **kwargs):
        # Indices whose value is known (numpy, lists, eager tensors) are checked here;
        # inside a compiled step they are symbolic and pass (see ``check_indices``).
        token_indices = kwargs.get("token_indices", args[0] if args else None)
        if token_indices is not None and hasattr(inputs, "shape"):
            masks = token_indices if isinstance(token_indices, (list, tuple)) else [token_indices]
            shape = tuple(inputs.shape)
            for mask in masks:
                check_indices(mask, self.num_tokens(shape), batch_size=shape[0])
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, token_indices=None, training=False):
        shape = tuple(inputs.shape)
        self._check_input_shape(shape)
        grid = self.grid_size(shape)
        num_tokens = int(np.prod(grid))
        x = self.patch_embed(inputs)
        if self.pos_embed is not None:
            x = self.pos_embed(x, grid_size=grid)
        if isinstance(token_indices, (list, tuple)):
            # Several masks: the official ``apply_masks`` stacks them along the batch.
            token_indices = [ops.convert_to_tensor(i, "int32") for i in token_indices]
            x = apply_masks(x, token_indices)
            ids = ops.concatenate(
                [_batched(i, ops.shape(inputs)[0]) for i in token_indices], axis=0
            )
        elif token_indices is not None:
            token_indices = ops.convert_to_tensor(token_indices, "int32")
            x = gather_tokens(x, token_indices)
            ids = token_indices
        else:
            ids = ops.arange(num_tokens, dtype="int32")[None]
        rope = None
        if self.position_embedding == "rope":
            grid3 = grid if self.is_video else (1,) + grid
            rope = rope_tables(
                ids, grid3, self.hidden_dim // self.num_heads, tiled=self.rope_tiled
            )
        for block in self.blocks:
            x = block(x, rope=rope, training=training)
        if self.norm is not None:
            x = self.norm(x)
        return x

    def compute_output_shape(self, inputs_shape, token_indices_shape=None):
        n, batch = self.num_tokens(inputs_shape), inputs_shape[0]
        if isinstance(token_indices_shape, (list, tuple)) and token_indices_shape and (
            isinstance(token_indices_shape[0], (list, tuple))
        ):
            n = token_indices_shape[0][-1]
            batch = None if batch is None else batch * len(token_indices_shape)
        elif token_indices_shape is not None:
            n = token_indices_shape[-1]
        return (batch, n, self.output_width)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": list(self.image_size),
                "patch_size": self.patch_size,
                "num_frames": self.num_frames,
                "tubelet_size": self.tubelet_size,
                "num_channels": self.num_channels,
                "hidden_dim": self.hidden_dim,
                "depth": self.depth,
                "num_heads": self.num_heads,
                "mlp_ratio": self.mlp_ratio,
                "qkv_bias": self.qkv_bias,
                "position_embedding": self.position_embedding,
                "sincos_order": self.sincos_order,
                "uniform_power": self.uniform_power,
                "rope_tiled": self.rope_tiled,
                "mlp_type": self.mlp_type,
                "wide_swiglu": self.wide_swiglu,
                "drop_path_rate": self.drop_path_rate,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "output_dim": self.output_dim,
                "depth_scaled_init": self.depth_scaled_init,
                "init_std": self.init_std,
                "final_norm": self.final_norm,
                "flash_attention": self.flash_attention,
            }
        )
        return config


def _batched(indices, batch_size):
    if len(indices.shape) == 1:
        return ops.broadcast_to(indices[None], (batch_size, indices.shape[0]))
    return indices


def _pair(value):
    if isinstance(value, int):
        return (value, value)
    return tuple(int(v) for v in value)
