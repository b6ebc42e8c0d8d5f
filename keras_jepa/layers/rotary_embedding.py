"""3-D rotary position embedding of V-JEPA 2.

Each attention head of width ``hd`` rotates three channel segments of
``d = 2 * ((hd // 3) // 2)`` channels each, in the order depth (frame), height (row),
width (column); the remaining ``hd - 3 d`` channels are left as they are. Positions are
integer token coordinates recovered from the flat token index
(``frame = i // (H * W)``, ``row = (i % (H * W)) // W``, ``col = i % W``), so gathered
(masked) tokens keep their original positions.

Inside a segment, channel pairs ``(x[2j], x[2j + 1])`` are rotated:
``out = x * cos + rotate_pairs(x) * sin`` with ``rotate_pairs(x)[2j] = -x[2j + 1]`` and
``rotate_pairs(x)[2j + 1] = x[2j]``.

**Released-weights quirk (``tiled=True``, the default).** The official code builds the
per-channel angle table by *tiling* the ``d / 2`` frequencies (``[f0 .. f_{d/2-1}, f0 ..
f_{d/2-1}]``) while it rotates *adjacent* pairs, so channel ``j`` uses frequency
``j mod (d / 2)`` and the two channels of a pair can use different frequencies. The
released V-JEPA 2 weights were trained that way, so it is the default here.
``tiled=False`` gives the textbook layout (``repeat_interleave``: both channels of pair
``j`` use frequency ``j``); use it only for models trained from scratch.

The cos/sin tables are computed once per forward pass and shared by every block, and they
span the whole head (``cos = 1``, ``sin = 0`` on unrotated channels), so a block applies
RoPE with one fused multiply-add.
"""

import numpy as np
from keras import ops


def rope_segment_dim(head_dim):
    """Channels rotated per axis for a head of width ``head_dim``."""
    return 2 * ((head_dim // 3) // 2)


def token_coordinates(token_ids, grid_size):
    """Splits flat token indices into ``(frame, row, col)`` float tensors.

    ``grid_size`` is ``(T, H, W)`` (or ``(H, W)``, then every frame index is 0).
    """
    grid_h, grid_w = grid_size[-2], grid_size[-1]
    token_ids = ops.cast(token_ids, "int32")
    per_frame = grid_h * grid_w
    frame = token_ids // per_frame
    rest = token_ids - frame * per_frame
    row = rest // grid_w
    col = rest - row * grid_w
    return tuple(ops.cast(v, "float32") for v in (frame, row, col))


def _segment_angles(positions, dim, tiled):
    """Angles ``(..., dim)`` for one axis segment of ``dim`` channels."""
    omega = 1.0 / 10000.0 ** (np.arange(dim // 2, dtype="float64") / (dim / 2.0))
    if tiled:
        omega = np.concatenate([omega, omega])
    else:
        omega = np.repeat(omega, 2)
    omega = ops.convert_to_tensor(omega.astype("float32"))
    return positions[..., None] * omega


def rope_tables(token_ids, grid_size, head_dim, tiled=True, position_scale=None):
    """Returns ``(cos, sin)`` of shape ``(..., N, 1, head_dim)`` for ``token_ids (..., N)``.

    The singleton axis broadcasts over heads in the ``(B, N, heads, head_dim)`` layout.
    ``position_scale`` multiplies the ``(frame, row, col)`` coordinates (three floats; used
    to map a grid of another resolution onto the training one, see
    ``interpolated_position_scale``); ``None`` keeps integer positions.
    """
    seg = rope_segment_dim(head_dim)
    if seg == 0:
        raise ValueError(
            f"RoPE needs a head width of at least 6 channels; got head_dim={head_dim}."
        )
    coords = token_coordinates(token_ids, grid_size)
    if position_scale is not None:
        coords = tuple(
            c if float(f) == 1.0 else c * float(f) for c, f in zip(coords, position_scale)
        )
    angles = [_segment_angles(c, seg, tiled) for c in coords]
    angles = ops.concatenate(angles, axis=-1)
    cos, sin = ops.cos(angles), ops.sin(angles)
    rest = head_dim - 3 * seg
    if rest:
        pad_shape = tuple(angles.shape[:-1]) + (rest,)
        if None in pad_shape:
            pad_shape = tuple(ops.shape(angles)[:-1]) + (rest,)
        cos = ops.concatenate([cos, ops.ones(pad_shape, cos.dtype)], axis=-1)
        sin = ops.concatenate([sin, ops.zeros(pad_shape, sin.dtype)], axis=-1)
    return cos[..., None, :], sin[..., None, :]


def interpolated_position_scale(grid_size, reference_grid):
    """V-JEPA 2.1's ``interpolate_rope`` factors ``(1, s_h, s_w)`` for a ``(T, H, W)`` grid.

    Row and column positions are stretched so that the last row (column) sits where the
    last one of a ``reference_grid x reference_grid`` grid does: ``s = (G - 1) / (H - 1)``
    (``G = 16`` for 256 px at patch 16, so ``15 / 23`` at 384 px). Frames are not scaled.
    A grid one token high (or wide) keeps that axis unscaled.
    """
    h, w = int(grid_size[-2]), int(grid_size[-1])
    g = float(reference_grid)
    return (
        1.0,
        (g - 1.0) / (h - 1.0) if h > 1 else 1.0,
        (g - 1.0) / (w - 1.0) if w > 1 else 1.0,
    )


def rotate_pairs(x):
    """``(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...)`` along the last axis."""
    shape = ops.shape(x)
    pairs = ops.reshape(x, tuple(shape[:-1]) + (shape[-1] // 2, 2))
    rotated = ops.stack([-pairs[..., 1], pairs[..., 0]], axis=-1)
    return ops.reshape(rotated, shape)


def apply_rope(x, cos, sin):
    """Rotates queries or keys ``x (B, N, heads, head_dim)`` with precomputed tables."""
    cos = ops.cast(cos, x.dtype)
    sin = ops.cast(sin, x.dtype)
    return x * cos + rotate_pairs(x) * sin
