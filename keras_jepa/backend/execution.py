"""How many optimizer steps one compiled call of ``fit`` may run on the active backend.

Keras's ``steps_per_execution`` runs several steps per call on JAX and TensorFlow; the
PyTorch trainer accepts only 1.
"""

import keras


def steps_per_call(requested):
    """``requested`` (an int >= 1) where the backend supports it, else 1 (PyTorch).

    Example:

    >>> steps_per_call(10) == (1 if keras.backend.backend() == "torch" else 10)
    True
    """
    requested = int(requested)
    if requested < 1:
        raise ValueError(f"steps per call must be >= 1; got {requested}.")
    return 1 if keras.backend.backend() == "torch" else requested
