"""Shared pytest configuration. The backend is fixed per process by ``KERAS_BACKEND``."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_jepa.backend.seeding import seed_everything  # noqa: E402,F401


def pytest_addoption(parser):
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="run tests marked slow"
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long test, run only with --run-slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --run-slow to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Each test starts from float32 and a fixed seed."""
    keras.config.set_dtype_policy("float32")
    seed_everything(0)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def backend():
    return keras.backend.backend()


@pytest.fixture(scope="module")
def fast_jax_initializers():
    """For modules whose models are all overwritten by checkpoints (their random init is
    never used). On JAX, the default partitionable threefry takes ~3 s to compile a normal draw of a
    rank-4/5 shape (the patch-embedding kernels) against ~0.6 s without it: switch it off
    for this module only, and restore it."""
    if keras.backend.backend() != "jax":
        yield
        return
    import jax

    before = jax.config.jax_threefry_partitionable
    jax.config.update("jax_threefry_partitionable", False)
    try:
        yield
    finally:
        jax.config.update("jax_threefry_partitionable", before)
