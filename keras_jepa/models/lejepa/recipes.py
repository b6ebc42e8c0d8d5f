"""LeJEPA pretraining configs and the builders of a run
(``keras_jepa.programs.pretrain_lejepa.pretrain_lejepa`` runs them).

``lejepa_vits8_imagenette`` is the reference code's minimal example (MINIMAL.md of
rbalestr-lab/lejepa, run with ``lamb=0.02 V=4 proj_dim=16 lr=2e-3 bs=256 epochs=800``;
90.7% linear-probe accuracy on ImageNette in 200 minutes on one GPU):

* encoder: timm ``vit_small_patch8_224`` at 128 px, drop path 0.1, its class token through
  a 512-wide head (here: mean-pooled tokens through a 512-wide head);
* projector 512 -> 2048 -> 2048 -> 16 with BatchNorm; ``lambda = 0.02``; SIGReg with 256
  slices, 17 knots on ``[0, 3]``;
* 4 views per image, all alike: random resized crop 128 px, scale (0.08, 1), colour jitter
  (0.8, 0.8, 0.8, 0.2) with p 0.8, grayscale p 0.2, blur (7-tap, sigma 0.1-2) p 0.5,
  solarize p 0.2, flip;
* AdamW, lr 2e-3, weight decay 5e-2, bf16; the lr rises linearly from 1% over the first
  epoch, then follows a cosine to **1e-3** (``eta_min=1e-3`` there, an absolute value: the
  rate only halves). The online probe has its own group there (lr 1e-3, weight decay 1e-7);
  here it shares the encoder's optimizer. ``JEPAAdamW`` exempts biases and norm scales from
  weight decay, which the reference code's single group decays.

The paper's multi-crop recipe (2 global views of 224 px, scale (0.3, 1), and 6 local views
of 98 px, scale (0.05, 0.3), jitter (0.4, 0.4, 0.2, 0.1); lr 5e-4 to lr / 1000) is
expressed by the ``num_local_views`` fields; ``lejepa_tiny_cpu`` uses it at 32 / 16 px.
"""

import dataclasses
from typing import Optional


@dataclasses.dataclass
class LeJEPAConfig:
    """A LeJEPA pretraining run, except the data.

    Encoder: ``image_size``, ``patch_size``, ``hidden_dim``, ``depth``, ``num_heads``,
    ``mlp_ratio``, ``drop_path_rate`` (a ``VisionTransformer``). Model: ``embedding_dim``,
    ``projector_dims``, ``sigreg_weight``, ``num_slices``, ``num_knots``, ``t_max``.
    Views (``keras_jepa.data.multicrop``): ``num_global_views`` at ``image_size`` with crop
    area ``global_scale``; ``num_local_views`` at ``local_image_size`` with ``local_scale``;
    ``jitter`` strengths and the probabilities of each photometric step, ``blur_sigma`` in
    pixels. Optimisation: ``lr`` after a linear warmup from ``start_lr`` over
    ``warmup_epochs``, then a cosine to ``final_lr``; ``weight_decay``; ``epochs``,
    ``batch_size``.

    Example:

    >>> config = get_lejepa_config("lejepa_vits8_imagenette")
    >>> config.projector_dims, config.num_global_views, config.final_lr
    ((2048, 2048, 16), 4, 0.001)
    """

    name: str
    description: str
    image_size: int
    patch_size: int
    hidden_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.0
    embedding_dim: Optional[int] = None
    projector_dims: tuple = (2048, 2048, 16)
    sigreg_weight: float = 0.02
    num_slices: int = 256
    num_knots: int = 17
    t_max: float = 3.0
    num_global_views: int = 4
    global_scale: tuple = (0.08, 1.0)
    num_local_views: int = 0
    local_image_size: Optional[int] = None
    local_scale: tuple = (0.05, 0.3)
    jitter: tuple = (0.8, 0.8, 0.8, 0.2)
    jitter_probability: float = 0.8
    grayscale_probability: float = 0.2
    blur_probability: float = 0.5
    blur_sigma: tuple = (0.1, 2.0)
    solarize_probability: float = 0.2
    flip_probability: float = 0.5
    start_lr: float = 2e-5
    lr: float = 2e-3
    final_lr: float = 1e-3
    warmup_epochs: float = 1
    weight_decay: float = 5e-2
    epochs: int = 800
    batch_size: int = 256

    def replace(self, **changes):
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """The fields as a JSON-friendly dict."""
        return dataclasses.asdict(self)


LEJEPA_CONFIGS = {
    "lejepa_vits8_imagenette": LeJEPAConfig(
        name="lejepa_vits8_imagenette",
        description="LeJEPA ViT-S/8 at 128 px, 4 views, ImageNette, 800 epochs (reference "
                    "minimal example)",
        image_size=128, patch_size=8, hidden_dim=384, depth=12, num_heads=6,
        drop_path_rate=0.1, embedding_dim=512,
    ),
    "lejepa_tiny_cpu": LeJEPAConfig(
        name="lejepa_tiny_cpu",
        description="LeJEPA ViT 64-wide, depth 4, patch 4 at 32 px; 2 global + 2 local "
                    "(16 px) views (CPU minutes)",
        image_size=32, patch_size=4, hidden_dim=64, depth=4, num_heads=4,
        projector_dims=(256, 256, 16), num_global_views=2, global_scale=(0.3, 1.0),
        num_local_views=2, local_image_size=16, local_scale=(0.1, 0.4),
        jitter=(0.4, 0.4, 0.2, 0.1), blur_sigma=(0.1, 0.5), start_lr=2e-5, lr=2e-3,
        final_lr=2e-6, warmup_epochs=1, epochs=20, batch_size=128,
    ),
}


def get_lejepa_config(name):
    """The named :class:`LeJEPAConfig` (a copy), or the config itself if given one.

    Example:

    >>> get_lejepa_config("lejepa_tiny_cpu").num_local_views
    2
    """
    if isinstance(name, LeJEPAConfig):
        return name
    if name not in LEJEPA_CONFIGS:
        raise ValueError(
            f"Unknown LeJEPA config {name!r}; choose from {sorted(LEJEPA_CONFIGS)}."
        )
    return dataclasses.replace(LEJEPA_CONFIGS[name])


def build_encoder(config):
    """The ``VisionTransformer`` of ``config``.

    Example:

    >>> build_encoder(get_lejepa_config("lejepa_tiny_cpu")).num_tokens()
    64
    """
    from keras_jepa.models.vit.vision_transformer import VisionTransformer

    return VisionTransformer(
        image_size=config.image_size, patch_size=config.patch_size,
        hidden_dim=config.hidden_dim, depth=config.depth, num_heads=config.num_heads,
        mlp_ratio=config.mlp_ratio, drop_path_rate=config.drop_path_rate, name="encoder",
    )


def build_model(config, num_classes=None, seed=None, encoder=None):
    """The ``LeJEPA`` model of ``config`` (``num_classes``: add the online probe).

    Example:

    >>> model = build_model(get_lejepa_config("lejepa_tiny_cpu"))
    >>> model.projector_dims, model.sigreg_weight
    ((256, 256, 16), 0.02)
    """
    from keras_jepa.models.lejepa.model import LeJEPA

    return LeJEPA(
        encoder or build_encoder(config), embedding_dim=config.embedding_dim,
        projector_dims=config.projector_dims, sigreg_weight=config.sigreg_weight,
        num_slices=config.num_slices, num_knots=config.num_knots, t_max=config.t_max,
        num_classes=num_classes, seed=seed,
    )


def build_views(config):
    """The ``MultiCrop`` transform of ``config``.

    Example:

    >>> build_views(get_lejepa_config("lejepa_tiny_cpu"))
    ... # doctest: +ELLIPSIS
    MultiCrop(ViewAugmentation(size=(32, 32), ...) x 2, ViewAugmentation(size=(16, 16), ...) x 2)
    """
    from keras_jepa.data.multicrop import MultiCrop, ViewAugmentation

    common = dict(
        jitter=config.jitter, jitter_probability=config.jitter_probability,
        grayscale_probability=config.grayscale_probability,
        blur_probability=config.blur_probability, blur_sigma=config.blur_sigma,
        solarize_probability=config.solarize_probability,
        flip_probability=config.flip_probability,
    )
    local = None
    if config.num_local_views:
        local = ViewAugmentation(config.local_image_size, scale=config.local_scale, **common)
    return MultiCrop(ViewAugmentation(config.image_size, scale=config.global_scale, **common),
                     config.num_global_views, local, config.num_local_views)


def schedule_steps(config, epochs, steps_per_epoch):
    """Optimizer steps of the run and of the warmup (``warmup_epochs`` epochs).

    Example:

    >>> schedule_steps(get_lejepa_config("lejepa_vits8_imagenette"), 800, 36)
    {'total_steps': 28800, 'warmup_steps': 36}
    """
    total = max(int(epochs) * int(steps_per_epoch), 1)
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    return {"total_steps": total, "warmup_steps": min(warmup, total)}


def build_optimizer(config, total_steps, warmup_steps):
    """``JEPAAdamW`` with the config's constant weight decay and its warmup-cosine lr.

    Example:

    >>> opt = build_optimizer(get_lejepa_config("lejepa_tiny_cpu"), 100, 10)
    >>> round(float(opt.learning_rate), 6)  # value used by the first update
    0.000218
    """
    from keras_jepa.training.optimizers import JEPAAdamW, WarmupCosineSchedule

    lr = WarmupCosineSchedule(config.start_lr, config.lr, config.final_lr,
                              warmup_steps=warmup_steps, total_steps=total_steps)
    return JEPAAdamW(learning_rate=lr, weight_decay=config.weight_decay)
