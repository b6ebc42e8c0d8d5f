"""Datasets, transforms and synthetic data (numpy; they run in the input pipeline)."""

from keras_jepa.data.embedded import load_digits
