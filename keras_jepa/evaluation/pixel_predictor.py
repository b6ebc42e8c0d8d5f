"""A pixel-space baseline for violation-of-expectation surprise.

``PixelPredictor`` has the architecture of a V-JEPA (a ``VisionTransformer`` context encoder
and a ``JEPAPredictor``) plus a linear head to the pixels of each token's tubelet, and no
target encoder: it predicts the *pixels* of the masked tokens (the ImageNet-normalised frames
the encoder reads, patchified like the encoder's tokens) from the context tokens, with an L1
loss. Trained on the same clips and masks as a V-JEPA, it is the "same model, pixel targets"
control: what a predictor gets from predicting frames instead of features.

``PixelSurpriseModel`` scores it exactly as
:class:`~keras_jepa.evaluation.surprise.SurpriseModel` scores a V-JEPA (context = the
first ``C`` frames of a window, target = the rest; surprise = mean L1 over target tokens
and values), so ``video_surprise`` and the metrics apply unchanged.
"""

import keras
import numpy as np
from keras import ops

from keras_jepa.evaluation.surprise import SurpriseModel, time_masks
from keras_jepa.layers.patch_embedding import patchify
from keras_jepa.layers.token_ops import gather_tokens
from keras_jepa.models.jepa.base import first_occurrence_weights, lp_loss
from keras_jepa.models.jepa.predictor import JEPAPredictor


def patchify_video(videos, patch_size, tubelet_size):
    """``(B, T, H, W, C)`` -> ``(B, N, tubelet * patch * patch * C)`` tokens in the encoder's
    row-major ``(t, h, w)`` order.

    Example:

    >>> x = np.arange(2 * 4 * 4 * 1, dtype="float32").reshape(1, 2, 4, 4, 1)
    >>> tuple(patchify_video(x, 2, 2).shape)
    (1, 4, 8)
    """
    return patchify(videos, patch_size, tubelet_size)


@keras.saving.register_keras_serializable(package="keras_jepa")
class PixelPredictor(keras.Model):
    """Predicts the pixels of masked video tokens from the context tokens (a V-JEPA with
    pixel targets), trained with ``model.fit`` on the batches of a V-JEPA.

    Inputs: ``{"videos": (B, T, H, W, C), "context_indices": [(B, Kc_i) per mask config],
    "target_indices": [(B, Kt_i) per config]}``. The loss is the mean ``|error| ** p / p``
    (``p = loss_exp``: 1 is L1) between the predicted and the true pixel values of the
    distinct target tokens, averaged over the configs.

    Args:
        encoder: ``VisionTransformer`` video encoder (``num_frames`` set).
        predictor_dim, predictor_depth, predictor_heads: the predictor's size.
        num_mask_tokens: one per mask config.
        loss_exp: the exponent p of the loss (the V-JEPA's ``loss_exp``).

    Example:

    >>> from keras_jepa.models import VisionTransformer
    >>> enc = VisionTransformer(image_size=16, patch_size=8, num_frames=4, hidden_dim=16,
    ...                         depth=1, num_heads=2)
    >>> model = PixelPredictor(enc, predictor_dim=16, predictor_depth=1, predictor_heads=2)
    >>> batch = {"videos": np.zeros((2, 4, 16, 16, 3), "float32"),
    ...          "context_indices": [np.tile(np.arange(4), (2, 1))],
    ...          "target_indices": [np.tile(np.arange(4, 8), (2, 1))]}
    >>> [tuple(p.shape) for p in model(batch)["predictions"]]
    [(2, 4, 384)]
    """

    def __init__(self, encoder, predictor_dim=64, predictor_depth=2, predictor_heads=4,
                 num_mask_tokens=1, loss_exp=1.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(encoder, dict):
            encoder = keras.saving.deserialize_keras_object(encoder)
        if not getattr(encoder, "is_video", False):
            raise ValueError("PixelPredictor needs a video encoder (num_frames set).")
        self.encoder = encoder
        self.predictor_dim = int(predictor_dim)
        self.predictor_depth = int(predictor_depth)
        self.predictor_heads = int(predictor_heads)
        self.num_mask_tokens = int(num_mask_tokens)
        self.loss_exp = float(loss_exp)
        self.patch_size = int(encoder.patch_size)
        self.tubelet_size = int(encoder.tubelet_size)
        self.pixel_dim = int(np.prod([self.tubelet_size, self.patch_size, self.patch_size,
                                      encoder.num_channels]))
        self.predictor = JEPAPredictor(
            grid_size=encoder.grid_size(), output_dim=encoder.hidden_dim,
            hidden_dim=self.predictor_dim, depth=self.predictor_depth,
            num_heads=self.predictor_heads, num_mask_tokens=self.num_mask_tokens,
            uniform_power=True, name="predictor",
        )
        self.pixel_head = keras.layers.Dense(self.pixel_dim, name="pixel_head")
        # Built eagerly: on JAX, weights created inside a traced step would be constants.
        self.predictor.build()
        self.pixel_head.build((None, None, encoder.hidden_dim))
        self.built = True

    def predict_pixels(self, videos, context, target, mask_index=0, training=False):
        """Predicted pixels ``(B, Kt, pixel_dim)`` of the ``target`` tokens."""
        z = self.encoder(videos, token_indices=context, training=training)
        out = self.predictor(z, context, target, mask_index=mask_index, training=training)
        return self.pixel_head(out)

    def call(self, inputs, training=False):
        videos = inputs["videos"]
        pairs = zip(inputs["context_indices"], inputs["target_indices"])
        return {"predictions": [
            self.predict_pixels(videos, c, t, mask_index=i, training=training)
            for i, (c, t) in enumerate(pairs)
        ]}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        pixels = patchify_video(ops.convert_to_tensor(x["videos"], "float32"),
                                self.patch_size, self.tubelet_size)
        losses = [
            lp_loss(ops.cast(pred, "float32"), gather_tokens(pixels, target), self.loss_exp,
                    weights=first_occurrence_weights(target))
            for target, pred in zip(x["target_indices"], y_pred["predictions"])
        ]
        return ops.mean(ops.stack(losses))

    def get_config(self):
        config = super().get_config()
        config.update(encoder=keras.saving.serialize_keras_object(self.encoder),
                      predictor_dim=self.predictor_dim, predictor_depth=self.predictor_depth,
                      predictor_heads=self.predictor_heads,
                      num_mask_tokens=self.num_mask_tokens, loss_exp=self.loss_exp)
        return config


class PixelSurpriseModel(SurpriseModel):
    """Per-window surprise of a :class:`PixelPredictor`, scored as a V-JEPA's: context =
    every token of the first ``C`` frames, surprise = mean L1 between the predicted and the
    true pixels of the rest of the window. ``(B, F, H, W, C)`` -> ``(B, num_context_lengths)``;
    pass it to ``video_surprise`` as the model.

    Example:

    >>> from keras_jepa.models import VisionTransformer
    >>> enc = VisionTransformer(image_size=16, patch_size=8, num_frames=4, hidden_dim=16,
    ...                         depth=1, num_heads=2)
    >>> head = PixelSurpriseModel(PixelPredictor(enc, 16, 1, 2), context_lengths=(2,))
    >>> tuple(head(np.zeros((3, 4, 16, 16, 3), "float32")).shape)
    (3, 1)
    """

    def __init__(self, model, context_lengths=(2,), mask_index=0, **kwargs):
        if not isinstance(model, PixelPredictor):
            raise ValueError(f"model must be a PixelPredictor; got {type(model).__name__}.")
        keras.Model.__init__(self, **kwargs)
        self.pixel_model = model
        self.encoder = model.encoder
        self.context_lengths = tuple(int(c) for c in context_lengths)
        self.mask_index = int(mask_index)
        grid = self.encoder.grid_size()
        self.masks = [time_masks(c, grid, self.encoder.tubelet_size)
                      for c in self.context_lengths]

    def build(self, input_shape=None):
        self.built = True  # the wrapped model's layers hold every weight

    def call(self, windows):
        batch = ops.shape(windows)[0]
        m = self.pixel_model
        pixels = patchify_video(ops.cast(windows, "float32"), m.patch_size, m.tubelet_size)
        out = []
        for ctx, tgt in self.masks:
            ctx_b = ops.broadcast_to(ops.convert_to_tensor(ctx)[None], (batch, len(ctx)))
            tgt_b = ops.broadcast_to(ops.convert_to_tensor(tgt)[None], (batch, len(tgt)))
            pred = m.predict_pixels(windows, ctx_b, tgt_b, mask_index=self.mask_index)
            target = ops.take(pixels, ops.convert_to_tensor(tgt), axis=1)
            out.append(ops.mean(ops.abs(ops.cast(pred, "float32") - target), axis=(1, 2)))
        return ops.stack(out, axis=1)
