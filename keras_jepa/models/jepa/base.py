"""Shared machinery of JEPA pretraining models: context encoder, EMA target encoder,
predictor, and the loss against layer-normed target features.

Training uses Keras's own ``train_step`` on every backend. ``call`` runs the online path
(context encoder on the context tokens, then the predictor); ``compute_loss`` first applies
the EMA update of the target encoder, then runs the target encoder on the full input:

* At training step ``s`` the target weights become ``m * target + (1 - m) * online`` with
  the online weights as they are at the start of step ``s`` (after update ``s - 1``) and
  the momentum of update ``s - 1``. That is exactly the official order (optimizer step,
  then EMA) shifted into the next step; step 0 applies no update. The target therefore
  lags the online encoder by one deferred EMA update at the end of ``fit``.
* ``compute_loss`` runs outside any layer call, so the EMA reads float32 weights under
  ``mixed_bfloat16``; JAX captures the assignments through Keras's stateless loss scope.
* The step counter is a non-trainable variable, saved with the weights, so a resumed run
  continues the momentum schedule.
* Under ``tf.distribute.MirroredStrategy`` the update runs in the replica context: the
  target variables are mirrored with aggregation ``"none"``, so each replica assigns its
  own copy from the online weights, which are identical on every replica after the
  synchronised optimizer step; the copies stay equal. The returned loss is divided by the
  number of replicas there, as Keras's own losses are, because TensorFlow sums the
  replicas' gradients.
"""

import keras
from keras import ops

from keras_jepa.backend.loss_scaling import scale_loss_for_replicas
from keras_jepa.layers.token_ops import check_indices
from keras_jepa.presets.mixin import PresetMixin
from keras_jepa.models.vit.vision_transformer import VisionTransformer


def layer_norm_no_affine(x, epsilon=1e-5):
    """``F.layer_norm(x, (D,))`` of the official code: no scale/shift, eps 1e-5, float32."""
    x = ops.cast(x, "float32")
    mean = ops.mean(x, axis=-1, keepdims=True)
    var = ops.mean(ops.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * ops.rsqrt(var + epsilon)


def first_occurrence_weights(indices):
    """``(B, K)`` float32: 1 at the first occurrence of each index of a row, 0 at a repeat.

    The mask samplers pad a mask shorter than its static budget by repeating some of its
    tokens; weighting the loss with this counts every real token once, as the official loss
    (over the unpadded masks) does. Rows need not be sorted: each row is sorted with
    ``argsort``, repeats are found next to each other, and the flags go back to the original
    positions (static shapes, no loop over the batch).

    Example:

    >>> import numpy as np
    >>> first_occurrence_weights(np.array([[3, 0, 3, 7]])).tolist()
    [[1.0, 1.0, 0.0, 1.0]]
    """
    indices = ops.cast(indices, "int32")
    order = ops.argsort(indices, axis=-1)
    ordered = ops.take_along_axis(indices, order, axis=-1)
    first = ops.concatenate(
        [ops.ones_like(ordered[:, :1], dtype="bool"),
         ops.not_equal(ordered[:, 1:], ordered[:, :-1])],
        axis=-1,
    )
    # ``argsort`` of a permutation is its inverse: back to the original positions.
    inverse = ops.argsort(order, axis=-1)
    return ops.cast(ops.take_along_axis(first, inverse, axis=-1), "float32")


def _reduce(loss, weights):
    """Mean of a per-element loss ``(B, K, D)``, or, with ``(B, K)`` token weights, the
    weighted mean over tokens (each token's mean over ``D`` counts ``weight`` times)."""
    if weights is None:
        return ops.mean(loss)
    total, count = weighted_token_sum(loss, weights)
    return total / count


def weighted_token_sum(loss, weights):
    """``(sum over tokens of weight * mean over D, sum of weights)`` of a ``(B, K, D)`` loss."""
    weights = ops.cast(weights, "float32")
    return ops.sum(ops.mean(loss, axis=-1) * weights), ops.sum(weights)


def smooth_l1_elements(pred, target, beta=1.0):
    """Element-wise smooth-L1 (Huber with ``beta``), float32."""
    diff = ops.abs(ops.cast(pred, "float32") - ops.cast(target, "float32"))
    return ops.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)


def smooth_l1(pred, target, beta=1.0, weights=None):
    """Mean smooth-L1 (Huber with ``beta``), float32; ``weights (B, K)`` weight the tokens
    (e.g. :func:`first_occurrence_weights`)."""
    return _reduce(smooth_l1_elements(pred, target, beta), weights)


def lp_loss_elements(pred, target, exponent=1.0):
    """Element-wise ``|pred - target| ** p / p``, float32."""
    diff = ops.abs(ops.cast(pred, "float32") - ops.cast(target, "float32"))
    if exponent != 1.0:
        diff = ops.power(diff, exponent)
    return diff / exponent


def lp_loss(pred, target, exponent=1.0, weights=None):
    """V-JEPA's ``mean(|pred - target| ** p) / p`` (``p = 1``: L1), float32; ``weights
    (B, K)`` weight the tokens (e.g. :func:`first_occurrence_weights`)."""
    return _reduce(lp_loss_elements(pred, target, exponent), weights)


def resolve_encoder(encoder):
    """Deserialises a config dict and checks that the encoder is a ``VisionTransformer``."""
    if isinstance(encoder, dict):
        encoder = keras.saving.deserialize_keras_object(encoder)
    if not isinstance(encoder, VisionTransformer):
        raise ValueError(
            f"encoder must be a keras_jepa VisionTransformer; got {type(encoder).__name__}."
        )
    return encoder


class JEPA(PresetMixin, keras.Model):
    """Base class: holds ``encoder`` (trainable), ``target_encoder`` (EMA, frozen) and
    ``predictor``; subclasses implement ``call`` and ``prediction_loss``.

    Args:
        encoder: a ``VisionTransformer`` (the context encoder).
        predictor: a ``JEPAPredictor`` for that encoder.
        ema_momentum: ``(m0, m1)``; the momentum rises linearly from ``m0`` to ``m1`` over
            ``ema_steps`` updates (I-JEPA: 0.996 -> 1.0; V-JEPA: 0.998 -> 1.0). Equal values
            give a constant momentum (V-JEPA 2: 0.99925).
        ema_steps: length of the momentum ramp in optimizer steps (official:
            ``iterations_per_epoch * epochs * ipe_scale``). Required unless constant.
        feature_encoder: ``"target"`` (default; the EMA encoder, which the official
            probes evaluate) or ``"context"``: the encoder ``model.backbone`` returns for
            feature extraction.

    Presets: ``IJEPA.from_preset("ijepa_vith14_in1k_224")``,
    ``VJEPA.from_preset("vjepa2_vitl16_256")``, ... (``keras-jepa presets``) give the
    released models with all three modules; ``save_to_preset`` writes your own.
    """

    def __init__(self, encoder, predictor, ema_momentum=(0.996, 1.0), ema_steps=None,
                 feature_encoder="target", **kwargs):
        super().__init__(**kwargs)
        encoder = resolve_encoder(encoder)
        if isinstance(predictor, dict):
            predictor = keras.saving.deserialize_keras_object(predictor)
        m0, m1 = (float(v) for v in ema_momentum)
        if not (0.0 <= m0 <= 1.0 and 0.0 <= m1 <= 1.0):
            raise ValueError(f"ema_momentum values must be in [0, 1]; got {ema_momentum}.")
        if m0 != m1 and not ema_steps:
            raise ValueError(
                "A momentum ramp needs ema_steps (the number of optimizer steps of the run); "
                f"got ema_momentum={ema_momentum} and ema_steps={ema_steps}."
            )
        self.ema_momentum = (m0, m1)
        self.ema_steps = None if ema_steps is None else int(ema_steps)
        self.feature_encoder = feature_encoder
        self.encoder = encoder
        target_config = {**encoder.get_config(), "name": "target_encoder", "trainable": False}
        self.target_encoder = VisionTransformer.from_config(target_config)
        self.target_encoder.set_weights(encoder.get_weights())
        self.target_encoder.trainable = False
        for variable in self.target_encoder.weights:
            # The layer flag alone is not enough on TensorFlow: the parent model collects
            # ``v for v in weights if v.trainable``.
            variable.trainable = False
        self.predictor = predictor
        if not predictor.built:
            predictor.build()
        self.ema_step = self.add_weight(
            name="ema_step", shape=(), initializer="zeros", trainable=False, dtype="float32"
        )
        self.momentum_tracker = keras.metrics.Mean(name="ema_momentum")
        self.built = True

    @property
    def feature_encoder(self):
        """``"target"`` or ``"context"``: which encoder ``backbone`` returns."""
        return self._feature_encoder

    @feature_encoder.setter
    def feature_encoder(self, value):
        if value not in ("target", "context"):
            raise ValueError(f"feature_encoder must be 'target' or 'context'; got {value!r}.")
        self._feature_encoder = value

    @property
    def backbone(self):
        """The encoder used for features: the target (EMA) or the context encoder."""
        return self.target_encoder if self._feature_encoder == "target" else self.encoder

    # ------------------------------------------------------------------ presets

    @classmethod
    def provides_component(cls, requested):
        """A JEPA preset also gives a ``VisionTransformer`` (one of its encoders)."""
        return issubclass(VisionTransformer, requested)

    def preset_component(self, requested, encoder=None, **overrides):
        """The encoder asked for by ``VisionTransformer.from_preset(<JEPA preset>)``: the
        target (EMA) encoder, or the context encoder with ``encoder="context"``, as a
        standalone backbone (``overrides`` change its config)."""
        source = self.encoder if encoder == "context" else self.target_encoder
        config = {**source.get_config(), "name": "vision_transformer", "trainable": True,
                  **overrides}
        backbone = VisionTransformer.from_config(config)
        backbone.set_weights(source.get_weights())
        return backbone

    # ------------------------------------------------------------------ EMA

    def momentum_at(self, update_index):
        """Momentum of EMA update ``update_index`` (0-based), as a float32 tensor."""
        m0, m1 = self.ema_momentum
        if m0 == m1:
            return ops.convert_to_tensor(m0, "float32")
        frac = ops.clip(ops.cast(update_index, "float32") / float(self.ema_steps), 0.0, 1.0)
        return m0 + (m1 - m0) * frac

    def update_target_encoder(self):
        """Applies the deferred EMA update (see module docstring); returns the momentum."""
        step = ops.cast(self.ema_step, "float32")
        momentum = ops.where(step > 0, self.momentum_at(step - 1.0), 1.0)
        for target, online in zip(self.target_encoder.weights, self.encoder.weights):
            new = momentum * ops.cast(target, "float32") + (1.0 - momentum) * ops.cast(
                ops.stop_gradient(online), "float32"
            )
            target.assign(ops.cast(new, target.dtype))
        self.ema_step.assign(step + 1.0)
        return momentum

    def target_features(self, inputs):
        """Layer-normed (no affine, float32) target-encoder features of the full input."""
        h = self.target_encoder(inputs, training=False)
        return ops.stop_gradient(layer_norm_no_affine(h))

    # ------------------------------------------------------------------ training

    def check_batch(self, batch):
        """Checks the index arrays of a dict batch (``"context_indices"``,
        ``"target_indices"``: lists of ``(B, K)``) against the encoder's token count for
        the batch's ``"images"`` / ``"videos"``, when their values are known (numpy or eager
        tensors). Raises ``ValueError`` naming the key and the offending index.

        ``fit`` runs it on in-memory data before the first step: inside the compiled step
        an out-of-range index cannot raise (JAX returns NaN features). Datasets and
        generators are not read ahead; ``keras_jepa.masks`` samplers stay in range.
        """
        if not isinstance(batch, dict):
            return
        data = batch.get("images", batch.get("videos"))
        if data is None or not hasattr(data, "shape"):
            return
        shape = tuple(data.shape)
        num_tokens = self.encoder.num_tokens(shape)
        for key in ("context_indices", "target_indices"):
            masks = batch.get(key)
            if masks is None:
                continue
            for i, mask in enumerate(masks if isinstance(masks, (list, tuple)) else [masks]):
                check_indices(mask, num_tokens, f"{key}[{i}]", batch_size=shape[0])

    def fit(self, x=None, y=None, *args, **kwargs):
        self.check_batch(x)
        return super().fit(x, y, *args, **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if training:
            self.momentum_tracker.update_state(self.update_target_encoder())
        loss = self.prediction_loss(x, y_pred)
        loss = loss + sum(self.losses) if self.losses else loss
        # tf.distribute sums the replicas' gradients: return this replica's share.
        return scale_loss_for_replicas(loss)

    def prediction_loss(self, x, y_pred):
        raise NotImplementedError

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "predictor": keras.saving.serialize_keras_object(self.predictor),
            "ema_momentum": list(self.ema_momentum),
            "ema_steps": self.ema_steps,
            "feature_encoder": self.feature_encoder,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
