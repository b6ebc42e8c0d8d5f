"""Frozen-backbone probes: training recipe, linear probe, k-NN, view aggregation, top-k.

The official probe recipe (facts: research ``jepa-reference.md`` §2.5, §3.2; checked in
``evals/video_classification_frozen/eval.py`` and ``configs/evals/*.yaml`` of V-JEPA):
AdamW (biases and 1-D weights without decay), learning rate 1e-3 with no warmup and a cosine
decay to 0 over the whole run (``start_lr = lr``, ``warmup: 0``), 20 epochs, weight decay
0.01 for video and 0.001 for images, gradient-norm clipping at 1.0, cross-entropy. Two
quirks of V-JEPA 1's loop: its weight decay follows a cosine from ``wd`` to 1e-6 (the
``final_wd`` default, never overridden); V-JEPA 2's configs set ``final_weight_decay`` equal
to ``weight_decay`` (constant) and sweep a grid of learning rates and decays with one head
each. :data:`PROBE_RECIPES` holds these numbers; :func:`train_probe` applies one.

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

from keras_jepa.layers.initializers import normal_init

# Official probe settings. ``batch_size`` is per GPU (on 8 x 8 GPUs officially).
PROBE_RECIPES = {
    # V-JEPA video probes (K400 16x8x3, SSv2 16x2x3).
    "vjepa_video": dict(epochs=20, lr=1e-3, final_lr=0.0, weight_decay=0.01,
                        final_weight_decay=1e-6, clip_norm=1.0, batch_size=4),
    # V-JEPA image probes (IN1K, Places205, iNat21; images repeated 16x along time).
    "vjepa_image": dict(epochs=20, lr=1e-3, final_lr=0.0, weight_decay=0.001,
                        final_weight_decay=1e-6, clip_norm=1.0, batch_size=16),
    # V-JEPA 2: one head of its grid (lr 1e-3, wd 0.01, constant decay); 16 heads, 4 blocks.
    "vjepa2_video": dict(epochs=20, lr=1e-3, final_lr=0.0, weight_decay=0.01,
                         final_weight_decay=0.01, clip_norm=1.0, batch_size=4),
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
    from keras_jepa.training.optimizers import CosineSchedule, JEPAAdamW, WarmupCosineSchedule

    total_steps = max(int(total_steps), 1)
    schedule = WarmupCosineSchedule(
        lr if start_lr is None else start_lr, lr, final_lr, warmup_steps=int(warmup_steps),
        total_steps=total_steps)
    if final_weight_decay is None or final_weight_decay == weight_decay:
        wd = float(weight_decay)
    else:
        wd = CosineSchedule(weight_decay, final_weight_decay, total_steps)
    return JEPAAdamW(learning_rate=schedule, weight_decay=wd, clip_norm=clip_norm,
                     clip_start_step=0)


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
    x, y = flatten_views(features, labels, num_views)
    y = np.asarray(y, dtype="int32")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{x.shape[0]} feature rows but {y.shape[0]} labels.")
    if y.min() < 0 or y.max() >= classifier.num_classes:
        raise ValueError(
            f"labels span [{y.min()}, {y.max()}]; the probe has num_classes="
            f"{classifier.num_classes}.")
    if isinstance(classifier, LinearClassifier):
        classifier.adapt(x)
    batch_size = int(min(batch_size, x.shape[0]))
    steps = int(np.ceil(x.shape[0] / batch_size)) * int(epochs)
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
