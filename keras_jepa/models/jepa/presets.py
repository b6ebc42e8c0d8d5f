"""The released official I-JEPA, V-JEPA and V-JEPA 2 checkpoints and attentive probes as
built-in presets (registered into ``keras_jepa.presets``).

Each entry builds the full pretraining model (context encoder, target encoder, predictor)
from a ``keras_jepa.models.jepa.recipes`` config plus overrides, and names the file it is
converted from. The first ``from_preset`` downloads ``source`` into
``$KERAS_HOME/keras_jepa/checkpoints/`` (default ``~/.keras``), converts it (through the
converter ``keras_jepa.checkpoints`` registers), and caches the converted preset in
``$KERAS_HOME/keras_jepa/presets/<name>/``.
"""

from keras_jepa.presets.registry import register_presets

_IMAGE_EVAL = (
    "RGB in [0, 1], ImageNet mean/std; evaluation: resize the short side to S*256/224 "
    "(bicubic), centre crop S"
)
_VJEPA_EVAL = (
    "clips of 16 frames, frame step 4; RGB in [0, 1], ImageNet mean/std; evaluation: resize "
    "the short side to S (bilinear) and take 3 S x S crops (probe protocol) or a centre crop"
)
_VJEPA2_EVAL = (
    "clips of 64 frames (the hub demo reads every 2nd frame); RGB in [0, 1], ImageNet "
    "mean/std; evaluation: resize the short side to int(S*256/224) (bilinear), centre crop S"
)
_WEIGHTS = (
    "all three modules; `encoder=\"target\"` (default, as the official probes) or "
    "`\"context\"` (as torch.hub and Hugging Face) picks the features encoder"
)


def _vit_parameters(width, depth, mlp_hidden, patch, tubelet=1, channels=3):
    """Trainable parameters of an official ViT encoder (fixed position tables excluded)."""
    embed = width * channels * tubelet * patch * patch + width
    block = 4 * width + (3 * width * width + 3 * width) + (width * width + width)
    block += (width * mlp_hidden + mlp_hidden) + (mlp_hidden * width + width)
    return embed + depth * block + 2 * width


def _official(cls, family, base, overrides, source, description, resolution, hf=None,
              preprocessing=None, encoder_file=None):
    from keras_jepa.models.jepa.recipes import get_config

    config = get_config(base).replace(**overrides)
    tubelet = config.tubelet_size if config.kind == "video" else 1
    params = _vit_parameters(
        config.hidden_dim, config.depth, int(config.hidden_dim * config.mlp_ratio),
        config.patch_size, tubelet,
    )
    return {
        "class": cls,
        "family": family,
        "pretrain_config": base,
        "overrides": overrides,
        "source": source,
        "file": source.rsplit("/", 1)[1],
        "hf": hf,
        "encoder_parameters": params,
        "size": f"encoder {params / 1e6:.0f}M parameters (+ target encoder and predictor)",
        "weights": encoder_file or _WEIGHTS,
        "resolution": resolution,
        "preprocessing": preprocessing,
        "description": description,
    }


_IJEPA_URL = "https://dl.fbaipublicfiles.com/ijepa/"
_VJEPA_URL = "https://dl.fbaipublicfiles.com/jepa/"
_VJEPA2_URL = "https://dl.fbaipublicfiles.com/vjepa2/"
_GIANT = dict(hidden_dim=1408, depth=40, num_heads=16, mlp_ratio=48 / 11)
_GIANT_XF = dict(hidden_dim=1408, depth=40, num_heads=22, mlp_ratio=48 / 11)
_HUGE = dict(hidden_dim=1280, depth=32, num_heads=16)

OFFICIAL_PRESETS = {
    "ijepa_vith14_in1k_224": _official(
        "IJEPA", "ijepa", "ijepa_vith14_in1k", {},
        _IJEPA_URL + "IN1K-vit.h.14-300e.pth.tar",
        "I-JEPA ViT-H/14, ImageNet-1k, 300 epochs, 224 px (official release).",
        224, hf="hf://facebook/ijepa_vith14_1k", preprocessing=_IMAGE_EVAL,
    ),
    "ijepa_vith16_in1k_448": _official(
        "IJEPA", "ijepa", "ijepa_vith14_in1k", dict(patch_size=16, image_size=448),
        _IJEPA_URL + "IN1K-vit.h.16-448px-300e.pth.tar",
        "I-JEPA ViT-H/16, ImageNet-1k, 300 epochs, 448 px (official release).",
        448, hf="hf://facebook/ijepa_vith16_1k", preprocessing=_IMAGE_EVAL,
    ),
    "ijepa_vith14_in22k_224": _official(
        "IJEPA", "ijepa", "ijepa_vith14_in1k", dict(epochs=900),
        _IJEPA_URL + "IN22K-vit.h.14-900e.pth.tar",
        "I-JEPA ViT-H/14, ImageNet-22k, 900 epochs, 224 px (official release).",
        224, hf="hf://facebook/ijepa_vith14_22k", preprocessing=_IMAGE_EVAL,
    ),
    "ijepa_vitg16_in22k_224": _official(
        "IJEPA", "ijepa", "ijepa_vith14_in1k",
        dict(patch_size=16, predictor_depth=16, epochs=600, **_GIANT),
        _IJEPA_URL + "IN22K-vit.g.16-600e.pth.tar",
        "I-JEPA ViT-g/16, ImageNet-22k, 600 epochs, 224 px (official release).",
        224, hf="hf://facebook/ijepa_vitg16_22k", preprocessing=_IMAGE_EVAL,
    ),
    "vjepa_vitl16_224": _official(
        "VJEPA", "vjepa", "vjepa_vitl16", {},
        _VJEPA_URL + "vitl16/vitl16.pth.tar",
        "V-JEPA ViT-L/16, VideoMix2M, 16 frames x 224 px (official release).",
        224, preprocessing=_VJEPA_EVAL,
    ),
    "vjepa_vith16_224": _official(
        "VJEPA", "vjepa", "vjepa_vitl16", dict(_HUGE),
        _VJEPA_URL + "vith16/vith16.pth.tar",
        "V-JEPA ViT-H/16, VideoMix2M, 16 frames x 224 px (official release).",
        224, preprocessing=_VJEPA_EVAL,
    ),
    "vjepa_vith16_384": _official(
        "VJEPA", "vjepa", "vjepa_vitl16", dict(image_size=384, **_HUGE),
        _VJEPA_URL + "vith16-384/vith16-384.pth.tar",
        "V-JEPA ViT-H/16, VideoMix2M, 16 frames x 384 px (official release).",
        384, preprocessing=_VJEPA_EVAL,
    ),
    "vjepa2_vitl16_256": _official(
        "VJEPA", "vjepa2", "vjepa2_vitl16", dict(num_frames=64),
        _VJEPA2_URL + "vitl.pt",
        "V-JEPA 2 ViT-L/16, 256 px, RoPE (official release; built for 64-frame clips).",
        256, hf="hf://facebook/vjepa2-vitl-fpc64-256", preprocessing=_VJEPA2_EVAL,
    ),
    "vjepa2_vith16_256": _official(
        "VJEPA", "vjepa2", "vjepa2_vitl16", dict(num_frames=64, **_HUGE),
        _VJEPA2_URL + "vith.pt",
        "V-JEPA 2 ViT-H/16, 256 px, RoPE (official release; built for 64-frame clips).",
        256, hf="hf://facebook/vjepa2-vith-fpc64-256", preprocessing=_VJEPA2_EVAL,
    ),
    "vjepa2_vitg16_256": _official(
        "VJEPA", "vjepa2", "vjepa2_vitl16", dict(num_frames=64, **_GIANT_XF),
        _VJEPA2_URL + "vitg.pt",
        "V-JEPA 2 ViT-g/16 (22 heads), 256 px, RoPE (official release; 64-frame clips).",
        256, hf="hf://facebook/vjepa2-vitg-fpc64-256", preprocessing=_VJEPA2_EVAL,
    ),
    "vjepa2_vitg16_384": _official(
        "VJEPA", "vjepa2", "vjepa2_vitl16", dict(num_frames=64, image_size=384, **_GIANT_XF),
        _VJEPA2_URL + "vitg-384.pt",
        "V-JEPA 2 ViT-g/16 (22 heads), 384 px, RoPE (official release; 64-frame clips).",
        384, hf="hf://facebook/vjepa2-vitg-fpc64-384", preprocessing=_VJEPA2_EVAL,
    ),
}


def _probe(backbone, family, source, task, num_classes, protocol, description, hf=None,
           supported=True, heads=16, depth=None):
    return {
        "class": "AttentiveClassifier",
        "family": family,
        "backbone": backbone,
        "source": source,
        "file": source.rsplit("/", 1)[1],
        "hf": hf,
        "task": task,
        "num_classes": num_classes,
        "num_heads": heads,
        "depth": depth if depth is not None else (1 if family == "vjepa" else 4),
        "protocol": protocol,
        "supported": supported,
        "description": description,
    }


def _vjepa_probes():
    tasks = {  # file stem: (task, classes, protocol)
        "k400": ("Kinetics-400", 400, "16 frames x 8 segments x 3 views, frame step 4"),
        "ssv2": ("Something-Something v2", 174, "16 frames x 2 segments x 3 views, step 4"),
        "in1k": ("ImageNet-1k", 1000, "images repeated over 16 frames"),
        "places": ("Places205", 205, "images repeated over 16 frames"),
        "inat": ("iNaturalist 2021", 10000, "images repeated over 16 frames"),
    }
    out = {}
    for backbone, folder in (("vjepa_vitl16_224", "vitl16"), ("vjepa_vith16_224", "vith16"),
                             ("vjepa_vith16_384", "vith16-384")):
        for stem, (task, classes, protocol) in tasks.items():
            out[f"{backbone}_{stem}_probe"] = _probe(
                backbone, "vjepa", f"{_VJEPA_URL}{folder}/{stem}-probe.pth.tar", task,
                classes, protocol,
                f"V-JEPA attentive probe ({task}) for {backbone} (official release).",
            )
    return out


def _vjepa2_probes():
    out = {}
    specs = [
        ("vjepa2_vitl16_256", "ssv2", "ssv2-vitl-16x2x3.pt", "Something-Something v2", 174,
         "16 frames x 2 segments x 3 views, frame step 4, 256 px",
         "hf://facebook/vjepa2-vitl-fpc16-256-ssv2"),
        ("vjepa2_vitl16_256", "diving48", "diving48-vitl-256.pt", "Diving-48", 48,
         "32 frames x 4 segments x 3 views, frame step 2, 256 px",
         "hf://facebook/vjepa2-vitl-fpc32-256-diving48"),
        ("vjepa2_vitg16_384", "ssv2", "ssv2-vitg-384-64x2x3.pt", "Something-Something v2",
         174, "64 frames x 2 segments x 3 views, frame step 2, 384 px",
         "hf://facebook/vjepa2-vitg-fpc64-384-ssv2"),
        ("vjepa2_vitg16_384", "diving48", "diving48-vitg-384-32x4x3.pt", "Diving-48", 48,
         "32 frames x 4 segments x 3 views, 384 px",
         "hf://facebook/vjepa2-vitg-fpc32-384-diving48"),
    ]
    for backbone, stem, file, task, classes, protocol, hf in specs:
        out[f"{backbone}_{stem}_probe"] = _probe(
            backbone, "vjepa2", f"{_VJEPA2_URL}evals/{file}", task, classes, protocol,
            f"V-JEPA 2 attentive probe ({task}) for {backbone} (official release).", hf=hf,
        )
    for backbone, file in (("vjepa2_vitl16_256", "ek100-vitl-256.pt"),
                           ("vjepa2_vitg16_384", "ek100-vitg-384.pt")):
        out[f"{backbone}_ek100_probe"] = _probe(
            backbone, "vjepa2", f"{_VJEPA2_URL}evals/{file}",
            "EPIC-KITCHENS-100 action anticipation", (97, 300, 3806),
            "encoder + predictor features of the observed clip, 3 queries (verb, noun, "
            "action)",
            f"V-JEPA 2 action-anticipation probe for {backbone} (official release). "
            "Listed for completeness: its verb/noun/action heads over encoder+predictor "
            "features are not converted yet.",
            supported=False,
        )
    return out


OFFICIAL_PROBES = {**_vjepa_probes(), **_vjepa2_probes()}

register_presets(OFFICIAL_PRESETS)
register_presets(OFFICIAL_PROBES)
