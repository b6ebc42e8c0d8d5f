"""Values known now: a tensor's content when the caller holds a concrete value, or None
inside a traced/compiled function (a JAX tracer, a TensorFlow graph tensor, a
``KerasTensor``, torch under ``torch.compile``), where the value does not exist yet.

Checks that can only be made on values (an index inside its range) use this to run
whenever they can, whatever the input's type: numpy, a list, or an eager backend tensor.
"""

import keras
import numpy as np


def concrete_value(x):
    """``x`` as a numpy array when its value is available now, else ``None``.

    Example:

    >>> concrete_value([1, 2]).tolist()
    [1, 2]
    >>> concrete_value(keras.KerasTensor((2, 3))) is None
    True
    """
    if x is None or isinstance(x, keras.KerasTensor):
        return None
    if isinstance(x, (np.ndarray, np.generic, list, tuple, int, float)):
        return np.asarray(x)
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        if isinstance(x, jax.core.Tracer):
            return None
        if isinstance(x, jax.Array):
            return np.asarray(x)
    elif backend == "tensorflow":
        import tensorflow as tf

        if tf.is_tensor(x):
            if not tf.executing_eagerly() or not hasattr(x, "numpy"):
                return None
            return x.numpy()
    elif backend == "torch":
        import torch

        if isinstance(x, torch.Tensor):
            if torch.compiler.is_compiling() or x.device.type == "meta":
                return None
            return x.detach().cpu().numpy()
    return None
