"""Preset storage and handle resolution, in keras-hub's on-disk layout.

A preset directory holds:

* ``config.json``: ``keras.saving.serialize_keras_object(model)`` (``registered_name``
  ``"keras_jepa>ClassName"``), without build or compile config;
* ``model.weights.h5``: ``model.save_weights`` output (absent for architecture-only
  presets);
* ``metadata.json``: versions, backend, parameter count, date.

Handles accepted by ``from_preset``:

* a built-in name from ``keras_jepa.presets.registry``;
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
    from keras_jepa.presets.registry import PRESETS

    if not isinstance(handle, str) or not handle:
        raise ValueError(f"A preset handle must be a non-empty string; got {handle!r}.")
    if handle in PRESETS:
        entry = PRESETS[handle]
        if entry.get("handle"):
            return resolve_preset(entry["handle"])
        if entry.get("source"):
            from keras_jepa.presets.registry import convert_release

            return "dir", convert_release(handle, entry)
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


def read_json_object(path, what, advice):
    """The dict in the JSON file ``path``; a ``ValueError`` naming ``what`` (e.g. "preset
    config"), the path and the cause when the file is empty, not JSON or not a JSON
    object, followed by ``advice``."""
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.strip():
        raise ValueError(f"The {what} {path!r} is empty. {advice}")
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"The {what} {path!r} is not valid JSON ({e}). {advice}") from e
    if not isinstance(config, dict):
        raise ValueError(
            f"The {what} {path!r} holds a JSON {type(config).__name__}; expected a JSON "
            f"object. {advice}"
        )
    return config


def read_preset_config(preset_dir):
    """The dict in ``preset_dir/config.json``.

    Raises:
        ValueError: the file is empty, not JSON, not a JSON object, or not a keras_jepa
            preset config (no ``registered_name``/``config``); the message names the file.
    """
    path = os.path.join(preset_dir, CONFIG_FILE)
    redo = ("A preset config is what save_to_preset writes: save the preset again with "
            "`model.save_to_preset(path)`, or copy the folder again if it was downloaded.")
    config = read_json_object(path, "preset config", redo)
    missing = [k for k in ("registered_name", "config") if k not in config]
    if missing or not isinstance(config.get("config"), dict):
        hint = ""
        if "model_type" in config or "architectures" in config:
            hint = (" It looks like a Hugging Face transformers config: convert that folder "
                    "with `keras-jepa convert FOLDER OUT` and load OUT.")
        raise ValueError(
            f"The preset config {path!r} is not a keras_jepa preset config: "
            + (f"it has no {', '.join(repr(k) for k in missing)} entry"
               if missing else "its 'config' entry is not a JSON object")
            + f" (keys: {sorted(config)[:10]}).{hint or ' ' + redo}"
        )
    return config


def _h5_problem(path):
    """``None`` if ``path`` opens as an HDF5 file, else the cause (a sentence)."""
    import h5py

    size = os.path.getsize(path)
    if size == 0:
        return "it is empty (0 bytes)"
    try:
        with h5py.File(path, "r"):
            return None
    except OSError as e:
        text = str(e)
        if "truncated" in text:
            return f"it is truncated ({size} bytes; h5py: {text})"
        if "signature" in text:
            return f"it is not an HDF5 file ({size} bytes; h5py: {text})"
        return f"it is truncated or not an HDF5 file ({size} bytes; h5py: {text})"


def _count_h5_arrays(path):
    """Number of arrays in a ``save_weights`` file, without the optimizer's."""
    import h5py

    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda key, obj: names.append(key) if isinstance(obj, h5py.Dataset)
                     else None)
    return sum(1 for key in names if not key.startswith("optimizer/"))


def load_preset_weights(model, weights, config_path=None):
    """``model.load_weights(weights)`` with errors that name the file and the cause.

    Raises:
        ValueError: the file is empty, truncated or not HDF5; or its weights do not match
            the model's architecture (Keras's message is kept as the detail), including a
            file that holds more weights than the model (which Keras would silently skip).
    """
    problem = _h5_problem(weights)
    if problem:
        raise ValueError(
            f"Cannot load the preset weights {weights!r}: {problem}. An interrupted save "
            "or download? Save the preset again, or copy the folder again."
        )
    config_name = repr(config_path) if config_path else "the preset's config"
    mismatch = (f"The weights in {weights!r} do not match the architecture in "
                f"{config_name}: they were saved from a different model")
    try:
        model.load_weights(weights)
    except (ValueError, KeyError) as e:
        raise ValueError(f"{mismatch}. (Keras: {e})") from e
    stored = _count_h5_arrays(weights)
    variables = len(model.variables)
    if stored > variables:
        raise ValueError(
            f"{mismatch}: the file holds {stored} arrays, the model has only {variables} "
            "variables (e.g. more blocks than config.json says)."
        )


def load_preset(cls, handle, load_weights=True, encoder=None, **kwargs):
    """Builds an instance of ``cls`` (or a registered subclass) from a preset handle.

    ``kwargs`` override the stored config (e.g. ``dtype="mixed_bfloat16"``, which also
    reaches the sub-models: encoder, target encoder and predictor). A
    ``VisionTransformer`` requested from a JEPA preset is that preset's target encoder
    (``encoder="target"``, default) or context encoder (``"context"``); for a JEPA model,
    ``encoder`` sets ``feature_encoder``.

    A preset directory must hold ``model.weights.h5`` unless ``load_weights=False``
    (architecture only, random initial weights); architecture-only built-in presets have
    no weights by design.

    Raises:
        FileNotFoundError: a preset directory without ``model.weights.h5`` (with
            ``load_weights=True``).
        ValueError: an unknown handle; an unreadable ``config.json``; a weights file that
            is truncated, not HDF5, or from another architecture. Messages name the file.
    """
    if encoder not in (None, "target", "context"):
        raise ValueError(f"encoder must be 'target' or 'context'; got {encoder!r}.")
    kind, value = resolve_preset(handle)
    if kind == "config":
        target = keras.saving.get_registered_object(f"keras_jepa>{value['class']}")
        _check_class(cls, target, handle)
        return target(**{**value["config"], **kwargs})
    config = read_preset_config(value)
    config_path = os.path.join(value, CONFIG_FILE)
    target = keras.saving.get_registered_object(config["registered_name"])
    if target is None:
        raise ValueError(
            f"Preset {handle!r} holds class {config.get('registered_name')!r}, which is "
            "not registered. Import the package that defines it first."
        )
    weights = os.path.join(value, WEIGHTS_FILE)
    if load_weights and not os.path.isfile(weights):
        raise FileNotFoundError(
            f"The preset {handle!r} has no weights: {os.path.abspath(weights)!r} does not "
            f"exist (the folder holds {sorted(os.listdir(value))}), and loading it would "
            "give random weights. "
            "Copy the complete preset folder (config.json and model.weights.h5), or pass "
            "load_weights=False to build the architecture only, with random weights."
        )
    if not issubclass(target, cls) and _provides(target, cls):
        # A part of a larger model (e.g. a backbone out of a full JEPA preset): build the
        # whole model, then ask it for the part.
        model = _build(target, config["config"], {}, config_path)
        if load_weights:
            load_preset_weights(model, weights, config_path)
        return model.preset_component(cls, encoder=encoder, **kwargs)
    _check_class(cls, target, handle)
    model = _build(target, config["config"], kwargs, config_path)
    if load_weights:
        load_preset_weights(model, weights, config_path)
    if encoder is not None and hasattr(model, "feature_encoder"):
        model.feature_encoder = encoder
    return model


def _provides(target, cls):
    """Whether a model of class ``target`` can hand back a part of class ``cls``
    (``target.provides_component(cls)``, e.g. a JEPA model its encoders)."""
    provides = getattr(target, "provides_component", None)
    return cls is not object and provides is not None and provides(cls)


def _with_dtype(config, dtype):
    """A copy of a model config whose serialized sub-models (encoder, predictor, ...) all
    get ``dtype``, so a ``dtype`` override reaches every layer, not only the outer model."""
    out = dict(config)
    for key, value in config.items():
        if key == "dtype" or not isinstance(value, dict):
            continue
        inner = value.get("config")
        if "class_name" in value and isinstance(inner, dict) and "dtype" in inner:
            out[key] = {**value, "config": {**_with_dtype(inner, dtype), "dtype": dtype}}
    return out


def _build(target, config, overrides, config_path):
    if "dtype" in overrides and overrides["dtype"] is not None:
        policy = keras.dtype_policies.get(overrides["dtype"])
        config = _with_dtype(config, keras.dtype_policies.serialize(policy))
    try:
        return target.from_config({**config, **overrides})
    except (TypeError, ValueError, KeyError) as e:
        extra = f" with the overrides {sorted(overrides)}" if overrides else ""
        raise ValueError(
            f"Cannot build a {target.__name__} from {config_path!r}{extra}: "
            f"{type(e).__name__}: {e}"
        ) from e


def _check_class(cls, target, handle):
    if not issubclass(target, cls):
        raise ValueError(
            f"Preset {handle!r} holds a {target.__name__}, which is not a {cls.__name__}. "
            f"Load it with keras_jepa.models.{target.__name__}.from_preset."
        )


def list_presets(cls=None):
    """Built-in presets, optionally only those whose class is ``cls`` or a subclass."""
    from keras_jepa.presets.registry import PRESETS

    if cls is None:
        return dict(PRESETS)
    out = {}
    for name, entry in PRESETS.items():
        target = keras.saving.get_registered_object(f"keras_jepa>{entry.get('class')}")
        if target is None:
            continue
        # Full JEPA presets also give a VisionTransformer backbone (their target encoder).
        if issubclass(target, cls) or _provides(target, cls):
            out[name] = entry
    return out
