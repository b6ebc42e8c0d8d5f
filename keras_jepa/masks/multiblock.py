"""I-JEPA multi-block masks: a few small target rectangles and one large context rectangle."""

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
    index_mask,
    random_sort_keys,
    rows_mask,
    size_groups,
)

# The official collator lowers the number of target complements imposed on a context block
# after this many consecutive invalid draws.
_TIMEOUT = 20


class MultiBlockMask(MaskSampler):
    """I-JEPA's multi-block mask sampler, with static token counts.

    Per batch (as in the official collator) one target block size ``(h, w)`` and one context
    block size are drawn; every image then gets ``npred`` target rectangles and ``nenc`` context
    rectangles at uniformly random places. Without ``allow_overlap`` the target rectangles are
    cut out of each context rectangle. A context that keeps ``min_keep`` tokens or fewer is
    redrawn; after 20 failed draws one fewer target is cut out (official rule).

    Block size: ``keep = int(H * W * scale)``, ``h = round(sqrt(keep * ar))``,
    ``w = round(sqrt(keep / ar))``, with ``scale`` from ``*_mask_scale`` and ``ar`` from
    ``aspect_ratio`` (the context block uses aspect ratio 1). ``h, w`` are at least 1.

    ``faithful=True`` reproduces the official sampler's quirks:

    - one uniform draw sets both the scale and the aspect ratio of a block (so large target
      blocks are always tall, small ones wide);
    - corners are drawn with ``randint(0, H - h)``, upper bound exclusive, so the last row and
      the last column of the grid are never covered by any block (context included: with the
      default scales the context block is always the top-left ``(H-1) x (W-1)``);
    - block sides are capped at ``H - 1`` and ``W - 1``;
    - a context longer than its budget keeps its lowest indices (see below).

    ``faithful=False`` draws scale and aspect ratio independently, places corners in
    ``[0, H - h]`` inclusive, allows full-size blocks, and truncates contexts to a uniform
    random subset.

    **Static budget.** Every call returns ``num_context_tokens`` (Kc) context and
    ``num_target_tokens`` (Kt) target indices per row. By default each budget is the expected
    length that the official collator would return for that mask at the official per-device
    batch size (``reference_batch_size=128``): the collator truncates every mask to the batch
    minimum, so this is the expected batch minimum of the untruncated lengths, estimated once
    per configuration from 32768 images drawn with a fixed seed (independent of ``seed``).
    A mask longer than its budget keeps a subset: for targets always a uniform random subset of
    the rectangle (the official code never truncates a target, since all targets of a batch
    have the same size); for contexts the lowest indices when ``faithful`` (the official
    truncation, which favours the top rows) or a uniform random subset otherwise. A mask
    shorter than its budget is padded by repeating some of its own tokens, drawn uniformly;
    rows are sorted, so a repeat sits next to its original and
    ``keras_jepa.masks.first_occurrence_mask`` finds it.

    Consequences: the mean numbers of context and target tokens match the official run with 128
    images per device, whatever the batch size or device count here; no block geometry is
    resampled or biased. Target blocks larger than Kt lose random tokens (holes that are neither
    context nor target); blocks smaller than Kt, and the rare contexts shorter than Kc, carry
    duplicates, which get twice the attention weight as keys; the JEPA losses weight target
    tokens by first occurrence (``keras_jepa.models.jepa.base.first_occurrence_weights``), so
    every real target token counts once, as in the official loss over unpadded masks. With
    the official configuration Kc = 69 and Kt = 44 (the official mean counts are 68.3 and
    44.2; the target blocks' areas are 35, 36, 42, 48 or 54): about 63% of batches pad
    their targets with 2, 8 or 9 repeats per block, 37% drop 4 or 10 tokens per block, and
    about 1% of contexts are padded. The union of the four targets covers 43.7% of the grid
    against 44.9% officially.

    Args:
        grid_size: ``(H, W)`` patch grid, or an int for a square grid.
        enc_mask_scale: range of the context block's area as a fraction of the grid.
        pred_mask_scale: range of each target block's area as a fraction of the grid.
        aspect_ratio: range of the target blocks' height / width.
        nenc: number of context masks per image.
        npred: number of target masks per image.
        min_keep: a context mask must keep more than this many tokens.
        allow_overlap: if ``False``, context masks exclude every target block.
        faithful: reproduce the official quirks (see above).
        seed: non-negative int; a batch is a pure function of ``(seed, step)``.
        num_context_tokens: override of Kc (``None``: the rule above).
        num_target_tokens: override of Kt (``None``: the rule above).
        reference_batch_size: per-device batch size at which the default budgets match the
            official collator's.

    Returns (when called as ``sampler(batch_size, step=None)``):
        ``{"context_indices": nenc int32 arrays (B, Kc), "target_indices": npred int32 arrays
        (B, Kt)}``, flat row-major indices sorted within each row.

    Example:

    >>> sampler = MultiBlockMask(grid_size=16, seed=0)
    >>> masks = sampler(batch_size=4)
    >>> [m.shape for m in masks["context_indices"]], len(masks["target_indices"])
    ([(4, 69)], 4)
    >>> masks["target_indices"][0].shape == (4, sampler.num_target_tokens)
    True
    >>> sampler.state
    {'step': 1}
    """

    def __init__(
        self,
        grid_size,
        enc_mask_scale=(0.85, 1.0),
        pred_mask_scale=(0.15, 0.2),
        aspect_ratio=(0.75, 1.5),
        nenc=1,
        npred=4,
        min_keep=10,
        allow_overlap=False,
        faithful=True,
        seed=0,
        num_context_tokens=None,
        num_target_tokens=None,
        reference_batch_size=128,
    ):
        grid = check_grid(grid_size, 2, minimum=2 if faithful else 1)
        super().__init__(grid, seed)
        self.enc_mask_scale = check_range("enc_mask_scale", enc_mask_scale, 0.0, 1.0, low_open=True)
        self.pred_mask_scale = check_range(
            "pred_mask_scale", pred_mask_scale, 0.0, 1.0, low_open=True
        )
        self.aspect_ratio = check_range("aspect_ratio", aspect_ratio, 0.0, low_open=True)
        self.nenc = check_int("nenc", nenc, minimum=1)
        self.npred = check_int("npred", npred, minimum=1)
        self.min_keep = check_int("min_keep", min_keep, minimum=0, maximum=self.num_tokens - 1)
        self.allow_overlap = bool(allow_overlap)
        self.faithful = bool(faithful)
        self.reference_batch_size = check_int(
            "reference_batch_size", reference_batch_size, minimum=1
        )
        self._check_context_can_be_valid()
        key = (
            type(self).__name__,
            grid,
            self.enc_mask_scale,
            self.pred_mask_scale,
            self.aspect_ratio,
            self.nenc,
            self.npred,
            self.min_keep,
            self.allow_overlap,
            self.faithful,
            self.reference_batch_size,
        )
        default_kc, default_kt = cached_budget(key, self._estimate_budget)
        n = self.num_tokens
        self._num_context_tokens_arg = num_context_tokens
        self._num_target_tokens_arg = num_target_tokens
        self.num_context_tokens = (
            default_kc
            if num_context_tokens is None
            else check_int("num_context_tokens", num_context_tokens, minimum=1, maximum=n)
        )
        self.num_target_tokens = (
            default_kt
            if num_target_tokens is None
            else check_int("num_target_tokens", num_target_tokens, minimum=1, maximum=n)
        )

    # -- block geometry ---------------------------------------------------------------------

    def _block_sizes(self, rng, count, scale, aspect):
        """``count`` block sizes ``(h, w)`` drawn from ``scale`` and ``aspect`` ranges."""
        height, width = self.grid_size
        u_scale = rng.random(count)
        u_aspect = u_scale if self.faithful else rng.random(count)
        keep = np.floor(height * width * (scale[0] + u_scale * (scale[1] - scale[0])))
        ratio = aspect[0] + u_aspect * (aspect[1] - aspect[0])
        cap = 1 if self.faithful else 0
        h = np.clip(np.round(np.sqrt(keep * ratio)), 1, height - cap).astype(np.int64)
        w = np.clip(np.round(np.sqrt(keep / ratio)), 1, width - cap).astype(np.int64)
        return h, w

    def _corners(self, rng, rows, count, h, w):
        """Flat indices ``(rows, count)`` of random top-left corners for ``h x w`` blocks."""
        height, width = self.grid_size
        extra = 0 if self.faithful else 1
        # floor(u * n) is uniform on {0, ..., n-1}, for all rows at once.
        top = (rng.random((rows, count)) * (height - h + extra)).astype(np.int64)
        left = (rng.random((rows, count)) * (width - w + extra)).astype(np.int64)
        return top * width + left

    def _check_context_can_be_valid(self):
        """Refuses configurations whose context can never keep more than ``min_keep`` tokens."""
        height, width = self.grid_size
        cap = 1 if self.faithful else 0
        keep = np.floor(height * width * self.enc_mask_scale[0])
        side_h = min(max(round(np.sqrt(keep)), 1), height - cap)
        side_w = min(max(round(np.sqrt(keep)), 1), width - cap)
        if side_h * side_w <= self.min_keep:
            raise ValueError(
                f"`min_keep`={self.min_keep} is not below the smallest context block "
                f"({side_h}x{side_w} from enc_mask_scale={self.enc_mask_scale} on grid "
                f"{self.grid_size}); lower `min_keep` or raise `enc_mask_scale`."
            )

    # -- sampling -----------------------------------------------------------------------------

    def _draw(self, rng, rows, pred_size, enc_size):
        """Untruncated masks of ``rows`` images sharing block sizes ``pred_size = (h, w)`` and
        ``enc_size``.

        Returns the targets' flat indices ``(rows, npred, h * w)`` (sorted within each block)
        and the boolean contexts ``(rows, nenc, N)``.
        """
        n = self.num_tokens
        targets = self._corners(rng, rows, self.npred, *pred_size)[..., None]
        targets = targets + block_offsets(pred_size, self.grid_size)
        context_blocks = self._corners(rng, rows, self.nenc, *enc_size)[..., None]
        context_blocks = context_blocks + block_offsets(enc_size, self.grid_size)
        contexts = rows_mask(context_blocks.reshape(rows * self.nenc, -1), n).reshape(
            rows, self.nenc, n
        )
        if self.allow_overlap:
            return targets, contexts
        contexts &= ~rows_mask(targets, n)[:, None]
        for j in range(self.nenc):
            context = contexts[:, j]
            bad = np.flatnonzero(context.sum(axis=1) <= self.min_keep)
            failures = np.zeros(rows, dtype=np.int64)
            while bad.size:
                failures[bad] += 1
                if failures[bad].max() > MAX_REDRAWS:
                    raise RuntimeError(
                        f"No valid context block after {MAX_REDRAWS} draws for {self!r}."
                    )
                # Official fallback: after every 20 failures, cut out one fewer target (the
                # dropped targets are repointed at a kept one, or at nothing when none is kept).
                cut = np.maximum(self.npred - failures[bad] // _TIMEOUT, 0)
                kept = np.minimum(np.arange(self.npred), np.maximum(cut - 1, 0)[:, None])
                cut_out = rows_mask(np.take_along_axis(targets[bad], kept[..., None], 1), n)
                cut_out &= (cut > 0)[:, None]
                redraw = self._corners(rng, bad.size, 1, *enc_size) + block_offsets(
                    enc_size, self.grid_size
                )
                redraw = rows_mask(redraw, n) & ~cut_out
                context[bad] = redraw
                bad = bad[redraw.sum(axis=1) <= self.min_keep]
        return targets, contexts

    def _fit_targets(self, rng, targets):
        """Fits the ``(R, npred, area)`` target blocks to ``(R, npred, Kt)``: a uniform random
        subset of each block when it is larger than Kt, the whole block plus uniform repeats
        when smaller. Rows stay sorted."""
        area, k = targets.shape[-1], self.num_target_tokens
        shape = targets.shape[:-1]
        if area >= k:
            keys = random_sort_keys(rng, targets.shape, area)
            keys.sort(axis=-1)
            local = keys[..., :k] & index_mask(area)
        else:
            repeats = rng.integers(0, area, size=shape + (k - area,), dtype=np.int32)
            whole = np.broadcast_to(np.arange(area, dtype=np.int32), shape + (area,))
            local = np.concatenate([whole, repeats], -1)
        local.sort(axis=-1)
        return np.take_along_axis(targets, local, axis=-1).astype(np.int32)

    def _estimate_budget(self):
        """Default (Kc, Kt): the expected batch minimum of the untruncated lengths at the
        reference batch size, from ``BUDGET_ROWS`` images drawn with ``BUDGET_SEED``."""
        rng = np.random.default_rng(BUDGET_SEED)
        sizes = [
            *self._block_sizes(rng, BUDGET_ROWS, self.pred_mask_scale, self.aspect_ratio),
            *self._block_sizes(rng, BUDGET_ROWS, self.enc_mask_scale, (1.0, 1.0)),
        ]
        lengths = np.empty(BUDGET_ROWS, dtype=np.int64)
        for rows, (pred_h, pred_w, enc_h, enc_w) in size_groups(sizes):
            _, contexts = self._draw(rng, rows.size, (pred_h, pred_w), (enc_h, enc_w))
            # The official collator takes one minimum over all context masks of the batch.
            lengths[rows] = contexts.sum(axis=2).min(axis=1)
        groups = np.stack(sizes, axis=1)
        size = self.reference_batch_size
        # Targets are whole blocks, all of one size within a batch.
        return (
            expected_batch_min(lengths, groups, size),
            expected_batch_min(sizes[0] * sizes[1], groups, size),
        )

    def _sample(self, rng, batch_size):
        pred_size = tuple(
            int(a[0]) for a in self._block_sizes(rng, 1, self.pred_mask_scale, self.aspect_ratio)
        )
        enc_size = tuple(
            int(a[0]) for a in self._block_sizes(rng, 1, self.enc_mask_scale, (1.0, 1.0))
        )
        targets, contexts = self._draw(rng, batch_size, pred_size, enc_size)
        kc = self.num_context_tokens
        targets = self._fit_targets(rng, targets)
        contexts = fit_rows(
            contexts.reshape(batch_size * self.nenc, -1), kc, rng, keep_first=self.faithful
        )
        contexts = contexts.reshape(batch_size, self.nenc, kc)
        return {
            "context_indices": [np.ascontiguousarray(contexts[:, j]) for j in range(self.nenc)],
            "target_indices": [np.ascontiguousarray(targets[:, j]) for j in range(self.npred)],
        }

    def _context_budgets(self):
        return [self.num_context_tokens] * self.nenc

    def _target_budgets(self):
        return [self.num_target_tokens] * self.npred

    def get_config(self):
        return {
            "grid_size": self.grid_size,
            "enc_mask_scale": self.enc_mask_scale,
            "pred_mask_scale": self.pred_mask_scale,
            "aspect_ratio": self.aspect_ratio,
            "nenc": self.nenc,
            "npred": self.npred,
            "min_keep": self.min_keep,
            "allow_overlap": self.allow_overlap,
            "faithful": self.faithful,
            "seed": self.seed,
            "num_context_tokens": self._num_context_tokens_arg,
            "num_target_tokens": self._num_target_tokens_arg,
            "reference_batch_size": self.reference_batch_size,
        }
