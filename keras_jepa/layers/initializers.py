"""Weight initialisers of the JEPA reference code."""

import math

import keras


@keras.saving.register_keras_serializable(package="keras_jepa")
class FlatNormal(keras.initializers.Initializer):
    """Normal(0, ``stddev``) drawn as one flat vector and reshaped.

    The official ``trunc_normal_(std=0.02)`` truncates at +-2 in absolute value, which never
    triggers at that std, so it is a plain normal distribution. Drawing flat gives the same
    distribution as ``keras.initializers.RandomNormal`` but compiles one random kernel per
    element count on JAX instead of one per rank-4/5 shape (seconds per conv kernel).

    Example:

    >>> import keras
    >>> w = FlatNormal(0.02, seed=0)((4, 4, 3, 8))
    >>> tuple(w.shape)
    (4, 4, 3, 8)
    """

    def __init__(self, stddev=0.02, seed=None):
        self.stddev = float(stddev)
        self.seed = seed
        self._generator = keras.random.SeedGenerator(seed) if seed is not None else None

    def __call__(self, shape, dtype=None):
        size = math.prod(int(s) for s in shape)
        seed = self._generator if self._generator is not None else None
        flat = keras.random.normal((size,), stddev=self.stddev, dtype=dtype, seed=seed)
        return keras.ops.reshape(flat, tuple(shape))

    def get_config(self):
        return {"stddev": self.stddev, "seed": self.seed}


def normal_init(stddev):
    """The official kernel init: a (practically untruncated) normal with ``stddev``."""
    return FlatNormal(stddev)
