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
  tokenizer, video modality embedding), ``"images"`` (``(B, H, W, C)`` or
  ``(B, 1, H, W, C)``; the tubelet-1 tokenizer and the image modality embedding), or
  both (a joint step, below); the predictor adds the matching modality embedding.
* **joint image + video steps.** The official run trains images and videos at once by
  rank: the first ``int(world * rank_ratio)`` ranks load images (their own batch size,
  masks and ``lambda_value_img``), the others videos, and DDP averages the gradients, so
  one optimizer step follows ``r * L_image + (1 - r) * L_video`` with
  ``r = image ranks / world`` (``app/vjepa_2_1/train.py``). Here one batch holds both
  (``"videos"`` with ``"context_indices"``/``"target_indices"`` and ``"images"`` with
  ``"image_context_indices"``/``"image_target_indices"``; the two batch sizes may
  differ) and the loss is that weighted sum, ``r = image_loss_weight``.
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
    first_occurrence_weights,
    layer_norm_no_affine,
    lp_loss,
    lp_loss_elements,
    resolve_encoder,
    weighted_token_sum,
)
from keras_jepa.models.jepa.predictor_2_1 import VJEPA2_1Predictor
from keras_jepa.models.jepa.vjepa import VJEPA

# The V-JEPA 2.1 pretraining configs: ``PretrainConfig`` fields (``recipes`` registers them
# in ``CONFIGS``: ``get_config("vjepa2_1_tiny_cpu")``, ``keras-jepa pretrain --config
# vjepa2_1_tiny_cpu``).
#
# vjepa2_1_vitG16_256: configs/train_2_1/vitG16/pretrain-256px-16f.yaml of the zenlm/vjepa2
# fork (research vjepa2_1-and-ac.md A4; the official app/vjepa_2_1/train.py reads the same
# keys): ViT-G/16 at 16 x 256, interleaved RoPE interpolated to the 256 px grid, image and
# video tokenizers with modality embeddings, 4 hierarchical levels, a 24-block predictor,
# L1 on the masked and (distance-weighted) context tokens, lambda 0.5 for both modalities
# ramped over steps 15k-30k; warmup 1e-4 -> 6e-4 over 40 epochs, then constant; wd 0.04,
# EMA 0.99925. Half the ranks train on images (rank_ratio 0.5): 36 images per image rank,
# the video batch rescaled to 24 per video rank (3,072 clips and 4,608 images per step on
# 256 GPUs); ``image_batch_size`` and ``per_device_batch_size`` are per rank of each kind.
# The official run is bfloat16 (pass the dtype policy yourself).
_VIDEO_MASKS = [
    dict(spatial_scale=(0.15, 0.15), temporal_scale=(1.0, 1.0), aspect_ratio=(0.75, 1.5),
         num_blocks=8, max_temporal_keep=1.0),
    dict(spatial_scale=(0.7, 0.7), temporal_scale=(1.0, 1.0), aspect_ratio=(0.75, 1.5),
         num_blocks=2, max_temporal_keep=1.0),
]
_MODEL_2_1 = dict(
    kind="video", position_embedding="rope", rope_tiled=False, uniform_power=False,
    img_temporal_dim_size=1, modality_embedding=True, predict_all=True,
    context_loss_weight=0.5, image_context_loss_weight=0.5, weight_distance_loss=True,
    image_loss_weight=0.5, loss_exp=1.0,
)
VJEPA2_1_CONFIGS = {
    "vjepa2_1_vitG16_256": dict(
        _MODEL_2_1,
        description="V-JEPA 2.1 ViT-G/16, 16x256 + images, dense deep-supervised loss "
                    "(official stage 1)",
        image_size=256, patch_size=16, num_frames=16, tubelet_size=2, hidden_dim=1664,
        depth=48, num_heads=26, mlp_ratio=64 / 13, interpolate_rope=True,
        hierarchical_layers=(11, 23, 37, 47), n_output_distillation=4,
        predictor_dim=384, predictor_depth=24, predictor_heads=12, num_mask_tokens=8,
        masks=_VIDEO_MASKS, context_loss_ramp=(15000, 30000),
        image_masks=[dict(spatial_scale=(0.15, 0.15), temporal_scale=(1.0, 1.0),
                          aspect_ratio=(0.75, 1.5), num_blocks=10, max_temporal_keep=1.0)],
        image_batch_size=36, start_lr=1e-4, lr=6e-4, final_lr=6e-4, warmup_epochs=40,
        epochs=1000, cosine_lr=False, weight_decay=(0.04, 0.04),
        ema_momentum=(0.99925, 0.99925), ipe_scale=1.25, batch_size=3072,
        per_device_batch_size=24, frames_per_clip=16, frame_step=4, steps_per_epoch=300,
    ),
    # Tiny V-JEPA 2.1 for a CPU: 4 frames x 32 px, patch 8 (a 2 x 4 x 4 grid), 4 levels.
    "vjepa2_1_tiny_cpu": dict(
        _MODEL_2_1,
        description="V-JEPA 2.1 ViT 48-wide, depth 4, 4 levels, 4 frames x 32px + images "
                    "(CPU minutes)",
        image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_dim=48, depth=4,
        num_heads=2, hierarchical_layers=(0, 1, 2, 3), n_output_distillation=4,
        predictor_dim=32, predictor_depth=2, predictor_heads=2, num_mask_tokens=2,
        masks=[dict(spatial_scale=(0.15, 0.15), temporal_scale=(1.0, 1.0),
                    aspect_ratio=(0.75, 1.5), num_blocks=2),
               dict(spatial_scale=(0.5, 0.5), temporal_scale=(1.0, 1.0),
                    aspect_ratio=(0.75, 1.5), num_blocks=1)],
        image_masks=[dict(spatial_scale=(0.15, 0.15), temporal_scale=(1.0, 1.0),
                          aspect_ratio=(0.75, 1.5), num_blocks=2)],
        image_batch_size=8, start_lr=1e-4, lr=1e-3, final_lr=1e-3, warmup_epochs=1,
        epochs=5, cosine_lr=False, weight_decay=(0.04, 0.04), ema_momentum=(0.996, 0.996),
        ipe_scale=1.0, batch_size=8, per_device_batch_size=8, frames_per_clip=4,
        frame_step=2,
    ),
}


def context_distance_weights(context_indices, target_indices, grid_size, offset=False):
    """``(B, Kc)`` float32: ``1 / sqrt(d)`` per context token, ``d`` the Euclidean
    distance in token units over ``(t, h, w)`` to the nearest target token.

    ``offset`` divides ``d`` by ``grid_size[-2] // 16`` before the square root (the
    official ``offset_context_loss``, for grids of 32 tokens or more, where it makes the
    weights of tokens next to a target larger than 1: ``d = 1`` on a 32-token grid gives
    ``1 / sqrt(1 / 2)``). ``d`` is floored at 1 before that (disjoint masks on an integer
    grid are at least one token apart; a token that is also a target would otherwise get
    an infinite weight).

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
    dist = ops.maximum(ops.sqrt(ops.min(ops.sum(diff * diff, axis=-1), axis=-1)), 1.0)
    if offset:
        coeff = int(grid3[-2]) // 16
        if coeff < 1:
            raise ValueError(
                f"offset_context_loss needs a grid at least 16 tokens high; got {grid3}."
            )
        dist = dist / float(coeff)
    return 1.0 / ops.sqrt(dist)


def multilevel_layer_norm(features, levels):
    """Layer norm (no affine, eps 1e-5, float32) of each of ``levels`` equal channel
    chunks of ``features``, concatenated back."""
    if levels == 1:
        return layer_norm_no_affine(features)
    chunks = ops.split(features, levels, axis=-1)
    return ops.concatenate([layer_norm_no_affine(c) for c in chunks], axis=-1)


@keras.saving.register_keras_serializable(package="keras_jepa")
class VJEPA2_1(VJEPA):
    """V-JEPA 2.1 pretraining model, trained with ``model.fit`` (see the module docstring).

    A ``VJEPA`` (so ``VJEPA.from_preset("vjepa2_1_vitl16_384")`` gives this class) with
    the 2.1 predictor, the hierarchical targets, the dense loss and image/video batches.

    Inputs: ``{"videos": (B, T, H, W, C)}`` or ``{"images": (B, H, W, C)}`` with
    ``"context_indices"`` and ``"target_indices"`` (lists of ``(B, K)``, one per mask
    config, e.g. from ``keras_jepa.masks``); or a joint batch with both, the image masks
    under ``"image_context_indices"`` / ``"image_target_indices"``. Outputs:
    ``{"predictions": [...], "context_predictions": [...]}`` (plus
    ``"image_predictions"`` / ``"image_context_predictions"`` for a joint batch).

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
        context_loss_weight: ``lambda`` of videos (official ``lambda_value_vid``, 0.5).
        image_context_loss_weight: ``lambda`` of images (``lambda_value_img``, 0.5);
            ``None``: ``context_loss_weight``.
        context_loss_ramp: ``(start, end)`` optimizer steps of the linear ramp of
            ``lambda`` from 0 (official ``lambda_progressive``: 15k -> 30k); ``None``:
            constant.
        weight_distance_loss: weight context tokens by ``1 / sqrt(distance)``.
        offset_context_loss: divide the distances by ``grid_height // 16``.
        image_loss_weight: ``r`` of a joint batch, ``r * L_image + (1 - r) * L_video``
            (officially the share of image ranks, ``int(world * rank_ratio) / world``;
            ``rank_ratio`` 0.5 in the released recipes).
        mask_index: the predictor's mask token (the official training uses the index of
            the clip-length group: 0 for images, and for videos with one clip length).
        clip_lengths: videos of several clip lengths (see ``VJEPA``): a video batch of
            ``T`` frames then uses mask token ``clip_lengths.index(T)``, as the official
            ``PredictorMultiSeqWrapper``; ``None``: ``mask_index``.
        ema_momentum, ema_steps: see ``JEPA`` (constant 0.99925 officially).

    Example:

    >>> import numpy as np
    >>> from keras_jepa.models import VisionTransformer
    >>> enc = VisionTransformer(image_size=8, patch_size=4, num_frames=4, hidden_dim=24,
    ...                         depth=2, num_heads=2, position_embedding="rope",
    ...                         rope_tiled=False, img_temporal_dim_size=1,
    ...                         modality_embedding=True, hierarchical_layers=[0, 1])
    >>> model = VJEPA2_1(enc, predictor_dim=16, predictor_depth=1, predictor_heads=2,
    ...                  num_mask_tokens=1, ema_momentum=(0.99925,) * 2)
    >>> batch = {"videos": np.zeros((2, 4, 8, 8, 3), "float32"),
    ...          "context_indices": [np.tile([0, 1, 2], (2, 1))],
    ...          "target_indices": [np.tile([3, 4, 5, 6, 7], (2, 1))],
    ...          "images": np.zeros((3, 8, 8, 3), "float32"),
    ...          "image_context_indices": [np.tile([0], (3, 1))],
    ...          "image_target_indices": [np.tile([1, 2, 3], (3, 1))]}
    >>> out = model(batch)
    >>> tuple(out["predictions"][0].shape), tuple(out["image_predictions"][0].shape)
    ((2, 5, 48), (3, 3, 48))
    """

    def __init__(self, encoder, predictor=None, teacher=None, levels=None,
                 predictor_dim=384, predictor_depth=24, predictor_heads=12,
                 num_mask_tokens=8, loss_exp=1.0, predict_all=True, context_loss_weight=0.5,
                 image_context_loss_weight=None, context_loss_ramp=None,
                 weight_distance_loss=True, offset_context_loss=False, image_loss_weight=0.5,
                 mask_index=0, clip_lengths=None, **kwargs):
        encoder = resolve_encoder(encoder)
        if encoder.hierarchical_layers is None:
            raise ValueError("V-JEPA 2.1 needs an encoder with hierarchical_layers.")
        if teacher is not None:
            teacher = resolve_encoder(teacher)
            if teacher.hierarchical_layers is None:
                raise ValueError("The teacher needs hierarchical_layers.")
        if isinstance(predictor, dict):
            predictor = keras.saving.deserialize_keras_object(predictor)
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
        if not 0.0 <= float(image_loss_weight) <= 1.0:
            raise ValueError(f"image_loss_weight must be in [0, 1]; got {image_loss_weight}.")
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
        if predict_all and not predictor.return_all_tokens:
            raise ValueError("predict_all needs a predictor with return_all_tokens=True.")
        self.predict_all = bool(predict_all)
        self.context_loss_weight = float(context_loss_weight)
        self.image_context_loss_weight = (
            None if image_context_loss_weight is None else float(image_context_loss_weight)
        )
        self.context_loss_ramp = (
            None if context_loss_ramp is None else tuple(int(s) for s in context_loss_ramp)
        )
        self.weight_distance_loss = bool(weight_distance_loss)
        self.offset_context_loss = bool(offset_context_loss)
        self.image_loss_weight = float(image_loss_weight)
        self.fixed_mask_index = int(mask_index)
        super().__init__(encoder, predictor=predictor, loss_exp=loss_exp,
                         mask_token_by="clip_length", clip_lengths=clip_lengths, **kwargs)
        self.teacher = None
        if teacher is not None:
            self.teacher = teacher
            teacher.trainable = False
            for variable in teacher.weights:
                variable.trainable = False
        self.prediction_tracker = keras.metrics.Mean(name="prediction_loss")
        self.context_tracker = keras.metrics.Mean(name="context_loss")

    # ------------------------------------------------------------------ batches

    @staticmethod
    def streams(inputs):
        """``[(modality, data, context masks, target masks, output prefix), ...]`` of a
        batch: its video part and/or its image part (see the class docstring)."""
        joint = "videos" in inputs and "images" in inputs
        out = []
        if "videos" in inputs:
            out.append(("video", inputs["videos"], inputs["context_indices"],
                        inputs["target_indices"], ""))
        if "images" in inputs:
            prefix = "image_" if joint else ""
            out.append(("image", inputs["images"], inputs[prefix + "context_indices"],
                        inputs[prefix + "target_indices"], prefix))
        if not out:
            raise ValueError(
                f"A V-JEPA 2.1 batch holds 'videos' and/or 'images'; got {sorted(inputs)}."
            )
        return out

    def _mask_token(self, modality, data):
        if modality == "video" and self.clip_lengths is not None:
            return self.mask_index(0, data.shape[1])
        return self.fixed_mask_index

    def check_batch(self, batch):
        """``JEPA.check_batch`` for each part (video, image) of a batch."""
        if not isinstance(batch, dict) or not ("videos" in batch or "images" in batch):
            return
        try:
            parts = self.streams(batch)
        except KeyError:
            return
        for modality, data, context, target, _ in parts:
            super().check_batch({modality + "s": data, "context_indices": context,
                                 "target_indices": target})

    # ------------------------------------------------------------------ forward

    def _features(self, encoder, data, token_indices=None, training=False):
        hierarchical = self.levels > 1
        return encoder(data, token_indices=token_indices, training=training,
                       return_hierarchical=hierarchical)

    def call(self, inputs, training=False):
        outputs = {}
        for modality, data, contexts, targets, prefix in self.streams(inputs):
            token = self._mask_token(modality, data)
            predictions, context_predictions = [], []
            for context, target in zip(contexts, targets):
                z = self._features(self.encoder, data, context, training)
                out = self.predictor(z, context, target, mask_index=token,
                                     modality=modality, training=training)
                if self.predictor.return_all_tokens:
                    predictions.append(out[0])
                    context_predictions.append(out[1])
                else:
                    predictions.append(out)
            outputs[prefix + "predictions"] = predictions
            outputs[prefix + "context_predictions"] = context_predictions
        return outputs

    def target_features(self, inputs):
        """Per-level layer-normed targets of the whole input (teacher or EMA encoder):
        a ``(B, N, levels * D)`` tensor for an array, or for a batch dict, that of its
        first part (``"videos"``, else ``"images"``)."""
        data = self.streams(inputs)[0][1] if isinstance(inputs, dict) else inputs
        source = self.teacher if self.teacher is not None else self.target_encoder
        h = self._features(source, data)
        return ops.stop_gradient(multilevel_layer_norm(h, self.levels))

    def context_weight_at(self, step, modality="video"):
        """``lambda`` of ``modality`` at optimizer step ``step`` (float32 tensor)."""
        weight = self.context_loss_weight
        if modality == "image" and self.image_context_loss_weight is not None:
            weight = self.image_context_loss_weight
        lam = ops.convert_to_tensor(weight, "float32")
        if self.context_loss_ramp is None:
            return lam
        start, end = self.context_loss_ramp
        frac = (ops.cast(step, "float32") - float(start)) / float(max(end - start, 1))
        return lam * ops.clip(frac, 0.0, 1.0)

    def _stream_losses(self, data, contexts, targets, predictions, context_predictions):
        """``(L_pred, L_context or None)`` of one part of a batch."""
        h = self.target_features(data)
        grid = self.encoder.grid_size(tuple(data.shape))
        pred_losses, ctx_losses = [], []
        for i, (context, target) in enumerate(zip(contexts, targets)):
            pred_losses.append(
                lp_loss(predictions[i], gather_tokens(h, target), self.loss_exp,
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
                    context_predictions[i], gather_tokens(h, context), self.loss_exp
                )
                total, _ = weighted_token_sum(elements, distance)
                ctx_losses.append(total / ops.sum(weights))
        loss_pred = ops.mean(ops.stack(pred_losses))
        loss_ctx = ops.mean(ops.stack(ctx_losses)) if self.predict_all else None
        return loss_pred, loss_ctx

    def prediction_loss(self, x, y_pred):
        """``L_pred + lambda * L_context`` of each part; a joint batch weighs the image
        part by ``image_loss_weight`` and the video part by ``1 - image_loss_weight``."""
        parts = self.streams(x)
        step = self.optimizer.iterations if getattr(self, "optimizer", None) else 0
        total = tracked_pred = tracked_ctx = 0.0
        for modality, data, contexts, targets, prefix in parts:
            weight = 1.0
            if len(parts) > 1:
                weight = (self.image_loss_weight if modality == "image"
                          else 1.0 - self.image_loss_weight)
            loss_pred, loss_ctx = self._stream_losses(
                data, contexts, targets, y_pred[prefix + "predictions"],
                y_pred[prefix + "context_predictions"],
            )
            loss = loss_pred
            tracked_pred = tracked_pred + weight * loss_pred
            if loss_ctx is not None:
                loss = loss + self.context_weight_at(step, modality) * loss_ctx
                tracked_ctx = tracked_ctx + weight * loss_ctx
            total = total + weight * loss
        self.prediction_tracker.update_state(tracked_pred)
        if self.predict_all:
            self.context_tracker.update_state(tracked_ctx)
        return total

    def get_config(self):
        config = super().get_config()
        config.pop("mask_token_by")  # always the clip-length rule
        config.update(
            teacher=None if self.teacher is None
            else keras.saving.serialize_keras_object(self.teacher),
            levels=self.levels,
            predict_all=self.predict_all,
            context_loss_weight=self.context_loss_weight,
            image_context_loss_weight=self.image_context_loss_weight,
            context_loss_ramp=None if self.context_loss_ramp is None
            else list(self.context_loss_ramp),
            weight_distance_loss=self.weight_distance_loss,
            offset_context_loss=self.offset_context_loss,
            image_loss_weight=self.image_loss_weight,
            mask_index=self.fixed_mask_index,
        )
        return config


def _grid3(grid):
    return tuple(grid) if len(grid) == 3 else (1,) + tuple(grid)
