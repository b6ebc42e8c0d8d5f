"""Official-recipe details of the JEPA configs: V-JEPA 2's depth-scaled encoder init and
the mask budgets at each recipe's per-device batch size."""

import keras
import numpy as np

from keras_jepa.models.jepa.recipes import build_encoder, build_mask_sampler, get_config


def _block_std(encoder, index, name):
    kernels = [w for w in encoder.weights
               if f"blocks_{index}/" in w.path and name in w.path and "kernel" in w.path]
    assert len(kernels) == 1, [w.path for w in encoder.weights if f"blocks_{index}/" in w.path]
    return float(np.std(keras.ops.convert_to_numpy(kernels[0])))


def test_vjepa2_encoder_keeps_depth_scaled_init():
    small = dict(depth=2, hidden_dim=128, num_heads=4, image_size=32, num_frames=4)
    v2 = build_encoder(get_config("vjepa2_vitl16").replace(**small))
    v1 = build_encoder(get_config("vjepa_vitl16").replace(**small))
    assert v2.depth_scaled_init and not v1.depth_scaled_init
    # Official _rescale_blocks: proj and fc2 of block i divided by sqrt(2 * (i + 1)).
    for name in ("attn/proj", "mlp/fc2"):
        ratio = _block_std(v2, 0, name) / _block_std(v2, 1, name)
        np.testing.assert_allclose(ratio, np.sqrt(2.0), rtol=0.05)
        np.testing.assert_allclose(_block_std(v1, 0, name) / _block_std(v1, 1, name), 1.0,
                                   rtol=0.05)


def test_mask_budget_follows_the_per_device_batch_size():
    # StoP ViT-H/16 runs 64 images per device: the official collator's expected budget
    # there is 53 context tokens (50 at I-JEPA's 128 per device).
    stop = build_mask_sampler(get_config("ijepa_stop_vith16_in1k"))
    assert stop.reference_batch_size == 64
    assert (stop.num_context_tokens, stop.num_target_tokens) == (53, 33)
    ijepa = build_mask_sampler(get_config("ijepa_vith14_in1k"))
    assert ijepa.reference_batch_size == 128
    assert (ijepa.num_context_tokens, ijepa.num_target_tokens) == (69, 44)
