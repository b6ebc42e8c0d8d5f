"""Presets: keras-hub's on-disk format (config.json + model.weights.h5 + metadata.json),
the registry that families register their built-in presets into, and ``from_preset``."""

from keras_jepa.presets.mixin import Backbone, PresetMixin
from keras_jepa.presets.storage import list_presets, load_preset, save_preset
