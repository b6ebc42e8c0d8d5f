"""Conversion of official (I-JEPA, V-JEPA, V-JEPA 2, V-JEPA 2.1, V-JEPA 2-AC) and Hugging
Face checkpoints, and of official attentive probes, into keras_jepa models and presets: one
module per source format (``converters``: I-JEPA / V-JEPA / V-JEPA 2 and Hugging Face,
``vjepa2_1``, ``ac``, ``probes``).

Importing this package registers the converter that turns a built-in preset of a released
checkpoint into a preset folder on first use (``keras_jepa.presets.registry``):
:func:`convert_release` picks the format's converter from the registry entry.
"""

from keras_jepa.checkpoints import ac as _ac
from keras_jepa.checkpoints import converters as _converters
from keras_jepa.checkpoints import vjepa2_1 as _vjepa2_1
from keras_jepa.presets.registry import register_converter as _register_converter


def release_converter(entry):
    """The function that converts the downloaded file of a registry ``entry``:
    ``convert(path, folder, arch=name, verbose=...)``."""
    if "ac" in entry:
        return _ac.convert_ac_checkpoint
    if _vjepa2_1.is_vjepa2_1_entry(entry):
        return _vjepa2_1.convert_vjepa2_1_checkpoint
    return _converters.convert_checkpoint


def convert_release(name, entry, verbose=True):
    """The folder of the converted built-in preset ``name`` (download and convert on first
    use, then cached), whatever its format."""
    return _converters.ensure_converted(name, entry, verbose=verbose,
                                        convert=release_converter(entry))


_register_converter(convert_release)
