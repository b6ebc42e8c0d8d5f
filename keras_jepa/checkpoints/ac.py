"""Conversion of V-JEPA 2-AC checkpoints (``vjepa2-ac-vitg.pt``) into ``VJEPA2AC`` models
and presets.

An AC file is a dict with an ``encoder`` state dict (the frozen V-JEPA 2 ViT-g, which the
official hub loads), a ``predictor`` state dict (``VisionTransformerPredictorAC``:
``predictor_embed``, ``action_encoder``, ``state_encoder``, ``extrinsics_encoder``,
``predictor_blocks.{i}.*``, ``predictor_norm``, ``predictor_proj``; no mask tokens, no
position table) and possibly ``target_encoder`` and optimizer state (ignored). Keys may carry
``module.`` / ``backbone.`` prefixes. The encoder goes through the V-JEPA 2 encoder
converter (``weight_porting.assign_encoder_weights``: its stored ``pos_embed`` is dropped,
RoPE needs none); the predictor is checked and written all or nothing, strictly by default
(the hub loads it with ``strict=True``).

A built-in AC preset (an entry with an ``"ac"`` block, see ``keras_jepa.models.ac.presets``)
is converted on first use by ``keras_jepa.checkpoints.convert_release`` with
:func:`convert_ac_checkpoint`.

Example (a checkpoint in the official layout, written here with numpy):

>>> import numpy as np
>>> from keras_jepa.models.ac.model import VJEPA2AC
>>> from keras_jepa.models.vit.vision_transformer import VisionTransformer
>>> enc = VisionTransformer(image_size=16, patch_size=8, num_frames=2, hidden_dim=24,
...                         depth=1, num_heads=2, position_embedding="rope")
>>> model = VJEPA2AC(enc, predictor_kwargs=dict(hidden_dim=24, depth=1, num_heads=2,
...                                            action_dim=3, max_steps=4))
>>> ckpt = {part: {"module.backbone." + k: v for k, v in sd.items()}
...         for part, sd in export_ac_state(model).items()}
>>> reports = load_ac_checkpoint(model, ckpt)
>>> sorted(reports), reports["predictor"].missing
(['encoder', 'predictor'], [])
"""


import numpy as np

from keras_jepa.checkpoints import converters
from keras_jepa.checkpoints import weight_porting as wp

AC_PREDICTOR_KEYS = ("action_encoder.weight", "state_encoder.weight")


def ac_predictor_entries(predictor):
    """``{official key: (variable, layout)}`` of a built ``ACPredictor``."""
    for attr in ("predictor_embed", "action_encoder", "state_encoder", "predictor_blocks"):
        if not hasattr(predictor, attr):
            raise TypeError(
                f"Expected a built keras_jepa ACPredictor; got {type(predictor).__name__} "
                f"(no attribute {attr!r}).")
    entries = {}
    for name in ("predictor_embed", "action_encoder", "state_encoder", "extrinsics_encoder",
                 "predictor_proj"):
        layer = getattr(predictor, name)
        entries[f"{name}.weight"] = (layer.kernel, "linear")
        entries[f"{name}.bias"] = (layer.bias, "vector")
    for i, block in enumerate(predictor.predictor_blocks):
        wp._block_entries(entries, f"predictor_blocks.{i}", block)
    norm = predictor.predictor_norm
    entries["predictor_norm.weight"] = (norm.gamma, "vector")
    entries["predictor_norm.bias"] = (norm.beta, "vector")
    return entries


def is_ac_predictor_state(state_dict):
    """Whether an (official) predictor state dict is an action-conditioned one."""
    state = wp.strip_prefixes(state_dict)
    return all(key in state for key in AC_PREDICTOR_KEYS)


def ac_predictor_config(state_dict, num_heads=16):
    """``ACPredictor`` size fields read from an official AC predictor state dict (width,
    depth, MLP ratio, encoder width, action width); ``num_heads``, which the tensors do not
    record, defaults to the release's 16."""
    state = wp.strip_prefixes(state_dict)
    if not is_ac_predictor_state(state):
        raise ValueError(
            "Not an action-conditioned predictor state dict: it has no "
            f"{' / '.join(AC_PREDICTOR_KEYS)} (keys: {sorted(state)[:8]}).")
    width, embed_dim = (int(s) for s in np.shape(state["predictor_embed.weight"]))
    depth = len({k.split(".")[1] for k in state if k.startswith("predictor_blocks.")})
    fc1 = state.get("predictor_blocks.0.mlp.fc1.weight")
    ratio = float(np.shape(fc1)[0]) / width if fc1 is not None else 4.0
    return dict(embed_dim=embed_dim, hidden_dim=width, depth=depth, num_heads=num_heads,
                mlp_ratio=ratio, action_dim=int(np.shape(state["action_encoder.weight"])[1]))


def export_ac_state(model):
    """A ``VJEPA2AC``'s weights as official-format numpy state dicts (no prefixes):
    ``{"encoder", "predictor"}``; the inverse of ``load_ac_checkpoint``."""
    return {
        "encoder": wp.export_encoder_state_dict(model.encoder),
        "predictor": wp.export_state_dict(ac_predictor_entries(model.predictor)),
    }


def load_ac_checkpoint(model, checkpoint, strict=True, allow_missing=False,
                       encoder_key="encoder"):
    """Loads an official V-JEPA 2-AC checkpoint (path or loaded dict) into a ``VJEPA2AC``.

    Args:
        model: a built ``VJEPA2AC``.
        checkpoint: ``vjepa2-ac-vitg.pt`` (or any file / dict in its layout).
        strict: unexpected keys are an error (``False``: skipped and reported).
        allow_missing: missing keys keep their current values instead of failing.
        encoder_key: ``"encoder"`` (what the official hub loads) or ``"target_encoder"``;
            the other one is used when the file holds only one.

    Returns:
        ``{"encoder": PortReport, "predictor": PortReport}``. Both parts are checked
        before either is written.
    """
    if encoder_key not in ("encoder", "target_encoder"):
        raise ValueError(f"encoder_key must be 'encoder' or 'target_encoder'; got "
                         f"{encoder_key!r}.")
    _, parts, _ = converters.read_source(checkpoint)
    other = "target_encoder" if encoder_key == "encoder" else "encoder"
    encoder_state = parts.get(encoder_key, parts.get(other))
    if encoder_state is None:
        raise ValueError("The checkpoint holds no encoder ('encoder' or 'target_encoder').")
    if "predictor" not in parts:
        raise ValueError("The checkpoint holds no 'predictor': it is not a V-JEPA 2-AC file "
                         "(convert an encoder alone with `keras-jepa convert --encoder-only`).")
    predictor_state = wp.strip_prefixes(parts["predictor"])
    if not is_ac_predictor_state(predictor_state):
        raise ValueError(
            "The checkpoint's predictor is not action-conditioned (no action_encoder / "
            "state_encoder): convert it as a V-JEPA 2 checkpoint instead.")
    entries = ac_predictor_entries(model.predictor)
    drop = ("pos_embed",) if model.encoder.position_embedding == "rope" else ()
    converters._dry_run(wp._encoder_entries(model.encoder), encoder_state, strict,
                        allow_missing, "encoder", drop=drop)
    converters._dry_run(entries, predictor_state, strict, allow_missing, "predictor")
    return {
        "encoder": wp.assign_encoder_weights(model.encoder, encoder_state, strict=strict,
                                             allow_missing=allow_missing),
        "predictor": wp.assign_weights(entries, predictor_state, strict=strict,
                                       allow_missing=allow_missing, strip=(),
                                       what="AC predictor state dict"),
    }


def build_ac_model(arch):
    """The (untrained) ``VJEPA2AC`` of ``arch``: a preset name whose registry entry has an
    ``"ac"`` block, or such a block itself (``{"encoder": VisionTransformer kwargs,
    "predictor": ACPredictor kwargs}``)."""
    from keras_jepa.models.ac.model import ACPredictor, VJEPA2AC
    from keras_jepa.models.vit.vision_transformer import VisionTransformer
    from keras_jepa.presets.registry import PRESETS

    spec = arch
    if isinstance(arch, str):
        entry = PRESETS.get(arch)
        if entry is None or "ac" not in entry:
            names = sorted(n for n, e in PRESETS.items() if "ac" in e)
            raise ValueError(f"{arch!r} is not a V-JEPA 2-AC preset; choose from {names}.")
        spec = entry["ac"]
    if not isinstance(spec, dict) or "encoder" not in spec or "predictor" not in spec:
        raise ValueError("arch must be an AC preset name or a dict with 'encoder' and "
                         f"'predictor' configs; got {arch!r}.")
    encoder = VisionTransformer(**spec["encoder"])
    predictor = ACPredictor(name="predictor", **spec["predictor"])
    return VJEPA2AC(encoder, predictor, **spec.get("model", {}))


def is_ac_arch(arch):
    """Whether ``arch`` (a ``--arch`` value) names a V-JEPA 2-AC preset."""
    from keras_jepa.presets.registry import PRESETS

    return isinstance(arch, str) and "ac" in PRESETS.get(arch, {})


def convert_ac_checkpoint(checkpoint, output_dir=None, arch="vjepa2_ac_vitg16_256",
                          strict=True, allow_missing=False, encoder_key="encoder",
                          verbose=True):
    """Converts an official V-JEPA 2-AC checkpoint into a ``VJEPA2AC`` and (optionally) a
    preset folder. Returns ``(model, reports)``; see ``load_ac_checkpoint``."""
    model = build_ac_model(arch)
    reports = load_ac_checkpoint(model, checkpoint, strict=strict,
                                 allow_missing=allow_missing, encoder_key=encoder_key)
    return converters.report_and_save(model, reports, output_dir, verbose)
