"""Phase-2 learners of XRM: ERM and GroupDRO around any Keras classifier.

Both are ``keras.Model`` wrappers that train with ``fit`` on inputs
``{"features": x, "group": g}`` (``keras_jepa.models.xrm.data.IndexedBatches`` with ``groups``
produces them) and labels ``y``; ``group`` is ignored by ERM. Groups are ``g = 2 * y + m``
with ``m`` the (inferred or annotated) environment bit, as in the official code
(``num_m = 2``). The reweighting (RWG) and subsampling (SUBG) learners of the paper are ERM
on a different batch stream: ``keras_jepa.models.xrm.groups.reweighting_weights`` and
``subsample_groups`` feed ``IndexedBatches(weights=...)`` and ``IndexedBatches(rows=...)``.

GroupDRO (``facebookresearch/XRM`` ``algorithms.py``, checked): per batch, for every group
present, the mean cross-entropy ``l_g``; ``q_g <- q_g * exp(eta * l_g)`` (detached), then
``q <- q / sum(q)``; the loss is ``sum_g q_g * l_g`` with the *updated* ``q`` (absent groups
contribute 0 and keep their weight up to the renormalisation). The official ``q`` starts at
ones, this one at ``1/G``: the first renormalisation makes them identical.

The group weights ``q`` are a non-trainable ``Variable`` assigned in ``compute_loss`` under
``training=True`` (captured by JAX's stateless step; saved with the weights), so the default
``train_step`` runs on every backend.
"""

import keras
from keras import ops

from keras_jepa.models.xrm.model import l2_penalty

FEATURES = "features"
GROUP = "group"


def _features(inputs):
    if isinstance(inputs, dict):
        if FEATURES not in inputs:
            raise ValueError(
                f"Inputs given as a dict need a '{FEATURES}' entry; got keys {sorted(inputs)}."
            )
        return inputs[FEATURES]
    return inputs


def per_example_cross_entropy(labels, logits):
    """Softmax cross-entropy per example in float32: ``(B,)``.

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> ce = per_example_cross_entropy(np.array([0, 1]), np.zeros((2, 2), "float32"))
    >>> [round(float(v), 4) for v in ops.convert_to_numpy(ce)]   # log 2 each
    [0.6931, 0.6931]
    """
    logits = ops.cast(logits, "float32")
    labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
    one_hot = ops.one_hot(labels, logits.shape[-1], dtype="float32")
    return -ops.sum(one_hot * ops.log_softmax(logits, axis=-1), axis=-1)


def group_mean_losses(losses, groups, num_groups):
    """Mean loss per group and a presence mask: ``((G,), (G,))`` (absent groups: 0, False).

    Example:

    >>> import numpy as np
    >>> from keras import ops
    >>> means, present = group_mean_losses(np.array([1.0, 3.0, 5.0]), np.array([0, 0, 2]), 3)
    >>> ops.convert_to_numpy(means).tolist(), ops.convert_to_numpy(present).tolist()
    ([2.0, 0.0, 5.0], [True, False, True])
    """
    losses = ops.cast(losses, "float32")
    one_hot = ops.one_hot(ops.cast(ops.reshape(groups, (-1,)), "int32"), num_groups,
                          dtype="float32")
    sums = ops.sum(one_hot * losses[:, None], axis=0)
    counts = ops.sum(one_hot, axis=0)
    return sums / ops.maximum(counts, 1.0), counts > 0


class _WrappedClassifier(keras.Model):
    def __init__(self, classifier, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(classifier, keras.layers.Layer):
            raise TypeError(
                f"classifier must be a Keras layer or model; got {type(classifier).__name__}."
            )
        if l2 < 0:
            raise ValueError(f"l2 must be >= 0; got {l2}.")
        self.classifier = classifier
        self.l2 = float(l2)

    def build(self, input_shape):
        shape = input_shape[FEATURES] if isinstance(input_shape, dict) else input_shape
        if not self.classifier.built:
            self.classifier.build(shape)
        self.built = True

    def call(self, inputs, training=False):
        return self.classifier(_features(inputs), training=training)

    def _regularization(self):
        total = ops.convert_to_tensor(0.0, "float32")
        if self.l2:
            total = total + self.l2 * l2_penalty(self.classifier.trainable_weights)
        if self.losses:
            total = total + ops.sum(ops.stack([ops.cast(v, "float32") for v in self.losses]))
        return total

    def get_config(self):
        config = super().get_config()
        config.update(
            {"classifier": keras.saving.serialize_keras_object(self.classifier), "l2": self.l2}
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(config["classifier"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_jepa")
class ERM(_WrappedClassifier):
    """Mean softmax cross-entropy, plus optional coupled L2 (torch ``weight_decay``).

    The ERM, RWG and SUBG learners of XRM's phase 2 (they differ only in the batch stream).

    Args:
        classifier: a Keras model or layer mapping features to ``(B, C)`` logits.
        l2: coupled L2 decay: adds ``l2/2 * ||theta||^2`` to the loss.

    Example:

    >>> import keras, numpy as np
    >>> x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    >>> model = ERM(keras.Sequential([keras.layers.Dense(2)]))
    >>> model.compile(optimizer="sgd")
    >>> _ = model.fit({"features": x}, (x[:, 0] > 0).astype("int32"), epochs=1, verbose=0)
    >>> model.predict(x, verbose=0).shape
    (32, 2)
    """

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y is None:
            return ops.convert_to_tensor(0.0, "float32")
        return ops.mean(per_example_cross_entropy(y, y_pred)) + self._regularization()


@keras.saving.register_keras_serializable(package="keras_jepa")
class GroupDRO(_WrappedClassifier):
    """Group distributionally robust optimisation (Sagawa et al.), as in XRM's phase 2.

    Args:
        classifier: a Keras model or layer mapping features to ``(B, C)`` logits.
        num_groups: number of groups ``G`` (``2 * C`` for ``g = 2y + m``).
        eta: step size of the exponentiated-gradient update of the group weights (the
            official search draws ``10**U(-3, -1)``; the one-minute Waterbirds run uses 0.1).
        l2: coupled L2 decay (see ``ERM``).

    ``group_weights`` (the ``q`` of the paper) is model state, saved with the weights.
    Training inputs: ``{"features": x, "group": g}``; under ``evaluate`` the group is
    optional and the loss is the plain mean cross-entropy.

    Example:

    >>> import keras, numpy as np
    >>> x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    >>> y = (x[:, 0] > 0).astype("int32")
    >>> model = GroupDRO(keras.Sequential([keras.layers.Dense(2)]), num_groups=4, eta=0.1)
    >>> model.compile(optimizer="sgd")
    >>> _ = model.fit({"features": x, "group": 2 * y + (x[:, 1] > 1)}, y, epochs=1,
    ...               verbose=0)
    >>> q = keras.ops.convert_to_numpy(model.group_weights)
    >>> q.shape, round(float(q.sum()), 5)
    ((4,), 1.0)
    """

    def __init__(self, classifier, num_groups, eta=0.01, l2=0.0, **kwargs):
        super().__init__(classifier, l2=l2, **kwargs)
        num_groups = int(num_groups)
        if num_groups < 1:
            raise ValueError(f"num_groups must be >= 1; got {num_groups}.")
        if eta < 0:
            raise ValueError(f"eta must be >= 0; got {eta}.")
        self.num_groups = num_groups
        self.eta = float(eta)
        self.group_weights = self.add_weight(
            shape=(num_groups,),
            initializer=keras.initializers.Constant(1.0 / num_groups),
            dtype="float32",
            trainable=False,
            name="group_weights",
        )

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y is None:
            return ops.convert_to_tensor(0.0, "float32")
        losses = per_example_cross_entropy(y, y_pred)
        groups = x.get(GROUP) if isinstance(x, dict) else None
        if not training:
            return ops.mean(losses) + self._regularization()
        if groups is None:
            raise ValueError(
                "GroupDRO training inputs must be a dict with 'features' and 'group' "
                "(g = 2 * y + m); got no 'group'."
            )
        means, present = group_mean_losses(losses, groups, self.num_groups)
        step = ops.where(present, self.eta * ops.stop_gradient(means), 0.0)
        q = self.group_weights * ops.exp(step)
        q = q / ops.sum(q)
        self.group_weights.assign(q)
        return ops.sum(ops.stop_gradient(q) * means) + self._regularization()

    def get_config(self):
        config = super().get_config()
        config.update({"num_groups": self.num_groups, "eta": self.eta})
        return config
