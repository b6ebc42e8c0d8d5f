"""Image and video transforms for the input pipeline (numpy and PIL, no backend tensors).

They run in the data loader's workers, before anything reaches the model, and output
channels-last ``float32``: an image is ``(H, W, 3)``, a clip ``(T, H, W, 3)``.

Inputs: a PIL image, a ``(H, W, C)`` array (an image), a ``(T, H, W, C)`` array or a list of
PIL frames (a clip). Geometric transforms keep the input's kind (PIL stays PIL, so a crop
and resize is one C call); :class:`Normalize` turns anything into a ``float32`` array.
A clip is always transformed as a whole: one crop box and one flip decision for all frames.

Randomness: every random transform owns a ``numpy.random.Generator`` (``seed=``), and every
call accepts ``rng=`` to use another one instead. The datasets of this package pass one
generator per sample, derived from ``(seed, epoch, position)``, so a sample's augmentation
does not depend on which worker made it. Transforms are plain picklable objects, as
multiprocessing workers need.

Recipes (see :func:`image_transform` and :func:`video_transform`):

- I-JEPA pretraining: random resized crop 224, scale (0.3, 1.0), aspect (3/4, 4/3), no flip,
  ImageNet mean/std.
- V-JEPA pretraining: the same crop on every frame, scale (0.3, 1.0), aspect (0.75, 1.35),
  horizontal flip, ImageNet mean/std.
- Evaluation: resize the short side to ``int(size * 256 / 224)`` then a centre crop; for video
  probes, V-JEPA's spatial views: resize the short side to ``size`` and take
  ``num_views`` (3) evenly spaced ``size`` x ``size`` crops along the long side.

Interpolation is PIL's (bilinear by default, as torchvision on PIL images). PIL filters
antialias when they shrink; the official video crop resizes with a bilinear kernel that does
not, which only matters when a crop is shrunk by a large factor.
"""

import inspect
import math
import numbers

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


# ----------------------------------------------------------------------------- helpers


def _pair(value, name):
    """An int side or an ``(height, width)`` pair, validated."""
    if isinstance(value, numbers.Integral):
        pair = (int(value), int(value))
    else:
        try:
            pair = tuple(int(v) for v in value)
        except TypeError:
            pair = ()
        if len(pair) != 2 or any(p != v for p, v in zip(pair, value)):
            raise ValueError(
                f"{name} must be an int or a (height, width) pair of ints; got {value!r}."
            )
    if min(pair) < 1:
        raise ValueError(f"{name} must be positive; got {value!r}.")
    return pair


def _range(value, name, low=None, high=None):
    """A ``(min, max)`` pair of positive floats with ``min <= max`` (and bounds)."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (min, max) pair of numbers; got {value!r}.")
    if not (lo > 0 and lo <= hi):
        raise ValueError(f"{name} must satisfy 0 < min <= max; got {value!r}.")
    if high is not None and hi > high:
        raise ValueError(f"{name} must be at most {high}; got {value!r}.")
    return lo, hi


def _resampling(interpolation):
    if interpolation not in _RESAMPLING:
        raise ValueError(
            f"interpolation must be one of {sorted(_RESAMPLING)}; got {interpolation!r}."
        )
    return _RESAMPLING[interpolation]


def _as_rng(seed):
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


class _Frames:
    """A view of any supported input as a list of frames, convertible back to its kind."""

    def __init__(self, x):
        if isinstance(x, Image.Image):
            self.kind, self.frames = "pil", [x]
        elif isinstance(x, (list, tuple)):
            if not x or not all(isinstance(f, (Image.Image, np.ndarray)) for f in x):
                raise TypeError(
                    "A clip given as a list must hold PIL images or (H, W, C) arrays; got "
                    f"{[type(f).__name__ for f in x][:4]}."
                )
            self.kind = "pil_list" if isinstance(x[0], Image.Image) else "array_list"
            self.frames = list(x)
        elif isinstance(x, np.ndarray):
            if x.ndim == 3:
                self.kind, self.frames = "array", [x]
            elif x.ndim == 4:
                self.kind, self.frames = "clip", list(x)
            else:
                raise ValueError(
                    "Expected a channels-last image (H, W, C) or clip (T, H, W, C); got an "
                    f"array of shape {x.shape}."
                )
        else:
            raise TypeError(
                "Expected a PIL image, a list of frames or a numpy array; got "
                f"{type(x).__name__}."
            )

    @property
    def size(self):
        """``(height, width)`` of the frames."""
        frame = self.frames[0]
        if isinstance(frame, Image.Image):
            return frame.height, frame.width
        return frame.shape[0], frame.shape[1]

    def map(self, fn):
        return [fn(frame) for frame in self.frames]

    def rebuild(self, frames):
        if self.kind in ("pil", "array"):
            return frames[0]
        if self.kind == "clip":
            return np.stack(frames)
        return frames


def _resize_frame(frame, out_hw, resample, box=None):
    """Resize (and optionally crop to ``box=(left, top, right, bottom)``) one frame."""
    out_wh = (out_hw[1], out_hw[0])
    if isinstance(frame, Image.Image):
        return frame.resize(out_wh, resample, box=box)
    if frame.dtype == np.uint8 and frame.shape[-1] in (1, 3, 4):
        squeeze = frame.shape[-1] == 1
        image = Image.fromarray(frame[..., 0] if squeeze else frame)
        out = np.asarray(image.resize(out_wh, resample, box=box))
        return out[..., None] if squeeze else out
    # Float (or other) arrays: resize each channel in PIL's 32-bit float mode.
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(frame[..., c], dtype=np.float32)).resize(
                out_wh, resample, box=box
            )
        )
        for c in range(frame.shape[-1])
    ]
    return np.stack(channels, axis=-1)


def _crop_frame(frame, top, left, height, width):
    if isinstance(frame, Image.Image):
        return frame.crop((left, top, left + width, top + height))
    return frame[top : top + height, left : left + width]


def _accepts_rng(fn):
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "rng" in parameters or any(
        p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


# ----------------------------------------------------------------------------- crop boxes


def sample_crop_box(height, width, scale, ratio, rng, attempts=10):
    """Draws a random-resized-crop box with torchvision's algorithm.

    Up to ``attempts`` times: draw an area fraction uniformly in ``scale`` and an aspect
    ratio (width / height) log-uniformly in ``ratio``; ``w = round(sqrt(area * r))``,
    ``h = round(sqrt(area / r))``; if the box fits, place it uniformly (inclusive bounds).
    Otherwise fall back to a centre crop of the whole frame, clamped to the ratio range.

    Args:
        height, width: frame size in pixels.
        scale: ``(min, max)`` fraction of the frame area.
        ratio: ``(min, max)`` aspect ratio, width over height.
        rng: a ``numpy.random.Generator``.
        attempts: number of draws before the fallback (torchvision: 10).

    Returns:
        ``(top, left, h, w)`` in pixels.

    Example:

    >>> import numpy as np
    >>> sample_crop_box(375, 500, (0.3, 1.0), (3 / 4, 4 / 3), np.random.default_rng(0))
    (15, 231, 285, 216)
    """
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(attempts):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    # Fallback: the largest centred box whose aspect ratio lies in the range.
    in_ratio = width / height
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


# ----------------------------------------------------------------------------- transforms


class RandomResizedCrop:
    """Crops a random box (area fraction and aspect ratio) and resizes it to ``size``.

    The box is drawn with torchvision's algorithm (:func:`sample_crop_box`: uniform area in
    ``scale``, log-uniform aspect in ``ratio``, 10 attempts, then a centre-crop fallback).
    A clip (``(T, H, W, C)`` array or list of frames) gets the SAME box on every frame.

    Args:
        size: output side, or ``(height, width)``.
        scale: ``(min, max)`` area fraction; I-JEPA and V-JEPA use ``(0.3, 1.0)``.
        ratio: ``(min, max)`` aspect ratio (width / height); torchvision's and I-JEPA's
            ``(3/4, 4/3)``; V-JEPA pretraining uses ``(0.75, 1.35)``.
        interpolation: ``"bilinear"`` (default), ``"bicubic"`` or ``"nearest"``.
        seed: int, ``numpy.random.Generator`` or ``None`` for the generator used when a call
            passes no ``rng``.

    Example:

    >>> import numpy as np
    >>> crop = RandomResizedCrop(32, seed=0)
    >>> crop(np.zeros((40, 48, 3), "uint8")).shape
    (32, 32, 3)
    >>> crop(np.zeros((4, 40, 48, 3), "uint8")).shape  # a clip: one box for all frames
    (4, 32, 32, 3)
    """

    def __init__(
        self,
        size,
        scale=(0.3, 1.0),
        ratio=(3 / 4, 4 / 3),
        interpolation="bilinear",
        seed=None,
    ):
        self.size = _pair(size, "size")
        self.scale = _range(scale, "scale", high=1.0)
        self.ratio = _range(ratio, "ratio")
        self.interpolation = interpolation
        self._resample = _resampling(interpolation)
        self.rng = _as_rng(seed)

    def get_params(self, height, width, rng=None):
        """The ``(top, left, h, w)`` box for a ``height`` x ``width`` frame."""
        return sample_crop_box(height, width, self.scale, self.ratio, rng or self.rng)

    def __call__(self, x, rng=None):
        frames = _Frames(x)
        top, left, h, w = self.get_params(*frames.size, rng=rng)
        box = (int(left), int(top), int(left + w), int(top + h))
        return frames.rebuild(
            frames.map(lambda f: _resize_frame(f, self.size, self._resample, box))
        )

    def __repr__(self):
        return (
            f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio}, "
            f"interpolation={self.interpolation!r})"
        )


class RandomHorizontalFlip:
    """Mirrors left-right with probability ``probability`` (one decision per clip).

    Args:
        probability: chance of a flip, in ``[0, 1]``.
        seed: int, ``numpy.random.Generator`` or ``None``.

    Example:

    >>> import numpy as np
    >>> image = np.arange(6, dtype="uint8").reshape(1, 2, 3)
    >>> RandomHorizontalFlip(1.0)(image)[0, :, 0].tolist()
    [3, 0]
    """

    def __init__(self, probability=0.5, seed=None):
        if not 0.0 <= float(probability) <= 1.0:
            raise ValueError(f"probability must be in [0, 1]; got {probability!r}.")
        self.probability = float(probability)
        self.rng = _as_rng(seed)

    def __call__(self, x, rng=None):
        rng = rng or self.rng
        frames = _Frames(x)
        if rng.uniform() >= self.probability:
            return x
        if frames.kind == "clip":
            return x[:, :, ::-1]
        return frames.rebuild(
            frames.map(
                lambda f: f.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                if isinstance(f, Image.Image)
                else f[:, ::-1]
            )
        )

    def __repr__(self):
        return f"RandomHorizontalFlip(probability={self.probability})"


class Normalize:
    """Converts to ``float32`` and normalises: ``(x / max_pixel_value - mean) / std``.

    Accepts any input kind (PIL, list of frames, arrays, nested lists of views) and returns a
    channels-last ``float32`` array.

    Args:
        mean: per-channel mean on the ``[0, 1]`` scale (default ImageNet's).
        std: per-channel standard deviation on the ``[0, 1]`` scale (default ImageNet's).
        max_pixel_value: the value that maps to 1 (255 for ``uint8`` pixels).

    Example:

    >>> import numpy as np
    >>> Normalize()(np.full((1, 1, 3), 255, "uint8"))[0, 0].round(3)
    array([2.249, 2.429, 2.64 ], dtype=float32)
    """

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD, max_pixel_value=255.0):
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) != len(self.std):
            raise ValueError(
                f"mean and std must have one value per channel; got mean={mean!r}, "
                f"std={std!r}."
            )
        if min(self.std) <= 0:
            raise ValueError(f"std must be positive; got {std!r}.")
        if not max_pixel_value > 0:
            raise ValueError(f"max_pixel_value must be positive; got {max_pixel_value!r}.")
        self.max_pixel_value = float(max_pixel_value)
        std = np.asarray(self.std, "float64")
        self._scale = (1.0 / (self.max_pixel_value * std)).astype("float32")
        self._offset = (np.asarray(self.mean, "float64") / std).astype("float32")
        # uint8 inputs: a (256, C) lookup table (exact, and faster than arithmetic).
        levels = np.arange(256, dtype="float64")[:, None]
        self._table = ((levels / self.max_pixel_value - self.mean) / std).astype("float32")

    @staticmethod
    def _to_array(x):
        if isinstance(x, Image.Image):
            return np.asarray(x)
        if isinstance(x, (list, tuple)):
            return np.stack([Normalize._to_array(e) for e in x])
        return np.asarray(x)

    def __call__(self, x, rng=None):
        array = self._to_array(x)
        if array.shape[-1] != len(self.mean):
            raise ValueError(
                f"Normalize has {len(self.mean)} channel statistics but the input has "
                f"{array.shape[-1]} channels (shape {array.shape}); inputs are channels-last."
            )
        if array.dtype == np.uint8:
            out = np.empty(array.shape, dtype="float32")
            for c in range(array.shape[-1]):
                np.take(self._table[:, c], array[..., c], out=out[..., c])
            return out
        out = array.astype("float32")
        out *= self._scale
        out -= self._offset
        return out

    def __repr__(self):
        return f"Normalize(mean={self.mean}, std={self.std})"


class ResizeShortSide:
    """Resizes so that the shorter side is ``size`` (the longer side: ``int(size * long /
    short)``, as torchvision's ``Resize(int)``), keeping the aspect ratio.

    Args:
        size: target length of the shorter side.
        interpolation: ``"bilinear"`` (default), ``"bicubic"`` or ``"nearest"``.

    Example:

    >>> import numpy as np
    >>> ResizeShortSide(30)(np.zeros((40, 48, 3), "uint8")).shape
    (30, 36, 3)
    """

    def __init__(self, size, interpolation="bilinear"):
        if not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"size must be a positive int; got {size!r}.")
        self.size = int(size)
        self.interpolation = interpolation
        self._resample = _resampling(interpolation)

    def output_size(self, height, width):
        """``(height, width)`` after resizing a ``height`` x ``width`` frame."""
        if height <= width:
            return self.size, int(self.size * width / height)
        return int(self.size * height / width), self.size

    def __call__(self, x, rng=None):
        frames = _Frames(x)
        out_hw = self.output_size(*frames.size)
        if out_hw == frames.size:
            return x
        return frames.rebuild(frames.map(lambda f: _resize_frame(f, out_hw, self._resample)))

    def __repr__(self):
        return f"ResizeShortSide(size={self.size}, interpolation={self.interpolation!r})"


class CenterCrop:
    """Crops the centre ``size`` box (top-left at ``round((H - h) / 2)``, as torchvision).

    Args:
        size: output side, or ``(height, width)``; must fit in the input.

    Example:

    >>> import numpy as np
    >>> CenterCrop(32)(np.zeros((40, 48, 3), "uint8")).shape
    (32, 32, 3)
    """

    def __init__(self, size):
        self.size = _pair(size, "size")

    def __call__(self, x, rng=None):
        frames = _Frames(x)
        height, width = frames.size
        h, w = self.size
        if h > height or w > width:
            raise ValueError(
                f"CenterCrop of {self.size} does not fit in a {height}x{width} input; "
                "resize first (e.g. ResizeShortSide)."
            )
        top, left = int(round((height - h) / 2.0)), int(round((width - w) / 2.0))
        return frames.rebuild(frames.map(lambda f: _crop_frame(f, top, left, h, w)))

    def __repr__(self):
        return f"CenterCrop(size={self.size})"


class SpatialViews:
    """V-JEPA's multi-view evaluation crops: ``num_views`` ``size`` x ``size`` crops evenly
    spaced along the longer side (first at the start, last at the end).

    The input's shorter side must already be ``size`` (use :class:`ResizeShortSide` first).
    The step between views is ``(long - size) // (num_views - 1)``; one view is a centre
    crop. Views are stacked on a new leading axis: an image gives ``(V, size, size, C)``,
    a clip ``(V, T, size, size, C)`` (PIL inputs give a list of views).

    Args:
        size: crop side (the resized short side).
        num_views: number of crops (V-JEPA's video protocol: 3).

    Example:

    >>> import numpy as np
    >>> clip = np.zeros((2, 32, 48, 3), "uint8")
    >>> SpatialViews(32, num_views=3)(clip).shape
    (3, 2, 32, 32, 3)
    """

    def __init__(self, size, num_views=3):
        if not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"size must be a positive int; got {size!r}.")
        if not isinstance(num_views, numbers.Integral) or num_views < 1:
            raise ValueError(f"num_views must be a positive int; got {num_views!r}.")
        self.size = int(size)
        self.num_views = int(num_views)

    def offsets(self, height, width):
        """``[(top, left), ...]`` of the views in a ``height`` x ``width`` frame."""
        side = self.size
        if min(height, width) != side:
            raise ValueError(
                f"SpatialViews({side}) needs the shorter side to be {side}; got a "
                f"{height}x{width} input. Put ResizeShortSide({side}) before it."
            )
        if self.num_views == 1:
            return [((height - side) // 2, (width - side) // 2)]
        step = (max(height, width) - side) // (self.num_views - 1)
        if height > width:
            return [(i * step, 0) for i in range(self.num_views)]
        return [(0, i * step) for i in range(self.num_views)]

    def __call__(self, x, rng=None):
        frames = _Frames(x)
        views = []
        for top, left in self.offsets(*frames.size):
            crop = frames.map(lambda f: _crop_frame(f, top, left, self.size, self.size))
            views.append(frames.rebuild(crop))
        if frames.kind in ("array", "clip"):
            return np.stack(views)
        return views

    def __repr__(self):
        return f"SpatialViews(size={self.size}, num_views={self.num_views})"


class Compose:
    """Chains transforms; one generator is threaded through all of them.

    Each transform is called as ``t(x, rng=rng)`` if it takes an ``rng`` argument, else
    ``t(x)``; ``rng`` is the call's ``rng`` or this object's own generator.

    Args:
        transforms: list of callables.
        seed: int, ``numpy.random.Generator`` or ``None``.

    Example:

    >>> import numpy as np
    >>> t = Compose([RandomResizedCrop(32), RandomHorizontalFlip(), Normalize()], seed=0)
    >>> t(np.zeros((40, 48, 3), "uint8")).dtype
    dtype('float32')
    """

    def __init__(self, transforms, seed=None):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose takes callables; got {t!r}.")
        self._takes_rng = [_accepts_rng(t) for t in self.transforms]
        self.rng = _as_rng(seed)

    def __call__(self, x, rng=None):
        rng = rng or self.rng
        for t, takes_rng in zip(self.transforms, self._takes_rng):
            x = t(x, rng=rng) if takes_rng else t(x)
        return x

    def __repr__(self):
        inner = ",\n    ".join(repr(t) for t in self.transforms)
        return f"Compose([\n    {inner}\n])"


# ----------------------------------------------------------------------------- recipes


def image_transform(
    size=224,
    training=True,
    scale=(0.3, 1.0),
    ratio=(3 / 4, 4 / 3),
    flip=False,
    resize_size=None,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    interpolation="bilinear",
    seed=None,
):
    """The image pipeline: I-JEPA's pretraining recipe, or the standard evaluation one.

    Training: :class:`RandomResizedCrop` (``scale``, ``ratio``), an optional flip (I-JEPA:
    none), :class:`Normalize`. Evaluation (``training=False``): :class:`ResizeShortSide` to
    ``resize_size`` (default ``int(size * 256 / 224)``), :class:`CenterCrop`, normalise.

    Returns:
        A :class:`Compose` mapping a PIL image or ``(H, W, C)`` array to a
        ``(size, size, 3)`` ``float32`` array.

    Example:

    >>> import numpy as np
    >>> image = np.zeros((375, 500, 3), "uint8")
    >>> image_transform(224, seed=0)(image).shape
    (224, 224, 3)
    >>> image_transform(224, training=False)(image).shape
    (224, 224, 3)
    """
    normalize = Normalize(mean, std)
    if training:
        steps = [RandomResizedCrop(size, scale, ratio, interpolation)]
        if flip:
            steps.append(RandomHorizontalFlip())
    else:
        side = _pair(size, "size")
        resize_size = resize_size or int(min(side) * 256 / 224)
        steps = [ResizeShortSide(resize_size, interpolation), CenterCrop(size)]
    return Compose(steps + [normalize], seed=seed)


def video_transform(
    size=224,
    training=True,
    scale=(0.3, 1.0),
    ratio=(0.75, 1.35),
    flip=True,
    num_views=1,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    interpolation="bilinear",
    seed=None,
):
    """The clip pipeline: V-JEPA's pretraining recipe, or its evaluation crops.

    Training: :class:`RandomResizedCrop` with the same box on every frame (V-JEPA: scale
    (0.3, 1.0), aspect (0.75, 1.35)), a horizontal flip of the whole clip, normalise.
    Evaluation with ``num_views=1``: resize the short side to ``int(size * 256 / 224)`` and
    centre-crop. Evaluation with ``num_views > 1`` (V-JEPA's probes: 3): resize the short
    side to ``size`` and take :class:`SpatialViews`, giving ``(num_views, T, size, size, 3)``.

    Returns:
        A :class:`Compose` mapping a ``(T, H, W, C)`` array or list of frames to a
        ``float32`` array.

    Example:

    >>> import numpy as np
    >>> clip = np.zeros((16, 240, 320, 3), "uint8")
    >>> video_transform(224, seed=0)(clip).shape
    (16, 224, 224, 3)
    >>> video_transform(224, training=False, num_views=3)(clip).shape
    (3, 16, 224, 224, 3)
    """
    normalize = Normalize(mean, std)
    if training:
        steps = [RandomResizedCrop(size, scale, ratio, interpolation)]
        if flip:
            steps.append(RandomHorizontalFlip())
    elif num_views == 1:
        side = _pair(size, "size")
        steps = [ResizeShortSide(int(min(side) * 256 / 224), interpolation), CenterCrop(size)]
    else:
        if not isinstance(size, numbers.Integral):
            raise ValueError(f"Spatial views need an int size; got {size!r}.")
        steps = [ResizeShortSide(size, interpolation), SpatialViews(size, num_views)]
    return Compose(steps + [normalize], seed=seed)
