"""Stochastic depth ("drop path") per sample."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_jepa")
class DropPath(keras.layers.Layer):
    """Zeroes the whole residual branch of a sample with probability ``rate`` in training
    and rescales kept samples by ``1 / (1 - rate)``; the identity at inference.

    Example:

    >>> import numpy as np
    >>> tuple(DropPath(0.1)(np.ones((2, 3, 4), "float32")).shape)
    (2, 3, 4)
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be in [0, 1); got {rate}.")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if rate > 0 else None

    def call(self, x, training=False):
        if not training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        mask = keras.random.uniform(shape, seed=self.seed_generator) < keep
        return ops.where(mask, x / ops.cast(keep, x.dtype), ops.zeros_like(x))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
