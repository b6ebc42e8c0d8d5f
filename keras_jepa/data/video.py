"""``VideoDataset``: batches of augmented clips decoded with PyAV, for V-JEPA style training.

Decoding: PyAV (FFmpeg) opens the file, reads the frame count from the container, draws the
clip's frame indices, seeks to the keyframe before the first needed frame and decodes
forward only until the last needed frame; only the needed frames are converted to RGB.
Loading runs in ``keras.utils.PyDataset`` workers (threads by default: FFmpeg and PIL work
without the GIL; see ``keras_jepa/data/file_dataset.py`` for why PyDataset rather than
``tf.data`` or grain).

Clip sampling follows the official V-JEPA loader. The video is cut into ``num_clips`` equal
segments and one clip is taken from each: a window of ``frames_per_clip * frame_step``
frames whose start is uniform in ``[0, segment - window)`` (the official draw, which never
picks the very last window; or the segment's first frame), with ``frames_per_clip`` indices
``floor(linspace(start, start + window, frames_per_clip))`` clipped to the window. Those are
the official rules, quirks included: the indices span the whole window, so their spacing is
``window / (frames_per_clip - 1)`` (4.27 frames for 16 x 4) rather than exactly
``frame_step``; ``exact_stride=True`` takes ``start + frame_step * arange(T)`` instead.
One difference from the official loader: a segment shorter than the window makes the video
"too short" and skipped (``short_videos="pad"`` keeps the official behaviour: evenly spaced
frames over the segment, then its last frame repeated).
"""

import os
import re
import threading

import numpy as np

from keras_jepa.data.file_dataset import FileDataset, SkipSample, scan_folder
from keras_jepa.data.transforms import video_transform

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")

# A clip whose decoded frames stop early is padded with its last frame when at least this
# fraction of the wanted frames were decoded (frame counts in headers can be a few frames
# off); otherwise the file counts as unreadable (truncated).
_MIN_DECODED_FRACTION = 0.75

# Tag of the random stream that draws each batch's clip length (see ``VideoDataset``).
_CLIP_LENGTH_STREAM = 2

_CSV_LINE = re.compile(r"^(?P<path>.*?)[\s,]+(?P<label>-?\d+)\s*$")


def read_video_csv(path):
    """Reads a list of videos: one ``path`` or ``path label`` per line (the official format:
    space separated, no header; a comma also works). Blank lines and ``#`` comments are
    ignored; a relative path is relative to the CSV file's folder.

    Returns:
        ``(paths, labels)``; ``labels`` is an int32 array, or ``None`` if no line has one.
    """
    folder = os.path.dirname(os.path.abspath(path))
    paths, labels = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            match = _CSV_LINE.match(line)
            video, label = (match["path"], int(match["label"])) if match else (line, None)
            paths.append(video if os.path.isabs(video) else os.path.join(folder, video))
            labels.append(label)
            if (labels[0] is None) != (label is None):
                raise ValueError(
                    f"{path}:{number}: {line!r}: some lines have a label and others do not; "
                    "give every line 'path label' or every line just 'path'."
                )
    if not paths:
        raise ValueError(f"{path} lists no videos.")
    if labels[0] is None:
        return paths, None
    return paths, np.asarray(labels, dtype="int32")


def clip_indices(
    num_frames,
    frames_per_clip=16,
    frame_step=4,
    num_clips=1,
    rng=None,
    random_start=True,
    short_videos="skip",
    exact_stride=False,
):
    """Frame indices of the clips of a ``num_frames`` video (see the module docstring).

    Returns:
        An int64 array ``(num_clips, frames_per_clip)``.

    Raises:
        SkipSample: ``"too_short"`` when a segment is shorter than the window and
            ``short_videos="skip"``.

    Example:

    >>> clip_indices(100, frames_per_clip=4, frame_step=2, random_start=False).tolist()
    [[0, 2, 5, 7]]
    >>> clip_indices(100, 4, 2, exact_stride=True, random_start=False).tolist()
    [[0, 2, 4, 6]]
    """
    window = frames_per_clip * frame_step
    segment = num_frames // num_clips
    if segment < 1:
        raise SkipSample("too_short", f"{num_frames} frames for {num_clips} clips")
    clips = []
    for i in range(num_clips):
        if segment >= window:
            # Official draw: the window's end is uniform in [window, segment), so the last
            # window that fits is never drawn (and a segment of exactly one window starts at 0).
            start = int(rng.integers(0, max(segment - window, 1))) if random_start else 0
            if exact_stride:
                offsets = frame_step * np.arange(frames_per_clip)
            else:
                offsets = np.linspace(0, window, frames_per_clip).astype(np.int64)
                offsets = np.minimum(offsets, window - 1)
            indices = start + offsets
        elif short_videos == "pad":
            count = min(frames_per_clip, max(1, segment // frame_step))
            indices = np.linspace(0, segment, count).astype(np.int64)
            indices = np.concatenate([indices, np.full(frames_per_clip - count, segment)])
            indices = np.minimum(indices, segment - 1)
        else:
            raise SkipSample(
                "too_short",
                f"{num_frames} frames; {num_clips} clip(s) of {frames_per_clip} frames every "
                f"{frame_step} need {window * num_clips}",
            )
        clips.append(indices.astype(np.int64) + i * segment)
    return np.stack(clips)


class VideoReader:
    """Reads selected frames of one video file with PyAV (as PIL RGB images).

    Args:
        container: an open ``av`` input container.
        threads: decoder threads (0: FFmpeg's choice). The default 1 suits loaders whose
            parallelism comes from several workers.

    Example:

    >>> import os, tempfile
    >>> import av, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "grey.mp4")
    >>> with av.open(path, "w") as out:
    ...     stream = out.add_stream("libx264", rate=25)
    ...     stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
    ...     for i in range(10):
    ...         frame = np.full((32, 32, 3), 20 * i, "uint8")
    ...         out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    ...     out.mux(stream.encode(None))
    >>> with av.open(path) as container:
    ...     reader = VideoReader(container)
    ...     frames = reader.frames([2, 6])
    >>> reader.num_frames, [round(np.asarray(frames[i]).mean() / 20) for i in (2, 6)]
    (10, [2, 6])
    """

    def __init__(self, container, threads=1):
        if not container.streams.video:
            raise SkipSample("unreadable", "no video stream")
        self.container = container
        self.stream = container.streams.video[0]
        self.stream.codec_context.thread_count = int(threads)
        if threads != 1:
            self.stream.thread_type = "AUTO"
        self.rate = self.stream.average_rate or self.stream.guessed_rate
        self.start = self.stream.start_time or 0
        self.num_frames = self._count_frames()

    def _count_frames(self):
        stream = self.stream
        if stream.frames and stream.frames > 0:
            return int(stream.frames)
        if self.rate and stream.duration and stream.time_base:
            return int(stream.duration * stream.time_base * self.rate)
        if self.rate and self.container.duration:
            return int(self.container.duration / 1_000_000 * self.rate)
        count = sum(1 for packet in self.container.demux(stream) if packet.size)
        self.container.seek(0)
        return count

    def _index(self, frame):
        return int(round((frame.pts - self.start) * self.stream.time_base * self.rate))

    def frames(self, indices):
        """``{index: PIL image}`` for the (sorted, unique) ``indices``.

        Decoding stops after the last one. Frames missing at the end (a frame count a few
        frames too high) are replaced by the last decoded frame.
        """
        wanted = sorted(set(int(i) for i in indices))
        found = None
        if wanted[0] > 0 and self.rate and self.stream.time_base:
            found = self._decode_after_seek(wanted)
        if found is None:
            self.container.seek(0)
            found = self._decode(wanted, use_pts=False)
        if not found:
            raise SkipSample(
                "unreadable",
                f"no frame from index {wanted[0]} on could be decoded (the file announces "
                f"{self.num_frames} frames)",
            )
        if len(found) < len(wanted):
            if len(found) < _MIN_DECODED_FRACTION * len(wanted):
                raise SkipSample(
                    "unreadable",
                    f"truncated: decoding stopped before frame {wanted[len(found)]} of the "
                    f"{self.num_frames} the file announces",
                )
            last = found[max(found)]
            found.update({i: last for i in wanted if i not in found})
        return found

    def _decode_after_seek(self, wanted):
        target = wanted[0] - 0.5
        offset = self.start + int(target / self.rate / self.stream.time_base)
        try:
            self.container.seek(max(offset, self.start), stream=self.stream)
        except Exception:
            return None
        return self._decode(wanted, use_pts=True)

    def _decode(self, wanted, use_pts):
        """Decodes forward; returns None if the position of a frame is unknown after a seek
        (the caller then decodes from the start)."""
        found, pointer, counter = {}, 0, 0
        for frame in self.container.decode(self.stream):
            if use_pts:
                if frame.pts is None:
                    return None
                index = self._index(frame)
                if counter == 0 and index > wanted[0]:
                    return None  # the seek went past the first wanted frame
                counter += 1
            else:
                index = counter
                counter += 1
            if index < wanted[pointer]:
                continue
            image = frame.to_image()
            while pointer < len(wanted) and wanted[pointer] <= index:
                found[wanted[pointer]] = image
                pointer += 1
            if pointer == len(wanted):
                break
        return found


class VideoDataset(FileDataset):
    """Batches of augmented clips from a folder or a CSV list of videos, for ``model.fit``.

    Each batch is a dict of model inputs (no ``y``)::

        {"videos": (B, T, H, W, 3) float32, **mask_sampler(B, step), "labels": (B,) int32}

    With ``num_clips > 1``, ``"videos"`` is ``(B, num_clips, T, H, W, 3)`` (one independent
    crop per clip). ``"labels"`` is present when the videos have labels (CSV ``path label``
    lines, class subfolders, or explicit labels with a list of paths).

    Clips are ``frames_per_clip`` frames taken every ``frame_step`` frames from a random
    start (the official rule; see the module docstring), decoded with PyAV, then transformed
    (default: V-JEPA's pretraining transform ``video_transform(image_size)``, the same random
    resized crop on every frame, scale (0.3, 1.0), aspect (0.75, 1.35), flip, ImageNet
    normalisation). Order, clip starts and crops derive from ``(seed, epoch, position)``.

    Videos that are missing, unreadable, corrupt, truncated or too short are skipped with a
    warning, counted in ``skipped`` (``{"unreadable": n, "too_short": m}``), and replaced by
    the next video of the epoch's order, so every batch keeps its shape.

    Args:
        source: a directory (searched recursively), a CSV file (``path [label]`` lines), or
            a list of video paths.
        batch_size: clips per batch.
        frames_per_clip: frames per clip (V-JEPA: 16), or a list of clip lengths (the
            official V-JEPA 2 ``dataset_fpcs`` groups): each batch then holds clips of one
            length, drawn per batch from ``(seed, epoch, batch index)`` with probabilities
            ``clip_length_weights`` (default equal), so every batch keeps a static shape
            and a jitted step compiles once per length. ``clip_length_at(epoch, index)``
            gives a batch's length.
        clip_length_weights: sampling weights of the clip lengths (``None``: equal).
        frame_step: frames between samples (V-JEPA: 4).
        num_clips: clips per video, one per equal segment (V-JEPA pretraining: 1).
        image_size: output side of the default transform.
        transform: callable ``(list of PIL frames[, rng=Generator]) -> float32 array``;
            default ``video_transform(image_size)``. For evaluation use
            ``video_transform(size, training=False, num_views=3)``.
        labels: for a folder, ``"inferred"`` (default) or ``None``; for a list of paths,
            ``None`` or one int per path; ignored for a CSV (labels come from the file).
        random_clip_start: draw the clip start at random (else the segment's first frame).
        short_videos: ``"skip"`` (default) or ``"pad"`` (official: repeat the last frame).
        exact_stride: take frames exactly ``frame_step`` apart instead of the official
            spacing.
        shuffle, seed, drop_remainder, mask_sampler: as in
            :class:`~keras_jepa.data.ImageFolderDataset`; with several clip lengths
            ``mask_sampler`` may be a dict ``{clip length: sampler}`` (a mask grid depends
            on the number of frames), and each batch uses its length's sampler.
        extensions: file endings to keep when scanning a folder.
        decode_threads: FFmpeg threads per decode (default 1: parallelism comes from
            ``workers``; 0 lets FFmpeg choose, for ``workers=1`` on a many-core machine).
        workers, use_multiprocessing, max_queue_size: ``keras.utils.PyDataset`` options.

    Example:

    >>> import os, tempfile
    >>> import av, numpy as np
    >>> root = tempfile.mkdtemp()
    >>> for name in ("a.mp4", "b.mp4"):
    ...     with av.open(os.path.join(root, name), "w") as out:
    ...         stream = out.add_stream("libx264", rate=25)
    ...         stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
    ...         for i in range(12):
    ...             frame = np.full((32, 32, 3), 20 * i, "uint8")
    ...             out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    ...         out.mux(stream.encode(None))
    >>> ds = VideoDataset(root, batch_size=2, frames_per_clip=4, frame_step=2,
    ...                   image_size=16, seed=0)
    >>> ds[0]["videos"].shape
    (2, 4, 16, 16, 3)
    """

    data_key = "videos"
    skip_reasons = ("unreadable", "too_short")

    def __init__(
        self,
        source,
        batch_size,
        frames_per_clip=16,
        frame_step=4,
        num_clips=1,
        image_size=224,
        transform=None,
        labels="inferred",
        random_clip_start=True,
        short_videos="skip",
        exact_stride=False,
        shuffle=True,
        seed=None,
        drop_remainder=True,
        mask_sampler=None,
        extensions=VIDEO_EXTENSIONS,
        decode_threads=1,
        workers=1,
        use_multiprocessing=False,
        max_queue_size=10,
        clip_length_weights=None,
    ):
        lengths = (list(frames_per_clip) if isinstance(frames_per_clip, (list, tuple))
                   else [frames_per_clip])
        if not lengths or len(set(lengths)) != len(lengths):
            raise ValueError(
                f"frames_per_clip must be an int or a list of distinct ints; got "
                f"{frames_per_clip!r}."
            )
        for name, value in (
            *(("frames_per_clip", length) for length in lengths),
            ("frame_step", frame_step),
            ("num_clips", num_clips),
        ):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int; got {value!r}.")
        if short_videos not in ("skip", "pad"):
            raise ValueError(f'short_videos must be "skip" or "pad"; got {short_videos!r}.')
        class_names = None
        if isinstance(source, (str, os.PathLike)):
            source = os.fspath(source)
            if os.path.isfile(source) and source.lower().endswith((".csv", ".txt")):
                paths, labels = read_video_csv(source)
            elif os.path.isdir(source):
                paths, labels, class_names = scan_folder(source, extensions, labels)
            else:
                raise ValueError(
                    f"source must be a directory of videos or a .csv list of them; got "
                    f"{source!r}, which is neither."
                )
        elif isinstance(source, (list, tuple)):
            paths = list(source)
            if isinstance(labels, str):
                labels = None
        else:
            raise TypeError(
                "source must be a directory, a CSV file or a list of video paths; got "
                f"{type(source).__name__}."
            )
        if transform is None:
            transform = video_transform(image_size)
        self.clip_lengths = tuple(int(t) for t in lengths)
        self.frames_per_clip = self.clip_lengths[0] if len(lengths) == 1 else self.clip_lengths
        if clip_length_weights is not None:
            weights = np.asarray(clip_length_weights, dtype="float64")
            if weights.shape != (len(lengths),) or (weights < 0).any() or weights.sum() <= 0:
                raise ValueError(
                    f"clip_length_weights must be {len(lengths)} non-negative numbers, one "
                    f"per clip length {list(self.clip_lengths)}; got {clip_length_weights!r}."
                )
            clip_length_weights = tuple(float(w) for w in weights / weights.sum())
        self.clip_length_weights = clip_length_weights
        self._local = threading.local()
        if isinstance(mask_sampler, dict):
            missing = set(self.clip_lengths) - set(mask_sampler)
            if missing:
                raise ValueError(
                    f"mask_sampler has no sampler for clip length(s) {sorted(missing)}; give "
                    f"one per length of {list(self.clip_lengths)}."
                )
            mask_sampler = _MasksByClipLength(mask_sampler, self)
        self.frame_step = int(frame_step)
        self.num_clips = int(num_clips)
        self.random_clip_start = bool(random_clip_start)
        self.short_videos = short_videos
        self.exact_stride = bool(exact_stride)
        if not isinstance(decode_threads, (int, np.integer)) or decode_threads < 0:
            raise ValueError(
                f"decode_threads must be a non-negative int; got {decode_threads!r}."
            )
        self.decode_threads = int(decode_threads)
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

    def clip_length_at(self, epoch, index):
        """Frames per clip of batch ``index`` of ``epoch`` (a pure function of the seed, the
        epoch and the batch index; the same for every shard of a global batch)."""
        if len(self.clip_lengths) == 1:
            return self.clip_lengths[0]
        rng = np.random.default_rng([self.seed, _CLIP_LENGTH_STREAM, int(epoch), int(index)])
        return self.clip_lengths[int(rng.choice(len(self.clip_lengths),
                                                p=self.clip_length_weights))]

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)) and len(self):
            self._local.frames = self.clip_length_at(self.epoch, int(index) % len(self))
        return super().__getitem__(index)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_local", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._local = threading.local()

    def clip_indices(self, num_frames, rng):
        """The ``(num_clips, frames_per_clip)`` frame indices for a ``num_frames`` video
        (with several clip lengths: the length of the batch being loaded)."""
        return clip_indices(
            num_frames,
            getattr(self._local, "frames", self.clip_lengths[0]),
            self.frame_step,
            self.num_clips,
            rng,
            random_start=self.random_clip_start,
            short_videos=self.short_videos,
            exact_stride=self.exact_stride,
        )

    def read(self, path, rng):
        """Decodes the clips of ``path``: a list of ``num_clips`` lists of PIL frames."""
        import av

        try:
            with av.open(path, metadata_errors="ignore") as container:
                reader = VideoReader(container, threads=self.decode_threads)
                indices = self.clip_indices(reader.num_frames, rng)
                frames = reader.frames(indices.ravel())
        except SkipSample:
            raise
        except Exception as error:  # missing file, not a video, corrupt stream...
            raise SkipSample("unreadable", f"{type(error).__name__}: {error}") from None
        return [[frames[int(i)] for i in clip] for clip in indices]

    def make_sample(self, raw, rng):
        clips = [super(VideoDataset, self).make_sample(clip, rng) for clip in raw]
        return clips[0] if self.num_clips == 1 else np.stack(clips)


class _MasksByClipLength:
    """The mask sampler of a dataset with several clip lengths: batch ``step`` (``epoch *
    len(dataset) + index``) gets the sampler of its clip length."""

    def __init__(self, samplers, dataset):
        self.samplers = dict(samplers)
        self.dataset = dataset

    def __call__(self, batch_size, step):
        epoch, index = divmod(int(step), len(self.dataset))
        return self.samplers[self.dataset.clip_length_at(epoch, index)](batch_size, step)
