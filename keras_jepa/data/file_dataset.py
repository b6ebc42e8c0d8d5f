"""The machinery shared by the file-backed datasets: batching, seeded per-epoch shuffling,
mask-sampler merging, labels from folders, and skipping (and counting) unreadable files.

Loader mechanism. The datasets are ``keras.utils.PyDataset`` subclasses and load in parallel
with PyDataset's own ``workers`` / ``use_multiprocessing``:

- PyDataset works unchanged on JAX, PyTorch and TensorFlow ``fit``; ``tf.data`` would make
  TensorFlow a requirement for JAX and PyTorch users, and ``grain`` is not installed.
- Decoding (PIL, PyAV/FFmpeg) and resizing run in C and release the GIL, so thread workers
  (``workers=N``, the default ``use_multiprocessing=False``) already run in parallel, start
  instantly and share the skip counters. ``use_multiprocessing=True`` adds process workers
  for Python-heavy transforms; everything here is picklable for them.
- Every batch is a pure function of ``(seed, epoch, batch index)``: the order is a permutation
  drawn from ``(seed, epoch)`` and each sample's augmentation from ``(seed, epoch, position)``,
  so the result does not depend on the number or kind of workers, nor on the order in which
  Keras asks for batches, and a resumed run (``set_epoch``) sees the same data.

Epochs. The dataset advances its epoch in ``on_epoch_end``. ``fit`` cannot tell it where a
resumed run starts, and Keras ends an extra "epoch" when it reads a batch to build an
unbuilt model, so pass ``dataset.epoch_callback()`` to ``fit`` (it calls ``set_epoch`` with
``fit``'s epoch) when runs must be reproducible or resumable, and build the model before
``fit``: with ``workers > 1`` Keras also hands out the batches it prefetched during that
build first.

Sharding (multi-process training). ``dataset.shard(num_shards, index)`` makes this process
load only its part of each global batch: with per-process batch ``B``, batch ``i`` of shard
``r`` holds positions ``(i * num_shards + r) * B ...`` of the epoch's order, and its masks are
rows ``r * B ...`` of ``mask_sampler(num_shards * B, step)``. The shards of one step together
are therefore exactly the batch an unsharded dataset with batch size ``num_shards * B`` gives
(same files, augmentations and masks), every process sees different data and masks, and
every shard has the same number of batches (``drop_remainder`` is required).
``keras_jepa.backend.distribution`` calls ``shard`` with the process rank and count.

Skipped files. A file that cannot be decoded (or, for video, is too short) is marked in a
status array shared with worker processes (an anonymous shared-memory buffer, inherited by
forked workers and passed to spawned ones), warned about once, and replaced by the next
sample of the epoch's order, so batches keep their static shape. ``dataset.skipped`` counts
distinct bad files by reason; ``dataset.skipped_files`` lists them.
"""

import math
import multiprocessing
import multiprocessing.context
import os
import warnings

import keras
import numpy as np

from keras_jepa.data.transforms import _accepts_rng

# Tags that keep the random streams for the order and for the samples independent.
_ORDER_STREAM = 0
_SAMPLE_STREAM = 1
# A batch gives up after this many consecutive files fail to load (never-seen-bad ones).
_MAX_CONSECUTIVE_FAILURES = 64


def _take_rows(value, first, count):
    """Rows ``first ... first + count`` of an array, or of each array of a tuple/list."""
    if isinstance(value, (tuple, list)):
        return type(value)(_take_rows(v, first, count) for v in value)
    return np.asarray(value)[first : first + count]


class SkipSample(Exception):
    """Raised by a dataset's reader for a file that must be skipped.

    Args:
        reason: one of the dataset's ``skip_reasons`` (e.g. ``"unreadable"``).
        message: what was wrong, for the warning.

    Example:

    >>> error = SkipSample("too_short", "5 frames; a clip needs 64")
    >>> error.reason, str(error)
    ('too_short', 'too_short: 5 frames; a clip needs 64')
    """

    def __init__(self, reason, message):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def scan_folder(root, extensions, labels="inferred"):
    """Lists the files under ``root`` (recursively, sorted) and their class labels.

    Args:
        root: a directory.
        extensions: file endings to keep (case-insensitive), e.g. ``(".jpg", ".png")``.
        labels: ``"inferred"``: if every file is inside a top-level subfolder, each
            subfolder is a class (sorted names give integer labels 0, 1, ...); if every file
            is directly in ``root``, there are no labels; a mix of both is an error.
            ``None``: no labels.

    Returns:
        ``(paths, labels, class_names)``; ``labels`` is an int32 array or ``None``, and
        ``class_names`` a list or ``None``.
    """
    if labels not in ("inferred", None):
        raise ValueError(
            f'For a folder, labels must be "inferred" or None; got {labels!r}. Pass a list of '
            "paths to give explicit labels."
        )
    if not os.path.isdir(root):
        raise ValueError(f"Not a directory: {root!r}.")
    extensions = tuple(e.lower() for e in extensions)
    found = []
    for folder, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and name.lower().endswith(extensions):
                found.append(os.path.relpath(os.path.join(folder, name), root))
    found.sort()
    if not found:
        raise ValueError(
            f"No files ending in {extensions} under {root!r} (searched recursively)."
        )
    paths = [os.path.join(root, rel) for rel in found]
    if labels is None:
        return paths, None, None
    top = [rel.split(os.sep, 1)[0] if os.sep in rel else None for rel in found]
    loose = [rel for rel, t in zip(found, top) if t is None]
    if len(loose) == len(found):
        return paths, None, None
    if loose:
        folder = next(t for t in top if t is not None)
        raise ValueError(
            f"{root!r} has files both directly inside it (e.g. {loose[0]!r}) and in subfolders "
            f"(e.g. {folder!r}), so class labels cannot be inferred. Move the loose files "
            "into a class folder, or pass labels=None to ignore folders."
        )
    class_names = sorted(set(top))
    index = {name: i for i, name in enumerate(class_names)}
    return paths, np.asarray([index[t] for t in top], dtype="int32"), class_names


def _new_status(size):
    """A zeroed int8 buffer that forked and spawned workers share with this process."""
    try:
        return multiprocessing.RawArray("b", max(size, 1))
    except OSError:  # no shared memory available: counts stay per process
        return bytearray(max(size, 1))


class EpochCallback(keras.callbacks.Callback):
    """Tells a dataset which epoch ``fit`` is in (call ``set_epoch`` at each epoch start).

    The dataset also counts epochs by itself (``on_epoch_end``), but ``fit`` cannot tell it
    where a resumed run starts (``initial_epoch``, ``BackupAndRestore``), and Keras ends an
    extra "epoch" when it peeks at a batch to build an unbuilt model. With this callback the
    order, augmentations and mask steps of epoch ``e`` are the same in every run.

    Args:
        dataset: a :class:`FileDataset` (``ImageFolderDataset``, ``VideoDataset``).

    Example:

    >>> import keras
    >>> class Counter:
    ...     epoch = None
    ...     def set_epoch(self, epoch):
    ...         self.epoch = epoch
    >>> counter = Counter()
    >>> EpochCallback(counter).on_epoch_begin(3)
    >>> counter.epoch
    3
    """

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def on_epoch_begin(self, epoch, logs=None):
        self.dataset.set_epoch(epoch)


class FileDataset(keras.utils.PyDataset):
    """Base class: batches of transformed files, as a dict of model inputs.

    Subclasses set ``data_key`` and ``skip_reasons`` and implement ``read(path, rng)``
    (decode one file; raise :class:`SkipSample` for a bad file) and optionally
    ``make_sample(raw, rng)`` (apply the transform).

    Batch ``i`` of epoch ``e`` holds positions ``i * batch_size ...`` of the epoch's order
    and is returned as ``{data_key: (B, ...) float32, **masks, "labels": (B,) int32}``
    (``"labels"`` only when there are labels), with the masks from
    ``mask_sampler(B, step)`` at the global step ``e * len(dataset) + i``.

    Args:
        paths: the files.
        labels: ``None`` or one int per file.
        batch_size, shuffle, seed, drop_remainder, mask_sampler: see
            :class:`~keras_jepa.data.ImageFolderDataset`.
        transform: callable applied to what ``read`` returns (``rng=`` is passed when it
            takes one), or ``None`` to only convert to ``float32``.
        class_names: optional names of the labels.
        workers, use_multiprocessing, max_queue_size: ``keras.utils.PyDataset`` options.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> class NpyDataset(FileDataset):
    ...     data_key = "arrays"
    ...     def read(self, path, rng):
    ...         try:
    ...             return np.load(path)
    ...         except OSError as error:
    ...             raise SkipSample("unreadable", str(error))
    >>> root = tempfile.mkdtemp()
    >>> paths = [os.path.join(root, f"{i}.npy") for i in range(4)]
    >>> for i, path in enumerate(paths):
    ...     np.save(path, np.full((2,), i))
    >>> ds = NpyDataset(paths, None, batch_size=2, transform=None, shuffle=False)
    >>> ds[1]["arrays"].tolist()
    [[2.0, 2.0], [3.0, 3.0]]
    """

    data_key = None
    skip_reasons = ("unreadable",)
    # {reason: advice} appended to the warning about a skipped file (set by the caller, who
    # knows which option helps, e.g. ``pretrain``'s ``short_videos``).
    skip_hints = {}

    def __init__(
        self,
        paths,
        labels,
        batch_size,
        transform,
        shuffle=True,
        seed=None,
        drop_remainder=True,
        mask_sampler=None,
        class_names=None,
        workers=1,
        use_multiprocessing=False,
        max_queue_size=10,
    ):
        super().__init__(
            workers=workers,
            use_multiprocessing=use_multiprocessing,
            max_queue_size=max_queue_size,
        )
        self.paths = [os.fspath(p) for p in paths]
        if not self.paths:
            raise ValueError("The dataset has no files.")
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (len(self.paths),) or not np.issubdtype(
                labels.dtype, np.integer
            ):
                raise ValueError(
                    f"labels must be {len(self.paths)} integers, one per path; got an array "
                    f"of shape {labels.shape} and dtype {labels.dtype}."
                )
            labels = labels.astype("int32")
        self.labels = labels
        self.class_names = class_names
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
        if drop_remainder and batch_size > len(self.paths):
            raise ValueError(
                f"batch_size={batch_size} is larger than the {len(self.paths)} files, so "
                "drop_remainder=True leaves no batch. Lower batch_size (CLI: --batch-size) "
                "or add files; from Python, drop_remainder=False keeps the partial batch."
            )
        self.batch_size = batch_size
        self.drop_remainder = bool(drop_remainder)
        self.shuffle = bool(shuffle)
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**63))
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int or None; got {seed!r}.")
        self.seed = int(seed)
        if mask_sampler is not None and not callable(mask_sampler):
            raise TypeError(
                "mask_sampler must be a callable (batch_size, step) -> dict; got "
                f"{type(mask_sampler).__name__}."
            )
        self.mask_sampler = mask_sampler
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable; got {type(transform).__name__}.")
        self.transform = transform
        self._transform_takes_rng = transform is not None and _accepts_rng(transform)
        self.epoch = 0
        self.num_shards = 1
        self.shard_index = 0
        self._order_cache = None
        self._status = _new_status(len(self.paths))
        self._warned = set()

    # ------------------------------------------------------------------ PyDataset protocol

    def __len__(self):
        if self.drop_remainder:
            return len(self.paths) // (self.batch_size * self.num_shards)
        return math.ceil(len(self.paths) / self.batch_size)

    def shard(self, num_shards, index):
        """Makes this dataset load only shard ``index`` of ``num_shards`` (in place).

        Each global step's batch is split across the shards: shard ``index`` gets rows
        ``index * batch_size ...`` of the batch that an unsharded dataset with batch size
        ``num_shards * batch_size`` returns at that step (same files, augmentations, masks).
        ``num_shards=1`` undoes the sharding. Returns the dataset.

        Example:

        >>> import numpy as np
        >>> class Rows(FileDataset):
        ...     data_key = "x"
        ...     def read(self, path, rng):
        ...         return np.full((1,), int(path))
        >>> full = Rows([str(i) for i in range(8)], None, batch_size=4, transform=None, seed=0)
        >>> part = Rows([str(i) for i in range(8)], None, batch_size=2, transform=None,
        ...             seed=0).shard(2, 1)
        >>> len(part), bool(np.all(part[1]["x"] == full[1]["x"][2:]))
        (2, True)
        """
        num_shards = int(num_shards)
        index = int(index)
        if num_shards < 1 or not 0 <= index < num_shards:
            raise ValueError(
                f"shard needs num_shards >= 1 and 0 <= index < num_shards; got "
                f"num_shards={num_shards}, index={index}."
            )
        if num_shards > 1 and not self.drop_remainder:
            raise ValueError(
                "A sharded dataset needs drop_remainder=True, so that every process runs "
                f"the same number of steps; got drop_remainder={self.drop_remainder}."
            )
        if num_shards * self.batch_size > len(self.paths):
            raise ValueError(
                f"{num_shards} shards x batch_size {self.batch_size} is more than the "
                f"{len(self.paths)} files: no full global batch. Lower the batch size."
            )
        self.num_shards = num_shards
        self.shard_index = index
        return self

    def on_epoch_end(self):
        """Advances to the next epoch (a new order and new augmentations)."""
        self.epoch += 1

    def set_epoch(self, epoch):
        """Sets the epoch whose batches ``__getitem__`` returns (see :meth:`epoch_callback`
        to keep it equal to ``fit``'s epoch, also when resuming)."""
        if not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int; got {epoch!r}.")
        self.epoch = int(epoch)

    def epoch_callback(self):
        """A Keras callback that sets this dataset's epoch to ``fit``'s at each epoch start.

        Pass it to ``fit(callbacks=[...])`` for runs that must be reproducible and resumable.
        """
        return EpochCallback(self)

    def order(self, epoch=None):
        """The permutation of file indices used in ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        cached = self._order_cache
        if cached is not None and cached[0] == epoch:
            return cached[1]
        if self.shuffle:
            rng = np.random.default_rng([self.seed, _ORDER_STREAM, epoch])
            order = rng.permutation(len(self.paths))
        else:
            order = np.arange(len(self.paths))
        self._order_cache = (epoch, order)
        return order

    def __getitem__(self, index):
        num_batches = len(self)
        if not isinstance(index, (int, np.integer)) or not -num_batches <= index < num_batches:
            raise IndexError(
                f"Batch index {index!r} out of range for {num_batches} batches."
            )
        index = int(index) % num_batches
        epoch = self.epoch
        order = self.order(epoch)
        start = (index * self.num_shards + self.shard_index) * self.batch_size
        stop = min(start + self.batch_size, len(self.paths))
        samples, items = [], []
        for position in range(start, stop):
            sample, item = self._sample_at(order, epoch, position)
            samples.append(sample)
            items.append(item)
        batch = {self.data_key: self._stack(samples, items)}
        if self.mask_sampler is not None:
            self._merge_masks(batch, len(samples), epoch * num_batches + index)
        if self.labels is not None:
            batch["labels"] = self.labels[np.asarray(items)]
        return batch

    # ------------------------------------------------------------------ subclass hooks

    def read(self, path, rng):
        """Decodes one file. Raise :class:`SkipSample` for a file that must be skipped."""
        raise NotImplementedError

    def make_sample(self, raw, rng):
        """Turns a decoded file into the model's input (default: the transform)."""
        if self.transform is None:
            return np.asarray(raw, dtype="float32")
        if self._transform_takes_rng:
            return self.transform(raw, rng=rng)
        return self.transform(raw)

    # ------------------------------------------------------------------ skipping

    @property
    def skipped(self):
        """``{reason: number of distinct files skipped}`` so far, over all workers."""
        status = np.frombuffer(self._status, dtype=np.int8)[: len(self.paths)]
        counts = np.bincount(status, minlength=len(self.skip_reasons) + 1)
        return {reason: int(counts[i + 1]) for i, reason in enumerate(self.skip_reasons)}

    @property
    def num_skipped(self):
        """Total number of distinct files skipped so far."""
        return sum(self.skipped.values())

    @property
    def skipped_files(self):
        """``[(path, reason), ...]`` of the files skipped so far."""
        status = np.frombuffer(self._status, dtype=np.int8)[: len(self.paths)]
        return [
            (self.paths[i], self.skip_reasons[status[i] - 1]) for i in np.flatnonzero(status)
        ]

    def _mark_bad(self, item, error):
        if error.reason not in self.skip_reasons:
            raise ValueError(
                f"Unknown skip reason {error.reason!r}; expected one of {self.skip_reasons}."
            )
        np.frombuffer(self._status, dtype=np.int8)[item] = (
            self.skip_reasons.index(error.reason) + 1
        )
        if item not in self._warned:
            self._warned.add(item)
            hint = self.skip_hints.get(error.reason)
            warnings.warn(
                f"Skipping {self.paths[item]!r} ({error.reason}): {error.message}. It is "
                f"replaced by another file; {self.num_skipped} file(s) skipped so far "
                f"(see .skipped)." + (f" {hint}" if hint else ""),
                RuntimeWarning,
                stacklevel=2,
            )

    def _sample_at(self, order, epoch, position):
        """The sample at ``position`` of the epoch's order, or the next readable one."""
        status = np.frombuffer(self._status, dtype=np.int8)
        n = len(self.paths)
        failures = 0
        for attempt in range(n):
            item = int(order[(position + attempt) % n])
            if status[item]:
                continue
            # One generator per (epoch, position, attempt): the sample does not depend on
            # which files were already known to be bad when this batch was made.
            rng = np.random.default_rng([self.seed, _SAMPLE_STREAM, epoch, position, attempt])
            try:
                raw = self.read(self.paths[item], rng)
            except SkipSample as error:
                self._mark_bad(item, error)
                failures += 1
                if failures >= _MAX_CONSECUTIVE_FAILURES:
                    break
                continue
            return self.make_sample(raw, rng), item
        raise RuntimeError(
            f"No readable file found for position {position}: {failures} file(s) in a row "
            f"failed ({self.skipped} skipped so far, e.g. {self.skipped_files[:3]}). Check "
            "the data source."
        )

    # ------------------------------------------------------------------ batch assembly

    def _stack(self, samples, items):
        shape = np.shape(samples[0])
        for sample, item in zip(samples, items):
            if np.shape(sample) != shape:
                raise ValueError(
                    f"Samples of one batch differ in shape: {shape} (from "
                    f"{self.paths[items[0]]!r}) and {np.shape(sample)} (from "
                    f"{self.paths[item]!r}). Use a transform with a fixed output size, e.g. "
                    "a RandomResizedCrop or a CenterCrop."
                )
        return np.stack(samples).astype("float32", copy=False)

    def _merge_masks(self, batch, batch_size, step):
        if self.num_shards > 1:
            # This shard's rows of the global batch's masks (see "Sharding" above).
            masks = self.mask_sampler(batch_size * self.num_shards, step)
            first = self.shard_index * batch_size
            if isinstance(masks, dict):
                masks = {
                    key: _take_rows(value, first, batch_size) for key, value in masks.items()
                }
        else:
            masks = self.mask_sampler(batch_size, step)
        if not isinstance(masks, dict):
            raise TypeError(
                "mask_sampler(batch_size, step) must return a dict of arrays; got "
                f"{type(masks).__name__}."
            )
        clash = {self.data_key, "labels"} & set(masks)
        if clash:
            raise ValueError(
                f"mask_sampler returned the reserved key(s) {sorted(clash)}; rename them."
            )
        batch.update(masks)

    # ------------------------------------------------------------------ pickling

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_order_cache"] = None
        state["_warned"] = set()
        # Worker processes being started get the shared buffer itself; anything else (a
        # plain pickle) gets a snapshot of the counts.
        if multiprocessing.context.get_spawning_popen() is None:
            state["_status"] = bytes(self._status)
        return state

    def __setstate__(self, state):
        status = state["_status"]
        if isinstance(status, bytes):
            shared = _new_status(len(status))
            np.frombuffer(shared, dtype=np.int8)[:] = np.frombuffer(status, dtype=np.int8)
            state["_status"] = shared
        self.__dict__.update(state)

    def __repr__(self):
        return (
            f"{type(self).__name__}({len(self.paths)} files, batch_size={self.batch_size}, "
            f"{len(self)} batches, epoch={self.epoch}, skipped={self.skipped})"
        )
