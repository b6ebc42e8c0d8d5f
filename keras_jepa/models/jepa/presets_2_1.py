"""The released V-JEPA 2.1 checkpoints as built-in presets (``VJEPA2_1.from_preset``, or
``VJEPA.from_preset``: ``VJEPA2_1`` is a ``VJEPA``).

Four 384 px models (patch 16, tubelet 2, RoPE in the interleaved layout interpolated across
resolutions, one encoder for images and videos, four hierarchical output norms):

================================  ================  =============  ===========  ===========
preset                            encoder           encoder key    predictor    levels/out
================================  ================  =============  ===========  ===========
``vjepa2_1_vitb16_384``           ViT-B (768)       ``ema_encoder``   12 blocks  1 / 1664
``vjepa2_1_vitl16_384``           ViT-L (1024)      ``ema_encoder``   12 blocks  1 / 1664
``vjepa2_1_vitg16_384``           ViT-g (1408, 22h) ``target_encoder`` 24 blocks 4 / 4 x 1408
``vjepa2_1_vitG16_384``           ViT-G (1664, 26h) ``target_encoder`` 24 blocks 4 / 4 x 1664
================================  ================  =============  ===========  ===========

ViT-B and ViT-L are distilled from ViT-G: their predictors map the student's last-layer
features to the 1664-wide ViT-G features. Every predictor is 384 wide with 12 heads, 8
mask tokens, modality embeddings, and outputs at the context positions too
(``return_all_tokens``); the hub builds it without RoPE interpolation. The presets hold
the encoder under both ``encoder`` and ``target_encoder`` (the file stores one) and no
teacher. No V-JEPA 2.1 attentive probes are released.
"""

from keras_jepa.models.vit.vision_transformer import VIT_SIZES, VJEPA2_1_HIERARCHICAL_LAYERS
from keras_jepa.presets.registry import register_presets

VJEPA2_1_URL = "https://dl.fbaipublicfiles.com/vjepa2/"
VJEPA2_1_TEACHER_WIDTH = 1664

_PREPROCESSING = (
    "RGB in [0, 1], ImageNet mean/std; videos (B, T, H, W, C) with T even, images "
    "(B, H, W, C) or (B, 1, H, W, C); any multiple of 16 px (RoPE is interpolated)"
)


def vjepa2_1_encoder_config(size, image_size=384, num_frames=64):
    """``VisionTransformer`` kwargs of a released V-JEPA 2.1 encoder."""
    dims = VIT_SIZES[size]
    return dict(
        dims, image_size=image_size, patch_size=16, num_frames=num_frames, tubelet_size=2,
        position_embedding="rope", rope_tiled=False, depth_scaled_init=True,
        img_temporal_dim_size=1, modality_embedding=True, interpolate_rope=True,
        hierarchical_layers=list(VJEPA2_1_HIERARCHICAL_LAYERS[dims["depth"]]),
        n_output_distillation=4,
    )


def vjepa2_1_predictor_config(encoder_config, depth, levels, teacher_embed_dim=None):
    """``VJEPA2_1Predictor`` kwargs of a released V-JEPA 2.1 predictor."""
    grid = encoder_config["image_size"] // encoder_config["patch_size"]
    frames = encoder_config["num_frames"] // encoder_config["tubelet_size"]
    return dict(
        grid_size=[frames, grid, grid], output_dim=encoder_config["hidden_dim"],
        hidden_dim=384, depth=depth, num_heads=12, num_mask_tokens=8,
        n_output_distillation=levels, teacher_embed_dim=teacher_embed_dim,
        return_all_tokens=True, modality_embedding=True, interpolate_rope=False,
        patch_size=16,
    )


def _parameters(size, tubelet=2, patch=16):
    dims = VIT_SIZES[size]
    d, depth = dims["hidden_dim"], dims["depth"]
    hidden = int(d * dims["mlp_ratio"])
    block = 4 * d + 3 * d * d + 3 * d + d * d + d + d * hidden + hidden + hidden * d + d
    embed = (d * 3 * tubelet * patch * patch + d) + (d * 3 * patch * patch + d) + 2 * d
    return embed + depth * block + 4 * 2 * d


def _entry(size, file, encoder_key, predictor_depth, levels, teacher, description):
    encoder = vjepa2_1_encoder_config(size)
    params = _parameters(size)
    return {
        "class": "VJEPA2_1",
        "family": "vjepa2_1",
        "source": VJEPA2_1_URL + file,
        "file": file,
        "encoder_key": encoder_key,
        "encoder_config": encoder,
        "predictor_config": vjepa2_1_predictor_config(encoder, predictor_depth, levels, teacher),
        "encoder_parameters": params,
        "size": f"encoder {params / 1e6:.0f}M parameters (+ EMA copy and predictor)",
        "weights": f"encoder from the file's {encoder_key!r} entry, predictor from "
                   "'predictor'",
        "resolution": 384,
        "preprocessing": _PREPROCESSING,
        "description": description,
    }


VJEPA2_1_PRESETS = {
    "vjepa2_1_vitb16_384": _entry(
        "base", "vjepa2_1_vitb_dist_vitG_384.pt", "ema_encoder", 12, 1,
        VJEPA2_1_TEACHER_WIDTH,
        "V-JEPA 2.1 ViT-B/16, 384 px, distilled from ViT-G (official release).",
    ),
    "vjepa2_1_vitl16_384": _entry(
        "large", "vjepa2_1_vitl_dist_vitG_384.pt", "ema_encoder", 12, 1,
        VJEPA2_1_TEACHER_WIDTH,
        "V-JEPA 2.1 ViT-L/16, 384 px, distilled from ViT-G (official release).",
    ),
    "vjepa2_1_vitg16_384": _entry(
        "giant_xformers", "vjepa2_1_vitg_384.pt", "target_encoder", 24, 4, None,
        "V-JEPA 2.1 ViT-g/16 (22 heads), 384 px (official release).",
    ),
    "vjepa2_1_vitG16_384": _entry(
        "gigantic_xformers_2_1", "vjepa2_1_vitG_384.pt", "target_encoder", 24, 4, None,
        "V-JEPA 2.1 ViT-G/16 (26 heads, MLP 8192), 384 px (official release).",
    ),
}

register_presets(VJEPA2_1_PRESETS)
