"""A procedural image set with class labels, harder than the digits: textured shapes.

Each image shows one of :data:`SHAPES` (the label) at a random position, size and rotation,
filled with a random colour and one of two textures (flat or striped), on a background of
random colour, a sinusoidal grating of random frequency and orientation, and pixel noise.
Colour, texture, pose and background are nuisances: a representation must keep the
outline's geometry to classify well.
"""

import numpy as np

#: Class names, in label order.
SHAPES = ("disk", "square", "triangle", "cross", "ring", "bar")


def _inside(shape, u, v, radius):
    """Boolean mask of ``shape`` in the rotated, centred coordinates ``u, v``."""
    if shape == "disk":
        return u**2 + v**2 <= radius**2
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8 * radius
    if shape == "triangle":
        return (v <= 0.5 * radius) & (v >= np.sqrt(3) * np.abs(u) - radius)
    if shape == "cross":
        arm = 0.3 * radius
        return ((np.abs(u) <= arm) & (np.abs(v) <= radius)) | (
            (np.abs(v) <= arm) & (np.abs(u) <= radius))
    if shape == "ring":
        r2 = u**2 + v**2
        return (r2 <= radius**2) & (r2 >= (0.55 * radius) ** 2)
    return (np.abs(u) <= radius) & (np.abs(v) <= 0.3 * radius)  # bar


def make_shapes(num_images, image_size=32, seed=0):
    """Textured-shape images and their labels.

    Args:
        num_images: number of images (classes are balanced up to one image).
        image_size: side in pixels.
        seed: seeds everything.

    Returns:
        ``(images, labels)``: ``(num_images, image_size, image_size, 3)`` float32 in
        ``[0, 1]`` and ``(num_images,)`` int32 in ``[0, len(SHAPES))``.

    Example:

    >>> images, labels = make_shapes(12, image_size=16)
    >>> images.shape, sorted(set(labels.tolist())) == list(range(len(SHAPES)))
    ((12, 16, 16, 3), True)
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_images) % len(SHAPES)).astype("int32")
    grid = (np.arange(image_size) + 0.5) / image_size
    y, x = np.meshgrid(grid, grid, indexing="ij")
    images = np.empty((num_images, image_size, image_size, 3), "float32")
    for i, label in enumerate(labels):
        radius = rng.uniform(0.2, 0.35)
        cx, cy = rng.uniform(radius, 1 - radius, size=2)
        angle = rng.uniform(0, 2 * np.pi)
        u = np.cos(angle) * (x - cx) + np.sin(angle) * (y - cy)
        v = -np.sin(angle) * (x - cx) + np.cos(angle) * (y - cy)
        mask = _inside(SHAPES[label], u, v, radius)[..., None]
        freq, theta, phase = rng.uniform(4, 12), rng.uniform(0, np.pi), rng.uniform(0, 6.3)
        grating = np.sin(2 * np.pi * freq * (np.cos(theta) * x + np.sin(theta) * y) + phase)
        background = rng.uniform(0.1, 0.9, 3) + 0.15 * grating[..., None] * rng.uniform(
            -1, 1, 3)
        colour = rng.uniform(0.0, 1.0, 3)
        if rng.uniform() < 0.5:  # striped fill
            stripes = np.sign(np.sin(2 * np.pi * rng.uniform(6, 10) * u))[..., None]
            fill = colour + 0.25 * stripes
        else:
            fill = np.broadcast_to(colour, background.shape)
        image = np.where(mask, fill, background) + rng.normal(0, 0.05, background.shape)
        images[i] = np.clip(image, 0.0, 1.0)
    return images, labels
