"""Token selection by index tensors: the official ``apply_masks`` and its helpers.

Everything is a batched gather (``take_along_axis``) with static shapes; there is no Python
loop over batch elements.
"""

import numpy as np
from keras import ops


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


def check_indices(indices, num_tokens, name="token_indices"):
    """Validates concrete (numpy / list) indices; symbolic tensors pass through unchecked.

    Raises a ``ValueError`` naming the offending value when an index is outside
    ``[0, num_tokens)`` or the array is not integer or not rank 1/2.
    """
    if not isinstance(indices, (np.ndarray, list, tuple)):
        return
    arr = np.asarray(indices)
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
