"""V-JEPA / V-JEPA 2 multi-block masks over a (time, height, width) token grid."""

import numbers

import numpy as np

from keras_jepa.masks.base import (
    BUDGET_ROWS,
    BUDGET_SEED,
    MAX_REDRAWS,
    MaskSampler,
    block_offsets,
    cached_budget,
    check_grid,
    check_int,
    check_range,
    expected_batch_min,
    fit_rows,
    rows_mask,
    size_groups,
)

# The official configs of V-JEPA (ViT-L/H) and V-JEPA 2: 8 small and 2 large spatial blocks,
# each a tube over the whole clip.
DEFAULT_CONFIGS = (
    {
        "spatial_scale": (0.15, 0.15),
        "temporal_scale": (1.0, 1.0),
        "aspect_ratio": (0.75, 1.5),
        "num_blocks": 8,
        "max_temporal_keep": 1.0,
    },
    {
        "spatial_scale": (0.7, 0.7),
        "temporal_scale": (1.0, 1.0),
        "aspect_ratio": (0.75, 1.5),
        "num_blocks": 2,
        "max_temporal_keep": 1.0,
    },
)

_REQUIRED = ("spatial_scale", "temporal_scale", "aspect_ratio", "num_blocks")
_OPTIONAL = {
    "max_temporal_keep": 1.0,
    "max_keep": None,
    "num_context_tokens": None,
    "num_target_tokens": None,
}


def _check_config(index, config, num_tokens):
    """Validates one mask config and returns it with every key filled in."""
    if not isinstance(config, dict):
        raise ValueError(f"`configs[{index}]` must be a dict, got {config!r}.")
    unknown = sorted(set(config) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise ValueError(
            f"`configs[{index}]` has unknown keys {unknown}; allowed: "
            f"{list(_REQUIRED) + list(_OPTIONAL)}."
        )
    missing = [key for key in _REQUIRED if key not in config]
    if missing:
        raise ValueError(f"`configs[{index}]` is missing {missing}.")
    name = f"configs[{index}]"
    out = dict(_OPTIONAL, **config)
    out["spatial_scale"] = check_range(
        f"{name}['spatial_scale']", config["spatial_scale"], 0.0, 1.0, True
    )
    out["temporal_scale"] = check_range(
        f"{name}['temporal_scale']", config["temporal_scale"], 0.0, 1.0, True
    )
    out["aspect_ratio"] = check_range(
        f"{name}['aspect_ratio']", config["aspect_ratio"], 0.0, low_open=True
    )
    out["num_blocks"] = check_int(f"{name}['num_blocks']", config["num_blocks"], minimum=1)
    keep = out["max_temporal_keep"]
    if isinstance(keep, bool) or not isinstance(keep, numbers.Real) or not 0.0 < keep <= 1.0:
        raise ValueError(f"`{name}['max_temporal_keep']` must be in (0, 1], got {keep!r}.")
    out["max_temporal_keep"] = float(keep)
    for key in ("max_keep", "num_context_tokens", "num_target_tokens"):
        if out[key] is not None:
            out[key] = check_int(f"{name}[{key!r}]", out[key], minimum=1, maximum=num_tokens)
    return out


class MultiBlockMask3D(MaskSampler):
    """V-JEPA's multi-block 3-D mask sampler (also V-JEPA 2's), with static token counts.

    One mask pair per config. For each config, one block size ``(t, h, w)`` is drawn per batch
    with three separate draws (temporal scale, spatial scale, aspect ratio):
    ``t = max(1, int(T * temporal_scale))``, ``keep = int(H * W * spatial_scale)``,
    ``h = round(sqrt(keep * ar))``, ``w = round(sqrt(keep / ar))``, capped at ``H``/``W``.
    Each video then gets ``num_blocks`` blocks at uniformly random places (bounds inclusive, so
    every token can be covered). The **target is the union of the blocks and the context is its
    complement**; with ``max_temporal_keep < 1`` the context is also limited to the first
    ``max(1, int(T * max_temporal_keep))`` time steps and the later ones join the target (as in
    the official code). A video whose context is empty is redrawn.

    **Static budget.** Every call returns, for config ``i``, ``num_context_tokens[i]`` (Kc)
    context and ``num_target_tokens[i]`` (Kt) target indices per row. By default each is the
    expected length the official collator returns for that mask at the official per-device
    batch size (``reference_batch_size=24``): the collator truncates context and target to the
    batch minimum (the context also to ``max_keep`` if set), so this is the expected batch
    minimum of the untruncated lengths, estimated once per configuration from 32768 videos drawn
    with a fixed seed (independent of ``seed``). A config may set ``num_context_tokens`` /
    ``num_target_tokens`` to override. A mask longer than its budget keeps its lowest indices
    when ``faithful`` (the official truncation: with tubes over the whole clip, this drops the
    last time steps' tokens) or a uniform random subset otherwise. A shorter mask is padded by
    repeating some of its own tokens, drawn uniformly; rows are sorted, so a repeat sits next
    to its original and ``keras_jepa.masks.first_occurrence_mask`` finds it.

    Consequences: Kc + Kt < T*H*W, so, as in the official runs, some tokens are in neither set.
    The mean token counts match the official run with 24 clips per device, whatever the batch
    size here. Block geometry is never resampled. With the official configs on an 8x14x14 grid
    the budgets are Kc, Kt = 365, 750 (short-range) and 101, 1103 (long-range), against mean
    official counts of 364, 748 and 100, 1103; about 3% of contexts are shorter than Kc and
    carry repeats, which get twice the attention weight as keys.

    Args:
        grid_size: ``(T, H, W)`` token grid (``T`` = frames / tubelet size).
        configs: list of dicts with ``spatial_scale``, ``temporal_scale``, ``aspect_ratio``
            (``(min, max)`` pairs), ``num_blocks``, optionally ``max_temporal_keep`` (default
            1.0), ``max_keep`` (cap on the context budget), ``num_context_tokens`` and
            ``num_target_tokens`` (budget overrides). Defaults: the official V-JEPA configs.
        seed: non-negative int; a batch is a pure function of ``(seed, step)``.
        faithful: truncate long masks to their lowest indices, as the official collator does;
            ``False`` keeps a uniform random subset.
        reference_batch_size: per-device batch size at which the default budgets match the
            official collator's.

    Returns (when called as ``sampler(batch_size, step=None)``):
        ``{"context_indices": [int32 (B, Kc_i) per config], "target_indices": [int32 (B, Kt_i)
        per config]}``, flat row-major ``(t, h, w)`` indices sorted within each row.

    Example:

    >>> sampler = MultiBlockMask3D(grid_size=(8, 14, 14), seed=0)
    >>> masks = sampler(batch_size=2, step=0)
    >>> [m.shape[0] for m in masks["context_indices"] + masks["target_indices"]]
    [2, 2, 2, 2]
    >>> [m.shape[1] for m in masks["context_indices"]] == list(sampler.num_context_tokens)
    True
    """

    def __init__(
        self, grid_size, configs=DEFAULT_CONFIGS, seed=0, faithful=True, reference_batch_size=24
    ):
        grid = check_grid(grid_size, 3)
        super().__init__(grid, seed)
        if isinstance(configs, dict) or not isinstance(configs, (list, tuple)) or not configs:
            raise ValueError(f"`configs` must be a non-empty list of dicts, got {configs!r}.")
        self.configs = tuple(_check_config(i, c, self.num_tokens) for i, c in enumerate(configs))
        self.faithful = bool(faithful)
        self.reference_batch_size = check_int(
            "reference_batch_size", reference_batch_size, minimum=1
        )
        contexts, targets = [], []
        for i, config in enumerate(self.configs):
            key = (
                type(self).__name__,
                grid,
                self.reference_batch_size,
                *((k, config[k]) for k in (*_REQUIRED, "max_temporal_keep", "max_keep")),
            )
            kc, kt = cached_budget(key, lambda i=i: self._estimate_budget(i))
            contexts.append(
                kc if config["num_context_tokens"] is None else config["num_context_tokens"]
            )
            targets.append(
                kt if config["num_target_tokens"] is None else config["num_target_tokens"]
            )
        self.num_context_tokens = tuple(contexts)
        self.num_target_tokens = tuple(targets)

    def _block_sizes(self, rng, config, count):
        """``count`` block sizes ``(t, h, w)``, each an int array of shape ``(count,)``."""
        frames, height, width = self.grid_size
        u_time, u_scale, u_aspect = rng.random((3, count))
        lo, hi = config["temporal_scale"]
        t = np.maximum(1, np.floor(frames * (lo + u_time * (hi - lo))))
        lo, hi = config["spatial_scale"]
        keep = np.floor(height * width * (lo + u_scale * (hi - lo)))
        lo, hi = config["aspect_ratio"]
        ratio = lo + u_aspect * (hi - lo)
        h = np.clip(np.round(np.sqrt(keep * ratio)), 1, height)
        w = np.clip(np.round(np.sqrt(keep / ratio)), 1, width)
        return t.astype(np.int64), h.astype(np.int64), w.astype(np.int64)

    def _draw(self, rng, config, rows, size):
        """Untruncated targets of ``rows`` videos whose blocks have shape ``size = (t, h, w)``.

        Blocks spanning the whole clip (tubes, as in the official configs) cover the same
        spatial tokens in every frame, so they are drawn on the ``(H, W)`` grid only. Returns
        ``(covered, tube)``: boolean ``(rows, H*W)`` if ``tube`` else ``(rows, T*H*W)``, before
        the time steps beyond ``max_temporal_keep`` are added (see ``_expand``). Videos whose
        context would be empty are redrawn (official rule).
        """
        count = config["num_blocks"]
        frames = self.grid_size[0]
        kept = max(1, int(frames * config["max_temporal_keep"]))
        tube = size[0] == frames
        grid, size_drawn = (self.grid_size[1:], size[1:]) if tube else (self.grid_size, size)
        offsets = block_offsets(size_drawn, grid)
        strides = np.cumprod((1,) + grid[:0:-1])[::-1]
        cells = int(np.prod(grid))
        # Tokens left for the context: the first `kept` time steps (all of them for a tube).
        context_cells = cells if tube else kept * cells // frames

        def union(rows):
            # Corners uniform on [0, length - size], bounds inclusive; floor(u * n) for speed.
            corner = np.zeros((rows, count), dtype=np.int64)
            for length, extent, stride in zip(grid, size_drawn, strides):
                corner += (rng.random((rows, count)) * (length - extent + 1)).astype(
                    np.int64
                ) * stride
            return rows_mask(corner[..., None] + offsets, cells)

        covered = union(rows)
        bad = np.flatnonzero(covered[:, :context_cells].all(axis=1))
        redraws = 0
        while bad.size:
            redraws += 1
            if redraws > MAX_REDRAWS:
                raise RuntimeError(
                    f"The blocks of {config} cover the whole {self.grid_size} grid in "
                    f"{MAX_REDRAWS} draws in a row; lower `spatial_scale`, `temporal_scale` "
                    f"or `num_blocks`."
                )
            redraw = union(bad.size)
            covered[bad] = redraw
            bad = bad[redraw[:, :context_cells].all(axis=1)]
        return covered, tube

    def _expand(self, config, covered, tube):
        """Boolean targets ``(rows, N)`` from ``_draw``'s output: tubes tiled over time, and
        the time steps beyond ``max_temporal_keep`` added to the target."""
        frames = self.grid_size[0]
        kept = max(1, int(frames * config["max_temporal_keep"]))
        if tube:
            covered = np.tile(covered, (1, frames))
        if kept < frames:
            covered[:, kept * (self.num_tokens // frames) :] = True
        return covered

    def _estimate_budget(self, index):
        """Default (Kc, Kt) of config ``index``: expected batch minimum of the untruncated
        lengths at the reference batch size, from ``BUDGET_ROWS`` videos drawn with
        ``BUDGET_SEED``."""
        config = self.configs[index]
        rng = np.random.default_rng(BUDGET_SEED)
        sizes = self._block_sizes(rng, config, BUDGET_ROWS)
        whole = np.all([size == length for size, length in zip(sizes, self.grid_size)], axis=0)
        if whole.any():
            raise ValueError(
                f"`configs[{index}]` = {config} can draw a block covering the whole "
                f"{self.grid_size} grid, which leaves no context; lower `spatial_scale` or "
                f"`temporal_scale`."
            )
        frames = self.grid_size[0]
        kept = max(1, int(frames * config["max_temporal_keep"]))
        spatial = self.num_tokens // frames
        chunk = max(1, (1 << 20) // self.num_tokens)
        target_lengths = np.empty(BUDGET_ROWS, dtype=np.int64)
        for rows, size in size_groups(sizes):
            for start in range(0, rows.size, chunk):
                part = rows[start : start + chunk]
                covered, tube = self._draw(rng, config, part.size, size)
                if tube:  # the same spatial cells in each kept frame, every token after
                    lengths = covered.sum(axis=1) * kept + (frames - kept) * spatial
                else:
                    lengths = covered[:, : kept * spatial].sum(axis=1) + (frames - kept) * spatial
                target_lengths[part] = lengths
        groups = np.stack(sizes, axis=1)
        batch = self.reference_batch_size
        return (
            expected_batch_min(
                self.num_tokens - target_lengths, groups, batch, cap=config["max_keep"]
            ),
            expected_batch_min(target_lengths, groups, batch),
        )

    def _sample(self, rng, batch_size):
        contexts, targets = [], []
        for config, kc, kt in zip(self.configs, self.num_context_tokens, self.num_target_tokens):
            size = tuple(int(a[0]) for a in self._block_sizes(rng, config, 1))
            target = self._expand(config, *self._draw(rng, config, batch_size, size))
            contexts.append(fit_rows(~target, kc, rng, keep_first=self.faithful))
            targets.append(fit_rows(target, kt, rng, keep_first=self.faithful))
        return {"context_indices": contexts, "target_indices": targets}

    def _context_budgets(self):
        return list(self.num_context_tokens)

    def _target_budgets(self):
        return list(self.num_target_tokens)

    def get_config(self):
        return {
            "grid_size": self.grid_size,
            "configs": [dict(c) for c in self.configs],
            "seed": self.seed,
            "faithful": self.faithful,
            "reference_batch_size": self.reference_batch_size,
        }
