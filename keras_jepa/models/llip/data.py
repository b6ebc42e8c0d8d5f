"""Image-text data for contrastive vision-language models (Llip, SigLIP, CLIP).

* :func:`make_caption_scenes`: synthetic scenes of several coloured shapes on a grid, each
  image with several captions that each mention a *subset* of its objects (the caption
  diversity Llip models). Rendering is vectorised numpy.
* :class:`ImageCaptionArrays`: batches from in-memory images and captions.
* :class:`ImageTextDataset`: images from a folder plus a CSV or JSONL of captions
  (:meth:`ImageTextDataset.from_captions_file`), or from tar shards in the webdataset
  layout (:meth:`ImageTextDataset.from_webdataset`).

Every batch is ``{"images": (B, H, W, 3) float32, "token_ids": (B, L) int32}`` with one
caption per image, drawn anew each epoch from ``(seed, epoch, position)``.
"""

import csv
import io
import json
import os
import tarfile

import keras
import numpy as np

from keras_jepa.data.file_dataset import FileDataset, SkipSample
from keras_jepa.data.image_folder import IMAGE_EXTENSIONS
from keras_jepa.data.image_io import open_rgb
from keras_jepa.data.transforms import image_transform

SCENE_SHAPES = ("square", "circle", "triangle", "cross", "ring", "diamond")
SCENE_COLORS = {
    "red": (0.9, 0.1, 0.1), "green": (0.1, 0.8, 0.2), "blue": (0.15, 0.3, 0.95),
    "yellow": (0.95, 0.9, 0.1), "magenta": (0.9, 0.2, 0.85), "cyan": (0.1, 0.85, 0.9),
    "white": (0.95, 0.95, 0.95), "orange": (1.0, 0.55, 0.05),
}  # fmt: skip
SCENE_PIXEL_MEAN, SCENE_PIXEL_STD = 0.3, 0.3
_ROWS = {1: ("",), 2: ("top", "bottom"), 3: ("top", "middle", "bottom")}
_COLS = {1: ("",), 2: ("left", "right"), 3: ("left", "center", "right")}


def _shape_masks(size):
    """(len(SCENE_SHAPES), size, size) bool masks of each shape centred in a cell."""
    c = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype("float64")
    dy, dx = (y - c) / (size / 2.0), (x - c) / (size / 2.0)
    r = np.sqrt(dx**2 + dy**2)
    masks = {
        "square": (np.abs(dx) < 0.62) & (np.abs(dy) < 0.62),
        "circle": r < 0.72,
        "triangle": (dy < 0.6) & (dy > -0.7) & (np.abs(dx) < (dy + 0.7) * 0.55),
        "cross": ((np.abs(dx) < 0.22) | (np.abs(dy) < 0.22)) & (np.abs(dx) < 0.75)
        & (np.abs(dy) < 0.75),
        "ring": (r < 0.75) & (r > 0.42),
        "diamond": np.abs(dx) + np.abs(dy) < 0.8,
    }
    return np.stack([masks[name] for name in SCENE_SHAPES])


def _position_names(grid):
    rows, cols = _ROWS[grid], _COLS[grid]
    names = []
    for r in rows:
        for col in cols:
            if r == "middle" and col == "center":
                names.append("center")
            else:
                names.append(" ".join(w for w in (r, col) if w))
    return names


def make_caption_scenes(num_images, image_size=32, grid=2, objects_per_image=None,
                        captions_per_image=4, objects_per_caption=(2, 2), num_shapes=4,
                        num_colors=6, noise=0.05, standardize=True, seed=0):
    """Synthetic multi-object scenes with diverse, partial captions.

    The image is a ``grid x grid`` array of cells; ``objects_per_image`` cells hold a shape
    (one of ``num_shapes``) in a colour (one of ``num_colors``) on a dark background with
    pixel noise. Each caption names a random subset of ``objects_per_caption`` (a range)
    of the image's objects with their positions, e.g. ``"a red circle top left and a blue
    square bottom right"``, so no caption describes the whole image: a single image vector
    must average over captions, which is what Llip's caption-conditioned mixing avoids.

    Args:
        num_images: number of scenes.
        image_size: side in pixels (divisible by ``grid``).
        grid: cells per side (1 to 3).
        objects_per_image: occupied cells (default: all).
        captions_per_image: captions per image.
        objects_per_caption: ``(min, max)`` objects named per caption.
        num_shapes, num_colors: how many of ``SCENE_SHAPES`` / ``SCENE_COLORS`` to use.
        noise: std of the Gaussian pixel noise.
        standardize: return ``(pixels - 0.3) / 0.3`` (about zero mean and unit variance)
            instead of pixels in ``[0, 1]``. From-scratch contrastive training of a small
            ViT stalls on the raw pixels: the sin-cos positions then dominate the patch
            embeddings and every image gets nearly the same vector.
        seed: random seed.

    Returns:
        dict with ``"images"`` ``(N, S, S, 3)`` float32, ``"captions"``
        (a list of ``N`` lists of strings), ``"objects"`` ``(N, grid * grid, 2)`` int32
        (shape, colour; -1 for an empty cell), ``"shape_names"``, ``"color_names"``,
        ``"position_names"``.

    Example:

    >>> scenes = make_caption_scenes(3, image_size=16, grid=2, captions_per_image=2, seed=0)
    >>> scenes["images"].shape, len(scenes["captions"][0])
    ((3, 16, 16, 3), 2)
    """
    if grid not in _ROWS:
        raise ValueError(f"grid must be 1, 2 or 3; got {grid!r}.")
    if image_size % grid:
        raise ValueError(f"image_size={image_size} is not divisible by grid={grid}.")
    cells = grid * grid
    objects_per_image = cells if objects_per_image is None else int(objects_per_image)
    if not 1 <= objects_per_image <= cells:
        raise ValueError(f"objects_per_image must be in [1, {cells}]; got {objects_per_image}.")
    low, high = (int(v) for v in objects_per_caption)
    if not 1 <= low <= high <= objects_per_image:
        raise ValueError(
            f"objects_per_caption must satisfy 1 <= min <= max <= objects_per_image="
            f"{objects_per_image}; got {objects_per_caption}."
        )
    if not (1 <= num_shapes <= len(SCENE_SHAPES) and 1 <= num_colors <= len(SCENE_COLORS)):
        raise ValueError(
            f"num_shapes must be in [1, {len(SCENE_SHAPES)}] and num_colors in "
            f"[1, {len(SCENE_COLORS)}]; got {num_shapes} and {num_colors}."
        )
    rng = np.random.default_rng(seed)
    n, cell = int(num_images), image_size // grid
    occupied = np.argsort(rng.random((n, cells)), axis=1)[:, :objects_per_image]
    present = np.zeros((n, cells), bool)
    np.put_along_axis(present, occupied, True, axis=1)
    shapes = rng.integers(0, num_shapes, (n, cells))
    colors = rng.integers(0, num_colors, (n, cells))
    objects = np.where(present[..., None], np.stack([shapes, colors], -1), -1).astype("int32")

    # Rendering: one mask lookup and one colour lookup per cell, for all images at once.
    masks = _shape_masks(cell)[shapes] & present[..., None, None]  # (N, cells, c, c)
    palette = np.asarray(list(SCENE_COLORS.values()), "float32")[colors]  # (N, cells, 3)
    background = np.float32(0.08)
    pixels = np.where(masks[..., None], palette[:, :, None, None, :], background)
    pixels = pixels.reshape(n, grid, grid, cell, cell, 3).transpose(0, 1, 3, 2, 4, 5)
    images = pixels.reshape(n, image_size, image_size, 3)
    images = images + noise * rng.standard_normal(images.shape).astype("float32")
    if standardize:
        images = (images - SCENE_PIXEL_MEAN) / SCENE_PIXEL_STD

    shape_names = SCENE_SHAPES[:num_shapes]
    color_names = list(SCENE_COLORS)[:num_colors]
    positions = _position_names(grid)
    captions = []
    for i in range(n):
        cells_i = np.flatnonzero(present[i])
        mine, seen = [], set()
        for _ in range(captions_per_image):
            # Distinct subsets while there are any left (a few redraws at most).
            for _attempt in range(8):
                k = int(rng.integers(low, high + 1))
                chosen = rng.permutation(cells_i)[:k]
                if frozenset(chosen.tolist()) not in seen:
                    break
            seen.add(frozenset(chosen.tolist()))
            parts = []
            for c in chosen:
                where = f" {positions[c]}" if positions[c] else ""
                parts.append(
                    f"a {color_names[colors[i, c]]} {shape_names[shapes[i, c]]}{where}"
                )
            mine.append(" and ".join(parts))
        captions.append(mine)
    return {
        "images": images.astype("float32"),
        "captions": captions,
        "objects": objects,
        "shape_names": list(shape_names),
        "color_names": color_names,
        "position_names": positions,
    }


def flatten_captions(captions):
    """``[[c00, c01], [c10]]`` -> ``(["c00", "c01", "c10"], array([0, 0, 1]))``: every
    caption and the index of its image (for retrieval metrics).

    Example:

    >>> flatten_captions([["a", "b"], ["c"]])[1].tolist()
    [0, 0, 1]
    """
    texts, owners = [], []
    for i, caps in enumerate(captions):
        texts.extend(caps)
        owners.extend([i] * len(caps))
    return texts, np.asarray(owners, "int32")


def _pick_captions(token_ids, counts, items, seed, epoch, position0):
    """One caption per item, drawn from ``(seed, epoch, position)``."""
    picks = np.empty(len(items), "int64")
    for j, item in enumerate(items):
        rng = np.random.default_rng([seed, 2, epoch, position0 + j])
        picks[j] = rng.integers(0, counts[item])
    return token_ids[np.asarray(items), picks]


def _tokenize_lists(captions, tokenizer):
    """Token ids ``(N, P, L)`` (padded with the first caption) and counts ``(N,)``."""
    counts = np.asarray([len(c) for c in captions], "int32")
    if counts.min(initial=1) < 1:
        bad = int(np.argmin(counts))
        raise ValueError(f"Image {bad} has no caption; every image needs at least one.")
    most = int(counts.max())
    flat, _ = flatten_captions([list(c) + [c[0]] * (most - len(c)) for c in captions])
    return tokenizer.encode(flat).reshape(len(captions), most, -1), counts


class ImageCaptionArrays(keras.utils.PyDataset):
    """Batches ``{"images", "token_ids"}`` from in-memory images and caption lists.

    Args:
        images: ``(N, H, W, C)`` float array.
        captions: ``N`` lists of strings (one or more per image).
        tokenizer: an object with ``encode(list[str]) -> (n, L)`` (see
            :mod:`keras_jepa.models.llip.tokenizers`).
        batch_size: images per batch (remainder dropped: static shapes).
        shuffle: reshuffle every epoch (from ``(seed, epoch)``).
        seed: int.

    Example:

    >>> import numpy as np
    >>> from keras_jepa.models.llip.tokenizers import ByteTokenizer
    >>> ds = ImageCaptionArrays(np.zeros((4, 8, 8, 3)), [["a"], ["b", "c"], ["d"], ["e"]],
    ...                         ByteTokenizer(8), batch_size=2)
    >>> batch = ds[0]
    >>> batch["images"].shape, batch["token_ids"].shape, len(ds)
    ((2, 8, 8, 3), (2, 8), 2)
    """

    def __init__(self, images, captions, tokenizer, batch_size, shuffle=True, seed=0,
                 **kwargs):
        super().__init__(**kwargs)
        self.images = np.asarray(images, "float32")
        if len(captions) != len(self.images):
            raise ValueError(
                f"Got {len(self.images)} images but {len(captions)} caption lists."
            )
        if not 1 <= int(batch_size) <= len(self.images):
            raise ValueError(
                f"batch_size must be in [1, {len(self.images)}]; got {batch_size!r}."
            )
        self.token_ids, self.counts = _tokenize_lists(captions, tokenizer)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self):
        return len(self.images) // self.batch_size

    def on_epoch_end(self):
        self.epoch += 1

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index {index} out of range for {len(self)} batches.")
        n = len(self.images)
        order = (np.random.default_rng([self.seed, 0, self.epoch]).permutation(n)
                 if self.shuffle else np.arange(n))
        start = index * self.batch_size
        items = order[start : start + self.batch_size]
        tokens = _pick_captions(self.token_ids, self.counts, items, self.seed, self.epoch, start)
        return {"images": self.images[items], "token_ids": tokens}


def read_captions_file(path):
    """``[(image, [captions...]), ...]`` from a CSV (columns ``image``/``file``/``path``
    and ``caption``/``text``; repeated images collect several captions) or a JSONL file
    (one object per line, ``"image"`` and ``"caption"`` (str) or ``"captions"`` (list)).

    Example:

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "captions.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("image,caption\\na.png,a cat\\na.png,a pet\\nb.png,a dog\\n")
    >>> read_captions_file(path)
    [('a.png', ['a cat', 'a pet']), ('b.png', ['a dog'])]
    """
    rows = []
    if path.endswith(".jsonl") or path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                record = json.loads(line)
                image = record.get("image") or record.get("file") or record.get("path")
                caps = record.get("captions", record.get("caption", record.get("text")))
                if image is None or caps is None:
                    raise ValueError(
                        f"{path}:{number}: each line needs 'image' and 'caption'/'captions'; "
                        f"got keys {sorted(record)}."
                    )
                for cap in [caps] if isinstance(caps, str) else caps:
                    rows.append((image, str(cap)))
    else:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            image_key = next((k for k in ("image", "file", "path", "filepath") if k in fields),
                             None)
            text_key = next((k for k in ("caption", "text", "title") if k in fields), None)
            if image_key is None or text_key is None:
                raise ValueError(
                    f"{path}: the CSV needs an image column (image/file/path) and a caption "
                    f"column (caption/text); got columns {fields}."
                )
            rows = [(r[image_key], r[text_key]) for r in reader]
    grouped = {}
    for image, cap in rows:
        grouped.setdefault(image, []).append(cap)
    return list(grouped.items())


class ImageTextDataset(FileDataset):
    """Images with one or more captions each, from files or webdataset tar shards.

    Batches: ``{"images": (B, H, W, 3) float32, "token_ids": (B, L) int32}``, one caption
    per image drawn from ``(seed, epoch, position)``. Unreadable images are skipped and
    replaced (see :class:`~keras_jepa.data.FileDataset`). Build with
    :meth:`from_captions_file` or :meth:`from_webdataset`, or directly from ``records``.

    Args:
        records: ``[(image source, [captions...]), ...]``; a source is a path or a
            ``(shard path, offset, size)`` tuple for an image stored in an uncompressed tar.
        tokenizer: ``encode(list[str]) -> (n, L)`` (see :mod:`keras_jepa.models.llip.tokenizers`).
        batch_size, image_size, transform, shuffle, seed, drop_remainder, workers,
            use_multiprocessing, max_queue_size: as
            :class:`~keras_jepa.data.ImageFolderDataset` (default transform: I-JEPA's
            random resized crop at ``image_size``).

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> from keras_jepa.models.llip.tokenizers import ByteTokenizer
    >>> root = tempfile.mkdtemp()
    >>> for name in ("a.png", "b.png"):
    ...     Image.fromarray(np.zeros((20, 20, 3), "uint8")).save(os.path.join(root, name))
    >>> with open(os.path.join(root, "captions.jsonl"), "w") as f:
    ...     _ = f.write('{"image": "a.png", "captions": ["x", "y"]}\\n{"image": "b.png", "caption": "z"}\\n')
    >>> ds = ImageTextDataset.from_captions_file(os.path.join(root, "captions.jsonl"),
    ...                                          ByteTokenizer(6), batch_size=2, image_size=16)
    >>> batch = ds[0]
    >>> batch["images"].shape, batch["token_ids"].shape
    ((2, 16, 16, 3), (2, 6))
    """

    data_key = "images"
    skip_reasons = ("unreadable",)

    def __init__(self, records, tokenizer, batch_size, image_size=224, transform=None,
                 shuffle=True, seed=None, drop_remainder=True, workers=1,
                 use_multiprocessing=False, max_queue_size=10):
        records = list(records)
        if not records:
            raise ValueError("The dataset has no (image, captions) records.")
        sources = [r[0] for r in records]
        self.captions = [[r[1]] if isinstance(r[1], str) else list(r[1]) for r in records]
        self.token_ids, self.counts = _tokenize_lists(self.captions, tokenizer)
        self.sources = sources
        if transform is None:
            transform = image_transform(image_size)
        super().__init__(
            [s if isinstance(s, str) else f"{s[0]}@{s[1]}" for s in sources], None,
            batch_size, transform, shuffle=shuffle, seed=seed, drop_remainder=drop_remainder,
            workers=workers, use_multiprocessing=use_multiprocessing,
            max_queue_size=max_queue_size,
        )

    @classmethod
    def from_captions_file(cls, captions_file, tokenizer, batch_size, image_root=None,
                           **kwargs):
        """Images under ``image_root`` (default: the captions file's folder) named in a
        CSV/JSONL captions file (see :func:`read_captions_file`)."""
        root = image_root or os.path.dirname(os.path.abspath(captions_file))
        records = [(os.path.join(root, image), caps)
                   for image, caps in read_captions_file(captions_file)]
        return cls(records, tokenizer, batch_size, **kwargs)

    @classmethod
    def from_webdataset(cls, shards, tokenizer, batch_size, **kwargs):
        """Samples from tar shards in the webdataset layout: files sharing a key (the name
        up to its first dot after the last slash) form one sample, e.g. ``0001.jpg`` with
        ``0001.txt`` (one caption per line) or ``0001.json`` (``"caption"`` or
        ``"captions"``). Shards must be uncompressed ``.tar`` (images are read by offset);
        samples without an image or a caption are ignored."""
        if isinstance(shards, str):
            shards = [shards]
        records = []
        for shard in shards:
            samples = {}
            with tarfile.open(shard, "r:") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    folder, _, base = member.name.rpartition("/")
                    key, _, ext = base.partition(".")
                    entry = samples.setdefault(f"{folder}/{key}", {})
                    ext = "." + ext.lower()
                    if ext in IMAGE_EXTENSIONS:
                        entry["image"] = (os.fspath(shard), member.offset_data, member.size)
                    elif ext in (".txt", ".json"):
                        text = tar.extractfile(member).read().decode("utf-8")
                        if ext == ".txt":
                            entry["captions"] = [t for t in text.splitlines() if t.strip()]
                        else:
                            record = json.loads(text)
                            caps = record.get("captions", record.get("caption"))
                            entry["captions"] = [caps] if isinstance(caps, str) else caps
            records.extend((e["image"], e["captions"]) for _, e in sorted(samples.items())
                           if "image" in e and e.get("captions"))
        if not records:
            raise ValueError(f"No (image, caption) samples found in the shards {shards}.")
        return cls(records, tokenizer, batch_size, **kwargs)

    def read(self, path, rng):
        item = self.paths.index(path) if path not in self._index else self._index[path]
        source = self.sources[item]
        try:
            if isinstance(source, str):
                return open_rgb(source)
            shard, offset, size = source
            with open(shard, "rb") as f:
                f.seek(offset)
                data = f.read(size)
            return open_rgb(io.BytesIO(data))
        except Exception as error:  # any decoder failure: missing, truncated, not an image
            raise SkipSample("unreadable", f"{type(error).__name__}: {error}") from None

    @property
    def _index(self):
        index = self.__dict__.get("_path_index")
        if index is None:
            index = {p: i for i, p in enumerate(self.paths)}
            self.__dict__["_path_index"] = index
        return index

    def __getitem__(self, index):
        num_batches = len(self)
        if not isinstance(index, (int, np.integer)) or not -num_batches <= index < num_batches:
            raise IndexError(f"Batch index {index!r} out of range for {num_batches} batches.")
        index = int(index) % num_batches
        epoch, order = self.epoch, self.order()
        start = index * self.batch_size
        stop = min(start + self.batch_size, len(self.paths))
        samples, items = [], []
        for position in range(start, stop):
            sample, item = self._sample_at(order, epoch, position)
            samples.append(sample)
            items.append(item)
        tokens = _pick_captions(self.token_ids, self.counts, items, self.seed, epoch, start)
        return {"images": self._stack(samples, items), "token_ids": tokens}

