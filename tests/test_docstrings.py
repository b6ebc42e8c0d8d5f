"""Every docstring example in the library runs on this backend and prints what it says."""

import doctest
import importlib
import pkgutil

import pytest

import keras_jepa

MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(keras_jepa.__path__, prefix="keras_jepa.")
    if name != "keras_jepa.cli"
)


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {module_name}"
