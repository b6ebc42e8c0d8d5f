"""Checkpoint conversion: official I-JEPA / V-JEPA / V-JEPA 2 files and Hugging Face
models into keras_jepa models and presets.

Sources understood by ``convert_checkpoint`` and ``load_checkpoint_weights``:

* official pretraining checkpoints: a dict with ``encoder``, ``target_encoder`` and
  ``predictor`` state dicts (I-JEPA ``.pth.tar`` with ``module.`` keys; V-JEPA ``.pth.tar``
  and V-JEPA 2 ``.pt`` with ``module.backbone.`` keys; V-JEPA 2's unused stored sin-cos
  tables are dropped), plus optimizer state that is ignored;
* Hugging Face ``IJepaModel`` / ``VJEPA2Model`` weights (``model.safetensors`` or
  ``pytorch_model.bin``, with ``config.json`` beside them for the architecture): the
  encoder goes to both encoders (Hugging Face keeps one), the V-JEPA 2 predictor to the
  predictor;
* a bare encoder state dict (official key names), for ``encoder_only`` conversion.

Pickled files are read only with ``torch.load(weights_only=True)``
(``keras_jepa.backend.checkpoint_io``). Every tensor is checked before anything is written:
a missing key, a shape mismatch (the error names the key and both shapes) or, unless
``strict=False``, an unexpected key stops the conversion.

The architecture (``arch``) is a name from ``keras_jepa.presets.registry``
(official presets such as ``"vjepa2_vitl16_256"``, or encoder-only architecture presets),
the official training YAML a checkpoint was trained with (I-JEPA ``configs/*.yaml``,
V-JEPA ``configs/pretrain/*.yaml``, V-JEPA 2 ``configs/train/*/*.yaml``: the way to
convert a checkpoint you trained with the official code), a pretraining config name from
``keras_jepa.models.jepa.recipes.CONFIGS``, a ``PretrainConfig``, or a JSON file with
``PretrainConfig`` fields (``{"base": "<config name>", ...overrides}`` is accepted too).

Example (a checkpoint in the official I-JEPA layout, written here with numpy):

>>> import numpy as np
>>> from keras_jepa.models.jepa.recipes import get_config
>>> from keras_jepa.checkpoints import weight_porting as wp
>>> arch = get_config("ijepa_tiny_cpu").replace(hidden_dim=32, depth=1, predictor_dim=16,
...                                             predictor_depth=1, image_size=16)
>>> model = build_model_from_arch(arch)
>>> state = {part: {"module." + k: v for k, v in sd.items()}
...          for part, sd in export_official_state(model).items()}
>>> other = build_model_from_arch(arch)
>>> reports = load_checkpoint_weights(other, state)
>>> sorted(reports), reports["predictor"].missing
(['encoder', 'predictor', 'target_encoder'], [])
"""

import json
import os

import numpy as np

from keras_jepa.checkpoints import weight_porting as wp

PARTS = ("encoder", "target_encoder", "predictor")
ENCODER_CHOICES = ("target", "context")


# ---------------------------------------------------------------------------------------
# Architectures
# ---------------------------------------------------------------------------------------


def resolve_arch(arch):
    """A ``PretrainConfig`` (full model) or a registry entry with an encoder ``config``.

    Returns ``("pretrain", PretrainConfig)`` or ``("encoder", VisionTransformer kwargs)``.
    """
    from keras_jepa.presets.registry import PRESETS
    from keras_jepa.models.jepa.recipes import CONFIGS, PretrainConfig, config_from_official, get_config

    if isinstance(arch, PretrainConfig):
        return "pretrain", arch
    if isinstance(arch, dict) and ("meta" in arch or "model" in arch):
        return "pretrain", config_from_official(arch)  # an official training config
    if isinstance(arch, dict):
        fields = dict(arch)
        base = fields.pop("base", None)
        if base is not None:
            return "pretrain", get_config(base).replace(**fields)
        return "pretrain", PretrainConfig(**fields)
    if not isinstance(arch, str) or not arch:
        raise ValueError(f"arch must be a preset/config name or a JSON file; got {arch!r}.")
    if arch in PRESETS:
        entry = PRESETS[arch]
        if entry.get("pretrain_config"):
            return "pretrain", get_config(entry["pretrain_config"]).replace(
                **entry.get("overrides", {})
            )
        if entry.get("class") == "VisionTransformer" and "config" in entry:
            return "encoder", dict(entry["config"])
        raise ValueError(
            f"Preset {arch!r} ({entry.get('class')}) is not a model architecture; pass a "
            "backbone preset, an official model preset or a pretraining config."
        )
    if arch in CONFIGS:
        return "pretrain", get_config(arch)
    path = os.path.expanduser(arch)
    if os.path.isfile(path) and path.lower().endswith((".yaml", ".yml")):
        return "pretrain", config_from_official(path)
    if os.path.isfile(path):
        with open(path) as f:
            return resolve_arch(json.load(f))
    raise ValueError(
        f"Unknown arch {arch!r}: not a preset name, a pretraining config "
        f"({', '.join(sorted(CONFIGS))}), an official YAML config or a JSON file. List presets with "
        "`keras-jepa presets`."
    )


def build_model_from_arch(arch, num_mask_tokens=None, encoder_only=False):
    """Builds the (untrained) model of ``arch``: ``IJEPA``/``VJEPA``, or a
    ``VisionTransformer`` when ``encoder_only`` or ``arch`` describes an encoder only.

    ``num_mask_tokens`` overrides the video predictor's (the converter reads it from the
    checkpoint).
    """
    from keras_jepa.models.jepa import recipes as pretraining
    from keras_jepa.models import VisionTransformer

    kind, config = resolve_arch(arch)
    if kind == "encoder":
        return VisionTransformer(**config)
    if encoder_only:
        return pretraining.build_encoder(config)
    if num_mask_tokens is not None and config.kind == "video":
        config = config.replace(num_mask_tokens=int(num_mask_tokens))
    constant = config.ema_momentum[0] == config.ema_momentum[1]
    return pretraining.build_model(config, ema_steps=None if constant else 1)


# ---------------------------------------------------------------------------------------
# Reading sources
# ---------------------------------------------------------------------------------------


def _is_hf_state(state):
    return any("patch_embeddings" in k for k in state)


def _find_hf_files(path):
    """``(weights file, config.json or None)`` of a Hugging Face model folder or file."""
    if os.path.isdir(path):
        for name in ("model.safetensors", "pytorch_model.bin"):
            if os.path.isfile(os.path.join(path, name)):
                weights = os.path.join(path, name)
                break
        else:
            raise FileNotFoundError(
                f"{path!r} is a folder without model.safetensors or pytorch_model.bin."
            )
        folder = path
    else:
        weights, folder = path, os.path.dirname(path)
    config = os.path.join(folder, "config.json")
    return weights, config if os.path.isfile(config) else None


def _read_file(path):
    """``(state, hf_config or None, is_hf_folder)`` of a checkpoint file or HF folder."""
    from keras_jepa.backend.checkpoint_io import read_checkpoint

    path = os.path.expanduser(str(path))
    if os.path.isdir(path) or path.endswith(".safetensors"):
        weights, config_path = _find_hf_files(path)
        config = None
        if config_path:
            config = _read_hf_config(config_path)
        return read_checkpoint(weights), config, True
    return read_checkpoint(path), None, False


def _read_hf_config(path):
    """The dict of a Hugging Face ``config.json``; a ``ValueError`` naming the file when it
    is empty, not JSON, or not a JSON object."""
    from keras_jepa.presets.storage import read_json_object

    return read_json_object(path, "Hugging Face config", "Expected the config.json that "
                            "save_pretrained writes; copy it again.")


_STATE_DICT_HINT = (
    "expected a dict of tensors (state dict) or a dict with an 'encoder'/'target_encoder' "
    "entry (official checkpoint)"
)
_PROBE_HINT = (
    "expected a dict with a 'classifier' (V-JEPA) or 'classifiers' (V-JEPA 2) entry, or a "
    "probe state dict"
)


def _describe(checkpoint):
    if isinstance(checkpoint, (str, os.PathLike)):
        return f"The checkpoint {os.path.expanduser(str(checkpoint))!r}"
    return "The checkpoint dict"


def _require_dict(state, checkpoint, expected, where="at the top level"):
    """Raises a ``ValueError`` naming the source unless ``state`` is a dict with string
    keys."""
    if not isinstance(state, dict):
        kind = type(state).__name__
        if isinstance(state, (list, tuple)):
            kind = f"{kind} of {len(state)} items"
        raise ValueError(f"{_describe(checkpoint)} holds a {kind} {where}; {expected}.")
    bad = [k for k in state if not isinstance(k, str)]
    if bad:
        raise ValueError(
            f"{_describe(checkpoint)} has non-string keys {where} ({bad[:3]!r}); {expected}."
        )


def read_source(checkpoint):
    """Reads ``checkpoint`` (a path, a folder, or an already loaded dict).

    Returns ``(kind, parts, hf_config)``: ``kind`` is ``"official"``, ``"hf"`` or
    ``"encoder"``; ``parts`` maps ``encoder`` / ``target_encoder`` / ``predictor`` to
    official-format state dicts (prefixes kept; ``assign_*`` strip them).
    """
    hf_config = None
    if isinstance(checkpoint, (str, os.PathLike)):
        state, hf_config, _ = _read_file(checkpoint)
    elif isinstance(checkpoint, dict):
        state = checkpoint
    else:
        raise ValueError(
            f"checkpoint must be a file path, a folder or a dict; got {type(checkpoint)}."
        )
    _require_dict(state, checkpoint, _STATE_DICT_HINT)
    if any(k in state for k in PARTS):
        parts = {}
        for name in PARTS:
            if name in state:
                if not isinstance(state[name], dict):
                    raise ValueError(
                        f"{_describe(checkpoint)}: entry {name!r} is a "
                        f"{type(state[name]).__name__}, not a state dict (a dict of tensors)."
                    )
                parts[name] = state[name]
        return "official", parts, hf_config
    if "classifier" in state or "classifiers" in state:
        raise ValueError(
            f"{_describe(checkpoint)} is an attentive-probe checkpoint (key "
            "'classifier(s)'); load it with keras_jepa.applications.load_probe_checkpoint, "
            "or convert it with `keras-jepa convert FILE OUT --probe`."
        )
    tensors = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    if not tensors:
        raise ValueError(
            f"{_describe(checkpoint)} holds no tensors at the top level: expected an "
            "official checkpoint (keys encoder, target_encoder, predictor) or a state dict; "
            f"top-level keys: {sorted(state)[:10]}."
        )
    if _is_hf_state(tensors):
        parts = {"encoder": wp.hf_to_official_encoder(tensors)}
        predictor = wp.hf_to_official_predictor(tensors)
        if predictor:
            parts["predictor"] = predictor
        return "hf", parts, hf_config
    return "encoder", {"encoder": tensors}, hf_config


def hf_model_from_config(hf_config, encoder_only=False, num_mask_tokens=None):
    """The keras_jepa model of a Hugging Face ``config.json`` dict (``IJEPA`` for
    ``ijepa``, ``VJEPA`` with the V-JEPA 2 predictor for ``vjepa2``)."""
    from keras_jepa.models import IJEPA, VJEPA, VisionTransformer

    encoder = VisionTransformer(**wp.vit_config_from_hf(hf_config))
    if encoder_only:
        return encoder
    if hf_config.get("model_type") == "ijepa":
        return IJEPA(encoder, ema_steps=1)
    return VJEPA(
        encoder,
        predictor_dim=int(hf_config.get("pred_hidden_size", 384)),
        predictor_depth=int(hf_config.get("pred_num_hidden_layers", 12)),
        predictor_heads=int(hf_config.get("pred_num_attention_heads", 12)),
        num_mask_tokens=num_mask_tokens or int(hf_config.get("pred_num_mask_tokens", 10)),
        ema_momentum=(0.99925, 0.99925),
    )


def jepa_from_predictor_state(encoder, predictor_state, predictor_heads=None):
    """An ``IJEPA`` (image encoder) or ``VJEPA`` (video encoder) around ``encoder`` whose
    predictor has the size stored in an official predictor state dict: width, depth, MLP
    width and number of mask tokens come from the tensors; the heads, which tensors do not
    record, default to the official choice (the encoder's heads for I-JEPA and V-JEPA,
    12 for V-JEPA 2's RoPE predictor)."""
    from keras_jepa.models import IJEPA, VJEPA

    state = wp.strip_prefixes(predictor_state)
    if "predictor_embed.weight" not in state:
        raise ValueError("The predictor state dict has no 'predictor_embed.weight'.")
    width = int(np.shape(state["predictor_embed.weight"])[0])
    depth = len({k.split(".")[1] for k in state if k.startswith("predictor_blocks.")})
    fc1 = state.get("predictor_blocks.0.mlp.fc1.weight")
    if fc1 is not None and int(np.shape(fc1)[0]) != int(width * 4.0):
        raise ValueError(
            f"The predictor's MLP width {np.shape(fc1)[0]} is not 4 x {width}; build the "
            "model with a pretraining config instead (--arch CONFIG or YAML)."
        )
    common = dict(predictor_dim=width, predictor_depth=depth, predictor_heads=predictor_heads)
    if encoder.is_video:
        rope = encoder.position_embedding == "rope"
        return VJEPA(encoder, num_mask_tokens=max(wp.count_mask_tokens(state), 1),
                     ema_momentum=(0.99925, 0.99925) if rope else (0.998, 1.0),
                     ema_steps=None if rope else 1, **common)
    return IJEPA(encoder, ema_steps=1, **common)


# ---------------------------------------------------------------------------------------
# Loading into models
# ---------------------------------------------------------------------------------------


def load_checkpoint_weights(model, checkpoint, strict=True, allow_missing=False,
                            encoder="target"):
    """Loads an official / Hugging Face checkpoint into a built keras_jepa model.

    Args:
        model: an ``IJEPA``/``VJEPA`` (all parts are loaded) or a ``VisionTransformer``
            (the encoder chosen by ``encoder`` is loaded).
        checkpoint: a path, a Hugging Face folder, or a loaded dict.
        strict: unexpected keys are an error (``False``: skipped and reported).
        allow_missing: missing keys keep their current values instead of failing.
        encoder: ``"target"`` (the EMA encoder, which the official probes evaluate) or
            ``"context"`` (the ``encoder`` key, which torch.hub and Hugging Face load);
            only used for a ``VisionTransformer``, or when a file holds one encoder.

    Returns:
        ``{part: PortReport}``. When the source holds one encoder (Hugging Face, bare
        state dicts), both encoders of a JEPA model get it; a JEPA model loaded from a
        source without a predictor keeps its initial predictor unless ``allow_missing`` is
        False, in which case it fails.
    """
    from keras_jepa.models import VisionTransformer
    from keras_jepa.models.jepa.base import JEPA

    if encoder not in ENCODER_CHOICES:
        raise ValueError(f"encoder must be 'target' or 'context'; got {encoder!r}.")
    kind, parts, _ = read_source(checkpoint)
    chosen_key = "target_encoder" if encoder == "target" else "encoder"
    other_key = "encoder" if chosen_key == "target_encoder" else "target_encoder"
    chosen = parts.get(chosen_key, parts.get(other_key))
    reports = {}
    if isinstance(model, VisionTransformer):
        if chosen is None:
            raise ValueError("The checkpoint holds no encoder.")
        reports["encoder"] = wp.assign_encoder_weights(
            model, chosen, strict=strict, allow_missing=allow_missing
        )
        return reports
    if not isinstance(model, JEPA):
        raise TypeError(
            f"Expected an IJEPA/VJEPA or a VisionTransformer; got {type(model).__name__}."
        )
    context = parts.get("encoder", parts.get("target_encoder"))
    target = parts.get("target_encoder", parts.get("encoder"))
    if context is None:
        raise ValueError("The checkpoint holds no encoder.")
    if "predictor" not in parts and not allow_missing:
        raise ValueError(
            f"The checkpoint ({kind}) holds no predictor, so the full {type(model).__name__} "
            "cannot be loaded. Convert the encoder alone (encoder_only=True / "
            "--encoder-only), or pass allow_missing=True to keep a freshly initialised "
            "predictor."
        )
    # Check everything first (assign_* are all-or-nothing per part), then write.
    plans = [("encoder", model.encoder, context), ("target_encoder", model.target_encoder,
                                                   target)]
    for name, module, state in plans:
        _dry_run(wp._encoder_entries(module), state, strict, allow_missing, name,
                 drop=("pos_embed",) if module.position_embedding == "rope" else ())
    if "predictor" in parts:
        _check_predictor(model.predictor, parts["predictor"], strict, allow_missing)
    for name, module, state in plans:
        reports[name] = wp.assign_encoder_weights(
            module, state, strict=strict, allow_missing=allow_missing
        )
    if "predictor" in parts:
        reports["predictor"] = wp.assign_predictor_weights(
            model.predictor, parts["predictor"], strict=strict, allow_missing=allow_missing
        )
    model.feature_encoder = encoder
    return reports


class _Shape:
    """A stand-in variable carrying only a shape (for checking without writing)."""

    def __init__(self, shape, path):
        self.shape = tuple(shape)
        self.path = path


def _dry_run(entries, state, strict, allow_missing, what, drop=()):
    fake = {
        key: (_Shape(entry[0].shape, entry[0].path),) + tuple(entry[1:])
        for key, entry in entries.items()
    }
    # assign_weights checks everything before writing; with stand-ins it cannot write,
    # so stop it at the write step.
    try:
        wp.assign_weights(fake, state, strict=strict, allow_missing=allow_missing,
                          drop=drop, what=f"{what} state dict", _check_only=True)
    except ValueError as e:
        raise ValueError(f"[{what}] {e}") from e


def _check_predictor(predictor, state, strict, allow_missing):
    stripped = wp.strip_prefixes(state)
    count = wp.count_mask_tokens(stripped)
    if count and count != predictor.num_mask_tokens and "mask_token" not in stripped:
        raise ValueError(
            f"[predictor] The checkpoint has {count} mask tokens, the model's predictor "
            f"{predictor.num_mask_tokens}; build it with num_mask_tokens={count}."
        )
    key = "mask_token" if "mask_token" in stripped else (
        "mask_tokens" if count else None)
    drop = ("predictor_pos_embed",) if predictor.position_embedding == "rope" else ()
    _dry_run(wp.predictor_entries(predictor, key), stripped, strict, allow_missing,
             "predictor", drop=drop)


def export_official_state(model):
    """The model's weights as official-format numpy state dicts (no prefixes):
    ``{"encoder", "target_encoder", "predictor"}`` for a JEPA model, ``{"encoder"}`` for
    a ``VisionTransformer``. ``torch.save({k: {"module." + n: torch.from_numpy(a) ...}})``
    of it is a checkpoint the official code (and ``convert_checkpoint``) reads."""
    from keras_jepa.models import VisionTransformer

    if isinstance(model, VisionTransformer):
        return {"encoder": wp.export_encoder_state_dict(model)}
    return {
        "encoder": wp.export_encoder_state_dict(model.encoder),
        "target_encoder": wp.export_encoder_state_dict(model.target_encoder),
        "predictor": wp.export_state_dict(wp.predictor_entries(model.predictor)),
    }


# ---------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------



def report_and_save(model, reports, output_dir=None, verbose=True):
    """The end of every conversion: print the per-part reports, save ``model`` as a preset
    folder in ``output_dir`` (if given), return ``(model, reports)``."""
    if verbose:
        for name, report in reports.items():
            print(f"{name}: {report}")
    if output_dir:
        model.save_to_preset(output_dir)
        if verbose:
            print(f"saved preset to {output_dir}")
    return model, reports

def convert_checkpoint(checkpoint, output_dir=None, arch=None, encoder="target",
                       encoder_only=False, strict=True, allow_missing=False, verbose=True):
    """Converts a checkpoint into a keras_jepa model and (optionally) a preset folder.

    Args:
        checkpoint: official ``.pth.tar``/``.pt`` file, Hugging Face folder or
            ``.safetensors`` file (with ``config.json`` beside it), or a loaded dict.
        output_dir: where to save the preset (``save_to_preset`` layout); None: don't save.
        arch: the architecture (see the module docstring). Optional for Hugging Face
            sources with a ``config.json``.
        encoder: ``"target"`` or ``"context"``: the encoder a ``VisionTransformer``
            conversion keeps, and the features encoder of a full model.
        encoder_only: produce a ``VisionTransformer`` backbone instead of the full model.
        strict, allow_missing: see ``load_checkpoint_weights``.

    Returns:
        ``(model, reports)``.
    """
    kind, parts, hf_config = read_source(checkpoint)
    if kind == "encoder":
        encoder_only = True
    count = wp.count_mask_tokens(parts["predictor"]) if "predictor" in parts else None
    if arch is None:
        if hf_config is None:
            raise ValueError(
                "Pass arch= (--arch): an official preset name (e.g. vjepa2_vitl16_256), a "
                "pretraining config name, or a JSON file. Only Hugging Face folders carry "
                "their architecture (config.json)."
            )
        model = hf_model_from_config(hf_config, encoder_only, num_mask_tokens=count or None)
    elif "predictor" in parts and not encoder_only and resolve_arch(arch)[0] == "encoder":
        # An encoder architecture with a full checkpoint: the predictor's size is read
        # from its tensors.
        encoder_model = build_model_from_arch(arch)
        model = jepa_from_predictor_state(encoder_model, parts["predictor"])
    else:
        model = build_model_from_arch(arch, num_mask_tokens=count or None,
                                      encoder_only=encoder_only)
    allow = allow_missing or (kind == "hf" and "predictor" not in parts)
    reports = load_checkpoint_weights(model, dict(parts), strict=strict,
                                      allow_missing=allow, encoder=encoder)
    if kind == "hf" and "predictor" not in parts and not encoder_only and verbose:
        print("note: this Hugging Face model has no predictor; the predictor is freshly "
              "initialised (fine for feature extraction; train it before using surprise).")
    return report_and_save(model, reports, output_dir, verbose)


# ---------------------------------------------------------------------------------------
# Downloads and the converted-preset cache
# ---------------------------------------------------------------------------------------


def cache_root():
    """``$KERAS_HOME/keras_jepa`` (default ``~/.keras/keras_jepa``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "keras_jepa")


def checkpoint_path(entry):
    """Local path where the official file of a registry entry is (or will be) kept."""
    return os.path.join(cache_root(), "checkpoints", entry["file"])


class IncompleteDownloadError(OSError):
    """A download ended early or produced a file that does not load; nothing was kept."""


def _download_to(url, tmp, progress, verbose=True, chunk_size=1 << 20):
    """Streams ``url`` into ``tmp``, keeping ``progress["received"]`` (bytes written) and
    ``progress["expected"]`` (the server's ``Content-Length``, or None) up to date."""
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": "keras-jepa"})
    with urllib.request.urlopen(request, timeout=60) as response, open(tmp, "wb") as out:
        headers = getattr(response, "headers", None)
        length = headers.get("Content-Length") if headers is not None else None
        if length is not None and str(length).strip().isdigit():
            progress["expected"] = int(length)
        bar = None
        if verbose:
            import keras

            print(f"downloading {url}")
            bar = keras.utils.Progbar(progress["expected"], unit_name="byte")
        while True:
            chunk = response.read(chunk_size)
            if not chunk:
                break
            out.write(chunk)
            progress["received"] += len(chunk)
            if bar is not None:
                bar.update(progress["received"])


def _verify_download(tmp):
    """Raises ``ValueError`` (the cause) unless ``tmp`` is a complete checkpoint: a
    readable zip central directory (PyTorch), a consistent safetensors header, or an
    older-format pickle that loads (when torch is installed)."""
    from keras_jepa.backend.checkpoint_io import (
        can_read_pickles,
        checkpoint_format,
        read_checkpoint,
    )

    if checkpoint_format(tmp) == "torch_pickle":
        if not can_read_pickles():
            return  # cannot parse without torch: the Content-Length check stands alone
        read_checkpoint(tmp)


def download_checkpoint(name, entry, verbose=True):
    """Returns the local path of the entry's file, downloading it if absent.

    The download goes to a temporary file beside the destination, which is renamed into
    place only once it is complete: as many bytes as the server announced
    (``Content-Length``) and a file that loads (a readable zip central directory for
    PyTorch files, a consistent header for safetensors). A partial file is deleted, so
    an interrupted download is never converted or cached.

    Raises:
        OSError: the download failed (no network, ...); the message names the URL, the
            file and the local path where to put it by hand.
        IncompleteDownloadError (an ``OSError``): the download ended early or the file
            does not load; the message names the URL and the bytes received vs expected.
    """
    path = checkpoint_path(entry)
    if os.path.isfile(path):
        return path
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    url = entry["source"]
    # Same folder (so the final rename is atomic), same suffix (so readers know the type).
    tmp = os.path.join(folder, f".{os.getpid()}.partial.{entry['file']}")
    progress = {"received": 0, "expected": None}
    try:
        try:
            _download_to(url, tmp, progress, verbose=verbose)
        except Exception as e:  # network errors come in many types
            received, expected = progress["received"], progress["expected"]
            got = ""
            if received or expected is not None:
                got = (f" (received {received} of {expected} bytes" if expected is not None
                       else f" (received {received} bytes") + "; the partial file was deleted)"
            raise OSError(
                f"Could not download the checkpoint of preset {name!r}{got}.\n"
                f"  URL:  {url}\n"
                f"  file: {entry['file']}\n"
                f"  put it here to load offline: {path}\n"
                f"(download error: {type(e).__name__}: {str(e)[:200]})"
            ) from e
        received, expected = progress["received"], progress["expected"]
        if expected is not None and received != expected:
            raise IncompleteDownloadError(
                f"The download of {url} (preset {name!r}) is incomplete: received "
                f"{received} bytes, expected {expected} (the server's Content-Length). "
                "The partial file was deleted and nothing was cached; try again, or "
                f"download the file by hand and put it at {path}."
            )
        try:
            _verify_download(tmp)
        except ValueError as e:
            announced = f"expected {expected}" if expected is not None else (
                "the server announced no size")
            raise IncompleteDownloadError(
                f"The download of {url} (preset {name!r}) does not load: received "
                f"{received} bytes ({announced}). The partial file was deleted and nothing "
                f"was cached; try again, or download the file by hand and put it at "
                f"{path}. (cause: {e})"
            ) from e
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def ensure_converted(name, entry, verbose=True, convert=None):
    """The folder of the converted preset ``name``; downloads and converts on first use.

    ``convert(path, folder, arch=name, verbose=...)`` writes the preset folder from the
    downloaded file (default: :func:`convert_checkpoint`; other formats pass theirs)."""
    from keras_jepa.presets import storage as preset_utils

    if not entry.get("supported", True) or entry.get("class") in (None,):
        raise ValueError(f"Preset {name!r} cannot be loaded yet: {entry['description']}")
    folder = os.path.join(cache_root(), "presets", name)
    if os.path.isfile(os.path.join(folder, preset_utils.CONFIG_FILE)) and os.path.isfile(
        os.path.join(folder, preset_utils.WEIGHTS_FILE)
    ):
        return folder
    path = download_checkpoint(name, entry, verbose=verbose)
    from keras_jepa.backend.checkpoint_io import checkpoint_format

    try:
        checkpoint_format(path)  # a file put there by hand, or cached before a crash
    except ValueError as e:
        raise ValueError(
            f"{e} It is the cached checkpoint of preset {name!r}: delete {path} and load "
            "the preset again to download it again."
        ) from e
    if verbose:
        print(f"converting {path} -> {folder}")
    import shutil

    tmp = folder + ".partial"
    if os.path.isdir(tmp):
        shutil.rmtree(tmp)  # left by an interrupted conversion
    try:
        (convert or convert_checkpoint)(path, tmp, arch=name, verbose=verbose)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


# ---------------------------------------------------------------------------------------
# Attentive-probe checkpoints
# ---------------------------------------------------------------------------------------


def _probe_state(checkpoint, index):
    """``(official probe state dict, variant, layer-norm eps or None)`` of a probe source."""
    if isinstance(checkpoint, (str, os.PathLike)):
        state, hf_config, is_hf = _read_file(checkpoint)
        if is_hf:
            eps = (hf_config or {}).get("layer_norm_eps")
            return wp.hf_to_official_probe(state), "vjepa2", eps
    elif isinstance(checkpoint, dict):
        state = checkpoint
    else:
        raise ValueError(f"checkpoint must be a path or a dict; got {type(checkpoint)}.")
    _require_dict(state, checkpoint, _PROBE_HINT)
    if "classifiers" in state:  # V-JEPA 2: one head per (lr, wd) of the probe grid
        heads = state["classifiers"]
        if not isinstance(heads, (list, tuple)):
            raise ValueError(
                f"{_describe(checkpoint)}: entry 'classifiers' is a {type(heads).__name__}; "
                "expected a list of probe state dicts (V-JEPA 2 evals file)."
            )
        if not 0 <= index < len(heads):
            raise ValueError(f"index={index}, but the file holds {len(heads)} classifiers.")
        _require_dict(heads[index], checkpoint, "expected a probe state dict",
                      where=f"in 'classifiers'[{index}]")
        return heads[index], "vjepa2", None
    if "classifier" in state:
        _require_dict(state["classifier"], checkpoint, "expected a probe state dict",
                      where="in 'classifier'")
        return state["classifier"], "vjepa", None
    if any(k.endswith("query_tokens") for k in state):
        if any("pooler.cross_attention_layer" in k for k in state):
            return wp.hf_to_official_probe(state), "vjepa2", None
        stripped = wp.strip_prefixes(state, ("module.",))
        proj = any(".xattn.proj." in k for k in stripped)
        return state, "vjepa" if proj else "vjepa2", None
    raise ValueError(
        f"{_describe(checkpoint)} is not an attentive-probe checkpoint: expected the key "
        "'classifier' (V-JEPA), 'classifiers' (V-JEPA 2) or a probe state dict; got keys "
        f"{sorted(state)[:10]}."
    )


def load_probe_checkpoint(checkpoint, num_heads=16, index=0, variant=None, strict=True):
    """An ``AttentiveClassifier`` with the weights of an official probe file.

    Args:
        checkpoint: a V-JEPA ``*-probe.pth.tar`` (key ``classifier``), a V-JEPA 2
            ``evals/*.pt`` (key ``classifiers``, a list: one head per point of the
            lr/wd grid), a Hugging Face ``VJEPA2ForVideoClassification`` folder, a loaded
            dict, or a built-in probe preset name (downloaded on first use).
        num_heads: attention heads (16 in every release: V-JEPA 1 uses the encoder's, 16
            for ViT-L and ViT-H; V-JEPA 2 uses 16). Not recoverable from the weights.
        index: which classifier of a V-JEPA 2 list (the official demo uses 0).
        variant: ``"vjepa"`` / ``"vjepa2"``; read from the file by default.
        strict: unexpected keys are an error.

    Width, classes and depth are read from the tensors. V-JEPA 1's unused
    ``xattn.proj`` is dropped.
    """
    from keras_jepa.presets.registry import PRESETS
    from keras_jepa.checkpoints.probes import load_official_probe
    from keras_jepa.layers.attentive_pooler import AttentiveClassifier

    if isinstance(checkpoint, str) and checkpoint in PRESETS:
        entry = PRESETS[checkpoint]
        if entry.get("class") != "AttentiveClassifier":
            raise ValueError(f"Preset {checkpoint!r} is not a probe.")
        if not entry.get("supported", True):
            raise ValueError(f"Preset {checkpoint!r} cannot be loaded yet: "
                             f"{entry['description']}")
        checkpoint = download_checkpoint(checkpoint, entry)
    state, found_variant, eps = _probe_state(checkpoint, index)
    variant = variant or found_variant
    stripped = wp.strip_prefixes(state, ("module.",))
    for key in ("pooler.query_tokens", "linear.weight"):
        if key not in stripped:
            raise ValueError(f"The probe state dict has no {key!r}.")
    embed_dim = int(np.shape(stripped["pooler.query_tokens"])[-1])
    num_classes = int(np.shape(stripped["linear.weight"])[0])
    blocks = {k.split(".")[2] for k in stripped if k.startswith("pooler.blocks.")}
    probe = AttentiveClassifier(
        num_classes=num_classes, embed_dim=embed_dim, num_heads=num_heads, variant=variant,
        depth=len(blocks) + 1,
        **({"layer_norm_epsilon": float(eps)} if eps is not None else {}),
    )
    load_official_probe(probe, state, strict=strict)
    return probe
