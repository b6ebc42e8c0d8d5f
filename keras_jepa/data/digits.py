"""Small image sets that ship inside installed packages, for demos and tests (no download).

``load_digits`` uses scikit-learn's copy of the UCI handwritten digits: 1,797 grey 8x8
images of the digits 0-9 (about 180 per class).
"""

import numpy as np


def _resize_bilinear(images, size):
    """Bilinear resize of ``(N, h, w)`` images to ``(N, size, size)`` (half-pixel centres)."""
    from keras_jepa.layers.position_embedding import interpolation_matrix

    n, h, w = images.shape
    rows = interpolation_matrix(h, size, "linear")
    cols = interpolation_matrix(w, size, "linear")
    return np.einsum("yh,nhw,xw->nyx", rows, images, cols)


def load_digits(image_size=32, channels=3):
    """scikit-learn digits as float32 images in ``[0, 1]``, channels last.

    Args:
        image_size: output side (bilinear upsampling from 8x8).
        channels: 1 or 3 (the grey level is repeated).

    Returns:
        ``(images, labels)``: ``(1797, image_size, image_size, channels)`` float32 and
        ``(1797,)`` int32.

    Example:

    >>> images, labels = load_digits(16)
    >>> images.shape, labels.shape
    ((1797, 16, 16, 3), (1797,))
    """
    from sklearn.datasets import load_digits as sklearn_digits

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3; got {channels}.")
    bunch = sklearn_digits()
    images = bunch.images.astype("float64") / 16.0
    if image_size != images.shape[1]:
        images = np.clip(_resize_bilinear(images, image_size), 0.0, 1.0)
    images = np.repeat(images[..., None], channels, axis=-1).astype("float32")
    return images, bunch.target.astype("int32")
