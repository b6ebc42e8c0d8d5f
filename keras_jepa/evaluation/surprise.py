"""Violation-of-expectation evaluation with V-JEPA surprise (Garrido et al., 2025).

A frozen V-JEPA (context encoder, EMA target encoder, predictor) watches each video through
sliding windows and predicts the rest of a window from its beginning. Per window and
context length ``C`` (frames):

* context = every token of the first ``C`` frames (``C / tubelet`` time steps), target =
  every token of the remaining frames of the window;
* targets = the target encoder's features of the whole window, layer-normed (no affine),
  at the target positions;
* prediction = ``predictor(encoder(window, context), context, target)`` with mask token 0;
* surprise = mean ``|prediction - target|`` over target tokens and channels.

Videos are first subsampled with ``frame_step``; windows of ``frames_per_clip`` frames start
every ``stride`` frames (the official stride is 2, the windows that do not fit are dropped).
The result per video is an array ``(num_context_lengths, num_windows)``. A video score is
its mean ("avg") or max over windows; "filtered" first takes the minimum over context
lengths per window.

Metrics follow the official ``compute_metrics``. Pairs are aligned (possible ``i`` is
matched with impossible ``i``):

* pairwise (relative) accuracy: ``mean(score(possible) < score(impossible))``;
* absolute accuracy (max): the threshold is the possible videos' max-surprise at sorted
  index ``ceil(0.9 n)`` (clipped to the last one), and a video counts as right when
  ``possible < threshold`` or ``impossible > threshold``;
* best absolute accuracy (max): the same single-video rule at the best of 100 evenly
  spaced thresholds from the lowest possible to the highest impossible max-surprise (an
  oracle threshold, chosen on the evaluated videos);
* AUROC with ``-surprise`` as the score of being possible (ties count one half);
* AUPRC with the same score and positive class (possible): the trapezoidal area under the
  precision-recall points (``auc(recall, precision)`` of scikit-learn's
  ``precision_recall_curve``, not the step-wise average precision);
* bootstrap confidence intervals of the pairwise accuracy, resampling pairs.

The paper's headline number per property is the best row (context length) of the pairwise
accuracy with avg aggregation (``property_table`` reports it along with the row it came
from).
"""

import math

import keras
import numpy as np
from keras import ops

from keras_jepa.models.jepa.base import layer_norm_no_affine

AGGREGATIONS = ("mean", "max")


# --------------------------------------------------------------------------- masks/windows


def time_masks(context_frames, grid_size, tubelet_size=2):
    """Context and target token indices of the causal evaluation masks.

    ``grid_size`` is the encoder's ``(T', H', W')`` token grid of one window; the context is
    the ``C / tubelet_size`` first time steps (all their ``H' x W'`` tokens, row-major
    ``(t, h, w)`` order) and the target the rest.

    Example:

    >>> ctx, tgt = time_masks(2, (4, 2, 2), tubelet_size=2)
    >>> ctx.tolist(), tgt.tolist()[:3], len(tgt)
    ([0, 1, 2, 3], [4, 5, 6], 12)
    """
    t_steps, h, w = (int(g) for g in grid_size)
    c = int(context_frames)
    if c <= 0 or c % int(tubelet_size) or c // int(tubelet_size) >= t_steps:
        raise ValueError(
            f"context length {context_frames} must be a positive multiple of the tubelet "
            f"size {tubelet_size} and shorter than the window ({t_steps * tubelet_size} "
            "frames)."
        )
    split = (c // int(tubelet_size)) * h * w
    total = t_steps * h * w
    return np.arange(split, dtype="int32"), np.arange(split, total, dtype="int32")


def subsample_frames(video, frame_step=1, max_frames=None):
    """``video[::frame_step][:max_frames]`` (the official reader takes every
    ``frame_step``-th frame from the first one).

    Example:

    >>> subsample_frames(np.arange(10), frame_step=2, max_frames=3).tolist()
    [0, 2, 4]
    """
    if int(frame_step) < 1:
        raise ValueError(f"frame_step must be >= 1; got {frame_step}.")
    out = video[:: int(frame_step)]
    return out if max_frames is None else out[: int(max_frames)]


def window_starts(num_frames, frames_per_clip, stride=2):
    """Start frames of the sliding windows (``unfold(frames_per_clip, stride)``).

    Example:

    >>> window_starts(20, 16, 2).tolist()
    [0, 2, 4]
    """
    if int(num_frames) < int(frames_per_clip):
        raise ValueError(
            f"A video of {num_frames} frames (after subsampling) is shorter than one window "
            f"of frames_per_clip={frames_per_clip}; lower frame_step or frames_per_clip."
        )
    return np.arange(0, int(num_frames) - int(frames_per_clip) + 1, int(stride))


def preprocess_videos(videos, normalize="imagenet"):
    """Frames as the model reads them: uint8 ``[0, 255]`` or float ``[0, 1]`` videos,
    ImageNet-normalised (``normalize=None`` passes them through unchanged, float32).

    Example:

    >>> preprocess_videos(np.zeros((1, 2, 4, 4, 3), "uint8")).dtype
    dtype('float32')
    """
    from keras_jepa.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    x = np.asarray(videos)
    if normalize is None:
        return x.astype("float32")
    if normalize != "imagenet":
        raise ValueError(f"normalize must be 'imagenet' or None; got {normalize!r}.")
    x = x.astype("float32") / 255.0 if x.dtype == np.uint8 else x.astype("float32")
    return (x - np.asarray(IMAGENET_MEAN, "float32")) / np.asarray(IMAGENET_STD, "float32")


# --------------------------------------------------------------------------- model


class SurpriseModel(keras.Model):
    """Per-window surprise of a V-JEPA for several context lengths: ``(B, F, H, W, C)``
    windows -> ``(B, num_context_lengths)`` float32. It shares the layers (and weights) of
    the model it wraps; ``predict`` runs it compiled with static shapes.

    Args:
        model: an object with ``encoder``, ``target_encoder`` and ``predictor`` (a
            ``keras_jepa.models.VJEPA``).
        context_lengths: context lengths in frames (multiples of the tubelet size).
        mask_index: predictor mask token (0, as the official evaluation).
        normalize_targets: layer-norm the target features (official default True).

    Example:

    >>> from keras_jepa.models import VisionTransformer, VJEPA
    >>> enc = VisionTransformer(image_size=16, patch_size=8, num_frames=4, hidden_dim=32,
    ...                         depth=1, num_heads=2)
    >>> vjepa = VJEPA(enc, predictor_dim=16, predictor_depth=1, predictor_heads=2,
    ...               ema_momentum=(0.99, 0.99))
    >>> head = SurpriseModel(vjepa, context_lengths=(2,))
    >>> tuple(head(np.zeros((3, 4, 16, 16, 3), "float32")).shape)
    (3, 1)
    """

    def __init__(self, model, context_lengths=(2,), mask_index=0, normalize_targets=True,
                 **kwargs):
        super().__init__(**kwargs)
        for name in ("encoder", "target_encoder", "predictor"):
            if not hasattr(model, name):
                raise ValueError(
                    f"model must have encoder, target_encoder and predictor (a V-JEPA); "
                    f"{type(model).__name__} has no {name!r}."
                )
        self.encoder = model.encoder
        self.target_encoder = model.target_encoder
        self.predictor = model.predictor
        if not self.encoder.is_video:
            raise ValueError("video_surprise needs a video encoder (num_frames set).")
        self.context_lengths = tuple(int(c) for c in context_lengths)
        self.mask_index = int(mask_index)
        self.normalize_targets = bool(normalize_targets)
        grid = self.encoder.grid_size()
        self.masks = [time_masks(c, grid, self.encoder.tubelet_size)
                      for c in self.context_lengths]

    def call(self, windows):
        batch = ops.shape(windows)[0]
        h = self.target_encoder(windows, training=False)
        if self.normalize_targets:
            h = layer_norm_no_affine(h)
        h = ops.cast(h, "float32")
        out = []
        for ctx, tgt in self.masks:
            ctx_b = ops.broadcast_to(ops.convert_to_tensor(ctx)[None], (batch, len(ctx)))
            tgt_b = ops.broadcast_to(ops.convert_to_tensor(tgt)[None], (batch, len(tgt)))
            z = self.encoder(windows, token_indices=ctx_b, training=False)
            pred = self.predictor(z, ctx_b, tgt_b, mask_index=self.mask_index, training=False)
            target = ops.take(h, ops.convert_to_tensor(tgt), axis=1)
            diff = ops.abs(ops.cast(pred, "float32") - target)
            out.append(ops.mean(diff, axis=(1, 2)))
        return ops.stack(out, axis=1)


def video_surprise(model, videos, frames_per_clip=None, frame_step=1, stride=2,
                   context_lengths=None, max_frames=None, batch_size=16,
                   normalize="imagenet", mask_index=0, normalize_targets=True, verbose=0):
    """Surprise of ``model`` on each video, per context length and sliding window.

    Args:
        model: a ``keras_jepa.models.VJEPA`` (or anything with ``encoder``,
            ``target_encoder``, ``predictor``); its encoder's ``num_frames`` must equal
            ``frames_per_clip`` and its ``image_size`` the frame size. A
            :class:`SurpriseModel` is used as is (build one to reuse its compiled forward
            pass over many calls).
        videos: ``(N, T, H, W, 3)`` array, or a list of ``(T_i, H, W, 3)`` arrays (lengths
            may differ), uint8 or floats in ``[0, 1]`` (see ``normalize``).
        frames_per_clip: window length (default: the encoder's ``num_frames``; official 16
            for IntPhys/GRASP, 32 for InfLevel).
        frame_step: temporal subsampling (official 2 IntPhys, 10 GRASP, 5 InfLevel).
        stride: window stride in subsampled frames (official 2).
        context_lengths: frames of context (official ``(2, 4, 6, 8, 10)``, InfLevel
            ``(4, ..., 20)``); default: every multiple of the tubelet shorter than the window.
        max_frames: keep at most this many subsampled frames (official ``99 // frame_step``
            for IntPhys).
        batch_size: windows per forward pass (windows of all videos are batched together
            and padded to a multiple of it, so every call has the same static shape).
        normalize: ``"imagenet"`` (official) or ``None`` (videos already preprocessed).
        mask_index, normalize_targets: see :class:`SurpriseModel`.
        verbose: 1 shows a progress bar.

    Returns:
        float32 ``(N, num_context_lengths, num_windows)`` when all videos give the same
        number of windows, else a list of ``(num_context_lengths, num_windows_i)`` arrays.

    Example:

    >>> from keras_jepa.models import VisionTransformer, VJEPA
    >>> enc = VisionTransformer(image_size=16, patch_size=8, num_frames=4, hidden_dim=32,
    ...                         depth=1, num_heads=2)
    >>> vjepa = VJEPA(enc, predictor_dim=16, predictor_depth=1, predictor_heads=2,
    ...               ema_momentum=(0.99, 0.99))
    >>> videos = np.random.RandomState(0).rand(2, 8, 16, 16, 3).astype("float32")
    >>> video_surprise(vjepa, videos, context_lengths=(2,), stride=2).shape
    (2, 1, 3)
    """
    head = model if isinstance(model, SurpriseModel) else None
    if head is not None:
        if context_lengths is not None and tuple(context_lengths) != head.context_lengths:
            raise ValueError(
                f"context_lengths={tuple(context_lengths)} differ from the SurpriseModel's "
                f"{head.context_lengths}."
            )
        context_lengths = head.context_lengths
    encoder = model.encoder
    fpc = int(frames_per_clip or encoder.num_frames)
    if encoder.num_frames is not None and fpc != encoder.num_frames:
        # The sin-cos table is sized for num_frames; other lengths would interpolate.
        raise ValueError(
            f"frames_per_clip={fpc} differs from the encoder's num_frames="
            f"{encoder.num_frames}; build the encoder for {fpc}-frame windows."
        )
    ts = encoder.tubelet_size
    if context_lengths is None:
        context_lengths = tuple(range(ts, fpc, ts))
    single = isinstance(videos, np.ndarray) and videos.ndim == 5
    clips = [subsample_frames(np.asarray(v), frame_step, max_frames) for v in videos]
    size = tuple(encoder.image_size)
    windows, owner = [], []
    for i, clip in enumerate(clips):
        if clip.ndim != 4 or tuple(clip.shape[1:3]) != size:
            raise ValueError(
                f"video {i} has frames of shape {tuple(clip.shape[1:])}; the encoder expects "
                f"{size + (encoder.num_channels,)} (resize the frames first)."
            )
        for s in window_starts(len(clip), fpc, stride):
            windows.append(clip[s:s + fpc])
            owner.append(i)
    windows = preprocess_videos(np.stack(windows), normalize)
    if head is None:
        head = SurpriseModel(model, context_lengths, mask_index=mask_index,
                             normalize_targets=normalize_targets)
    total = len(windows)
    batch = int(batch_size)  # always this batch, padded: one compiled shape per head
    pad = (-total) % batch
    if pad:
        windows = np.concatenate([windows, np.repeat(windows[-1:], pad, axis=0)])
    values = np.asarray(head.predict(windows, batch_size=batch, verbose=verbose),
                        "float32")[:total]
    owner = np.asarray(owner)
    per_video = [values[owner == i].T for i in range(len(clips))]
    if single or len({p.shape[1] for p in per_video}) == 1:
        return np.stack(per_video)
    return per_video


# --------------------------------------------------------------------------- aggregation


def aggregate_surprise(surprise, reduce="mean", context=None):
    """Video scores from ``(N, num_context_lengths, num_windows)`` surprises (or a list of
    per-video arrays).

    ``reduce`` over windows: ``"mean"`` ("avg") or ``"max"``. ``context``: the index of a
    context length, or ``"filtered"`` (minimum over context lengths per window, as the
    official "Filtered" row); ``None`` returns all rows ``(N, num_context_lengths)``.

    Example:

    >>> s = np.array([[[1.0, 3.0], [2.0, 0.5]]])
    >>> aggregate_surprise(s, "mean").tolist(), aggregate_surprise(s, "max", "filtered")
    ([[2.0, 1.25]], array([1.]))
    """
    if reduce not in AGGREGATIONS:
        raise ValueError(f"reduce must be one of {AGGREGATIONS}; got {reduce!r}.")
    fn = np.mean if reduce == "mean" else np.max
    rows = []
    for s in surprise:
        s = np.asarray(s, "float64")
        if context == "filtered":
            rows.append(fn(s.min(axis=0)))
        elif context is None:
            rows.append(fn(s, axis=-1))
        else:
            rows.append(fn(s[int(context)]))
    return np.asarray(rows)


# --------------------------------------------------------------------------- metrics


def _pair_arrays(possible, impossible):
    p = np.asarray(possible, "float64").reshape(-1)
    i = np.asarray(impossible, "float64").reshape(-1)
    if p.shape != i.shape or not len(p):
        raise ValueError(
            f"possible and impossible scores must be aligned pairs of equal, non-zero "
            f"length; got {p.shape} and {i.shape}."
        )
    return p, i


def pairwise_accuracy(possible, impossible):
    """Fraction of matched pairs whose possible video is strictly less surprising.

    Example:

    >>> pairwise_accuracy([0.1, 0.5, 0.3], [0.2, 0.4, 0.3])
    0.3333333333333333
    """
    p, i = _pair_arrays(possible, impossible)
    return float(np.mean(p < i))


def absolute_threshold(possible, quantile=0.9):
    """The official threshold: sorted possible scores at index ``ceil(quantile * n)``
    (clipped to the last index).

    Example:

    >>> absolute_threshold(np.arange(10.0))
    9.0
    """
    p = np.sort(np.asarray(possible, "float64").reshape(-1))
    return float(p[min(int(math.ceil(quantile * len(p))), len(p) - 1)])


def absolute_accuracy(possible, impossible, quantile=0.9):
    """Single-video accuracy at :func:`absolute_threshold` of the possible scores:
    possible counts right below it, impossible above it (both strict).

    Example:

    >>> round(absolute_accuracy([1.0, 2.0, 3.0], [2.5, 4.0, 5.0]), 4)  # threshold 3.0
    0.6667
    """
    p = np.asarray(possible, "float64").reshape(-1)
    i = np.asarray(impossible, "float64").reshape(-1)
    thr = absolute_threshold(p, quantile)
    return float((np.sum(p < thr) + np.sum(i > thr)) / (len(p) + len(i)))


def auroc(possible, impossible):
    """Area under the ROC curve for telling possible (positive, score ``-surprise``) from
    impossible videos: ``P(s_possible < s_impossible) + P(tie) / 2``.

    Example:

    >>> auroc([0.1, 0.2], [0.3, 0.2])
    0.875
    """
    p = np.asarray(possible, "float64").reshape(-1)
    i = np.asarray(impossible, "float64").reshape(-1)
    less = (p[:, None] < i[None, :]).mean()
    ties = (p[:, None] == i[None, :]).mean()
    return float(less + 0.5 * ties)


def best_absolute_accuracy(possible, impossible, num_thresholds=100,
                           return_threshold=False):
    """The official "best absolute accuracy": the single-video accuracy of
    :func:`absolute_accuracy`'s rule (possible right below the threshold, impossible above
    it, both strict) at the best of ``num_thresholds`` evenly spaced thresholds from the
    lowest possible score to the highest impossible score (first one on ties).

    The threshold is picked on the scored videos themselves, so this is an upper bound of
    what a fixed threshold reaches. (The official code divides by twice the number of
    possible videos; for matched pairs that is the number of videos, as here.)

    Example:

    >>> best_absolute_accuracy([1.0, 2.0, 3.0], [2.5, 4.0, 5.0])  # threshold between 2 and 2.5
    0.8333333333333334
    """
    p = np.asarray(possible, "float64").reshape(-1)
    i = np.asarray(impossible, "float64").reshape(-1)
    if not len(p) or not len(i):
        raise ValueError(
            f"Need possible and impossible scores; got {len(p)} and {len(i)}.")
    thresholds = np.linspace(p.min(), i.max(), int(num_thresholds))
    right = (p[None, :] < thresholds[:, None]).sum(1) + (i[None, :] > thresholds[:, None]).sum(1)
    accuracy = right / (len(p) + len(i))
    best = int(np.argmax(accuracy))
    if return_threshold:
        return float(accuracy[best]), float(thresholds[best])
    return float(accuracy[best])


def precision_recall(possible, impossible):
    """Recall and precision of "possible" (positive, score ``-surprise``) at every distinct
    threshold, from the strictest to the loosest, after the point ``(recall 0, precision
    1)``: the points of scikit-learn's ``precision_recall_curve``, in increasing recall.

    Example:

    >>> r, p = precision_recall([0.1, 0.3], [0.2])
    >>> r.tolist(), p.round(3).tolist()
    ([0.0, 0.5, 0.5, 1.0], [1.0, 1.0, 0.5, 0.667])
    """
    p = np.asarray(possible, "float64").reshape(-1)
    i = np.asarray(impossible, "float64").reshape(-1)
    if not len(p):
        raise ValueError("Need at least one possible video (the positive class).")
    surprise = np.concatenate([p, i])
    positive = np.concatenate([np.ones(len(p)), np.zeros(len(i))])
    order = np.argsort(surprise, kind="stable")      # least surprising (most possible) first
    surprise, positive = surprise[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(surprise) != 0), len(surprise) - 1]
    true_pos = np.cumsum(positive)[last]
    predicted = last + 1.0
    return np.r_[0.0, true_pos / len(p)], np.r_[1.0, true_pos / predicted]


def auprc(possible, impossible, method="trapezoid"):
    """Area under the precision-recall curve of "possible" (positive, score ``-surprise``).

    ``method="trapezoid"`` (official: ``auc(recall, precision)`` over the points of
    :func:`precision_recall`) joins the points by straight lines; ``"step"`` is the
    average precision ``sum_k (R_k - R_{k-1}) P_k`` (scikit-learn's
    ``average_precision_score``), which does not interpolate and is usually lower.

    Example:

    >>> round(auprc([0.1, 0.3], [0.2]), 4), round(auprc([0.1, 0.3], [0.2], "step"), 4)
    (0.7917, 0.8333)
    """
    recall, precision = precision_recall(possible, impossible)
    if method == "trapezoid":
        return float(np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2.0))
    if method == "step":
        return float(np.sum(np.diff(recall) * precision[1:]))
    raise ValueError(f"method must be 'trapezoid' or 'step'; got {method!r}.")


def bootstrap_ci(possible, impossible, num_samples=1000, confidence=0.95, seed=0):
    """Percentile bootstrap interval of :func:`pairwise_accuracy`, resampling pairs.

    Example:

    >>> bootstrap_ci([0.0] * 10, [1.0] * 10)
    (1.0, 1.0)
    """
    p, i = _pair_arrays(possible, impossible)
    correct = (p < i).astype("float64")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(correct), size=(int(num_samples), len(correct)))
    means = correct[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha))


def voe_metrics(possible_surprise, impossible_surprise, context_lengths=None):
    """The official metric rows from aligned surprises ``(P, num_context_lengths, W)`` of
    possible and impossible videos: one row per context length and ``"filtered"``, each
    ``{"pairwise_avg", "pairwise_max", "absolute_max", "best_absolute_max", "auroc_avg",
    "auroc_max", "auprc_avg", "auprc_max"}`` (``_avg`` / ``_max``: mean or max surprise
    over the windows).

    Example:

    >>> p = np.array([[[1.0, 1.0]], [[1.0, 2.0]]]); i = np.array([[[1.0, 3.0]], [[1.0, 1.0]]])
    >>> voe_metrics(p, i, context_lengths=(4,))[4]["pairwise_avg"]
    0.5
    """
    num_c = len(possible_surprise[0])
    names = list(context_lengths) if context_lengths is not None else list(range(num_c))
    rows = {}
    for k, name in enumerate(names + ["filtered"]):
        ctx = "filtered" if name == "filtered" else k
        pm, im = (aggregate_surprise(s, "mean", ctx) for s in (possible_surprise,
                                                               impossible_surprise))
        px, ix = (aggregate_surprise(s, "max", ctx) for s in (possible_surprise,
                                                              impossible_surprise))
        rows[name] = {
            "pairwise_avg": pairwise_accuracy(pm, im),
            "pairwise_max": pairwise_accuracy(px, ix),
            "absolute_max": absolute_accuracy(px, ix),
            "best_absolute_max": best_absolute_accuracy(px, ix),
            "auroc_avg": auroc(pm, im),
            "auroc_max": auroc(px, ix),
            "auprc_avg": auprc(pm, im),
            "auprc_max": auprc(px, ix),
        }
    return rows


def property_table(possible_surprise, impossible_surprise, properties, context_lengths=None,
                   num_bootstrap=1000, seed=0):
    """Per-property summary: the best context-length row of pairwise accuracy (avg), as
    the paper reports, with its row, a bootstrap interval, and the other metrics of that
    row; plus ``"all"`` over every pair.

    Returns ``{property: {...the metrics of voe_metrics..., "best_row", "ci",
    "num_pairs"}}``.

    Example:

    >>> p = np.zeros((4, 1, 2)); i = np.ones((4, 1, 2))
    >>> property_table(p, i, ["a", "a", "b", "b"])["b"]["pairwise_avg"]
    1.0
    """
    properties = np.asarray(properties)
    groups = list(dict.fromkeys(properties.tolist())) + ["all"]
    table = {}
    for prop in groups:
        sel = np.ones(len(properties), bool) if prop == "all" else properties == prop
        ps = [possible_surprise[k] for k in np.flatnonzero(sel)]
        ims = [impossible_surprise[k] for k in np.flatnonzero(sel)]
        rows = voe_metrics(ps, ims, context_lengths)
        best = max(rows, key=lambda r: rows[r]["pairwise_avg"])
        ctx = "filtered" if best == "filtered" else list(rows).index(best)
        ci = bootstrap_ci(aggregate_surprise(ps, "mean", ctx),
                          aggregate_surprise(ims, "mean", ctx),
                          num_samples=num_bootstrap, seed=seed)
        table[prop] = dict(rows[best], best_row=best, ci=ci, num_pairs=int(sel.sum()))
    return table


def format_table(tables, title=None):
    """Text table of pairwise accuracy (avg) per property for one or more
    :func:`property_table` results (``{column name: table}``).

    Example:

    >>> t = {"a": {"pairwise_avg": 1.0, "ci": (1.0, 1.0), "num_pairs": 2}}
    >>> print(format_table({"model": t}))
    property              pairs  model
    a                         2  100.0 [100-100]
    """
    names = list(tables)
    props = list(next(iter(tables.values())))
    lines = [title] if title else []
    width = max([20] + [len(str(p)) for p in props])
    lines.append(f"{'property':<{width}} {'pairs':>6}  " + "  ".join(f"{n:<16}" for n in names))
    for prop in props:
        cells = []
        for n in names:
            row = tables[n][prop]
            lo, hi = row["ci"]
            cells.append(f"{100 * row['pairwise_avg']:5.1f} [{100 * lo:.0f}-{100 * hi:.0f}]")
        count = next(iter(tables.values()))[prop]["num_pairs"]
        lines.append(f"{prop:<{width}} {count:>6}  " + "  ".join(f"{c:<16}" for c in cells))
    return "\n".join(line.rstrip() for line in lines)


METRIC_COLUMNS = (
    ("pairwise_avg", "rel avg"), ("pairwise_max", "rel max"), ("absolute_max", "abs max"),
    ("best_absolute_max", "best abs"), ("auroc_avg", "AUROC avg"),
    ("auroc_max", "AUROC max"), ("auprc_avg", "AUPRC avg"), ("auprc_max", "AUPRC max"),
)


def format_metrics(table, title=None):
    """Text table of every metric (in %) of one :func:`property_table` result, at each
    property's best context row: relative (pairwise) accuracy, absolute and best absolute
    accuracy, AUROC and AUPRC.

    Example:

    >>> row = dict.fromkeys([k for k, _ in METRIC_COLUMNS], 0.5)
    >>> text = format_metrics({"a": dict(row, best_row=4, num_pairs=2)})
    >>> text.splitlines()[0].split()[:6], text.splitlines()[1].split()[:5]
    (['property', 'pairs', 'row', 'rel', 'avg', 'rel'], ['a', '2', '4', '50.0', '50.0'])
    """
    lines = [title] if title else []
    width = max([20] + [len(str(p)) for p in table])
    lines.append(f"{'property':<{width}} {'pairs':>6}  {'row':<8} "
                 + " ".join(f"{name:>9}" for _, name in METRIC_COLUMNS))
    for prop, row in table.items():
        cells = " ".join(f"{100 * row[key]:9.1f}" for key, _ in METRIC_COLUMNS)
        lines.append(f"{prop:<{width}} {row['num_pairs']:>6}  {str(row['best_row']):<8} "
                     + cells)
    return "\n".join(lines)


def plot_surprise_pair(possible, impossible, path, window_starts=None, splice=None,
                       title="Surprise over time", xlabel=None):
    """Saves a PNG of two per-window surprise curves (one context length): the possible
    video and its impossible match, with the splice frame marked. Returns ``path``.

    ``window_starts`` places the points on a frame axis (default: window index);
    ``xlabel`` names that axis when the points are not window starts (e.g. the frame where
    the context ends, for one window seen at several context lengths).

    Example:

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "s.png")
    >>> plot_surprise_pair([0.1, 0.2], [0.1, 0.5], path, splice=1) == path
    True
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    possible = np.asarray(possible, "float64").reshape(-1)
    impossible = np.asarray(impossible, "float64").reshape(-1)
    x = np.arange(len(possible)) if window_starts is None else np.asarray(window_starts)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(x, possible, "o-", color="tab:blue", label="possible")
    ax.plot(x, impossible, "s-", color="tab:red", label="impossible")
    if splice is not None:
        ax.axvline(splice, color="gray", linestyle="--", label="splice")
    if xlabel is None:
        xlabel = "window start (frame)" if window_starts is not None else "window"
    ax.set_xlabel(xlabel)
    ax.set_ylabel("surprise (L1)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
