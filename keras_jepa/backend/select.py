"""Backend choice before Keras is imported (no backend, and not Keras, is imported here).

Keras fixes its backend at its first import: ``KERAS_BACKEND`` if set, else the
``"backend"`` entry of ``$KERAS_HOME/keras.json`` (``~/.keras/keras.json``), else
TensorFlow. Keras also *writes* that file on its first import with ``"tensorflow"`` in
it, whatever backend the process used. So on a machine with only jax or torch installed,
Keras's choice is a backend that cannot be imported, on the first run and on every later
one. :func:`choose_default_backend` replaces such a choice by an installed backend.
"""

import importlib.util
import json
import os
import sys

BACKENDS = ("jax", "torch", "tensorflow")


def _importable(module):
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        # ValueError: ``sys.modules[module]`` is None, Python's way of blocking an import.
        return False


def installed_backends():
    """Backends whose package is importable, in keras_jepa's order of preference."""
    return [b for b in BACKENDS if _importable(b)]


def _configured_backend():
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    try:
        with open(os.path.join(home, "keras.json")) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    return config.get("backend") if isinstance(config, dict) else None


def choose_default_backend():
    """Sets ``KERAS_BACKEND`` when Keras's own choice would fail to import.

    Does nothing if Keras is already imported or ``KERAS_BACKEND`` is set. Otherwise the
    backend named in keras.json is kept when it is installed (TensorFlow, Keras's default,
    when keras.json names none); when it is not installed, the first installed of jax,
    torch and tensorflow is chosen. Returns the backend set in ``KERAS_BACKEND``, or None
    when Keras's own choice stands.

    Example:

    >>> import keras_jepa.backend.select as select
    >>> select.choose_default_backend() is None  # Keras is already imported here
    True
    """
    if "keras" in sys.modules or os.environ.get("KERAS_BACKEND"):
        return None
    keras_choice = _configured_backend() or "tensorflow"
    if keras_choice not in BACKENDS or _importable(keras_choice):
        # An unknown name is left to Keras, which reports it.
        return None
    available = installed_backends()
    if not available:
        raise ImportError(
            "keras_jepa needs one Keras backend: install one of "
            "`pip install keras-jepa[jax]`, `[torch]` or `[tensorflow]`."
        )
    os.environ["KERAS_BACKEND"] = available[0]
    return available[0]
