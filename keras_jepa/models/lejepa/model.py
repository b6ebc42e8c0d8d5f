"""LeJEPA (Balestriero & LeCun, 2025): views of an image are embedded by one encoder and a
projector; every view's projection is pulled to the mean projection of the global views,
and SIGReg keeps the projections close to an isotropic standard normal, which rules out
collapse without a teacher, a stop-gradient or a predictor.

Loss (``sigreg_weight`` is the method's single trade-off ``lambda``)::

    centers    = mean over the global views of the projections            (B, P)
    invariance = mean over views, samples, channels of (proj - centers)^2
    sigreg     = SIGReg(projections): per view, averaged over views and slices
    loss       = lambda * sigreg + (1 - lambda) * invariance

With global views only (the minimal example: 4 views of 128 px) the centre is the mean of
all views. With local views (the paper's multi-crop: 2 global and 6 local) the local views
are embedded in a second pass at their own resolution and also pulled to the global centre.
The projector's BatchNorm normalises over all views of the batch together.

Embedding: the encoder's output, mean-pooled over tokens when it is ``(B, N, D)`` (the
project's ``VisionTransformer`` has no class token; the minimal example uses timm's class
token), then an optional linear ``head`` to ``embedding_dim`` (the minimal example: timm's
``num_classes=512`` head). Projector: torchvision's ``MLP`` layout, ``Dense -> BatchNorm ->
ReLU`` for every hidden width and a plain ``Dense`` at the end (512 -> 2048 -> 2048 -> 16).

Online probe (``num_classes``): ``LayerNorm -> Dense`` on the embeddings of the global views
under ``stop_gradient``, trained by cross-entropy on the batch's ``"labels"`` alongside the
LeJEPA loss (so ``loss`` then includes it; ``lejepa_loss`` is logged on its own), with its
accuracy as the ``probe_accuracy`` metric. It never changes the encoder.
"""

import keras
from keras import ops

from keras_jepa.backend.loss_scaling import scale_loss_for_replicas
from keras_jepa.models.lejepa.sigreg import SIGReg
from keras_jepa.models.vit.vision_transformer import VisionTransformer


def _feature_width(encoder):
    if isinstance(encoder, VisionTransformer):
        return encoder.output_width
    try:
        width = encoder.output_shape[-1]
    except (AttributeError, ValueError, TypeError):
        width = None
    if not width:
        raise ValueError(
            f"Cannot tell the output width of encoder {type(encoder).__name__}: pass a "
            "built functional keras.Model (whose output_shape is known) or a "
            "VisionTransformer."
        )
    return int(width)


@keras.saving.register_keras_serializable(package="keras_jepa")
class LeJEPA(keras.Model):
    """LeJEPA pretraining, trained with ``model.fit`` (module docstring).

    Inputs: a dict ``{"global_views": (B, Vg, H, W, C), "local_views": (B, Vl, h, w, C)
    (optional), "labels": (B,) (optional, for the online probe)}``, as
    ``keras_jepa.data.multicrop.MultiCropArrayDataset`` makes them, or a ``(B, V, H, W, C)``
    array of global views. ``fit`` needs no ``y``.

    Args:
        encoder: any Keras backbone mapping images to ``(B, D)`` or ``(B, N, D)``
            (mean-pooled); ``None`` builds the minimal example's ViT-S/8 at 128 px.
        embedding_dim: width of a linear head after pooling (``None``: no head).
        projector_dims: hidden widths and output width of the projector.
        sigreg_weight: ``lambda`` (0.02 in the minimal example).
        num_slices, num_knots, t_max: SIGReg's slices and quadrature.
        num_classes: classes of the online linear probe (``None``: no probe).
        seed: seed of SIGReg's slice generator.

    Example:

    >>> import numpy as np
    >>> from keras_jepa.models import VisionTransformer
    >>> enc = VisionTransformer(image_size=16, patch_size=4, hidden_dim=32, depth=1,
    ...                         num_heads=2)
    >>> model = LeJEPA(enc, projector_dims=(64, 8), num_slices=16, num_classes=3)
    >>> out = model({"global_views": np.zeros((4, 2, 16, 16, 3), "float32"),
    ...              "local_views": np.zeros((4, 3, 8, 8, 3), "float32")})
    >>> tuple(out["projections"].shape), tuple(out["probe_logits"].shape)
    ((5, 4, 8), (2, 4, 3))
    """

    def __init__(self, encoder=None, embedding_dim=None, projector_dims=(2048, 2048, 16),
                 sigreg_weight=0.02, num_slices=256, num_knots=17, t_max=3.0,
                 num_classes=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if encoder is None:
            encoder = VisionTransformer.from_size("small", image_size=128, patch_size=8,
                                                  drop_path_rate=0.1, name="encoder")
        elif isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        projector_dims = tuple(int(d) for d in projector_dims)
        if not projector_dims or min(projector_dims) < 1:
            raise ValueError(
                f"projector_dims must be positive widths (hidden..., output); got "
                f"{projector_dims!r}."
            )
        if not 0.0 <= float(sigreg_weight) <= 1.0:
            raise ValueError(f"sigreg_weight must be in [0, 1]; got {sigreg_weight!r}.")
        self.encoder = encoder
        self.embedding_dim = None if embedding_dim is None else int(embedding_dim)
        self.projector_dims = projector_dims
        self.sigreg_weight = float(sigreg_weight)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.seed = seed
        common = dict(dtype=self.dtype_policy)
        width = _feature_width(encoder)
        self.head = None
        if self.embedding_dim:
            self.head = keras.layers.Dense(self.embedding_dim, name="head", **common)
            self.head.build((None, width))
            width = self.embedding_dim
        self.feature_width = width
        layers = []
        for hidden in projector_dims[:-1]:
            layers += [keras.layers.Dense(hidden, **common),
                       keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, **common),
                       keras.layers.ReLU(**common)]
        layers.append(keras.layers.Dense(projector_dims[-1], **common))
        self.projector = keras.Sequential(layers, name="projector")
        self.projector.build((None, width))
        self.probe = None
        if self.num_classes:
            self.probe = keras.Sequential(
                [keras.layers.LayerNormalization(epsilon=1e-5, **common),
                 keras.layers.Dense(self.num_classes, **common)], name="probe")
            self.probe.build((None, width))
        self.sigreg = SIGReg(num_slices, num_knots, t_max, seed=seed, name="sigreg")
        self.sigreg_tracker = keras.metrics.Mean(name="sigreg")
        self.invariance_tracker = keras.metrics.Mean(name="invariance")
        self.lejepa_tracker = keras.metrics.Mean(name="lejepa_loss")
        if self.probe is not None:
            self.probe_loss_tracker = keras.metrics.Mean(name="probe_loss")
            self.probe_accuracy = keras.metrics.SparseCategoricalAccuracy(name="probe_accuracy")
        self.built = True

    @property
    def backbone(self):
        """The encoder (what a downstream probe or finetuning uses)."""
        return self.encoder

    def features(self, images, training=False):
        """Embeddings ``(B, D)`` of a batch of images: pooled encoder output (and head)."""
        h = self.encoder(images, training=training)
        if len(h.shape) == 3:
            h = ops.mean(h, axis=1)
        if self.head is not None:
            h = self.head(h)
        return h

    @staticmethod
    def _views(inputs):
        if isinstance(inputs, dict):
            if "global_views" not in inputs:
                raise ValueError(
                    "LeJEPA inputs need a 'global_views' entry (B, V, H, W, C); got keys "
                    f"{sorted(inputs)}."
                )
            return inputs["global_views"], inputs.get("local_views")
        return inputs, None

    def _embed_views(self, views, training):
        shape = tuple(views.shape)
        if len(shape) != 5:
            raise ValueError(
                f"Views must be (B, V, H, W, C); got shape {shape}. A single view per "
                "image is (B, 1, H, W, C)."
            )
        batch = ops.shape(views)[0]
        flat = ops.reshape(views, (-1,) + shape[2:])
        return ops.reshape(self.features(flat, training=training),
                           (batch, shape[1], self.feature_width))

    def call(self, inputs, training=False):
        global_views, local_views = self._views(inputs)
        embeddings = self._embed_views(global_views, training)
        num_global = embeddings.shape[1]
        if local_views is not None:
            embeddings = ops.concatenate(
                [embeddings, self._embed_views(local_views, training)], axis=1
            )
        batch, num_views = ops.shape(embeddings)[0], embeddings.shape[1]
        projections = self.projector(
            ops.reshape(embeddings, (-1, self.feature_width)), training=training
        )
        projections = ops.reshape(projections, (batch, num_views, self.projector_dims[-1]))
        out = {"embeddings": ops.transpose(embeddings, (1, 0, 2)),
               "projections": ops.transpose(projections, (1, 0, 2))}
        if self.probe is not None:
            detached = ops.stop_gradient(embeddings[:, :num_global])
            logits = self.probe(ops.reshape(detached, (-1, self.feature_width)),
                                training=training)
            out["probe_logits"] = ops.transpose(
                ops.reshape(logits, (batch, num_global, self.num_classes)), (1, 0, 2)
            )
        return out

    def lejepa_terms(self, projections, num_global):
        """``(sigreg, invariance)`` of ``(V, B, P)`` projections whose first
        ``num_global`` views are the global ones (float32 scalars)."""
        projections = ops.cast(projections, "float32")
        centers = ops.mean(projections[:num_global], axis=0, keepdims=True)
        invariance = ops.mean(ops.square(projections - centers))
        return self.sigreg(projections), invariance

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        global_views, _ = self._views(x)
        num_global = global_views.shape[1]
        sigreg, invariance = self.lejepa_terms(y_pred["projections"], num_global)
        lejepa = self.sigreg_weight * sigreg + (1.0 - self.sigreg_weight) * invariance
        self.sigreg_tracker.update_state(sigreg)
        self.invariance_tracker.update_state(invariance)
        self.lejepa_tracker.update_state(lejepa)
        loss = lejepa
        labels = x.get("labels") if isinstance(x, dict) else None
        if labels is None:
            labels = y
        if self.probe is not None and labels is not None:
            logits = ops.cast(y_pred["probe_logits"], "float32")
            repeated = ops.tile(ops.cast(labels, "int32")[None], (num_global, 1))
            probe_loss = ops.mean(keras.losses.sparse_categorical_crossentropy(
                repeated, logits, from_logits=True))
            self.probe_loss_tracker.update_state(probe_loss)
            self.probe_accuracy.update_state(ops.reshape(repeated, (-1,)),
                                             ops.reshape(logits, (-1, self.num_classes)))
            loss = loss + probe_loss
        loss = loss + sum(self.losses) if self.losses else loss
        # tf.distribute sums the replicas' gradients: return this replica's share.
        return scale_loss_for_replicas(loss)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "embedding_dim": self.embedding_dim,
            "projector_dims": list(self.projector_dims),
            "sigreg_weight": self.sigreg_weight,
            "num_slices": self.sigreg.num_slices,
            "num_knots": self.sigreg.num_knots,
            "t_max": self.sigreg.t_max,
            "num_classes": self.num_classes,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
