"""V-JEPA 2-AC checkpoint conversion: an official-format synthetic checkpoint (tiny sizes,
official key names, ``module.backbone.`` prefixes, a stored ``pos_embed``, optimizer
state) loads into ``VJEPA2AC`` and matches float64 re-implementations of the official
encoder and AC predictor within 1e-4; the built-in preset converts on first use; malformed
checkpoints fail naming the key."""

import os

import numpy as np
import pytest

from keras_jepa.checkpoints import ac as ac_convert
from keras_jepa.checkpoints import convert_release, release_converter
from keras_jepa.checkpoints.converters import convert_checkpoint
from keras_jepa.checkpoints import weight_porting as wp
from keras_jepa.models.ac.model import ACPredictor, VJEPA2AC
from keras_jepa.presets import registry
from tests.models.ac.ac_reference import (
    layer_norm_plain,
    official_ac_predictor_state,
    reference_ac_forward,
)
from tests.official_reference import official_state, reference_forward
from tests.test_case import to_numpy

ATOL = 1e-4
DIM, PRED, HEADS, ACTION = 48, 32, 2, 4
SPEC = {
    "encoder": dict(image_size=16, patch_size=8, num_frames=4, tubelet_size=2,
                    hidden_dim=DIM, depth=2, num_heads=2, mlp_ratio=2.0,
                    position_embedding="rope", name="encoder"),
    "predictor": dict(grid_size=[2, 2], embed_dim=DIM, hidden_dim=PRED, depth=2,
                      num_heads=HEADS, mlp_ratio=4.0, action_dim=ACTION, max_steps=4),
    "model": dict(auto_steps=2),
}


@pytest.fixture(autouse=True, scope="module")
def _fast_init(fast_jax_initializers):
    yield


def _checkpoint(seed=0):
    rng = np.random.default_rng(seed)
    prefix = "module.backbone."
    enc = official_state(rng, DIM, 2, 2 * DIM, 8, 3, 8, tubelet=2, prefix=prefix)
    return {
        "encoder": enc,
        "predictor": official_ac_predictor_state(rng, DIM, PRED, 2, ACTION, prefix=prefix),
        "opt": {"state": {}, "param_groups": [{"lr": 4.25e-4}]}, "epoch": 315,
    }


def _strip(state):
    return wp.strip_prefixes(state)


def _inputs(seed, steps=3):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 1, (2, steps * 4, DIM)).astype("float32"),
            rng.normal(0, 1, (2, steps, ACTION)).astype("float32"),
            rng.normal(0, 1, (2, steps, ACTION)).astype("float32"))


def _check_parity(model, ckpt):
    tokens, actions, states = _inputs(1)
    ref = reference_ac_forward(_strip(ckpt["predictor"]), tokens, actions, states, (2, 2),
                               HEADS)
    assert np.abs(to_numpy(model.predictor(tokens, actions, states)) - ref).max() <= ATOL
    frames = np.random.default_rng(2).uniform(0, 1, (1, 2, 16, 16, 3)).astype("float32")
    feats = to_numpy(model.encode(frames))
    for t in range(2):
        clip = np.repeat(frames[:, t:t + 1], 2, axis=1)
        enc = reference_forward(_strip(ckpt["encoder"]), clip, 8, 2, tubelet=2,
                                rope_tiled=True)
        assert np.abs(feats[:, 4 * t:4 * t + 4] - layer_norm_plain(enc)).max() <= ATOL


@pytest.fixture(scope="module")
def converted():
    ckpt = _checkpoint()
    model, reports = ac_convert.convert_ac_checkpoint(ckpt, arch=SPEC, verbose=False)
    return ckpt, model, reports


def test_official_checkpoint_matches_official_forward(converted):
    ckpt, model, reports = converted
    assert reports["encoder"].dropped == ["pos_embed"]
    assert reports["encoder"].missing == [] and reports["encoder"].unexpected == []
    assert sorted(reports["predictor"].loaded) == sorted(_strip(ckpt["predictor"]))
    _check_parity(model, ckpt)
    # Export gives back the official state dict.
    exported = ac_convert.export_ac_state(model)["predictor"]
    for key, value in _strip(ckpt["predictor"]).items():
        np.testing.assert_array_equal(exported[key], value)


def test_extrinsics_and_non_square_grid_match_official_forward():
    rng = np.random.default_rng(5)
    state = official_ac_predictor_state(rng, DIM, PRED, 1, ACTION)
    pred = ACPredictor(grid_size=(2, 3), embed_dim=DIM, hidden_dim=PRED, depth=1,
                       num_heads=HEADS, action_dim=ACTION, max_steps=3, use_extrinsics=True)
    pred.build()
    wp.assign_weights(ac_convert.ac_predictor_entries(pred), state)
    tokens = rng.normal(0, 1, (1, 2 * 6, DIM)).astype("float32")
    a, s = (rng.normal(0, 1, (1, 2, ACTION)).astype("float32") for _ in range(2))
    e = rng.normal(0, 1, (1, 2, ACTION - 1)).astype("float32")
    ref = reference_ac_forward(state, tokens, a, s, (2, 3), HEADS, extrinsics=e)
    assert np.abs(to_numpy(pred(tokens, a, s, e)) - ref).max() <= ATOL


def test_malformed_checkpoints_name_the_key(converted):
    _, model, _ = converted
    before = to_numpy(model.predictor.action_encoder.kernel)
    bad = _checkpoint(seed=1)
    bad["predictor"]["module.backbone.action_encoder.weight"] = np.zeros((PRED, 3), "float32")
    with pytest.raises(ValueError, match="action_encoder.weight"):
        ac_convert.load_ac_checkpoint(model, bad)
    np.testing.assert_array_equal(before, to_numpy(model.predictor.action_encoder.kernel))
    missing = _checkpoint(seed=1)
    missing["predictor"].pop("module.backbone.predictor_norm.bias")
    with pytest.raises(ValueError, match="predictor_norm.bias"):
        ac_convert.load_ac_checkpoint(model, missing)
    not_ac = _checkpoint(seed=1)
    not_ac["predictor"] = {k: v for k, v in not_ac["predictor"].items()
                           if "action_encoder" not in k}
    with pytest.raises(ValueError, match="not action-conditioned"):
        ac_convert.load_ac_checkpoint(model, not_ac)
    assert ac_convert.ac_predictor_config(_checkpoint()["predictor"]) == dict(
        embed_dim=DIM, hidden_dim=PRED, depth=2, num_heads=16, mlp_ratio=4.0,
        action_dim=ACTION)


def test_released_entry_describes_the_checkpoint():
    entry = registry.PRESETS["vjepa2_ac_vitg16_256"]
    assert entry["source"] == "https://dl.fbaipublicfiles.com/vjepa2/vjepa2-ac-vitg.pt"
    assert entry["class"] == "VJEPA2AC" and entry["predictor_parameters"] == 305_220_992
    # The predictor of the entry's architecture has exactly the stated parameter count.
    shapes = wp.official_shapes(ac_convert.ac_predictor_entries(_Lazy(entry["ac"]["predictor"])))
    assert sum(int(np.prod(s)) for s in shapes.values()) == 305_220_992


class _Lazy:
    """Variable shapes of a predictor without allocating them (the real one is 1.2 GB)."""

    def __init__(self, cfg):
        width, embed, act = cfg["hidden_dim"], cfg["embed_dim"], cfg["action_dim"]
        hidden = int(width * cfg["mlp_ratio"])
        dense = lambda i, o: _Obj(kernel=_V((i, o)), bias=_V((o,)))  # noqa: E731
        norm = lambda: _Obj(gamma=_V((width,)), beta=_V((width,)))  # noqa: E731
        self.predictor_embed = dense(embed, width)
        self.action_encoder = dense(act, width)
        self.state_encoder = dense(act, width)
        self.extrinsics_encoder = dense(act - 1, width)
        self.predictor_proj = dense(width, embed)
        self.predictor_norm = norm()
        self.predictor_blocks = [
            _Obj(norm1=norm(), norm2=norm(),
                 attn=_Obj(qkv=dense(width, 3 * width), proj=dense(width, width)),
                 mlp=_Obj(fc1=dense(width, hidden), fc2=dense(hidden, width)))
            for _ in range(cfg["depth"])
        ]


class _Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class _V:
    def __init__(self, shape):
        self.shape = shape


def test_preset_converts_on_first_use(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(registry, "_CONVERTER", [convert_release])
    entry = {**registry.PRESETS["vjepa2_ac_vitg16_256"], "ac": SPEC,
             "source": "http://127.0.0.1:9/vjepa2/tiny-ac.pt", "file": "tiny-ac.pt"}
    monkeypatch.setitem(registry.PRESETS, "tiny_ac_test", entry)
    with pytest.raises(OSError, match="tiny-ac.pt"):
        VJEPA2AC.from_preset("tiny_ac_test")
    ckpt = _checkpoint(seed=3)
    path = os.path.join(str(tmp_path / "home"), "keras_jepa", "checkpoints", "tiny-ac.pt")
    os.makedirs(os.path.dirname(path), exist_ok=True)

    def as_torch(value):
        if isinstance(value, np.ndarray):
            return torch.from_numpy(value)
        if isinstance(value, dict):
            return {k: as_torch(v) for k, v in value.items()}
        return value

    torch.save(as_torch(ckpt), path)
    model = VJEPA2AC.from_preset("tiny_ac_test")
    _check_parity(model, ckpt)
    os.remove(path)  # cached: the checkpoint is no longer needed
    again = VJEPA2AC.from_preset("tiny_ac_test")
    np.testing.assert_array_equal(to_numpy(again.predictor.predictor_proj.kernel),
                                  to_numpy(model.predictor.predictor_proj.kernel))
    # Every entry gets its format's converter.
    assert release_converter(entry) is ac_convert.convert_ac_checkpoint
    assert release_converter(registry.PRESETS["vjepa2_vitl16_256"]) is convert_checkpoint
