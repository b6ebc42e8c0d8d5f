"""Seeding every random source of the active backend."""

import random

import keras
import numpy as np


def seed_everything(seed):
    """``keras.utils.set_random_seed`` without its TensorFlow import under JAX and torch
    (that import alone costs seconds per process): Keras's global seed and seed generator,
    Python's ``random``, numpy, and torch's generator."""
    if keras.backend.backend() == "tensorflow":
        keras.utils.set_random_seed(seed)
        return
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    if keras.backend.backend() == "torch":
        import torch

        torch.manual_seed(seed)
