"""The metrics of the procedural-video literature (numpy): step top-1, procedure planning
(SR, mAcc, mIoU), long-horizon edit distance (ED@Z, minimum over samples), and the
majority vote over sampled forecasts."""

import numpy as np


def top1_accuracy(predictions, labels):
    """Fraction of ``predictions == labels`` (``nan`` for empty input).

    Example:

    >>> top1_accuracy([1, 2, 3], [1, 0, 3])
    0.6666666666666666
    """
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions {predictions.shape} and labels {labels.shape} differ.")
    return float(np.mean(predictions == labels)) if labels.size else float("nan")


def planning_metrics(predicted, true):
    """SR, mAcc and mIoU of plans ``(N, T)`` (see the module docstring).

    Example:

    >>> m = planning_metrics([[1, 2, 3], [4, 5, 6]], [[1, 2, 3], [4, 6, 7]])
    >>> round(m["success_rate"], 3), round(m["mean_accuracy"], 3), round(m["miou"], 3)
    (0.5, 0.667, 0.75)
    """
    predicted, true = np.asarray(predicted), np.asarray(true)
    if predicted.shape != true.shape or predicted.ndim != 2:
        raise ValueError(f"Plans must both be (N, T); got {predicted.shape} and {true.shape}.")
    correct = predicted == true
    ious = []
    for p, t in zip(predicted, true):
        p, t = set(p.tolist()), set(t.tolist())
        ious.append(len(p & t) / len(p | t))
    return {"success_rate": float(correct.all(1).mean()),
            "mean_accuracy": float(correct.mean()), "miou": float(np.mean(ious))}


def edit_distance(a, b):
    """Levenshtein distance between two sequences (insert, delete, substitute: cost 1).

    Example:

    >>> edit_distance([1, 2, 3, 4], [1, 3, 4, 5])
    2
    """
    a, b = list(a), list(b)
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def min_edit_distance(samples, true, normalize=True):
    """``ED@Z``: for each sequence the minimum over its ``K`` samples ``(N, K, Z)`` of the
    edit distance to the truth ``(N, Z)`` (divided by ``Z`` with ``normalize``), averaged.

    Example:

    >>> min_edit_distance([[[1, 2], [1, 3]], [[5, 5], [6, 6]]], [[1, 3], [7, 7]])
    0.5
    """
    samples, true = np.asarray(samples), np.asarray(true)
    if samples.ndim == 2:
        samples = samples[:, None]
    if samples.shape[0] != true.shape[0] or samples.shape[2] != true.shape[1]:
        raise ValueError(f"samples {samples.shape} do not match truth {true.shape}.")
    z = true.shape[1] if normalize else 1
    best = [min(edit_distance(s, t) for s in sample) / z for sample, t in zip(samples, true)]
    return float(np.mean(best))


def majority_vote(classes, tie_break=None):
    """The most frequent class of each row of ``classes`` ``(N, K)``; ties go to the tied
    class with the largest ``tie_break[n, c]`` (e.g. the mean class probability), else to
    the smallest class id.

    Example:

    >>> majority_vote([[3, 1, 3], [2, 5, 5], [1, 2, 0]]).tolist()
    [3, 5, 0]
    """
    classes = np.asarray(classes)
    num = int(classes.max()) + 1 if tie_break is None else np.shape(tie_break)[-1]
    counts = np.zeros((classes.shape[0], num))
    np.add.at(counts, (np.arange(classes.shape[0])[:, None], classes), 1.0)
    if tie_break is not None:  # a tie-break below one vote
        tb = np.asarray(tie_break, "float64")
        counts = counts + 0.5 * tb / np.maximum(tb.max(-1, keepdims=True), 1e-12)
    return counts.argmax(-1)
