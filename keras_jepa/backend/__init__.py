"""The only place in keras_jepa that may import jax, torch or tensorflow.

Backend-specific helpers are added here, one module per backend, chosen once at import.
"""

import keras


def name():
    """The active Keras backend: ``"jax"``, ``"torch"`` or ``"tensorflow"``."""
    return keras.backend.backend()
