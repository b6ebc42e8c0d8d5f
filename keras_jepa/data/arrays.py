"""In-memory image arrays as a dataset with the contract of ``ImageFolderDataset``."""

import numpy as np

from keras_jepa.data.file_dataset import FileDataset, SkipSample


class ArrayImageDataset(FileDataset):
    """``ImageFolderDataset``'s batches from in-memory images (no folder needed).

    Same contract as ``ImageFolderDataset`` (per-epoch shuffling from ``(seed, epoch)``,
    augmentation per ``(seed, epoch, position)``, masks at the global step, ``labels``), over
    an array of ``(N, H, W, C)`` images: ``uint8`` in ``[0, 255]``, or floats in ``[0, 1]``
    (converted to ``uint8``).

    Example:

    >>> import numpy as np
    >>> from keras_jepa.data import image_transform
    >>> images = np.random.rand(10, 20, 20, 3).astype("float32")
    >>> ds = ArrayImageDataset(images, batch_size=4, transform=image_transform(16, seed=0),
    ...                        seed=0)
    >>> ds[0]["images"].shape, len(ds)
    ((4, 16, 16, 3), 2)
    """

    data_key = "images"

    def __init__(self, images, batch_size, transform=None, labels=None, **kwargs):
        images = np.asarray(images)
        if images.ndim != 4:
            raise ValueError(f"images must be (N, H, W, C); got shape {images.shape}.")
        if images.dtype != np.uint8:
            images = np.clip(np.round(images.astype("float32") * 255.0), 0, 255).astype("uint8")
        self.images = images
        paths = [f"<array {i}>" for i in range(len(images))]
        super().__init__(paths, labels, batch_size, transform, **kwargs)

    def read(self, path, rng):
        """The image of index ``path`` (``"<array i>"``)."""
        try:
            return self.images[int(path[len("<array "):-1])]
        except (ValueError, IndexError) as error:
            raise SkipSample("unreadable", str(error)) from None


def normalize_images(images):
    """Evaluation-time input of in-memory images: ImageNet normalisation, no crop.

    Example:

    >>> normalize_images(np.zeros((1, 4, 4, 3), "float32")).shape
    (1, 4, 4, 3)
    """
    from keras_jepa.data import Normalize

    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = np.clip(np.round(images.astype("float32") * 255.0), 0, 255).astype("uint8")
    norm = Normalize()
    return np.stack([norm(x) for x in images]).astype("float32")
