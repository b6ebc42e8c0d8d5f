"""Fixed sin-cos position embeddings (1-D, 2-D, 3-D) and their resampling.

The tables follow the JEPA reference code exactly:

* 1-D: ``omega_i = 1 / 10000 ** (i / (d / 2))`` for ``i < d / 2``, output ``[sin | cos]``
  (concatenated, not interleaved).
* 2-D: half of the channels per axis. I-JEPA puts the **column** (w) index first
  (``order="wh"``); V-JEPA and V-JEPA 2 put the **row** (h) first (``order="hw"``). The two
  tables are the same numbers with the halves swapped.
* 3-D (V-JEPA): channels ``[depth | height | width]``. With ``uniform_power=True`` each axis
  gets ``ceil(D / 6) * 2`` channels and the result is cut to ``D``; otherwise depth gets
  ``D / 2`` and height and width ``D / 4`` each.

Tokens are enumerated row-major over ``(t, h, w)``, the order in which the patch embedding
flattens them.

Resampling to another grid uses separable interpolation matrices built in numpy with
PyTorch's ``align_corners=False`` convention (linear, and cubic with ``A = -0.75``), so the
result is the same number on every backend and equals what the official code computes with
``torch.nn.functional.interpolate`` (trilinear for video, bicubic for images).
"""

import math

import keras
import numpy as np
from keras import ops

# ---------------------------------------------------------------------------------------
# Closed-form tables (numpy, float64)
# ---------------------------------------------------------------------------------------


def sincos_1d(dim, positions):
    """Returns the ``(len(positions), dim)`` table ``[sin(p * omega) | cos(p * omega)]``.

    Example:

    >>> sincos_1d(4, [0, 1]).shape
    (2, 4)
    """
    if dim % 2:
        raise ValueError(f"A sin-cos embedding needs an even width; got dim={dim}.")
    omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
    omega = 1.0 / 10000.0**omega
    out = np.outer(np.asarray(positions, dtype=np.float64).reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_2d(dim, grid_size, order="hw"):
    """2-D table of shape ``(H * W, dim)`` for a row-major ``(H, W)`` grid.

    Args:
        dim: embedding width (even).
        grid_size: ``(H, W)`` or an int for a square grid.
        order: ``"hw"`` (V-JEPA: row channels first) or ``"wh"`` (I-JEPA: column first).
    """
    grid_h, grid_w = _pair(grid_size)
    if order not in ("hw", "wh"):
        raise ValueError(f"order must be 'hw' or 'wh'; got {order!r}.")
    rows, cols = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")
    emb_h = sincos_1d(dim // 2, rows)
    emb_w = sincos_1d(dim // 2, cols)
    parts = [emb_h, emb_w] if order == "hw" else [emb_w, emb_h]
    return np.concatenate(parts, axis=1)


def sincos_3d(dim, grid_size, uniform_power=False):
    """3-D table of shape ``(T * H * W, dim)`` for a row-major ``(T, H, W)`` grid."""
    grid_t, grid_h, grid_w = grid_size
    if uniform_power:
        dim_t = dim_h = dim_w = int(math.ceil(dim / 6) * 2)
    else:
        dim_t, dim_h, dim_w = dim // 2, dim // 4, dim // 4
    t, h, w = np.meshgrid(
        np.arange(grid_t), np.arange(grid_h), np.arange(grid_w), indexing="ij"
    )
    table = np.concatenate(
        [sincos_1d(dim_t, t), sincos_1d(dim_h, h), sincos_1d(dim_w, w)], axis=1
    )
    return table[:, :dim]


# ---------------------------------------------------------------------------------------
# Interpolation (numpy matrices applied with keras.ops)
# ---------------------------------------------------------------------------------------


def _cubic_weights(t, a=-0.75):
    """Keys cubic convolution weights for taps at offsets -1, 0, 1, 2 (PyTorch's A)."""

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.array([far(t + 1), near(t), near(1 - t), far(2 - t)])


def interpolation_matrix(in_size, out_size, mode="linear"):
    """Matrix ``M`` of shape ``(out_size, in_size)`` with ``y = M @ x`` resampling ``x``.

    Matches ``torch.nn.functional.interpolate(..., align_corners=False)`` for
    ``mode="linear"`` (one axis of bilinear/trilinear) and ``mode="cubic"`` (one axis of
    bicubic, ``A = -0.75``, border taps clamped).
    """
    if in_size == out_size:
        return np.eye(in_size)
    scale = in_size / out_size
    matrix = np.zeros((out_size, in_size))
    for i in range(out_size):
        src = (i + 0.5) * scale - 0.5
        if mode == "linear":
            src = max(src, 0.0)
            lo = int(math.floor(src))
            lam = src - lo
            lo = min(lo, in_size - 1)
            hi = min(lo + 1, in_size - 1)
            matrix[i, lo] += 1.0 - lam
            matrix[i, hi] += lam
        elif mode == "cubic":
            lo = int(math.floor(src))
            weights = _cubic_weights(src - lo)
            for tap, weight in zip(range(lo - 1, lo + 3), weights):
                matrix[i, min(max(tap, 0), in_size - 1)] += weight
        else:
            raise ValueError(f"mode must be 'linear' or 'cubic'; got {mode!r}.")
    return matrix


def resample_grid_table(table, from_grid, to_grid, mode="linear"):
    """Resamples a ``(N, D)`` (or ``(1, N, D)``) table laid out on ``from_grid`` to ``to_grid``.

    Separable: one interpolation matrix per axis, applied with ``keras.ops.einsum``.
    Works on tensors of any backend (and on numpy arrays).
    """
    from_grid, to_grid = tuple(from_grid), tuple(to_grid)
    if len(from_grid) != len(to_grid):
        raise ValueError(f"Grids differ in rank: {from_grid} vs {to_grid}.")
    squeeze = len(table.shape) == 3
    if squeeze:
        table = table[0]
    dim = table.shape[-1]
    x = ops.reshape(table, from_grid + (dim,))
    letters = "abc"[: len(from_grid)]
    for axis, (n_in, n_out) in enumerate(zip(from_grid, to_grid)):
        if n_in == n_out:
            continue
        matrix = ops.convert_to_tensor(
            interpolation_matrix(n_in, n_out, mode).astype("float32"), dtype=x.dtype
        )
        src = letters + "z"
        dst = src.replace(letters[axis], "y")
        x = ops.einsum(f"y{letters[axis]},{src}->{dst}", matrix, x)
    x = ops.reshape(x, (-1, dim))
    return x[None] if squeeze else x


def _pair(value):
    if isinstance(value, int):
        return (value, value)
    return tuple(int(v) for v in value)


# ---------------------------------------------------------------------------------------
# Layer
# ---------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_jepa")
class SinCosPositionEmbedding(keras.layers.Layer):
    """Adds a fixed sin-cos position table to a sequence of patch tokens.

    The table is a non-trainable weight (as the official ``pos_embed`` buffer is), so
    converted checkpoints can overwrite it and saved presets carry it.

    Args:
        grid_size: ``(H, W)`` for images or ``(T, H, W)`` for video (in tokens).
        order: 2-D channel order, ``"hw"`` (V-JEPA) or ``"wh"`` (I-JEPA).
        uniform_power: 3-D channel split of V-JEPA (see module docstring).

    Calling ``layer(tokens, grid_size=None)`` adds the table; when ``grid_size`` differs
    from the stored grid the table is resampled first, as the official encoders do:
    fewer frames at the same spatial size keep the first frames' rows (V-JEPA), anything
    else is interpolated (trilinear for video, bicubic for images).

    Example:

    >>> import numpy as np
    >>> layer = SinCosPositionEmbedding(grid_size=(4, 4))
    >>> tuple(layer(np.zeros((2, 16, 8), "float32")).shape)
    (2, 16, 8)
    """

    def __init__(self, grid_size, order="hw", uniform_power=False, **kwargs):
        super().__init__(**kwargs)
        self.grid_size = tuple(int(g) for g in grid_size)
        if len(self.grid_size) not in (2, 3):
            raise ValueError(
                f"grid_size must be (H, W) or (T, H, W); got {grid_size!r}."
            )
        self.order = order
        self.uniform_power = bool(uniform_power)
        self.num_positions = int(np.prod(self.grid_size))

    def table_values(self, dim):
        """The closed-form table for ``dim`` channels (numpy, float64)."""
        if len(self.grid_size) == 2:
            return sincos_2d(dim, self.grid_size, order=self.order)
        return sincos_3d(dim, self.grid_size, uniform_power=self.uniform_power)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        values = self.table_values(dim).astype("float32")[None]
        self.table = self.add_weight(
            name="table",
            shape=(1, self.num_positions, dim),
            initializer=keras.initializers.Constant(values),
            trainable=False,
        )
        self.built = True

    def resampled_table(self, grid_size=None):
        grid_size = self.grid_size if grid_size is None else tuple(grid_size)
        if grid_size == self.grid_size:
            return self.table
        if len(grid_size) != len(self.grid_size):
            raise ValueError(
                f"grid_size {grid_size} does not match the table grid {self.grid_size}."
            )
        if len(grid_size) == 3 and grid_size[1:] == self.grid_size[1:]:
            if grid_size[0] <= self.grid_size[0]:
                return self.table[:, : int(np.prod(grid_size))]
        mode = "linear" if len(grid_size) == 3 else "cubic"
        return resample_grid_table(self.table, self.grid_size, grid_size, mode=mode)

    def call(self, tokens, grid_size=None):
        table = self.resampled_table(grid_size)
        return tokens + ops.cast(table, tokens.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "grid_size": list(self.grid_size),
                "order": self.order,
                "uniform_power": self.uniform_power,
            }
        )
        return config
