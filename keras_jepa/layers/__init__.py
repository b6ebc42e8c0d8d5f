"""Reusable Keras layers of keras_jepa (``keras.ops`` only, every backend)."""

from keras_jepa.layers.attention import MultiHeadSelfAttention
from keras_jepa.layers.cross_attention import CrossAttention
from keras_jepa.layers.drop_path import DropPath
from keras_jepa.layers.mlp import MLP, SwiGLU
from keras_jepa.layers.patch_embedding import PatchEmbedding
from keras_jepa.layers.position_embedding import (
    SinCosPositionEmbedding,
    interpolation_matrix,
    resample_grid_table,
    sincos_1d,
    sincos_2d,
    sincos_3d,
)
from keras_jepa.layers.rotary_embedding import (
    apply_rope,
    rope_segment_dim,
    rope_tables,
    token_coordinates,
)
from keras_jepa.layers.token_ops import (
    apply_masks,
    gather_tokens,
    repeat_interleave_batch,
)
from keras_jepa.layers.transformer_block import TransformerBlock
