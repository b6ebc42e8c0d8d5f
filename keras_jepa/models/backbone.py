"""Base class for keras_jepa backbones: config round trip and presets."""

import keras

from keras_jepa.utils import presets as preset_utils


class classproperty(property):
    def __get__(self, _, owner):
        return self.fget(owner)


class Backbone(keras.Model):
    """A ``keras.Model`` with ``from_preset``, ``save_to_preset`` and ``presets``.

    Subclasses store their constructor arguments and return them from ``get_config``
    (merged with this class's ``name``/``trainable``/``dtype``), so ``from_config`` is
    ``cls(**config)`` and a preset directory rebuilds the same architecture.
    """

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)

    @classproperty
    def presets(cls):
        """Built-in presets that build this class: ``{name: entry}``."""
        return preset_utils.list_presets(cls)

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Builds a model from a built-in name, a preset directory, or an ``hf://`` /
        ``kaggle://`` handle. ``kwargs`` override the stored config (e.g. ``dtype``)."""
        return preset_utils.load_preset(cls, preset, load_weights=load_weights, **kwargs)

    def save_to_preset(self, preset_dir):
        """Saves config, weights and metadata to ``preset_dir`` (keras-hub layout)."""
        preset_utils.save_preset(self, preset_dir)
