"""I-JEPA: predict the target-encoder features of several image blocks from one context
block (Assran et al., 2023)."""

import keras
from keras import ops

from keras_jepa.layers.token_ops import gather_tokens
from keras_jepa.models.jepa.base import (
    JEPA, first_occurrence_weights, resolve_encoder, smooth_l1_elements, weighted_token_sum,
)
from keras_jepa.models.jepa.predictor import JEPAPredictor


@keras.saving.register_keras_serializable(package="keras_jepa")
class IJEPA(JEPA):
    """I-JEPA pretraining model, trained with ``model.fit``.

    Inputs: a dict ``{"images": (B, H, W, C), "context_indices": [nenc x (B, Kc)],
    "target_indices": [npred x (B, Kt)]}`` (the output of
    ``keras_jepa.masks.MultiBlockMask`` merged into an image batch). ``fit`` needs no
    labels.

    As officially: the context encoder sees each context mask (stacked along the batch);
    every (context, target) pair is predicted, ordered target-major; targets are the
    layer-normed (no affine) target-encoder features of the full image; the loss is the
    mean smooth-L1 (beta 1) over the distinct target tokens of each row (a mask padded to
    its static budget repeats tokens; the repeats get weight 0, as in the official loss
    over the unpadded masks).

    Args:
        encoder: ``VisionTransformer`` image encoder (I-JEPA uses ``sincos_order="wh"``).
        predictor: a ``JEPAPredictor``; by default built as officially: width
            ``predictor_dim`` (384), ``predictor_depth`` (12; 16 for ViT-g) blocks, heads
            equal to the encoder's, one mask token (normal init), 2-D sin-cos in the
            encoder's order.
        ema_momentum, ema_steps: see ``JEPA`` (official: 0.996 -> 1.0 over the run).
        stochastic_positions, stop_std, stop_tied, stop_context_noise: StoP (FlexPredict)
            options of the default predictor (see ``JEPAPredictor``): target queries are
            ``position + predictor_embed(n)``, ``n ~ N(0, stop_std^2)`` in the encoder
            width (official std: 0.25 for ViT-B/L, 0.2 for ViT-H). Off by default.

    Example:

    >>> import numpy as np
    >>> from keras_jepa.models import VisionTransformer
    >>> enc = VisionTransformer(image_size=16, patch_size=4, hidden_dim=32, depth=1,
    ...                         num_heads=2, sincos_order="wh")
    >>> model = IJEPA(enc, predictor_dim=16, predictor_depth=1, ema_steps=100)
    >>> batch = {"images": np.zeros((2, 16, 16, 3), "float32"),
    ...          "context_indices": [np.tile(np.arange(8), (2, 1))],
    ...          "target_indices": [np.tile(np.arange(8, 12), (2, 1))] * 2}
    >>> [tuple(p.shape) for p in model(batch)["predictions"]]
    [(2, 4, 32), (2, 4, 32)]
    """

    def __init__(self, encoder, predictor=None, predictor_dim=384, predictor_depth=12,
                 predictor_heads=None, stochastic_positions=False, stop_std=0.25,
                 stop_tied=True, stop_context_noise=False, **kwargs):
        encoder = resolve_encoder(encoder)
        if predictor is None:
            predictor = JEPAPredictor(
                grid_size=encoder.grid_size(),
                output_dim=encoder.output_width,
                hidden_dim=predictor_dim,
                depth=predictor_depth,
                num_heads=predictor_heads or encoder.num_heads,
                num_mask_tokens=1,
                zero_init_mask_tokens=False,
                position_embedding="sincos",
                sincos_order=encoder.sincos_order,
                layer_norm_epsilon=encoder.layer_norm_epsilon,
                stochastic_positions=stochastic_positions,
                stop_std=stop_std,
                stop_tied=stop_tied,
                stop_context_noise=stop_context_noise,
                name="predictor",
            )
        super().__init__(encoder, predictor, **kwargs)

    def call(self, inputs, training=False):
        images = inputs["images"]
        contexts = list(inputs["context_indices"])
        targets = list(inputs["target_indices"])
        z = self.encoder(images, token_indices=contexts, training=training)
        context_ids = ops.concatenate([ops.cast(c, "int32") for c in contexts], axis=0)
        target_ids = [
            ops.concatenate([ops.cast(t, "int32")] * len(contexts), axis=0) for t in targets
        ]
        if len({t.shape[1] for t in target_ids}) == 1 and len(targets) > 1:
            # One predictor call over every target, as officially: the context is repeated
            # along the batch once per target (target-major), so the predictor runs one
            # large batch instead of ``npred`` small ones.
            n = len(targets)
            pred = self.predictor(
                ops.concatenate([z] * n, axis=0),
                ops.concatenate([context_ids] * n, axis=0),
                ops.concatenate(target_ids, axis=0),
                mask_index=0,
                training=training,
            )
            predictions = list(ops.split(pred, n, axis=0))
        else:
            predictions = [
                self.predictor(z, context_ids, t, mask_index=0, training=training)
                for t in target_ids
            ]
        return {"predictions": predictions}

    def prediction_loss(self, x, y_pred):
        """Mean smooth-L1 over every predicted (context, target) token, each distinct target
        token of a row counted once: a mask padded to its static budget repeats some tokens,
        and the repeats get weight 0 (the official loss averages over the unpadded masks)."""
        h = self.target_features(x["images"])
        num_contexts = len(x["context_indices"])
        total, count = 0.0, 0.0
        for target, pred in zip(x["target_indices"], y_pred["predictions"]):
            h_t = ops.concatenate([gather_tokens(h, target)] * num_contexts, axis=0)
            weights = ops.concatenate([first_occurrence_weights(target)] * num_contexts, axis=0)
            part, n = weighted_token_sum(smooth_l1_elements(pred, h_t), weights)
            total, count = total + part, count + n
        return total / count
