"""The JEPA recipes: named pretraining configurations (:class:`PretrainConfig`, the official
I-JEPA / V-JEPA / V-JEPA 2 ones and tiny CPU ones) and the builders of everything a run
needs. ``keras_jepa.programs.pretrain.pretrain`` (``keras-jepa pretrain``) runs them:
I-JEPA on a folder of images (or in-memory arrays), V-JEPA / V-JEPA 2 on a folder of
videos, with ``model.fit`` on any backend.

A run is built from a :class:`PretrainConfig`:

* the data: ``ImageFolderDataset`` (``image_transform``: random resized crop, ImageNet
  normalisation) with a ``MultiBlockMask``, an :class:`ArrayImageDataset` for arrays, or
  ``VideoDataset`` (``video_transform``) with a ``MultiBlockMask3D``;
* the model: ``IJEPA``, ``VJEPA`` or ``VJEPA2_1`` (context encoder, EMA target encoder,
  predictor); a config with ``hierarchical_layers`` is a V-JEPA 2.1 run;
* V-JEPA 2.1 joint image + video steps: with ``image_data`` (and the config's
  ``image_masks``) each batch also holds images (:class:`JointImageVideoDataset`);
* the optimizer: ``JEPAAdamW`` with ``WarmupCosineSchedule`` (lr; ``LinearDecaySchedule``
  for the V-JEPA 2 cooldown configs), ``CosineSchedule`` (weight decay) and the EMA
  momentum ramp, all sized from ``epochs x steps_per_epoch`` (``x ipe_scale``, as
  officially);
* ``fit`` with ``shuffle=False`` (the dataset shuffles itself from ``(seed, epoch)``; Keras
  would reorder batches with Python's global RNG, which a resumed run cannot replay), a
  progress bar, ``CSVLogger``, optional ``TensorBoard``, ``ModelCheckpoint`` and
  ``BackupAndRestore`` in ``output_dir``. Rerunning the same command resumes from the last
  finished epoch (the backup is kept after the run, so a rerun of a finished run trains
  nothing and only rewrites the outputs). The run's identity (config, data, batch size,
  epochs, steps per epoch, seed) is recorded in ``output_dir/run_identity.json``; a rerun
  with other arguments is refused (:class:`RunMismatchError`, listing the differences)
  unless ``overwrite=True`` (CLI: ``--overwrite``), which deletes the previous run's files
  first;
* the outputs: ``output_dir/encoder`` (a preset: ``VisionTransformer.from_preset`` reads it;
  by default the **target** encoder, which the papers evaluate), ``log.csv`` and
  ``loss.png``.

EMA deferral: the target update of optimizer step ``s`` runs at the start of step ``s + 1``
(see ``keras_jepa.models.jepa.base``), so the saved target encoder lags the online encoder by one
EMA update, a difference of ``(1 - m) * (online - target)`` with ``m`` near 1 at the end of the
run.

V-JEPA 2 trains in two phases: ``vjepa2_vitl16`` (16 frames, 256 px, warmup then constant
lr) and a cooldown (``vjepa2_*_cooldown``: 64 frames, 256 or 384 px, linear lr decay to
1e-6, fewer clips per device) started from the first phase's weights with
``pretrain(init_from=<run folder or preset>)``. ``clip_lengths`` trains on several clip
lengths in one run (the official ``dataset_fpcs``), one length per batch.

Official configs (facts: research ``jepa-reference.md`` §1.3, §1.4, §2.3, §2.4, §3.1) keep the
official numbers, including the global batch size; ``pretrain`` uses the batch size you give
it and sizes the schedules from the epochs and steps you run, scaling the warmup by
``warmup_epochs / epochs`` of the config.
"""

import dataclasses
import os
from typing import Optional

import keras
import numpy as np

from keras_jepa.data.arrays import ArrayImageDataset
from keras_jepa.data.file_dataset import EpochCallback
from keras_jepa.models.jepa.vjepa2_1 import VJEPA2_1_CONFIGS

# --------------------------------------------------------------------------- configs

_VJEPA_MASKS = [
    dict(spatial_scale=(0.15, 0.15), temporal_scale=(1.0, 1.0), aspect_ratio=(0.75, 1.5),
         num_blocks=8, max_temporal_keep=1.0),
    dict(spatial_scale=(0.7, 0.7), temporal_scale=(1.0, 1.0), aspect_ratio=(0.75, 1.5),
         num_blocks=2, max_temporal_keep=1.0),
]


@dataclasses.dataclass
class PretrainConfig:
    """Everything that defines a JEPA pretraining run, except the data location.

    Encoder (a ``VisionTransformer``):
        image_size, patch_size, hidden_dim, depth, num_heads, mlp_ratio: the ViT.
        num_frames, tubelet_size: video encoders only (``num_frames=None``: images).
        position_embedding: ``"sincos"`` (I-JEPA, V-JEPA) or ``"rope"`` (V-JEPA 2).
        sincos_order: ``"wh"`` for I-JEPA (its column-first 2-D sin-cos), ``"hw"`` otherwise.
        uniform_power: V-JEPA's 3-D sin-cos split.
    Predictor:
        predictor_dim, predictor_depth: width and depth (official: 384 x 12).
        predictor_heads: ``None`` = the model's default (encoder heads; V-JEPA 2: 12).
        num_mask_tokens: video only (``None``: V-JEPA 2 configs, V-JEPA 1 per config).
        stop_std: images only: ``None`` for plain I-JEPA queries, or the std of StoP's
            stochastic-position noise (FlexPredict; ``IJEPA(stochastic_positions=True)``).
    Masks:
        masks: ``MultiBlockMask`` keyword arguments (images) or the list of
            ``MultiBlockMask3D`` configs (videos).
    Optimisation (values at optimizer steps; see ``keras_jepa.training.optimizers``):
        start_lr, lr, final_lr: warmup ``start_lr -> lr``, then cosine ``lr -> final_lr``.
        warmup_epochs, epochs: the official warmup and run length in epochs; a run of another
            length keeps the warmup fraction ``warmup_epochs / epochs``.
        cosine_lr: ``False``: constant ``lr`` after warmup (V-JEPA 2 pretraining phase).
        linear_decay: the V-JEPA 2 cooldown's lr: a straight line ``lr -> final_lr`` over
            the schedule length, no warmup (``LinearDecaySchedule``).
        weight_decay: ``(start, end)`` cosine (0.04 -> 0.4), equal values for a constant.
        ema_momentum: ``(m0, m1)`` linear ramp, equal values for a constant.
        ipe_scale: the schedules (and the EMA ramp) span ``ipe_scale x`` the run (V-JEPA:
            1.25, so the lr never reaches ``final_lr`` and the momentum ends near 0.9996).
        grad_clip: gradient-norm clip, or ``None``. As in V-JEPA (10), the encoder and the
            predictor are clipped separately, and only once warmup is over (from optimizer
            step ``warmup_steps + steps_per_epoch``: the official test is ``epoch > warmup``
            with 0-based epochs); see ``JEPAAdamW``.
        loss_exp: V-JEPA's loss exponent (1: L1); I-JEPA uses smooth-L1.
    Data:
        batch_size, per_device_batch_size: the official global and per-device batch sizes
            (informational: ``pretrain`` takes the batch size to use).
        crop_scale: random-resized-crop area range.
        frames_per_clip, frame_step: video clip sampling.
        clip_lengths: several frames-per-clip groups in one run (the official V-JEPA 2
            ``dataset_fpcs``, distinct values in order), or ``None`` (one:
            ``frames_per_clip``). Each batch holds one length (drawn per batch, equal
            weights), with its own mask grid; the encoder and predictor are built for the
            longest (``num_frames``); V-JEPA 2's predictor picks its mask token by group.
        steps_per_epoch: official iterations per "epoch" for video (300), ``None`` = a pass
            over the data.
    V-JEPA 2.1 (``hierarchical_layers`` set; ``VJEPA2_1_CONFIGS``):
        rope_tiled: ``False``: the interleaved RoPE layout of 2.1 (V-JEPA 2: tiled).
        img_temporal_dim_size, modality_embedding, interpolate_rope, hierarchical_layers,
            n_output_distillation: the encoder options (``VisionTransformer``).
        predict_all, context_loss_weight, image_context_loss_weight, context_loss_ramp,
            weight_distance_loss, offset_context_loss, image_loss_weight: the objective
            (``VJEPA2_1``; ``context_loss_ramp`` in absolute optimizer steps, as the
            official ``Lambda_LinearWarmupHold``, 15k -> 30k).
        image_masks: ``MultiBlockMask3D`` configs on the ``(1, H', W')`` image grid
            (official ``img_mask``); images at ``image_size``.
        image_batch_size: images per step of a joint image + video run (official: 36 per
            image rank).

    Example:

    >>> config = get_config("ijepa_vith14_in1k")
    >>> config.image_size // config.patch_size, config.masks["npred"]
    (16, 4)
    >>> schedule_steps(config, epochs=300, steps_per_epoch=625)
    {'total_steps': 187500, 'warmup_steps': 25000, 'ema_steps': 187500}
    """

    name: str
    kind: str  # "image" or "video"
    description: str
    image_size: int
    patch_size: int
    hidden_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    num_frames: Optional[int] = None
    tubelet_size: int = 2
    position_embedding: str = "sincos"
    sincos_order: str = "hw"
    uniform_power: bool = False
    predictor_dim: int = 384
    predictor_depth: int = 12
    predictor_heads: Optional[int] = None
    num_mask_tokens: Optional[int] = None
    stop_std: Optional[float] = None
    masks: object = None
    start_lr: float = 2e-4
    lr: float = 1e-3
    final_lr: float = 1e-6
    warmup_epochs: float = 40
    epochs: int = 300
    cosine_lr: bool = True
    linear_decay: bool = False
    weight_decay: tuple = (0.04, 0.4)
    ema_momentum: tuple = (0.996, 1.0)
    ipe_scale: float = 1.0
    grad_clip: Optional[float] = None
    loss_exp: float = 1.0
    batch_size: int = 2048
    per_device_batch_size: int = 128
    crop_scale: tuple = (0.3, 1.0)
    frames_per_clip: int = 16
    frame_step: int = 4
    steps_per_epoch: Optional[int] = None
    clip_lengths: Optional[tuple] = None
    rope_tiled: bool = True
    img_temporal_dim_size: Optional[int] = None
    modality_embedding: bool = False
    interpolate_rope: bool = False
    hierarchical_layers: Optional[tuple] = None
    n_output_distillation: Optional[int] = None
    predict_all: bool = True
    context_loss_weight: float = 0.5
    image_context_loss_weight: Optional[float] = None
    context_loss_ramp: Optional[tuple] = None
    weight_distance_loss: bool = False
    offset_context_loss: bool = False
    image_loss_weight: float = 0.5
    image_masks: object = None
    image_batch_size: Optional[int] = None

    def replace(self, **changes):
        """A copy with some fields changed (``dataclasses.replace``).

        Example:

        >>> get_config("ijepa_tiny_cpu").replace(depth=2).depth
        2
        """
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """The fields as a JSON-friendly dict."""
        return dataclasses.asdict(self)


CONFIGS = {
    # I-JEPA ViT-H/14, ImageNet-1k, 300 epochs (configs/in1k_vith14_ep300.yaml).
    "ijepa_vith14_in1k": PretrainConfig(
        name="ijepa_vith14_in1k", kind="image",
        description="I-JEPA ViT-H/14 on ImageNet-1k at 224px, 300 epochs (official)",
        image_size=224, patch_size=14, hidden_dim=1280, depth=32, num_heads=16,
        sincos_order="wh", predictor_dim=384, predictor_depth=12,
        masks=dict(enc_mask_scale=(0.85, 1.0), pred_mask_scale=(0.15, 0.2),
                   aspect_ratio=(0.75, 1.5), nenc=1, npred=4, min_keep=10,
                   allow_overlap=False),
        start_lr=2e-4, lr=1e-3, final_lr=1e-6, warmup_epochs=40, epochs=300,
        weight_decay=(0.04, 0.4), ema_momentum=(0.996, 1.0), ipe_scale=1.0,
        batch_size=2048, per_device_batch_size=128, crop_scale=(0.3, 1.0),
    ),
    # V-JEPA ViT-L/16, 16 frames x 224px, VideoMix2M (configs/pretrain/vitl16.yaml).
    "vjepa_vitl16": PretrainConfig(
        name="vjepa_vitl16", kind="video",
        description="V-JEPA ViT-L/16, 16x224, VideoMix2M (official)",
        image_size=224, patch_size=16, num_frames=16, tubelet_size=2, hidden_dim=1024,
        depth=24, num_heads=16, uniform_power=True, predictor_dim=384, predictor_depth=12,
        num_mask_tokens=2, masks=_VJEPA_MASKS,
        start_lr=2e-4, lr=6.25e-4, final_lr=1e-6, warmup_epochs=40, epochs=300,
        weight_decay=(0.04, 0.4), ema_momentum=(0.998, 1.0), ipe_scale=1.25,
        grad_clip=10.0, loss_exp=1.0, batch_size=3072, per_device_batch_size=24,
        crop_scale=(0.3, 1.0), frames_per_clip=16, frame_step=4, steps_per_epoch=300,
    ),
    # V-JEPA 2 ViT-L, pretraining phase (warmup then constant lr; constant EMA and wd).
    # The official vitl config says `epochs: 10` (a placeholder); 800 is the ViT-g run.
    "vjepa2_vitl16": PretrainConfig(
        name="vjepa2_vitl16", kind="video",
        description="V-JEPA 2 ViT-L/16, 16x256, pretraining phase, constant lr (official)",
        image_size=256, patch_size=16, num_frames=16, tubelet_size=2, hidden_dim=1024,
        depth=24, num_heads=16, position_embedding="rope", predictor_dim=384,
        predictor_depth=12, predictor_heads=12, num_mask_tokens=10, masks=_VJEPA_MASKS,
        start_lr=1e-4, lr=5.25e-4, final_lr=5.25e-4, warmup_epochs=40, epochs=800,
        cosine_lr=False, weight_decay=(0.04, 0.04), ema_momentum=(0.99925, 0.99925),
        ipe_scale=1.0, grad_clip=None, loss_exp=1.0, batch_size=3072,
        per_device_batch_size=24, crop_scale=(0.3, 1.0), frames_per_clip=16,
        frame_step=4, steps_per_epoch=300,
    ),
    # Tiny CPU configs: same recipe, small model and grid. On an 8x8 grid the official
    # block scales give 3x3 targets; ``faithful=False`` lets blocks reach the last row and
    # column (the official off-by-one would hide 15 of the 64 tokens from every context).
    "ijepa_tiny_cpu": PretrainConfig(
        name="ijepa_tiny_cpu", kind="image",
        description="I-JEPA ViT 64-wide, depth 4, patch 4 at 32px (CPU minutes)",
        image_size=32, patch_size=4, hidden_dim=64, depth=4, num_heads=4,
        sincos_order="wh", predictor_dim=64, predictor_depth=2, predictor_heads=4,
        masks=dict(enc_mask_scale=(0.85, 1.0), pred_mask_scale=(0.15, 0.2),
                   aspect_ratio=(0.75, 1.5), nenc=1, npred=4, min_keep=4,
                   allow_overlap=False, faithful=False),
        start_lr=2e-4, lr=1e-3, final_lr=1e-6, warmup_epochs=3, epochs=20,
        weight_decay=(0.04, 0.4), ema_momentum=(0.996, 1.0), ipe_scale=1.0,
        batch_size=128, per_device_batch_size=128, crop_scale=(0.3, 1.0),
    ),
    "vjepa_tiny_cpu": PretrainConfig(
        name="vjepa_tiny_cpu", kind="video",
        description="V-JEPA ViT 64-wide, depth 4, 8 frames x 32px, patch 8 (CPU minutes)",
        image_size=32, patch_size=8, num_frames=8, tubelet_size=2, hidden_dim=64, depth=4,
        num_heads=4, uniform_power=True, predictor_dim=64, predictor_depth=2,
        predictor_heads=4, num_mask_tokens=2,
        masks=[dict(spatial_scale=(0.15, 0.15), temporal_scale=(1.0, 1.0),
                    aspect_ratio=(0.75, 1.5), num_blocks=2),
               dict(spatial_scale=(0.5, 0.5), temporal_scale=(1.0, 1.0),
                    aspect_ratio=(0.75, 1.5), num_blocks=1)],
        start_lr=2e-4, lr=6.25e-4, final_lr=1e-6, warmup_epochs=2, epochs=20,
        weight_decay=(0.04, 0.4), ema_momentum=(0.998, 1.0), ipe_scale=1.25,
        grad_clip=10.0, batch_size=8, per_device_batch_size=8, frames_per_clip=8,
        frame_step=2,
    ),
}


# StoP (FlexPredict): I-JEPA's recipe with stochastic target positions.
CONFIGS["ijepa_stop_tiny_cpu"] = CONFIGS["ijepa_tiny_cpu"].replace(
    name="ijepa_stop_tiny_cpu", stop_std=0.25,
    description="I-JEPA + StoP (noise std 0.25), ViT 64-wide, depth 4, patch 4 at 32px",
)
# Official configs/pretrain/vit-h16.yaml of StoP: ViT-H/16, noise std 0.2 (0.25 for ViT-B/L),
# 64 images per device. Not expressed here: the official run holds lr and weight decay
# constant after epoch 250, and its loader adds a flip, Gaussian blur and random grayscale.
CONFIGS["ijepa_stop_vith16_in1k"] = CONFIGS["ijepa_vith14_in1k"].replace(
    name="ijepa_stop_vith16_in1k", patch_size=16, stop_std=0.2, per_device_batch_size=64,
    description="I-JEPA + StoP ViT-H/16 on ImageNet-1k at 224px, 300 epochs (official)",
)


# V-JEPA 2 cooldown (configs/train/*/cooldown-*px-64f.yaml, ``is_anneal: true``): 64
# frames, no warmup, lr 5.25e-4 -> 1e-6 in a straight line over 1.25 x the run, constant EMA
# and wd, started from the pretraining phase's weights (``pretrain(init_from=...)``; CLI
# ``--init-from``). Global batch 3072 as in pretraining, fewer clips per device.
_COOLDOWN = dict(num_frames=64, frames_per_clip=64, start_lr=5.25e-4, lr=5.25e-4,
                 final_lr=1e-6, warmup_epochs=0, epochs=40, linear_decay=True,
                 ipe_scale=1.25, batch_size=3072, per_device_batch_size=12)
_GIANT = dict(hidden_dim=1408, depth=40, num_heads=22, mlp_ratio=48 / 11)
for _name, _overrides, _text in (
    ("vjepa2_vitl16_cooldown", {}, "ViT-L/16, 64x256"),
    ("vjepa2_vith16_cooldown", dict(hidden_dim=1280, depth=32, num_heads=16),
     "ViT-H/16, 64x256"),
    # The official vitg 256px cooldown config says 4 epochs of 30 iterations (a placeholder,
    # kept as written); 384px runs 40 x 300 as the L and H ones.
    ("vjepa2_vitg16_cooldown", dict(epochs=4, steps_per_epoch=30, per_device_batch_size=6,
                                    **_GIANT), "ViT-g/16, 64x256"),
    ("vjepa2_vitg16_384_cooldown", dict(image_size=384, per_device_batch_size=6, **_GIANT),
     "ViT-g/16, 64x384"),
):
    CONFIGS[_name] = CONFIGS["vjepa2_vitl16"].replace(
        name=_name, description=f"V-JEPA 2 {_text}, cooldown phase, linear lr decay "
        "(official; start it from a pretraining run with init_from)",
        **{**_COOLDOWN, **_overrides},
    )
# Tiny V-JEPA 2 pair for a CPU: 8 frames x 32 px, then a cooldown at 16 frames x 48 px.
CONFIGS["vjepa2_tiny_cpu"] = CONFIGS["vjepa_tiny_cpu"].replace(
    name="vjepa2_tiny_cpu", position_embedding="rope", uniform_power=False,
    num_mask_tokens=10, start_lr=1e-4, lr=5.25e-4, final_lr=5.25e-4, cosine_lr=False,
    weight_decay=(0.04, 0.04), ema_momentum=(0.99925, 0.99925), ipe_scale=1.0,
    grad_clip=None,
    description="V-JEPA 2 ViT 64-wide, depth 4, RoPE, 8 frames x 32px (CPU minutes)",
)
CONFIGS["vjepa2_cooldown_tiny_cpu"] = CONFIGS["vjepa2_tiny_cpu"].replace(
    name="vjepa2_cooldown_tiny_cpu", image_size=48, num_frames=16, frames_per_clip=16,
    start_lr=5.25e-4, final_lr=1e-6, warmup_epochs=0, epochs=10, linear_decay=True,
    ipe_scale=1.25,
    description="V-JEPA 2 tiny cooldown: 16 frames x 48px, linear lr decay (from "
                "vjepa2_tiny_cpu with init_from)",
)

# V-JEPA 2.1: the configs of ``keras_jepa.models.jepa.vjepa2_1.VJEPA2_1_CONFIGS`` (official
# ViT-G/16 stage 1 and a tiny CPU one; ``keras-jepa pretrain --config vjepa2_1_tiny_cpu``).
for _name, _fields in VJEPA2_1_CONFIGS.items():
    CONFIGS[_name] = PretrainConfig(name=_name, **_fields)


def get_config(name):
    """The named :class:`PretrainConfig` (a copy), or the config itself if given one.

    Example:

    >>> get_config("vjepa_vitl16").masks[0]["num_blocks"]
    8
    """
    if isinstance(name, PretrainConfig):
        return name
    if name not in CONFIGS:
        raise ValueError(f"Unknown pretraining config {name!r}; choose from {sorted(CONFIGS)}.")
    return dataclasses.replace(CONFIGS[name])


def schedule_steps(config, epochs, steps_per_epoch):
    """Lengths, in optimizer steps, of the lr/wd schedules, their warmup and the EMA ramp.

    ``total = ipe_scale * epochs * steps_per_epoch`` (official ``T_max``); the warmup keeps
    the config's fraction ``warmup_epochs / config.epochs`` of ``epochs``.

    Example:

    >>> schedule_steps(get_config("vjepa_vitl16"), epochs=300, steps_per_epoch=300)
    {'total_steps': 112500, 'warmup_steps': 12000, 'ema_steps': 112500}
    """
    total = max(int(round(config.ipe_scale * epochs * steps_per_epoch)), 1)
    warmup = int(round(config.warmup_epochs / config.epochs * epochs * steps_per_epoch))
    return {"total_steps": total, "warmup_steps": min(warmup, total), "ema_steps": total}


# --------------------------------------------------------------------------- builders


def build_encoder(config, name=None):
    """The ``VisionTransformer`` context encoder of ``config``.

    Example:

    >>> build_encoder(get_config("ijepa_tiny_cpu")).num_tokens()
    64
    """
    from keras_jepa.models.vit.vision_transformer import VisionTransformer

    kwargs = dict(
        image_size=config.image_size, patch_size=config.patch_size,
        hidden_dim=config.hidden_dim, depth=config.depth, num_heads=config.num_heads,
        mlp_ratio=config.mlp_ratio, position_embedding=config.position_embedding,
        sincos_order=config.sincos_order, uniform_power=config.uniform_power,
        # V-JEPA 2 keeps the depth-scaled init of its blocks (``_rescale_blocks``: proj and
        # fc2 divided by sqrt(2 * layer)); I-JEPA and V-JEPA 1 re-initialise every Linear.
        depth_scaled_init=config.position_embedding == "rope",
    )
    if config.kind == "video":
        kwargs.update(num_frames=config.num_frames, tubelet_size=config.tubelet_size)
    if config.position_embedding == "rope":
        kwargs.update(rope_tiled=config.rope_tiled)
    if config.hierarchical_layers is not None:
        kwargs.update(
            img_temporal_dim_size=config.img_temporal_dim_size,
            modality_embedding=config.modality_embedding,
            interpolate_rope=config.interpolate_rope,
            hierarchical_layers=list(config.hierarchical_layers),
            n_output_distillation=config.n_output_distillation,
        )
    if name:
        kwargs["name"] = name
    return VisionTransformer(**kwargs)


def clip_lengths(config):
    """The frames-per-clip groups of a video ``config``: ``config.clip_lengths``, or
    ``[frames_per_clip]``.

    Example:

    >>> clip_lengths(get_config("vjepa_tiny_cpu").replace(clip_lengths=(4, 8)))
    [4, 8]
    """
    return [int(t) for t in (config.clip_lengths or [config.frames_per_clip])]


def build_mask_sampler(config, seed=0, num_frames=None):
    """The mask sampler of ``config`` (``MultiBlockMask`` or ``MultiBlockMask3D``; videos:
    for clips of ``num_frames`` frames, default ``config.num_frames``).

    Example:

    >>> sampler = build_mask_sampler(get_config("ijepa_vith14_in1k"))
    >>> sampler.num_context_tokens, sampler.num_target_tokens
    (69, 44)
    """
    from keras_jepa.masks import MultiBlockMask, MultiBlockMask3D

    grid = config.image_size // config.patch_size
    if config.kind == "image":
        # The static budgets are the official collator's expected counts at the config's
        # per-device batch size (64 for the StoP ViT-H recipe, 128 for I-JEPA).
        masks = {"reference_batch_size": config.per_device_batch_size, **(config.masks or {})}
        return MultiBlockMask(grid_size=(grid, grid), seed=seed, **masks)
    frames = (num_frames or config.num_frames) // config.tubelet_size
    return MultiBlockMask3D(grid_size=(frames, grid, grid), configs=config.masks, seed=seed)


def build_model(config, encoder=None, ema_steps=None):
    """The ``IJEPA`` / ``VJEPA`` model of ``config`` (``ema_steps``: length of the momentum
    ramp in optimizer steps; required unless the momentum is constant).

    Example:

    >>> model = build_model(get_config("ijepa_tiny_cpu"), ema_steps=100)
    >>> type(model).__name__, model.predictor.depth
    ('IJEPA', 2)
    """
    from keras_jepa.models.jepa.ijepa import IJEPA
    from keras_jepa.models.jepa.vjepa import VJEPA

    encoder = encoder or build_encoder(config)
    common = dict(
        predictor_dim=config.predictor_dim, predictor_depth=config.predictor_depth,
        predictor_heads=config.predictor_heads, ema_momentum=tuple(config.ema_momentum),
        ema_steps=ema_steps,
    )
    if config.kind == "image":
        if config.stop_std is not None:
            common.update(stochastic_positions=True, stop_std=config.stop_std)
        return IJEPA(encoder, **common)
    if config.hierarchical_layers is not None:
        from keras_jepa.models.jepa.vjepa2_1 import VJEPA2_1

        common["predictor_heads"] = config.predictor_heads or 12
        return VJEPA2_1(
            encoder, num_mask_tokens=config.num_mask_tokens or 8, loss_exp=config.loss_exp,
            predict_all=config.predict_all, context_loss_weight=config.context_loss_weight,
            image_context_loss_weight=config.image_context_loss_weight,
            context_loss_ramp=config.context_loss_ramp,
            weight_distance_loss=config.weight_distance_loss,
            offset_context_loss=config.offset_context_loss,
            image_loss_weight=config.image_loss_weight, clip_lengths=config.clip_lengths,
            **common,
        )
    return VJEPA(encoder, num_mask_tokens=config.num_mask_tokens, loss_exp=config.loss_exp,
                 clip_lengths=config.clip_lengths, **common)


def build_optimizer(config, total_steps, warmup_steps, steps_per_epoch=0):
    """``JEPAAdamW`` with the config's warmup-cosine lr and cosine weight decay, and the
    per-module gradient clipping after warmup when the config clips.

    Example:

    >>> opt = build_optimizer(get_config("ijepa_tiny_cpu"), total_steps=100, warmup_steps=10)
    >>> round(float(opt.learning_rate), 6)  # value used by the first update
    0.00028
    """
    from keras_jepa.training.optimizers import (
        CosineSchedule, JEPAAdamW, LinearDecaySchedule, WarmupCosineSchedule,
    )

    if config.linear_decay:
        lr = LinearDecaySchedule(config.lr, config.final_lr, total_steps=total_steps)
    else:
        lr = WarmupCosineSchedule(
            config.start_lr, config.lr, config.final_lr, warmup_steps=warmup_steps,
            total_steps=total_steps, cosine=config.cosine_lr,
        )
    wd0, wd1 = config.weight_decay
    wd = CosineSchedule(wd0, wd1, total_steps) if wd0 != wd1 else float(wd0)
    return JEPAAdamW(
        learning_rate=lr, weight_decay=wd, clip_norm=config.grad_clip,
        clip_start_step=warmup_steps + int(steps_per_epoch),
    )


_SHORT_VIDEO_HINT = (
    'Pass short_videos="pad" (CLI: --short-videos pad) to pad short videos with their last '
    "frame instead, as the official loader does."
)


class _PrefixedMasks:
    """A mask sampler whose output keys get a prefix (the image masks of a joint batch)."""

    def __init__(self, sampler, prefix):
        self.sampler, self.prefix = sampler, prefix

    def __call__(self, batch_size, step=None):
        return {self.prefix + k: v for k, v in self.sampler(batch_size, step).items()}


class JointImageVideoDataset(keras.utils.PyDataset):
    """Batches that hold a video batch and an image batch (V-JEPA 2.1's joint step).

    Batch ``i`` is ``videos[i]`` (``"videos"``, ``"context_indices"``,
    ``"target_indices"``) merged with image batch ``i mod len(images)`` (``"images"``,
    ``"image_context_indices"``, ``"image_target_indices"``); an epoch is one pass over
    the videos. Both datasets follow the epoch (``set_epoch``), so a resumed run replays
    the same batches. The official run loads the two on different ranks
    (``app/vjepa_2_1/train.py``); see ``VJEPA2_1`` for the loss. Built by
    :func:`build_dataset` with ``image_data``.
    """

    def __init__(self, videos, images):
        super().__init__(workers=getattr(videos, "workers", 1))
        self.videos, self.images = videos, images

    def __len__(self):
        return len(self.videos)

    def __getitem__(self, index):
        batch = dict(self.videos[index])
        batch.update(self.images[int(index) % len(self.images)])
        return batch

    def on_epoch_end(self):
        self.videos.on_epoch_end()
        self.images.on_epoch_end()

    def set_epoch(self, epoch):
        self.videos.set_epoch(epoch)
        self.images.set_epoch(epoch)

    def epoch_callback(self):
        """Keeps both datasets at ``fit``'s epoch (see ``FileDataset.epoch_callback``)."""
        return EpochCallback(self)

    @property
    def paths(self):
        """The video files (the run identity also records the images'; see pretrain)."""
        return self.videos.paths

    @property
    def skipped(self):
        return self.videos.skipped

    @property
    def num_skipped(self):
        return self.videos.num_skipped


def build_image_mask_sampler(config, seed=0):
    """The V-JEPA 2.1 image mask sampler of ``config``: ``MultiBlockMask3D`` with
    ``image_masks`` on the ``(1, H', W')`` grid of one image (official ``img_mask``,
    tubelet 1, one frame).

    Example:

    >>> sampler = build_image_mask_sampler(get_config("vjepa2_1_tiny_cpu"))
    >>> sampler.grid_size
    (1, 4, 4)
    """
    from keras_jepa.masks import MultiBlockMask3D

    if not config.image_masks:
        raise ValueError(f"Config {config.name!r} has no image_masks (a V-JEPA 2.1 config "
                         "with images has).")
    grid = config.image_size // config.patch_size
    return MultiBlockMask3D(grid_size=(1, grid, grid), configs=config.image_masks, seed=seed)


def build_dataset(config, data, batch_size, seed=0, workers=1, labels=None,
                  short_videos="skip", image_data=None, image_batch_size=None):
    """The training dataset of ``config`` over ``data`` (a folder, a list of paths, a CSV of
    videos, or an image array), with the config's transform and mask sampler
    (``short_videos``: ``VideoDataset``'s, videos only).

    ``image_data`` (V-JEPA 2.1 configs: a folder / list of images or an image array) adds
    an image batch of ``image_batch_size`` (default: the config's) to every video batch
    (:class:`JointImageVideoDataset`)."""
    from keras_jepa.data import (
        ImageFolderDataset, VideoDataset, image_transform, video_transform,
    )

    if image_data is not None:
        if config.hierarchical_layers is None or config.kind != "video":
            raise ValueError(
                f"image_data is for V-JEPA 2.1 configs (joint image + video steps); "
                f"{config.name!r} is not one."
            )
        videos = build_dataset(config, data, batch_size, seed=seed, workers=workers,
                               short_videos=short_videos)
        size = int(image_batch_size or config.image_batch_size or batch_size)
        masks = _PrefixedMasks(build_image_mask_sampler(config, seed=seed + 1), "image_")
        transform = image_transform(config.image_size, scale=tuple(config.crop_scale))
        if isinstance(image_data, np.ndarray):
            images = ArrayImageDataset(image_data, size, transform=transform, seed=seed + 1,
                                       mask_sampler=masks, workers=workers)
        else:
            images = ImageFolderDataset(image_data, size, image_size=config.image_size,
                                        transform=transform, labels=None, seed=seed + 1,
                                        mask_sampler=masks, workers=workers)
        return JointImageVideoDataset(videos, images)

    if config.kind == "image":
        masks = build_mask_sampler(config, seed=seed)
        transform = image_transform(config.image_size, scale=tuple(config.crop_scale))
        if isinstance(data, np.ndarray):
            return ArrayImageDataset(data, batch_size, transform=transform, labels=labels,
                                     seed=seed, mask_sampler=masks, workers=workers)
        return ImageFolderDataset(data, batch_size, image_size=config.image_size,
                                  transform=transform, labels=None, seed=seed,
                                  mask_sampler=masks, workers=workers)
    transform = video_transform(config.image_size, scale=tuple(config.crop_scale))
    if config.clip_lengths:
        # One clip length per batch, each with the mask grid of its frame count.
        frames = clip_lengths(config)
        masks = {t: build_mask_sampler(config, seed=seed, num_frames=t) for t in frames}
    else:
        frames, masks = config.frames_per_clip, build_mask_sampler(config, seed=seed)
    dataset = VideoDataset(data, batch_size, frames_per_clip=frames,
                           frame_step=config.frame_step, image_size=config.image_size,
                           transform=transform, labels=None, seed=seed, mask_sampler=masks,
                           workers=workers, short_videos=short_videos)
    if short_videos == "skip":
        dataset.skip_hints = {"too_short": _SHORT_VIDEO_HINT}
    return dataset


def _official_size(model_name):
    from keras_jepa.models.vit.vision_transformer import VIT_SIZES

    size = str(model_name).replace("vit_", "", 1)
    if size not in VIT_SIZES:
        raise ValueError(
            f"Unknown official model_name {model_name!r}; known: "
            f"{', '.join('vit_' + s for s in VIT_SIZES)}."
        )
    return dict(VIT_SIZES[size])


def config_from_official(official):
    """A :class:`PretrainConfig` from an official training config (I-JEPA
    ``configs/*.yaml``, V-JEPA ``configs/pretrain/*.yaml``, V-JEPA 2
    ``configs/train/*/*.yaml``), given as a path or as the loaded dict.

    This is how a checkpoint trained with the official code finds its architecture:
    ``keras-jepa convert jepa-latest.pth.tar OUT --arch my_run.yaml``. The model fields are
    read exactly (``model_name``, predictor depth/width/heads, crop and patch size,
    frames, tubelet, ``uniform_power``, ``use_rope``) along with the optimisation and EMA
    settings; the data paths are ignored.

    Example:

    >>> official = {"meta": {"model_name": "vit_huge", "pred_depth": 12,
    ...                      "pred_emb_dim": 384},
    ...             "data": {"crop_size": 448}, "mask": {"patch_size": 16}}
    >>> config = config_from_official(official)
    >>> config.hidden_dim, config.image_size, config.patch_size, config.sincos_order
    (1280, 448, 16, 'wh')
    """
    if isinstance(official, (str, os.PathLike)):
        import yaml

        with open(official) as f:
            official = yaml.safe_load(f)
    if not isinstance(official, dict):
        raise ValueError(f"Expected an official config dict; got {type(official).__name__}.")
    data = official.get("data") or {}
    opt = official.get("optimization") or {}
    meta = official.get("meta") or {}
    common = {}
    for ours, theirs in (("start_lr", "start_lr"), ("lr", "lr"), ("final_lr", "final_lr"),
                         ("warmup_epochs", "warmup"), ("epochs", "epochs"),
                         ("ipe_scale", "ipe_scale")):
        if opt.get(theirs) is not None:
            common[ours] = type(getattr(CONFIGS["ijepa_tiny_cpu"], ours))(opt[theirs])
    if opt.get("weight_decay") is not None:
        wd = float(opt["weight_decay"])
        common["weight_decay"] = (wd, float(opt.get("final_weight_decay", wd)))
    if opt.get("ema"):
        common["ema_momentum"] = tuple(float(v) for v in opt["ema"])
    if "model_name" in meta:  # I-JEPA
        mask = official.get("mask") or {}
        return get_config("ijepa_vith14_in1k").replace(
            name="official_ijepa", **_official_size(meta["model_name"]),
            image_size=int(data.get("crop_size", 224)),
            patch_size=int(mask.get("patch_size", 16)),
            predictor_dim=int(meta.get("pred_emb_dim", 384)),
            predictor_depth=int(meta.get("pred_depth", 12)), **common,
        )
    model = official.get("model") or {}
    if "model_name" not in model:
        raise ValueError(
            "Not an official I-JEPA / V-JEPA / V-JEPA 2 config: no meta.model_name or "
            "model.model_name."
        )
    if model.get("use_silu") or model.get("use_SiLU"):
        raise ValueError("use_silu configs (SwiGLU MLPs) are not supported by the converter "
                         "yet; the released models use GELU MLPs.")
    rope = bool(model.get("use_rope", False))
    masks = official.get("mask") or []
    fpcs = data.get("dataset_fpcs") or [data.get("num_frames", 16)]
    groups = tuple(dict.fromkeys(int(t) for t in fpcs))  # distinct, in order
    base = "vjepa2_vitl16" if rope else "vjepa_vitl16"
    overrides = dict(
        name="official_vjepa2" if rope else "official_vjepa",
        **_official_size(model["model_name"]),
        image_size=int(data.get("crop_size", 224)),
        patch_size=int(data.get("patch_size", 16)),
        num_frames=int(max(fpcs)),
        tubelet_size=int(data.get("tubelet_size", 2)),
        position_embedding="rope" if rope else "sincos",
        uniform_power=bool(model.get("uniform_power", not rope)),
        predictor_dim=int(model.get("pred_embed_dim", 384)),
        predictor_depth=int(model.get("pred_depth", 12)),
        predictor_heads=(int(model["pred_num_heads"]) if model.get("pred_num_heads")
                         else None),
        num_mask_tokens=max(len(masks), 1) * (len(fpcs) if rope else 1),
        frames_per_clip=int(max(fpcs)),
        clip_lengths=groups if len(groups) > 1 else None,
        **common,
    )
    if opt.get("is_anneal"):
        overrides.update(linear_decay=True, warmup_epochs=0)
    if opt.get("clip_grad") is not None:
        overrides["grad_clip"] = float(opt["clip_grad"])
    if (official.get("loss") or {}).get("loss_exp") is not None:
        overrides["loss_exp"] = float(official["loss"]["loss_exp"])
    return get_config(base).replace(**overrides)
