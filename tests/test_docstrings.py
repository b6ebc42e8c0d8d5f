"""Every docstring example in the library runs and prints what it says.

The examples run once, in the ``KERAS_BACKEND=torch`` process of the suite: they show the
API, which is the same on every backend, while what differs between backends is covered by
the unit tests, which run in all three processes. Torch runs them eagerly at a fraction of
the cost of eager JAX, which compiles every new op shape (on the 2-core CI machine: 74 s
for all examples on torch against 561 s on jax, measured in one session under the same
load). Run them on another backend with ``KERAS_JEPA_DOCTEST_BACKENDS=jax,torch,tensorflow``.
"""

import doctest
import importlib
import os
import pkgutil

import keras
import pytest

import keras_jepa

MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(keras_jepa.__path__, prefix="keras_jepa.")
    if name != "keras_jepa.cli"
)


BACKENDS = os.environ.get("KERAS_JEPA_DOCTEST_BACKENDS", "torch").split(",")


@pytest.mark.skipif(
    keras.backend.backend() not in BACKENDS,
    reason="docstring examples run in the torch process (KERAS_JEPA_DOCTEST_BACKENDS)",
)
@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {module_name}"
