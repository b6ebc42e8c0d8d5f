"""Conversion of official (I-JEPA, V-JEPA, V-JEPA 2) and Hugging Face checkpoints, and of
official attentive probes, into keras_jepa models and presets.

Importing this package registers the converter that turns a built-in preset of a released
checkpoint into a preset folder on first use (``keras_jepa.presets.registry``).
"""

from keras_jepa.checkpoints.converters import ensure_converted as _ensure_converted
from keras_jepa.presets.registry import register_converter as _register_converter

_register_converter(_ensure_converted)
