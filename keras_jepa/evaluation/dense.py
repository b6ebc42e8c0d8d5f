"""Dense (per-token) linear probing of any encoder.

A frozen encoder gives one feature vector per patch token; a linear classifier on those
tokens predicts a per-patch label (a segmentation map pooled to the token grid, an object
position map, ...). This measures how much spatially resolved information the features
keep, the property V-JEPA 2.1's dense loss targets.

* ``extract_dense_features(encoder, data)``: ``(N, tokens, D)`` float32 token features,
  in batches, with any encoder call options (``return_hierarchical=True``, ...).
* ``token_labels(label_maps, patch_size)``: pixel label maps ``(N, H, W)`` -> the majority
  label of each patch, ``(N, (H / p) * (W / p))`` in the encoders' row-major token order.
* ``DenseLinearProbe``: a ridge-regression linear classifier on one-hot targets, solved in
  closed form (float64 normal equations; deterministic, no learning-rate search), with
  features standardised on the training tokens.
* ``per_image_scores`` / ``mean_interval``: token accuracy and mean IoU per image, and a
  normal-approximation interval of their mean over images.

Example:

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> features = rng.normal(size=(20, 16, 8))
>>> labels = (features[..., 0] > 0).astype(int)  # linearly decodable per token
>>> probe = DenseLinearProbe(num_classes=2).fit(features[:10], labels[:10])
>>> acc, _ = per_image_scores(probe.predict(features[10:]), labels[10:], 2)
>>> bool(acc.mean() > 0.9)
True
"""

import math

import numpy as np
from keras import ops


def extract_dense_features(encoder, data, batch_size=32, **call_kwargs):
    """Per-token features ``(N, tokens, D)`` (float32 numpy) of ``encoder`` on ``data``.

    ``data`` is an array of images or videos in the encoder's input layout;
    ``call_kwargs`` go to every call (e.g. ``return_hierarchical=True``, or
    ``output_layers=[i]``, whose single output is then taken).
    """
    data = np.asarray(data)
    outs = []
    for start in range(0, len(data), batch_size):
        y = encoder(data[start:start + batch_size], **call_kwargs)
        if isinstance(y, (list, tuple)):
            if len(y) != 1:
                raise ValueError("Pass one output layer (or concatenate them yourself).")
            y = y[0]
        outs.append(np.asarray(ops.convert_to_numpy(y), np.float32))
    return np.concatenate(outs, axis=0)


def token_labels(label_maps, patch_size, num_classes=None):
    """Majority label of each ``patch_size x patch_size`` patch of ``label_maps (N, H, W)``
    (ties go to the smaller label), flattened row-major: ``(N, (H/p) * (W/p))`` int."""
    maps = np.asarray(label_maps)
    n, h, w = maps.shape
    p = int(patch_size)
    if h % p or w % p:
        raise ValueError(f"Label maps {maps.shape[1:]} are not divisible by patch {p}.")
    k = int(num_classes or maps.max() + 1)
    patches = maps.reshape(n, h // p, p, w // p, p).transpose(0, 1, 3, 2, 4)
    patches = patches.reshape(n, (h // p) * (w // p), p * p)
    counts = np.stack([(patches == c).sum(-1) for c in range(k)], axis=-1)
    return counts.argmax(-1)


class DenseLinearProbe:
    """Per-token linear classifier fitted by ridge regression on one-hot targets.

    Args:
        num_classes: number of token labels.
        l2: ridge penalty (on standardised features; the bias is not penalised).
    """

    def __init__(self, num_classes, l2=1e-2):
        self.num_classes = int(num_classes)
        self.l2 = float(l2)
        self.weights = None

    def _design(self, features):
        x = np.asarray(features, np.float64).reshape(-1, np.shape(features)[-1])
        x = (x - self.mean) / self.std
        return np.concatenate([x, np.ones((len(x), 1))], axis=1)

    def fit(self, features, labels):
        """``features (N, tokens, D)``, ``labels (N, tokens)`` int; returns ``self``."""
        x = np.asarray(features, np.float64).reshape(-1, np.shape(features)[-1])
        y = np.asarray(labels).reshape(-1)
        if len(x) != len(y):
            raise ValueError(f"{len(x)} tokens of features but {len(y)} labels.")
        self.mean, self.std = x.mean(0), x.std(0) + 1e-6
        design = self._design(features)
        targets = np.eye(self.num_classes)[y]
        penalty = self.l2 * len(design) * np.eye(design.shape[1])
        penalty[-1, -1] = 0.0
        self.weights = np.linalg.solve(design.T @ design + penalty, design.T @ targets)
        return self

    def scores(self, features):
        """Class scores ``(N, tokens, num_classes)``."""
        if self.weights is None:
            raise ValueError("Call fit first.")
        shape = np.shape(features)[:-1]
        return (self._design(features) @ self.weights).reshape(shape + (self.num_classes,))

    def predict(self, features):
        """Predicted token labels ``(N, tokens)``."""
        return self.scores(features).argmax(-1)


def per_image_scores(predicted, labels, num_classes):
    """Token accuracy and mean IoU (over the classes present in the image's labels or
    predictions) of each image: two ``(N,)`` arrays."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    accuracy = (predicted == labels).mean(-1)
    ious = []
    for p, t in zip(predicted, labels):
        values = []
        for c in range(num_classes):
            union = np.logical_or(p == c, t == c).sum()
            if union:
                values.append(np.logical_and(p == c, t == c).sum() / union)
        ious.append(np.mean(values))
    return accuracy, np.asarray(ious)


def mean_interval(values, z=1.96):
    """``(mean, half width)`` of the normal-approximation interval of the mean."""
    values = np.asarray(values, np.float64)
    if len(values) < 2:
        return float(values.mean()), float("nan")
    return float(values.mean()), float(z * values.std(ddof=1) / math.sqrt(len(values)))
