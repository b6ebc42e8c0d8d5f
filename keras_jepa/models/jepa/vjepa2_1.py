"""V-JEPA 2.1: dense predictive loss with deep self-supervision (Mur-Labadia et al., 2026).

The training objective, on top of V-JEPA 2's masked prediction:

* **deep self-supervision.** The targets are the EMA target encoder's hierarchical output:
  ``levels`` intermediate layers (``hierarchical_layers``), each through its own output
  norm, concatenated on channels; each ``D``-wide level is layer-normed again (no affine,
  eps 1e-5). The predictor predicts all levels at once, so the L1 loss weighs the levels
  equally. The context encoder feeds the predictor the same multi-level features.
* **dense loss.** The predictor also returns its outputs at the context positions
  (``return_all_tokens``), which are regressed onto the target features of the context
  tokens too, weighted by ``1 / sqrt(d)`` with ``d`` the Euclidean distance (in token
  units over ``(t, h, w)``) from the context token to the nearest target token
  (``weight_distance_loss``). Total: ``L_pred + lambda * L_context``, with ``lambda``
  ramped linearly between two optimizer steps (``context_loss_ramp``; the official
  schedule holds 0 until step 15k and reaches ``lambda`` at step 30k).
* **one encoder for images and videos.** A batch holds ``"videos"`` (tubelet
  tokenizer, video modality embedding) or ``"images"`` (``(B, H, W, C)`` or
  ``(B, 1, H, W, C)``; the tubelet-1 tokenizer and the image modality embedding); the
  predictor adds the matching modality embedding.
* **distillation** (the released ViT-B/L): a frozen ``teacher`` encoder supplies the
  targets instead of the EMA target encoder (the student's EMA is still kept, as the
  released ``ema_encoder``); the predictor maps the student's features to the teacher's
  width (``teacher_embed_dim``).
"""

import keras
from keras import ops

from keras_jepa.layers.token_ops import gather_tokens
from keras_jepa.layers.rotary_embedding import token_coordinates
from keras_jepa.models.jepa.base import (
    JEPA,
    first_occurrence_weights,
    layer_norm_no_affine,
    lp_loss,
    lp_loss_elements,
    resolve_encoder,
    weighted_token_sum,
)
from keras_jepa.models.jepa.predictor_2_1 import VJEPA2_1Predictor

# Pretraining configs (``PretrainConfig``-style fields) of V-JEPA 2.1: the official ViT-G
# stage-1 run at 256 px / 16 frames, and a CPU-sized one for tests and guides.
VJEPA2_1_CONFIGS = {
    "vjepa2_1_vitG16_256": dict(
        kind="video", size="gigantic_xformers_2_1", image_size=256, patch_size=16,
        num_frames=16, tubelet_size=2, position_embedding="rope", rope_tiled=False,
        img_temporal_dim_size=1, modality_embedding=True, interpolate_rope=True,
        hierarchical_layers=(11, 23, 37, 47), n_output_distillation=4,
        predictor_dim=384, predictor_depth=24, predictor_heads=12, num_mask_tokens=8,
        loss_exp=1.0, predict_all=True, context_loss_weight=0.5,
        context_loss_ramp=(15000, 30000), weight_distance_loss=True,
        video_masks=[dict(num_blocks=8, spatial_scale=(0.15, 0.15), temporal_scale=(1.0, 1.0),
                          aspect_ratio=(0.75, 1.5)),
                     dict(num_blocks=2, spatial_scale=(0.7, 0.7), temporal_scale=(1.0, 1.0),
                          aspect_ratio=(0.75, 1.5))],
        image_masks=[dict(num_blocks=10, spatial_scale=(0.15, 0.15),
                          aspect_ratio=(0.75, 1.5))],
        video_batch_size=12, image_batch_size=36, image_rank_ratio=0.5,
        lr=(1e-4, 6e-4), warmup_epochs=40, weight_decay=0.04, ema_momentum=(0.99925, 0.99925),
        iterations_per_epoch=300, epochs=1000, ipe_scale=1.25, mixed_precision="bfloat16",
    ),
    "vjepa2_1_tiny_cpu": dict(
        kind="video", image_size=32, patch_size=8, num_frames=4, tubelet_size=2,
        hidden_dim=48, depth=4, num_heads=2, mlp_ratio=4.0, position_embedding="rope",
        rope_tiled=False, img_temporal_dim_size=1, modality_embedding=True,
        interpolate_rope=False, hierarchical_layers=(0, 1, 2, 3), n_output_distillation=4,
        predictor_dim=32, predictor_depth=2, predictor_heads=2, num_mask_tokens=2,
        loss_exp=1.0, predict_all=True, context_loss_weight=0.5, context_loss_ramp=None,
        weight_distance_loss=True, lr=(1e-4, 1e-3), warmup_epochs=1, weight_decay=0.04,
        ema_momentum=(0.996, 0.996), iterations_per_epoch=20, epochs=5, batch_size=8,
    ),
}


def context_distance_weights(context_indices, target_indices, grid_size, offset=False):
    """``(B, Kc)`` float32: ``1 / sqrt(d)`` per context token, ``d`` the Euclidean
    distance in token units over ``(t, h, w)`` to the nearest target token.

    ``offset`` divides ``d`` by ``grid_size[-2] // 16`` first (the official
    ``offset_context_loss``, for grids larger than 16). ``d`` is floored at 1 (disjoint
    masks on an integer grid are at least one token apart).

    Example:

    >>> import numpy as np
    >>> w = context_distance_weights(np.array([[0, 3]]), np.array([[1]]), (1, 1, 4))
    >>> [[round(float(v), 4) for v in row] for row in keras.ops.convert_to_numpy(w)]
    [[1.0, 0.7071]]
    """
    grid3 = _grid3(grid_size)
    ctx = ops.stack(token_coordinates(context_indices, grid3), axis=-1)  # ([B,] Kc, 3)
    tgt = ops.stack(token_coordinates(target_indices, grid3), axis=-1)  # ([B,] Kt, 3)
    diff = ops.expand_dims(ctx, -2) - ops.expand_dims(tgt, -3)  # ([B,] Kc, Kt, 3)
    dist = ops.sqrt(ops.min(ops.sum(diff * diff, axis=-1), axis=-1))
    if offset:
        coeff = int(grid3[-2]) // 16
        if coeff < 1:
            raise ValueError(
                f"offset_context_loss needs a grid at least 16 tokens high; got {grid3}."
            )
        dist = dist / float(coeff)
    return 1.0 / ops.sqrt(ops.maximum(dist, 1.0))


def multilevel_layer_norm(features, levels):
    """Layer norm (no affine, eps 1e-5, float32) of each of ``levels`` equal channel
    chunks of ``features``, concatenated back."""
    if levels == 1:
        return layer_norm_no_affine(features)
    chunks = ops.split(features, levels, axis=-1)
    return ops.concatenate([layer_norm_no_affine(c) for c in chunks], axis=-1)


@keras.saving.register_keras_serializable(package="keras_jepa")
class VJEPA2_1(JEPA):
    """V-JEPA 2.1 pretraining model, trained with ``model.fit`` (see the module docstring).

    Inputs: ``{"videos": (B, T, H, W, C)}`` or ``{"images": (B, H, W, C)}`` with
    ``"context_indices"`` and ``"target_indices"`` (lists of ``(B, K)``, one per mask
    config, e.g. from ``keras_jepa.masks``). Outputs: ``{"predictions": [...],
    "context_predictions": [...]}``.

    Args:
        encoder: a ``VisionTransformer`` with ``hierarchical_layers`` (V-JEPA 2.1 options:
            ``img_temporal_dim_size=1``, ``modality_embedding=True``, RoPE).
        predictor: a ``VJEPA2_1Predictor`` (default: built from the arguments below).
        teacher: a frozen ``VisionTransformer`` whose hierarchical output gives the
            targets (distillation); ``None``: the EMA target encoder (self-supervision).
        levels: levels predicted (``n_output_distillation`` of the predictor); default:
            the encoder's ``n_output_distillation`` (1 with a single-level teacher).
        predictor_dim, predictor_depth, predictor_heads, num_mask_tokens: default
            predictor size (384, 24, 12, 8 as released for ViT-g/G; 12 blocks for the
            distilled ViT-B/L).
        loss_exp: 1.0 (L1).
        predict_all: add the dense (context) loss.
        context_loss_weight: ``lambda`` (0.5 officially, for images and videos).
        context_loss_ramp: ``(start, end)`` optimizer steps of the linear ramp of
            ``lambda`` from 0; ``None``: constant.
        weight_distance_loss: weight context tokens by ``1 / sqrt(distance)``.
        offset_context_loss: divide the distances by ``grid_height // 16``.
        mask_index: the predictor's mask token (the official training uses the index of
            the clip-length group; one group here).
        ema_momentum, ema_steps: see ``JEPA`` (constant 0.99925 officially).
    """

    def __init__(self, encoder, predictor=None, teacher=None, levels=None,
                 predictor_dim=384, predictor_depth=24, predictor_heads=12,
                 num_mask_tokens=8, loss_exp=1.0, predict_all=True, context_loss_weight=0.5,
                 context_loss_ramp=None, weight_distance_loss=True,
                 offset_context_loss=False, mask_index=0, **kwargs):
        encoder = resolve_encoder(encoder)
        if encoder.hierarchical_layers is None:
            raise ValueError("V-JEPA 2.1 needs an encoder with hierarchical_layers.")
        if teacher is not None:
            teacher = resolve_encoder(teacher)
            if teacher.hierarchical_layers is None:
                raise ValueError("The teacher needs hierarchical_layers.")
        source = teacher if teacher is not None else encoder
        if levels is None:
            levels = (predictor.n_output_distillation if predictor is not None
                      else source.n_output_distillation)
        self.levels = int(levels)
        if self.levels not in (1, encoder.n_output_distillation):
            raise ValueError(
                f"levels must be 1 or the encoder's n_output_distillation "
                f"({encoder.n_output_distillation}); got {levels}."
            )
        if teacher is not None and self.levels not in (1, teacher.n_output_distillation):
            raise ValueError(f"levels={levels} does not match the teacher's outputs.")
        if predictor is None:
            predictor = VJEPA2_1Predictor(
                grid_size=_grid3(encoder.grid_size()),
                output_dim=encoder.hidden_dim,
                hidden_dim=predictor_dim,
                depth=predictor_depth,
                num_heads=predictor_heads,
                num_mask_tokens=num_mask_tokens,
                n_output_distillation=self.levels,
                teacher_embed_dim=(None if teacher is None
                                   else teacher.hidden_dim * self.levels),
                return_all_tokens=predict_all,
                modality_embedding=encoder.modality_embedding,
                interpolate_rope=encoder.interpolate_rope,
                patch_size=encoder.patch_size,
                layer_norm_epsilon=encoder.layer_norm_epsilon,
                name="predictor",
            )
        elif isinstance(predictor, dict):
            predictor = keras.saving.deserialize_keras_object(predictor)
        if predict_all and not predictor.return_all_tokens:
            raise ValueError("predict_all needs a predictor with return_all_tokens=True.")
        self.loss_exp = float(loss_exp)
        self.predict_all = bool(predict_all)
        self.context_loss_weight = float(context_loss_weight)
        self.context_loss_ramp = (
            None if context_loss_ramp is None else tuple(int(s) for s in context_loss_ramp)
        )
        self.weight_distance_loss = bool(weight_distance_loss)
        self.offset_context_loss = bool(offset_context_loss)
        self.fixed_mask_index = int(mask_index)
        super().__init__(encoder, predictor, **kwargs)
        self.teacher = None
        if teacher is not None:
            self.teacher = teacher
            teacher.trainable = False
            for variable in teacher.weights:
                variable.trainable = False
        self.prediction_tracker = keras.metrics.Mean(name="prediction_loss")
        self.context_tracker = keras.metrics.Mean(name="context_loss")

    # ------------------------------------------------------------------ forward

    @staticmethod
    def _modality(inputs):
        if "images" in inputs:
            return inputs["images"], "image"
        return inputs["videos"], "video"

    def _features(self, encoder, data, token_indices=None, training=False):
        hierarchical = self.levels > 1
        return encoder(data, token_indices=token_indices, training=training,
                       return_hierarchical=hierarchical)

    def call(self, inputs, training=False):
        data, modality = self._modality(inputs)
        predictions, context_predictions = [], []
        for context, target in zip(inputs["context_indices"], inputs["target_indices"]):
            z = self._features(self.encoder, data, context, training)
            out = self.predictor(z, context, target, mask_index=self.fixed_mask_index,
                                 modality=modality, training=training)
            if self.predictor.return_all_tokens:
                predictions.append(out[0])
                context_predictions.append(out[1])
            else:
                predictions.append(out)
        return {"predictions": predictions, "context_predictions": context_predictions}

    def target_features(self, inputs):
        """Per-level layer-normed targets of the whole input (teacher or EMA encoder)."""
        data, _ = self._modality(inputs) if isinstance(inputs, dict) else (inputs, None)
        source = self.teacher if self.teacher is not None else self.target_encoder
        h = self._features(source, data)
        return ops.stop_gradient(multilevel_layer_norm(h, self.levels))

    def context_weight_at(self, step):
        """``lambda`` at optimizer step ``step`` (float32 tensor)."""
        lam = ops.convert_to_tensor(self.context_loss_weight, "float32")
        if self.context_loss_ramp is None:
            return lam
        start, end = self.context_loss_ramp
        frac = (ops.cast(step, "float32") - float(start)) / float(max(end - start, 1))
        return lam * ops.clip(frac, 0.0, 1.0)

    def prediction_loss(self, x, y_pred):
        h = self.target_features(x)
        data, _ = self._modality(x)
        grid = self.encoder.grid_size(tuple(data.shape))
        pred_losses, ctx_losses = [], []
        for i, (context, target) in enumerate(zip(x["context_indices"], x["target_indices"])):
            pred_losses.append(
                lp_loss(y_pred["predictions"][i], gather_tokens(h, target), self.loss_exp,
                        weights=first_occurrence_weights(target))
            )
            if self.predict_all:
                weights = first_occurrence_weights(context)
                distance = weights
                if self.weight_distance_loss:
                    distance = weights * context_distance_weights(
                        context, target, grid, self.offset_context_loss
                    )
                elements = lp_loss_elements(
                    y_pred["context_predictions"][i], gather_tokens(h, context), self.loss_exp
                )
                total, _ = weighted_token_sum(elements, distance)
                ctx_losses.append(total / ops.sum(weights))
        loss_pred = ops.mean(ops.stack(pred_losses))
        self.prediction_tracker.update_state(loss_pred)
        if not self.predict_all:
            return loss_pred
        loss_ctx = ops.mean(ops.stack(ctx_losses))
        self.context_tracker.update_state(loss_ctx)
        step = self.optimizer.iterations if getattr(self, "optimizer", None) else 0
        return loss_pred + self.context_weight_at(step) * loss_ctx

    def get_config(self):
        config = super().get_config()
        config.update(
            teacher=None if self.teacher is None
            else keras.saving.serialize_keras_object(self.teacher),
            levels=self.levels,
            loss_exp=self.loss_exp,
            predict_all=self.predict_all,
            context_loss_weight=self.context_loss_weight,
            context_loss_ramp=None if self.context_loss_ramp is None
            else list(self.context_loss_ramp),
            weight_distance_loss=self.weight_distance_loss,
            offset_context_loss=self.offset_context_loss,
            mask_index=self.fixed_mask_index,
        )
        return config


def _grid3(grid):
    return tuple(grid) if len(grid) == 3 else (1,) + tuple(grid)
