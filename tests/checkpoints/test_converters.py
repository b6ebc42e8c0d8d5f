"""Checkpoint conversion (``keras-jepa convert``), official presets and offline loading.

* Synthetic checkpoints in the three official layouts (exact key names, prefixes and torch
  layouts, saved with ``torch.save`` next to optimizer state) convert through the command
  line; the encoder, the target encoder and the predictor then match float64 numpy
  re-implementations of the official modules (``tests/official_reference.py``) within
  1e-4, with every key accounted for.
* Tiny random Hugging Face ``VJEPA2Model`` / ``IJepaModel`` folders (``save_pretrained``,
  offline) convert without ``--arch``; encoder and predictor outputs match within 1e-4.
* Malformed checkpoints fail with the key named, and leave the model untouched.
* A built-in preset whose file cannot be downloaded fails with the URL, the file name and
  the local path; with the file placed there it loads offline.

Only the tests that write ``torch.save`` files or build Hugging Face models need torch
(they skip without it); the key accounting, malformed-dict, registry and YAML tests run
with numpy state dicts alone.
"""

import json
import os

import keras
import numpy as np
import pytest

from keras_jepa import cli
from keras_jepa.applications import IJEPA, VJEPA, VisionTransformer
from keras_jepa.checkpoints import converters
from keras_jepa.models.jepa import presets as jepa_presets
from keras_jepa.presets import registry as preset_registry
from keras_jepa.checkpoints import weight_porting as wp
from keras_jepa.backend.checkpoint_io import UnsafeCheckpointError
from keras_jepa.layers.token_ops import gather_tokens
from tests.official_reference import (
    PROBE_DIM,
    PROBE_HEADS,
    official_predictor_state,
    official_probe_forward,
    official_probe_state_dict,
    official_state,
    reference_forward,
    reference_predictor_forward,
)


def _torch():
    """torch, or a skip of the calling test: only the tests that write ``torch.save`` files
    or build Hugging Face models need it (the rest of this file runs without)."""
    return pytest.importorskip("torch")


ATOL = 1e-4


@pytest.fixture(autouse=True, scope="module")
def _fast_init(fast_jax_initializers):
    """Every model here is overwritten by a checkpoint, so its random init is never used."""
    yield

# Tiny versions of the three released layouts, as pretraining configs (the way a user
# converts a checkpoint trained with the official code): (arch JSON, prefix, state kwargs).
FAMILIES = {
    "ijepa": (
        dict(base="ijepa_tiny_cpu", image_size=16, patch_size=4, hidden_dim=48, depth=2,
             num_heads=4, mlp_ratio=2.0, predictor_dim=24, predictor_depth=1,
             predictor_heads=4),
        "module.",
        dict(grid=(1, 4, 4), mask_tokens=None, rope=False),
    ),
    "vjepa": (
        dict(base="vjepa_tiny_cpu", image_size=16, patch_size=8, num_frames=4,
             hidden_dim=48, depth=2, num_heads=4, mlp_ratio=2.0, predictor_dim=24,
             predictor_depth=1, predictor_heads=4, num_mask_tokens=2),
        "module.backbone.",
        dict(grid=(2, 2, 2), mask_tokens=2, rope=False),
    ),
    "vjepa2": (
        dict(base="vjepa2_vitl16", image_size=16, patch_size=8, num_frames=4,
             hidden_dim=48, depth=2, num_heads=2, mlp_ratio=2.0, predictor_dim=24,
             predictor_depth=1, predictor_heads=2, num_mask_tokens=3),
        "module.backbone.",
        dict(grid=(2, 2, 2), mask_tokens=3, rope=True),
    ),
}


def _checkpoint(family, seed=0):
    """An official-format checkpoint dict (numpy), with distinct encoder/target weights."""
    arch, prefix, spec = FAMILIES[family]
    rng = np.random.default_rng(seed)
    dim, depth = arch["hidden_dim"], arch["depth"]
    num_tokens = int(np.prod(spec["grid"]))
    tubelet = 2 if arch.get("num_frames") else None
    enc_kwargs = dict(dim=dim, depth=depth, mlp_hidden=int(dim * arch["mlp_ratio"]),
                      patch=arch["patch_size"], channels=3, num_tokens=num_tokens,
                      tubelet=tubelet, prefix=prefix)
    # V-JEPA 2 files still hold (unused) sin-cos tables: keep them to check they are dropped.
    ckpt = {
        "encoder": official_state(rng, **enc_kwargs),
        "target_encoder": official_state(rng, **enc_kwargs),
        "predictor": official_predictor_state(
            rng, dim, arch["predictor_dim"], arch["predictor_depth"],
            int(arch["predictor_dim"] * 4), num_tokens, mask_tokens=spec["mask_tokens"],
            prefix=prefix,
        ),
        "opt": {"state": {}, "param_groups": [{"lr": 1e-3, "weight_decay": 0.04}]},
        "scaler": None, "epoch": 7, "loss": 0.12, "batch_size": 8, "world_size": 1,
        "lr": 1e-3,
    }
    return ckpt


def _save_torch(ckpt, path):
    torch = _torch()

    def convert(value):
        if isinstance(value, np.ndarray):
            return torch.from_numpy(value)
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    torch.save(convert(ckpt), path)
    return path


def _strip(state):
    return wp.strip_prefixes(state)


_JAX_FNS = {}


def _run(layer, *args, **kwargs):
    """``layer(*args)`` as float64 numpy; compiled once per (layer config) under JAX."""
    if keras.backend.backend() != "jax":
        return keras.ops.convert_to_numpy(layer(*args, **kwargs)).astype(np.float64)
    import jax

    key = (type(layer).__name__, repr(sorted(layer.get_config().items())), repr(kwargs))
    if key not in _JAX_FNS:
        _JAX_FNS[key] = jax.jit(
            lambda tv, ntv, *a: layer.stateless_call(tv, ntv, *a, **kwargs)[0],
            compiler_options={"xla_backend_optimization_level": 0},
        )
    out = _JAX_FNS[key]([v.value for v in layer.trainable_variables],
                        [v.value for v in layer.non_trainable_variables], *args)
    return np.asarray(out, np.float64)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Each family's synthetic checkpoint converted once with the command line."""
    out = {}
    root = tmp_path_factory.mktemp("converted")
    for family, (arch, _, _) in FAMILIES.items():
        ckpt = _checkpoint(family)
        path = _save_torch(ckpt, str(root / f"{family}.pth.tar"))
        arch_file = root / f"{family}.json"
        arch_file.write_text(json.dumps(arch))
        preset = str(root / f"{family}_preset")
        code = cli.main(["convert", path, preset, "--arch", str(arch_file)])
        assert code == 0
        out[family] = (ckpt, preset)
    return out


def _input(arch, rng, batch=2):
    size = arch["image_size"]
    shape = ((batch, arch["num_frames"], size, size, 3) if arch.get("num_frames")
             else (batch, size, size, 3))
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_official_checkpoint_matches_official_modules(family, converted):
    arch, _, spec = FAMILIES[family]
    ckpt, preset = converted[family]
    cls = IJEPA if family == "ijepa" else VJEPA
    model = cls.from_preset(preset)
    assert model.feature_encoder == "target" and model.backbone is model.target_encoder
    rng = np.random.default_rng(1)
    x = _input(arch, rng)
    rope = True if spec["rope"] else None
    tubelet = 2 if arch.get("num_frames") else None
    heads, patch = arch["num_heads"], arch["patch_size"]
    worst = 0.0
    for part, module in (("encoder", model.encoder), ("target_encoder", model.target_encoder)):
        ref = reference_forward(_strip(ckpt[part]), x, patch, heads, tubelet=tubelet,
                                rope_tiled=rope)
        worst = max(worst, np.abs(_run(module, x) - ref).max())
    # Predictor on a random context/target split (different per sample, unsorted).
    n = int(np.prod(spec["grid"]))
    perm = np.stack([rng.permutation(n) for _ in range(2)])
    ctx_ids, tgt_ids = perm[:, : n // 2], perm[:, n // 2 :]
    context = rng.standard_normal((2, n // 2, arch["hidden_dim"])).astype(np.float32)
    mask_index = (spec["mask_tokens"] or 1) - 1
    ref = reference_predictor_forward(
        _strip(ckpt["predictor"]), context, ctx_ids, tgt_ids, spec["grid"],
        arch["predictor_heads"], mask_index=mask_index, rope_tiled=rope,
    )
    pred = _run(model.predictor, context, ctx_ids.astype("int32"), tgt_ids.astype("int32"),
                mask_index=mask_index)
    worst = max(worst, np.abs(pred - ref).max())
    print(f"\nPARITY {keras.backend.backend()} {family} checkpoint: max abs diff {worst:.2e}")
    assert worst <= ATOL


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_key_is_accounted_for(family):
    arch, _, spec = FAMILIES[family]
    ckpt = _checkpoint(family, seed=2)
    model = converters.build_model_from_arch(arch, num_mask_tokens=spec["mask_tokens"])
    reports = converters.load_checkpoint_weights(model, ckpt)
    for part in ("encoder", "target_encoder", "predictor"):
        keys = set(_strip(ckpt[part]))
        report = reports[part]
        assert set(report.loaded) | set(report.dropped) == keys
        assert report.missing == [] and report.unexpected == []
        expected_dropped = []
        if spec["rope"]:
            expected_dropped = ["predictor_pos_embed"] if part == "predictor" else ["pos_embed"]
        assert report.dropped == expected_dropped
    # Exporting gives back the same tensors under the same names.
    exported = converters.export_official_state(model)
    for part in ("encoder", "target_encoder", "predictor"):
        source = _strip(ckpt[part])
        for key, value in exported[part].items():
            np.testing.assert_array_equal(value, source[key])


def test_backbone_from_full_preset_picks_the_encoder(converted):
    ckpt, preset = converted["vjepa2"]
    arch = FAMILIES["vjepa2"][0]
    x = _input(arch, np.random.default_rng(3))
    for choice, part in (("target", "target_encoder"), ("context", "encoder")):
        backbone = VisionTransformer.from_preset(preset, encoder=choice)
        assert type(backbone) is VisionTransformer and backbone.trainable
        ref = reference_forward(_strip(ckpt[part]), x, 8, 2, tubelet=2, rope_tiled=True)
        assert np.abs(_run(backbone, x) - ref).max() <= ATOL


def test_encoder_only_conversion(converted, tmp_path):
    ckpt, _ = converted["ijepa"]
    arch = FAMILIES["ijepa"][0]
    model, reports = converters.convert_checkpoint(
        ckpt, str(tmp_path / "bb"), arch=arch, encoder="context", encoder_only=True,
        verbose=False,
    )
    assert type(model) is VisionTransformer and list(reports) == ["encoder"]
    loaded = VisionTransformer.from_preset(str(tmp_path / "bb"))
    np.testing.assert_array_equal(
        wp.export_encoder_state_dict(loaded)["blocks.0.attn.qkv.weight"],
        _strip(ckpt["encoder"])["blocks.0.attn.qkv.weight"],
    )


# ---------------------------------------------------------------------------------------
# Malformed checkpoints
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model():
    arch, _, spec = FAMILIES["vjepa"]
    return converters.build_model_from_arch(arch, num_mask_tokens=spec["mask_tokens"])


def _snapshot(model):
    return [np.array(keras.ops.convert_to_numpy(w)) for w in model.weights]


def test_missing_key_names_it_and_changes_nothing(small_model):
    ckpt = _checkpoint("vjepa", seed=4)
    del ckpt["predictor"]["module.backbone.predictor_blocks.0.mlp.fc2.bias"]
    before = _snapshot(small_model)
    with pytest.raises(ValueError, match=r"\[predictor\].*predictor_blocks\.0\.mlp\.fc2\.bias"):
        converters.load_checkpoint_weights(small_model, ckpt)
    after = _snapshot(small_model)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_wrong_shape_names_key_and_both_shapes(small_model):
    ckpt = _checkpoint("vjepa", seed=5)
    ckpt["target_encoder"]["module.backbone.blocks.1.mlp.fc1.weight"] = np.zeros(
        (95, 48), np.float32)
    with pytest.raises(ValueError) as info:
        converters.load_checkpoint_weights(small_model, ckpt)
    text = str(info.value)
    assert "target_encoder" in text and "blocks.1.mlp.fc1.weight" in text
    assert "(95, 48)" in text and "(96, 48)" in text


def test_extra_key_strict_and_not_strict(small_model):
    ckpt = _checkpoint("vjepa", seed=6)
    ckpt["encoder"]["module.backbone.blocks.0.attn.extra_scale"] = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="unexpected keys.*attn.extra_scale"):
        converters.load_checkpoint_weights(small_model, ckpt)
    reports = converters.load_checkpoint_weights(small_model, ckpt, strict=False)
    assert reports["encoder"].unexpected == ["blocks.0.attn.extra_scale"]


def test_mask_token_count_mismatch_is_explained(small_model):
    ckpt = _checkpoint("vjepa2", seed=7)  # 3 mask tokens, the model has 2 (and RoPE)
    with pytest.raises(ValueError):
        converters.load_checkpoint_weights(small_model, ckpt)
    arch, _, _ = FAMILIES["vjepa"]
    ckpt = _checkpoint("vjepa", seed=7)
    ckpt["predictor"]["module.backbone.mask_tokens.2"] = np.zeros((1, 1, 24), np.float32)
    with pytest.raises(ValueError, match="3 mask tokens.*num_mask_tokens=3"):
        converters.load_checkpoint_weights(small_model, ckpt)


class _NotATensor:
    """Any object a checkpoint has no business holding."""

    def __init__(self):
        self.payload = "arbitrary object"


def test_pickled_object_is_refused(tmp_path):
    torch = _torch()
    path = str(tmp_path / "evil.pth.tar")
    torch.save({"encoder": {"module.norm.weight": torch.ones(2)}, "extra": _NotATensor()},
               path)
    with pytest.raises(UnsafeCheckpointError, match="weights_only=True"):
        converters.read_source(path)
    assert cli.main(["convert", path, str(tmp_path / "out"), "--arch", "vjepa_tiny_cpu"]) == 2
    assert not os.path.exists(tmp_path / "out")


def test_probe_file_is_redirected(tmp_path):
    path = _save_torch({"classifier": {"module.linear.weight": np.zeros((2, 2), np.float32)}},
                       str(tmp_path / "probe.pth.tar"))
    with pytest.raises(ValueError, match="attentive-probe checkpoint"):
        converters.read_source(path)


# ---------------------------------------------------------------------------------------
# Hugging Face folders (offline, random weights)
# ---------------------------------------------------------------------------------------


def _randomize(module, seed):
    torch = _torch()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=gen) * 0.2
            if "norm" in name and name.endswith("weight"):
                noise = noise + 1.0
            param.copy_(noise)
    return module.eval()


def test_hf_vjepa2_folder_encoder_and_predictor(tmp_path):
    torch = _torch()
    transformers = pytest.importorskip("transformers")
    config = transformers.VJEPA2Config(
        hidden_size=48, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2.0,
        crop_size=16, patch_size=8, frames_per_clip=4, tubelet_size=2,
        pred_hidden_size=24, pred_num_attention_heads=2, pred_num_hidden_layers=1,
        pred_num_mask_tokens=3,
    )
    hf = _randomize(transformers.VJEPA2Model(config), 0)
    hf.save_pretrained(str(tmp_path / "hf"))
    assert cli.main(["convert", str(tmp_path / "hf"), str(tmp_path / "preset")]) == 0
    model = VJEPA.from_preset(str(tmp_path / "preset"))
    assert model.predictor.num_mask_tokens == 3
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 16, 16, 3)).astype(np.float32)
    ctx = np.stack([rng.permutation(8)[:5] for _ in range(2)]).astype("int64")
    tgt = np.stack([np.setdiff1d(np.arange(8), c) for c in ctx]).astype("int64")
    with torch.no_grad():
        out = hf(torch.from_numpy(x.transpose(0, 1, 4, 2, 3)),
                 context_mask=[torch.from_numpy(ctx)], target_mask=[torch.from_numpy(tgt)])
    features = _run(model.encoder, x)
    diff_enc = np.abs(features - out.last_hidden_state.numpy()).max()
    # Hugging Face feeds the predictor the full-clip features gathered at the context ids,
    # and uses mask token 1 by default.
    context = keras.ops.convert_to_numpy(
        gather_tokens(features.astype(np.float32), ctx.astype("int32")))
    pred = _run(model.predictor, context, ctx.astype("int32"), tgt.astype("int32"),
                mask_index=1)
    diff_pred = np.abs(pred - out.predictor_output.last_hidden_state.numpy()).max()
    print(f"\nPARITY {keras.backend.backend()} HF V-JEPA 2 folder: encoder {diff_enc:.2e}, "
          f"predictor {diff_pred:.2e}")
    assert diff_enc <= ATOL and diff_pred <= ATOL


def test_hf_ijepa_safetensors_encoder_only(tmp_path, capsys):
    torch = _torch()
    transformers = pytest.importorskip("transformers")
    config = transformers.IJepaConfig(
        hidden_size=48, num_hidden_layers=1, num_attention_heads=4, intermediate_size=96,
        image_size=16, patch_size=4, layer_norm_eps=1e-6,
    )
    hf = _randomize(transformers.IJepaModel(config), 1)
    hf.save_pretrained(str(tmp_path / "hf"))
    model, _ = converters.convert_checkpoint(str(tmp_path / "hf" / "model.safetensors"))
    assert "no predictor" in capsys.readouterr().out
    x = np.random.default_rng(1).standard_normal((2, 16, 16, 3)).astype(np.float32)
    with torch.no_grad():
        ref = hf(torch.from_numpy(x.transpose(0, 3, 1, 2))).last_hidden_state.numpy()
    # Hugging Face holds the context encoder only: both encoders get it.
    for module in (model.encoder, model.target_encoder):
        assert np.abs(_run(module, x) - ref).max() <= ATOL


# ---------------------------------------------------------------------------------------
# Built-in presets: registry, download failure, offline loading
# ---------------------------------------------------------------------------------------

RELEASED_FILES = [
    "IN1K-vit.h.14-300e.pth.tar", "IN1K-vit.h.16-448px-300e.pth.tar",
    "IN22K-vit.h.14-900e.pth.tar", "IN22K-vit.g.16-600e.pth.tar",
    "vitl16/vitl16.pth.tar", "vith16/vith16.pth.tar", "vith16-384/vith16-384.pth.tar",
    "vitl.pt", "vith.pt", "vitg.pt", "vitg-384.pt", "vjepa2-ac-vitg.pt",
    "evals/ssv2-vitl-16x2x3.pt", "evals/diving48-vitl-256.pt", "evals/ek100-vitl-256.pt",
    "evals/ssv2-vitg-384-64x2x3.pt", "evals/diving48-vitg-384-32x4x3.pt",
    "evals/ek100-vitg-384.pt",
] + [f"{folder}/{task}-probe.pth.tar" for folder in ("vitl16", "vith16", "vith16-384")
     for task in ("k400", "ssv2", "in1k", "places", "inat")]


def test_every_released_checkpoint_has_an_entry():
    sources = [e["source"] for e in preset_registry.PRESETS.values() if e.get("source")]
    for file in RELEASED_FILES:
        assert sum(s.endswith("/" + file) for s in sources) == 1, file
    for name, entry in jepa_presets.OFFICIAL_PRESETS.items():
        kind, config = converters.resolve_arch(name)
        assert kind == "pretrain" and entry["resolution"] == config.image_size
        assert entry["preprocessing"] and entry["size"]
    assert jepa_presets.OFFICIAL_PRESETS["vjepa2_vitg16_384"]["encoder_parameters"] > 1e9


def _tiny_entry(source):
    arch, _, _ = FAMILIES["vjepa2"]
    overrides = {k: v for k, v in arch.items() if k != "base"}
    return {
        "class": "VJEPA", "family": "vjepa2", "pretrain_config": "vjepa2_vitl16",
        "overrides": overrides, "source": source, "file": "tiny-vjepa2.pt",
        "description": "tiny test entry",
    }


def test_offline_preset_error_then_local_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    url = "http://127.0.0.1:9/vjepa2/tiny-vjepa2.pt"  # nothing listens on port 9
    monkeypatch.setitem(preset_registry.PRESETS, "tiny_vjepa2_test", _tiny_entry(url))
    expected_path = os.path.join(str(tmp_path / "home"), "keras_jepa", "checkpoints",
                                 "tiny-vjepa2.pt")
    with pytest.raises(OSError) as info:
        VJEPA.from_preset("tiny_vjepa2_test")
    text = str(info.value)
    assert url in text and "tiny-vjepa2.pt" in text and expected_path in text
    # Put the file where the message says: it now loads without any network.
    ckpt = _checkpoint("vjepa2", seed=9)
    _save_torch(ckpt, expected_path)
    model = VJEPA.from_preset("tiny_vjepa2_test", encoder="context")
    assert model.backbone is model.encoder
    x = _input(FAMILIES["vjepa2"][0], np.random.default_rng(4))
    ref = reference_forward(_strip(ckpt["encoder"]), x, 8, 2, tubelet=2, rope_tiled=True)
    assert np.abs(_run(model.encoder, x) - ref).max() <= ATOL
    # The converted preset is cached: the checkpoint is no longer needed.
    os.remove(expected_path)
    again = VisionTransformer.from_preset("tiny_vjepa2_test")
    ref_t = reference_forward(_strip(ckpt["target_encoder"]), x, 8, 2, tubelet=2,
                              rope_tiled=True)
    assert np.abs(_run(again, x) - ref_t).max() <= ATOL


# ---------------------------------------------------------------------------------------
# Attentive-probe files
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["vjepa", "vjepa2"])
def test_probe_file_matches_official_forward(variant, tmp_path):
    rng = np.random.default_rng(11)
    depth = 1 if variant == "vjepa" else 4
    if variant == "vjepa":  # V-JEPA 1: one state dict, with the unused xattn.proj
        state = official_probe_state_dict("vjepa", depth, rng)
        ckpt = {"classifier": state, "opt": {"param_groups": []}, "epoch": 20}
    else:  # V-JEPA 2: a list of heads trained over an lr/wd grid
        states = [official_probe_state_dict("vjepa2", depth, rng) for _ in range(3)]
        ckpt = {"classifiers": states, "epoch": 20}
        state = states[2]
    path = _save_torch(ckpt, str(tmp_path / f"{variant}-probe.pth.tar"))
    index = 2 if variant == "vjepa2" else 0
    out = str(tmp_path / "probe_preset")
    assert cli.main(["convert", path, out, "--probe", "--num-heads", str(PROBE_HEADS),
                     "--index", str(index)]) == 0
    from keras_jepa.evaluation.attentive_probe import AttentiveClassifier
    from keras_jepa.presets.storage import load_preset

    probe = load_preset(AttentiveClassifier, out)
    assert probe.variant == variant and probe.depth == depth
    x = rng.standard_normal((3, 9, PROBE_DIM)).astype(np.float32)
    diff = np.abs(_run(probe, x) - official_probe_forward(state, x, variant, depth)).max()
    print(f"\nPARITY {keras.backend.backend()} {variant} probe file: max abs diff {diff:.2e}")
    assert diff <= ATOL
    with pytest.raises(ValueError, match="holds 3 classifiers"):
        if variant == "vjepa2":
            converters.load_probe_checkpoint(path, num_heads=PROBE_HEADS, index=3)
        else:
            raise ValueError("holds 3 classifiers")  # V-JEPA 1 files hold one head


def test_hf_classifier_folder_matches_hf_pooler(tmp_path):
    torch = _torch()
    transformers = pytest.importorskip("transformers")
    config = transformers.VJEPA2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=4, crop_size=16,
        patch_size=8, frames_per_clip=2, pred_hidden_size=16, pred_num_hidden_layers=1,
        pred_num_attention_heads=2, num_pooler_layers=2, num_labels=6,
    )
    hf = _randomize(transformers.VJEPA2ForVideoClassification(config), 3)
    hf.save_pretrained(str(tmp_path / "hf"))
    probe = converters.load_probe_checkpoint(str(tmp_path / "hf"), num_heads=4)
    assert probe.variant == "vjepa2" and probe.depth == 3 and probe.num_classes == 6
    tokens = np.random.default_rng(5).standard_normal((2, 7, 32)).astype(np.float32)
    with torch.no_grad():
        ref = hf.classifier(hf.pooler(torch.from_numpy(tokens))).numpy()
    assert np.abs(_run(probe, tokens) - ref).max() <= ATOL


def test_official_yaml_configs_give_the_registry_architectures(tmp_path):
    """Excerpts of the released training configs resolve to the registry's models."""
    yaml = pytest.importorskip("yaml")
    ijepa = {"meta": {"model_name": "vit_huge", "pred_depth": 12, "pred_emb_dim": 384},
             "data": {"crop_size": 224}, "mask": {"patch_size": 14},
             "optimization": {"ema": [0.996, 1.0], "epochs": 300, "lr": 0.001}}
    vjepa = {"data": {"num_frames": 16, "tubelet_size": 2, "crop_size": 384,
                      "patch_size": 16},
             "mask": [{"num_blocks": 8}, {"num_blocks": 2}],
             "model": {"model_name": "vit_huge", "pred_depth": 12, "pred_embed_dim": 384,
                       "uniform_power": True, "use_mask_tokens": True}}
    vjepa2 = {"data": {"crop_size": 256, "patch_size": 16, "dataset_fpcs": [16, 16, 16],
                       "tubelet_size": 2},
              "mask": [{"num_blocks": 8}, {"num_blocks": 2}],
              "model": {"model_name": "vit_giant_xformers", "pred_depth": 12,
                        "pred_embed_dim": 384, "pred_num_heads": 12, "use_rope": True,
                        "uniform_power": True}}
    fields = ("hidden_dim", "depth", "num_heads", "mlp_ratio", "image_size", "patch_size",
              "position_embedding", "predictor_dim", "predictor_depth", "predictor_heads")
    for official, name in ((ijepa, "ijepa_vith14_in1k_224"), (vjepa, "vjepa_vith16_384"),
                           (vjepa2, "vjepa2_vitg16_256")):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(official))
        _, ours = converters.resolve_arch(str(path))
        _, registry = converters.resolve_arch(name)
        assert [getattr(ours, f) for f in fields] == [getattr(registry, f) for f in fields]
    # The V-JEPA 2 training run keeps one mask token per (mask config, clip length).
    assert converters.resolve_arch(str(tmp_path / "vjepa2_vitg16_256.yaml"))[1].num_mask_tokens == 6


def test_encoder_arch_with_full_checkpoint_reads_the_predictor_size(tmp_path):
    """``--arch <backbone preset or encoder config>``: the predictor comes from the file."""
    ckpt = _checkpoint("ijepa", seed=12)
    arch, _, _ = FAMILIES["ijepa"]
    encoder_config = {"class": "VisionTransformer", "config": dict(
        image_size=16, patch_size=4, hidden_dim=48, depth=2, num_heads=4, mlp_ratio=2.0,
        sincos_order="wh")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(preset_registry.PRESETS, "tiny_vit_test", encoder_config)
        model, reports = converters.convert_checkpoint(ckpt, arch="tiny_vit_test",
                                                       verbose=False)
    assert type(model) is IJEPA and reports["predictor"].missing == []
    assert (model.predictor.hidden_dim, model.predictor.depth, model.predictor.num_heads) == (
        arch["predictor_dim"], arch["predictor_depth"], 4)


@pytest.mark.parametrize("family", ["vjepa", "vjepa2"])
def test_mask_token_follows_the_official_rule_per_mask_config(family, converted):
    """V-JEPA picks mask token ``i`` for mask config ``i``; V-JEPA 2 picks it by clip-length
    group, so with one clip length both configs use token 0 (``PredictorMultiSeqWrapper``)."""
    arch, _, spec = FAMILIES[family]
    ckpt, preset = converted[family]
    model = VJEPA.from_preset(preset)
    assert model.mask_token_by == ("clip_length" if spec["rope"] else "config")
    rng = np.random.default_rng(3)
    x = _input(arch, rng)
    n = int(np.prod(spec["grid"]))
    # Two mask configs of different sizes, each row its own (unsorted) split.
    splits = [np.stack([rng.permutation(n) for _ in range(2)]) for _ in range(2)]
    contexts = [splits[0][:, :5], splits[1][:, :3]]
    targets = [splits[0][:, 5:], splits[1][:, 3:]]
    out = model({"videos": x, "context_indices": [c.astype("int32") for c in contexts],
                 "target_indices": [t.astype("int32") for t in targets]})
    rope = True if spec["rope"] else None
    worst, other_rule = 0.0, 0.0
    for i, (ctx_ids, tgt_ids) in enumerate(zip(contexts, targets)):
        context = reference_forward(_strip(ckpt["encoder"]), x, arch["patch_size"],
                                    arch["num_heads"], tubelet=2, token_indices=ctx_ids,
                                    rope_tiled=rope)
        official = 0 if spec["rope"] else i
        pred = keras.ops.convert_to_numpy(out["predictions"][i]).astype(np.float64)
        for index in (official, 1 - official):
            ref = reference_predictor_forward(
                _strip(ckpt["predictor"]), context, ctx_ids, tgt_ids, spec["grid"],
                arch["predictor_heads"], mask_index=index, rope_tiled=rope)
            diff = np.abs(pred - ref).max()
            if index == official:
                worst = max(worst, diff)
            else:
                other_rule = max(other_rule, diff)
    print(f"\nPARITY {keras.backend.backend()} {family} mask tokens per config: max abs "
          f"diff {worst:.2e} (other rule: {other_rule:.2e})")
    assert worst <= ATOL
    assert other_rule > 100 * ATOL  # the other rule's token gives other outputs
