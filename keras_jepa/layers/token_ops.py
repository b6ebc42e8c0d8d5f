"""Token selection by index tensors: the official ``apply_masks`` and its helpers.

Everything is a batched gather (``take_along_axis``) with static shapes; there is no Python
loop over batch elements.
"""

import numpy as np
from keras import ops

from keras_jepa.backend.concrete import concrete_value


def gather_tokens(tokens, indices):
    """Selects ``tokens[b, indices[b, k]]``: ``(B, N, D)`` and ``(B, K)`` -> ``(B, K, D)``.

    ``indices`` may also be ``(K,)`` (the same selection for every batch element).

    Example:

    >>> import numpy as np
    >>> x = np.arange(12, dtype="float32").reshape(1, 6, 2)
    >>> import keras
    >>> keras.ops.convert_to_numpy(gather_tokens(x, np.array([[4, 1]]))).tolist()
    [[[8.0, 9.0], [2.0, 3.0]]]
    """
    indices = ops.convert_to_tensor(indices)
    if len(indices.shape) == 1:
        indices = ops.broadcast_to(indices[None], (ops.shape(tokens)[0], indices.shape[0]))
    indices = ops.cast(indices, "int32")
    shape = ops.shape(tokens)
    expanded = ops.broadcast_to(indices[..., None], (shape[0], indices.shape[1], shape[2]))
    return ops.take_along_axis(tokens, expanded, axis=1)


def apply_masks(tokens, masks):
    """Official ``apply_masks``: gathers with each ``(B, K)`` index tensor in ``masks`` and
    concatenates the results along the batch axis -> ``(len(masks) * B, K, D)``."""
    if not isinstance(masks, (list, tuple)):
        masks = [masks]
    return ops.concatenate([gather_tokens(tokens, m) for m in masks], axis=0)


def repeat_interleave_batch(x, batch_size, repeat):
    """Official ``repeat_interleave_batch``: repeats each consecutive chunk of
    ``batch_size`` rows ``repeat`` times, keeping chunk order.

    ``[c0, c1]`` with ``repeat=2`` -> ``[c0, c0, c1, c1]``.
    """
    shape = ops.shape(x)
    chunks = shape[0] // batch_size
    x = ops.reshape(x, (chunks, 1, batch_size) + tuple(shape[1:]))
    x = ops.broadcast_to(x, (chunks, repeat, batch_size) + tuple(shape[1:]))
    return ops.reshape(x, (chunks * repeat * batch_size,) + tuple(shape[1:]))


def check_indices(indices, num_tokens, name="token_indices", batch_size=None):
    """Validates token indices whenever their value is known, whatever their type.

    numpy arrays, lists and eager backend tensors are checked; inside a traced or compiled
    function (``fit``'s step on JAX and TensorFlow) the indices are symbolic and pass
    unchecked: the backends then do not raise either (JAX clamps or returns NaN, torch and
    TensorFlow wrap or fail), so index producers must stay in range there. The samplers of
    ``keras_jepa.masks`` only emit indices in ``[0, num_tokens)``.

    Raises a ``ValueError`` naming the offending value when an index is outside
    ``[0, num_tokens)`` (negative indices are refused too: they would wrap), the array is
    not integer or not rank 1/2, or its batch size is neither 1 nor ``batch_size``.

    Example:

    >>> check_indices(np.array([[0, 3]]), num_tokens=4)
    >>> check_indices(np.array([[0, 4]]), num_tokens=4)
    Traceback (most recent call last):
    ...
    ValueError: token_indices holds index 4, outside [0, 4) for an input with 4 tokens.
    """
    arr = concrete_value(indices)
    if arr is None:
        return
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"{name} must have shape (K,) or (batch, K); got shape {arr.shape}."
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be integers; got dtype {arr.dtype}.")
    if arr.size and (arr.min() < 0 or arr.max() >= num_tokens):
        bad = arr.min() if arr.min() < 0 else arr.max()
        raise ValueError(
            f"{name} holds index {int(bad)}, outside [0, {num_tokens}) for an input "
            f"with {num_tokens} tokens."
        )
    if arr.ndim == 2 and batch_size is not None and arr.shape[0] not in (1, batch_size):
        raise ValueError(
            f"{name} has batch size {arr.shape[0]} (shape {arr.shape}) but the input "
            f"batch has {batch_size} elements; give one row of indices per element (or "
            f"one row, or a 1-D array, for all)."
        )
