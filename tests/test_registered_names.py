"""One registered Keras name per class.

``keras_jepa>Name`` is global: a second class registered under the same name silently
replaces the first once both modules are imported, and models saved with the first no
longer reload.
"""

import collections
import importlib
import inspect
import pkgutil

import keras
import numpy as np

import keras_jepa
from tests.test_case import run_keras_file_test


def _package_modules():
    names = [keras_jepa.__name__]
    for info in pkgutil.walk_packages(keras_jepa.__path__, prefix="keras_jepa."):
        names.append(info.name)
    return [importlib.import_module(name) for name in names]


def test_every_registered_name_is_used_once():
    owners = collections.defaultdict(set)
    for module in _package_modules():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if not cls.__module__.startswith("keras_jepa"):
                continue
            name = keras.saving.get_registered_name(cls)
            if name.startswith("keras_jepa>"):
                owners[name].add(f"{cls.__module__}.{cls.__qualname__}")
    assert len(owners) > 20, sorted(owners)  # the walk found the package's classes
    repeated = {name: sorted(where) for name, where in owners.items() if len(where) > 1}
    assert not repeated, f"Keras names registered by more than one class: {repeated}"
    # And the registry resolves each name to its one class.
    custom = keras.saving.get_custom_objects()
    for name, where in owners.items():
        (qualified,) = where
        cls = custom[name]
        assert f"{cls.__module__}.{cls.__qualname__}" == qualified


def test_saved_attentive_probe_reloads_after_importing_everything(tmp_path):
    from keras_jepa.evaluation import AttentiveClassifier

    _package_modules()  # VistaLLM's tokenizer included
    probe = AttentiveClassifier(num_classes=3, embed_dim=8, num_heads=2)
    x = np.random.default_rng(0).random((2, 5, 8)).astype("float32")
    run_keras_file_test(probe, tmp_path / "probe.keras", call=lambda p: p(x), rtol=1e-6,
                        atol=1e-6)


def test_families_register_their_presets_at_import():
    from keras_jepa.presets.registry import PRESETS

    # ViT architecture presets (models/vit) and released checkpoints and probes
    # (models/jepa) are registered by importing keras_jepa alone.
    assert PRESETS["vit_tiny_patch16_224"]["class"] == "VisionTransformer"
    assert PRESETS["vjepa2_vitl16_256"]["source"].endswith(".pt")
    assert any(e.get("class") == "AttentiveClassifier" for e in PRESETS.values())
    encoder = keras_jepa.models.VisionTransformer.from_preset(
        "vit_tiny_patch16_224", image_size=32, depth=1)
    assert encoder.num_tokens() == 4
