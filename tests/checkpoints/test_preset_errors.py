"""Preset and checkpoint loading never gives a silent wrong result; errors name the file
and the cause.

* A preset folder without ``model.weights.h5`` fails (unless ``load_weights=False``);
  architecture-only built-in presets still build.
* ``dtype="mixed_bfloat16"`` reaches the encoder, target encoder and predictor of a JEPA
  preset, and the weights are the saved ones.
* An empty / non-JSON / non-object ``config.json``, an empty / truncated / non-HDF5
  ``model.weights.h5`` and weights of another architecture fail with ``ValueError`` naming
  the file.
* ``convert_checkpoint`` and the probe loader on an empty file, a text file, a truncated
  zip, a truncated safetensors file or a checkpoint holding a list name the file and the
  cause.
* ``download_checkpoint`` (network replaced by a fake ``urlopen``) keeps nothing from a
  short, interrupted or corrupt download and says how many bytes came; a complete one is
  kept. A corrupt file already in the cache is named, with the advice to delete it.

Tiny models only. Torch is needed only to write a pickled list: those tests skip
themselves when it is missing.
"""

import io
import os
import urllib.request
import zipfile

import keras
import numpy as np
import pytest

from keras_jepa import cli
from keras_jepa.checkpoints import converters
from keras_jepa.presets import registry as preset_registry
from keras_jepa.backend.checkpoint_io import checkpoint_format, read_checkpoint
from keras_jepa.models import IJEPA, VJEPA, VisionTransformer
from tests.test_case import run_preset_test


def _vit(depth=1, width=32, **kwargs):
    return VisionTransformer(image_size=32, patch_size=16, hidden_dim=width, depth=depth,
                             num_heads=2, **kwargs)


def _weights(model):
    return [keras.ops.convert_to_numpy(v) for v in model.weights]


def _assert_same_weights(a, b):
    wa, wb = _weights(a), _weights(b)
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)


@pytest.fixture
def vit_preset(tmp_path):
    model = _vit()
    path = str(tmp_path / "vit")
    model.save_to_preset(path)
    return model, path


# ---------------------------------------------------------------------------------------
# 1. Missing weights
# ---------------------------------------------------------------------------------------


def test_preset_without_weights_fails_naming_the_file(vit_preset):
    model, path = vit_preset
    weights = os.path.join(path, "model.weights.h5")
    os.remove(weights)
    with pytest.raises(FileNotFoundError) as info:
        VisionTransformer.from_preset(path)
    text = str(info.value)
    assert os.path.abspath(weights) in text
    assert "load_weights=False" in text and "random weights" in text
    # Architecture only, on request.
    built = VisionTransformer.from_preset(path, load_weights=False)
    assert built.get_config()["depth"] == 1 and built.hidden_dim == 32


def test_jepa_preset_without_weights_fails_for_model_and_backbone(tmp_path):
    model = IJEPA(_vit(), predictor_dim=16, predictor_depth=1, ema_steps=10)
    path = str(tmp_path / "ijepa")
    model.save_to_preset(path)
    weights = os.path.join(path, "model.weights.h5")
    os.remove(weights)
    for cls in (IJEPA, VisionTransformer):
        with pytest.raises(FileNotFoundError, match="load_weights=False") as info:
            cls.from_preset(path)
        assert os.path.abspath(weights) in str(info.value)
    assert isinstance(IJEPA.from_preset(path, load_weights=False), IJEPA)


def test_architecture_only_builtin_preset_still_builds(monkeypatch):
    entry = {"class": "VisionTransformer", "description": "tiny, architecture only",
             "config": dict(image_size=32, patch_size=16, hidden_dim=32, depth=1,
                            num_heads=2)}
    monkeypatch.setitem(preset_registry.PRESETS, "tiny_arch_only_test", entry)
    model = VisionTransformer.from_preset("tiny_arch_only_test")
    assert model.hidden_dim == 32 and model.depth == 1


# ---------------------------------------------------------------------------------------
# 2. dtype override reaches every sub-model
# ---------------------------------------------------------------------------------------


def _jepa(kind):
    if kind == "ijepa":
        return IJEPA(_vit(), predictor_dim=16, predictor_depth=1, ema_steps=10)
    encoder = VisionTransformer(image_size=32, patch_size=16, num_frames=2, tubelet_size=2,
                                hidden_dim=32, depth=1, num_heads=2)
    return VJEPA(encoder, predictor_dim=16, predictor_depth=1, predictor_heads=2,
                 ema_steps=10)


@pytest.mark.parametrize("kind", ["ijepa", "vjepa"])
def test_dtype_override_reaches_encoders_and_predictor(tmp_path, kind):
    model = _jepa(kind)
    cls = IJEPA if kind == "ijepa" else VJEPA
    loaded = run_preset_test(model, tmp_path / kind, call=None, cls=cls, dtype="mixed_bfloat16")
    for part in (loaded.encoder, loaded.target_encoder, loaded.predictor):
        policies = {layer.dtype_policy.name for layer in part._flatten_layers()}
        assert policies == {"mixed_bfloat16"}, (part.name, policies)
    assert loaded.encoder.blocks[0].attn.qkv.compute_dtype == "bfloat16"
    assert loaded.predictor.compute_dtype == "bfloat16"
    _assert_same_weights(model, loaded)  # variables stay float32: exactly the saved ones
    shape = (1, 32, 32, 3) if kind == "ijepa" else (1, 2, 32, 32, 3)
    out = loaded.encoder(np.ones(shape, "float32"))
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"


# ---------------------------------------------------------------------------------------
# 3. config.json
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("content, cause", [
    ("", "is empty"),
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "holds a JSON list; expected a JSON object"),
    ('{"model_type": "ijepa"}', "is not a keras_jepa preset config"),
])
def test_bad_config_json(vit_preset, content, cause):
    _, path = vit_preset
    config = os.path.join(path, "config.json")
    with open(config, "w") as f:
        f.write(content)
    with pytest.raises(ValueError) as info:
        VisionTransformer.from_preset(path)
    assert config in str(info.value) and cause in str(info.value)


# ---------------------------------------------------------------------------------------
# 4. model.weights.h5 unreadable
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage, cause", [
    ("empty", "is empty (0 bytes)"),
    ("truncate", "is truncated"),
    ("text", "is not an HDF5 file"),
])
def test_bad_weights_file(vit_preset, damage, cause):
    _, path = vit_preset
    weights = os.path.join(path, "model.weights.h5")
    with open(weights, "rb") as f:
        data = f.read()
    content = {"empty": b"", "truncate": data[: len(data) // 2],
               "text": b"<html>not found</html>"}[damage]
    with open(weights, "wb") as f:
        f.write(content)
    with pytest.raises(ValueError) as info:
        VisionTransformer.from_preset(path)
    assert weights in str(info.value) and cause in str(info.value)


# ---------------------------------------------------------------------------------------
# 5. weights of another architecture
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("config_depth, weights_depth", [(2, 1), (1, 2)])
def test_weights_of_another_architecture(tmp_path, config_depth, weights_depth):
    _vit(depth=config_depth).save_to_preset(str(tmp_path / "config"))
    _vit(depth=weights_depth).save_to_preset(str(tmp_path / "weights"))
    weights = str(tmp_path / "config" / "model.weights.h5")
    os.replace(str(tmp_path / "weights" / "model.weights.h5"), weights)
    with pytest.raises(ValueError) as info:
        VisionTransformer.from_preset(str(tmp_path / "config"))
    text = str(info.value)
    assert weights in text
    assert "do not match the architecture in" in text and "config.json" in text
    if config_depth > weights_depth:
        assert "Keras:" in text and "expected" in text  # Keras's own message kept
    else:  # Keras alone would load the first block and ignore the second
        assert "the file holds" in text


# ---------------------------------------------------------------------------------------
# 6. convert / probe loader on bad files
# ---------------------------------------------------------------------------------------


def _convert(path):
    return converters.convert_checkpoint(path, arch="ijepa_tiny_cpu", verbose=False)


def _probe(path):
    return converters.load_probe_checkpoint(path)


@pytest.mark.parametrize("load", [_convert, _probe], ids=["convert", "probe"])
def test_convert_empty_file(tmp_path, load):
    path = str(tmp_path / "empty.pth")
    open(path, "wb").close()
    with pytest.raises(ValueError) as info:
        load(path)
    assert path in str(info.value) and "is empty (0 bytes)" in str(info.value)


@pytest.mark.parametrize("load", [_convert, _probe], ids=["convert", "probe"])
def test_convert_text_file(tmp_path, load):
    path = str(tmp_path / "page.pth.tar")
    with open(path, "w") as f:
        f.write("<html><body>404 Not Found</body></html>\n")
    with pytest.raises(ValueError) as info:
        load(path)
    text = str(info.value)
    assert path in text
    assert "is not a PyTorch checkpoint (zip or pickle) nor safetensors" in text


def test_convert_truncated_zip_and_safetensors(tmp_path):
    zpath = str(tmp_path / "cut.pt")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cut/data.pkl", b"\x80\x02}q\x00." + b"\x00" * 200)
        archive.writestr("cut/data/0", b"\x00" * 400)
    data = buffer.getvalue()
    with open(zpath, "wb") as f:
        f.write(data[: len(data) - 40])
    with pytest.raises(ValueError) as info:
        _convert(zpath)
    assert zpath in str(info.value) and "truncated or corrupt" in str(info.value)

    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    spath = str(tmp_path / "model.safetensors")
    safetensors_numpy.save_file({"w": np.ones((8, 8), np.float32)}, spath)
    assert checkpoint_format(spath) == "safetensors"
    np.testing.assert_array_equal(read_checkpoint(spath)["w"], np.ones((8, 8)))
    with open(spath, "rb") as f:
        data = f.read()
    with open(spath, "wb") as f:
        f.write(data[:-16])
    with pytest.raises(ValueError) as info:
        read_checkpoint(spath)
    assert spath in str(info.value) and "truncated or corrupt" in str(info.value)


def test_cli_convert_names_file_and_cause(tmp_path, capsys):
    path = str(tmp_path / "empty.pt")
    open(path, "wb").close()
    assert cli.main(["convert", path, str(tmp_path / "out"), "--arch",
                     "ijepa_tiny_cpu"]) == 2
    err = capsys.readouterr().err
    assert path in err and "is empty (0 bytes)" in err
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("load, expected", [
    (_convert, "expected a dict of tensors (state dict) or a dict with an "
               "'encoder'/'target_encoder' entry"),
    (_probe, "expected a dict with a 'classifier' (V-JEPA) or 'classifiers' (V-JEPA 2)"),
], ids=["convert", "probe"])
def test_convert_list_checkpoint(tmp_path, load, expected):
    torch = pytest.importorskip("torch")
    path = str(tmp_path / "list.pth")
    torch.save([torch.zeros(3), torch.ones(2, 2)], path)
    with pytest.raises(ValueError) as info:
        load(path)
    text = str(info.value)
    assert path in text and "holds a list of 2 items at the top level" in text
    assert expected in text


def test_dict_checkpoint_with_non_dict_part_names_the_entry():
    with pytest.raises(ValueError, match="entry 'encoder' is a list, not a state dict"):
        converters.read_source({"encoder": [np.zeros(2)]})


# ---------------------------------------------------------------------------------------
# 7. Downloads
# ---------------------------------------------------------------------------------------


def _zip_checkpoint():
    """Bytes of a zip laid out like ``torch.save`` output (``<name>/data.pkl``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("tiny/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr("tiny/data/0", b"\x01" * 4096)
        archive.writestr("tiny/version", b"3\n")
    return buffer.getvalue()


class _FakeResponse:
    def __init__(self, body, length, fail_after=None):
        self._body = io.BytesIO(body)
        self.headers = {} if length is None else {"Content-Length": str(length)}
        self._fail_after = fail_after

    def read(self, n=-1):
        if self._fail_after is not None and self._body.tell() >= self._fail_after:
            raise ConnectionResetError("connection reset by peer")
        if self._fail_after is not None:
            n = min(n, self._fail_after - self._body.tell())
        return self._body.read(n)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


URL = "https://example.invalid/jepa/tiny.pt"


@pytest.fixture
def entry(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    return {"source": URL, "file": "tiny.pt", "class": "VJEPA", "description": "test"}


def _serve(monkeypatch, body, length, fail_after=None):
    calls = []

    def fake_urlopen(request, timeout=None):
        calls.append(getattr(request, "full_url", request))
        return _FakeResponse(body, length, fail_after)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return calls


def _cache_files(entry):
    folder = os.path.dirname(converters.checkpoint_path(entry))
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_short_download_is_deleted_and_reported(monkeypatch, entry):
    body = _zip_checkpoint()
    calls = _serve(monkeypatch, body[:100], len(body))
    with pytest.raises(OSError) as info:
        converters.download_checkpoint("tiny_test", entry, verbose=False)
    text = str(info.value)
    assert calls == [URL]
    assert URL in text and f"received 100 bytes, expected {len(body)}" in text
    assert _cache_files(entry) == []


def test_corrupt_download_with_matching_length_is_deleted(monkeypatch, entry):
    body = _zip_checkpoint()[:-30]  # the server itself sends a cut file
    _serve(monkeypatch, body, len(body))
    with pytest.raises(OSError) as info:
        converters.download_checkpoint("tiny_test", entry, verbose=False)
    text = str(info.value)
    assert URL in text and "does not load" in text and f"received {len(body)} bytes" in text
    assert "truncated or corrupt" in text
    assert _cache_files(entry) == []


def test_interrupted_download_is_deleted(monkeypatch, entry):
    body = _zip_checkpoint()
    _serve(monkeypatch, body, len(body), fail_after=1000)
    with pytest.raises(OSError) as info:
        converters.download_checkpoint("tiny_test", entry, verbose=False)
    text = str(info.value)
    assert URL in text and f"received 1000 of {len(body)} bytes" in text
    assert "ConnectionResetError" in text
    assert _cache_files(entry) == []


@pytest.mark.parametrize("announce", [True, False], ids=["length", "no-length"])
def test_complete_download_is_kept(monkeypatch, entry, announce):
    body = _zip_checkpoint()
    _serve(monkeypatch, body, len(body) if announce else None)
    path = converters.download_checkpoint("tiny_test", entry, verbose=False)
    assert path == converters.checkpoint_path(entry)
    with open(path, "rb") as f:
        assert f.read() == body
    assert _cache_files(entry) == ["tiny.pt"]
    # Cached: no second request.
    calls = _serve(monkeypatch, b"", 0)
    assert converters.download_checkpoint("tiny_test", entry, verbose=False) == path
    assert calls == []


def test_failed_download_caches_no_preset(monkeypatch, entry):
    body = _zip_checkpoint()
    _serve(monkeypatch, body[:10], len(body))
    monkeypatch.setitem(preset_registry.PRESETS, "tiny_download_test", entry)
    with pytest.raises(OSError, match="received 10 bytes"):
        converters.ensure_converted("tiny_download_test", entry, verbose=False)
    assert _cache_files(entry) == []
    presets = os.path.join(converters.cache_root(), "presets")
    assert not os.path.exists(presets) or os.listdir(presets) == []


def test_corrupt_cached_checkpoint_names_the_file_to_delete(monkeypatch, entry):
    path = converters.checkpoint_path(entry)
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as f:
        f.write(_zip_checkpoint()[:-30])
    calls = _serve(monkeypatch, b"", 0)
    with pytest.raises(ValueError) as info:
        converters.ensure_converted("tiny_cached_test", entry, verbose=False)
    text = str(info.value)
    assert calls == []  # the cached file is used, not downloaded again
    assert path in text and "truncated or corrupt" in text and f"delete {path}" in text
