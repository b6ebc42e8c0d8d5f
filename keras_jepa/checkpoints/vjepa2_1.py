"""Conversion of the official V-JEPA 2.1 checkpoints (``vjepa2_1_*.pt``).

A released file is a dict holding the encoder under ``ema_encoder`` (the distilled ViT-B
and ViT-L) or ``target_encoder`` (ViT-g and ViT-G), and ``predictor``; keys carry the
``module.`` / ``backbone.`` wrapper prefixes, which are stripped. Official key names:

* encoder: ``patch_embed.proj.*`` (tubelet 2), ``patch_embed_img.proj.*`` (tubelet 1),
  ``img_mod_embed``, ``video_mod_embed``, ``blocks.{i}.{norm1, attn.qkv, attn.proj, norm2,
  mlp.fc1, mlp.fc2}.*``, ``norms_block.{k}.*`` (no ``norm``, no position table);
* predictor: ``predictor_embed.*`` (one level) or ``predictor_embed.{0,2}.*`` (four),
  ``mask_tokens.{i}``, ``img_mod_embed``, ``video_mod_embed``, ``predictor_blocks.{i}.*``,
  ``predictor_norm.*``, ``predictor_proj.*``, ``predictor_proj_context.*``.

Loading is strict by default, as the official hub loads these files: every key must find
its place and every weight must be present, with matching shapes, before anything is
written.

Example (an official-format encoder state dict written with numpy):

>>> import numpy as np
>>> from keras_jepa.models.vit.vision_transformer import VisionTransformer
>>> enc = VisionTransformer(image_size=16, patch_size=8, num_frames=2, hidden_dim=24,
...                         depth=2, num_heads=2, position_embedding="rope",
...                         rope_tiled=False, img_temporal_dim_size=1,
...                         modality_embedding=True, hierarchical_layers=[0, 1])
>>> state = {"module.backbone." + k: np.zeros(s, "float32")
...          for k, s in wp.official_shapes(encoder_entries(enc)).items()}
>>> report = assign_encoder_weights(enc, state)
>>> report.missing, report.unexpected
([], [])
"""

import os

from keras_jepa.checkpoints import converters
from keras_jepa.checkpoints import weight_porting as wp

ENCODER_KEYS = ("ema_encoder", "target_encoder", "encoder")


# ---------------------------------------------------------------------------------------
# Official key maps
# ---------------------------------------------------------------------------------------


def _norm_entries(entries, prefix, layer):
    entries[f"{prefix}.weight"] = (layer.gamma, "vector")
    entries[f"{prefix}.bias"] = (layer.beta, "vector")


def _dense_entries(entries, prefix, layer):
    entries[f"{prefix}.weight"] = (layer.kernel, "linear")
    if getattr(layer, "bias", None) is not None:
        entries[f"{prefix}.bias"] = (layer.bias, "vector")


def encoder_entries(model):
    """``{official key: (variable, layout)}`` of a V-JEPA 2.1 ``VisionTransformer``
    (also works without the 2.1 options: then the keys are those of V-JEPA 2)."""
    if not hasattr(model, "norms_block"):
        raise TypeError(f"Expected a keras_jepa VisionTransformer; got {type(model).__name__}.")
    entries = {}
    for name in ("patch_embed", "patch_embed_img"):
        embed = getattr(model, name)
        if embed is not None:
            entries[f"{name}.proj.weight"] = (embed.proj.kernel, "conv")
            if getattr(embed.proj, "bias", None) is not None:
                entries[f"{name}.proj.bias"] = (embed.proj.bias, "vector")
    for name in ("img_mod_embed", "video_mod_embed"):
        if getattr(model, name) is not None:
            entries[name] = (getattr(model, name), "table")
    if model.pos_embed is not None:
        entries["pos_embed"] = (model.pos_embed.table, "table")
    for i, block in enumerate(model.blocks):
        wp._block_entries(entries, f"blocks.{i}", block)
    for k, norm in enumerate(model.norms_block):
        _norm_entries(entries, f"norms_block.{k}", norm)
    if model.norm is not None:
        _norm_entries(entries, "norm", model.norm)
    return entries


def predictor_entries(predictor):
    """``{official key: (variable, layout[, index])}`` of a ``VJEPA2_1Predictor``."""
    if not hasattr(predictor, "predictor_embed_hidden"):
        raise TypeError(
            f"Expected a built keras_jepa VJEPA2_1Predictor; got {type(predictor).__name__}."
        )
    entries = {}
    if predictor.predictor_embed_hidden is None:
        _dense_entries(entries, "predictor_embed", predictor.predictor_embed)
    else:
        _dense_entries(entries, "predictor_embed.0", predictor.predictor_embed_hidden)
        _dense_entries(entries, "predictor_embed.2", predictor.predictor_embed)
    for i in range(predictor.num_mask_tokens):
        entries[f"mask_tokens.{i}"] = (predictor.mask_tokens, "table", i)
    for name in ("img_mod_embed", "video_mod_embed"):
        if getattr(predictor, name) is not None:
            entries[name] = (getattr(predictor, name), "table")
    for i, block in enumerate(predictor.predictor_blocks):
        wp._block_entries(entries, f"predictor_blocks.{i}", block)
    _norm_entries(entries, "predictor_norm", predictor.predictor_norm)
    _dense_entries(entries, "predictor_proj", predictor.predictor_proj)
    if predictor.predictor_proj_context is not None:
        _dense_entries(entries, "predictor_proj_context", predictor.predictor_proj_context)
    return entries


def assign_encoder_weights(model, state_dict, strict=True, allow_missing=False):
    """Writes an official V-JEPA 2.1 encoder state dict into a ``VisionTransformer``
    (prefixes stripped; all or nothing; see ``weight_porting.assign_weights``)."""
    return wp.assign_weights(encoder_entries(model), state_dict, strict=strict,
                             allow_missing=allow_missing, what="V-JEPA 2.1 encoder state dict")


def assign_predictor_weights(predictor, state_dict, strict=True, allow_missing=False):
    """Writes an official V-JEPA 2.1 predictor state dict into a ``VJEPA2_1Predictor``."""
    return wp.assign_weights(predictor_entries(predictor), state_dict, strict=strict,
                             allow_missing=allow_missing,
                             what="V-JEPA 2.1 predictor state dict")


def export_official_state(model, encoder_key="target_encoder"):
    """A ``VJEPA2_1`` model as an official-format checkpoint dict (no prefixes): the
    target encoder under ``encoder_key``, the context encoder under ``encoder`` and the
    predictor under ``predictor``."""
    out = {
        encoder_key: wp.export_state_dict(encoder_entries(model.target_encoder)),
        "predictor": wp.export_state_dict(predictor_entries(model.predictor)),
    }
    if encoder_key != "encoder":
        out["encoder"] = wp.export_state_dict(encoder_entries(model.encoder))
    return out


# ---------------------------------------------------------------------------------------
# Files and models
# ---------------------------------------------------------------------------------------


def read_checkpoint_parts(checkpoint):
    """``{part: state dict}`` of a V-JEPA 2.1 file (path) or loaded dict; parts among
    ``ema_encoder``, ``target_encoder``, ``encoder`` and ``predictor``."""
    if isinstance(checkpoint, (str, os.PathLike)):
        from keras_jepa.backend.checkpoint_io import read_checkpoint

        state = read_checkpoint(os.path.expanduser(str(checkpoint)))
    elif isinstance(checkpoint, dict):
        state = checkpoint
    else:
        raise ValueError(
            f"checkpoint must be a file path or a dict; got {type(checkpoint).__name__}."
        )
    parts = {k: state[k] for k in ENCODER_KEYS + ("predictor",) if isinstance(
        state.get(k), dict)}
    if not any(k in parts for k in ENCODER_KEYS):
        raise ValueError(
            "Not a V-JEPA 2.1 checkpoint: expected an 'ema_encoder', 'target_encoder' or "
            f"'encoder' entry; top-level keys: {sorted(state)[:10]}."
        )
    return parts


def load_vjepa2_1_weights(model, checkpoint, encoder_key=None, strict=True,
                          allow_missing=False):
    """Loads an official V-JEPA 2.1 checkpoint into a ``VJEPA2_1`` model or a
    ``VisionTransformer``.

    Args:
        model: a ``VJEPA2_1`` (encoders and predictor) or a ``VisionTransformer``.
        checkpoint: a ``.pt`` path or a loaded dict.
        encoder_key: the entry holding the encoder; default: the first present of
            ``ema_encoder``, ``target_encoder``, ``encoder``. For a full model it fills
            the target encoder, and the context encoder too unless the file also holds
            ``encoder``.
        strict, allow_missing: see ``weight_porting.assign_weights``.

    Returns:
        ``{part: PortReport}``.
    """
    parts = read_checkpoint_parts(checkpoint)
    if encoder_key is None:
        encoder_key = next(k for k in ENCODER_KEYS if k in parts)
    if encoder_key not in parts:
        raise ValueError(
            f"The checkpoint has no {encoder_key!r} entry; it holds {sorted(parts)}."
        )
    common = dict(strict=strict, allow_missing=allow_missing)
    if not hasattr(model, "predictor"):
        return {"encoder": assign_encoder_weights(model, parts[encoder_key], **common)}
    # Check everything before writing anything.
    context_state = parts.get("encoder", parts[encoder_key])
    if "predictor" not in parts and not allow_missing:
        raise ValueError("The checkpoint has no 'predictor' entry.")
    wp.assign_weights(encoder_entries(model.target_encoder), parts[encoder_key],
                      _check_only=True, **common)
    wp.assign_weights(encoder_entries(model.encoder), context_state, _check_only=True,
                      **common)
    if "predictor" in parts:
        wp.assign_weights(predictor_entries(model.predictor), parts["predictor"],
                          _check_only=True, **common)
    reports = {
        "target_encoder": assign_encoder_weights(model.target_encoder, parts[encoder_key],
                                                 **common),
        "encoder": assign_encoder_weights(model.encoder, context_state, **common),
    }
    if "predictor" in parts:
        reports["predictor"] = assign_predictor_weights(model.predictor, parts["predictor"],
                                                        **common)
    return reports


def build_vjepa2_1_model(entry, **overrides):
    """The (untrained) ``VJEPA2_1`` model of a preset entry (``presets_2_1``)."""
    from keras_jepa.models.jepa.predictor_2_1 import VJEPA2_1Predictor
    from keras_jepa.models.jepa.vjepa2_1 import VJEPA2_1
    from keras_jepa.models.vit.vision_transformer import VisionTransformer

    encoder = VisionTransformer(**entry["encoder_config"], name="encoder")
    predictor = VJEPA2_1Predictor(**entry["predictor_config"], name="predictor")
    options = dict(ema_momentum=(0.99925, 0.99925), predict_all=True)
    options.update(overrides)
    return VJEPA2_1(encoder, predictor=predictor, **options)


def convert_vjepa2_1_checkpoint(checkpoint, output_dir=None, arch=None, encoder_key=None,
                                strict=True, verbose=True):
    """Converts a V-JEPA 2.1 file into a ``VJEPA2_1`` model (and a preset folder).

    ``arch`` is a preset name of ``presets_2_1`` or a preset-style entry dict (with
    ``encoder_config`` and ``predictor_config``). Returns ``(model, reports)``.
    """
    from keras_jepa.presets.registry import PRESETS

    entry = PRESETS.get(arch) if isinstance(arch, str) else arch
    if not isinstance(entry, dict) or "encoder_config" not in entry:
        raise ValueError(
            f"arch must be a V-JEPA 2.1 preset name (e.g. vjepa2_1_vitl16_384) or an entry "
            f"dict with encoder_config and predictor_config; got {arch!r}."
        )
    model = build_vjepa2_1_model(entry)
    key = encoder_key or entry.get("encoder_key")
    reports = load_vjepa2_1_weights(model, checkpoint, encoder_key=key, strict=strict)
    return converters.report_and_save(model, reports, output_dir, verbose)


def is_vjepa2_1_entry(entry):
    return isinstance(entry, dict) and entry.get("family") == "vjepa2_1"
