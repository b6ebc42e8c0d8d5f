"""Preset storage and handle resolution, in keras-hub's on-disk layout.

A preset directory holds:

* ``config.json``: ``keras.saving.serialize_keras_object(model)`` (``registered_name``
  ``"keras_jepa>ClassName"``), without build or compile config;
* ``model.weights.h5``: ``model.save_weights`` output (absent for architecture-only
  presets);
* ``metadata.json``: versions, backend, parameter count, date.

Handles accepted by ``from_preset``:

* a built-in name from ``keras_jepa.applications.preset_registry``;
* a local directory;
* ``hf://org/name`` (needs ``huggingface_hub``) and ``kaggle://owner/model/...`` (needs
  ``kagglehub``); both download a preset directory in this layout.
"""

import datetime
import difflib
import json
import os

import keras

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"


def save_preset(model, preset_dir):
    """Writes ``model`` to ``preset_dir`` (created if needed)."""
    from keras_jepa.version import __version__

    os.makedirs(preset_dir, exist_ok=True)
    config = keras.saving.serialize_keras_object(model)
    config.pop("build_config", None)
    config.pop("compile_config", None)
    with open(os.path.join(preset_dir, CONFIG_FILE), "w") as f:
        json.dump(config, f, indent=2)
    model.save_weights(os.path.join(preset_dir, WEIGHTS_FILE))
    metadata = {
        "keras_version": keras.__version__,
        "keras_jepa_version": __version__,
        "backend": keras.backend.backend(),
        "parameter_count": int(model.count_params()),
        "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
    }
    with open(os.path.join(preset_dir, METADATA_FILE), "w") as f:
        json.dump(metadata, f, indent=2)


def _download(handle):
    if handle.startswith("hf://"):
        try:
            import huggingface_hub
        except ImportError as e:
            raise ImportError(
                f"Loading {handle!r} needs the huggingface_hub package: "
                "`pip install huggingface_hub`."
            ) from e
        return huggingface_hub.snapshot_download(repo_id=handle[len("hf://") :])
    if handle.startswith("kaggle://"):
        try:
            import kagglehub
        except ImportError as e:
            raise ImportError(
                f"Loading {handle!r} needs the kagglehub package: `pip install kagglehub`."
            ) from e
        return kagglehub.model_download(handle[len("kaggle://") :])
    raise ValueError(f"Unknown preset scheme in {handle!r}.")


def resolve_preset(handle):
    """Returns ``(kind, value)``: ``("dir", path)`` for a preset directory or
    ``("config", registry_entry)`` for an architecture-only built-in preset."""
    from keras_jepa.applications.preset_registry import PRESETS

    if not isinstance(handle, str) or not handle:
        raise ValueError(f"A preset handle must be a non-empty string; got {handle!r}.")
    if handle in PRESETS:
        entry = PRESETS[handle]
        if entry.get("handle"):
            return resolve_preset(entry["handle"])
        if entry.get("source"):
            from keras_jepa.applications.converters import ensure_converted

            return "dir", ensure_converted(handle, entry)
        return "config", entry
    if handle.startswith(("hf://", "kaggle://")):
        return "dir", _download(handle)
    path = os.path.expanduser(handle)
    if os.path.isdir(path):
        if not os.path.exists(os.path.join(path, CONFIG_FILE)):
            raise ValueError(
                f"Directory {path!r} is not a preset: it has no {CONFIG_FILE}. Save one "
                "with `model.save_to_preset(path)`."
            )
        return "dir", path
    close = difflib.get_close_matches(handle, list(PRESETS), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"Unknown preset {handle!r}: not a built-in name, an existing directory, or an "
        f"hf:// / kaggle:// handle.{hint} List built-in presets with `keras-jepa presets`."
    )


def load_preset(cls, handle, load_weights=True, encoder=None, **kwargs):
    """Builds an instance of ``cls`` (or a registered subclass) from a preset handle.

    ``kwargs`` override the stored config (e.g. ``dtype="mixed_bfloat16"``). A
    ``VisionTransformer`` requested from a JEPA preset is that preset's target encoder
    (``encoder="target"``, default) or context encoder (``"context"``); for a JEPA model,
    ``encoder`` sets ``feature_encoder``.
    """
    import keras_jepa.models  # noqa: F401  (registers the classes)
    from keras_jepa.models.jepa import JEPA
    from keras_jepa.models.vision_transformer import VisionTransformer

    if encoder not in (None, "target", "context"):
        raise ValueError(f"encoder must be 'target' or 'context'; got {encoder!r}.")
    kind, value = resolve_preset(handle)
    if kind == "config":
        target = keras.saving.get_registered_object(f"keras_jepa>{value['class']}")
        _check_class(cls, target, handle)
        return target(**{**value["config"], **kwargs})
    with open(os.path.join(value, CONFIG_FILE)) as f:
        config = json.load(f)
    target = keras.saving.get_registered_object(config.get("registered_name", ""))
    if target is None:
        raise ValueError(
            f"Preset {handle!r} holds class {config.get('registered_name')!r}, which is "
            "not registered. Import the package that defines it first."
        )
    weights = os.path.join(value, WEIGHTS_FILE)
    if issubclass(target, JEPA) and issubclass(VisionTransformer, cls) and cls is not object:
        # A backbone out of a full JEPA preset: build the whole model, keep one encoder.
        model = target.from_config(config["config"])
        if load_weights and os.path.exists(weights):
            model.load_weights(weights)
        source = model.encoder if encoder == "context" else model.target_encoder
        backbone_config = {**source.get_config(), "name": "vision_transformer",
                           "trainable": True, **kwargs}
        backbone = VisionTransformer.from_config(backbone_config)
        backbone.set_weights(source.get_weights())
        return backbone
    _check_class(cls, target, handle)
    model = target.from_config({**config["config"], **kwargs})
    if load_weights and os.path.exists(weights):
        model.load_weights(weights)
    if encoder is not None and isinstance(model, JEPA):
        model.feature_encoder = encoder
    return model


def _check_class(cls, target, handle):
    if not issubclass(target, cls):
        raise ValueError(
            f"Preset {handle!r} holds a {target.__name__}, which is not a {cls.__name__}. "
            f"Load it with keras_jepa.models.{target.__name__}.from_preset."
        )


def list_presets(cls=None):
    """Built-in presets, optionally only those whose class is ``cls`` or a subclass."""
    from keras_jepa.applications.preset_registry import PRESETS

    if cls is None:
        return dict(PRESETS)
    from keras_jepa.models.jepa import JEPA
    from keras_jepa.models.vision_transformer import VisionTransformer

    out = {}
    for name, entry in PRESETS.items():
        target = keras.saving.get_registered_object(f"keras_jepa>{entry.get('class')}")
        if target is None:
            continue
        # Full JEPA presets also give a VisionTransformer backbone (their target encoder).
        backbone_of_jepa = issubclass(target, JEPA) and issubclass(VisionTransformer, cls)
        if issubclass(target, cls) or backbone_of_jepa:
            out[name] = entry
    return out
