"""V-JEPA 2.1 conversion: official-format synthetic checkpoints (tiny, official key names)
loaded into the Keras encoder and predictor match a float64 numpy port of the official
modules (images, videos, masks, non-square inputs, interpolated RoPE, intermediate and
hierarchical outputs, both predictor variants); loading is strict; the four released
presets are registered with their official sizes."""

import keras
import numpy as np
import pytest

from keras_jepa.checkpoints import vjepa2_1 as conv
from keras_jepa.models.jepa.predictor_2_1 import VJEPA2_1Predictor
from keras_jepa.models.jepa.vjepa2_1 import VJEPA2_1
from keras_jepa.models.vit.vision_transformer import VisionTransformer
from tests.models.jepa import vjepa2_1_reference as ref

DIM, DEPTH, HEADS, MLP, PATCH = 32, 4, 2, 64, 4
LAYERS = [0, 1, 2, 3]
ATOL = 1e-4


@pytest.fixture(scope="module", autouse=True)
def _fast_init(fast_jax_initializers):
    yield


def _encoder(**kwargs):
    config = dict(image_size=(8, 12), patch_size=PATCH, num_frames=4, tubelet_size=2,
                  hidden_dim=DIM, depth=DEPTH, num_heads=HEADS, mlp_ratio=MLP / DIM,
                  position_embedding="rope", rope_tiled=False, img_temporal_dim_size=1,
                  modality_embedding=True, interpolate_rope=True,
                  hierarchical_layers=LAYERS, n_output_distillation=4)
    config.update(kwargs)
    return VisionTransformer(**config)


@pytest.fixture(scope="module")
def encoder_case():
    rng = np.random.default_rng(0)
    state = ref.encoder_state(rng, DIM, DEPTH, MLP, PATCH, 2, len(LAYERS),
                              prefix="module.backbone.")
    model = _encoder()
    report = conv.assign_encoder_weights(model, state)
    assert not report.missing and not report.unexpected
    return model, state


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("frames", [1, 4])
def test_encoder_matches_official_on_images_and_videos(encoder_case, frames):
    model, state = encoder_case
    clip = np.random.default_rng(frames).random((2, frames, 8, 12, 3)).astype("float32")
    want = ref.encoder_forward(state, clip, PATCH, HEADS, LAYERS, interpolate_grid=256 // PATCH)
    got = model(clip)
    np.testing.assert_allclose(_np(got), want["output"], atol=ATOL)
    hier = model(clip, return_hierarchical=True)
    assert tuple(hier.shape) == (2, want["output"].shape[1], 4 * DIM)
    np.testing.assert_allclose(_np(hier), want["hierarchical"], atol=ATOL)
    outs = model(clip, output_layers=[1, 3])
    np.testing.assert_allclose(_np(outs[0]), want["layers"][1], atol=ATOL)
    np.testing.assert_allclose(_np(outs[1]), want["layers"][3], atol=ATOL)
    if frames == 1:  # a rank-4 image is the same one-frame clip
        np.testing.assert_allclose(_np(model(clip[:, 0])), want["output"], atol=ATOL)


def test_encoder_matches_official_with_masks_and_other_resolution(encoder_case):
    model, state = encoder_case
    clip = np.random.default_rng(5).random((2, 4, 12, 16, 3)).astype("float32")
    idx = np.array([[0, 5, 7, 20, 23], [1, 2, 9, 13, 22]])
    want = ref.encoder_forward(state, clip, PATCH, HEADS, LAYERS, token_indices=idx,
                               interpolate_grid=256 // PATCH)
    np.testing.assert_allclose(_np(model(clip, token_indices=idx)), want["output"], atol=ATOL)


def test_interpolated_rope_differs_from_plain(encoder_case):
    model, state = encoder_case
    plain = _encoder(interpolate_rope=False)
    conv.assign_encoder_weights(plain, state)
    clip = np.random.default_rng(3).random((1, 4, 8, 12, 3)).astype("float32")
    want = ref.encoder_forward(state, clip, PATCH, HEADS, LAYERS)
    np.testing.assert_allclose(_np(plain(clip)), want["output"], atol=ATOL)
    assert np.abs(_np(plain(clip)) - _np(model(clip))).max() > 1e-3


@pytest.mark.parametrize("levels,teacher", [(4, None), (1, 48)])
def test_predictor_matches_official(levels, teacher):
    rng = np.random.default_rng(10 + levels)
    pred_dim, depth, grid = 24, 2, 3
    out = (teacher // levels) if teacher else DIM
    state = ref.predictor_state(rng, DIM, pred_dim, depth, 4 * pred_dim, levels, out,
                                num_mask_tokens=3, prefix="module.backbone.")
    predictor = VJEPA2_1Predictor(grid_size=(2, grid, grid), output_dim=DIM,
                                  hidden_dim=pred_dim, depth=depth, num_heads=2,
                                  num_mask_tokens=3, n_output_distillation=levels,
                                  teacher_embed_dim=teacher, patch_size=PATCH)
    predictor.build()
    report = conv.assign_predictor_weights(predictor, state)
    assert not report.missing and not report.unexpected
    context = rng.standard_normal((2, 5, levels * DIM)).astype("float32")
    ctx_ids = np.array([[0, 4, 9, 10, 17], [2, 3, 5, 11, 16]])
    tgt_ids = np.array([[1, 2, 12], [0, 9, 15]])
    for mask_index, modality in ((1, "video"), (4, "image")):
        targets, ctx = predictor(context, ctx_ids, tgt_ids, mask_index=mask_index,
                                 modality=modality)
        want_t, want_c = ref.predictor_forward(state, context, ctx_ids, tgt_ids, grid, 2,
                                               mask_index=mask_index, modality=modality)
        assert tuple(targets.shape) == (2, 3, levels * out)
        np.testing.assert_allclose(_np(targets), want_t, atol=ATOL)
        np.testing.assert_allclose(_np(ctx), want_c, atol=ATOL)


def test_loading_is_strict_and_all_or_nothing(encoder_case):
    _, state = encoder_case
    model = _encoder()
    before = [np.array(w) for w in model.get_weights()]
    extra = dict(state, **{"module.backbone.norm.weight": np.ones(DIM, "float32")})
    with pytest.raises(ValueError, match="unexpected keys"):
        conv.assign_encoder_weights(model, extra)
    broken = dict(state)
    broken.pop("module.backbone.norms_block.2.bias")
    with pytest.raises(ValueError, match="norms_block.2.bias"):
        conv.assign_encoder_weights(model, broken)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_full_checkpoint_into_model_and_back(encoder_case):
    _, state = encoder_case
    rng = np.random.default_rng(7)
    pred = ref.predictor_state(rng, DIM, 24, 1, 96, 4, DIM, num_mask_tokens=2)
    model = VJEPA2_1(_encoder(), predictor_dim=24, predictor_depth=1, predictor_heads=2,
                     num_mask_tokens=2, ema_momentum=(0.99925, 0.99925))
    checkpoint = {"target_encoder": state, "predictor": pred, "epoch": 3}
    reports = conv.load_vjepa2_1_weights(model, checkpoint)
    assert sorted(reports) == ["encoder", "predictor", "target_encoder"]
    exported = conv.export_official_state(model)
    for key, value in ref.encoder_state(np.random.default_rng(0), DIM, DEPTH, MLP, PATCH, 2,
                                        4).items():
        np.testing.assert_allclose(exported["target_encoder"][key], value, atol=0)
        np.testing.assert_allclose(exported["encoder"][key], value, atol=0)
    for key, value in pred.items():
        np.testing.assert_allclose(exported["predictor"][key], value, atol=0)
    with pytest.raises(ValueError, match="ema_encoder"):
        conv.load_vjepa2_1_weights(model, checkpoint, encoder_key="ema_encoder")


def test_released_presets_are_registered_with_official_sizes():
    from keras_jepa.models.jepa import presets_2_1  # noqa: F401  (registers)
    from keras_jepa.presets.registry import PRESETS

    sizes = {"vjepa2_1_vitb16_384": 86_833_152, "vjepa2_1_vitl16_384": 304_680_960,
             "vjepa2_1_vitg16_384": 1_013_267_968, "vjepa2_1_vitG16_384": 1_845_216_768}
    keys = {"vjepa2_1_vitb16_384": "ema_encoder", "vjepa2_1_vitl16_384": "ema_encoder",
            "vjepa2_1_vitg16_384": "target_encoder", "vjepa2_1_vitG16_384": "target_encoder"}
    for name, count in sizes.items():
        entry = PRESETS[name]
        assert entry["encoder_parameters"] == count
        assert entry["encoder_key"] == keys[name]
        assert entry["source"].startswith("https://dl.fbaipublicfiles.com/vjepa2/vjepa2_1_")
    assert PRESETS["vjepa2_1_vitb16_384"]["predictor_config"]["teacher_embed_dim"] == 1664
    assert PRESETS["vjepa2_1_vitG16_384"]["predictor_config"]["depth"] == 24


def test_conversion_to_a_preset_folder(encoder_case, tmp_path):
    from keras_jepa.models.jepa.presets_2_1 import vjepa2_1_predictor_config

    _, state = encoder_case
    config = _encoder().get_config()
    for key in ("name", "trainable", "dtype"):
        config.pop(key)
    predictor = vjepa2_1_predictor_config(dict(config, image_size=8), depth=1, levels=4)
    predictor.update(hidden_dim=24, grid_size=[2, 2, 3], num_mask_tokens=2, patch_size=PATCH)
    pred_state = ref.predictor_state(np.random.default_rng(8), DIM, 24, 1, 96, 4, DIM, 2)
    entry = {"encoder_config": config, "predictor_config": predictor,
             "encoder_key": "ema_encoder"}
    checkpoint = {"ema_encoder": state, "predictor": pred_state}
    model, _ = conv.convert_vjepa2_1_checkpoint(checkpoint, str(tmp_path), arch=entry,
                                                verbose=False)
    clip = np.random.default_rng(9).random((1, 4, 8, 12, 3)).astype("float32")
    want = ref.encoder_forward(state, clip, PATCH, HEADS, LAYERS, interpolate_grid=256 // PATCH)
    loaded = VJEPA2_1.from_preset(str(tmp_path))
    np.testing.assert_allclose(_np(loaded.target_encoder(clip)), want["output"], atol=ATOL)
    backbone = VisionTransformer.from_preset(str(tmp_path))
    np.testing.assert_allclose(_np(backbone(clip)), want["output"], atol=ATOL)


def test_vjepa_from_preset_gives_the_2_1_release(encoder_case, tmp_path, monkeypatch):
    """``VJEPA.from_preset`` with a V-JEPA 2.1 release name: the entry of
    ``vjepa2_1_vitb16_384`` shrunk to the tiny architecture, its official file written
    (``ema_encoder`` + ``predictor``, official key names) where the download would put it;
    no network."""
    torch = pytest.importorskip("torch")
    from keras_jepa.applications import VJEPA, IJEPA
    from keras_jepa.models.jepa.presets_2_1 import vjepa2_1_predictor_config
    from keras_jepa.presets import registry

    _, state = encoder_case
    name = "vjepa2_1_vitb16_384"
    config = _encoder().get_config()
    for key in ("name", "trainable", "dtype"):
        config.pop(key)
    predictor = vjepa2_1_predictor_config(dict(config, image_size=8), depth=1, levels=4)
    predictor.update(hidden_dim=24, grid_size=[2, 2, 3], num_mask_tokens=2, patch_size=PATCH)
    entry = dict(registry.PRESETS[name], encoder_config=config, predictor_config=predictor)
    monkeypatch.setitem(registry.PRESETS, name, entry)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    pred_state = ref.predictor_state(np.random.default_rng(8), DIM, 24, 1, 96, 4, DIM, 2)
    path = tmp_path / "home" / "keras_jepa" / "checkpoints" / entry["file"]
    path.parent.mkdir(parents=True)
    to_torch = {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}
    torch.save({"ema_encoder": to_torch, "epoch": 1,
                "predictor": {k: torch.from_numpy(np.asarray(v))
                              for k, v in pred_state.items()}}, str(path))
    model = VJEPA.from_preset(name)
    assert type(model) is VJEPA2_1 and isinstance(model, VJEPA)
    clip = np.random.default_rng(9).random((1, 4, 8, 12, 3)).astype("float32")
    want = ref.encoder_forward(state, clip, PATCH, HEADS, LAYERS, interpolate_grid=256 // PATCH)
    np.testing.assert_allclose(_np(model.target_encoder(clip)), want["output"], atol=ATOL)
    # The same cached conversion through the 2.1 class, and the encoder alone.
    again = VJEPA2_1.from_preset(name)
    np.testing.assert_allclose(_np(again.encoder(clip)), want["output"], atol=ATOL)
    with pytest.raises(ValueError, match="not a IJEPA"):
        IJEPA.from_preset(name)
