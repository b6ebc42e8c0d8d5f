"""Feed-forward blocks: the exact-GELU MLP and the SwiGLU variant of V-JEPA 2."""

import keras
from keras import ops

from keras_jepa.layers.initializers import normal_init


@keras.saving.register_keras_serializable(package="keras_jepa")
class MLP(keras.layers.Layer):
    """``fc1 -> GELU (exact, erf) -> fc2``.

    Args:
        hidden_dim: width of ``fc1``.
        output_dim: width of ``fc2`` (defaults to the input width).
        init_std: std of the normal kernel init; ``fc2_init_std`` overrides it for ``fc2``
            (the depth-scaled init of V-JEPA 2).

    Example:

    >>> import numpy as np
    >>> tuple(MLP(hidden_dim=16)(np.zeros((1, 3, 8), "float32")).shape)
    (1, 3, 8)
    """

    def __init__(
        self, hidden_dim, output_dim=None, init_std=0.02, fc2_init_std=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.hidden_dim = int(hidden_dim)
        self.output_dim = None if output_dim is None else int(output_dim)
        self.init_std = float(init_std)
        self.fc2_init_std = None if fc2_init_std is None else float(fc2_init_std)

    def _dense(self, units, std, name, input_shape):
        layer = keras.layers.Dense(
            units,
            kernel_initializer=normal_init(std),
            dtype=self.dtype_policy,
            name=name,
        )
        layer.build(input_shape)
        return layer

    def build(self, input_shape):
        out = self.output_dim or int(input_shape[-1])
        fc2_std = self.init_std if self.fc2_init_std is None else self.fc2_init_std
        hidden_shape = tuple(input_shape[:-1]) + (self.hidden_dim,)
        self.fc1 = self._dense(self.hidden_dim, self.init_std, "fc1", input_shape)
        self.fc2 = self._dense(out, fc2_std, "fc2", hidden_shape)
        self.built = True

    def call(self, x):
        return self.fc2(ops.gelu(self.fc1(x), approximate=False))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_dim or input_shape[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "output_dim": self.output_dim,
                "init_std": self.init_std,
                "fc2_init_std": self.fc2_init_std,
            }
        )
        return config


def swiglu_hidden_dim(hidden_dim, wide=True):
    """Hidden width of the official SwiGLU: with ``wide=True`` it is ``2/3`` of
    ``hidden_dim`` rounded up to a multiple of 8, else ``hidden_dim``."""
    if not wide:
        return int(hidden_dim)
    width = int(2 * hidden_dim / 3)
    return (width + 7) // 8 * 8


@keras.saving.register_keras_serializable(package="keras_jepa")
class SwiGLU(MLP):
    """``fc3(silu(fc1(x)) * fc2(x))`` with the official layer names.

    ``hidden_dim`` is the nominal MLP width (``mlp_ratio * D``); the actual width follows
    ``swiglu_hidden_dim(hidden_dim, wide)``. Note that the official depth-scaled init
    rescales the layer called ``fc2``, which in SwiGLU is the value branch, not the output;
    ``fc2_init_std`` reproduces that.
    """

    def __init__(self, hidden_dim, output_dim=None, wide=True, **kwargs):
        super().__init__(hidden_dim, output_dim=output_dim, **kwargs)
        self.wide = bool(wide)

    def build(self, input_shape):
        out = self.output_dim or int(input_shape[-1])
        width = swiglu_hidden_dim(self.hidden_dim, self.wide)
        fc2_std = self.init_std if self.fc2_init_std is None else self.fc2_init_std
        self.fc1 = self._dense(width, self.init_std, "fc1", input_shape)
        self.fc2 = self._dense(width, fc2_std, "fc2", input_shape)
        self.fc3 = self._dense(
            out, self.init_std, "fc3", tuple(input_shape[:-1]) + (width,)
        )
        self.built = True

    def call(self, x):
        return self.fc3(ops.silu(self.fc1(x)) * self.fc2(x))

    def get_config(self):
        config = super().get_config()
        config["wide"] = self.wide
        return config
