"""``ImageFolderDataset``: batches of augmented images from a folder or a list of files.

Loader mechanism: ``keras.utils.PyDataset`` with its ``workers`` (threads by default,
processes with ``use_multiprocessing=True``). It feeds ``fit`` on JAX, PyTorch and
TensorFlow alike; ``tf.data`` would make TensorFlow a requirement for JAX and PyTorch users,
and ``grain`` is not installed. PIL decodes and resizes in C without holding the GIL, so
thread workers run in parallel without pickling whole batches between processes (details in
``keras_jepa/data/file_dataset.py``).
"""

import os


from keras_jepa.data.file_dataset import FileDataset, SkipSample, scan_folder
from keras_jepa.data.image_io import open_rgb
from keras_jepa.data.transforms import image_transform

IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm",
)  # fmt: skip


class ImageFolderDataset(FileDataset):
    """Batches of images from a folder (recursive) or a list of paths, for ``model.fit``.

    Each batch is a dict of model inputs (no ``y``)::

        {"images": (B, H, W, 3) float32, **mask_sampler(B, step), "labels": (B,) int32}

    ``"labels"`` is present when the files have labels: a folder whose images are all in
    class subfolders (``root/<class>/**/<image>``; sorted class names give labels 0, 1, ...),
    or explicit ``labels`` with a list of paths. A flat folder has no labels.

    The order is reshuffled every epoch from ``(seed, epoch)`` and each image's augmentation
    is drawn from ``(seed, epoch, position)``, so batches are reproducible whatever the
    workers. Images that cannot be decoded are skipped with a warning, counted in
    ``skipped``, and replaced by the next image of the epoch's order.

    Args:
        source: a directory, or a list of image paths.
        batch_size: images per batch.
        image_size: output side of the default transform.
        transform: callable ``(PIL image[, rng=Generator]) -> (H, W, 3) float32`` array; by
            default I-JEPA's pretraining transform, ``image_transform(image_size)``
            (random resized crop, scale (0.3, 1.0), ImageNet normalisation). Use
            ``image_transform(size, training=False)`` for evaluation.
        labels: for a folder, ``"inferred"`` (default) or ``None``; for a list of paths,
            ``None`` or one int per path.
        shuffle: reshuffle the order every epoch.
        seed: int; ``None`` draws one (stored in ``.seed``).
        drop_remainder: drop the last incomplete batch so that every batch has
            ``batch_size`` images (static shapes: one compilation).
        mask_sampler: optional callable ``(batch_size, step) -> dict`` of numpy arrays (or
            lists of arrays) merged into the batch; ``step`` is the global batch index
            ``epoch * len(dataset) + index``, so masks are reproducible and resumable.
        extensions: file endings to keep when scanning a folder (case-insensitive).
        workers, use_multiprocessing, max_queue_size: ``keras.utils.PyDataset``'s parallel
            loading options (used by ``fit``/``evaluate``/``predict``).

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> root = tempfile.mkdtemp()
    >>> for label in ("cat", "dog"):
    ...     os.makedirs(os.path.join(root, label))
    ...     for i in range(3):
    ...         pixels = np.random.randint(0, 255, (40, 48, 3), dtype="uint8")
    ...         Image.fromarray(pixels).save(os.path.join(root, label, f"{i}.png"))
    >>> ds = ImageFolderDataset(root, batch_size=4, image_size=32, seed=0)
    >>> batch = ds[0]
    >>> batch["images"].shape, batch["labels"].shape, ds.class_names, len(ds)
    ((4, 32, 32, 3), (4,), ['cat', 'dog'], 1)
    """

    data_key = "images"
    skip_reasons = ("unreadable",)

    def __init__(
        self,
        source,
        batch_size,
        image_size=224,
        transform=None,
        labels="inferred",
        shuffle=True,
        seed=None,
        drop_remainder=True,
        mask_sampler=None,
        extensions=IMAGE_EXTENSIONS,
        workers=1,
        use_multiprocessing=False,
        max_queue_size=10,
    ):
        class_names = None
        if isinstance(source, (str, os.PathLike)):
            paths, labels, class_names = scan_folder(os.fspath(source), extensions, labels)
        elif isinstance(source, (list, tuple)):
            paths = list(source)
            if isinstance(labels, str):
                labels = None  # "inferred" means nothing for explicit paths
        else:
            raise TypeError(
                "source must be a directory or a list of image paths; got "
                f"{type(source).__name__}."
            )
        if transform is None:
            transform = image_transform(image_size)
        super().__init__(
            paths,
            labels,
            batch_size,
            transform,
            shuffle=shuffle,
            seed=seed,
            drop_remainder=drop_remainder,
            mask_sampler=mask_sampler,
            class_names=class_names,
            workers=workers,
            use_multiprocessing=use_multiprocessing,
            max_queue_size=max_queue_size,
        )

    def read(self, path, rng):
        """Decodes ``path`` to an RGB PIL image (skipped if PIL cannot read all of it)."""
        try:
            return open_rgb(path)
        except Exception as error:  # any decoder failure: missing, truncated, not an image
            raise SkipSample("unreadable", f"{type(error).__name__}: {error}") from None
