"""Architecture-only presets of the ViT encoders (official initialisation, no weights).

Each entry names the class it builds and its ``config``; ``register_presets`` adds them
to the registry of ``keras_jepa.presets``.
"""

from keras_jepa.models.vit.vision_transformer import VIT_SIZES
from keras_jepa.presets.registry import register_presets


def _vit(size, description, **overrides):
    config = {**VIT_SIZES[size], **overrides}
    return {"class": "VisionTransformer", "config": config, "description": description}


def _image(size, patch, res):
    return _vit(
        size,
        f"ViT-{size} /{patch} image encoder at {res} px, I-JEPA layout (2-D sin-cos "
        "positions, column channels first). Architecture only.",
        image_size=res,
        patch_size=patch,
        sincos_order="wh",
    )


def _video_sincos(size, frames, res):
    return _vit(
        size,
        f"ViT-{size}/16 video encoder, {frames} frames at {res} px, tubelet 2, V-JEPA "
        "layout (3-D sin-cos, uniform_power). Architecture only.",
        image_size=res,
        patch_size=16,
        num_frames=frames,
        tubelet_size=2,
        uniform_power=True,
    )


def _video_rope(size, frames, res):
    return _vit(
        size,
        f"ViT-{size}/16 video encoder, {frames} frames at {res} px, tubelet 2, V-JEPA 2 "
        "layout (3-D RoPE, tiled frequencies, depth-scaled init). Architecture only.",
        image_size=res,
        patch_size=16,
        num_frames=frames,
        tubelet_size=2,
        position_embedding="rope",
        depth_scaled_init=True,
    )


VIT_PRESETS = {
    "vit_tiny_patch16_224": _image("tiny", 16, 224),
    "vit_small_patch16_224": _image("small", 16, 224),
    "vit_base_patch16_224": _image("base", 16, 224),
    "vit_large_patch16_224": _image("large", 16, 224),
    "vit_huge_patch14_224": _image("huge", 14, 224),
    "vit_huge_patch16_448": _image("huge", 16, 448),
    "vit_giant_patch16_224": _image("giant", 16, 224),
    "vit_large_patch16_16x224": _video_sincos("large", 16, 224),
    "vit_huge_patch16_16x224": _video_sincos("huge", 16, 224),
    "vit_huge_patch16_16x384": _video_sincos("huge", 16, 384),
    "vit_large_patch16_rope_64x256": _video_rope("large", 64, 256),
    "vit_huge_patch16_rope_64x256": _video_rope("huge", 64, 256),
    "vit_giant_xformers_patch16_rope_64x256": _video_rope("giant_xformers", 64, 256),
    "vit_giant_xformers_patch16_rope_64x384": _video_rope("giant_xformers", 64, 384),
}


register_presets(VIT_PRESETS)
