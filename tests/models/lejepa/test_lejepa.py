"""LeJEPA: SIGReg against a float64 reference, its behaviour on Gaussian, collapsed and
anisotropic embeddings, multi-crop batches, fit on this backend, serialization."""

import keras
import numpy as np
import pytest

from keras_jepa.data.multicrop import MultiCrop, MultiCropArrayDataset, ViewAugmentation
from keras_jepa.models.lejepa import LeJEPA, SIGReg, epps_pulley, make_shapes
from keras_jepa.models.vit.vision_transformer import VisionTransformer
from tests.test_case import run_keras_file_test, run_serialization_test, to_numpy


def reference_slice_statistic(x, directions, t_max=3.0, num_knots=17):
    """Float64 Epps-Pulley statistic per slice, from its definition: complex empirical
    characteristic function, trapezoid rule over the symmetric range [-t_max, t_max]."""
    x = np.asarray(x, "float64") @ np.asarray(directions, "float64")  # (N, M)
    t = np.linspace(-t_max, t_max, 2 * num_knots - 1)
    ecf = np.exp(1j * x[:, :, None] * t).mean(axis=0)  # (M, T)
    gauss = np.exp(-0.5 * t**2)
    integrand = np.abs(ecf - gauss) ** 2 * gauss
    return np.trapezoid(integrand, t, axis=-1) * x.shape[0]


def unit_directions(dim, count, seed):
    a = np.random.default_rng(seed).normal(size=(dim, count))
    return (a / np.linalg.norm(a, axis=0)).astype("float32")


def sigreg_value(z, seed=0, directions=None):
    return float(to_numpy(SIGReg(num_slices=64, seed=seed)(z, directions=directions)))


def test_epps_pulley_matches_float64_reference():
    rng = np.random.default_rng(1)
    z = np.concatenate([rng.normal(size=(300, 4)), rng.exponential(size=(300, 4))], 1)
    z = z.astype("float32")
    directions = unit_directions(8, 12, seed=2)
    expected = reference_slice_statistic(z, directions)
    got = to_numpy(epps_pulley(z @ directions))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # The layer with the same slices: the mean over them.
    np.testing.assert_allclose(sigreg_value(z, directions=directions), expected.mean(),
                               rtol=1e-5)


def test_sigreg_small_for_gaussian_large_for_collapsed_and_anisotropic():
    rng = np.random.default_rng(0)
    gaussian = rng.normal(size=(1024, 16)).astype("float32")
    collapsed = np.tile(gaussian[:1], (1024, 1))
    rank_one = np.repeat(gaussian[:, :1], 16, axis=1) / 4.0  # all mass on one direction
    anisotropic = gaussian * np.linspace(0.1, 3.0, 16, dtype="float32")
    small = sigreg_value(gaussian)
    assert small < 2.0, small  # its expectation is about 1.06 for Gaussian samples
    for name, z in [("collapsed", collapsed), ("rank one", rank_one),
                    ("anisotropic", anisotropic)]:
        value = sigreg_value(z)
        assert value > 100 * small, (name, value, small)


def test_sigreg_per_view_and_fresh_slices():
    rng = np.random.default_rng(0)
    good = rng.normal(size=(512, 8)).astype("float32")
    views = np.stack([good, 5.0 * good])  # (V, N, K): one Gaussian view, one too wide
    directions = unit_directions(8, 16, seed=3)
    both = sigreg_value(views, directions=directions)
    parts = [sigreg_value(v, directions=directions) for v in views]
    np.testing.assert_allclose(both, np.mean(parts), rtol=1e-5)
    sigreg = SIGReg(num_slices=8, seed=0)
    first, second = (to_numpy(sigreg.slice_directions(8)) for _ in range(2))
    np.testing.assert_allclose(np.linalg.norm(first, axis=0), 1.0, rtol=1e-5)
    assert not np.allclose(first, second)  # fresh directions at every call
    with pytest.raises(ValueError, match="num_slices"):
        SIGReg(num_slices=0)
    with pytest.raises(ValueError, match="shape"):
        sigreg(np.zeros((2, 3, 4, 5), "float32"))


# --------------------------------------------------------------------------- model

IMAGE, LOCAL = 16, 8


def tiny_model(num_classes=None, seed=0):
    encoder = VisionTransformer(image_size=IMAGE, patch_size=4, hidden_dim=32, depth=1,
                                num_heads=2)
    return LeJEPA(encoder, projector_dims=(64, 8), num_slices=32, num_classes=num_classes,
                  seed=seed)


@pytest.fixture(scope="module")
def dataset():
    images, labels = make_shapes(32, image_size=20, seed=0)
    crops = MultiCrop(ViewAugmentation(IMAGE, scale=(0.3, 1.0), blur_sigma=(0.1, 0.5)), 2,
                      ViewAugmentation(LOCAL, scale=(0.1, 0.4), blur_sigma=(0.1, 0.5)), 2)
    return MultiCropArrayDataset(images, 16, crops, labels=labels, seed=0)


def test_multicrop_batches_are_reproducible(dataset):
    batch = dataset[1]
    assert batch["global_views"].shape == (16, 2, IMAGE, IMAGE, 3)
    assert batch["local_views"].shape == (16, 2, LOCAL, LOCAL, 3)
    assert batch["labels"].shape == (16,)
    np.testing.assert_array_equal(dataset[1]["local_views"], batch["local_views"])
    # Views of one image differ from each other.
    assert not np.allclose(batch["global_views"][:, 0], batch["global_views"][:, 1])
    with pytest.raises(ValueError, match="blur_probability"):
        ViewAugmentation(8, blur_probability=1.5)


@pytest.fixture(scope="module")
def trained(dataset):
    keras.utils.set_random_seed(0)
    model = tiny_model(num_classes=6)
    state = to_numpy(model.sigreg.seed_generator.state)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    history = model.fit(dataset, epochs=5, shuffle=False, verbose=0).history
    return model, history, state


def test_fit_lowers_the_loss(trained):
    model, history, state = trained
    loss = history["lejepa_loss"]
    assert np.all(np.isfinite(loss)), loss
    assert loss[-1] < 0.8 * loss[0], loss
    assert np.all(np.isfinite(history["sigreg"])), history["sigreg"]
    assert "probe_accuracy" in history
    # The slice generator advanced: new directions at every step.
    assert not np.array_equal(to_numpy(model.sigreg.seed_generator.state), state)


def test_loss_terms_follow_the_definition(trained, dataset):
    model = trained[0]
    batch = dataset[0]
    out = model(batch)
    proj = to_numpy(out["projections"]).astype("float64")  # (V, B, P)
    assert proj.shape == (4, 16, 8)
    _, invariance = model.lejepa_terms(out["projections"], num_global=2)
    expected = np.mean((proj - proj[:2].mean(axis=0)) ** 2)
    np.testing.assert_allclose(float(to_numpy(invariance)), expected, rtol=1e-5)


def test_bfloat16_gradients_are_finite():
    """A bf16 layer trained through SIGReg alone, from nearly collapsed embeddings."""
    keras.config.set_dtype_policy("mixed_bfloat16")
    directions = unit_directions(8, 32, seed=0)

    class Embed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(8, kernel_initializer="zeros",
                                            bias_initializer="ones")
            self.sigreg = SIGReg(num_slices=32, seed=0)

        def call(self, x):
            return self.dense(x)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                         training=True):
            return self.sigreg(y_pred, directions=directions)

    model = Embed()
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    model(x)
    assert keras.backend.standardize_dtype(model(x).dtype) == "bfloat16"
    model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)
    loss = model.fit(x, epochs=5, batch_size=64, verbose=0).history["loss"]
    assert np.all(np.isfinite(loss)) and loss[-1] < loss[0], loss
    assert all(np.all(np.isfinite(to_numpy(w))) for w in model.weights)


def test_serialization_round_trip(dataset, tmp_path):
    model = tiny_model(num_classes=6)
    batch = dataset[0]

    def call(m):
        return m(batch)["projections"]

    clone = run_serialization_test(model, call=call, atol=1e-5)
    assert clone.projector_dims == (64, 8) and clone.num_classes == 6
    run_keras_file_test(model, tmp_path / "lejepa.keras", call=call, atol=1e-5)
    directions = unit_directions(8, 32, seed=0)
    z = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    run_serialization_test(SIGReg(num_slices=32, num_knots=9, t_max=4.0, seed=3),
                           call=lambda s: s(z, directions=directions))
