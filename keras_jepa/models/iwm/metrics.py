"""How well a world model applies transformations in latent space: mean reciprocal rank.

IWM's equivariance metric (Garrido et al., 2024): for each image, a *bank* of ``N`` target
views, each made from the same image with its own colour-jitter parameters, is encoded by
the target encoder. The predictor then receives the clean source view and, in turn, the
action leading to each bank member; the correct member is ranked among the ``N`` by the
distance between its latents and the prediction, and ``1 / rank`` is averaged over bank
members and images. A predictor that ignores the action gives one prediction for the
whole bank, so the correct member's rank is uniform: the expected MRR is the chance level
``H_N / N`` (:func:`chance_mrr`; 0.21 for ``N = 16``, 0.024 for the paper's ``N = 256``).
"""

import numpy as np


def reciprocal_ranks(predictions, bank, true_indices=None, metric="l2"):
    """``1 / rank`` of the true bank member for every prediction.

    Args:
        predictions: ``(Q, M, ...)``: ``M`` predictions per query image.
        bank: ``(Q, N, ...)``: the ``N`` candidate latents of each query image.
        true_indices: ``(Q, M)`` ints: which bank member each prediction should find
            (default: ``M == N`` and prediction ``j`` belongs to member ``j``).
        metric: ``"l2"`` (squared Euclidean distance) or ``"cosine"`` (1 - cosine).

    Returns:
        ``(Q, M)`` float64; rank 1 means no other member is strictly closer.

    Example:

    >>> import numpy as np
    >>> bank = np.random.RandomState(0).randn(2, 5, 3)
    >>> float(reciprocal_ranks(bank, bank).mean())
    1.0
    """
    predictions = np.asarray(predictions, "float64")
    bank = np.asarray(bank, "float64")
    if predictions.ndim < 2 or bank.ndim < 2 or predictions.shape[0] != bank.shape[0]:
        raise ValueError(
            f"predictions (Q, M, ...) and bank (Q, N, ...) must share Q; got shapes "
            f"{predictions.shape} and {bank.shape}."
        )
    q, m = predictions.shape[:2]
    n = bank.shape[1]
    p = predictions.reshape(q, m, -1)
    b = bank.reshape(q, n, -1)
    if p.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"predictions and bank latents differ in size: {predictions.shape[2:]} vs "
            f"{bank.shape[2:]}."
        )
    if true_indices is None:
        if m != n:
            raise ValueError(f"Without true_indices, M must equal N; got M={m}, N={n}.")
        true_indices = np.tile(np.arange(n), (q, 1))
    true_indices = np.asarray(true_indices)
    if true_indices.shape != (q, m):
        raise ValueError(f"true_indices must have shape {(q, m)}; got {true_indices.shape}.")
    if metric == "l2":
        dist = (np.sum(p * p, -1)[:, :, None] - 2.0 * np.einsum("qmf,qnf->qmn", p, b)
                + np.sum(b * b, -1)[:, None, :])
    elif metric == "cosine":
        pn = p / np.maximum(np.linalg.norm(p, axis=-1, keepdims=True), 1e-12)
        bn = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
        dist = 1.0 - np.einsum("qmf,qnf->qmn", pn, bn)
    else:
        raise ValueError(f"metric must be 'l2' or 'cosine'; got {metric!r}.")
    true = np.take_along_axis(dist, true_indices[:, :, None], axis=2)
    ranks = 1 + np.sum(dist < true, axis=2)
    return 1.0 / ranks


def mean_reciprocal_rank(predictions, bank, true_indices=None, metric="l2"):
    """Mean of :func:`reciprocal_ranks`, a float in ``(0, 1]``.

    Example:

    >>> import numpy as np
    >>> bank = np.random.RandomState(0).randn(4, 8, 6)
    >>> constant = np.zeros_like(bank)  # one prediction for every bank member
    >>> round(mean_reciprocal_rank(constant, bank), 4) == round(chance_mrr(8), 4)
    True
    """
    return float(np.mean(reciprocal_ranks(predictions, bank, true_indices, metric)))


def chance_mrr(bank_size):
    """Expected MRR of a uniformly random rank among ``bank_size``: ``H_N / N``.

    Example:

    >>> round(chance_mrr(16), 3)
    0.211
    """
    n = int(bank_size)
    if n < 1:
        raise ValueError(f"bank_size must be a positive int; got {bank_size!r}.")
    return float(np.sum(1.0 / np.arange(1, n + 1)) / n)


def world_model_banks(views, images, bank_size=16, seed=0):
    """Source views, bank target views and actions for :func:`world_model_mrr`.

    Per image: one shared geometry (crop and flip drawn by ``views``); a clean source view
    (no jitter, no destructive augmentation); ``bank_size`` target views, each with colour
    jitter always applied (so no two members coincide). The action of member ``j`` is
    ``action_vector`` of its parameters (its flags are 0: the source is clean).

    Returns:
        ``(sources (Q, S, S, 3), targets (Q, N, S, S, 3), actions (Q, N, 7))``, float32.

    Example:

    >>> import numpy as np
    >>> from keras_jepa.models.iwm.views import PairedViews
    >>> s, t, a = world_model_banks(PairedViews(16), np.random.rand(2, 20, 20, 3), 4)
    >>> s.shape, t.shape, a.shape
    ((2, 16, 16, 3), (2, 4, 16, 16, 3), (2, 4, 7))
    """
    from keras_jepa.models.iwm.views import IDENTITY_JITTER, action_vector

    rng = np.random.default_rng(seed)
    sources, targets, actions = [], [], []
    for image in np.asarray(images):
        unit = views._check(image)
        params = views.sample_params(unit.shape[0], unit.shape[1], rng=rng)
        params.update(source_jitter=np.asarray(IDENTITY_JITTER, "float32"), blur_sigma=0.0,
                      grayscale=False, solarize=False)
        row_t, row_a = [], []
        for _ in range(bank_size):
            params["target_jitter"] = views.sample_jitter(rng, probability=1.0)
            source, target = views.apply(unit, params)
            row_t.append(target)
            row_a.append(action_vector(params))
        sources.append(source)
        targets.append(np.stack(row_t))
        actions.append(np.stack(row_a))
    return (np.stack(sources).astype("float32"), np.stack(targets).astype("float32"),
            np.stack(actions).astype("float32"))


def world_model_mrr(model, images, views, bank_size=16, mask_sampler=None, masked=True,
                    seed=0, batch_size=128, metric="l2"):
    """IWM's MRR of a trained ``keras_jepa.models.IWM`` on ``images``.

    The predictor gets the clean source view's context tokens (the tokens outside
    ``mask_sampler``'s target blocks, one mask per image) and the action of each bank
    member; its predictions at the masked positions are ranked against the target
    encoder's layer-normed features of every bank member at those positions.

    Args:
        model: an ``IWM``.
        images: ``(Q, H, W, 3)`` images (``uint8`` or floats in ``[0, 1]``).
        views: the ``keras_jepa.models.iwm.views.PairedViews`` of the training run.
        bank_size: ``N`` (the paper: 256).
        mask_sampler: a mask sampler; default ``MultiBlockMask`` with 4 target blocks of
            15-20% of the grid and a context of everything else (as IWM trains).
        masked: ``False``: no mask; every source token is context and every position is
            predicted (the predictor-finetuning input, with an action).
        seed: seeds the views and the default masks.
        batch_size: rows per forward pass.
        metric: ``"l2"`` or ``"cosine"``.

    Returns:
        ``{"mrr", "chance", "bank_size", "num_images", "prediction_error",
        "bank_spread"}``: the last two are the mean squared prediction error and the mean
        variance of the bank's latents across members (how much the target features move
        with the transformation at all).
    """
    from keras_jepa.masks import MultiBlockMask

    images = np.asarray(images)
    q = len(images)
    grid = model.encoder.grid_size()
    if not masked:
        every = np.tile(np.arange(int(np.prod(grid)), dtype="int32"), (q, 1))
        mask_sampler = lambda batch, step=0: {"context_indices": every,  # noqa: E731
                                              "target_indices": every}
    if mask_sampler is None:
        mask_sampler = MultiBlockMask(
            grid_size=grid, enc_mask_scale=(1.0, 1.0), pred_mask_scale=(0.15, 0.2),
            npred=4, min_keep=4, faithful=False, seed=seed,
        )
    masks = mask_sampler(q, step=0)
    context = np.asarray(masks["context_indices"][0] if isinstance(
        masks["context_indices"], (list, tuple)) else masks["context_indices"], "int32")
    targets = masks["target_indices"]
    if isinstance(targets, (list, tuple)):
        targets = np.concatenate([np.asarray(t) for t in targets], axis=1)
    targets = np.asarray(targets, "int32")

    sources, bank_views, actions = world_model_banks(views, images, bank_size, seed=seed)
    n = bank_size
    rows = q * n
    flat_sources = np.repeat(sources, n, axis=0)
    flat_views = bank_views.reshape((rows,) + bank_views.shape[2:])
    flat_actions = actions.reshape(rows, -1)
    flat_context = np.repeat(context, n, axis=0)
    flat_targets = np.repeat(targets, n, axis=0)
    # Compiled forward passes (``predict``): the online path of ``model.call`` and the
    # target encoder; the layer norm and the gather of the targets are done here.
    preds = model.predict({"source": flat_sources, "action": flat_actions,
                           "context_indices": flat_context, "target_indices": flat_targets},
                          batch_size=batch_size, verbose=0)["predictions"]
    h = model.target_encoder.predict(flat_views, batch_size=batch_size, verbose=0)
    h = np.asarray(h, "float64")
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5)
    latents = np.take_along_axis(h, flat_targets[:, :, None], axis=1)
    preds = np.asarray(preds, "float64").reshape(q, n, -1)
    latents = latents.reshape(q, n, -1)
    spread = np.mean(np.var(latents, axis=1))
    error = np.mean((preds - latents) ** 2)
    return {"mrr": mean_reciprocal_rank(preds, latents, metric=metric),
            "chance": chance_mrr(n), "bank_size": n, "num_images": q,
            "prediction_error": float(error), "bank_spread": float(spread)}
