"""Backend choice before Keras is imported (no backend is imported here)."""

import importlib.util
import json
import os
import sys

BACKENDS = ("jax", "torch", "tensorflow")


def installed_backends():
    """Backends whose package is importable, in keras_jepa's order of preference."""
    return [b for b in BACKENDS if importlib.util.find_spec(b) is not None]


def _configured_backend():
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    try:
        with open(os.path.join(home, "keras.json")) as f:
            return json.load(f).get("backend")
    except (OSError, ValueError):
        return None


def choose_default_backend():
    """Sets ``KERAS_BACKEND`` when Keras's own default (tensorflow) would fail to import.

    Does nothing if Keras is already imported, ``KERAS_BACKEND`` is set, keras.json names a
    backend, or TensorFlow is installed. Returns the backend that will be used (or None
    when Keras decides).
    """
    if "keras" in sys.modules or os.environ.get("KERAS_BACKEND") or _configured_backend():
        return None
    if importlib.util.find_spec("tensorflow") is not None:
        return None
    available = installed_backends()
    if not available:
        raise ImportError(
            "keras_jepa needs one Keras backend: install one of "
            "`pip install keras-jepa[jax]`, `[torch]` or `[tensorflow]`."
        )
    os.environ["KERAS_BACKEND"] = available[0]
    return available[0]
