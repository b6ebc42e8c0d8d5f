"""Random tube masks: random spatial positions, masked over the whole clip."""

import numbers

import numpy as np

from keras_jepa.masks.base import MaskSampler, check_grid, index_mask, random_sort_keys


class RandomTubeMask(MaskSampler):
    """V-JEPA's random-tube mask sampler (the official ``mask_type != multiblock3d`` option).

    Each video keeps ``int(H * W * (1 - ratio))`` spatial positions drawn uniformly without
    replacement; the context is those positions at every time step and the target is all the
    other tokens. ``ratio`` is therefore the masked (target) fraction of the spatial positions.
    The counts depend only on the configuration, so no truncation or padding is ever needed:
    ``num_context_tokens = T * keep`` and ``num_target_tokens = T * (H * W - keep)``.

    Args:
        grid_size: ``(T, H, W)`` token grid.
        ratio: fraction of spatial positions masked, in ``(0, 1)``; at least one position must
            be kept and one masked.
        seed: non-negative int; a batch is a pure function of ``(seed, step)``.

    Returns (when called as ``sampler(batch_size, step=None)``):
        ``{"context_indices": [int32 (B, Kc)], "target_indices": [int32 (B, Kt)]}``, flat
        row-major ``(t, h, w)`` indices sorted within each row.

    Example:

    >>> sampler = RandomTubeMask(grid_size=(8, 14, 14), ratio=0.9, seed=0)
    >>> masks = sampler(batch_size=2)
    >>> masks["context_indices"][0].shape, masks["target_indices"][0].shape
    ((2, 152), (2, 1416))
    """

    def __init__(self, grid_size, ratio=0.9, seed=0):
        grid = check_grid(grid_size, 3)
        super().__init__(grid, seed)
        if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not 0.0 < ratio < 1.0:
            raise ValueError(f"`ratio` must be a number in (0, 1), got {ratio!r}.")
        self.ratio = float(ratio)
        frames, height, width = grid
        self.num_spatial = height * width
        # Same expression as the official code, so the kept count matches to the token.
        self.num_keep_spatial = int(self.num_spatial * (1.0 - self.ratio))
        if not 0 < self.num_keep_spatial < self.num_spatial:
            raise ValueError(
                f"`ratio`={ratio} keeps {self.num_keep_spatial} of {self.num_spatial} spatial "
                f"positions; at least one must be kept and one masked."
            )
        self.num_context_tokens = frames * self.num_keep_spatial
        self.num_target_tokens = frames * (self.num_spatial - self.num_keep_spatial)

    def _sample(self, rng, batch_size):
        n, keep = self.num_spatial, self.num_keep_spatial
        keys = random_sort_keys(rng, (batch_size, n), n)
        keys.sort(axis=1)
        order = keys & index_mask(n)
        offsets = (np.arange(self.grid_size[0]) * n)[None, :, None]

        def tubes(positions):
            positions = np.sort(positions, axis=1)
            return (offsets + positions[:, None, :]).reshape(batch_size, -1).astype(np.int32)

        return {
            "context_indices": [tubes(order[:, :keep])],
            "target_indices": [tubes(order[:, keep:])],
        }

    def _context_budgets(self):
        return [self.num_context_tokens]

    def _target_budgets(self):
        return [self.num_target_tokens]

    def get_config(self):
        return {"grid_size": self.grid_size, "ratio": self.ratio, "seed": self.seed}
