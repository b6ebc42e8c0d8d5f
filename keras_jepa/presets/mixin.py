"""Base class for keras_jepa backbones: config round trip and presets."""

import keras

from keras_jepa.presets import storage as preset_utils



def deserialize_dtype(config):
    """A copy of a model config whose serialized ``dtype`` policy is deserialized, so the
    config can go straight to the constructor."""
    config = dict(config)
    if isinstance(config.get("dtype"), dict):
        config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
    return config

class classproperty(property):
    def __get__(self, _, owner):
        return self.fget(owner)


class PresetMixin:
    """``from_preset``, ``save_to_preset`` and ``presets`` for keras_jepa models."""

    @classproperty
    def presets(cls):
        """Built-in presets that build this class: ``{name: entry}``."""
        return preset_utils.list_presets(cls)

    @classmethod
    def from_preset(cls, preset, load_weights=True, encoder=None, **kwargs):
        """Builds a model from a built-in name, a preset directory, or an ``hf://`` /
        ``kaggle://`` handle. ``kwargs`` override the stored config; ``dtype`` (e.g.
        ``"mixed_bfloat16"``) reaches every sub-model (encoder, target encoder, predictor).

        A preset directory must hold ``model.weights.h5``: without it this raises
        ``FileNotFoundError`` naming the file, unless ``load_weights=False`` (the
        architecture only, with random weights). Architecture-only built-in presets
        (``vit_*``) have no weights by design and always build. A ``config.json`` or
        weights file that is empty, corrupt or from another architecture raises
        ``ValueError`` naming the file and the cause.

        Built-in names of released checkpoints (``keras-jepa presets``) are downloaded
        and converted on first use, then cached under ``$KERAS_HOME/keras_jepa``; offline,
        the error names the URL and where to put the file.

        ``encoder`` (``"target"`` or ``"context"``): for a ``VisionTransformer`` loaded
        from a full JEPA preset, which encoder to return (default ``"target"``, the EMA
        encoder the official probes evaluate; ``"context"`` is what torch.hub and
        Hugging Face load); for a JEPA model, which one ``model.backbone`` is.
        """
        return preset_utils.load_preset(
            cls, preset, load_weights=load_weights, encoder=encoder, **kwargs
        )

    def save_to_preset(self, preset_dir):
        """Saves config, weights and metadata to ``preset_dir`` (keras-hub layout)."""
        preset_utils.save_preset(self, preset_dir)


class Backbone(PresetMixin, keras.Model):
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
        return cls(**deserialize_dtype(config))
