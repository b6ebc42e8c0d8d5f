"""High-bit-depth images are scaled to 0-255, not clipped, by every image reader."""

import numpy as np
import pytest
from PIL import Image

from keras_jepa.data.image_io import open_rgb


def _write(path, array):
    Image.fromarray(array).save(path)
    return str(path)


@pytest.fixture
def files(tmp_path):
    level = np.full((8, 8), 128, "uint8")
    ramp = np.linspace(0, 65535, 64).round().astype("uint16").reshape(8, 8)
    return {
        "gray16": _write(tmp_path / "gray16.png", level.astype("uint16") * 257),
        "ramp16": _write(tmp_path / "ramp16.png", ramp),
        "gray8": _write(tmp_path / "gray8.png", level),
        "rgb8": _write(tmp_path / "rgb8.png", np.dstack([level, level // 2, level // 4])),
    }


def test_sixteen_bit_png_is_scaled_not_saturated(files):
    with Image.open(files["gray16"]) as image:
        assert image.mode.startswith("I")  # PIL reads it as 16-bit
        assert np.asarray(image.convert("RGB")).mean() > 250  # PIL alone saturates
    rgb = np.asarray(open_rgb(files["gray16"]))
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, 128)
    ramp = np.asarray(open_rgb(files["ramp16"]))[..., 0].ravel()
    np.testing.assert_array_equal(
        ramp, np.round(np.linspace(0, 65535, 64).round() / 257).astype("uint8"))
    assert ramp[0] == 0 and ramp[-1] == 255


def test_eight_bit_images_unchanged(files):
    for name in ("gray8", "rgb8"):
        with Image.open(files[name]) as image:
            expected = np.asarray(image.convert("RGB"))
        np.testing.assert_array_equal(np.asarray(open_rgb(files[name])), expected)


def test_readers_use_the_scaling(files, tmp_path):
    from keras_jepa.data import ImageFolderDataset
    from keras_jepa.evaluation.intuitive_physics import _read_pngs
    from keras_jepa.models.xrm.data import load_images

    dataset = ImageFolderDataset([files["gray16"]], batch_size=1, image_size=8,
                                 labels=None, shuffle=False)
    image = dataset.read(files["gray16"], np.random.default_rng(0))
    np.testing.assert_array_equal(np.asarray(image), 128)
    loaded = load_images([files["gray16"]], image_size=8, crop="resize", normalize=False)
    np.testing.assert_allclose(loaded, 128 / 255, atol=1e-6)
    np.testing.assert_array_equal(_read_pngs([files["gray16"], files["gray8"]]), 128)
