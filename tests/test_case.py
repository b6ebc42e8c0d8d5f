"""Shared checks for the test modules, in the spirit of keras-hub's ``TestCase``.

Plain functions (``run_*``, ``assert_*``) and constants, imported by the ``test_*.py``
files: this module defines nothing that pytest collects (no ``test_*`` function, no
``Test*`` class), so it adds no tests of its own.

* ``run_serialization_test``: ``get_config`` -> ``from_config`` gives the same config
  (JSON-serialisable, and the same again through Keras's own serialization); given a
  ``call``, the clone with the original's weights gives the same outputs.
* ``run_output_shape_test``: a layer or model's output shapes, eagerly and (optionally)
  symbolically, on the backend of this process (the suite runs once per backend).
* ``run_preset_test``: ``save_to_preset`` -> ``from_preset`` gives the same class, config
  and outputs.
* ``run_keras_file_test``: ``model.save("x.keras")`` -> ``keras.saving.load_model`` gives
  the same class, config and outputs.
"""

import json
import os

import keras
import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The repository root (the folder holding ``keras_jepa/``, ``guides/``, ``README.md``)."""


def to_numpy(x):
    """A backend tensor, a NumPy array, or a (nested) list/tuple/dict of them, as NumPy."""
    return keras.tree.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), x)


def assert_allclose_structure(actual, expected, atol=1e-6, rtol=0.0):
    """``np.testing.assert_allclose`` leaf by leaf over two equal nested structures."""
    keras.tree.assert_same_structure(actual, expected)
    for a, e in zip(keras.tree.flatten(to_numpy(actual)), keras.tree.flatten(to_numpy(expected))):
        assert a.shape == e.shape, (a.shape, e.shape)
        np.testing.assert_allclose(a.astype("float64"), e.astype("float64"), atol=atol, rtol=rtol)


def _is_keras_object(obj):
    return isinstance(
        obj,
        (keras.layers.Layer, keras.optimizers.Optimizer,
         keras.optimizers.schedules.LearningRateSchedule),
    )


def _copy_weights(source, target, call):
    """Copies ``source``'s weights into ``target``, building it with ``call`` if needed."""
    if len(target.weights) != len(source.weights):
        call(target)  # the first call builds the variables
    assert len(target.weights) == len(source.weights), (
        f"{type(target).__name__}: {len(target.weights)} weights after from_config, "
        f"{len(source.weights)} before"
    )
    target.set_weights(source.get_weights())


def run_serialization_test(obj, call=None, atol=1e-6, keras_serialization=None,
                           through_json=False):
    """Checks that ``obj`` survives a config round trip; returns the clone.

    * ``get_config()`` is JSON-serialisable (``json.dumps``).
    * ``type(obj).from_config(config)`` has the same type and the same ``get_config()``.
      With ``through_json``, ``from_config`` gets the config after ``json.dumps`` /
      ``json.loads`` (as a preset file stores it) and the configs are compared in JSON form.
    * ``keras_serialization`` (default: for Keras layers, models, optimizers and schedules):
      ``keras.saving.serialize_keras_object`` / ``deserialize_keras_object`` give the same
      class and config too (the registered name resolves to this class).
    * ``call``: ``call(model) -> outputs`` (any nesting). The clone is built (by a first
      ``call`` if needed), given ``obj``'s weights, and must give ``obj``'s outputs within
      ``atol``.
    """
    cls = type(obj)
    config = obj.get_config()
    as_json = json.dumps(config)
    if through_json:
        clone = cls.from_config(json.loads(as_json))
        assert json.loads(json.dumps(clone.get_config())) == json.loads(as_json)
    else:
        clone = cls.from_config(config)
        assert clone.get_config() == config
    assert type(clone) is cls
    if keras_serialization is None:
        keras_serialization = _is_keras_object(obj)
    if keras_serialization:
        restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
        assert type(restored) is cls
        assert restored.get_config() == config
    if call is not None:
        expected = call(obj)
        _copy_weights(obj, clone, call)
        assert_allclose_structure(call(clone), expected, atol=atol)
    return clone


def _shapes(x):
    return keras.tree.map_structure(lambda t: tuple(t.shape), x)


def run_output_shape_test(layer, inputs, expected_output_shape, call_kwargs=None,
                          symbolic=True):
    """Calls ``layer`` on ``inputs`` (one array or a tuple of positional arrays) and checks
    the output shapes: eagerly, and with ``symbolic`` also on ``keras.KerasTensor`` inputs
    of the same shapes (Keras's shape inference, with nothing computed). Any nesting of
    outputs works: ``expected_output_shape`` mirrors it with tuples. Returns the eager
    outputs."""
    call_kwargs = call_kwargs or {}
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    expected = keras.tree.map_shape_structure(tuple, expected_output_shape)
    outputs = layer(*args, **call_kwargs)
    assert _shapes(outputs) == expected, (_shapes(outputs), expected)
    if symbolic:
        symbols = tuple(
            keras.KerasTensor(np.shape(a), dtype=keras.backend.standardize_dtype(a.dtype))
            for a in args
        )
        spec = layer.compute_output_spec(*symbols, **call_kwargs)
        assert _shapes(spec) == expected, (_shapes(spec), expected)
    return outputs


def run_preset_test(model, preset_dir, call, cls=None, atol=1e-6, expected_files=None,
                    **from_preset_kwargs):
    """``model.save_to_preset(preset_dir)`` then ``cls.from_preset(preset_dir)`` (``cls``
    defaults to the model's class; ``from_preset_kwargs`` pass through). The loaded model
    has the same class and, without overrides, the same config; ``call(model) ->
    outputs`` agree within ``atol``. ``expected_files``: the exact sorted file list of the
    preset folder. Returns the loaded model."""
    cls = cls or type(model)
    preset_dir = str(preset_dir)
    model.save_to_preset(preset_dir)
    if expected_files is not None:
        assert sorted(os.listdir(preset_dir)) == sorted(expected_files)
    with open(os.path.join(preset_dir, "config.json")) as f:
        stored = json.load(f)
    assert stored["registered_name"] == keras.saving.get_registered_name(type(model))
    loaded = cls.from_preset(preset_dir, **from_preset_kwargs)
    assert isinstance(loaded, cls)
    if not from_preset_kwargs and cls is type(model):
        assert loaded.get_config() == model.get_config()
    if call is not None:
        assert_allclose_structure(call(loaded), call(model), atol=atol)
    return loaded


def run_keras_file_test(model, path, call, atol=1e-6, rtol=0.0):
    """``model.save(path)`` (a ``.keras`` file) then ``keras.saving.load_model(path)``: the
    same class and config, and ``call(model) -> outputs`` agree within ``atol`` / ``rtol``.
    Returns the loaded model."""
    path = str(path)
    assert path.endswith(".keras"), path
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    if call is not None:
        assert_allclose_structure(call(loaded), call(model), atol=atol, rtol=rtol)
    return loaded


BACKENDS = ("jax", "torch", "tensorflow")


def assigned_backend(name, names):
    """The one backend process that runs the backend-independent check ``name`` of the
    sorted list ``names``: round-robin over jax, torch, tensorflow, so the three per-backend
    pytest processes share such checks (guides) instead of each repeating all of them."""
    return BACKENDS[sorted(names).index(name) % len(BACKENDS)]
