"""Frozen-encoder features: batched, compiled extraction and the V-JEPA view protocols.

Protocols (facts: research ``jepa-reference.md`` §2.5, §3.2):

* **Video, multi-clip x multi-view** (K400 16x8x3, SSv2 16x2x3): each video gives ``S``
  temporal segments (``clip_indices(..., num_clips=S)``) and each segment ``V`` spatial
  views (``SpatialViews``: short side resized to ``S_px``, ``V`` crops along the long side).
  The encoder runs on every (segment, view) clip; for each view the tokens of all segments
  are concatenated along time (``ClipAggregation(attend_across_segments=True)``: no extra
  temporal position embedding), so one probe call attends across segments; the softmax
  probabilities are then averaged over views (``keras_jepa.evaluation.aggregate_views``).
* **Images on a video model**: the image is repeated ``16x`` along time (the official
  forward pre-hook; ``in1k-16f``).
* **Images**: resize the short side to ``int(S * 256 / 224)``, centre crop ``S``, ImageNet
  normalisation (``keras_jepa.data.image_transform(S, training=False)``).

:class:`FeatureExtractor` wraps any ``VisionTransformer`` (a preset, a pretrained encoder,
or a random one) into a Keras model that does the reshapes above inside the compiled
forward; :func:`extract_features` runs it over an array or a dataset with a progress bar,
returning numpy arrays or writing ``.npy`` files.
"""

import math
import os

import keras
import numpy as np
from keras import ops

IMAGE_AS_VIDEO_FRAMES = 16


def images_as_video(images, num_frames=IMAGE_AS_VIDEO_FRAMES):
    """Repeats images ``(..., H, W, C)`` along a new time axis: ``(..., T, H, W, C)``, the
    official way to feed images to a video encoder (``T = 16``). Works on numpy arrays and
    backend tensors.

    Example:

    >>> images_as_video(np.zeros((2, 8, 8, 3)), num_frames=4).shape
    (2, 4, 8, 8, 3)
    """
    if isinstance(images, np.ndarray):
        return np.repeat(images[..., None, :, :, :], num_frames, axis=-4)
    x = ops.expand_dims(images, axis=-4)
    return ops.repeat(x, num_frames, axis=-4)


def segment_tokens(tokens, num_segments, num_views=1):
    """Reorders encoder outputs of (sample, segment, view)-major clips into per-view token
    sequences that concatenate the segments along time.

    Args:
        tokens: ``(B * S * V, N, D)``, row ``(b * S + s) * V + v`` for sample ``b``,
            segment ``s``, view ``v`` (tokens of one clip in ``(t, h, w)`` order).
        num_segments: ``S``.
        num_views: ``V``.

    Returns:
        ``(B, V, S * N, D)``: for each view, segment 0's tokens, then segment 1's, ...
        (the official concatenation along time, since each segment's tokens are time-major).

    Example:

    >>> t = np.arange(2 * 3 * 2 * 4).reshape(2 * 3 * 2, 4, 1).astype("float32")
    >>> out = segment_tokens(t, num_segments=3, num_views=2)
    >>> tuple(out.shape), np.asarray(out)[0, 1, :, 0].tolist()[:6]
    ((2, 2, 12, 1), [4.0, 5.0, 6.0, 7.0, 12.0, 13.0])
    """
    n, d = tokens.shape[-2], tokens.shape[-1]
    x = ops.reshape(tokens, (-1, num_segments, num_views, n, d))
    x = ops.transpose(x, (0, 2, 1, 3, 4))
    return ops.reshape(x, (-1, num_views, num_segments * n, d))


@keras.saving.register_keras_serializable(package="keras_jepa")
class FeatureExtractor(keras.Model):
    """A frozen encoder plus the evaluation protocol's reshapes, for ``predict``.

    Input: one sample per row, with optional segment and view axes before the encoder's
    input: ``(B, [S,] [V,] T, H, W, C)`` for a video encoder (``S = num_segments`` and
    ``V = num_views``, each axis present only when > 1, the layout of ``VideoDataset`` with
    ``num_clips=S`` and ``video_transform(..., num_views=V)``), or ``(B, [V,] H, W, C)``
    images (repeated ``image_frames`` times along time for a video encoder).

    Output: tokens ``(B, [V,] S * N, D)`` with the segments concatenated along time, or with
    ``pool="mean"`` their mean over tokens, ``(B, [V,] D)``.

    Args:
        encoder: a ``VisionTransformer`` (any Keras model mapping inputs to ``(B, N, D)``).
        num_segments, num_views: see above.
        pool: ``None`` (all tokens) or ``"mean"``.
        image_frames: frames when images go to a video encoder (official: 16).

    Example:

    >>> from keras_jepa.models import VisionTransformer
    >>> enc = VisionTransformer(image_size=16, patch_size=8, num_frames=4, hidden_dim=8,
    ...                         depth=1, num_heads=2)
    >>> ext = FeatureExtractor(enc, num_segments=2, num_views=3)
    >>> tuple(ext.predict_on_batch(np.zeros((1, 2, 3, 4, 16, 16, 3), "float32")).shape)
    (1, 3, 16, 8)
    >>> tuple(FeatureExtractor(enc, pool="mean", image_frames=4).predict_on_batch(
    ...     np.zeros((2, 16, 16, 3), "float32")).shape)
    (2, 8)
    """

    def __init__(self, encoder, num_segments=1, num_views=1, pool=None,
                 image_frames=IMAGE_AS_VIDEO_FRAMES, **kwargs):
        super().__init__(**kwargs)
        if pool not in (None, "mean"):
            raise ValueError(f'pool must be None or "mean"; got {pool!r}.')
        for name, value in (("num_segments", num_segments), ("num_views", num_views),
                            ("image_frames", image_frames)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}.")
        self.encoder = encoder
        self.encoder.trainable = False
        self.num_segments = int(num_segments)
        self.num_views = int(num_views)
        self.pool = pool
        self.image_frames = int(image_frames)

    @property
    def _video(self):
        return bool(getattr(self.encoder, "is_video", False))

    def _sample_rank(self, ndim):
        """Rank of one encoder input (without batch), given the data rank."""
        lead = (self.num_segments > 1) + (self.num_views > 1)
        return ndim - 1 - lead

    def call(self, inputs):
        x = inputs
        shape = tuple(x.shape)
        rank = self._sample_rank(len(shape))
        if rank == 3 and self._video:
            if self.num_segments > 1:
                raise ValueError("Images have no temporal segments; use num_segments=1.")
            x = images_as_video(x, self.image_frames)
            rank = 4
        if rank not in (3, 4):
            raise ValueError(
                f"Input of shape {shape} does not match num_segments={self.num_segments}, "
                f"num_views={self.num_views}: expected (B, [S,] [V,] T, H, W, C) or "
                "(B, [V,] H, W, C).")
        sample = tuple(x.shape[-rank:])
        x = ops.reshape(x, (-1,) + sample)
        tokens = self.encoder(x)
        tokens = segment_tokens(tokens, self.num_segments, self.num_views)
        if self.num_views == 1:
            tokens = tokens[:, 0]
        if self.pool == "mean":
            tokens = ops.mean(tokens, axis=-2)
        return tokens

    def get_config(self):
        config = super().get_config()
        config.update({
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "num_segments": self.num_segments, "num_views": self.num_views,
            "pool": self.pool, "image_frames": self.image_frames,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)


def _batches(data, batch_size):
    """Yields ``(x, labels or None)`` batches and gives the number of samples and steps."""
    if isinstance(data, keras.utils.PyDataset):
        key = getattr(data, "data_key", None)
        if hasattr(data, "paths") and not getattr(data, "drop_remainder", True):
            total = len(data.paths)
        else:
            total = len(data) * getattr(data, "batch_size", 0)

        def gen():
            for i in range(len(data)):
                batch = data[i]
                if isinstance(batch, dict):
                    x = batch[key] if key in batch else batch.get(
                        "images", batch.get("videos"))
                    yield x, batch.get("labels")
                elif isinstance(batch, (tuple, list)):
                    yield batch[0], (batch[1] if len(batch) > 1 else None)
                else:
                    yield batch, None

        return gen(), total or None, len(data)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, labels = np.asarray(data[0]), np.asarray(data[1])
    else:
        x, labels = np.asarray(data), None
    n = x.shape[0]

    def gen():
        for start in range(0, n, batch_size):
            yield x[start:start + batch_size], (
                None if labels is None else labels[start:start + batch_size])

    return gen(), n, math.ceil(n / batch_size)


def extract_features(encoder, data, batch_size=32, pool="mean", output=None,
                     num_segments=1, num_views=1, image_frames=IMAGE_AS_VIDEO_FRAMES,
                     dtype="float32", verbose=1):
    """Runs a frozen encoder over data and returns (or saves) its features.

    Args:
        encoder: a ``VisionTransformer`` (e.g. ``VisionTransformer.from_preset(name)``) or
            a :class:`FeatureExtractor`.
        data: an array of model inputs ``(N, ...)``, an ``(inputs, labels)`` pair, or a
            dataset (``ImageFolderDataset`` / ``VideoDataset`` / any ``PyDataset`` whose
            batches are dicts with ``"images"``/``"videos"`` and ``"labels"``; use
            ``shuffle=False``, ``drop_remainder=False`` and the evaluation transform).
        batch_size: rows per forward pass for arrays (a dataset uses its own).
        pool: ``"mean"`` (``(N, [V,] D)``) or ``None`` (all tokens, ``(N, [V,] S*N_tok, D)``).
        output: ``None``, or a path ``features.npy``: the features are written there (as a
            memory-mapped ``.npy`` filled batch by batch) and the labels, if any, next to it
            as ``features_labels.npy``.
        num_segments, num_views, image_frames: the protocol (see :class:`FeatureExtractor`).
        dtype: dtype of the returned features.
        verbose: 1 shows a Keras progress bar.

    Returns:
        ``(features, labels)``: numpy arrays (``labels`` is ``None`` without labels); with
        ``output`` the features are a read-only memory map of the file.

    Example:

    >>> from keras_jepa.models import VisionTransformer
    >>> enc = VisionTransformer(image_size=16, patch_size=8, hidden_dim=8, depth=1,
    ...                         num_heads=2)
    >>> feats, labels = extract_features(enc, (np.zeros((5, 16, 16, 3)), np.arange(5)),
    ...                                  batch_size=2, verbose=0)
    >>> feats.shape, labels.tolist()
    ((5, 8), [0, 1, 2, 3, 4])
    """
    if isinstance(encoder, FeatureExtractor):
        extractor = encoder
    else:
        extractor = FeatureExtractor(encoder, num_segments=num_segments, num_views=num_views,
                                     pool=pool, image_frames=image_frames)
    batches, total, steps = _batches(data, batch_size)
    bar = keras.utils.Progbar(steps, unit_name="batch") if verbose else None
    store, labels, filled = None, [], 0
    chunks = []
    for step, (x, y) in enumerate(batches):
        out = np.asarray(ops.convert_to_numpy(
            extractor.predict_on_batch(np.asarray(x, dtype="float32")))).astype(dtype)
        if output is not None:
            if store is None:
                folder = os.path.dirname(os.path.abspath(output))
                os.makedirs(folder, exist_ok=True)
                store = np.lib.format.open_memmap(
                    output, mode="w+", dtype=dtype, shape=(total or out.shape[0] * steps,)
                    + out.shape[1:])
            store[filled:filled + out.shape[0]] = out
        else:
            chunks.append(out)
        filled += out.shape[0]
        if y is not None:
            labels.append(np.asarray(y))
        if bar is not None:
            bar.update(step + 1)
    labels = np.concatenate(labels) if labels else None
    if output is None:
        return np.concatenate(chunks, axis=0), labels
    store.flush()
    del store
    if labels is not None:
        np.save(_labels_path(output), labels)
    features = np.load(output, mmap_mode="r")
    return features[:filled], labels


def _labels_path(output):
    root, ext = os.path.splitext(output)
    return f"{root}_labels{ext or '.npy'}"
