"""XRM twin training: "Discovering environments with XRM" (Pezeshki et al., ICML 2024).

XRM trains two copies of a classifier ("twins") on two fixed random halves of the training
set. Each twin is trained with a class-balanced cross-entropy on the examples it holds in,
against a per-example *dynamic* label. After every step, each example's label is replaced,
with probability ``q = (p - 1/C) * C / (C - 1)``, by the class its held-out twin predicts
with confidence ``p``: each twin learns to imitate its twin's confident held-out mistakes, an
"echo chamber" that drives both twins onto the spurious feature. At the end an example is
placed in environment ``m = 1`` when either twin misclassifies it against its *original*
label (``keras_jepa.models.xrm.groups.infer_environments``).

Design: one code path, Keras's own ``train_step``
-------------------------------------------------
``XRM`` overrides ``call`` (both twins' logits) and ``compute_loss``; the per-backend
``train_step`` of Keras does the rest. Everything one XRM step changes besides the weights
is a ``keras.Variable`` assigned inside ``compute_loss`` under ``training=True``:

- ``dynamic_labels`` (int32, one per training example; ``-1`` until the example is first
  seen, then the current label ``y~``);
- ``flip_count`` (number of examples with ``y~ != y``, updated incrementally);
- ``step_counter`` (training steps taken);
- the state of ``flip_seed_generator`` (a ``keras.random.SeedGenerator``) that draws the
  Bernoulli flips.

JAX's trainer wraps ``compute_loss`` in a ``StatelessScope`` over all non-trainable and
metric variables and returns their new values (the seed generator's state is one of the
non-trainable variables), torch assigns in place, TF assigns inside its ``tf.function``.
This expresses the official step exactly, so no trainer in ``keras_jepa/backend/`` is needed:

- the official update uses the held-out logits of the *same* forward pass that produced the
  loss (before the optimizer step), so computing the flips in ``compute_loss`` from
  ``y_pred`` reproduces it; writing the new labels after the loss is formed means the step's
  gradient uses the pre-flip labels, as in the official code;
- one optimizer steps both twins (``TwinNets`` in the official code); the held-in logits
  ``a * f_a(x) + (1 - a) * f_b(x)`` route each example's gradient to its own twin only.

The label store, the assignments, the counters *and* the flip generator's state are saved
by ``save_weights`` / ``ModelCheckpoint`` (``SeedGenerator`` states are normally not saved;
``save_own_variables`` adds it), so a restored run continues with the same flips.

Data contract
-------------
Training inputs are dicts ``{"features": x, "index": i}`` with ``i`` the example's row in
the training set (``0 <= i < num_examples``) and ``y`` the original labels;
``keras_jepa.models.xrm.data.IndexedBatches`` produces them. Indices within one batch must be
unique (true for shuffled batches without replacement, which is what XRM uses), and in range:
inside a compiled JAX step an out-of-range index is clamped or dropped silently, not
reported. Validation and prediction inputs need only ``"features"`` (or a plain tensor).
The reported ``loss`` includes the ``l2`` term.

Distribution is untested: under JAX SPMD data parallelism one program sees the global batch,
so the store update should stay exact; under torch DDP each process would update only its
own shard's labels (the stores would drift apart); TF ``MirroredStrategy`` is unknown.

Faithfulness notes (official repository ``facebookresearch/XRM``, checked)
------------------------------------------------------------------------
- Loss: ``sum over classes present in the batch of the mean CE of that class`` (a *sum* of
  per-class means, not their average), on held-in logits against the dynamic labels.
- Flip probability ``(p_max - 1/C) * C / (C - 1)`` from the detached held-out softmax, the
  new label is the held-out argmax; flipped labels persist and may flip again. Here ``q`` is
  clipped to ``[0, 1]`` against rounding (``torch.bernoulli`` would raise instead).
- Assignments: one Bernoulli(0.5) draw per training example, fixed for the whole run
  (numpy ``default_rng(assignment_seed)`` here; the official draw uses torch's RNG, so the
  halves differ in value but not in law).
- Twins: the official MLP twins are initialised independently; the official ResNet/BERT
  twins both load the same pretrained weights and a zero-initialised head. Here: an unbuilt
  ``classifier`` gives two independent initialisations, a built one is copied into both.
- Weight decay: torch's ``weight_decay`` (Adam and SGD) adds ``wd * theta`` to the gradient
  (coupled L2), unlike Keras's decoupled ``weight_decay``. ``l2=wd`` adds ``wd/2 * ||theta||^2``
  over both twins to the loss, which gives the official gradient.
- ``flip_rate`` is ``mean(y~ != y)`` over the whole training set (unseen examples count as
  not flipped), as in the official ``report_stats``.
"""

import keras
import numpy as np
from keras import ops

FEATURES = "features"
INDEX = "index"


def flip_probability(probabilities):
    """XRM's flip probability ``q = (p_max - 1/C) * C / (C - 1)``, clipped to ``[0, 1]``.

    ``p_max`` is the largest class probability: ``q = 0`` for a uniform prediction, ``1``
    for a one-hot prediction, and ``2 * p_max - 1`` for two classes.

    Args:
        probabilities: ``(..., C)`` softmax probabilities, ``C >= 2``.

    Returns:
        ``(...)`` float tensor.

    Example:

    >>> from keras import ops
    >>> q = flip_probability(ops.convert_to_tensor([[0.8, 0.2], [0.5, 0.5]]))
    >>> [round(float(v), 4) for v in ops.convert_to_numpy(q)]
    [0.6, 0.0]
    """
    probabilities = ops.convert_to_tensor(probabilities)
    num_classes = probabilities.shape[-1]
    if num_classes is None or num_classes < 2:
        raise ValueError(
            "flip_probability needs probabilities over C >= 2 classes on the last axis; "
            f"got shape {tuple(probabilities.shape)}."
        )
    p_max = ops.max(probabilities, axis=-1)
    q = (p_max - 1.0 / num_classes) * (num_classes / (num_classes - 1.0))
    return ops.clip(q, 0.0, 1.0)


def class_balanced_cross_entropy(labels, logits):
    """Sum over the classes present in the batch of the mean cross-entropy of each class.

    This is XRM's twin loss: ``L = sum_c mean_{i: y_i = c} CE(logits_i, c)``. Classes with
    no example in the batch contribute 0. Shapes stay static (no boolean masking).

    Args:
        labels: ``(B,)`` int class ids.
        logits: ``(B, C)`` unnormalised scores.

    Returns:
        A float32 scalar.

    Example:

    >>> import numpy as np
    >>> logits = np.zeros((3, 2), "float32")           # CE = log 2 for every example
    >>> loss = class_balanced_cross_entropy(np.array([0, 0, 1]), logits)
    >>> round(float(loss), 4)                           # two classes present: 2 * log 2
    1.3863
    """
    logits = ops.cast(logits, "float32")
    labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
    num_classes = logits.shape[-1]
    one_hot = ops.one_hot(labels, num_classes, dtype="float32")
    per_example = -ops.sum(one_hot * ops.log_softmax(logits, axis=-1), axis=-1)
    per_class_sum = ops.sum(one_hot * per_example[:, None], axis=0)
    per_class_count = ops.sum(one_hot, axis=0)
    return ops.sum(per_class_sum / ops.maximum(per_class_count, 1.0))


def l2_penalty(weights):
    """``0.5 * sum ||w||^2`` over ``weights`` (float32): the loss whose gradient is torch's
    coupled ``weight_decay`` term ``w`` (multiply by the decay).

    Example:

    >>> import keras
    >>> layer = keras.layers.Dense(1, kernel_initializer="ones")
    >>> layer.build((None, 2))
    >>> from keras import ops
    >>> float(ops.convert_to_numpy(l2_penalty(layer.trainable_weights)))  # 0.5 * (1 + 1 + 0)
    1.0
    """
    total = ops.convert_to_tensor(0.0, "float32")
    for weight in weights:
        total = total + 0.5 * ops.sum(ops.square(ops.cast(weight, "float32")))
    return total


class CurrentValue(keras.metrics.Metric):
    """A metric that reports the last value it was given (e.g. the current flip rate).

    Example:

    >>> metric = CurrentValue(name="flip_rate")
    >>> metric.update_state(0.25)
    >>> float(metric.result())
    0.25
    """

    def __init__(self, name="current_value", dtype="float32"):
        super().__init__(name=name, dtype=dtype)
        self._current = self.add_variable(
            shape=(), initializer="zeros", dtype=self.dtype, name="current"
        )

    def update_state(self, value):
        self._current.assign(ops.cast(value, self.dtype))

    def result(self):
        return ops.convert_to_tensor(self._current)

    def reset_state(self):
        self._current.assign(ops.zeros((), self.dtype))


def _split_inputs(inputs):
    if isinstance(inputs, dict):
        if FEATURES not in inputs:
            raise ValueError(
                f"XRM inputs given as a dict need a '{FEATURES}' entry; got keys "
                f"{sorted(inputs)}."
            )
        return inputs[FEATURES], inputs.get(INDEX)
    return inputs, None


def _features_shape(input_shape):
    if isinstance(input_shape, dict):
        return input_shape[FEATURES]
    return input_shape


def _make_twin(classifier):
    """A fresh copy of ``classifier``: same architecture; the template's weights if built."""
    if isinstance(classifier, keras.layers.Layer):
        if isinstance(classifier, keras.Model) and not _is_subclassed(classifier):
            twin = keras.models.clone_model(classifier)
        else:
            twin = classifier.__class__.from_config(classifier.get_config())
        if classifier.built and classifier.weights:
            if not twin.built:
                twin.build_from_config(classifier.get_build_config())
            twin.set_weights(classifier.get_weights())
        return twin
    if callable(classifier):
        twin = classifier()
        if not isinstance(twin, keras.layers.Layer):
            raise TypeError(
                "XRM's classifier factory must return a Keras layer or model; it returned "
                f"{type(twin).__name__}."
            )
        return twin
    raise TypeError(
        "XRM's classifier must be a Keras layer/model or a function returning one; got "
        f"{type(classifier).__name__}."
    )


def _is_subclassed(model):
    return not (
        isinstance(model, keras.Sequential)
        or model.__class__.__name__ == "Functional"
        or getattr(model, "_is_graph_network", False)
    )


def _bernoulli_initializer(seed, probability=0.5):
    def initializer(shape, dtype=None):
        rng = np.random.default_rng(seed)
        return (rng.random(shape) < probability).astype("int32")

    return initializer


@keras.saving.register_keras_serializable(package="keras_jepa")
class XRM(keras.Model):
    """XRM twin classifiers trained with ``fit``; infers environments without group labels.

    Args:
        classifier: a Keras model or layer mapping features to ``(B, C)`` logits
            (``C >= 2``), or a zero-argument function returning a fresh one. It is copied
            into two twins: an unbuilt model gives two independent initialisations (the
            official MLP twins), a built one is copied into both (the official pretrained
            ResNet/BERT twins start identical).
        num_examples: training-set size; the label store and assignments hold one entry per
            training example, addressed by the ``"index"`` input.
        assignment_seed: seed of the fixed Bernoulli(0.5) split (``1`` = twin A holds the
            example in).
        flip_seed: seed of the flip generator (``None``: random).
        l2: coupled L2 weight decay over both twins (torch ``weight_decay``; see the module
            notes). 0 disables it.

    Call: ``model(x)`` with ``x`` a features tensor or ``{"features": ...}`` returns
    ``{"logits_a": (B, C), "logits_b": (B, C)}``.

    Training: ``model.compile(optimizer)`` (no loss) then ``model.fit(inputs, labels)`` with
    ``inputs = {"features": x, "index": rows}``. Logs carry ``loss`` (class-balanced CE on
    held-in logits) and ``flip_rate`` (fraction of training labels currently flipped).

    Example:

    >>> import keras, numpy as np
    >>> x = np.random.default_rng(0).normal(size=(64, 5)).astype("float32")
    >>> y = (x[:, 0] > 0).astype("int32")
    >>> xrm = XRM(keras.Sequential([keras.layers.Dense(2)]), num_examples=64, flip_seed=1)
    >>> xrm.compile(optimizer=keras.optimizers.SGD(0.1))
    >>> history = xrm.fit({"features": x, "index": np.arange(64)}, y, batch_size=16,
    ...                   epochs=2, verbose=0)
    >>> sorted(history.history)
    ['flip_rate', 'loss']
    >>> xrm.predict(x, verbose=0)["logits_a"].shape
    (64, 2)
    """

    def __init__(
        self,
        classifier,
        num_examples,
        assignment_seed=0,
        flip_seed=None,
        l2=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        num_examples = int(num_examples)
        if num_examples < 2:
            raise ValueError(
                f"XRM needs num_examples >= 2 (the training-set size); got {num_examples}."
            )
        if l2 < 0:
            raise ValueError(f"l2 must be >= 0; got {l2}.")
        self.num_examples = num_examples
        self.assignment_seed = assignment_seed
        self.flip_seed = flip_seed
        self.l2 = float(l2)
        self.twin_a = _make_twin(classifier)
        self.twin_b = _make_twin(classifier)
        self._classifier_config = keras.saving.serialize_keras_object(self.twin_a)

        self.assignments = self.add_weight(
            shape=(num_examples,),
            initializer=_bernoulli_initializer(assignment_seed),
            dtype="int32",
            trainable=False,
            name="assignments",
        )
        self.dynamic_labels = self.add_weight(
            shape=(num_examples,),
            initializer=keras.initializers.Constant(-1),
            dtype="int32",
            trainable=False,
            name="dynamic_labels",
        )
        self.flip_count = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", trainable=False, name="flip_count"
        )
        self.step_counter = self.add_weight(
            shape=(), initializer="zeros", dtype="int32", trainable=False, name="step_counter"
        )
        self.flip_seed_generator = keras.random.SeedGenerator(flip_seed, name="flip_seed")
        self.flip_rate_tracker = CurrentValue(name="flip_rate")

    # ------------------------------------------------------------------ forward pass
    def build(self, input_shape):
        shape = _features_shape(input_shape)
        for twin in (self.twin_a, self.twin_b):
            if not twin.built:
                twin.build(shape)
        self.built = True

    def call(self, inputs, training=False):
        features, _ = _split_inputs(inputs)
        return {
            "logits_a": self.twin_a(features, training=training),
            "logits_b": self.twin_b(features, training=training),
        }

    # ------------------------------------------------------------------ loss and state
    def _regularization(self):
        total = ops.convert_to_tensor(0.0, "float32")
        if self.l2:
            weights = self.twin_a.trainable_weights + self.twin_b.trainable_weights
            total = total + self.l2 * l2_penalty(weights)
        if self.losses:
            total = total + ops.sum(ops.stack([ops.cast(v, "float32") for v in self.losses]))
        return total

    def _current_flip_rate(self):
        return ops.cast(self.flip_count, "float32") / float(self.num_examples)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Class-balanced CE on held-in logits, then the label flips (training only).

        With ``training=False`` (``evaluate``, validation) the loss is the mean of the two
        twins' class-balanced CE against ``y``, and no state changes.
        """
        logits_a = ops.cast(y_pred["logits_a"], "float32")
        logits_b = ops.cast(y_pred["logits_b"], "float32")
        num_classes = logits_a.shape[-1]
        if num_classes is None or num_classes < 2:
            raise ValueError(
                "XRM needs classifiers with C >= 2 softmax logits; got logits of shape "
                f"{tuple(logits_a.shape)}. Use a 2-unit output for binary tasks."
            )
        if y is None:
            return ops.convert_to_tensor(0.0, "float32")
        labels = ops.cast(ops.reshape(y, (-1,)), "int32")
        if not training:
            loss = 0.5 * (
                class_balanced_cross_entropy(labels, logits_a)
                + class_balanced_cross_entropy(labels, logits_b)
            )
            self.flip_rate_tracker.update_state(self._current_flip_rate())
            return loss + self._regularization()

        _, index = _split_inputs(x)
        if index is None:
            raise ValueError(
                "XRM training inputs must be a dict with 'features' and 'index' (each "
                "example's row in the training set); got no 'index'. Use "
                "keras_jepa.models.xrm.data.IndexedBatches or pass "
                "{'features': x, 'index': np.arange(len(x))}."
            )
        index = ops.cast(ops.reshape(index, (-1,)), "int32")
        held_in_a = ops.cast(ops.take(self.assignments, index), "float32")[:, None]
        held_in = held_in_a * logits_a + (1.0 - held_in_a) * logits_b
        held_out = (1.0 - held_in_a) * logits_a + held_in_a * logits_b

        stored = ops.take(self.dynamic_labels, index)
        current = ops.where(stored < 0, labels, stored)
        loss = class_balanced_cross_entropy(current, held_in) + self._regularization()

        # Flip: imitate the held-out twin's confident prediction (detached).
        probabilities = ops.softmax(ops.stop_gradient(held_out), axis=-1)
        q = flip_probability(probabilities)
        guess = ops.cast(ops.argmax(probabilities, axis=-1), "int32")
        draws = keras.random.uniform(ops.shape(q), seed=self.flip_seed_generator)
        new = ops.where(draws < q, guess, current)
        self.dynamic_labels.assign(
            ops.scatter_update(self.dynamic_labels, ops.expand_dims(index, -1), new)
        )
        delta = ops.sum(ops.cast(ops.not_equal(new, labels), "int32")) - ops.sum(
            ops.cast(ops.not_equal(current, labels), "int32")
        )
        self.flip_count.assign(self.flip_count + delta)
        self.step_counter.assign(self.step_counter + 1)
        self.flip_rate_tracker.update_state(self._current_flip_rate())
        return loss

    # ------------------------------------------------------------------ host-side views
    def flip_rate(self):
        """Fraction of training examples whose dynamic label differs from the original one."""
        return float(ops.convert_to_numpy(self.flip_count)) / self.num_examples

    def label_store(self, original_labels=None):
        """The dynamic labels as numpy; entries never seen are ``-1``, or the original label
        when ``original_labels`` is given."""
        store = np.asarray(ops.convert_to_numpy(self.dynamic_labels))
        if original_labels is not None:
            original_labels = np.asarray(original_labels).reshape(-1)
            if original_labels.shape != store.shape:
                raise ValueError(
                    f"original_labels has shape {original_labels.shape}; the store holds "
                    f"{store.shape[0]} examples."
                )
            store = np.where(store < 0, original_labels, store)
        return store

    def assignment_array(self):
        """The fixed split as numpy int32: ``1`` = twin A holds the example in."""
        return np.asarray(ops.convert_to_numpy(self.assignments))

    # ------------------------------------------------------------------ saving
    _SEED_KEY = "flip_seed_state"

    def save_own_variables(self, store):
        super().save_own_variables(store)
        store[self._SEED_KEY] = ops.convert_to_numpy(self.flip_seed_generator.state)

    def load_own_variables(self, store):
        keys = list(store.keys())
        if self._SEED_KEY in keys:
            self.flip_seed_generator.state.assign(store[self._SEED_KEY])
        super().load_own_variables({k: store[k] for k in keys if k != self._SEED_KEY})

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "classifier": self._classifier_config,
                "num_examples": self.num_examples,
                "assignment_seed": self.assignment_seed,
                "flip_seed": self.flip_seed,
                "l2": self.l2,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["classifier"] = keras.saving.deserialize_keras_object(config["classifier"])
        return cls(**config)
