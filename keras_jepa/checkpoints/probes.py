"""The official attentive probes' state dicts: the key map of an ``AttentiveClassifier``
(``keras_jepa.layers.attentive_pooler``), loading and export.

:func:`attentive_probe_entries` maps every official key (``pooler.query_tokens``,
``pooler.cross_attention_block.xattn.kv.weight``, ``pooler.blocks.{i}.attn.qkv.weight``,
``linear.bias``...) to its Keras variable, so :func:`load_official_probe` and
:func:`export_official_probe` are thin wrappers of the one assignment routine,
``keras_jepa.checkpoints.weight_porting.assign_weights``.
"""

import numpy as np

from keras_jepa.checkpoints.weight_porting import _block_entries, assign_weights, export_state_dict
from keras_jepa.evaluation.probes import ProbeGrid
from keras_jepa.layers.attentive_pooler import VJEPA1_UNUSED_KEYS, AttentiveClassifier


def attentive_probe_entries(classifier):
    """``{official key (no prefix): (Keras variable, layout)}`` of an ``AttentiveClassifier``.

    Example:

    >>> probe = AttentiveClassifier(num_classes=5, embed_dim=16, num_heads=2)
    >>> len(attentive_probe_entries(probe))  # query, xattn, mlp, norms, linear
    15

    Layouts as in ``keras_jepa.checkpoints.weight_porting.assign_weights``: ``"linear"`` for
    Dense kernels (torch ``[out, in]``), ``"vector"`` for biases and norm parameters,
    ``"table"`` for ``pooler.query_tokens`` (``[1, 1, D]``, copied as is).
    """
    if not isinstance(classifier, AttentiveClassifier):
        raise TypeError(
            f"Expected an AttentiveClassifier; got {type(classifier).__name__}.")
    entries = {"pooler.query_tokens": (classifier.query_tokens, "table")}

    def dense(prefix, layer):
        entries[f"{prefix}.weight"] = (layer.kernel, "linear")
        if layer.bias is not None:
            entries[f"{prefix}.bias"] = (layer.bias, "vector")

    def norm(prefix, layer):
        entries[f"{prefix}.weight"] = (layer.gamma, "vector")
        entries[f"{prefix}.bias"] = (layer.beta, "vector")

    cross = classifier.cross_attention_block
    prefix = "pooler.cross_attention_block"
    norm(f"{prefix}.norm1", cross.norm1)
    dense(f"{prefix}.xattn.q", cross.xattn.q)
    dense(f"{prefix}.xattn.kv", cross.xattn.kv)
    norm(f"{prefix}.norm2", cross.norm2)
    dense(f"{prefix}.mlp.fc1", cross.mlp.fc1)
    dense(f"{prefix}.mlp.fc2", cross.mlp.fc2)
    for i, block in enumerate(classifier.blocks):
        _block_entries(entries, f"pooler.blocks.{i}", block)
    dense("linear", classifier.linear)
    return entries


def load_official_probe(classifier, state_dict, strict=True, allow_missing=False):
    """Writes an official probe state dict into an ``AttentiveClassifier``, all or nothing.

    Args:
        classifier: an ``AttentiveClassifier`` of the checkpoint's architecture (variant,
            width, heads, depth, classes).
        state_dict: ``{key: array}`` with the official names, with or without the DDP
            ``module.`` prefix (V-JEPA 1 files: ``checkpoint["classifier"]``; V-JEPA 2:
            ``checkpoint["classifiers"][i]``). Values may be numpy arrays or torch tensors.
        strict: keys with no place in the classifier are an error (else listed in
            ``report.unexpected``). V-JEPA 1's unused ``xattn.proj`` is always dropped for
            ``variant="vjepa"`` and listed in ``report.dropped``.
        allow_missing: keep the current values of weights the state dict lacks.

    Returns:
        A ``PortReport`` (``loaded``, ``missing``, ``unexpected``, ``dropped``).

    Raises:
        ValueError: a missing key, an unexpected key (``strict``) or a shape mismatch,
            naming the key (and both shapes); nothing is written then.

    Example:

    >>> probe = AttentiveClassifier(num_classes=3, embed_dim=8, num_heads=2)
    >>> state = {"module." + k: v for k, v in export_official_probe(probe).items()}
    >>> state["module.pooler.cross_attention_block.xattn.proj.weight"] = np.zeros((8, 8))
    >>> report = load_official_probe(probe, state)
    >>> len(report.loaded), report.dropped
    (15, ['pooler.cross_attention_block.xattn.proj.weight'])
    """
    drop = VJEPA1_UNUSED_KEYS if classifier.variant == "vjepa" else ()
    return assign_weights(
        attentive_probe_entries(classifier), state_dict, strict=strict,
        allow_missing=allow_missing, strip=("module.",), drop=drop, what="probe state dict")


def load_official_probe_grid(grid, state_dicts, strict=True, allow_missing=False):
    """Writes a V-JEPA 2 probe file's list of heads (``checkpoint["classifiers"]``, one per
    point of its lr / wd grid) into a :class:`~keras_jepa.evaluation.probes.ProbeGrid`, head
    ``k`` into ``grid.probes[k]`` (see :func:`load_official_probe`). Returns the reports.

    Example:

    >>> grid = ProbeGrid(3, 8, num_probes=2, num_heads=2, variant="vjepa2", depth=1)
    >>> heads = [export_official_probe(probe) for probe in grid.probes]
    >>> [len(r.loaded) for r in load_official_probe_grid(grid, heads)]
    [15, 15]
    """
    state_dicts = list(state_dicts)
    if len(state_dicts) != grid.num_probes:
        raise ValueError(
            f"{len(state_dicts)} probe state dicts for a grid of {grid.num_probes} probes.")
    return [load_official_probe(probe, state, strict=strict, allow_missing=allow_missing)
            for probe, state in zip(grid.probes, state_dicts)]


def export_official_probe(classifier):
    """The classifier's weights as an official-format numpy state dict (no ``module.``).

    The inverse of :func:`load_official_probe`: Dense kernels are transposed to torch's
    ``[out, in]``. (V-JEPA 1's unused ``xattn.proj`` is not produced.)
    """
    return {key: value.astype(np.float32)
            for key, value in export_state_dict(attentive_probe_entries(classifier)).items()}
