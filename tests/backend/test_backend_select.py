"""A new user's first import: no ``KERAS_BACKEND``, an empty home, one backend installed.

Each case runs ``import keras_jepa`` in a fresh interpreter (the backend is fixed at the
first ``import keras``) with ``KERAS_BACKEND`` unset, ``HOME`` and ``KERAS_HOME`` in an
empty folder, and the backends the case hides made unimportable (``sys.modules[name] =
None``, Python's way of blocking an import, so both ``import`` and ``find_spec`` fail as
they do when the package is absent). It then builds a ViT and runs a forward pass.

A case runs only in the pytest process of the backend it expects to be chosen, so the
three per-backend runs of the suite share the cases instead of repeating them.
"""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import pytest

from tests.test_case import REPO_ROOT

ROOT = REPO_ROOT

SCRIPT = """
import sys
for name in {hidden!r}:
    sys.modules[name] = None
import numpy as np
import keras_jepa
import keras
from keras_jepa.models import VisionTransformer
model = VisionTransformer(image_size=32, patch_size=16, hidden_dim=32, depth=1, num_heads=2)
out = keras.ops.convert_to_numpy(model(np.ones((2, 32, 32, 3), "float32")))
assert out.shape == (2, 4, 32) and np.isfinite(out).all(), out.shape
print("BACKEND", keras.backend.backend())
"""


def _run(hidden, home):
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "KERAS_HOME")}
    env.update(HOME=str(home), KERAS_HOME=str(home / ".keras"), PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(hidden=tuple(hidden))],
        env=env, cwd=str(home), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.split("BACKEND ")[-1].strip()


def _require(*names):
    if keras.backend.backend() != names[0]:
        pytest.skip(f"runs in the {names[0]} process of the suite")
    for name in names:
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed")


def test_picks_jax_without_tensorflow_on_first_and_later_runs(tmp_path):
    _require("jax")
    assert _run(["tensorflow"], tmp_path) == "jax"
    # Keras's first import wrote keras.json naming its default, tensorflow, which is not
    # installed: the second run must not follow it.
    with open(tmp_path / ".keras" / "keras.json") as f:
        assert json.load(f)["backend"] == "tensorflow"
    assert _run(["tensorflow"], tmp_path) == "jax"


def test_picks_torch_without_tensorflow_and_jax(tmp_path):
    _require("torch")
    assert _run(["tensorflow", "jax", "jaxlib"], tmp_path) == "torch"


def test_keeps_installed_backend_named_in_keras_json(tmp_path):
    # keras.json names torch and torch is installed: kept, although jax comes first in
    # keras_jepa's order.
    _require("torch", "jax")
    (tmp_path / ".keras").mkdir()
    with open(tmp_path / ".keras" / "keras.json", "w") as f:
        json.dump({"backend": "torch"}, f)
    assert _run(["tensorflow"], tmp_path) == "torch"


def test_keras_default_kept_when_tensorflow_is_installed(tmp_path):
    _require("tensorflow")
    assert _run([], tmp_path) == "tensorflow"
