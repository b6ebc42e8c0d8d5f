"""Preset-ready entry classes and the preset registry."""

from keras_jepa.applications.preset_registry import PRESETS
from keras_jepa.models.vision_transformer import VisionTransformer
