"""Frozen-backbone probes: training recipes, linear probe, grids of attentive probes,
k-NN, view aggregation, top-k.

The official probe recipe (facts: research ``jepa-reference.md`` §2.5, §3.2; checked in
``evals/video_classification_frozen/eval.py`` and ``configs/evals/*.yaml`` of V-JEPA):
AdamW (biases and 1-D weights without decay), learning rate 1e-3 with no warmup and a cosine
decay to 0 over the whole run (``start_lr = lr``, ``warmup: 0``), 20 epochs, weight decay
0.01 for video and 0.001 for images, gradient-norm clipping at 1.0, cross-entropy. Two
quirks of V-JEPA 1's loop: its weight decay follows a cosine from ``wd`` to 1e-6 (the
``final_wd`` default, never overridden). :data:`PROBE_RECIPES` holds these numbers;
:func:`train_probe` applies one.

V-JEPA 2's recipe (``evals/video_classification_frozen/eval.py`` and ``configs/eval/*`` of
V-JEPA 2) trains many probes at once on the same frozen features, one per point of a grid
of learning rates and weight decays, and reports the best: each probe has its own AdamW
with *one* parameter group (biases, norms and the query token are decayed too), no
gradient clipping, lr cosine from ``lr`` to 0 without warmup, constant weight decay, 20
epochs, probes of 4 blocks and 16 heads. The video grid (K400, SSv2, COIN) is lr
{5e-3, 3e-3, 1e-3, 3e-4, 1e-4} x wd {0.01, 0.1, 0.4, 0.8}; ImageNet uses 21 probes around
lr 1e-3 / wd 1e-3 with a 5-epoch warmup from 2e-4. :data:`PROBE_GRIDS` holds them,
:class:`ProbeGrid` holds the probes (one forward pass per batch gives every probe's
logits), :class:`ProbeGridAdamW` gives each probe its own schedules, and
:func:`train_probe_grid` trains them with one ``model.fit``.

Views and segments: a sample evaluated with ``V`` spatial views arrives as features
``(B, V, ...)``. Training treats each view as one example with the sample's label (the
official loss is the mean of the per-view cross-entropies); evaluation averages the softmax
probabilities over views (:func:`predict_probabilities`).

Deviation, on purpose: features are computed once by the frozen encoder (with the evaluation
transform) and the probe trains on them, instead of running the encoder on freshly augmented
clips every step (RandAugment, random erasing and random resized crops in the official
loop). It is the standard cheap protocol and exact for the evaluation side.
"""

import keras
import numpy as np
from keras import ops

from keras_jepa.layers.attentive_pooler import AttentiveClassifier
from keras_jepa.layers.initializers import normal_init
from keras_jepa.training.optimizers import CosineSchedule, JEPAAdamW, WarmupCosineSchedule

# Official probe settings. ``batch_size`` is per GPU (on 8 x 8 GPUs officially).
PROBE_RECIPES = {
    # V-JEPA video probes (K400 16x8x3, SSv2 16x2x3).
    "vjepa_video": dict(epochs=20, lr=1e-3, final_lr=0.0, weight_decay=0.01,
                        final_weight_decay=1e-6, clip_norm=1.0, batch_size=4),
    # V-JEPA image probes (IN1K, Places205, iNat21; images repeated 16x along time).
    "vjepa_image": dict(epochs=20, lr=1e-3, final_lr=0.0, weight_decay=0.001,
                        final_weight_decay=1e-6, clip_norm=1.0, batch_size=16),
    # V-JEPA 2: one point of its grid (lr 1e-3, wd 0.01, constant decay, no clipping) with
    # this single-probe optimizer (biases and norms not decayed); the official recipe
    # trains the whole grid: PROBE_GRIDS["vjepa2_video"] and train_probe_grid.
    "vjepa2_video": dict(epochs=20, lr=1e-3, final_lr=0.0, weight_decay=0.01,
                         final_weight_decay=0.01, clip_norm=None, batch_size=4),
}


def probe_grid(lrs, weight_decays, **common):
    """The hyperparameters of a grid of probes, in the official configs' order (weight decay
    outer, learning rate inner), each ``{"lr", "weight_decay", "final_weight_decay"}``
    (constant decay) plus ``common`` (``start_lr``, ``final_lr``, ``warmup_epochs``).

    Example:

    >>> [(h["lr"], h["weight_decay"]) for h in probe_grid((1e-3, 1e-4), (0.01, 0.1))]
    [(0.001, 0.01), (0.0001, 0.01), (0.001, 0.1), (0.0001, 0.1)]
    """
    return [dict(common, lr=float(lr), weight_decay=float(wd), final_weight_decay=float(wd))
            for wd in weight_decays for lr in lrs]


# V-JEPA 2's probe grids (``multihead_kwargs`` of configs/eval/vitl/*.yaml; every probe
# ends at lr 0; ``start_lr`` is ``lr`` and ``warmup_epochs`` 0 unless given). All: 20
# epochs, 4 probe blocks, 16 heads; batch 4 per GPU for video, 16 for ImageNet.
VJEPA2_GRID_LRS = (5e-3, 3e-3, 1e-3, 3e-4, 1e-4)
VJEPA2_GRID_WEIGHT_DECAYS = (0.01, 0.1, 0.4, 0.8)
PROBE_GRIDS = {
    # K400, SSv2, COIN.
    "vjepa2_video": probe_grid(VJEPA2_GRID_LRS, VJEPA2_GRID_WEIGHT_DECAYS),
    # ImageNet: lr 1e-3 with wd 1e-3 decaying to 0, then a 4 x 5 grid warmed up from 2e-4.
    "vjepa2_image": [dict(lr=1e-3, weight_decay=1e-3, final_weight_decay=0.0)] + probe_grid(
        (5e-4, 1e-3, 1.5e-3, 2e-3), (8e-3, 4e-3, 2e-3, 1e-3, 5e-4), start_lr=2e-4,
        warmup_epochs=5),
}


# ---------------------------------------------------------------------------------------
# Linear probe
# ---------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_jepa")
class LinearClassifier(keras.Model):
    """A linear probe: mean-pool the tokens, standardise, ``Dense(num_classes)``.

    Input: tokens ``(B, N, D)`` (mean-pooled over ``N``) or pooled features ``(B, D)``.
    The standardisation uses per-channel statistics of the training features, set by
    :meth:`adapt` (non-trainable; like the parameter-free BatchNorm in front of the linear
    layer of MAE-style linear probing), so a plain learning rate works on any encoder.

    Args:
        num_classes: output classes.
        embed_dim: feature width ``D``.
        init_std: std of the normal kernel init.

    Example:

    >>> import numpy as np
    >>> probe = LinearClassifier(num_classes=4, embed_dim=8)
    >>> probe.adapt(np.random.RandomState(0).randn(20, 5, 8).astype("float32"))
    >>> tuple(probe(np.zeros((3, 5, 8), "float32")).shape)
    (3, 4)
    """

    def __init__(self, num_classes, embed_dim, init_std=0.01, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int; got {num_classes!r}.")
        self.num_classes = int(num_classes)
        self.embed_dim = int(embed_dim)
        self.init_std = float(init_std)
        self.linear = keras.layers.Dense(
            self.num_classes, kernel_initializer=normal_init(self.init_std), name="linear",
            dtype=self.dtype_policy)
        self.build((None, self.embed_dim))

    def build(self, input_shape):
        self.feature_mean = self.add_weight(
            shape=(self.embed_dim,), initializer="zeros", trainable=False,
            name="feature_mean")
        self.feature_std = self.add_weight(
            shape=(self.embed_dim,), initializer="ones", trainable=False, name="feature_std")
        self.linear.build((None, self.embed_dim))
        self.built = True

    def adapt(self, features):
        """Sets the standardisation from training ``features`` ``(..., D)`` (numpy)."""
        x = np.asarray(features, dtype=np.float64)
        if x.shape[-1] != self.embed_dim:
            raise ValueError(
                f"features have width {x.shape[-1]}; this probe has embed_dim="
                f"{self.embed_dim}.")
        if x.ndim >= 3:
            x = x.mean(axis=-2)
        x = x.reshape(-1, self.embed_dim)
        self.feature_mean.assign(x.mean(axis=0).astype(np.float32))
        self.feature_std.assign((x.std(axis=0) + 1e-6).astype(np.float32))

    def call(self, features):
        x = features
        if len(x.shape) == 3:
            x = ops.mean(x, axis=1)
        elif len(x.shape) != 2:
            raise ValueError(
                f"LinearClassifier expects (B, N, D) tokens or (B, D) features; got shape "
                f"{tuple(x.shape)}.")
        mean = ops.cast(self.feature_mean, x.dtype)
        std = ops.cast(self.feature_std, x.dtype)
        return self.linear((x - mean) / std)

    def compute_output_shape(self, features_shape):
        return (features_shape[0], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "embed_dim": self.embed_dim,
                       "init_std": self.init_std})
        return config


# ---------------------------------------------------------------------------------------
# Training and evaluation
# ---------------------------------------------------------------------------------------


def probe_optimizer(total_steps, lr=1e-3, final_lr=0.0, weight_decay=0.01,
                    final_weight_decay=None, clip_norm=1.0, warmup_steps=0, start_lr=None):
    """The official probe optimizer: ``JEPAAdamW`` (no decay on biases and 1-D weights),
    cosine lr ``lr -> final_lr`` over ``total_steps`` after an optional linear warmup, weight
    decay cosine ``weight_decay -> final_weight_decay`` (``None``: constant), gradient-norm
    clipping at ``clip_norm`` (from the first step).

    Example:

    >>> opt = probe_optimizer(total_steps=100)
    >>> round(float(opt.learning_rate), 6)  # the value used by the first update
    0.001
    """
    schedule, wd = _probe_schedules(total_steps, lr, final_lr, weight_decay,
                                    final_weight_decay, warmup_steps, start_lr)
    return JEPAAdamW(learning_rate=schedule, weight_decay=wd, clip_norm=clip_norm,
                     clip_start_step=0)


def _probe_schedules(total_steps, lr, final_lr=0.0, weight_decay=0.01,
                     final_weight_decay=None, warmup_steps=0, start_lr=None):
    """The official probe schedules: warmup ``start_lr -> lr`` then cosine to ``final_lr``;
    weight decay constant, or cosine ``weight_decay -> final_weight_decay``."""
    total_steps = max(int(total_steps), 1)
    schedule = WarmupCosineSchedule(
        lr if start_lr is None else start_lr, lr, final_lr,
        warmup_steps=min(int(warmup_steps), total_steps), total_steps=total_steps)
    if final_weight_decay is None or final_weight_decay == weight_decay:
        return schedule, float(weight_decay)
    return schedule, CosineSchedule(weight_decay, final_weight_decay, total_steps)


def flatten_views(features, labels=None, num_views=None):
    """``(B, V, ...)`` features -> ``(B * V, ...)`` (sample-major) and labels repeated V
    times. With ``num_views=None`` nothing is flattened.

    Example:

    >>> x, y = flatten_views(np.zeros((2, 3, 5, 4)), np.array([7, 8]), num_views=3)
    >>> x.shape, y.tolist()
    ((6, 5, 4), [7, 7, 7, 8, 8, 8])
    """
    features = np.asarray(features)
    if not num_views:
        return features, labels
    if features.ndim < 2 or features.shape[1] != num_views:
        raise ValueError(
            f"Expected features (B, {num_views}, ...) for num_views={num_views}; got shape "
            f"{features.shape}.")
    flat = features.reshape((-1,) + features.shape[2:])
    if labels is None:
        return flat, None
    return flat, np.repeat(np.asarray(labels), num_views)


def aggregate_views(logits, num_views):
    """Softmax probabilities averaged over spatial views (the official evaluation).

    Args:
        logits: ``(B * V, C)`` in sample-major order (rows ``b * V ... b * V + V - 1``
            are the views of sample ``b``) or ``(B, V, C)``.
        num_views: ``V``.

    Returns:
        ``(B, C)`` float64 probabilities.

    Example:

    >>> p = aggregate_views(np.log([[0.9, 0.1], [0.3, 0.7]]), num_views=2)
    >>> p.round(3).tolist()
    [[0.6, 0.4]]
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 2:
        if z.shape[0] % num_views:
            raise ValueError(
                f"{z.shape[0]} rows of logits are not a multiple of num_views={num_views}.")
        z = z.reshape(-1, num_views, z.shape[-1])
    if z.ndim != 3 or z.shape[1] != num_views:
        raise ValueError(
            f"logits must be (B*V, C) or (B, {num_views}, C); got shape {np.shape(logits)}.")
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    return p.mean(axis=1)


def topk_accuracy(scores, labels, k=1):
    """Fraction of rows whose label is among the ``k`` highest scores (ties: lower index
    first, as ``argsort`` of the negated scores).

    Example:

    >>> s = np.array([[0.1, 0.5, 0.4], [0.6, 0.3, 0.1]])
    >>> topk_accuracy(s, [2, 0], k=1), topk_accuracy(s, [2, 0], k=2)
    (0.5, 1.0)
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels).reshape(-1)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise ValueError(
            f"scores must be (N, C) with N = len(labels) = {labels.shape[0]}; got shape "
            f"{scores.shape}.")
    k = min(int(k), scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def predict_probabilities(classifier, features, num_views=None, batch_size=256):
    """Class probabilities of a probe on features, averaged over views if ``num_views``.

    ``features``: ``(B, ...)``, or ``(B, V, ...)`` with ``num_views=V``. Returns ``(B, C)``.
    """
    flat, _ = flatten_views(features, None, num_views)
    logits = classifier.predict(flat, batch_size=batch_size, verbose=0)
    return aggregate_views(np.asarray(logits), num_views or 1)


def evaluate_probe(classifier, features, labels, num_views=None, batch_size=256):
    """``{"top1": ..., "top5": ...}`` accuracies of a trained probe (softmax averaged over
    ``num_views`` views)."""
    probs = predict_probabilities(classifier, features, num_views, batch_size)
    return {"top1": topk_accuracy(probs, labels, 1), "top5": topk_accuracy(probs, labels, 5)}


def train_probe(classifier, features, labels, epochs=20, batch_size=16, lr=1e-3,
                final_lr=0.0, weight_decay=0.01, final_weight_decay=None, clip_norm=1.0,
                num_views=None, validation_data=None, verbose=0, **fit_kwargs):
    """Trains a probe on frozen features with the official recipe (see the module
    docstring) and ``model.fit``.

    Args:
        classifier: an ``AttentiveClassifier`` (tokens ``(B, N, D)``) or a
            ``LinearClassifier`` (tokens or pooled features; :meth:`~LinearClassifier.adapt`
            is called on ``features`` first).
        features: ``(B, ...)`` numpy features, or ``(B, V, ...)`` with ``num_views=V``
            (every view is a training example with its sample's label).
        labels: ``(B,)`` ints.
        epochs, batch_size, lr, final_lr, weight_decay, final_weight_decay, clip_norm: the
            recipe (:func:`probe_optimizer`; defaults: V-JEPA video, constant decay);
            ``**PROBE_RECIPES[name]`` gives an official one.
        validation_data: optional ``(features, labels)`` scored after training.
        verbose: ``fit``'s verbosity.
        **fit_kwargs: passed to ``fit`` (e.g. ``callbacks``).

    Returns:
        ``{"history": ..., "train": {"top1", "top5"}, "val": {...} (if validation_data)}``.
    """
    x, y, batch_size, steps_per_epoch = _training_arrays(
        features, labels, num_views, classifier.num_classes, batch_size)
    if isinstance(classifier, LinearClassifier):
        classifier.adapt(x)
    steps = steps_per_epoch * int(epochs)
    classifier.compile(
        optimizer=probe_optimizer(steps, lr=lr, final_lr=final_lr, weight_decay=weight_decay,
                                  final_weight_decay=final_weight_decay, clip_norm=clip_norm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")],
    )
    history = classifier.fit(x, y, epochs=int(epochs), batch_size=batch_size, shuffle=True,
                             verbose=verbose, **fit_kwargs)
    result = {"history": history.history,
              "train": evaluate_probe(classifier, x, y, batch_size=max(batch_size, 64))}
    if validation_data is not None:
        vx, vy = validation_data
        result["val"] = evaluate_probe(classifier, vx, vy, num_views=num_views,
                                       batch_size=max(batch_size, 64))
    return result


def _training_arrays(features, labels, num_views, num_classes, batch_size):
    """Views flattened into examples, labels checked; the batch size (at most the number of
    examples) and the steps per epoch."""
    x, y = flatten_views(features, labels, num_views)
    y = np.asarray(y, dtype="int32")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{x.shape[0]} feature rows but {y.shape[0]} labels.")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(
            f"labels span [{y.min()}, {y.max()}]; the probe has num_classes={num_classes}.")
    batch_size = int(min(batch_size, x.shape[0]))
    return x, y, batch_size, int(np.ceil(x.shape[0] / batch_size))


# ---------------------------------------------------------------------------------------
# V-JEPA 2: a grid of probes trained together
# ---------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="keras_jepa")
class ProbeGrid(keras.Model):
    """Several attentive probes side by side on the same frozen tokens (V-JEPA 2 trains one
    per point of its lr / weight-decay grid): tokens ``(B, N, D)`` -> logits
    ``(B, num_probes, num_classes)``, every probe computed in the same forward pass.

    Probe ``k`` is an :class:`~keras_jepa.layers.attentive_pooler.AttentiveClassifier`
    named ``probe_{k}`` (``grid.probes[k]``; the official files store them as the list
    ``classifiers``). Train with :func:`train_probe_grid`.

    Args:
        num_classes, embed_dim: as for ``AttentiveClassifier``.
        num_probes: how many probes.
        **probe_kwargs: passed to every ``AttentiveClassifier`` (V-JEPA 2:
            ``variant="vjepa2"`` gives 4 blocks; ``num_heads=16``).

    Example:

    >>> grid = ProbeGrid(num_classes=5, embed_dim=16, num_probes=3, num_heads=2)
    >>> tuple(grid(np.zeros((2, 7, 16), "float32")).shape)
    (2, 3, 5)
    """

    def __init__(self, num_classes, embed_dim, num_probes, **probe_kwargs):
        base = {k: probe_kwargs.pop(k) for k in ("name", "dtype", "trainable")
                if k in probe_kwargs}
        super().__init__(**base)
        if not isinstance(num_probes, (int, np.integer)) or num_probes < 1:
            raise ValueError(f"num_probes must be a positive int; got {num_probes!r}.")
        self.num_classes = int(num_classes)
        self.embed_dim = int(embed_dim)
        self.num_probes = int(num_probes)
        self.probe_kwargs = dict(probe_kwargs)
        self.probes = [
            AttentiveClassifier(self.num_classes, self.embed_dim, name=f"probe_{k}",
                                dtype=self.dtype_policy, **self.probe_kwargs)
            for k in range(self.num_probes)
        ]
        self.built = True  # every probe builds itself

    def call(self, tokens, training=False):
        return ops.stack([probe(tokens, training=training) for probe in self.probes], axis=1)

    def compute_output_shape(self, tokens_shape):
        return (tokens_shape[0], self.num_probes, self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "embed_dim": self.embed_dim,
                       "num_probes": self.num_probes, **self.probe_kwargs})
        return config


@keras.saving.register_keras_serializable(package="keras_jepa")
class ProbeGridCrossEntropy(keras.losses.Loss):
    """The sum over probes of each probe's cross-entropy: labels ``(B,)``, logits
    ``(B, K, C)`` -> ``(B,)``. Probes share no weight, so each gets the gradient of its own
    loss, as with one loss and one optimizer per probe.

    Example:

    >>> loss = ProbeGridCrossEntropy()
    >>> round(float(loss(np.array([0]), np.zeros((1, 2, 4), "float32"))), 4)  # 2 * log(4)
    2.7726
    """

    def __init__(self, name="probe_grid_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, "float32")
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        log_probs = ops.log_softmax(logits, axis=-1)
        one_hot = ops.one_hot(labels, ops.shape(logits)[-1], dtype="float32")
        return -ops.sum(log_probs * one_hot[:, None, :], axis=(1, 2))


@keras.saving.register_keras_serializable(package="keras_jepa")
class ProbeGridAdamW(JEPAAdamW):
    """AdamW with its own learning-rate and weight-decay schedule per group of variables:
    the official V-JEPA 2 probe optimizers (one ``torch.optim.AdamW`` per probe with a
    single parameter group) as one Keras optimizer.

    A variable's group is the first component of its path, i.e. the probe that owns it
    (``probe_3/linear/kernel`` -> group ``"probe_3"``). Unlike :class:`JEPAAdamW`'s default,
    *every* variable is decayed (biases, norms, the query token), as in the official
    single group: ``w <- w * (1 - lr_k * wd_k)`` then the Adam step with ``lr_k``
    (PyTorch's epsilon form). No gradient clipping unless ``clip_norm`` is given (then per
    group).

    Args:
        groups: group names (``[f"probe_{k}" ...]``).
        learning_rates: one float or schedule per group.
        weight_decays: one float or schedule per group.
        **kwargs: as for :class:`JEPAAdamW` (``clip_norm``, ``epsilon``...).

    Example:

    >>> opt = ProbeGridAdamW(["probe_0", "probe_1"], [1e-3, 1e-4], [0.01, 0.1])
    >>> [round(float(v), 5) for v in opt.group_values()[0]]
    [0.001, 0.0001]
    """

    def __init__(self, groups, learning_rates, weight_decays, **kwargs):
        def values(items):
            return [keras.saving.deserialize_keras_object(v) if isinstance(v, dict) else v
                    for v in items]

        groups, learning_rates, weight_decays = (
            list(groups), values(learning_rates), values(weight_decays))
        if not groups or len(learning_rates) != len(groups) or (
                len(weight_decays) != len(groups)):
            raise ValueError(
                f"Need one learning rate and one weight decay per group; got "
                f"{len(groups)} groups, {len(learning_rates)} learning rates and "
                f"{len(weight_decays)} weight decays.")
        kwargs.pop("learning_rate", None)
        kwargs.pop("weight_decay", None)
        super().__init__(learning_rate=learning_rates[0], weight_decay=0.0, **kwargs)
        self.groups = [str(g) for g in groups]
        self.group_index = {name: k for k, name in enumerate(self.groups)}
        self.learning_rates = learning_rates
        self.weight_decays = weight_decays
        self._current = None

    def group_values(self):
        """This update's learning rate and weight decay of every group (two lists)."""
        def value(v):
            return ops.cast(v(self.iterations) if callable(v) else v, "float32")

        return ([value(v) for v in self.learning_rates],
                [value(v) for v in self.weight_decays])

    def build(self, variables):
        groups = []
        for variable in variables:
            name = variable.path.split("/")[0]
            if name not in self.group_index:
                raise ValueError(
                    f"Variable {variable.path!r} belongs to no group of this optimizer "
                    f"(groups: {self.groups[:4]}{'...' if len(self.groups) > 4 else ''}).")
            groups.append(self.group_index[name])
        super().build(variables)
        self.variable_groups = groups

    def group_of(self, variable):
        """The group index of a trainable variable (the first component of its path)."""
        return self.variable_groups[self._get_variable_index(variable)]

    def apply(self, grads, trainable_variables=None):
        self._current = self.group_values()
        try:
            return super().apply(grads, trainable_variables)
        finally:
            self._current = None

    def update_step(self, gradient, variable, learning_rate):
        lrs, _ = self._current
        return super().update_step(gradient, variable, lrs[self.group_of(variable)])

    def _use_weight_decay(self, variable):
        return True

    def _apply_weight_decay(self, variables):
        lrs, wds = self._current
        for variable in variables:
            k = self.group_of(variable)
            factor = ops.cast(1.0 - wds[k] * lrs[k], variable.dtype)
            variable.assign(ops.multiply(variable, factor))

    def get_config(self):
        config = super().get_config()
        for key in ("learning_rate", "weight_decay"):
            config.pop(key, None)

        def serial(v):
            return (keras.saving.serialize_keras_object(v)
                    if isinstance(v, keras.optimizers.schedules.LearningRateSchedule)
                    else float(v))

        config.update({"groups": list(self.groups),
                       "learning_rates": [serial(v) for v in self.learning_rates],
                       "weight_decays": [serial(v) for v in self.weight_decays]})
        return config


def probe_grid_optimizer(grid, hyperparameters, total_steps, steps_per_epoch=1):
    """A :class:`ProbeGridAdamW` for the probes of ``grid`` (a :class:`ProbeGrid`), one entry
    of ``hyperparameters`` per probe (``{"lr", "weight_decay"}`` and optionally
    ``"start_lr"``, ``"final_lr"`` (0), ``"final_weight_decay"`` (constant),
    ``"warmup_epochs"`` (0), ``"clip_norm"`` is not per probe).

    Example:

    >>> grid = ProbeGrid(3, 8, num_probes=2, num_heads=2)
    >>> opt = probe_grid_optimizer(grid, probe_grid((1e-3, 1e-4), (0.01,)), total_steps=10)
    >>> opt.groups
    ['probe_0', 'probe_1']
    """
    if len(hyperparameters) != grid.num_probes:
        raise ValueError(
            f"{len(hyperparameters)} sets of hyperparameters for a grid of "
            f"{grid.num_probes} probes; give one per probe.")
    lrs, wds = [], []
    for h in hyperparameters:
        unknown = set(h) - {"lr", "weight_decay", "start_lr", "final_lr",
                            "final_weight_decay", "warmup_epochs"}
        if unknown or "lr" not in h or "weight_decay" not in h:
            raise ValueError(
                f"Probe hyperparameters need 'lr' and 'weight_decay' (optional: start_lr, "
                f"final_lr, final_weight_decay, warmup_epochs); got {sorted(h)}.")
        lr, wd = _probe_schedules(
            total_steps, h["lr"], h.get("final_lr", 0.0), h["weight_decay"],
            h.get("final_weight_decay"), h.get("warmup_epochs", 0) * steps_per_epoch,
            h.get("start_lr"))
        lrs.append(lr)
        wds.append(wd)
    return ProbeGridAdamW([probe.name for probe in grid.probes], lrs, wds)


def evaluate_probe_grid(grid, features, labels, num_views=None, batch_size=256):
    """``[{"top1", "top5"}, ...]``: the accuracies of every probe of ``grid`` (softmax
    averaged over ``num_views`` views), from one prediction pass."""
    flat, _ = flatten_views(features, None, num_views)
    logits = np.asarray(grid.predict(flat, batch_size=batch_size, verbose=0))
    out = []
    for k in range(grid.num_probes):
        probs = aggregate_views(logits[:, k], num_views or 1)
        out.append({"top1": topk_accuracy(probs, labels, 1),
                    "top5": topk_accuracy(probs, labels, 5)})
    return out


def train_probe_grid(grid, features, labels, hyperparameters=None, epochs=20, batch_size=4,
                     num_views=None, validation_data=None, verbose=0, **fit_kwargs):
    """Trains every probe of a :class:`ProbeGrid` on frozen features with V-JEPA 2's recipe,
    each with its own hyperparameters, in one ``model.fit``; scores each one.

    Args:
        grid: a :class:`ProbeGrid` with one probe per entry of ``hyperparameters``.
        features, labels, num_views, validation_data, verbose, **fit_kwargs: as for
            :func:`train_probe`.
        hyperparameters: one dict per probe (see :func:`probe_grid_optimizer`); default
            ``PROBE_GRIDS["vjepa2_video"]`` (20 probes).
        epochs, batch_size: official 20 and 4 (per GPU) for video.

    Returns:
        ``{"history", "probes": [{**hyperparameters, "train": {"top1", "top5"}, "val":
        {...}}, ...], "best": index}``: ``best`` is the probe with the highest validation
        top-1 (training top-1 without ``validation_data``), the number the official
        evaluation reports (the best over the grid, chosen on the validation set).
    """
    hyperparameters = list(PROBE_GRIDS["vjepa2_video"] if hyperparameters is None
                           else hyperparameters)
    x, y, batch_size, steps_per_epoch = _training_arrays(
        features, labels, num_views, grid.num_classes, batch_size)
    grid.compile(
        optimizer=probe_grid_optimizer(grid, hyperparameters, steps_per_epoch * int(epochs),
                                       steps_per_epoch),
        loss=ProbeGridCrossEntropy())
    history = grid.fit(x, y, epochs=int(epochs), batch_size=batch_size, shuffle=True,
                       verbose=verbose, **fit_kwargs)
    scores = {"train": evaluate_probe_grid(grid, x, y, batch_size=max(batch_size, 64))}
    if validation_data is not None:
        vx, vy = validation_data
        scores["val"] = evaluate_probe_grid(grid, vx, vy, num_views=num_views,
                                            batch_size=max(batch_size, 64))
    probes = [dict(h, **{split: s[k] for split, s in scores.items()})
              for k, h in enumerate(hyperparameters)]
    split = "val" if validation_data is not None else "train"
    best = int(np.argmax([p[split]["top1"] for p in probes]))
    return {"history": history.history, "probes": probes, "best": best}


# ---------------------------------------------------------------------------------------
# k-NN
# ---------------------------------------------------------------------------------------


def knn_classify(train_features, train_labels, test_features, k=20, temperature=0.07,
                 num_classes=None, batch_size=1024):
    """Weighted k-NN votes on cosine similarity (the DINO-style k-NN evaluation).

    Features are L2-normalised; for each test row the ``k`` most similar training rows
    vote for their class with weight ``exp(similarity / temperature)``.

    Args:
        train_features: ``(N, D)`` (tokens ``(N, T, D)`` are mean-pooled first).
        train_labels: ``(N,)`` ints.
        test_features: ``(M, D)`` (or tokens).
        k: neighbours (20 by default; capped at ``N``).
        temperature: 0.07.
        num_classes: default ``max(train_labels) + 1``.
        batch_size: test rows per similarity block.

    Returns:
        ``(M, num_classes)`` float64 vote totals; ``argmax`` is the prediction and
        :func:`topk_accuracy` gives top-1/top-5.

    Example:

    >>> train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    >>> votes = knn_classify(train, [0, 0, 1], np.array([[1.0, 0.05]]), k=2)
    >>> int(votes.argmax())
    0
    """
    def pooled(x):
        x = np.asarray(x, dtype=np.float32)
        return x.mean(axis=-2) if x.ndim == 3 else x

    train = pooled(train_features)
    test = pooled(test_features)
    labels = np.asarray(train_labels).astype(np.int64).reshape(-1)
    if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
        raise ValueError(
            f"Need (N, D) train and (M, D) test features of equal D; got {train.shape} and "
            f"{test.shape}.")
    if labels.shape[0] != train.shape[0]:
        raise ValueError(f"{train.shape[0]} train rows but {labels.shape[0]} labels.")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature!r}.")
    num_classes = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    k = int(min(k, train.shape[0]))
    train_t = ops.convert_to_tensor(_l2_normalize(train))
    one_hot = np.eye(num_classes, dtype=np.float64)[labels]
    out = []
    for start in range(0, test.shape[0], batch_size):
        block = ops.convert_to_tensor(_l2_normalize(test[start:start + batch_size]))
        sim = ops.matmul(block, ops.transpose(train_t))
        values, indices = ops.top_k(sim, k=k)
        values = ops.convert_to_numpy(values).astype(np.float64)
        indices = ops.convert_to_numpy(indices)
        weights = np.exp(values / temperature)
        out.append(np.einsum("mk,mkc->mc", weights, one_hot[indices]))
    return np.concatenate(out, axis=0)


def _l2_normalize(x):
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(
        np.float32)
