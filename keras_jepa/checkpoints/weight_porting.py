"""Porting encoder weights from official JEPA checkpoints and Hugging Face models.

One assignment path serves every source. A state dict is first brought to the **official
key names** of the reference code (``patch_embed.proj.weight``, ``pos_embed``,
``blocks.{i}.norm1.weight``, ``blocks.{i}.attn.qkv.weight``, ..., ``norm.bias``), then
``assign_encoder_weights`` writes it into a ``VisionTransformer``:

* official ``.pth.tar`` / ``.pt`` encoders: strip the DDP/wrapper prefixes (``module.``,
  ``backbone.``; done automatically) and assign;
* Hugging Face ``IJepaModel`` / ``VJEPA2Model`` state dicts (and their safetensors):
  ``hf_to_official_encoder`` renames them first (``query``/``key``/``value`` are fused back
  into one ``qkv`` in q | k | v order).

Layouts: torch ``Linear`` ``[out, in]`` -> Keras ``Dense`` ``[in, out]``; ``Conv2d``
``[D, C, p, p]`` -> ``(p, p, C, D)``; ``Conv3d`` ``[D, C, t, p, p]`` -> ``(t, p, p, C, D)``.
Every shape is checked before anything is written, so a failed call leaves the model as it
was. RoPE models (V-JEPA 2) have no position table: a ``pos_embed`` in their checkpoint is
dropped (and listed as such), as the official hub loader does.

This module needs only numpy: values may be numpy arrays or anything ``np.asarray`` reads
(torch tensors are detached and moved to CPU through their own methods; torch is never
imported here).

Example:

>>> import numpy as np
>>> from keras_jepa.models.vit.vision_transformer import VisionTransformer
>>> model = VisionTransformer(image_size=32, patch_size=16, hidden_dim=24, depth=1,
...                           num_heads=2)
>>> shapes = official_encoder_shapes(model)
>>> state = {"module." + k: np.zeros(s, "float32") for k, s in shapes.items()}
>>> report = assign_encoder_weights(model, state)
>>> len(report.loaded) == len(shapes), report.missing, report.unexpected
(True, [], [])
"""

import dataclasses
import re

import numpy as np

OFFICIAL_PREFIXES = ("module.", "backbone.")

# Hugging Face top-level wrappers (classification heads keep the encoder under these).
HF_PREFIXES = ("ijepa.", "vjepa2.", "model.")

# Hugging Face modules that are not part of the encoder; left out by hf_to_official_encoder.
HF_NON_ENCODER_PREFIXES = ("predictor.", "pooler.", "classifier.")


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def to_numpy(value):
    """Returns ``value`` as a numpy array (torch tensors, bfloat16 included, jax/tf arrays).

    bfloat16 has no numpy dtype and becomes float32.
    """
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor
        value = value.detach().cpu()
        if "bfloat16" in str(value.dtype):
            value = value.float()
        return value.numpy()
    array = np.asarray(value)
    if array.dtype.name == "bfloat16":
        array = array.astype(np.float32)
    return array


def strip_prefixes(state_dict, prefixes=OFFICIAL_PREFIXES):
    """Removes leading wrapper prefixes from every key (repeatedly, in any order).

    ``module.backbone.blocks.0.norm1.weight`` -> ``blocks.0.norm1.weight``. Raises a
    ``ValueError`` if two keys become the same.
    """
    out = {}
    for key, value in state_dict.items():
        new = key
        changed = True
        while changed:
            changed = False
            for prefix in prefixes:
                if new.startswith(prefix):
                    new = new[len(prefix) :]
                    changed = True
        if new in out:
            raise ValueError(
                f"Keys collide after stripping the prefixes {prefixes}: {key!r} gives "
                f"{new!r}, which is already present."
            )
        out[new] = value
    return out


def _to_official_layout(array, layout):
    """Keras layout -> official (torch) layout, used for shapes and export."""
    if layout == "linear":
        return np.transpose(array)
    if layout == "conv":
        rank = array.ndim  # (p,p,C,D) or (t,p,p,C,D) -> (D,C,p,p) or (D,C,t,p,p)
        return np.transpose(array, (rank - 1, rank - 2) + tuple(range(rank - 2)))
    return array


def _to_keras_layout(array, layout):
    """Official (torch) layout -> Keras layout."""
    if layout == "linear":
        if array.ndim != 2:
            return None
        return np.transpose(array)
    if layout == "conv":
        if array.ndim not in (4, 5):
            return None
        rank = array.ndim  # (D,C,[t,]p,p) -> ([t,]p,p,C,D)
        return np.transpose(array, tuple(range(2, rank)) + (1, 0))
    return array


def _official_shape(shape, layout):
    shape = tuple(int(s) for s in shape)
    if layout == "linear":
        return shape[::-1]
    if layout == "conv":
        return (shape[-1], shape[-2]) + shape[:-2]
    return shape


# ---------------------------------------------------------------------------------------
# The official key map of a VisionTransformer
# ---------------------------------------------------------------------------------------


def _encoder_entries(model):
    """``{official key: (keras variable, layout)}`` for a built ``VisionTransformer``."""
    for attr in ("patch_embed", "blocks", "norm", "position_embedding"):
        if not hasattr(model, attr):
            raise TypeError(
                f"Expected a keras_jepa VisionTransformer; got {type(model).__name__} "
                f"(no attribute {attr!r})."
            )
    entries = {}

    def norm(prefix, layer):
        if getattr(layer, "gamma", None) is not None:
            entries[f"{prefix}.weight"] = (layer.gamma, "vector")
        if getattr(layer, "beta", None) is not None:
            entries[f"{prefix}.bias"] = (layer.beta, "vector")

    proj = model.patch_embed.proj
    entries["patch_embed.proj.weight"] = (proj.kernel, "conv")
    if getattr(proj, "bias", None) is not None:
        entries["patch_embed.proj.bias"] = (proj.bias, "vector")
    if model.pos_embed is not None:
        entries["pos_embed"] = (model.pos_embed.table, "table")
    for i, block in enumerate(model.blocks):
        _block_entries(entries, f"blocks.{i}", block)
    if model.norm is not None:
        norm("norm", model.norm)
    return entries


def official_encoder_shapes(model):
    """``{official key: shape in the official (torch) layout}`` that ``model`` expects.

    Useful to check a checkpoint before loading it, or to build a synthetic one.
    """
    return {
        key: _official_shape(variable.shape, layout)
        for key, (variable, layout) in _encoder_entries(model).items()
    }


def export_encoder_state_dict(model):
    """The model's encoder weights as an official-format numpy state dict (no prefix).

    The inverse of ``assign_encoder_weights``: ``assign_encoder_weights(other,
    export_encoder_state_dict(model))`` copies ``model`` into ``other``.
    """
    import keras

    return {
        key: np.ascontiguousarray(
            _to_official_layout(keras.ops.convert_to_numpy(variable), layout)
        )
        for key, (variable, layout) in _encoder_entries(model).items()
    }


# ---------------------------------------------------------------------------------------
# Assignment
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class PortReport:
    """What ``assign_encoder_weights`` did, by official key name.

    Attributes:
        loaded: keys written into the model.
        missing: keys the model needs that the state dict lacks.
        unexpected: keys in the state dict that the model has no place for.
        dropped: keys ignored on purpose (``pos_embed`` of a RoPE model).
    """

    loaded: list
    missing: list
    unexpected: list
    dropped: list

    def __str__(self):
        lines = [f"loaded {len(self.loaded)} tensors"]
        for name in ("missing", "unexpected", "dropped"):
            keys = getattr(self, name)
            if keys:
                lines.append(f"{name} ({len(keys)}): {', '.join(keys)}")
        return "; ".join(lines)


def _listing(keys, limit=12):
    shown = ", ".join(keys[:limit])
    return shown if len(keys) <= limit else f"{shown}, ... ({len(keys) - limit} more)"


def assign_weights(
    entries, state_dict, strict=True, allow_missing=False, strip=OFFICIAL_PREFIXES, drop=(),
    what="state dict", _check_only=False,
):
    """Writes an official-format state dict into Keras variables, all or nothing.

    The one assignment routine behind every converter (encoders, predictors, probes).

    Args:
        entries: ``{official key: (variable, layout)}`` or ``{official key: (variable,
            layout, index)}``; ``layout`` is ``"linear"`` (torch ``[out, in]``),
            ``"conv"``, ``"vector"`` or ``"table"`` (copied as is). With ``index`` the key
            fills ``variable[index]`` (a ``ParameterList`` entry such as V-JEPA's
            ``mask_tokens.1`` stored in one stacked variable).
        state_dict: mapping from official key names to arrays (numpy, torch, ...).
        strict: when True (default), keys with no place in ``entries`` are an error; with
            False they are skipped and listed in ``report.unexpected``.
        allow_missing: when False (default), keys of ``entries`` absent from the state dict
            are an error; with True those weights keep their current values.
        strip: wrapper prefixes removed from every key first (``()`` keeps keys as they
            are).
        drop: keys (or ``re`` patterns matched in full) ignored on purpose, e.g. the stored
            sin-cos table of a RoPE model; they are listed in ``report.dropped``.
        what: name used in error messages.

    Returns:
        A ``PortReport``.

    Raises:
        ValueError: on a shape mismatch (naming the key, the checkpoint's shape and the
            model's, both in the official layout), on missing keys unless
            ``allow_missing``, on unexpected keys when ``strict``, on non-float values.
            Nothing is written unless every check passes.
    """
    state = strip_prefixes(state_dict, strip) if strip else dict(state_dict)
    dropped = []
    patterns = [re.compile(p) for p in drop]
    for key in list(state):
        if key not in entries and any(p.fullmatch(key) for p in patterns):
            state.pop(key)
            dropped.append(key)
    missing = [key for key in entries if key not in state]
    unexpected = sorted(key for key in state if key not in entries)
    problems = []
    if missing and not allow_missing:
        problems.append(
            f"missing keys ({len(missing)}): {_listing(missing)}. The checkpoint does not "
            "hold these weights of the model; check the architecture (depth, heads, "
            "qkv_bias, position_embedding, number of mask tokens, output_dim) or pass "
            "allow_missing=True to keep their current values"
        )
    if unexpected and strict:
        problems.append(
            f"unexpected keys ({len(unexpected)}): {_listing(unexpected)}. The model has "
            "no place for these; check the architecture, or pass strict=False to skip them"
        )
    writes = {}  # variable id -> [variable, full value or None, [(index, value)]]
    loaded = []
    for key, entry in entries.items():
        if key not in state:
            continue
        variable, layout = entry[0], entry[1]
        index = entry[2] if len(entry) > 2 else None
        source = to_numpy(state[key])
        target_shape = variable.shape if index is None else variable.shape[1:]
        expected = _official_shape(target_shape, layout)
        value = _to_keras_layout(source, layout)
        if value is None or tuple(source.shape) != expected:
            raise ValueError(
                f"Shape mismatch for {key!r}: the checkpoint has shape "
                f"{tuple(source.shape)}, the model expects {expected} (official layout; "
                f"Keras variable {variable.path!r} of shape {tuple(variable.shape)}"
                f"{'' if index is None else f', entry {index}'}). Build the model with the "
                "checkpoint's architecture (width, depth, heads, MLP ratio, patch/tubelet "
                "size, image size and frames for position tables, number of classes)."
            )
        if not np.issubdtype(source.dtype, np.floating):
            raise ValueError(
                f"{key!r} holds dtype {source.dtype}; expected floating point weights."
            )
        slot = writes.setdefault(id(variable), [variable, None, []])
        if index is None:
            slot[1] = value
        else:
            slot[2].append((index, value))
        loaded.append(key)
    if problems:
        raise ValueError(f"Cannot load the {what}: " + "; ".join(problems) + ".")
    if _check_only:
        return None
    import keras

    for variable, full, parts in writes.values():
        if full is None:
            full = np.array(keras.ops.convert_to_numpy(variable), dtype=np.float32)
        # A copy: a torch tensor's numpy view must not end up shared with the variable.
        full = np.array(full, dtype=np.float32, order="C", copy=True)
        for index, value in parts:
            full[index] = value
        variable.assign(full)
    return PortReport(loaded=loaded, missing=missing, unexpected=unexpected, dropped=dropped)


def assign_encoder_weights(
    model, state_dict, strict=True, allow_missing=False, strip=OFFICIAL_PREFIXES
):
    """Writes an official-format encoder state dict into a ``VisionTransformer``.

    Args:
        model: a built ``keras_jepa`` ``VisionTransformer``.
        state_dict: mapping from official key names to arrays (numpy, torch, ...). The
            wrapper prefixes in ``strip`` (``module.``, ``backbone.``) are removed first.
            Use ``hf_to_official_encoder`` for Hugging Face state dicts.
        strict: when True (default), keys the model has no place for are an error; with
            False they are skipped and listed in ``report.unexpected``.
        allow_missing: when False (default), keys the model needs but the state dict lacks
            are an error; with True those weights keep their current values.
        strip: prefixes to strip (``()`` to keep keys as they are).

    Returns:
        A ``PortReport`` (``loaded``, ``missing``, ``unexpected``, ``dropped``). A RoPE
        model drops a stored ``pos_embed`` (the released V-JEPA 2 files keep an unused
        one).

    Raises:
        ValueError: see ``assign_weights``. Nothing is written unless every check passes.
    """
    drop = ("pos_embed",) if model.position_embedding == "rope" else ()
    return assign_weights(
        _encoder_entries(model), state_dict, strict=strict, allow_missing=allow_missing,
        strip=strip, drop=drop, what="encoder state dict",
    )


# ---------------------------------------------------------------------------------------
# Hugging Face transformers -> official names
# ---------------------------------------------------------------------------------------

# Per-block module names: Hugging Face (transformers 4.x checkpoints, 5.x modules, V-JEPA 2)
# -> official. q/k/v are handled separately.
_HF_BLOCK_MODULES = {
    "layernorm_before": "norm1",
    "norm1": "norm1",
    "layernorm_after": "norm2",
    "norm2": "norm2",
    "attention.output.dense": "attn.proj",  # I-JEPA, transformers 4.x checkpoints
    "attention.o_proj": "attn.proj",  # I-JEPA, transformers 5.x modules
    "attention.proj": "attn.proj",  # V-JEPA 2
    "attention.attention.proj": "attn.proj",  # V-JEPA 2, early conversions
    "intermediate.dense": "mlp.fc1",
    "mlp.fc1": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "mlp.fc2": "mlp.fc2",
}
_HF_QKV_MODULES = {}
for _wrap in ("attention.attention.", "attention."):
    for _name, _slot in (("query", 0), ("key", 1), ("value", 2)):
        _HF_QKV_MODULES[_wrap + _name] = _slot
for _name, _slot in (("q_proj", 0), ("k_proj", 1), ("v_proj", 2)):
    _HF_QKV_MODULES["attention." + _name] = _slot

_HF_TOP_MODULES = {
    "embeddings.patch_embeddings.projection": "patch_embed.proj",  # I-JEPA
    "encoder.embeddings.patch_embeddings.proj": "patch_embed.proj",  # V-JEPA 2
    "layernorm": "norm",  # I-JEPA
    "encoder.layernorm": "norm",  # V-JEPA 2
}
_HF_POS_KEYS = ("embeddings.position_embeddings", "encoder.embeddings.position_embeddings")
_HF_BLOCK_RE = re.compile(r"^(?:encoder\.layer|layers)\.(\d+)\.(.+)\.(weight|bias)$")


def hf_to_official_encoder(state_dict):
    """Renames a Hugging Face I-JEPA / V-JEPA 2 state dict to official encoder keys.

    Accepts ``IJepaModel`` (the transformers 4.x checkpoint names ``encoder.layer.{i}
    .attention.attention.query`` ... ``intermediate.dense`` / ``output.dense`` and the 5.x
    module names ``layers.{i}.attention.q_proj`` ... ``mlp.fc1``), ``VJEPA2Model``
    (``encoder.layer.{i}.attention.query`` ... ``norm1``), and their classification
    wrappers (``ijepa.`` / ``vjepa2.`` prefixes). ``query``, ``key`` and ``value`` are
    concatenated along the output axis into ``attn.qkv`` in q | k | v order (the official
    fused layout, heads contiguous inside each). The predictor, pooler and classifier of
    those models are left out; any other unrecognised key is kept under its own name, so
    ``assign_encoder_weights`` reports it as unexpected.

    Returns:
        A new ``{official key: numpy array}`` dict.

    Raises:
        ValueError: a block has only some of ``query``/``key``/``value``.
    """
    state = strip_prefixes(state_dict, HF_PREFIXES)
    out = {}
    qkv = {}
    for key, value in state.items():
        if key.startswith(HF_NON_ENCODER_PREFIXES):
            continue
        if key in _HF_POS_KEYS:
            out["pos_embed"] = to_numpy(value)
            continue
        match = _HF_BLOCK_RE.match(key)
        if match:
            index, module, kind = match.groups()
            if module in _HF_QKV_MODULES:
                qkv.setdefault((int(index), kind), [None, None, None])
                qkv[(int(index), kind)][_HF_QKV_MODULES[module]] = (key, value)
                continue
            if module in _HF_BLOCK_MODULES:
                out[f"blocks.{index}.{_HF_BLOCK_MODULES[module]}.{kind}"] = to_numpy(value)
                continue
        module, _, kind = key.rpartition(".")
        if module in _HF_TOP_MODULES and kind in ("weight", "bias"):
            out[f"{_HF_TOP_MODULES[module]}.{kind}"] = to_numpy(value)
            continue
        out[key] = to_numpy(value)
    for (index, kind), parts in sorted(qkv.items()):
        absent = [name for name, part in zip(("query", "key", "value"), parts) if part is None]
        if absent:
            present = [part[0] for part in parts if part is not None]
            raise ValueError(
                f"Block {index} {kind}: found {present} but not the {absent} projection(s); "
                "query, key and value are fused into one qkv and must all be present."
            )
        out[f"blocks.{index}.attn.qkv.{kind}"] = np.concatenate(
            [to_numpy(part[1]) for part in parts], axis=0
        )
    return out


# ---------------------------------------------------------------------------------------
# Hugging Face config -> VisionTransformer config
# ---------------------------------------------------------------------------------------


def _config_get(config, name, default=None):
    if isinstance(config, dict):
        return config.get(name, default)
    return getattr(config, name, default)


def _mlp_ratio(hidden, intermediate):
    """A float ratio with ``int(hidden * ratio) == intermediate`` (the Keras MLP width)."""
    ratio = intermediate / hidden
    while int(hidden * ratio) < intermediate:
        ratio = float(np.nextafter(ratio, np.inf))
    return ratio


def _single(value, name):
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ValueError(f"{name} {value} is not square; keras_jepa uses square patches.")
        return int(value[0])
    return int(value)


def vit_config_from_hf(config):
    """``VisionTransformer`` keyword arguments equal to a Hugging Face encoder config.

    Args:
        config: an ``IJepaConfig`` / ``VJEPA2Config`` object, or the ``config.json`` dict
            (``model_type`` ``"ijepa"`` or ``"vjepa2"``).

    I-JEPA gives an image model with a stored sin-cos table (``position_embedding=
    "sincos"``, ``sincos_order="wh"``: the released tables put the column index first;
    the table itself is overwritten by the checkpoint's ``pos_embed``). V-JEPA 2 gives a
    video model (``num_frames=frames_per_clip``, ``image_size=crop_size``) with
    ``position_embedding="rope"`` and ``rope_tiled=True`` (the frequency layout of the
    released weights, which transformers keeps). ``layer_norm_epsilon`` is taken from the
    config: the released checkpoints use 1e-6 (``IJepaConfig``'s own default is 1e-12).
    """
    model_type = _config_get(config, "model_type")
    act = _config_get(config, "hidden_act", "gelu")
    if act != "gelu":
        raise ValueError(
            f"hidden_act={act!r} is not supported; keras_jepa's MLP uses the exact (erf) "
            "GELU, Hugging Face's 'gelu'."
        )
    hidden = int(_config_get(config, "hidden_size"))
    common = dict(
        hidden_dim=hidden,
        depth=int(_config_get(config, "num_hidden_layers")),
        num_heads=int(_config_get(config, "num_attention_heads")),
        qkv_bias=bool(_config_get(config, "qkv_bias", True)),
        layer_norm_epsilon=float(_config_get(config, "layer_norm_eps")),
        patch_size=_single(_config_get(config, "patch_size"), "patch_size"),
    )
    if model_type == "ijepa":
        image_size = _config_get(config, "image_size")
        if isinstance(image_size, (list, tuple)):
            image_size = [int(s) for s in image_size]
        else:
            image_size = int(image_size)
        return dict(
            image_size=image_size,
            num_frames=None,
            num_channels=int(_config_get(config, "num_channels", 3)),
            mlp_ratio=_mlp_ratio(hidden, int(_config_get(config, "intermediate_size"))),
            position_embedding="sincos",
            sincos_order="wh",
            **common,
        )
    if model_type == "vjepa2":
        mlp_ratio = float(_config_get(config, "mlp_ratio", 4.0))
        return dict(
            image_size=int(_config_get(config, "crop_size")),
            num_frames=int(_config_get(config, "frames_per_clip")),
            tubelet_size=int(_config_get(config, "tubelet_size", 2)),
            num_channels=int(_config_get(config, "in_chans", 3)),
            mlp_ratio=_mlp_ratio(hidden, int(hidden * mlp_ratio)),
            position_embedding="rope",
            rope_tiled=True,
            drop_path_rate=float(_config_get(config, "drop_path_rate", 0.0)),
            **common,
        )
    raise ValueError(
        f"Unsupported Hugging Face model_type {model_type!r}; expected 'ijepa' or 'vjepa2'."
    )


def vision_transformer_from_hf(config, state_dict=None, strict=True, **overrides):
    """Builds the ``VisionTransformer`` of a Hugging Face config and, if given, loads a
    Hugging Face state dict into it (through ``hf_to_official_encoder``).

    ``overrides`` replace fields of ``vit_config_from_hf(config)`` (e.g. ``dtype``).
    Returns ``(model, report)``; ``report`` is None without a state dict.
    """
    from keras_jepa.models.vit.vision_transformer import VisionTransformer

    model = VisionTransformer(**{**vit_config_from_hf(config), **overrides})
    report = None
    if state_dict is not None:
        report = assign_encoder_weights(
            model, hf_to_official_encoder(state_dict), strict=strict, strip=()
        )
    return model, report


# ---------------------------------------------------------------------------------------
# Predictors
# ---------------------------------------------------------------------------------------


def _block_entries(entries, prefix, block):
    """Official keys of one pre-norm ViT block (``norm1``, ``attn.qkv``, ``attn.proj``,
    ``norm2``, ``mlp.fc1``/``fc2``[/``fc3``])."""
    for name, layer in (("norm1", block.norm1), ("norm2", block.norm2)):
        if getattr(layer, "gamma", None) is not None:
            entries[f"{prefix}.{name}.weight"] = (layer.gamma, "vector")
        if getattr(layer, "beta", None) is not None:
            entries[f"{prefix}.{name}.bias"] = (layer.beta, "vector")
    dense_layers = [("attn.qkv", block.attn.qkv), ("attn.proj", block.attn.proj)]
    for name in ("fc1", "fc2", "fc3"):
        layer = getattr(block.mlp, name, None)
        if layer is not None:
            dense_layers.append((f"mlp.{name}", layer))
    if getattr(block, "shortcut", None) is not None:
        dense_layers.append(("shortcut", block.shortcut))
    for name, layer in dense_layers:
        entries[f"{prefix}.{name}.weight"] = (layer.kernel, "linear")
        if getattr(layer, "bias", None) is not None:
            entries[f"{prefix}.{name}.bias"] = (layer.bias, "vector")


def predictor_entries(predictor, mask_token_key=None):
    """``{official key: (variable, layout[, index])}`` of a built ``JEPAPredictor``.

    Args:
        predictor: a built ``keras_jepa`` ``JEPAPredictor``.
        mask_token_key: how the checkpoint names the mask tokens: ``"mask_token"`` (I-JEPA:
            one ``[1, 1, d]`` parameter) or ``"mask_tokens"`` (V-JEPA / V-JEPA 2: a
            ``ParameterList``, keys ``mask_tokens.{i}``). Default: ``"mask_token"`` for a
            single-token sin-cos predictor, else ``"mask_tokens"``.
    """
    for attr in ("predictor_embed", "mask_tokens", "predictor_blocks", "predictor_proj"):
        if not hasattr(predictor, attr):
            raise TypeError(
                f"Expected a built keras_jepa JEPAPredictor; got {type(predictor).__name__} "
                f"(no attribute {attr!r})."
            )
    if mask_token_key is None:
        single = predictor.num_mask_tokens == 1 and predictor.position_embedding == "sincos"
        mask_token_key = "mask_token" if single else "mask_tokens"
    if mask_token_key not in ("mask_token", "mask_tokens"):
        raise ValueError(
            f"mask_token_key must be 'mask_token' or 'mask_tokens'; got {mask_token_key!r}."
        )
    entries = {}
    embed = predictor.predictor_embed
    entries["predictor_embed.weight"] = (embed.kernel, "linear")
    entries["predictor_embed.bias"] = (embed.bias, "vector")
    if mask_token_key == "mask_token":
        if predictor.num_mask_tokens != 1:
            raise ValueError(
                "mask_token_key='mask_token' (I-JEPA) needs a predictor with one mask "
                f"token; this one has {predictor.num_mask_tokens}."
            )
        entries["mask_token"] = (predictor.mask_tokens, "table", 0)
    else:
        for i in range(predictor.num_mask_tokens):
            entries[f"mask_tokens.{i}"] = (predictor.mask_tokens, "table", i)
    if predictor.predictor_pos_embed is not None:
        entries["predictor_pos_embed"] = (predictor.predictor_pos_embed.table, "table")
    for i, block in enumerate(predictor.predictor_blocks):
        _block_entries(entries, f"predictor_blocks.{i}", block)
    norm = predictor.predictor_norm
    entries["predictor_norm.weight"] = (norm.gamma, "vector")
    entries["predictor_norm.bias"] = (norm.beta, "vector")
    entries["predictor_proj.weight"] = (predictor.predictor_proj.kernel, "linear")
    entries["predictor_proj.bias"] = (predictor.predictor_proj.bias, "vector")
    return entries


def official_shapes(entries):
    """``{official key: shape in the official (torch) layout}`` of an entries dict."""
    out = {}
    for key, entry in entries.items():
        variable, layout = entry[0], entry[1]
        shape = variable.shape if len(entry) == 2 else variable.shape[1:]
        out[key] = _official_shape(shape, layout)
    return out


def export_state_dict(entries):
    """The values of an entries dict as an official-format numpy state dict (no prefix);
    the inverse of ``assign_weights``."""
    import keras

    out = {}
    for key, entry in entries.items():
        variable, layout = entry[0], entry[1]
        value = keras.ops.convert_to_numpy(variable)
        if len(entry) > 2:
            value = value[entry[2]]
        out[key] = np.ascontiguousarray(_to_official_layout(value, layout))
    return out


def assign_predictor_weights(
    predictor, state_dict, strict=True, allow_missing=False, strip=OFFICIAL_PREFIXES,
    mask_token_key=None,
):
    """Writes an official-format predictor state dict into a ``JEPAPredictor``.

    Keys are those of the official ``predictor`` modules (``predictor_embed``,
    ``mask_token`` or ``mask_tokens.{i}``, ``predictor_pos_embed``,
    ``predictor_blocks.{i}.*``, ``predictor_norm``, ``predictor_proj``), after stripping
    ``module.``/``backbone.``. A RoPE predictor drops a stored ``predictor_pos_embed`` (the
    released V-JEPA 2 files may hold one), as the official hub loader does. Without
    ``mask_token_key`` the name is read from the state dict. See ``assign_weights`` for
    ``strict``, ``allow_missing`` and the errors.
    """
    state = strip_prefixes(state_dict, strip) if strip else dict(state_dict)
    if mask_token_key is None:
        if "mask_token" in state:
            mask_token_key = "mask_token"
        elif any(k.startswith("mask_tokens.") for k in state):
            mask_token_key = "mask_tokens"
    drop = ("predictor_pos_embed",) if predictor.position_embedding == "rope" else ()
    return assign_weights(
        predictor_entries(predictor, mask_token_key), state, strict=strict,
        allow_missing=allow_missing, strip=(), drop=drop, what="predictor state dict",
    )


def count_mask_tokens(state_dict, strip=OFFICIAL_PREFIXES):
    """Number of mask tokens stored in an official predictor state dict (0 if none)."""
    state = strip_prefixes(state_dict, strip) if strip else state_dict
    if "mask_token" in state:
        return 1
    ids = [int(k.split(".")[1]) for k in state if re.fullmatch(r"mask_tokens\.\d+", k)]
    return max(ids) + 1 if ids else 0


# ---------------------------------------------------------------------------------------
# Hugging Face predictor and pooler -> official names
# ---------------------------------------------------------------------------------------


def _fuse(parts, key, what):
    absent = [n for n, part in zip(("query", "key", "value"), parts) if part is None]
    present = [n for n, part in zip(("query", "key", "value"), parts) if part is not None]
    if absent and present:
        raise ValueError(f"{what} {key}: found {present} but not {absent}.")
    return np.concatenate([to_numpy(p) for p in parts if p is not None], axis=0)


def hf_to_official_predictor(state_dict):
    """Renames the predictor of a Hugging Face ``VJEPA2Model`` state dict to the official
    predictor keys (``predictor.embeddings.predictor_embeddings`` -> ``predictor_embed``,
    the stacked ``mask_tokens [n, 1, 1, d]`` -> ``mask_tokens.{i}``, ``predictor.layer.{i}``
    -> ``predictor_blocks.{i}`` with q/k/v fused into ``attn.qkv``, ``layernorm`` ->
    ``predictor_norm``, ``proj`` -> ``predictor_proj``). Returns ``{}`` when the state
    dict has no predictor; keys outside the predictor are ignored.
    """
    state = strip_prefixes(state_dict, HF_PREFIXES)
    blocks = {}
    out = {}
    for key, value in state.items():
        if not key.startswith("predictor."):
            continue
        key = key[len("predictor."):]
        if key == "embeddings.mask_tokens":
            tokens = to_numpy(value)
            for i in range(tokens.shape[0]):
                out[f"mask_tokens.{i}"] = tokens[i]
        elif key.startswith("embeddings.predictor_embeddings."):
            out["predictor_embed." + key.rsplit(".", 1)[1]] = to_numpy(value)
        elif key.startswith("layernorm."):
            out["predictor_norm." + key.rsplit(".", 1)[1]] = to_numpy(value)
        elif key.startswith("proj."):
            out["predictor_proj." + key.rsplit(".", 1)[1]] = to_numpy(value)
        elif key.startswith("layer."):
            blocks["encoder." + key] = value  # reuse the encoder block renaming
        else:
            out["predictor." + key] = to_numpy(value)
    for key, value in hf_to_official_encoder(blocks).items():
        out[key.replace("blocks.", "predictor_blocks.", 1)] = value
    return out


def hf_to_official_probe(state_dict):
    """Renames a Hugging Face ``VJEPA2ForVideoClassification`` pooler and classifier to the
    official V-JEPA 2 probe keys (``pooler.query_tokens``,
    ``pooler.cross_attention_block.{norm1, xattn.q, xattn.kv, norm2, mlp.*}``,
    ``pooler.blocks.{i}.{norm1, attn.qkv, attn.proj, norm2, mlp.*}``, ``linear.*``).
    ``k_proj``/``v_proj`` are fused into ``xattn.kv`` (k | v) and q/k/v into ``attn.qkv``.
    """
    state = strip_prefixes(state_dict, HF_PREFIXES)
    out = {}
    fused = {}
    renames = {"layer_norm1": "norm1", "layer_norm2": "norm2", "mlp.fc1": "mlp.fc1",
               "mlp.fc2": "mlp.fc2", "cross_attn.q_proj": "xattn.q",
               "self_attn.out_proj": "attn.proj"}
    for key, value in state.items():
        if key == "pooler.query_tokens":
            out[key] = to_numpy(value)
            continue
        if key.startswith("classifier."):
            out["linear." + key.rsplit(".", 1)[1]] = to_numpy(value)
            continue
        match = re.fullmatch(
            r"pooler\.(cross_attention_layer|self_attention_layers\.(\d+))\.(.+)\.(weight|bias)",
            key,
        )
        if not match:
            continue
        _, index, module, kind = match.groups()
        prefix = ("pooler.cross_attention_block" if index is None
                  else f"pooler.blocks.{index}")
        if module in renames:
            out[f"{prefix}.{renames[module]}.{kind}"] = to_numpy(value)
        elif module in ("cross_attn.k_proj", "cross_attn.v_proj"):
            slots = fused.setdefault((f"{prefix}.xattn.kv.{kind}"), [None, None])
            slots[0 if module.endswith("k_proj") else 1] = value
        elif module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"):
            slots = fused.setdefault((f"{prefix}.attn.qkv.{kind}"), [None, None, None])
            slots["qkv".index(module[-6])] = value
        else:
            out[f"{prefix}.{module}.{kind}"] = to_numpy(value)
    for key, parts in fused.items():
        out[key] = _fuse(parts, key, "Probe")
    return out
