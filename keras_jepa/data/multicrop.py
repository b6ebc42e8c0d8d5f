"""Multi-crop views for joint-embedding pretraining (numpy and PIL, in the input pipeline).

One image gives ``num_global`` global views and ``num_local`` local views. Every view is an
independent draw of the same recipe, only the crop differs (size and area range):

1. random resized crop (torchvision's box algorithm, :func:`~keras_jepa.data.sample_crop_box`);
2. colour jitter with probability ``jitter_probability``: brightness, contrast,
   saturation and hue, each factor drawn uniformly (``[1 - s, 1 + s]``, hue ``[-s, s]``),
   applied in a random order, as torchvision's ``ColorJitter`` on PIL images (PIL's
   ``ImageEnhance`` and a shift of the HSV hue channel);
3. grayscale with probability ``grayscale_probability`` (three equal channels);
4. Gaussian blur with probability ``blur_probability``, sigma uniform in ``blur_sigma``
   pixels (PIL's Gaussian filter; torchvision's 7-tap kernel truncates the same Gaussian);
5. solarize with probability ``solarize_probability`` (pixels ``>= threshold`` inverted);
6. horizontal flip with probability ``flip_probability``;
7. ImageNet normalisation.

Batches (:class:`MultiCropArrayDataset`, :class:`MultiCropFolderDataset`) are dicts
``{"global_views": (B, Vg, H, W, 3), "local_views": (B, Vl, h, w, 3), "labels": (B,)}``
(``local_views`` only when there are local views, ``labels`` only with labels), and keep
the dataset contract of ``keras_jepa.data``: order and augmentations are functions of
``(seed, epoch, position)``.
"""

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from keras_jepa.data.arrays import ArrayImageDataset
from keras_jepa.data.image_folder import ImageFolderDataset
from keras_jepa.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Normalize,
    _as_rng,
    _pair,
    _range,
    sample_crop_box,
)


def _probability(value, name):
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1]; got {value!r}.")
    return value


def _as_pil(image):
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] not in (1, 3):
        raise ValueError(f"Expected an (H, W, 1 or 3) image; got shape {array.shape}.")
    if array.dtype != np.uint8:
        array = np.clip(np.round(array.astype("float32") * 255.0), 0, 255).astype("uint8")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return Image.fromarray(array)


def _shift_hue(image, hue):
    hsv = np.array(image.convert("HSV"))
    hsv[..., 0] = (hsv[..., 0].astype("int16") + int(round(hue * 255))) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


class ViewAugmentation:
    """One random view of an image: crop, colour jitter, grayscale, blur, solarize, flip,
    normalisation (the module docstring gives the order and the definitions).

    Args:
        size: output side (or ``(height, width)``).
        scale: area range of the crop (``(0.08, 1.0)`` in the LeJEPA minimal example).
        ratio: aspect-ratio range (width / height) of the crop.
        jitter: strengths ``(brightness, contrast, saturation, hue)`` of the colour jitter.
        jitter_probability, grayscale_probability, blur_probability,
        solarize_probability, flip_probability: how often each step runs.
        blur_sigma: ``(min, max)`` blur sigma in output pixels.
        solarize_threshold: pixel level (0-255) from which solarize inverts.
        mean, std: normalisation statistics.

    Example:

    >>> import numpy as np
    >>> view = ViewAugmentation(16, scale=(0.3, 1.0))
    >>> view(np.zeros((20, 24, 3), "uint8"), rng=np.random.default_rng(0)).shape
    (16, 16, 3)
    """

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                 jitter=(0.4, 0.4, 0.2, 0.1), jitter_probability=0.8,
                 grayscale_probability=0.2, blur_probability=0.5, blur_sigma=(0.1, 2.0),
                 solarize_probability=0.2, solarize_threshold=128, flip_probability=0.5,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.size = _pair(size, "size")
        self.scale = _range(scale, "scale", high=1.0)
        self.ratio = _range(ratio, "ratio")
        self.jitter = tuple(float(j) for j in jitter)
        if len(self.jitter) != 4 or min(self.jitter) < 0 or self.jitter[3] > 0.5:
            raise ValueError(
                "jitter must be 4 non-negative strengths (brightness, contrast, saturation, "
                f"hue <= 0.5); got {jitter!r}."
            )
        self.jitter_probability = _probability(jitter_probability, "jitter_probability")
        self.grayscale_probability = _probability(grayscale_probability,
                                                  "grayscale_probability")
        self.blur_probability = _probability(blur_probability, "blur_probability")
        self.blur_sigma = _range(blur_sigma, "blur_sigma")
        self.solarize_probability = _probability(solarize_probability,
                                                 "solarize_probability")
        self.solarize_threshold = int(solarize_threshold)
        self.flip_probability = _probability(flip_probability, "flip_probability")
        self.normalize = Normalize(mean, std)

    def _color_jitter(self, image, rng):
        strengths = self.jitter
        for op in rng.permutation(4):
            s = strengths[op]
            if s == 0:
                continue
            if op == 3:
                image = _shift_hue(image, rng.uniform(-s, s))
                continue
            factor = rng.uniform(max(0.0, 1.0 - s), 1.0 + s)
            enhance = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)[op]
            image = enhance(image).enhance(factor)
        return image

    def __call__(self, image, rng=None):
        rng = _as_rng(rng)
        image = _as_pil(image)
        top, left, h, w = sample_crop_box(image.height, image.width, self.scale, self.ratio,
                                          rng)
        image = image.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR,
                             box=(left, top, left + w, top + h))
        if rng.uniform() < self.jitter_probability:
            image = self._color_jitter(image, rng)
        if rng.uniform() < self.grayscale_probability:
            image = image.convert("L").convert("RGB")
        if rng.uniform() < self.blur_probability:
            image = image.filter(ImageFilter.GaussianBlur(rng.uniform(*self.blur_sigma)))
        if rng.uniform() < self.solarize_probability:
            image = ImageOps.solarize(image, self.solarize_threshold)
        if rng.uniform() < self.flip_probability:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return self.normalize(image)

    def __repr__(self):
        return f"ViewAugmentation(size={self.size}, scale={self.scale}, jitter={self.jitter})"


class MultiCrop:
    """``num_global`` views by ``global_view`` and ``num_local`` by ``local_view``.

    Called on one image (PIL, or an ``(H, W, C)`` array: ``uint8`` or floats in ``[0, 1]``),
    it returns ``(global_views, local_views)``: ``(Vg, H, W, 3)`` and ``(Vl, h, w, 3)``
    float32 arrays (``local_views`` is ``None`` without local views).

    Example:

    >>> import numpy as np
    >>> crops = MultiCrop(ViewAugmentation(16), 2, ViewAugmentation(8, scale=(0.05, 0.3)), 3)
    >>> g, l = crops(np.zeros((20, 20, 3), "uint8"), rng=np.random.default_rng(0))
    >>> g.shape, l.shape
    ((2, 16, 16, 3), (3, 8, 8, 3))
    """

    def __init__(self, global_view, num_global=2, local_view=None, num_local=0, seed=None):
        if int(num_global) < 1:
            raise ValueError(f"num_global must be at least 1; got {num_global!r}.")
        if int(num_local) < 0 or (int(num_local) > 0 and local_view is None):
            raise ValueError(
                f"num_local must be >= 0, and local views need a local_view; got "
                f"num_local={num_local!r}, local_view={local_view!r}."
            )
        self.global_view = global_view
        self.num_global = int(num_global)
        self.local_view = local_view
        self.num_local = int(num_local)
        self.rng = _as_rng(seed)

    def __call__(self, image, rng=None):
        rng = rng or self.rng
        image = _as_pil(image)
        global_views = np.stack([self.global_view(image, rng) for _ in range(self.num_global)])
        if not self.num_local:
            return global_views, None
        local_views = np.stack([self.local_view(image, rng) for _ in range(self.num_local)])
        return global_views, local_views

    def __repr__(self):
        return (f"MultiCrop({self.global_view!r} x {self.num_global}, "
                f"{self.local_view!r} x {self.num_local})")


class _MultiCropBatches:
    """Batches of :class:`MultiCrop` samples as ``global_views`` / ``local_views``."""

    def _stack(self, samples, items):
        global_views = np.stack([s[0] for s in samples]).astype("float32", copy=False)
        if samples[0][1] is None:
            return global_views, None
        return global_views, np.stack([s[1] for s in samples]).astype("float32", copy=False)

    def __getitem__(self, index):
        batch = super().__getitem__(index)
        global_views, local_views = batch.pop(self.data_key)
        batch["global_views"] = global_views
        if local_views is not None:
            batch["local_views"] = local_views
        return batch


class MultiCropArrayDataset(_MultiCropBatches, ArrayImageDataset):
    """``ArrayImageDataset`` whose batches hold multi-crop views (``transform``: a
    :class:`MultiCrop`).

    Example:

    >>> import numpy as np
    >>> crops = MultiCrop(ViewAugmentation(16), 2, ViewAugmentation(8), 2)
    >>> ds = MultiCropArrayDataset(np.zeros((8, 20, 20, 3), "uint8"), 4, crops, seed=0)
    >>> {k: v.shape for k, v in ds[0].items()}
    {'global_views': (4, 2, 16, 16, 3), 'local_views': (4, 2, 8, 8, 3)}
    """


class MultiCropFolderDataset(_MultiCropBatches, ImageFolderDataset):
    """``ImageFolderDataset`` whose batches hold multi-crop views (``transform``: a
    :class:`MultiCrop`)."""


def multicrop_dataset(data, batch_size, transform, labels=None, seed=0, workers=1):
    """A multi-crop dataset over ``data``: an ``(N, H, W, C)`` array (with optional
    ``labels``) or a folder / list of image files (labels from class folders when
    ``labels="inferred"``).

    Example:

    >>> import numpy as np
    >>> ds = multicrop_dataset(np.zeros((8, 20, 20, 3), "uint8"), 4,
    ...                        MultiCrop(ViewAugmentation(16), 2))
    >>> ds[0]["global_views"].shape
    (4, 2, 16, 16, 3)
    """
    if isinstance(data, np.ndarray):
        return MultiCropArrayDataset(data, batch_size, transform, labels=labels, seed=seed,
                                     workers=workers)
    size = transform.global_view.size
    return MultiCropFolderDataset(data, batch_size, image_size=size, transform=transform,
                                  labels=labels, seed=seed, workers=workers)
