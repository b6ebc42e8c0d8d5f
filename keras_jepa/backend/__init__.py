"""The only place in keras_jepa that may import jax, torch or tensorflow.

Backend-specific helpers are added here, one module per backend, chosen once at import.

This package's ``__init__`` must not import Keras: ``keras_jepa.backend.select`` runs
before the first ``import keras`` to choose a backend that is installed, and importing a
submodule runs this file first.
"""


def name():
    """The active Keras backend: ``"jax"``, ``"torch"`` or ``"tensorflow"``."""
    import keras

    return keras.backend.backend()
