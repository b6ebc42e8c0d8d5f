"""The released V-JEPA 2-AC checkpoint as a built-in preset (registered into
``keras_jepa.presets``).

The entry's ``"ac"`` block is the architecture: the V-JEPA 2 ViT-g/16 encoder (22 heads,
RoPE, 256 px; the hub builds it for 64 frames, which only sets its default input) and the
action-conditioned predictor (1024 wide, 24 blocks, 16 heads, actions and states of 7,
block-causal mask prebuilt for 64 / 2 = 32 steps). The first ``VJEPA2AC.from_preset``
downloads ``source`` into ``$KERAS_HOME/keras_jepa/checkpoints/`` and converts it through
the converter that ``keras_jepa.checkpoints`` registers (``keras_jepa.checkpoints.ac``).
"""

from keras_jepa.presets import registry

_URL = "https://dl.fbaipublicfiles.com/vjepa2/vjepa2-ac-vitg.pt"
_NAME = "vjepa2_ac_vitg16_256"

# Trainable parameters of the AC predictor, derived from its architecture.
PREDICTOR_PARAMETERS = 305_220_992


def _encoder_parameters(width=1408, depth=40, mlp=6144, patch=16, tubelet=2, channels=3):
    """Trainable parameters of the ViT-g/16 encoder (official layout)."""
    embed = width * channels * tubelet * patch * patch + width
    block = 4 * width + 3 * width * width + 3 * width + width * width + width
    block += width * mlp + mlp + mlp * width + width
    return embed + depth * block + 2 * width


AC_PRESETS = {
    _NAME: {
        "class": "VJEPA2AC",
        "family": "vjepa2_ac",
        "source": _URL,
        "file": "vjepa2-ac-vitg.pt",
        "keys": {"encoder": "encoder (the official hub loads this one)",
                 "predictor": "predictor (VisionTransformerPredictorAC, strict)"},
        "encoder_parameters": _encoder_parameters(),
        "predictor_parameters": PREDICTOR_PARAMETERS,
        "size": f"encoder {_encoder_parameters() / 1e6:.0f}M + AC predictor "
                f"{PREDICTOR_PARAMETERS / 1e6:.0f}M parameters",
        "resolution": 256,
        "preprocessing": "frames resized (bilinear) and centre-cropped to 256 px, RGB in "
                         "[0, 1], ImageNet mean/std; each frame is repeated into one "
                         "2-frame tubelet; actions/states: 7-D (xyz, Euler xyz, gripper), "
                         "not normalised",
        "description": "V-JEPA 2-AC: ViT-g/16 encoder (frozen) + action-conditioned "
                       "predictor (1024 wide, 24 blocks, block-causal), trained on DROID "
                       "(official release).",
        "ac": {
            "encoder": dict(image_size=256, patch_size=16, num_frames=64, tubelet_size=2,
                            hidden_dim=1408, depth=40, num_heads=22, mlp_ratio=48 / 11,
                            position_embedding="rope", depth_scaled_init=True,
                            name="encoder"),
            "predictor": dict(grid_size=[16, 16], embed_dim=1408, hidden_dim=1024,
                              depth=24, num_heads=16, mlp_ratio=4.0, action_dim=7,
                              max_steps=32),
            "model": dict(auto_steps=2),
        },
    },
}

registry.register_presets(AC_PRESETS)
