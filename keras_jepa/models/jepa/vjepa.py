"""V-JEPA and V-JEPA 2: predict target-encoder features of masked spatio-temporal tubes
(Bardes et al., 2024; Assran et al., 2025)."""

import keras
from keras import ops

from keras_jepa.layers.token_ops import gather_tokens
from keras_jepa.models.jepa.base import JEPA, resolve_encoder, lp_loss
from keras_jepa.models.jepa.predictor import JEPAPredictor


@keras.saving.register_keras_serializable(package="keras_jepa")
class VJEPA(JEPA):
    """V-JEPA / V-JEPA 2 pretraining model, trained with ``model.fit``.

    Inputs: ``{"videos": (B, T, H, W, C), "context_indices": [one (B, Kc_i) per mask
    config], "target_indices": [one (B, Kt_i) per config]}`` (the output of
    ``keras_jepa.masks.MultiBlockMask3D``). For each mask config ``i`` the context encoder
    runs on its context tokens and the predictor (mask token ``i``) predicts its target
    tokens; the loss is ``mean(|pred - target| ** loss_exp) / loss_exp`` against the
    layer-normed target features, averaged over the configs.

    V-JEPA 2 is a configuration: a RoPE encoder (``position_embedding="rope"``) makes the
    default predictor use RoPE with 12 heads, 10 zero-initialised mask tokens and the
    depth-scaled init; a sin-cos encoder gives the V-JEPA predictor (3-D sin-cos,
    uniform_power, heads equal to the encoder's, one zero-initialised mask token per
    config).

    Args:
        encoder: ``VisionTransformer`` video encoder.
        predictor: a ``JEPAPredictor`` (default: built as described above).
        num_mask_tokens: mask tokens of the default predictor (V-JEPA: number of mask
            configs, 2; V-JEPA 2: 10).
        predictor_dim, predictor_depth, predictor_heads: default predictor size
            (384, 12, encoder heads for V-JEPA / 12 for V-JEPA 2).
        loss_exp: 1.0 (L1) in every official config.
        ema_momentum, ema_steps: see ``JEPA`` (V-JEPA: 0.998 -> 1.0 over 1.25 x the run;
            V-JEPA 2: constant 0.99925).

    Example:

    >>> import numpy as np
    >>> from keras_jepa.models import VisionTransformer
    >>> enc = VisionTransformer(image_size=16, patch_size=8, num_frames=4, hidden_dim=36,
    ...                         depth=1, num_heads=2, position_embedding="rope")
    >>> model = VJEPA(enc, predictor_dim=24, predictor_depth=1, predictor_heads=2,
    ...               ema_momentum=(0.99925,) * 2)
    >>> batch = {"videos": np.zeros((2, 4, 16, 16, 3), "float32"),
    ...          "context_indices": [np.tile(np.arange(5), (2, 1))],
    ...          "target_indices": [np.tile(np.arange(5, 8), (2, 1))]}
    >>> [tuple(p.shape) for p in model(batch)["predictions"]]
    [(2, 3, 36)]
    """

    def __init__(self, encoder, predictor=None, num_mask_tokens=None, predictor_dim=384,
                 predictor_depth=12, predictor_heads=None, loss_exp=1.0, **kwargs):
        encoder = resolve_encoder(encoder)
        if predictor is None:
            rope = encoder.position_embedding == "rope"
            predictor = JEPAPredictor(
                grid_size=encoder.grid_size(),
                output_dim=encoder.output_width,
                hidden_dim=predictor_dim,
                depth=predictor_depth,
                num_heads=predictor_heads or (12 if rope else encoder.num_heads),
                num_mask_tokens=num_mask_tokens or (10 if rope else 2),
                zero_init_mask_tokens=True,
                position_embedding=encoder.position_embedding,
                uniform_power=encoder.uniform_power,
                rope_tiled=encoder.rope_tiled,
                depth_scaled_init=rope,
                layer_norm_epsilon=encoder.layer_norm_epsilon,
                name="predictor",
            )
        self.loss_exp = float(loss_exp)
        super().__init__(encoder, predictor, **kwargs)

    def call(self, inputs, training=False):
        videos = inputs["videos"]
        predictions = []
        for i, (context, target) in enumerate(
            zip(inputs["context_indices"], inputs["target_indices"])
        ):
            z = self.encoder(videos, token_indices=context, training=training)
            predictions.append(
                self.predictor(z, context, target, mask_index=i, training=training)
            )
        return {"predictions": predictions}

    def prediction_loss(self, x, y_pred):
        h = self.target_features(x["videos"])
        losses = [
            lp_loss(pred, gather_tokens(h, target), self.loss_exp)
            for target, pred in zip(x["target_indices"], y_pred["predictions"])
        ]
        return ops.mean(ops.stack(losses))

    def get_config(self):
        config = super().get_config()
        config["loss_exp"] = self.loss_exp
        return config
