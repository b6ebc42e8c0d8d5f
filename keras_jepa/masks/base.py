"""Shared machinery of the mask samplers: seeding, resumable step counter, static budgets.

Everything here is numpy; the samplers run in the data pipeline (possibly in worker processes)
and hand plain ``int32`` arrays to the model.
"""

import numbers

import numpy as np

# Seed of the Monte Carlo estimate of the default token budgets. It is fixed (not the user's
# seed) so that the shapes a sampler emits are a function of its configuration alone.
BUDGET_SEED = 20240611
# Number of independent rows (images or videos) drawn by the budget estimates: enough for a
# standard error below one token with the official configs.
BUDGET_ROWS = 32768
# Redraws allowed for a row whose mask is invalid before the sampler gives up.
MAX_REDRAWS = 1000

_BUDGET_CACHE = {}


def check_int(name, value, minimum=None, maximum=None):
    """Returns ``value`` as an ``int`` or raises a ``ValueError`` naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"`{name}` must be an integer, got {value!r}.")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"`{name}` must be <= {maximum}, got {value}.")
    return value


def check_range(name, value, low=None, high=None, low_open=False):
    """Checks a ``(min, max)`` pair of numbers with ``low <= min <= max <= high``.

    ``low_open=True`` makes the lower bound strict (``min > low``).
    """
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a pair (min, max) of numbers, got {value!r}.") from None
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        raise ValueError(f"`{name}` must be a finite pair with min <= max, got {value!r}.")
    if low is not None and (lo <= low if low_open else lo < low):
        sign = ">" if low_open else ">="
        raise ValueError(f"`{name}` values must be {sign} {low}, got {value!r}.")
    if high is not None and hi > high:
        raise ValueError(f"`{name}` values must be <= {high}, got {value!r}.")
    return (lo, hi)


def check_grid(grid_size, ndim, minimum=1):
    """Normalises ``grid_size`` to a tuple of ``ndim`` positive ints (an int means square)."""
    if isinstance(grid_size, numbers.Integral) and not isinstance(grid_size, bool) and ndim == 2:
        grid_size = (grid_size, grid_size)
    try:
        grid = tuple(grid_size)
    except TypeError:
        raise ValueError(
            f"`grid_size` must be a tuple of {ndim} ints, got {grid_size!r}."
        ) from None
    if len(grid) != ndim:
        raise ValueError(f"`grid_size` must have {ndim} entries, got {grid_size!r}.")
    for g in grid:
        if isinstance(g, bool) or not isinstance(g, numbers.Integral) or g < minimum:
            raise ValueError(f"`grid_size` entries must be ints >= {minimum}, got {grid_size!r}.")
    return tuple(int(g) for g in grid)


def _index_bits(n):
    return max(1, int(n - 1).bit_length())


def _key_dtype(n):
    return np.int32 if _index_bits(n) <= 12 else np.int64


def index_mask(n):
    """Bit mask that extracts the index from a key of ``random_sort_keys(..., n)``."""
    return (1 << _index_bits(n)) - 1


def random_sort_keys(rng, shape, n):
    """Distinct integer keys ``random << bits | index`` over the last axis (length ``n``).

    Sorting them orders each row's indices uniformly at random, and ``key & index_mask(n)``
    recovers the index; sorting or partitioning integers is several times faster than
    ``argsort``. The random part has at least 18 bits (int32, ``n <= 4096``) or 33 bits
    (int64); the rare equal random parts fall back to index order. Bit 30 (int32) or 62 (int64)
    is left free for a caller's flag.
    """
    bits = _index_bits(n)
    dtype = _key_dtype(n)
    random_bits = (30 if dtype == np.int32 else 62) - bits
    keys = rng.integers(0, 1 << random_bits, size=shape, dtype=dtype) << bits
    keys |= np.arange(n, dtype=dtype)
    return keys


def fit_rows(mask, k, rng, keep_first=False):
    """Turns a boolean ``(R, N)`` mask into ``(R, k)`` sorted ``int32`` token indices.

    A row with more than ``k`` selected tokens keeps ``k`` of them: a uniform random subset, or
    the ``k`` lowest indices when ``keep_first`` (the official collators' truncation). A row
    with fewer keeps all of them and repeats some, each repeat drawn uniformly from the row's
    tokens; after sorting the repeats sit next to their original. Every row must select at
    least one token.
    """
    rows, n = mask.shape
    if not keep_first:
        # Keep the k smallest random keys of each row; unselected tokens carry a flag bit that
        # puts them after every selected one.
        keys = random_sort_keys(rng, (rows, n), n)
        keys |= (~mask).astype(keys.dtype) << (8 * keys.dtype.itemsize - 2)
        kth = np.partition(keys, k - 1, axis=1)[:, k - 1 : k]
        mask = mask & (keys <= kth)
    # Flat positions of the selected tokens of all rows, row after row, ascending in each row.
    flat = np.flatnonzero(mask)
    counts = mask.sum(axis=1)
    if not counts.all():
        raise RuntimeError(f"Rows {np.flatnonzero(counts == 0)} select no token; nothing to fit.")
    starts = np.cumsum(counts) - counts
    position = np.broadcast_to(np.arange(k), (rows, k))
    short = np.flatnonzero(counts < k)
    if short.size:
        # A short row keeps all its tokens, then repeats tokens drawn uniformly from them.
        have = counts[short][:, None]
        repeat = (rng.random((short.size, k)) * have).astype(np.int64)
        position = position.copy()
        position[short] = np.where(position[short] < have, position[short], repeat)
    out = (flat[starts[:, None] + position] - (np.arange(rows) * n)[:, None]).astype(np.int32)
    if short.size:
        out[short] = np.sort(out[short], axis=1)
    return out


def block_offsets(block, grid):
    """Sorted flat offsets of the tokens of a block of shape ``block`` (one size per grid axis)
    whose first corner is at the origin of a row-major ``grid``: the block at corner ``c`` is
    ``flat(c) + block_offsets(block, grid)``."""
    strides = np.cumprod((1,) + tuple(grid[:0:-1]))[::-1]
    offsets = np.zeros((), dtype=np.int64)
    for size, stride in zip(block, strides):
        offsets = offsets[..., None] + np.arange(size) * stride
    return offsets.reshape(-1)


def rows_mask(indices, n):
    """Boolean ``(R, n)``: ``True`` at each row's ``indices`` (any shape ``(R, ...)``)."""
    rows = indices.shape[0]
    flat = indices.reshape(rows, -1) + (np.arange(rows) * n)[:, None]
    mask = np.zeros(rows * n, dtype=bool)
    mask[flat.reshape(-1)] = True
    return mask.reshape(rows, n)


def _unique_rows(table):
    """``np.unique(table, axis=0, return_inverse=True, return_counts=True)`` for a small
    non-negative int table, through one int64 key per row (much faster than ``axis=0``)."""
    table = np.asarray(table, dtype=np.int64).reshape(len(table), -1)
    radix = table.max(axis=0) + 1
    keys = np.zeros(len(table), dtype=np.int64)
    for column, base in zip(table.T, radix):
        keys = keys * base + column
    _, first, inverse, counts = np.unique(
        keys, return_index=True, return_inverse=True, return_counts=True
    )
    return table[first], inverse.reshape(-1), counts


def size_groups(sizes):
    """Groups rows by their block sizes: yields ``(row_indices, sizes_of_the_group)``.

    ``sizes`` is a list of int arrays of shape ``(R,)``; a group's sizes are Python ints.
    """
    unique, inverse, _ = _unique_rows(np.stack(sizes, axis=1))
    for group, values in enumerate(unique):
        yield np.flatnonzero(inverse == group), tuple(int(v) for v in values)


def first_occurrence_mask(indices):
    """``True`` where an index differs from its left neighbour, ``False`` at a repeat.

    Samplers pad a short mask by repeating some of its tokens and sort every row, so repeats are
    adjacent; this mask lets a loss count every distinct target token once (the JEPA models
    do it in ``keras.ops`` with ``keras_jepa.models.jepa.base.first_occurrence_weights``,
    which also accepts unsorted rows).

    Example:

    >>> first_occurrence_mask(np.array([[0, 3, 3, 7]])).tolist()
    [[True, True, False, True]]
    """
    indices = np.asarray(indices)
    first = np.ones(indices.shape, dtype=bool)
    first[..., 1:] = indices[..., 1:] != indices[..., :-1]
    return first


def cached_budget(key, estimate):
    """Memoises ``estimate()`` (a Monte Carlo budget estimate) under a configuration key."""
    if key not in _BUDGET_CACHE:
        _BUDGET_CACHE[key] = estimate()
    return _BUDGET_CACHE[key]


def expected_batch_min(lengths, groups, batch_size, cap=None):
    """Expected minimum over a batch of ``batch_size`` rows of a mask's length, rounded.

    The official collators draw block sizes once per batch and then truncate every mask of
    the batch to the batch minimum. ``lengths`` are untruncated lengths of independent rows and
    ``groups`` (one row of size parameters per length) their block sizes. Given a group, the
    expected minimum of ``batch_size`` independent lengths is ``sum_k P(L >= k) ** batch_size``
    (``k >= 1``, up to ``cap`` if given); it is averaged over the groups with their frequencies.
    Using every row's length, not one minimum per simulated batch, makes the estimate precise.
    """
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    _, inverse, sizes = _unique_rows(np.asarray(groups).reshape(lengths.size, -1))
    top = int(lengths.max()) if cap is None else int(min(cap, lengths.max()))
    total = 0.0
    for group, size in enumerate(sizes):
        hist = np.bincount(lengths[inverse == group], minlength=top + 1)
        survival = np.cumsum(hist[::-1])[::-1] / size
        total += size / lengths.size * float(np.sum(survival[1 : top + 1] ** batch_size))
    return max(1, int(np.round(total)))


class MaskSampler:
    """Base class: seeding, the step counter and the output contract.

    Subclasses implement ``_sample(rng, batch_size)`` returning the output dict, and set
    ``grid_size``. A call draws from ``np.random.default_rng([seed, step])``, so a batch is a
    pure function of ``(seed, step)``.
    """

    def __init__(self, grid_size, seed=0):
        self.grid_size = grid_size
        self.num_tokens = int(np.prod(grid_size))
        self.seed = check_int("seed", seed, minimum=0)
        self.step = 0

    @property
    def state(self):
        """The resumable state: ``{"step": next step drawn when step=None}``."""
        return {"step": self.step}

    def set_state(self, state):
        """Restores a state returned by ``state`` (e.g. from a checkpoint)."""
        if not isinstance(state, dict) or "step" not in state:
            raise ValueError(f"`state` must be a dict with a 'step' entry, got {state!r}.")
        self.step = check_int("state['step']", state["step"], minimum=0)

    def __call__(self, batch_size, step=None):
        """Draws the masks of one batch.

        Args:
            batch_size: number of rows of every returned array.
            step: the batch's step. ``None`` uses the internal counter and advances it; an
                explicit step leaves the counter alone (use it in worker processes, which each
                hold a copy of the sampler).

        Returns:
            ``{"context_indices": (int32 (B, Kc), ...), "target_indices": (int32 (B, Kt), ...)}``
            with flat row-major token indices, sorted within each row.
        """
        batch_size = check_int("batch_size", batch_size, minimum=1)
        if step is None:
            step = self.step
            self.step += 1
        else:
            step = check_int("step", step, minimum=0)
        rng = np.random.default_rng([self.seed, step])
        # Tuples, not lists: tf.data (used by Keras on the TensorFlow backend) accepts
        # tuples inside a batch dict but rejects lists.
        return {key: tuple(value) for key, value in self._sample(rng, batch_size).items()}

    def output_shapes(self, batch_size):
        """The shapes every call with ``batch_size`` returns (e.g. for a ``tf.data`` signature)."""
        return {
            "context_indices": [(batch_size, k) for k in self._context_budgets()],
            "target_indices": [(batch_size, k) for k in self._target_budgets()],
        }

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def _sample(self, rng, batch_size):
        raise NotImplementedError

    def _context_budgets(self):
        raise NotImplementedError

    def _target_budgets(self):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError
