"""Decoding image files to 8-bit RGB, with high-bit-depth modes scaled, not clipped.

PIL's ``convert("RGB")`` maps every integer mode to 0-255 by clipping, so a 16-bit PNG
(mode ``I;16``) with mean 128/255 of full scale becomes almost white. Here 16-bit data is
scaled by 255/65535 instead (and mode ``I``, which older Pillow versions give 16-bit
PNGs, is read in the same 16-bit range).
"""

import numpy as np
from PIL import Image

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def to_rgb(image):
    """An open PIL image as an 8-bit RGB image.

    Example:

    >>> gray16 = Image.fromarray(np.full((2, 2), 128 * 257, "uint16"))
    >>> gray16.mode, np.asarray(to_rgb(gray16)).mean()
    ('I;16', np.float64(128.0))
    """
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.clip(np.asarray(image, dtype=np.float64), 0, 65535)
        gray = np.round(values / 257.0).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    return image.convert("RGB")


def open_rgb(source):
    """Reads ``source`` (a path or a binary file object) to an 8-bit RGB PIL image,
    fully decoded (the file is closed on return)."""
    with Image.open(source) as image:
        return to_rgb(image)
