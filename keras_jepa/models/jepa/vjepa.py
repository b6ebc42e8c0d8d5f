"""V-JEPA and V-JEPA 2: predict target-encoder features of masked spatio-temporal tubes
(Bardes et al., 2024; Assran et al., 2025)."""

import keras
from keras import ops

from keras_jepa.layers.token_ops import gather_tokens
from keras_jepa.models.jepa.base import JEPA, first_occurrence_weights, lp_loss, resolve_encoder
from keras_jepa.models.jepa.predictor import JEPAPredictor


@keras.saving.register_keras_serializable(package="keras_jepa")
class VJEPA(JEPA):
    """V-JEPA / V-JEPA 2 pretraining model, trained with ``model.fit``.

    Inputs: ``{"videos": (B, T, H, W, C), "context_indices": [one (B, Kc_i) per mask
    config], "target_indices": [one (B, Kt_i) per config]}`` (the output of
    ``keras_jepa.masks.MultiBlockMask3D``). For each mask config ``i`` the context encoder
    runs on its context tokens and the predictor predicts its target tokens; the loss is
    ``mean(|pred - target| ** loss_exp) / loss_exp`` against the layer-normed target
    features, over the distinct target tokens of each row (a mask padded to its static
    budget repeats tokens; repeats get weight 0, as in the official loss over the
    unpadded masks), averaged over the configs.

    Which mask token the predictor uses (``mask_token_by``):

    * ``"config"`` (V-JEPA): mask token ``i`` for mask config ``i``
      (``PredictorMultiMaskWrapper``).
    * ``"clip_length"`` (V-JEPA 2): the index of the batch's clip-length group, whatever
      the mask config (``PredictorMultiSeqWrapper`` passes the frames-per-clip group
      index), so with one clip length every config uses mask token 0. ``clip_lengths``
      lists the groups (the distinct official ``dataset_fpcs``, in order); a batch of
      ``T`` frames uses token ``clip_lengths.index(T)``. Each batch holds one clip length
      (static shapes; on JAX each distinct length compiles once; TensorFlow's ``fit``
      merges dataset shapes that differ into ``None``, so there train one length per
      run). The official collator numbers only the groups present in a batch; with every
      group present (its mixed batches of 24 clips) that is the same index.

    V-JEPA 2 is a configuration: a RoPE encoder (``position_embedding="rope"``) makes the
    default predictor use RoPE with 12 heads, 10 zero-initialised mask tokens and the
    depth-scaled init; a sin-cos encoder gives the V-JEPA predictor (3-D sin-cos,
    uniform_power, heads equal to the encoder's, one zero-initialised mask token per
    config). Released V-JEPA 2 checkpoints converted here use the clip-length rule.

    Args:
        encoder: ``VisionTransformer`` video encoder.
        predictor: a ``JEPAPredictor`` (default: built as described above).
        num_mask_tokens: mask tokens of the default predictor (V-JEPA: number of mask
            configs, 2; V-JEPA 2: 10, as released; official training builds
            ``len(mask configs) * len(dataset_fpcs)``).
        mask_token_by: ``"config"`` or ``"clip_length"`` (see above); ``None``: V-JEPA 2's
            rule for a RoPE encoder, V-JEPA's otherwise.
        clip_lengths: the clip-length groups (frames per clip) of a ``"clip_length"`` run;
            ``None``: one group (every batch uses mask token 0). The encoder and the
            predictor are built for the longest (``encoder.num_frames``).
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
                 predictor_depth=12, predictor_heads=None, loss_exp=1.0, mask_token_by=None,
                 clip_lengths=None, **kwargs):
        encoder = resolve_encoder(encoder)
        if mask_token_by is None:
            mask_token_by = "clip_length" if encoder.position_embedding == "rope" else "config"
        if mask_token_by not in ("config", "clip_length"):
            raise ValueError(
                f"mask_token_by must be 'config' or 'clip_length'; got {mask_token_by!r}."
            )
        if clip_lengths is not None:
            clip_lengths = tuple(int(t) for t in clip_lengths)
            if len(set(clip_lengths)) != len(clip_lengths) or not clip_lengths:
                raise ValueError(
                    f"clip_lengths must be distinct frame counts; got {list(clip_lengths)}."
                )
            longest = max(clip_lengths)
            if encoder.num_frames is not None and longest > encoder.num_frames:
                raise ValueError(
                    f"clip_lengths {clip_lengths} go up to {longest} frames but the encoder "
                    f"is built for {encoder.num_frames}; build it for the longest clip."
                )
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
        self.mask_token_by = mask_token_by
        self.clip_lengths = clip_lengths
        super().__init__(encoder, predictor, **kwargs)
        groups = len(clip_lengths or [0])
        if mask_token_by == "clip_length" and groups > self.predictor.num_mask_tokens:
            raise ValueError(
                f"{groups} clip lengths {clip_lengths} need as many mask tokens; the "
                f"predictor has {self.predictor.num_mask_tokens}."
            )

    def mask_index(self, config_index, num_frames):
        """The predictor's mask token for mask config ``config_index`` on clips of
        ``num_frames`` frames (see ``mask_token_by``).

        Example (a V-JEPA 2 model trained on 8- and 16-frame clips):
        ``model.mask_index(1, 16)`` is 1 (the second clip-length group), for every config.
        """
        if self.mask_token_by == "config":
            return int(config_index)
        if self.clip_lengths is None:
            return 0
        if num_frames is None:
            raise ValueError(
                "The batch's frame count is unknown (None) in this traced step, so its "
                f"clip-length group among {list(self.clip_lengths)} cannot be chosen. Batches "
                "of several clip lengths need static shapes: JAX and torch fit give them; "
                "TensorFlow's dataset adapter merges the lengths into None, so train one "
                "clip length per run there."
            )
        if num_frames not in self.clip_lengths:
            raise ValueError(
                f"A batch of {num_frames}-frame clips, but the model's clip-length groups "
                f"are {self.clip_lengths}; feed one of those lengths, or build the model "
                f"with clip_lengths including {num_frames}."
            )
        return self.clip_lengths.index(num_frames)

    def call(self, inputs, training=False):
        videos = inputs["videos"]
        pairs = list(zip(inputs["context_indices"], inputs["target_indices"]))
        tokens = [self.mask_index(i, videos.shape[1]) for i in range(len(pairs))]
        predictions = []
        for (context, target), token in zip(pairs, tokens):
            z = self.encoder(videos, token_indices=context, training=training)
            predictions.append(
                self.predictor(z, context, target, mask_index=token, training=training)
            )
        return {"predictions": predictions}

    def prediction_loss(self, x, y_pred):
        h = self.target_features(x["videos"])
        losses = [
            lp_loss(pred, gather_tokens(h, target), self.loss_exp,
                    weights=first_occurrence_weights(target))
            for target, pred in zip(x["target_indices"], y_pred["predictions"])
        ]
        return ops.mean(ops.stack(losses))

    def get_config(self):
        config = super().get_config()
        config.update(loss_exp=self.loss_exp, mask_token_by=self.mask_token_by,
                      clip_lengths=None if self.clip_lengths is None
                      else list(self.clip_lengths))
        return config
