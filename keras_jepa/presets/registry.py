"""The registry of built-in presets.

Each entry is a dict naming the class it builds (``"class"``) and either a ``config``
(architecture only: the model is built with the official initialisation), a ``handle`` (a
preset directory to download: ``hf://`` or ``kaggle://``), or a ``source`` (a released
checkpoint, converted on first use by the converter that ``keras_jepa.checkpoints``
registers with :func:`register_converter`). Families register their entries with
:func:`register_presets` (``keras_jepa.models.vit.presets``,
``keras_jepa.models.jepa.presets``); this module imports no model and no converter.
"""

PRESETS = {}
_CONVERTER = []


def register_presets(entries):
    """Adds ``{name: entry}`` to the registry; a name registered twice is an error."""
    taken = sorted(set(entries) & set(PRESETS))
    if taken:
        raise ValueError(f"Preset names registered twice: {taken}.")
    PRESETS.update(entries)


def register_converter(function):
    """Sets ``function(name, entry) -> preset folder``, which downloads and converts a
    released checkpoint (an entry with a ``source``)."""
    _CONVERTER[:] = [function]


def convert_release(name, entry):
    """The preset folder of the released checkpoint ``name``, converted on first use."""
    if not _CONVERTER:
        raise RuntimeError(
            f"Preset {name!r} is a released checkpoint, but no converter is registered: "
            "import keras_jepa (its checkpoints package registers one)."
        )
    return _CONVERTER[0](name, entry)
