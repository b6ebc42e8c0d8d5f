"""XRM end to end: phase 1 (discover environments) and phase 2 (group-robust learning).

The official protocol (``facebookresearch/XRM`` ``main.py``, ``utils.py``, checked):

Phase 1. For each of ``num_combs`` random hyperparameter combinations (``sample_hparams``),
train XRM for a fixed number of steps (no early stopping; ColorMNIST 1001, Waterbirds 5001,
CelebA 10001...), then label train and validation by cross-mistakes. A run whose inferred
environments are degenerate (some class lacks one) counts with flip rate 0. The selected
combination is the one with the largest *final* flip rate; no group label is looked at.

Phase 2. Train ERM / GroupDRO / RWG / SUBG with groups ``2y + m`` (``m`` inferred, annotated
or absent), report validation and test accuracy every ``report_every`` steps, keep the
report with the best validation worst-group accuracy computed *with the groups the learner
was given* (inferred ones for XRM), and choose among combinations by that number (ties:
validation average accuracy). Test worst-group accuracy always uses the true groups.

Differences from the official loop, all deliberate:

- steps come in Keras epochs of ``report_every`` steps, so ``num_steps`` is rounded up to a
  multiple of it (official 1001 steps = indices 0..1000 with reports at multiples of 50;
  ``num_steps=1000, report_every=50`` here gives 20 reports);
- everything is seeded from ``seed`` (assignments, flips, batch order, initialisation) with
  numpy and Keras RNGs, not torch's; each run starts with ``keras.utils.set_random_seed``
  (the official ``set_all_seeds``), which resets the global Python/numpy/backend RNGs.
"""

import math
import time

import keras
import numpy as np

from keras_jepa.models.xrm.data import IndexedBatches
from keras_jepa.models.xrm.groups import (
    GroupSelection,
    group_ids,
    infer_environments,
    is_degenerate,
    reweighting_weights,
    sample_hparams,
    select_by_flip_rate,
    select_by_worst_group,
    subsample_groups,
)
from keras_jepa.models.xrm.group_robust import ERM, GroupDRO
from keras_jepa.models.xrm.model import XRM

PHASE2_METHODS = ("erm", "groupdro", "rwg", "subg")


def _epochs(num_steps, report_every):
    if num_steps < 1 or report_every < 1:
        raise ValueError(
            f"num_steps and report_every must be >= 1; got {num_steps} and {report_every}."
        )
    report_every = min(report_every, num_steps)
    return math.ceil(num_steps / report_every), report_every


def _split(data, name):
    for key in ("x", "y"):
        if key not in data:
            raise ValueError(f"the {name} split needs {key!r}; it has {sorted(data)}.")
    return np.asarray(data["x"]), np.asarray(data["y"]).reshape(-1).astype("int32")


def run_xrm(
    train,
    val,
    make_classifier,
    make_optimizer,
    num_steps=1000,
    batch_size=32,
    l2=0.0,
    report_every=50,
    seed=0,
    verbose=0,
):
    """One XRM phase-1 run: twin training, then environments for train and validation.

    Args:
        train, val: split dicts with ``x`` and ``y`` (``keras_jepa.models.xrm.data`` layout).
        make_classifier: a zero-argument function returning a fresh classifier (called
            once per twin), or a classifier template (see ``XRM``).
        make_optimizer: zero-argument function returning an optimizer.
        num_steps, batch_size (``-1``: full batch), l2, report_every, seed: see the module.
        verbose: Keras ``fit`` verbosity.

    Returns:
        dict: ``model``, ``m`` (``{"tr", "va"}`` int32 environments), ``held_out_tr``
        (soft held-out predictions), ``flip_rate`` (final; 0 when degenerate, the official
        reporting), ``raw_flip_rate``, ``degenerate``, ``flip_rate_history`` (one value per
        report), ``steps`` and ``seconds``.

    Example:

    >>> import keras
    >>> from keras_jepa.models.xrm.data import make_spurious_features
    >>> data = make_spurious_features(num_train=200, num_val=100, num_test=100)
    >>> out = run_xrm(data["tr"], data["va"],
    ...               lambda: keras.Sequential([keras.layers.Dense(2)]),
    ...               lambda: keras.optimizers.SGD(0.1), num_steps=20, batch_size=-1,
    ...               report_every=10)
    >>> out["m"]["tr"].shape, len(out["flip_rate_history"])
    ((200,), 2)
    """
    x_tr, y_tr = _split(train, "train")
    x_va, y_va = _split(val, "validation")
    epochs, report_every = _epochs(num_steps, report_every)
    start = time.time()
    keras.utils.set_random_seed(seed)  # the official set_all_seeds at the start of a run
    model = XRM(
        make_classifier, num_examples=len(y_tr), assignment_seed=seed, flip_seed=seed, l2=l2
    )
    model.compile(optimizer=make_optimizer())
    batches = IndexedBatches(
        x_tr, y_tr, batch_size, steps_per_epoch=report_every, seed=seed
    )
    history = model.fit(batches, epochs=epochs, shuffle=False, verbose=verbose)
    tr = infer_environments(model, x_tr, y_tr, index=np.arange(len(y_tr)))
    va = infer_environments(model, x_va, y_va)
    degenerate = is_degenerate({"tr": (y_tr, tr["m"]), "va": (y_va, va["m"])})
    raw = model.flip_rate()
    return {
        "model": model,
        "m": {"tr": tr["m"], "va": va["m"]},
        "held_out_tr": tr["held_out"],
        "flip_rate": 0.0 if degenerate else raw,
        "raw_flip_rate": raw,
        "degenerate": degenerate,
        "flip_rate_history": [float(v) for v in history.history["flip_rate"]],
        "steps": epochs * report_every,
        "seconds": time.time() - start,
    }


def search_xrm(
    train,
    val,
    make_classifier,
    make_optimizer,
    num_combs=10,
    net_type="mlp",
    hparams_list=None,
    num_steps=1000,
    report_every=50,
    seed=0,
    log=None,
    verbose=0,
):
    """Phase-1 random search: ``num_combs`` XRM runs, selected by final flip rate.

    Args:
        make_classifier: ``f(hparams) -> classifier`` (fresh each call).
        make_optimizer: ``f(hparams) -> optimizer``.
        num_combs, net_type: combinations ``0..num_combs-1`` of ``sample_hparams(k,
            net_type)`` (the official draws), unless ``hparams_list`` gives them.
        log: optional ``print``-like function for one line per run.

    Returns:
        dict: ``runs`` (per run: ``hparams``, ``flip_rate``, ``raw_flip_rate``,
        ``degenerate``, ``flip_rate_history``, ``seconds``), ``best`` (index) and
        ``result`` (the ``run_xrm`` output of the selected run, model included).

    Example:

    >>> import keras
    >>> from keras_jepa.models.xrm.data import make_spurious_features
    >>> data = make_spurious_features(num_train=100, num_val=50, num_test=50)
    >>> search = search_xrm(data["tr"], data["va"],
    ...                     lambda h: keras.Sequential([keras.layers.Dense(2)]),
    ...                     lambda h: keras.optimizers.SGD(h["lr"] * 100),
    ...                     num_combs=2, num_steps=10, report_every=5)
    >>> len(search["runs"]), search["best"] in (0, 1)
    (2, True)
    """
    if hparams_list is None:
        hparams_list = [sample_hparams(k, net_type, "XRM") for k in range(num_combs)]
    runs, best_result, best_rate = [], None, -1.0
    for k, hparams in enumerate(hparams_list):
        result = run_xrm(
            train,
            val,
            lambda h=hparams: make_classifier(h),
            lambda h=hparams: make_optimizer(h),
            num_steps=num_steps,
            batch_size=hparams.get("batch_size", -1),
            l2=hparams.get("weight_decay", 0.0),
            report_every=report_every,
            seed=seed,
            verbose=verbose,
        )
        runs.append(
            {
                "hparams": dict(hparams),
                **{k2: result[k2] for k2 in ("flip_rate", "raw_flip_rate", "degenerate",
                                             "flip_rate_history", "seconds")},
            }
        )
        if log:
            log(
                f"  phase 1 comb {k}: flip rate {result['flip_rate']:.3f}"
                f"{' (degenerate)' if result['degenerate'] else ''}, "
                f"{_format_hparams(hparams)}, {result['seconds']:.1f} s"
            )
        if result["flip_rate"] > best_rate:  # keep the first maximum, like np.argmax
            best_rate, best_result = result["flip_rate"], result
    best = select_by_flip_rate([r["flip_rate"] for r in runs])
    return {"runs": runs, "best": best, "result": best_result}


def _format_hparams(hparams):
    return ", ".join(
        f"{k} {v:.2g}" if isinstance(v, float) else f"{k} {v}" for k, v in hparams.items()
    )


def train_group_robust(
    method,
    train,
    val,
    make_classifier,
    make_optimizer,
    train_env,
    val_env,
    test=None,
    num_steps=1000,
    batch_size=32,
    eta=0.01,
    l2=0.0,
    report_every=50,
    seed=0,
    verbose=0,
):
    """One phase-2 run of ERM, GroupDRO, RWG or SUBG with the given environments.

    Args:
        method: ``"erm"``, ``"groupdro"``, ``"rwg"`` or ``"subg"``.
        train, val: split dicts with ``x`` and ``y``.
        make_classifier, make_optimizer: zero-argument factories.
        train_env, val_env: environment bits ``m`` (inferred, annotated, or zeros for
            class-only groups); groups are ``2y + m``. Validation selection uses
            ``val_env``.
        test: optional split dict with ``x``, ``y`` and the *true* ``m`` for reporting.
        num_steps, batch_size, eta (GroupDRO), l2, report_every, seed: see the module.

    Returns:
        dict: ``best`` (the selected report: ``val_avg_acc``, ``val_wga`` and, with
        ``test``, ``test_avg_acc``, ``test_wga``, plus ``step``), ``reports``, ``model``,
        ``seconds``.

    Example:

    >>> import keras, numpy as np
    >>> from keras_jepa.models.xrm.data import make_spurious_features
    >>> d = make_spurious_features(num_train=200, num_val=100, num_test=100)
    >>> out = train_group_robust("groupdro", d["tr"], d["va"],
    ...                          lambda: keras.Sequential([keras.layers.Dense(2)]),
    ...                          lambda: keras.optimizers.SGD(0.1), d["tr"]["m"],
    ...                          d["va"]["m"], test=d["te"], num_steps=20, batch_size=-1,
    ...                          eta=0.1, report_every=10)
    >>> len(out["reports"]), sorted(out["best"])[:2]
    (2, ['epoch', 'step'])
    """
    if method not in PHASE2_METHODS:
        raise ValueError(f"method must be one of {PHASE2_METHODS}; got {method!r}.")
    x_tr, y_tr = _split(train, "train")
    x_va, y_va = _split(val, "validation")
    g_tr = group_ids(y_tr, train_env)
    g_va = group_ids(y_va, val_env)
    num_classes = int(max(y_tr.max(), y_va.max())) + 1
    epochs, report_every = _epochs(num_steps, report_every)
    start = time.time()
    keras.utils.set_random_seed(seed)  # the official set_all_seeds at the start of a run
    classifier = make_classifier()
    if method == "groupdro":
        model = GroupDRO(classifier, num_groups=2 * num_classes, eta=eta, l2=l2)
    else:
        model = ERM(classifier, l2=l2)
    model.compile(optimizer=make_optimizer())
    weights = reweighting_weights(g_tr) if method == "rwg" else None
    rows = subsample_groups(g_tr, seed=seed) if method == "subg" else None
    batches = IndexedBatches(
        x_tr, y_tr, batch_size, steps_per_epoch=report_every, groups=g_tr,
        weights=weights, rows=rows, seed=seed,
    )
    test_data = None
    if test is not None:
        x_te, y_te = _split(test, "test")
        test_data = (x_te, y_te, group_ids(y_te, test["m"]))
    selection = GroupSelection(
        (x_va, y_va, g_va), test=test_data, steps_per_epoch=report_every
    )
    model.fit(batches, epochs=epochs, shuffle=False, verbose=verbose, callbacks=[selection])
    return {
        "best": dict(selection.best),
        "reports": selection.reports,
        "model": model,
        "seconds": time.time() - start,
    }


def search_group_robust(
    method,
    train,
    val,
    make_classifier,
    make_optimizer,
    train_env,
    val_env,
    test=None,
    num_combs=10,
    net_type="mlp",
    hparams_list=None,
    num_steps=1000,
    report_every=50,
    seed=0,
    log=None,
    verbose=0,
):
    """Phase-2 random search: ``num_combs`` runs of ``train_group_robust``, selected by
    validation worst-group accuracy on ``val_env`` groups (ties: validation average).

    ``make_classifier`` and ``make_optimizer`` take the hyperparameter dict. Returns
    ``runs`` (per run: ``hparams`` and its ``best`` report), ``best`` (index) and
    ``selected`` (that run's best report).

    Example (two hand-written combinations instead of the official draws):

    >>> import keras
    >>> from keras_jepa.models.xrm.data import make_spurious_features
    >>> d = make_spurious_features(num_train=200, num_val=100, num_test=100)
    >>> out = search_group_robust(  # doctest: +SKIP
    ...     "groupdro", d["tr"], d["va"], lambda h: keras.Sequential([keras.layers.Dense(2)]),
    ...     lambda h: keras.optimizers.SGD(h["lr"]), d["tr"]["m"], d["va"]["m"], test=d["te"],
    ...     hparams_list=[{"lr": 0.1, "batch_size": -1, "eta": 0.1},
    ...                   {"lr": 0.01, "batch_size": -1, "eta": 0.1}],
    ...     num_steps=20, report_every=10)
    >>> out["best"] in (0, 1), sorted(out["selected"])[-2:]  # doctest: +SKIP
    (True, ['val_avg_acc', 'val_wga'])
    """
    algorithm = "GroupDRO" if method == "groupdro" else "ERM"
    if hparams_list is None:
        hparams_list = [sample_hparams(k, net_type, algorithm) for k in range(num_combs)]
    runs = []
    for k, hparams in enumerate(hparams_list):
        result = train_group_robust(
            method,
            train,
            val,
            lambda h=hparams: make_classifier(h),
            lambda h=hparams: make_optimizer(h),
            train_env,
            val_env,
            test=test,
            num_steps=num_steps,
            batch_size=hparams.get("batch_size", -1),
            eta=hparams.get("eta", 0.0),
            l2=hparams.get("weight_decay", 0.0),
            report_every=report_every,
            seed=seed,
            verbose=verbose,
        )
        runs.append({"hparams": dict(hparams), "best": result["best"],
                     "seconds": result["seconds"]})
        if log:
            b = result["best"]
            test_part = (f", test wga {b['test_wga']:.3f}" if "test_wga" in b else "")
            log(
                f"  {method} comb {k}: val wga {b['val_wga']:.3f} (step {b['step']})"
                f"{test_part}, {_format_hparams(hparams)}, {result['seconds']:.1f} s"
            )
    best = select_by_worst_group(
        [r["best"]["val_wga"] for r in runs], [r["best"]["val_avg_acc"] for r in runs]
    )
    return {"runs": runs, "best": best, "selected": runs[best]["best"]}
