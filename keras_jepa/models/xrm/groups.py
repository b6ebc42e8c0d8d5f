"""Groups, environments and worst-group metrics for XRM and group-robust learning (numpy).

Conventions (``facebookresearch/XRM``, checked): an example's group is ``g = 2 * y + m``
with ``m`` in ``{0, 1}`` its environment bit (``num_m = 2``); worst-group accuracy is the
minimum accuracy over the groups *present*; XRM's environment of an example is the
*cross-mistake* bit ``m = 1[f_a(x) != y or f_b(x) != y]`` with the original labels.

Functions:

- ``group_ids``, ``group_metrics``, ``worst_group_accuracy``: metrics.
- ``cross_mistakes``, ``infer_environments``, ``is_degenerate``, ``flip_rate``: XRM phase 1.
- ``group_agreement``, ``adjusted_rand_index``: how well inferred groups match planted ones.
- ``reweighting_weights`` (RWG), ``subsample_groups`` (SUBG): phase-2 batch streams.
- ``sample_hparams``, ``select_by_flip_rate``, ``select_by_worst_group``, ``best_report``:
  the official random search and model selection.
- ``GroupSelection``: a Keras callback that evaluates average and worst-group accuracy on
  validation (and test) every epoch and keeps the best validation report.
"""

import keras
import numpy as np


def _as_labels(values, name):
    values = np.asarray(values)
    if values.ndim > 1:
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        else:
            raise ValueError(f"{name} must be a vector of ints; got shape {values.shape}.")
    return values.astype("int64")


def _predictions(predictions):
    predictions = np.asarray(predictions)
    return predictions.argmax(-1) if predictions.ndim == 2 else predictions.astype("int64")


def group_ids(labels, environments, num_m=2):
    """Group index ``num_m * y + m`` per example.

    Example:

    >>> group_ids([0, 0, 1, 1], [0, 1, 0, 1]).tolist()
    [0, 1, 2, 3]
    """
    labels = _as_labels(labels, "labels")
    environments = _as_labels(environments, "environments")
    if labels.shape != environments.shape:
        raise ValueError(
            f"labels {labels.shape} and environments {environments.shape} differ in length."
        )
    if environments.size and (environments.min() < 0 or environments.max() >= num_m):
        raise ValueError(
            f"environments must lie in [0, {num_m}); got values in "
            f"[{environments.min()}, {environments.max()}]."
        )
    return (num_m * labels + environments).astype("int32")


def group_metrics(labels, predictions, groups):
    """Average accuracy, worst-group accuracy and per-group accuracy (official ``get_metrics``).

    Args:
        labels: ``(N,)`` int.
        predictions: ``(N, C)`` logits/probabilities or ``(N,)`` predicted classes.
        groups: ``(N,)`` int group ids (``group_ids``).

    Returns:
        ``{"avg_acc", "wga", "per_group": {g: acc}, "group_sizes": {g: n}}``; ``wga`` is the
        minimum over the groups present.

    Example:

    >>> metrics = group_metrics([0, 0, 1, 1], [0, 1, 1, 1], [0, 1, 2, 2])
    >>> metrics["avg_acc"], metrics["wga"], metrics["per_group"]
    (0.75, 0.0, {0: 1.0, 1: 0.0, 2: 1.0})
    """
    labels = _as_labels(labels, "labels")
    predicted = _predictions(predictions)
    groups = _as_labels(groups, "groups")
    if not (labels.shape == predicted.shape == groups.shape):
        raise ValueError(
            f"labels {labels.shape}, predictions {predicted.shape} and groups "
            f"{groups.shape} must have the same length."
        )
    if labels.size == 0:
        raise ValueError("group_metrics needs at least one example.")
    correct = predicted == labels
    per_group, sizes = {}, {}
    for g in np.unique(groups):
        picked = groups == g
        per_group[int(g)] = float(correct[picked].mean())
        sizes[int(g)] = int(picked.sum())
    return {
        "avg_acc": float(correct.mean()),
        "wga": min(per_group.values()),
        "per_group": per_group,
        "group_sizes": sizes,
    }


def worst_group_accuracy(labels, predictions, groups):
    """Minimum accuracy over the groups present.

    Example:

    >>> worst_group_accuracy([0, 1, 1], [0, 1, 0], [0, 1, 1])
    0.5
    """
    return group_metrics(labels, predictions, groups)["wga"]


def cross_mistakes(logits_a, logits_b, labels):
    """XRM's environment bit: 1 where either twin misclassifies the example.

    Example:

    >>> import numpy as np
    >>> a = np.array([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0]])   # predicts 0, 0, 1
    >>> b = np.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])   # predicts 0, 1, 0
    >>> cross_mistakes(a, b, [0, 0, 1]).tolist()
    [0, 1, 1]
    """
    labels = _as_labels(labels, "labels")
    wrong_a = _predictions(logits_a) != labels
    wrong_b = _predictions(logits_b) != labels
    return np.logical_or(wrong_a, wrong_b).astype("int32")


def _softmax(logits):
    logits = logits - logits.max(-1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(-1, keepdims=True)


def infer_environments(model, features, labels, index=None, batch_size=1024):
    """Environments of a trained ``XRM`` model for one split (cross-mistake rule).

    Args:
        model: a trained ``keras_jepa.models.xrm.model.XRM``.
        features: ``(N, ...)`` inputs.
        labels: ``(N,)`` *original* labels.
        index: for the training split, each example's row (default ``None``). When given,
            the soft held-out predictions (from the twin that did not train on the example)
            are returned as well, as the official code saves them.
        batch_size: prediction batch size.

    Returns:
        ``{"m": int32 (N,), "held_out": (N, C) probabilities or None, "logits_a",
        "logits_b"}``.

    Example:

    >>> import keras, numpy as np
    >>> from keras_jepa.models.xrm.model import XRM
    >>> x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    >>> xrm = XRM(keras.Sequential([keras.layers.Dense(2)]), num_examples=8)
    >>> out = infer_environments(xrm, x, np.zeros(8, "int32"), index=np.arange(8))
    >>> out["m"].shape, out["held_out"].shape
    ((8,), (8, 2))
    """
    features = np.asarray(features)
    labels = _as_labels(labels, "labels")
    if len(features) != len(labels):
        raise ValueError(
            f"features has {len(features)} rows but labels has {len(labels)}."
        )
    outputs = model.predict(features, batch_size=batch_size, verbose=0)
    logits_a = np.asarray(outputs["logits_a"], "float32")
    logits_b = np.asarray(outputs["logits_b"], "float32")
    result = {
        "m": cross_mistakes(logits_a, logits_b, labels),
        "held_out": None,
        "logits_a": logits_a,
        "logits_b": logits_b,
    }
    if index is not None:
        index = _as_labels(index, "index")
        assigned_a = model.assignment_array()[index][:, None].astype("float32")
        held_out = (1.0 - assigned_a) * logits_a + assigned_a * logits_b
        result["held_out"] = _softmax(held_out)
    return result


def is_degenerate(splits):
    """The official degeneracy rule: some class of some split lacks one of its two
    environments (``len(unique(2y + m)) != 2 * len(unique(y))``).

    Args:
        splits: ``{name: (labels, environments)}``, e.g. ``{"tr": (y_tr, m_tr), "va": ...}``.

    Example:

    >>> is_degenerate({"tr": ([0, 0, 1, 1], [0, 1, 0, 1])})
    False
    >>> is_degenerate({"tr": ([0, 0, 1, 1], [0, 1, 0, 0])})   # class 1 has one environment
    True
    """
    for name, (labels, environments) in splits.items():
        labels = _as_labels(labels, f"labels of {name}")
        groups = group_ids(labels, environments)
        if len(np.unique(groups)) != 2 * len(np.unique(labels)):
            return True
    return False


def flip_rate(dynamic_labels, original_labels):
    """Fraction of examples whose current XRM label differs from the original one.

    Example:

    >>> flip_rate([0, 1, 1, 1], [0, 1, 0, 0])
    0.5
    """
    dynamic_labels = _as_labels(dynamic_labels, "dynamic_labels")
    original_labels = _as_labels(original_labels, "original_labels")
    if dynamic_labels.shape != original_labels.shape:
        raise ValueError(
            f"dynamic_labels {dynamic_labels.shape} and original_labels "
            f"{original_labels.shape} differ in length."
        )
    return float(np.mean(dynamic_labels != original_labels))


def adjusted_rand_index(partition_a, partition_b):
    """Adjusted Rand index of two labellings (1: identical partitions, ~0: unrelated).

    Example:

    >>> adjusted_rand_index([0, 0, 1, 1], [1, 1, 0, 0])
    1.0
    """
    a = _as_labels(partition_a, "partition_a")
    b = _as_labels(partition_b, "partition_b")
    if a.shape != b.shape:
        raise ValueError(f"partitions differ in length: {a.shape} vs {b.shape}.")
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    table = np.zeros((a.max() + 1, b.max() + 1), "float64")
    np.add.at(table, (a, b), 1.0)

    def pairs(counts):
        return float(np.sum(counts * (counts - 1) / 2.0))

    n = len(a)
    index = pairs(table)
    rows, cols = pairs(table.sum(1)), pairs(table.sum(0))
    expected = rows * cols / (n * (n - 1) / 2.0) if n > 1 else 0.0
    maximum = 0.5 * (rows + cols)
    if maximum == expected:
        return 1.0
    return float((index - expected) / (maximum - expected))


def group_agreement(inferred, planted, labels):
    """How well inferred environments recover a planted split.

    Returns ``accuracy`` (``mean(inferred == planted)``), ``precision`` and ``recall`` of
    ``planted == 1`` (the minority, e.g. "colour disagrees with the label"), and ``ari``,
    the adjusted Rand index between the groups ``2y + inferred`` and ``2y + planted``.

    Example:

    >>> out = group_agreement([0, 1, 1, 0], [0, 1, 0, 0], [0, 0, 1, 1])
    >>> out["accuracy"], out["precision"], out["recall"]
    (0.75, 0.5, 1.0)
    """
    inferred = _as_labels(inferred, "inferred")
    planted = _as_labels(planted, "planted")
    labels = _as_labels(labels, "labels")
    hits = np.sum((inferred == 1) & (planted == 1))
    return {
        "accuracy": float(np.mean(inferred == planted)),
        "precision": float(hits / max(np.sum(inferred == 1), 1)),
        "recall": float(hits / max(np.sum(planted == 1), 1)),
        "ari": adjusted_rand_index(group_ids(labels, inferred), group_ids(labels, planted)),
    }


def reweighting_weights(groups):
    """RWG sampling weights ``N / |group(i)|`` (official ``weights_g``): every group is drawn
    equally often in expectation.

    Example:

    >>> reweighting_weights([0, 0, 0, 1]).tolist()
    [1.3333333333333333, 1.3333333333333333, 1.3333333333333333, 4.0]
    """
    groups = _as_labels(groups, "groups")
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    return len(groups) / counts[inverse].astype("float64")


def subsample_groups(groups, seed=0):
    """SUBG: a random subset with every group cut to the size of the smallest one.

    Official ``subg``: walk a random permutation and keep an example while its group has
    fewer than ``min_size`` kept. The official ``min_size`` is taken over all ``2 * C``
    group slots, so a class that lacks one environment empties the training set; here the
    minimum is over the groups present (with groups ``2y`` this is class balancing).

    Returns:
        Sorted row indices.

    Example:

    >>> rows = subsample_groups([0, 0, 0, 1, 1, 2, 2, 2, 2], seed=0)
    >>> len(rows), sorted(set([0, 0, 0, 1, 1, 2, 2, 2, 2][r] for r in rows))
    (6, [0, 1, 2])
    """
    groups = _as_labels(groups, "groups")
    if len(groups) == 0:
        raise ValueError("subsample_groups needs at least one example.")
    values, counts = np.unique(groups, return_counts=True)
    min_size = counts.min()
    rng = np.random.default_rng(seed)
    kept, taken = [], {int(v): 0 for v in values}
    for row in rng.permutation(len(groups)):
        g = int(groups[row])
        if taken[g] < min_size:
            taken[g] += 1
            kept.append(row)
    return np.sort(np.asarray(kept, "int64"))


def sample_hparams(comb, net_type="mlp", algorithm="XRM"):
    """The official random-search draw for hyperparameter combination ``comb``.

    Uses ``numpy.random.RandomState(comb)`` in the official order (``hparams_registry.py``),
    so combination ``k`` here has the same values as the official combination ``k``:

    - ``"mlp"`` (ColorMNIST): lr ``10**U(-5,-3)``, batch ``int(2**U(3,6))``, weight decay
      ``10**U(-6,-3)``;
    - ``"resnet"`` (Waterbirds, CelebA, MetaShift, ImageNet-BG): lr ``10**U(-5,-3)``, batch
      ``int(2**U(5,7))``, weight decay ``10**U(-6,-3)``;
    - ``"bert"`` (MultiNLI, CivilComments): lr ``10**U(-6,-4)``, batch ``int(2**U(4,6))``,
      weight decay ``10**U(-6,-3)``, last-layer dropout in ``{0, 0.1, 0.5}``;
    - GroupDRO adds ``eta = 10**U(-3,-1)``.

    Example:

    >>> h = sample_hparams(0, "mlp", "GroupDRO")
    >>> sorted(h), h["batch_size"]
    (['batch_size', 'eta', 'lr', 'weight_decay'], 35)
    """
    if net_type not in ("mlp", "resnet", "bert"):
        raise ValueError(f"net_type must be 'mlp', 'resnet' or 'bert'; got {net_type!r}.")
    rs = np.random.RandomState(int(comb))
    hparams = {}
    if net_type == "bert":
        hparams["lr"] = float(10 ** rs.uniform(-6, -4))
        hparams["batch_size"] = int(2 ** rs.uniform(4, 6))
        hparams["weight_decay"] = float(10 ** rs.uniform(-6, -3))
        hparams["last_layer_dropout"] = float(rs.choice([0.0, 0.1, 0.5]))
    else:
        hparams["lr"] = float(10 ** rs.uniform(-5, -3))
        low, high = (3, 6) if net_type == "mlp" else (5, 7)
        hparams["batch_size"] = int(2 ** rs.uniform(low, high))
        hparams["weight_decay"] = float(10 ** rs.uniform(-6, -3))
    if algorithm == "GroupDRO":
        hparams["eta"] = float(10 ** rs.uniform(-3, -1))
    return hparams


def select_by_flip_rate(flip_rates):
    """Index of the phase-1 run with the largest final flip rate (degenerate runs should be
    reported as 0, as the official code does). Ties go to the first.

    Example:

    >>> select_by_flip_rate([0.1, 0.0, 0.3, 0.3])
    2
    """
    flip_rates = np.asarray(flip_rates, "float64")
    if flip_rates.size == 0:
        raise ValueError("select_by_flip_rate needs at least one run.")
    return int(np.argmax(flip_rates))


def select_by_worst_group(val_wga, val_avg_acc):
    """Index of the phase-2 run with the best validation worst-group accuracy; ties are broken
    by validation average accuracy (official ``find_best_hparams_comb``).

    Example:

    >>> select_by_worst_group([0.5, 0.7, 0.7], [0.9, 0.8, 0.85])
    2
    """
    val_wga = np.asarray(val_wga, "float64")
    val_avg_acc = np.asarray(val_avg_acc, "float64")
    if val_wga.size == 0 or val_wga.shape != val_avg_acc.shape:
        raise ValueError(
            f"need equally long, non-empty lists; got {val_wga.shape} and {val_avg_acc.shape}."
        )
    best = np.flatnonzero(val_wga == val_wga.max())
    return int(best[np.argmax(val_avg_acc[best])])


def best_report(reports, key="val_wga"):
    """Index of the *last* report with the maximal ``key`` (the official per-run early
    stopping reads the last occurrence of the maximum).

    Example:

    >>> best_report([{"val_wga": 0.5}, {"val_wga": 0.6}, {"val_wga": 0.6}])
    2
    """
    if not reports:
        raise ValueError("best_report needs at least one report.")
    values = np.asarray([r[key] for r in reports], "float64")
    return int(len(values) - 1 - np.argmax(values[::-1]))


class GroupSelection(keras.callbacks.Callback):
    """Evaluates average and worst-group accuracy at every epoch end and keeps the best.

    The selection follows the official phase 2: the report with the best validation
    worst-group accuracy (on the validation groups you give, inferred or annotated), the
    last one among equals; test numbers are read at that report.

    Args:
        val: ``(features, labels, groups)`` for selection.
        test: optional ``(features, labels, groups)`` to report.
        batch_size: prediction batch size.
        output: for models returning a dict, the key of the logits (default: the output
            itself).
        steps_per_epoch: to record the step of each report.

    After ``fit``: ``reports`` (one dict per epoch) and ``best`` (the selected report).

    Example:

    >>> import keras, numpy as np
    >>> x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    >>> y = (x[:, 0] > 0).astype("int32")
    >>> model = keras.Sequential([keras.layers.Dense(2)])
    >>> model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> selection = GroupSelection((x, y, 2 * y))
    >>> _ = model.fit(x, y, epochs=2, verbose=0, callbacks=[selection])
    >>> len(selection.reports), sorted(selection.best)
    (2, ['epoch', 'step', 'val_avg_acc', 'val_wga'])
    """

    def __init__(self, val, test=None, batch_size=1024, output=None, steps_per_epoch=None):
        super().__init__()
        self.val = tuple(np.asarray(v) for v in val)
        self.test = None if test is None else tuple(np.asarray(v) for v in test)
        self.batch_size = batch_size
        self.output = output
        self.steps_per_epoch = steps_per_epoch
        self.reports = []
        self.best = None

    def _evaluate(self, data):
        features, labels, groups = data
        predictions = self.model.predict(features, batch_size=self.batch_size, verbose=0)
        if self.output is not None:
            predictions = predictions[self.output]
        return group_metrics(labels, predictions, groups)

    def on_epoch_end(self, epoch, logs=None):
        report = {"epoch": epoch + 1}
        report["step"] = (epoch + 1) * self.steps_per_epoch if self.steps_per_epoch else None
        val = self._evaluate(self.val)
        report["val_avg_acc"], report["val_wga"] = val["avg_acc"], val["wga"]
        if self.test is not None:
            test = self._evaluate(self.test)
            report["test_avg_acc"], report["test_wga"] = test["avg_acc"], test["wga"]
        self.reports.append(report)
        self.best = self.reports[best_report(self.reports)]
        if logs is not None:
            logs["val_wga"] = report["val_wga"]
