"""Patch (image) and tubelet (video) embeddings."""

import keras
from keras import ops

from keras_jepa.layers.initializers import normal_init


@keras.saving.register_keras_serializable(package="keras_jepa")
class PatchEmbedding(keras.layers.Layer):
    """Non-overlapping patch projection (convolution with kernel = stride), channels last.

    Images ``(B, H, W, C)`` become ``(B, (H/p) * (W/p), D)``; with ``tubelet_size`` set,
    videos ``(B, T, H, W, C)`` become ``(B, (T/t) * (H/p) * (W/p), D)``. Tokens are
    flattened row-major over ``(t, h, w)``, the official order. The kernel is stored as
    ``proj`` with Keras's ``(p, p, C, D)`` / ``(t, p, p, C, D)`` layout.

    Args:
        hidden_dim: output width D.
        patch_size: spatial patch size p.
        tubelet_size: temporal size t for video, ``None`` for images.
        init_std: std of the normal kernel init.

    Example:

    >>> import numpy as np
    >>> tuple(PatchEmbedding(8, patch_size=4)(np.zeros((2, 16, 16, 3), "float32")).shape)
    (2, 16, 8)
    """

    def __init__(self, hidden_dim, patch_size=16, tubelet_size=None, init_std=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = int(hidden_dim)
        self.patch_size = int(patch_size)
        self.tubelet_size = None if tubelet_size is None else int(tubelet_size)
        self.init_std = float(init_std)

    def build(self, input_shape):
        common = dict(
            filters=self.hidden_dim,
            padding="valid",
            kernel_initializer=normal_init(self.init_std),
            data_format="channels_last",
            dtype=self.dtype_policy,
            name="proj",
        )
        p = self.patch_size
        if self.tubelet_size is None:
            self.proj = keras.layers.Conv2D(kernel_size=(p, p), strides=(p, p), **common)
        else:
            t = self.tubelet_size
            self.proj = keras.layers.Conv3D(
                kernel_size=(t, p, p), strides=(t, p, p), **common
            )
        self.proj.build(input_shape)
        self.built = True

    def call(self, x):
        y = self.proj(x)
        return ops.reshape(y, (-1, _prod(y.shape[1:-1]), self.hidden_dim))

    def compute_output_shape(self, input_shape):
        dims = list(input_shape[1:-1])
        sizes = [self.patch_size] * 2
        if self.tubelet_size is not None:
            sizes = [self.tubelet_size] + sizes
        n = 1
        for d, s in zip(dims, sizes):
            n = None if (d is None or n is None) else n * (d // s)
        return (input_shape[0], n, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "patch_size": self.patch_size,
                "tubelet_size": self.tubelet_size,
                "init_std": self.init_std,
            }
        )
        return config


def _prod(values):
    out = 1
    for v in values:
        out *= int(v)
    return out
