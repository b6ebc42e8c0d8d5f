"""Named pretraining configurations and ``pretrain``: I-JEPA on a folder of images (or
in-memory arrays), V-JEPA / V-JEPA 2 on a folder of videos, with ``model.fit`` on any backend.

``pretrain`` builds everything from a :class:`PretrainConfig`:

* the data: ``ImageFolderDataset`` (``image_transform``: random resized crop, ImageNet
  normalisation) with a ``MultiBlockMask``, an :class:`ArrayImageDataset` for arrays, or
  ``VideoDataset`` (``video_transform``) with a ``MultiBlockMask3D``;
* the model: ``IJEPA`` or ``VJEPA`` (context encoder, EMA target encoder, predictor);
* the optimizer: ``JEPAAdamW`` with ``WarmupCosineSchedule`` (lr), ``CosineSchedule``
  (weight decay) and the EMA momentum ramp, all sized from ``epochs x steps_per_epoch``
  (``x ipe_scale``, as officially);
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
(see ``keras_jepa.models.jepa``), so the saved target encoder lags the online encoder by one
EMA update, a difference of ``(1 - m) * (online - target)`` with ``m`` near 1 at the end of the
run.

Official configs (facts: research ``jepa-reference.md`` §1.3, §1.4, §2.3, §2.4, §3.1) keep the
official numbers, including the global batch size; ``pretrain`` uses the batch size you give
it and sizes the schedules from the epochs and steps you run, scaling the warmup by
``warmup_epochs / epochs`` of the config.
"""

import csv
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from typing import Optional

import numpy as np

from keras_jepa.data.file_dataset import FileDataset, SkipSample

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
    Optimisation (values at optimizer steps; see ``keras_jepa.optimizers``):
        start_lr, lr, final_lr: warmup ``start_lr -> lr``, then cosine ``lr -> final_lr``.
        warmup_epochs, epochs: the official warmup and run length in epochs; a run of another
            length keeps the warmup fraction ``warmup_epochs / epochs``.
        cosine_lr: ``False``: constant ``lr`` after warmup (V-JEPA 2 pretraining phase).
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
        steps_per_epoch: official iterations per "epoch" for video (300), ``None`` = a pass
            over the data.

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
    from keras_jepa.models import VisionTransformer

    kwargs = dict(
        image_size=config.image_size, patch_size=config.patch_size,
        hidden_dim=config.hidden_dim, depth=config.depth, num_heads=config.num_heads,
        mlp_ratio=config.mlp_ratio, position_embedding=config.position_embedding,
        sincos_order=config.sincos_order, uniform_power=config.uniform_power,
    )
    if config.kind == "video":
        kwargs.update(num_frames=config.num_frames, tubelet_size=config.tubelet_size)
    if name:
        kwargs["name"] = name
    return VisionTransformer(**kwargs)


def build_mask_sampler(config, seed=0):
    """The mask sampler of ``config`` (``MultiBlockMask`` or ``MultiBlockMask3D``).

    Example:

    >>> sampler = build_mask_sampler(get_config("ijepa_vith14_in1k"))
    >>> sampler.num_context_tokens, sampler.num_target_tokens
    (69, 44)
    """
    from keras_jepa.masks import MultiBlockMask, MultiBlockMask3D

    grid = config.image_size // config.patch_size
    if config.kind == "image":
        return MultiBlockMask(grid_size=(grid, grid), seed=seed, **(config.masks or {}))
    frames = config.num_frames // config.tubelet_size
    return MultiBlockMask3D(grid_size=(frames, grid, grid), configs=config.masks, seed=seed)


def build_model(config, encoder=None, ema_steps=None):
    """The ``IJEPA`` / ``VJEPA`` model of ``config`` (``ema_steps``: length of the momentum
    ramp in optimizer steps; required unless the momentum is constant).

    Example:

    >>> model = build_model(get_config("ijepa_tiny_cpu"), ema_steps=100)
    >>> type(model).__name__, model.predictor.depth
    ('IJEPA', 2)
    """
    from keras_jepa.models import IJEPA, VJEPA

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
    return VJEPA(encoder, num_mask_tokens=config.num_mask_tokens, loss_exp=config.loss_exp,
                 **common)


def build_optimizer(config, total_steps, warmup_steps, steps_per_epoch=0):
    """``JEPAAdamW`` with the config's warmup-cosine lr and cosine weight decay, and the
    per-module gradient clipping after warmup when the config clips.

    Example:

    >>> opt = build_optimizer(get_config("ijepa_tiny_cpu"), total_steps=100, warmup_steps=10)
    >>> round(float(opt.learning_rate), 6)  # value used by the first update
    0.00028
    """
    from keras_jepa.optimizers import CosineSchedule, JEPAAdamW, WarmupCosineSchedule

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


# --------------------------------------------------------------------------- array data


class ArrayImageDataset(FileDataset):
    """``ImageFolderDataset``'s batches from in-memory images (no folder needed).

    Same contract as ``ImageFolderDataset`` (per-epoch shuffling from ``(seed, epoch)``,
    augmentation per ``(seed, epoch, position)``, masks at the global step, ``labels``), over
    an array of ``(N, H, W, C)`` images: ``uint8`` in ``[0, 255]``, or floats in ``[0, 1]``
    (converted to ``uint8``).

    Example:

    >>> import numpy as np
    >>> from keras_jepa.data import image_transform
    >>> images = np.random.rand(10, 20, 20, 3).astype("float32")
    >>> ds = ArrayImageDataset(images, batch_size=4, transform=image_transform(16, seed=0),
    ...                        seed=0)
    >>> ds[0]["images"].shape, len(ds)
    ((4, 16, 16, 3), 2)
    """

    data_key = "images"

    def __init__(self, images, batch_size, transform=None, labels=None, **kwargs):
        images = np.asarray(images)
        if images.ndim != 4:
            raise ValueError(f"images must be (N, H, W, C); got shape {images.shape}.")
        if images.dtype != np.uint8:
            images = np.clip(np.round(images.astype("float32") * 255.0), 0, 255).astype("uint8")
        self.images = images
        paths = [f"<array {i}>" for i in range(len(images))]
        super().__init__(paths, labels, batch_size, transform, **kwargs)

    def read(self, path, rng):
        """The image of index ``path`` (``"<array i>"``)."""
        try:
            return self.images[int(path[len("<array "):-1])]
        except (ValueError, IndexError) as error:
            raise SkipSample("unreadable", str(error)) from None


def normalize_images(images):
    """Evaluation-time input of in-memory images: ImageNet normalisation, no crop.

    Example:

    >>> normalize_images(np.zeros((1, 4, 4, 3), "float32")).shape
    (1, 4, 4, 3)
    """
    from keras_jepa.data import Normalize

    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = np.clip(np.round(images.astype("float32") * 255.0), 0, 255).astype("uint8")
    norm = Normalize()
    return np.stack([norm(x) for x in images]).astype("float32")


_SHORT_VIDEO_HINT = (
    'Pass short_videos="pad" (CLI: --short-videos pad) to pad short videos with their last '
    "frame instead, as the official loader does."
)


def build_dataset(config, data, batch_size, seed=0, workers=1, labels=None,
                  short_videos="skip"):
    """The training dataset of ``config`` over ``data`` (a folder, a list of paths, a CSV of
    videos, or an image array), with the config's transform and mask sampler
    (``short_videos``: ``VideoDataset``'s, videos only)."""
    from keras_jepa.data import (
        ImageFolderDataset, VideoDataset, image_transform, video_transform,
    )

    masks = build_mask_sampler(config, seed=seed)
    if config.kind == "image":
        transform = image_transform(config.image_size, scale=tuple(config.crop_scale))
        if isinstance(data, np.ndarray):
            return ArrayImageDataset(data, batch_size, transform=transform, labels=labels,
                                     seed=seed, mask_sampler=masks, workers=workers)
        return ImageFolderDataset(data, batch_size, image_size=config.image_size,
                                  transform=transform, labels=None, seed=seed,
                                  mask_sampler=masks, workers=workers)
    transform = video_transform(config.image_size, scale=tuple(config.crop_scale))
    dataset = VideoDataset(data, batch_size, frames_per_clip=config.frames_per_clip,
                           frame_step=config.frame_step, image_size=config.image_size,
                           transform=transform, labels=None, seed=seed, mask_sampler=masks,
                           workers=workers, short_videos=short_videos)
    if short_videos == "skip":
        dataset.skip_hints = {"too_short": _SHORT_VIDEO_HINT}
    return dataset


class _ScheduleLogger:
    """Adds the learning rate and weight decay in force to the epoch logs."""

    @staticmethod
    def make(optimizer):
        import keras

        class ScheduleLogger(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if logs is None:
                    return
                step = optimizer.iterations
                schedule = optimizer._learning_rate
                lr = schedule(step - 1) if callable(schedule) else schedule
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(lr))
                logs["weight_decay"] = float(
                    keras.ops.convert_to_numpy(optimizer.current_weight_decay())
                )

        return ScheduleLogger()


# --------------------------------------------------------------------------- outputs


def read_log(path):
    """Rows of a ``CSVLogger`` file as ``{column: [floats]}``, keeping the last row of each
    epoch (a resumed run may repeat one)."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        rows = list(csv.DictReader(f))
    by_epoch = {}
    for row in rows:
        by_epoch[int(row["epoch"])] = row
    rows = [by_epoch[e] for e in sorted(by_epoch)]
    columns = rows[0].keys() if rows else []

    def number(value):
        try:
            return float(value)
        except (TypeError, ValueError):  # CSVLogger writes "NA" for a missing value
            return float("nan")

    log = {c: [number(r.get(c)) for r in rows] for c in columns}
    return {c: v for c, v in log.items() if not all(np.isnan(v))}


def plot_loss(log, path, title="JEPA pretraining"):
    """Writes the loss curve (and the learning rate, if logged) of ``log`` to ``path`` (PNG,
    matplotlib's Agg backend). Returns ``path``, or ``None`` without matplotlib or data.

    Example:

    >>> import tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "loss.png")
    >>> plot_loss({"epoch": [0, 1, 2], "loss": [1.0, 0.7, 0.5]}, out) == out
    True
    """
    if not log or not log.get("loss"):
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    epochs = [e + 1 for e in log["epoch"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, log["loss"], marker="o", ms=3, label="loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("prediction loss")
    ax.set_title(title)
    if log.get("learning_rate"):
        ax2 = ax.twinx()
        ax2.plot(epochs, log["learning_rate"], color="tab:orange", alpha=0.6, label="lr")
        ax2.set_ylabel("learning rate")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- run identity

RUN_IDENTITY_FILE = "run_identity.json"
# What ``pretrain`` writes in ``output_dir``: all that ``overwrite=True`` deletes.
RUN_OUTPUTS = ("backup", "checkpoints", "encoder", "tensorboard", "log.csv", "loss.png",
               "config.json", RUN_IDENTITY_FILE)
# Outputs that hold training state a rerun would continue (or append to).
_RUN_STATE = ("backup", "checkpoints", "log.csv")


class RunMismatchError(ValueError):
    """``pretrain`` was asked to continue the run in ``output_dir`` with other arguments
    (config, data, batch size, epochs, steps per epoch, seed); the message lists them.

    Attributes:
        output_dir: the run folder.
        differences: ``[(field, previous, now)]`` (see :func:`identity_differences`), empty
            when the recorded identity could not be read.
    """

    def __init__(self, message, output_dir=None, differences=()):
        super().__init__(message)
        self.output_dir = output_dir
        self.differences = list(differences)


def _sha1_lines(lines):
    digest = hashlib.sha1()
    for line in lines:
        digest.update(os.fsencode(line) + b"\n")
    return digest.hexdigest()


def _data_identity(data, dataset):
    """Where the data come from, how many samples, and a digest of the file list (or of the
    array's bytes)."""
    paths = list(dataset.paths)
    if isinstance(data, np.ndarray):
        array = np.ascontiguousarray(data)
        return {"source": f"array of shape {list(array.shape)}, {array.dtype}",
                "num_samples": len(paths),
                "sha1": hashlib.sha1(array.view(np.uint8).reshape(-1)).hexdigest()}
    if isinstance(data, (str, os.PathLike)):
        root = os.path.realpath(os.fspath(data))
        names = ([os.path.relpath(p, os.fspath(data)) for p in paths] if os.path.isdir(root)
                 else [os.path.realpath(p) for p in paths])
        return {"source": root, "num_samples": len(paths), "sha1": _sha1_lines(names)}
    return {"source": f"list of {len(paths)} paths", "num_samples": len(paths),
            "sha1": _sha1_lines(os.path.realpath(p) for p in paths)}


def run_identity(config, data, dataset, batch_size, epochs, steps_per_epoch, seed,
                 short_videos="skip"):
    """What determines a pretraining run's schedule and data, as a JSON-friendly dict: the
    config (every field), the data (resolved path, number of samples, digest of the file
    list), batch size, epochs, optimizer steps per epoch, seed, video flag (and, for videos,
    ``short_videos``). ``pretrain`` records it in ``output_dir/run_identity.json`` and
    refuses to continue a run whose identity differs."""
    identity = {
        "config": config.to_dict(),
        "video": config.kind == "video",
        "data": _data_identity(data, dataset),
        "batch_size": int(batch_size),
        "epochs": int(epochs),
        "steps_per_epoch": int(steps_per_epoch),
        "seed": int(seed),
    }
    if config.kind == "video":
        identity["short_videos"] = short_videos
    return json.loads(json.dumps(identity, default=list))


def _flatten_identity(identity):
    flat = {}
    for key, value in identity.items():
        if key in ("config", "data") and isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def identity_differences(old, new):
    """``[(field, old value, new value)]`` of two :func:`run_identity` dicts (config and
    data fields as ``config.depth``, ``data.num_samples``; ``"<absent>"`` for a missing
    field).

    Example:

    >>> identity_differences({"seed": 0, "config": {"depth": 4}},
    ...                      {"seed": 1, "config": {"depth": 4}})
    [('seed', 0, 1)]
    """
    a, b = _flatten_identity(old), _flatten_identity(new)
    keys = list(b) + [k for k in a if k not in b]
    return [(k, a.get(k, "<absent>"), b.get(k, "<absent>")) for k in keys
            if k not in a or k not in b or a[k] != b[k]]


def _show(value, limit=100):
    text = value if value == "<absent>" else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _has_run_state(output_dir):
    for name in _RUN_STATE:
        path = os.path.join(output_dir, name)
        if os.path.isfile(path) or (os.path.isdir(path) and os.listdir(path)):
            return True
    return False


def _remove_run_outputs(output_dir):
    """Deletes the files and folders ``pretrain`` writes in ``output_dir`` (``RUN_OUTPUTS``),
    nothing else. Returns the names removed."""
    removed = []
    for name in RUN_OUTPUTS:
        path = os.path.join(output_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
        else:
            continue
        removed.append(name)
    return removed


def _check_rerun(output_dir, identity):
    """``"fresh"`` (nothing to continue), ``"resume"`` (same identity) or ``"unchecked"``
    (a run folder without ``run_identity.json``); raises :class:`RunMismatchError` when the
    folder holds a run with another identity."""
    path = os.path.join(output_dir, RUN_IDENTITY_FILE)
    has_state = _has_run_state(output_dir)
    if not os.path.exists(path):
        return "unchecked" if has_state else "fresh"
    if not has_state:
        return "fresh"  # an earlier start that saved nothing: no state to mix with
    advice = ("choose another output_dir (CLI: --output), or pass overwrite=True (CLI: "
              "--overwrite) to delete the previous run's files and start fresh.")
    try:
        with open(path) as f:
            old = json.load(f)
        if not isinstance(old, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        raise RunMismatchError(
            f"{path} is not a valid run identity ({error}), so this run cannot be checked "
            f"before resuming; {advice}", output_dir=output_dir,
        ) from None
    differences = identity_differences(old, identity)
    if not differences:
        return "resume"
    lines = "\n".join(f"  {key}: {_show(a)} -> {_show(b)}" for key, a, b in differences)
    raise RunMismatchError(
        f"{output_dir} holds a pretraining run with other arguments (previous -> now):\n"
        f"{lines}\nResuming would mix the two runs (schedules, data, log.csv). Rerun with the "
        f"same arguments to resume, {advice}", output_dir=output_dir, differences=differences,
    )


# --------------------------------------------------------------------------- pretrain


def pretrain(
    config,
    data,
    epochs=None,
    batch_size=None,
    output_dir="jepa_pretraining",
    steps_per_epoch=None,
    seed=0,
    workers=1,
    verbose=1,
    tensorboard=False,
    save_target_encoder=True,
    backup_freq="epoch",
    callbacks=None,
    overwrite=False,
    short_videos="skip",
):
    """Pretrains an I-JEPA or V-JEPA model with ``model.fit`` and saves the encoder.

    Args:
        config: a :class:`PretrainConfig` or the name of one (``CONFIGS``).
        data: a folder of images / videos (recursive), a list of paths, a CSV of video
            paths, or (images) an ``(N, H, W, C)`` array.
        epochs: passes over the data (default: the config's).
        batch_size: images or clips per step (default: the config's per-device size).
        output_dir: where the logs, checkpoints, backup and encoder go. Rerun the same call
            to resume after an interruption: the run's identity (config, data, batch
            size, epochs, steps per epoch, seed) is kept in ``run_identity.json``, and a
            rerun with other values raises :class:`RunMismatchError` (a ``ValueError``)
            listing them. A run folder from before that file existed is resumed with a
            warning (its arguments cannot be checked).
        steps_per_epoch: optimizer steps per epoch (default: one pass over ``data``; the
            video configs' official 300 "iterations per epoch" is ``config.steps_per_epoch``).
        seed: seeds the weights (``keras.utils.set_random_seed``), the data order and
            augmentations, and the masks.
        workers: ``PyDataset`` loader threads.
        verbose: 1 = Keras progress bar, 2 = one line per epoch, 0 = silent.
        tensorboard: also write TensorBoard logs to ``output_dir/tensorboard``.
        save_target_encoder: save the EMA target encoder (the papers evaluate it); ``False``
            saves the context encoder.
        backup_freq: ``BackupAndRestore`` save frequency (``"epoch"`` or a step count).
        callbacks: extra Keras callbacks.
        overwrite: delete the previous run's files in ``output_dir`` (``RUN_OUTPUTS``:
            backup, checkpoints, logs, encoder, ...; nothing else) and start fresh.
        short_videos: videos only: ``"skip"`` (default) videos too short for a clip, or
            ``"pad"`` them with their last frame (the official loader).

    Returns:
        A dict: ``model`` (the trained ``IJEPA``/``VJEPA``), ``encoder`` (the saved
        ``VisionTransformer``), ``history`` (``{metric: per-epoch values}`` over the whole
        run, resumed parts included), ``encoder_dir``, ``log_path``, ``plot_path``,
        ``seconds``, ``steps`` (schedule lengths).

    Example (a few seconds on a CPU):

    >>> import tempfile
    >>> images = np.random.rand(16, 32, 32, 3).astype("float32")
    >>> config = get_config("ijepa_tiny_cpu").replace(depth=1, predictor_depth=1)
    >>> out = pretrain(config, images, epochs=1, batch_size=8, verbose=0,
    ...                output_dir=tempfile.mkdtemp())
    >>> sorted(os.listdir(out["encoder_dir"]))
    ['config.json', 'metadata.json', 'model.weights.h5']
    """
    import keras

    config = get_config(config)
    epochs = int(epochs or config.epochs)
    batch_size = int(batch_size or config.per_device_batch_size)
    if short_videos not in ("skip", "pad"):
        raise ValueError(f'short_videos must be "skip" or "pad"; got {short_videos!r}.')
    if short_videos != "skip" and config.kind != "video":
        raise ValueError(f"short_videos applies to video configs; {config.name!r} is for "
                         "images.")
    keras.utils.set_random_seed(seed)

    dataset = build_dataset(config, data, batch_size, seed=seed, workers=workers,
                            short_videos=short_videos)
    steps = int(steps_per_epoch or len(dataset))
    identity = run_identity(config, data, dataset, batch_size, epochs, steps, seed,
                            short_videos=short_videos)
    if overwrite:
        removed = _remove_run_outputs(output_dir) if os.path.isdir(output_dir) else []
        if removed and verbose:
            print(f"[keras-jepa] overwrite: removed the previous run's {', '.join(removed)} "
                  f"in {output_dir}", flush=True)
        state = "fresh"
    else:
        state = _check_rerun(output_dir, identity) if os.path.isdir(output_dir) else "fresh"
    if state == "unchecked":
        print(f"warning: {output_dir} holds a run without {RUN_IDENTITY_FILE} (made by an "
              "older keras_jepa), so its arguments could not be checked against these; "
              "resuming it. Pass overwrite=True (CLI: --overwrite) to start fresh instead.",
              file=sys.stderr, flush=True)
    os.makedirs(output_dir, exist_ok=True)
    if state != "resume":
        with open(os.path.join(output_dir, RUN_IDENTITY_FILE), "w") as f:
            json.dump(identity, f, indent=2)
    lengths = schedule_steps(config, epochs, steps)
    m0, m1 = config.ema_momentum
    model = build_model(config, ema_steps=lengths["ema_steps"] if m0 != m1 else None)
    optimizer = build_optimizer(
        config, lengths["total_steps"], lengths["warmup_steps"], steps_per_epoch=steps
    )
    model.compile(optimizer=optimizer)
    with open(os.path.join(output_dir, "config.json"), "w") as f:
        json.dump({"config": config.to_dict(), "epochs": epochs, "batch_size": batch_size,
                   "steps_per_epoch": steps, "seed": seed, **lengths,
                   "backend": keras.backend.backend()}, f, indent=2, default=list)

    log_path = os.path.join(output_dir, "log.csv")
    backup_dir = os.path.join(output_dir, "backup")
    # Files are found now; unreadable ones are only known once read (skipped, with a
    # warning, and counted at the end).
    found = (f"{len(dataset.paths)} images (array)" if isinstance(data, np.ndarray)
             else f"{len(dataset.paths)} files found")
    if verbose:
        print(
            f"[keras-jepa] {config.name} on backend '{keras.backend.backend()}': "
            f"{found}, batch {batch_size}, {steps} steps/epoch x "
            f"{epochs} epochs; lr warmup {lengths['warmup_steps']} of "
            f"{lengths['total_steps']} steps; output {output_dir}"
            + (" (resuming)" if state != "fresh" and os.path.isdir(backup_dir) else ""),
            flush=True,
        )
    cbs = [
        # Restores weights, optimizer (schedules) and the EMA step; the dataset's epoch
        # callback then replays the same order, crops and masks.
        keras.callbacks.BackupAndRestore(backup_dir, save_freq=backup_freq,
                                         delete_checkpoint=False),
        dataset.epoch_callback(),
        _ScheduleLogger.make(optimizer),
        keras.callbacks.CSVLogger(log_path, append=True),
        keras.callbacks.ModelCheckpoint(
            os.path.join(output_dir, "checkpoints", "model.weights.h5"),
            save_weights_only=True,
        ),
    ]
    if tensorboard:
        cbs.append(keras.callbacks.TensorBoard(os.path.join(output_dir, "tensorboard")))
    cbs.extend(callbacks or [])
    start = time.time()
    # shuffle=False: the dataset shuffles itself per (seed, epoch); Keras would reorder
    # batches with Python's global RNG, which a resumed run cannot replay.
    model.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch, shuffle=False,
              callbacks=cbs, verbose=verbose)
    seconds = time.time() - start

    source = model.target_encoder if save_target_encoder else model.encoder
    encoder = type(source).from_config(
        {**source.get_config(), "name": "encoder", "trainable": True}
    )
    encoder.set_weights(source.get_weights())
    encoder_dir = os.path.join(output_dir, "encoder")
    encoder.save_to_preset(encoder_dir)
    history = read_log(log_path)
    plot_path = plot_loss(history, os.path.join(output_dir, "loss.png"),
                          title=f"{config.name} ({keras.backend.backend()})")
    if verbose:
        last = history.get("loss", [float("nan")])[-1]
        print(f"[keras-jepa] done in {seconds:.0f} s; final loss {last:.4f}; "
              f"{'target' if save_target_encoder else 'context'} encoder -> {encoder_dir}",
              flush=True)
        if dataset.num_skipped:
            total = len(dataset.paths)
            reasons = ", ".join(f"{n} {r.replace('_', ' ')}"
                                for r, n in dataset.skipped.items() if n)
            print(f"[keras-jepa] {total - dataset.num_skipped} of {total} files readable; "
                  f"skipped {reasons} (replaced by other files; see the warnings)",
                  flush=True)
    return {
        "model": model, "encoder": encoder, "history": history, "encoder_dir": encoder_dir,
        "log_path": log_path, "plot_path": plot_path, "seconds": seconds, "steps": lengths,
        "dataset": dataset,
    }


# ------------------------------------------------------------------ official YAML configs


def _official_size(model_name):
    from keras_jepa.models.vision_transformer import VIT_SIZES

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
        **common,
    )
    if opt.get("clip_grad") is not None:
        overrides["grad_clip"] = float(opt["clip_grad"])
    if (official.get("loss") or {}).get("loss_exp") is not None:
        overrides["loss_exp"] = float(official["loss"]["loss_exp"])
    return get_config(base).replace(**overrides)
