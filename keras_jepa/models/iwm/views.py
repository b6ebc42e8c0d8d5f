"""Paired views for Image World Models (IWM; Garrido et al., 2024), with their parameters.

One image gives a *source* and a *target* view that share their geometry (one random
resized crop and one flip decision), so patch ``i`` of both views shows the same place:

* target view: colour jitter only (probability ``jitter_probability``, 0.8);
* source view: its own, independent colour jitter from the same distribution, then the
  destructive augmentations that only the source gets: grayscale (p 0.2), Gaussian blur
  (p 0.2, sigma uniform in (0.1, 2.0)) and solarize (p 0.1, threshold 0.5).

Colour jitter (torchvision's definitions, on ``[0, 1]`` pixels, applied in the fixed order
brightness, contrast, saturation, hue so that its parameters define it): brightness multiplies
by ``b``; contrast blends with the mean grey level by ``c``; saturation blends with the grey
image by ``s``; hue rotates the HSV hue by ``h`` turns. Factors are drawn uniformly in
``[1 - strength, 1 + strength]`` (hue in ``[-strength, strength]``); a view without jitter has
the identity ``(1, 1, 1, 0)``.

The **action** from source to target (:func:`action_vector`) is the difference of the jitter
parameters, target minus source (4 values), followed by the three source-only flags (blur,
grayscale, solarize): 7 values, all zero for identical views.

Every view is a function of the returned parameters: :meth:`PairedViews.apply` rebuilds both
views from an image and its parameters, which the MRR evaluation uses to build banks of
targets with known actions.
"""

import numpy as np

from keras_jepa.data.file_dataset import FileDataset, SkipSample
from keras_jepa.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Normalize,
    _as_rng,
    _range,
    _resampling,
    _resize_frame,
    sample_crop_box,
)

#: Names of the action vector's entries, in order.
ACTION_NAMES = ("brightness", "contrast", "saturation", "hue", "blur", "grayscale",
                "solarize")
#: Length of the action vector.
ACTION_DIM = len(ACTION_NAMES)
#: Jitter parameters of an untouched view.
IDENTITY_JITTER = (1.0, 1.0, 1.0, 0.0)

_GREY = np.asarray([0.299, 0.587, 0.114], "float32")  # ITU-R 601-2 luma, as PIL / torchvision


def _grey(image):
    return image @ _GREY


def _rgb_to_hsv(rgb):
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    maxc = rgb.max(axis=-1)
    minc = rgb.min(axis=-1)
    delta = maxc - minc
    safe = np.where(delta > 0, delta, 1.0)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    hue = np.where(maxc == r, bc - gc, np.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = np.where(delta > 0, (hue / 6.0) % 1.0, 0.0)
    sat = np.where(maxc > 0, delta / np.where(maxc > 0, maxc, 1.0), 0.0)
    return hue, sat, maxc


def _hsv_to_rgb(hue, sat, val):
    i = np.floor(hue * 6.0)
    f = hue * 6.0 - i
    p, q, t = val * (1.0 - sat), val * (1.0 - sat * f), val * (1.0 - sat * (1.0 - f))
    i = i.astype("int64") % 6
    choices = [
        np.stack(c, axis=-1)
        for c in ((val, t, p), (q, val, p), (p, val, t), (p, q, val), (t, p, val), (val, p, q))
    ]
    out = np.zeros(hue.shape + (3,), "float32")
    for k, choice in enumerate(choices):
        out = np.where((i == k)[..., None], choice, out)
    return out


def color_jitter(image, brightness=1.0, contrast=1.0, saturation=1.0, hue=0.0):
    """Applies colour jitter with the given parameters (order: brightness, contrast,
    saturation, hue) to a ``(H, W, 3)`` image in ``[0, 1]``.

    Example:

    >>> import numpy as np
    >>> image = np.full((2, 2, 3), 0.5, "float32")
    >>> round(float(color_jitter(image, brightness=1.2)[0, 0, 0]), 4)
    0.6
    """
    x = np.asarray(image, "float32")
    if brightness != 1.0:
        x = np.clip(x * brightness, 0.0, 1.0)
    if contrast != 1.0:
        mean = _grey(x).mean()
        x = np.clip((x - mean) * contrast + mean, 0.0, 1.0)
    if saturation != 1.0:
        grey = _grey(x)[..., None]
        x = np.clip((x - grey) * saturation + grey, 0.0, 1.0)
    if hue != 0.0:
        h, s, v = _rgb_to_hsv(x)
        x = _hsv_to_rgb((h + hue) % 1.0, s, v)
    return x.astype("float32")


def gaussian_blur(image, sigma):
    """Separable Gaussian blur (kernel radius ``ceil(3 sigma)``, reflected borders).

    Example:

    >>> import numpy as np
    >>> image = np.zeros((9, 9, 3), "float32"); image[4, 4] = 1.0
    >>> round(float(gaussian_blur(image, 1.0).sum()), 4)  # mass kept away from borders
    3.0
    """
    x = np.asarray(image, "float32")
    if sigma <= 0:
        return x
    radius = int(np.ceil(3.0 * sigma))
    offsets = np.arange(-radius, radius + 1, dtype="float32")
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    for axis in (0, 1):
        pad = [(0, 0)] * x.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(x, pad, mode="reflect" if x.shape[axis] > radius else "edge")
        out = np.zeros_like(x)
        for k, w in enumerate(kernel):
            out += w * np.take(padded, np.arange(k, k + x.shape[axis]), axis=axis)
        x = out
    return x


class PairedViews:
    """IWM's source and target views of one image, and the parameters that made them.

    Args:
        size: output side in pixels.
        scale, ratio: random-resized-crop area and aspect ranges (shared by both views).
        flip_probability: horizontal flip (shared).
        jitter_probability: chance that a view is colour-jittered (0.8).
        brightness, contrast, saturation, hue: jitter strengths (0.4, 0.4, 0.2, 0.1).
        blur_probability, grayscale_probability, solarize_probability: source-only
            destructive augmentations (0.2, 0.2, 0.1); set them to 0 for the invariant
            (jitter-only) recipe.
        blur_sigma: ``(min, max)`` of the blur's sigma, in pixels at the output size.
        mean, std: normalisation of the returned views (ImageNet's).
        seed: generator used when a call passes no ``rng``.

    Calling ``views(image, rng=None)`` on a ``(H, W, 3)`` image (``uint8``, or floats in
    ``[0, 1]``) returns ``(source, target, params)``: two normalised ``float32`` views and a
    dict with ``crop`` ``(top, left, h, w)``, ``flip``, ``source_jitter`` and
    ``target_jitter`` (4 floats each), ``blur_sigma`` (0: no blur), ``grayscale`` and
    ``solarize``.

    Example:

    >>> import numpy as np
    >>> views = PairedViews(16, seed=0)
    >>> source, target, params = views(np.random.rand(20, 20, 3))
    >>> source.shape, target.shape, action_vector(params).shape
    ((16, 16, 3), (16, 16, 3), (7,))
    >>> rebuilt_source, rebuilt_target = views.apply(np.random.rand(20, 20, 3), params)
    >>> rebuilt_source.shape
    (16, 16, 3)
    """

    def __init__(
        self,
        size,
        scale=(0.3, 1.0),
        ratio=(3 / 4, 4 / 3),
        flip_probability=0.5,
        jitter_probability=0.8,
        brightness=0.4,
        contrast=0.4,
        saturation=0.2,
        hue=0.1,
        blur_probability=0.2,
        grayscale_probability=0.2,
        solarize_probability=0.1,
        blur_sigma=(0.1, 2.0),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        interpolation="bilinear",
        seed=None,
    ):
        self.size = int(size)
        if self.size < 1:
            raise ValueError(f"size must be a positive int; got {size!r}.")
        self.scale = _range(scale, "scale", high=1.0)
        self.ratio = _range(ratio, "ratio")
        for name, value in (("flip_probability", flip_probability),
                            ("jitter_probability", jitter_probability),
                            ("blur_probability", blur_probability),
                            ("grayscale_probability", grayscale_probability),
                            ("solarize_probability", solarize_probability)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]; got {value!r}.")
        self.flip_probability = float(flip_probability)
        self.jitter_probability = float(jitter_probability)
        for name, value, limit in (("brightness", brightness, 1.0), ("contrast", contrast, 1.0),
                                   ("saturation", saturation, 1.0), ("hue", hue, 0.5)):
            if not 0.0 <= float(value) <= limit:
                raise ValueError(f"{name} strength must be in [0, {limit}]; got {value!r}.")
        self.strengths = (float(brightness), float(contrast), float(saturation), float(hue))
        self.blur_probability = float(blur_probability)
        self.grayscale_probability = float(grayscale_probability)
        self.solarize_probability = float(solarize_probability)
        self.blur_sigma = _range(blur_sigma, "blur_sigma")
        self.normalize = Normalize(mean, std, max_pixel_value=1.0)
        self.interpolation = interpolation
        self._resample = _resampling(interpolation)
        self.rng = _as_rng(seed)

    # ------------------------------------------------------------------ parameters

    def sample_jitter(self, rng, probability=None):
        """One view's jitter parameters ``(b, c, s, h)`` (identity when not jittered);
        ``probability`` overrides ``jitter_probability``."""
        probability = self.jitter_probability if probability is None else probability
        if rng.uniform() >= probability:
            return np.asarray(IDENTITY_JITTER, "float32")
        b, c, s, h = self.strengths
        return np.asarray(
            [rng.uniform(1 - b, 1 + b), rng.uniform(1 - c, 1 + c),
             rng.uniform(1 - s, 1 + s), rng.uniform(-h, h)], "float32"
        )

    def sample_params(self, height, width, rng=None):
        """All parameters of a pair of views of a ``height`` x ``width`` image."""
        rng = rng or self.rng
        crop = sample_crop_box(height, width, self.scale, self.ratio, rng)
        flip = bool(rng.uniform() < self.flip_probability)
        target_jitter = self.sample_jitter(rng)
        source_jitter = self.sample_jitter(rng)
        grayscale = bool(rng.uniform() < self.grayscale_probability)
        blur = rng.uniform() < self.blur_probability
        sigma = float(rng.uniform(*self.blur_sigma)) if blur else 0.0
        solarize = bool(rng.uniform() < self.solarize_probability)
        return {"crop": tuple(int(v) for v in crop), "flip": flip,
                "source_jitter": source_jitter, "target_jitter": target_jitter,
                "blur_sigma": sigma, "grayscale": grayscale, "solarize": solarize}

    # ------------------------------------------------------------------ views

    @staticmethod
    def _check(image):
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"PairedViews needs an (H, W, 3) image; got shape {image.shape}.")
        return image

    @staticmethod
    def _as_unit(image):
        image = PairedViews._check(image)
        if image.dtype == np.uint8:
            return image.astype("float32") / 255.0
        return image.astype("float32")

    def geometry(self, image, params):
        """The shared crop and flip of ``image``, in ``[0, 1]`` (before any colour change)."""
        image = self._check(image)
        top, left, h, w = params["crop"]
        out = _resize_frame(image if image.dtype == np.uint8 else image.astype("float32"),
                            (self.size, self.size), self._resample,
                            box=(left, top, left + w, top + h))
        out = self._as_unit(out) if out.dtype == np.uint8 else np.clip(out, 0.0, 1.0)
        return out[:, ::-1] if params["flip"] else out

    @staticmethod
    def photometric(view, jitter, blur_sigma=0.0, grayscale=False, solarize=False):
        """Colour jitter, then grayscale, blur and solarize, on a ``[0, 1]`` view."""
        x = color_jitter(view, *[float(v) for v in jitter])
        if grayscale:
            x = np.repeat(_grey(x)[..., None], 3, axis=-1)
        if blur_sigma > 0:
            x = gaussian_blur(x, blur_sigma)
        if solarize:
            x = np.where(x >= 0.5, 1.0 - x, x)
        return x.astype("float32")

    def apply(self, image, params):
        """``(source, target)`` normalised views of ``image`` made with ``params``."""
        base = self.geometry(image, params)
        target = self.photometric(base, params["target_jitter"])
        source = self.photometric(base, params["source_jitter"], params["blur_sigma"],
                                  params["grayscale"], params["solarize"])
        return self.normalize(source), self.normalize(target)

    def __call__(self, image, rng=None):
        image = self._check(image)
        params = self.sample_params(image.shape[0], image.shape[1], rng=rng)
        source, target = self.apply(image, params)
        return source, target, params

    def __repr__(self):
        return (f"PairedViews(size={self.size}, scale={self.scale}, jitter_p="
                f"{self.jitter_probability}, strengths={self.strengths}, blur_p="
                f"{self.blur_probability}, grayscale_p={self.grayscale_probability}, "
                f"solarize_p={self.solarize_probability})")


def action_vector(params):
    """IWM's action from the source to the target view: target minus source jitter
    parameters (brightness, contrast, saturation, hue), then the source-only flags (blur,
    grayscale, solarize) as 0/1. ``float32`` of length :data:`ACTION_DIM`.

    Example:

    >>> import numpy as np
    >>> same = {"source_jitter": np.ones(4), "target_jitter": np.ones(4), "blur_sigma": 0.0,
    ...         "grayscale": False, "solarize": False}
    >>> action_vector(same).tolist()
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    """
    jitter = np.asarray(params["target_jitter"], "float32") - np.asarray(
        params["source_jitter"], "float32"
    )
    flags = np.asarray([params["blur_sigma"] > 0, bool(params["grayscale"]),
                        bool(params["solarize"])], "float32")
    return np.concatenate([jitter, flags]).astype("float32")


class PairedViewDataset(FileDataset):
    """Batches of IWM paired views from in-memory images, with masks for the source.

    Each batch is ``{"source": (B, S, S, 3), "target": (B, S, S, 3), "action": (B, 7),
    "context_indices": (B, Kc), "target_indices": (B, Kt)}`` (plus ``"labels"``). The masks
    come from ``mask_sampler`` (e.g. ``MultiBlockMask(enc_mask_scale=(1, 1), npred=4)``: the
    source keeps every token outside the union of the 4 target blocks); several target masks
    are concatenated into one index array, the predicted union. Order, views and masks are
    pure functions of ``(seed, epoch, batch index)``, as in every dataset of this package.

    Args:
        images: ``(N, H, W, 3)`` array, ``uint8`` or floats in ``[0, 1]``.
        batch_size: images per batch.
        views: a :class:`PairedViews`.
        mask_sampler: a mask sampler (``None``: no masks in the batch).
        labels: optional ``(N,)`` ints.
        **kwargs: ``FileDataset`` options (``seed``, ``shuffle``, ``workers``...).

    Example:

    >>> import numpy as np
    >>> from keras_jepa.masks import MultiBlockMask
    >>> masks = MultiBlockMask(grid_size=4, enc_mask_scale=(1.0, 1.0), min_keep=2,
    ...                        faithful=False, seed=0)
    >>> ds = PairedViewDataset(np.random.rand(8, 20, 20, 3), batch_size=4,
    ...                        views=PairedViews(16), mask_sampler=masks, seed=0)
    >>> batch = ds[0]
    >>> batch["source"].shape, batch["action"].shape, batch["target_indices"].shape[0]
    ((4, 16, 16, 3), (4, 7), 4)
    """

    data_key = "views"

    def __init__(self, images, batch_size, views, mask_sampler=None, labels=None, **kwargs):
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be (N, H, W, 3); got shape {images.shape}.")
        if not isinstance(views, PairedViews):
            raise ValueError(f"views must be a PairedViews; got {type(views).__name__}.")
        if images.dtype != np.uint8:  # uint8: PIL's fast resize
            images = np.clip(np.round(images.astype("float32") * 255.0), 0, 255).astype("uint8")
        self.images = images
        paths = [f"<array {i}>" for i in range(len(images))]
        super().__init__(paths, labels, batch_size, views, mask_sampler=mask_sampler,
                         **kwargs)

    def read(self, path, rng):
        """The image of index ``path`` (``"<array i>"``)."""
        try:
            return self.images[int(path[len("<array "):-1])]
        except (ValueError, IndexError) as error:
            raise SkipSample("unreadable", str(error)) from None

    def make_sample(self, raw, rng):
        source, target, params = self.transform(raw, rng=rng)
        return source, target, action_vector(params)

    def _stack(self, samples, items):
        return {
            "source": np.stack([s[0] for s in samples]).astype("float32"),
            "target": np.stack([s[1] for s in samples]).astype("float32"),
            "action": np.stack([s[2] for s in samples]).astype("float32"),
        }

    def __getitem__(self, index):
        batch = super().__getitem__(index)
        batch.update(batch.pop(self.data_key))
        for key in ("context_indices", "target_indices"):
            value = batch.get(key)
            if isinstance(value, (list, tuple)):
                batch[key] = np.concatenate([np.asarray(v) for v in value], axis=1)
        return batch
