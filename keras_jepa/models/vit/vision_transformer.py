"""One Vision Transformer for images and video: the I-JEPA, V-JEPA, V-JEPA 2 and V-JEPA 2.1
encoder."""

import math

import keras
import numpy as np
from keras import ops

from keras_jepa.layers.patch_embedding import PatchEmbedding
from keras_jepa.layers.position_embedding import SinCosPositionEmbedding
from keras_jepa.layers.rotary_embedding import interpolated_position_scale, rope_tables
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
    # V-JEPA 2.1's ViT-G spells ``mlp_ratio`` right: 64/13, an MLP of 8192 channels.
    "gigantic_xformers_2_1": dict(hidden_dim=1664, depth=48, num_heads=26, mlp_ratio=64 / 13),
}

# V-JEPA 2.1's deep-supervision layers (``hierarchical_layers``) by encoder depth: each has
# its own output norm (``norms_block.{k}``), the last one is the model's output norm.
VJEPA2_1_HIERARCHICAL_LAYERS = {
    12: (2, 5, 8, 11),
    24: (5, 11, 17, 23),
    40: (9, 19, 29, 39),
    48: (11, 23, 37, 47),
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
        img_temporal_dim_size: V-JEPA 2.1's second tokenizer (video models only). When
            set, the model also holds ``patch_embed_img``, a tubelet-1 projection, and an
            input with exactly this many frames is tokenised by it (one token per frame
            and patch) instead of by the tubelet ``patch_embed``. V-JEPA 2.1 uses 1: an
            image is a one-frame clip ``(B, 1, H, W, C)``; a rank-4 image ``(B, H, W, C)``
            is accepted too and treated the same way.
        modality_embedding: V-JEPA 2.1's learned ``img_mod_embed`` / ``video_mod_embed``
            (``(1, 1, D)`` each), added to every token after the tokenizer, the image one
            when ``patch_embed_img`` was used.
        interpolate_rope: V-JEPA 2.1's RoPE interpolation: row and column positions are
            scaled by ``(G - 1) / (H' - 1)`` and ``(G - 1) / (W' - 1)`` for an
            ``H' x W'`` token grid, with ``G = 256 // 16`` (``252 // 14`` at patch 14), so
            every resolution spans the positions of the 256 px training grid. Frames are
            not scaled.
        hierarchical_layers: V-JEPA 2.1's output norms: block indices (ascending, the last
            one ``depth - 1``) whose outputs each get their own LayerNorm
            (``norms_block_{k}``), replacing the single final norm. The plain output is
            ``norms_block[-1]`` of the last block; ``return_hierarchical=True`` and
            ``output_layers`` give the others. The official choice for a depth is
            ``VJEPA2_1_HIERARCHICAL_LAYERS[depth]``.
        n_output_distillation: how many of the last ``hierarchical_layers`` make up the
            hierarchical output (V-JEPA 2.1's training targets; 4 in every release).
            Default: all of them.

    Call arguments (besides ``inputs`` and ``token_indices``):
        return_hierarchical: return the last ``n_output_distillation`` hierarchical
            layers, each through its own norm, concatenated on channels:
            ``(B, N, n_output_distillation * D)`` (the official ``training=True`` output).
        output_layers: a list of block indices; returns a list of their outputs, each
            normalised (by its ``norms_block`` norm, which requires the index to be one of
            ``hierarchical_layers``; by the final norm for a model without them).

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
        img_temporal_dim_size=None,
        modality_embedding=False,
        interpolate_rope=False,
        hierarchical_layers=None,
        n_output_distillation=None,
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
        self.img_temporal_dim_size = (
            None if img_temporal_dim_size is None else int(img_temporal_dim_size)
        )
        self.modality_embedding = bool(modality_embedding)
        self.interpolate_rope = bool(interpolate_rope)
        self.hierarchical_layers = (
            None if hierarchical_layers is None else tuple(int(i) for i in hierarchical_layers)
        )
        if n_output_distillation is None and self.hierarchical_layers is not None:
            n_output_distillation = len(self.hierarchical_layers)
        self.n_output_distillation = (
            None if n_output_distillation is None else int(n_output_distillation)
        )
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
        self.patch_embed_img = None
        if self.img_temporal_dim_size is not None:
            self.patch_embed_img = PatchEmbedding(
                self.hidden_dim,
                patch_size=self.patch_size,
                tubelet_size=1,
                init_std=self.init_std,
                name="patch_embed_img",
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
        self.norms_block = []
        if self.hierarchical_layers is not None:
            self.norms_block = [
                keras.layers.LayerNormalization(
                    epsilon=self.layer_norm_epsilon, name=f"norms_block_{k}", **common
                )
                for k in range(len(self.hierarchical_layers))
            ]
        elif self.final_norm:
            self.norm = keras.layers.LayerNormalization(
                epsilon=self.layer_norm_epsilon, name="norm", **common
            )
        self.img_mod_embed = self.video_mod_embed = None
        if self.modality_embedding:
            self.img_mod_embed = self.add_weight(
                name="img_mod_embed", shape=(1, 1, self.hidden_dim),
                initializer=keras.initializers.RandomNormal(stddev=1e-6),
            )
            self.video_mod_embed = self.add_weight(
                name="video_mod_embed", shape=(1, 1, self.hidden_dim),
                initializer=keras.initializers.RandomNormal(stddev=1e-6),
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

    def uses_image_tokenizer(self, input_shape):
        """Whether an input of this shape goes through ``patch_embed_img`` (V-JEPA 2.1)."""
        if self.patch_embed_img is None:
            return False
        return len(input_shape) == 4 or input_shape[1] == self.img_temporal_dim_size

    @property
    def output_layer_norms(self):
        """``{block index: its output norm}`` (the hierarchical norms, or the final norm
        for the last block; empty without a final norm)."""
        if self.hierarchical_layers is not None:
            return dict(zip(self.hierarchical_layers, self.norms_block))
        return {self.depth - 1: self.norm} if self.norm is not None else {}

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
        if self.uses_image_tokenizer(shape):
            return (1 if len(shape) == 4 else shape[1], h, w)
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
        if self.img_temporal_dim_size is not None and not self.is_video:
            raise ValueError(
                "img_temporal_dim_size needs a video model (num_frames set): an image model "
                "already tokenises images."
            )
        if self.interpolate_rope and self.position_embedding != "rope":
            raise ValueError("interpolate_rope needs position_embedding='rope'.")
        if self.hierarchical_layers is not None:
            layers = self.hierarchical_layers
            if (
                not layers
                or list(layers) != sorted(set(layers))
                or layers[0] < 0
                or layers[-1] != self.depth - 1
            ):
                raise ValueError(
                    "hierarchical_layers must be distinct ascending block indices ending "
                    f"with the last block ({self.depth - 1}); got {list(layers)}."
                )
            if self.output_dim is not None:
                raise ValueError("hierarchical_layers cannot be combined with output_dim.")
            if not 1 <= self.n_output_distillation <= len(layers):
                raise ValueError(
                    f"n_output_distillation must be in [1, {len(layers)}]; got "
                    f"{self.n_output_distillation}."
                )

    def _check_input_shape(self, shape):
        if self.patch_embed_img is not None and len(shape) == 4:
            shape = (shape[0], 1) + tuple(shape[1:])  # an image: one frame
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
        if (
            self.is_video
            and shape[1] is not None
            and shape[1] % self.tubelet_size
            and not self.uses_image_tokenizer(shape)
        ):
            raise ValueError(
                f"Input frame count {shape[1]} is not divisible by tubelet_size="
                f"{self.tubelet_size} (input shape {tuple(shape)})."
            )

    # ----------------------------------------------------------------------------- graph

    def build(self, input_shape):
        self._check_input_shape(input_shape)
        self.patch_embed.build(input_shape)
        if self.patch_embed_img is not None:
            self.patch_embed_img.build(
                (input_shape[0], self.img_temporal_dim_size) + tuple(input_shape[-3:])
            )
        token_shape = (None, self.num_tokens(input_shape), self.hidden_dim)
        if self.pos_embed is not None:
            self.pos_embed.build(token_shape)
        for block in self.blocks:
            block.build(token_shape)
            token_shape = block.compute_output_shape(token_shape)
        if self.norm is not None:
            self.norm.build(token_shape)
        for norm in self.norms_block:
            norm.build(token_shape)
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

    def call(self, inputs, token_indices=None, training=False, return_hierarchical=False,
             output_layers=None):
        shape = tuple(inputs.shape)
        self._check_input_shape(shape)
        grid = self.grid_size(shape)
        num_tokens = int(np.prod(grid))
        if self.uses_image_tokenizer(shape):
            if len(shape) == 4:
                inputs = ops.expand_dims(inputs, 1)
            x = self.patch_embed_img(inputs)
            mod_embed = self.img_mod_embed
        else:
            x = self.patch_embed(inputs)
            mod_embed = self.video_mod_embed
        if mod_embed is not None:
            x = x + ops.cast(mod_embed, x.dtype)
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
            grid3 = grid if len(grid) == 3 else (1,) + grid
            scale = None
            if self.interpolate_rope:
                scale = interpolated_position_scale(grid3, self._rope_reference_grid())
            rope = rope_tables(
                ids, grid3, self.hidden_dim // self.num_heads, tiled=self.rope_tiled,
                position_scale=scale,
            )
        norms = self.output_layer_norms
        wanted = set()
        if output_layers is not None:
            output_layers = [int(i) for i in output_layers]
            for i in output_layers:
                if i not in norms:
                    raise ValueError(
                        f"output_layers: block {i} has no output norm; choose from "
                        f"{sorted(norms)}."
                    )
            wanted.update(output_layers)
        if return_hierarchical:
            if self.hierarchical_layers is None:
                raise ValueError(
                    "return_hierarchical needs a model with hierarchical_layers."
                )
            wanted.update(self._distillation_layers())
        outs = {}
        for i, block in enumerate(self.blocks):
            x = block(x, rope=rope, training=training)
            if i in wanted:
                outs[i] = norms[i](x)
        if output_layers is not None:
            return [outs[i] for i in output_layers]
        if return_hierarchical:
            return ops.concatenate([outs[i] for i in self._distillation_layers()], axis=-1)
        if self.norms_block:
            return self.norms_block[-1](x)
        if self.norm is not None:
            x = self.norm(x)
        return x

    def _distillation_layers(self):
        return self.hierarchical_layers[len(self.hierarchical_layers)
                                        - self.n_output_distillation:]

    def _rope_reference_grid(self):
        # The training grid whose positions interpolate_rope maps every resolution to.
        return (252 if self.patch_size == 14 else 256) // self.patch_size

    def compute_output_shape(self, inputs_shape, token_indices_shape=None, **options):
        """The output shape of ``call`` with the same arguments: ``(B, N, D)``;
        ``(B, N, n_output_distillation * D)`` with ``return_hierarchical=True``; a list of
        ``(B, N, D)``, one per block, with ``output_layers`` (a list of several masks
        stacks them on the batch axis, as ``call`` does). The options are keyword-only
        (``**options``): Keras requires every named argument here to be a ``*_shape``."""
        return_hierarchical = options.pop("return_hierarchical", False)
        output_layers = options.pop("output_layers", None)
        if options:
            raise TypeError(f"Unexpected options: {sorted(options)}.")
        n, batch = self.num_tokens(inputs_shape), inputs_shape[0]
        if isinstance(token_indices_shape, (list, tuple)) and token_indices_shape and (
            isinstance(token_indices_shape[0], (list, tuple))
        ):
            n = token_indices_shape[0][-1]
            batch = None if batch is None else batch * len(token_indices_shape)
        elif token_indices_shape is not None:
            n = token_indices_shape[-1]
        if output_layers is not None:
            norms = self.output_layer_norms
            missing = [int(i) for i in output_layers if int(i) not in norms]
            if missing:
                raise ValueError(
                    f"output_layers: block {missing[0]} has no output norm; choose from "
                    f"{sorted(norms)}."
                )
            return [(batch, n, self.hidden_dim) for _ in output_layers]
        if return_hierarchical:
            if self.hierarchical_layers is None:
                raise ValueError("return_hierarchical needs a model with hierarchical_layers.")
            return (batch, n, self.n_output_distillation * self.hidden_dim)
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
                "img_temporal_dim_size": self.img_temporal_dim_size,
                "modality_embedding": self.modality_embedding,
                "interpolate_rope": self.interpolate_rope,
                "hierarchical_layers": (
                    None if self.hierarchical_layers is None else list(self.hierarchical_layers)
                ),
                "n_output_distillation": self.n_output_distillation,
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
