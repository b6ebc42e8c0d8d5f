"""Procedural video as sequences of frozen clip embeddings (VEDIT's input), and a synthetic
procedural benchmark that runs offline.

Annotation format
-----------------

One row per step segment, as CSV (header ``video,start,end,step,task``) or JSON (a list of
objects with those keys, or ``{"segments": [...]}``):

* ``video``: a path (relative to a video root) or an id;
* ``start``, ``end``: segment bounds in seconds;
* ``step``: integer step id (the class a step classifier predicts);
* ``task``: integer task id of the video (same on every row of a video).

:func:`read_step_annotations` groups rows by video and sorts them by ``start``. How the
public datasets map onto it:

* **COIN** (``COIN.json``): ``database[vid]["annotation"]`` lists ``{"segment": [s, e],
  "id": step}``; ``database[vid]["recipe_type"]`` is the task (180 tasks, 778 steps);
  ``video = vid`` (the YouTube id, file ``<vid>.mp4``).
* **CrossTask** (``annotations/<task>_<vid>.csv``, rows ``step,start,end`` with 1-based
  steps local to the task): ``task`` from the file name, ``step`` = a global id, e.g. the
  offset of the task in ``tasks_primary.txt`` plus the local step - 1.
* **NIV** (five tasks, per-video lists of ``(start, end, step)`` in the release's
  annotation files): the task is the folder (changing tire, coffee, CPR, jump car,
  repot plant), ``step`` the per-task step offset plus the local index.
* **Ego4D LTA** (``fho_lta_{train,val}.json``, ``clips[i]`` with ``clip_uid``,
  ``action_clip_start_sec``/``_end_sec``, ``verb_label``, ``noun_label``): one segment per
  action; ``step`` = ``verb_label`` (or ``noun_label``, or the (verb, noun) pair id: one
  annotation file per label space), ``task`` = the scenario or 0.

Cache layout (:func:`extract_clip_embeddings`): ``<dir>/embeddings.npy`` ``(N, D)`` float32,
one row per segment, and ``<dir>/index.json`` with ``{"segments": [{"video", "start",
"end", "step", "task"}...], "encoder": ..., "num_frames": ...}`` in the same order.
:class:`StepSequences` reads it back as padded sequences.
"""

import csv
import json
import os

import numpy as np

SEGMENT_KEYS = ("video", "start", "end", "step", "task")


# ---------------------------------------------------------------------------------------
# Annotations and the embedding cache
# ---------------------------------------------------------------------------------------


def _segment(row, where):
    missing = [k for k in SEGMENT_KEYS if k not in row]
    if missing:
        raise ValueError(f"{where}: missing keys {missing} (need {list(SEGMENT_KEYS)}).")
    start, end = float(row["start"]), float(row["end"])
    if end < start:
        raise ValueError(f"{where}: end {end} is before start {start}.")
    return {"video": str(row["video"]), "start": start, "end": end,
            "step": int(row["step"]), "task": int(row["task"])}


def read_step_annotations(path):
    """Reads a CSV or JSON step annotation file (see the module docstring).

    Returns:
        A list of videos ``{"video", "task", "segments": [{"start", "end", "step"}...]}``
        in first-appearance order, segments sorted by start time.

    Example:

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.csv")
    >>> _ = open(p, "w").write("video,start,end,step,task\\nv1,5,9,3,0\\nv1,0,4,2,0\\n")
    >>> [s["step"] for s in read_step_annotations(p)[0]["segments"]]
    [2, 3]
    """
    if path.endswith(".json"):
        with open(path) as f:
            rows = json.load(f)
        if isinstance(rows, dict):
            rows = rows.get("segments", [])
    else:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    videos = {}
    for i, row in enumerate(rows):
        seg = _segment(row, f"{path} row {i}")
        video = videos.setdefault(seg["video"], {"video": seg["video"], "task": seg["task"],
                                                 "segments": []})
        if seg["task"] != video["task"]:
            raise ValueError(f"{path} row {i}: video {seg['video']!r} has tasks "
                             f"{video['task']} and {seg['task']}; one task per video.")
        video["segments"].append({k: seg[k] for k in ("start", "end", "step")})
    for video in videos.values():
        video["segments"].sort(key=lambda s: s["start"])
    return list(videos.values())


def segment_frame_indices(start, end, fps, num_frames, total_frames=None):
    """``num_frames`` frame indices spread uniformly over ``[start, end]`` seconds.

    Example:

    >>> segment_frame_indices(1.0, 2.0, 10, 4).tolist()
    [10, 13, 17, 20]
    """
    first, last = start * fps, max(end * fps, start * fps)
    idx = np.round(np.linspace(first, last, int(num_frames))).astype("int64")
    if total_frames is not None:
        idx = np.clip(idx, 0, int(total_frames) - 1)
    return idx


def embed_clips(encoder, clips, batch_size=32, verbose=0):
    """Mean-pooled clip embeddings ``(N, D)`` of clips ``(N, T, H, W, C)`` with a frozen
    video encoder (or images ``(N, H, W, C)`` with an image encoder; any keras_jepa
    backbone or preset): the encoder's tokens averaged over all patches/tubelets.

    Example:

    >>> from keras_jepa.models import VisionTransformer
    >>> enc = VisionTransformer(image_size=16, patch_size=8, num_frames=2, hidden_dim=8,
    ...                         depth=1, num_heads=2)
    >>> embed_clips(enc, np.zeros((3, 2, 16, 16, 3), "float32")).shape
    (3, 8)
    """
    clips = np.asarray(clips, "float32")
    if len(clips) == 0:
        return np.zeros((0, encoder.output_width), "float32")
    tokens = encoder.predict(clips, batch_size=batch_size, verbose=verbose)
    return np.asarray(tokens, "float32").mean(axis=1)


def extract_clip_embeddings(encoder, annotations, video_root, output_dir, num_frames=16,
                            image_size=224, batch_size=8, verbose=1):
    """Embeds every annotated segment and caches the result (``embeddings.npy`` +
    ``index.json`` in ``output_dir``; see the module docstring).

    Each segment gives one clip of ``num_frames`` frames spread uniformly over its time
    span, resized/centre-cropped with the evaluation transform, mean-pooled by
    :func:`embed_clips`. Segments whose video cannot be read are skipped (and listed in
    ``index.json["skipped"]``). An existing cache with the same segments is reused.

    Args:
        encoder: a keras_jepa backbone (e.g. ``VisionTransformer.from_preset(...)``).
        annotations: a path (CSV/JSON) or the list from :func:`read_step_annotations`.
        video_root: folder the ``video`` fields are relative to (``.mp4`` appended when the
            name has no extension).
    """
    import av

    from keras_jepa.data.transforms import video_transform
    from keras_jepa.data.video import VideoReader

    videos = read_step_annotations(annotations) if isinstance(annotations, str) else annotations
    index_path = os.path.join(output_dir, "index.json")
    emb_path = os.path.join(output_dir, "embeddings.npy")
    wanted = [{"video": v["video"], "task": v["task"], **s} for v in videos
              for s in v["segments"]]
    if os.path.exists(index_path) and os.path.exists(emb_path):
        with open(index_path) as f:
            cached = json.load(f)
        if cached.get("requested") == wanted:
            return np.load(emb_path), cached
    transform = video_transform(image_size, training=False)
    clips, kept, skipped, chunks = [], [], [], []

    def flush():
        if clips:
            chunks.append(embed_clips(encoder, np.stack(clips), batch_size=batch_size))
            clips.clear()

    for vi, video in enumerate(videos):
        path = os.path.join(video_root, video["video"])
        if not os.path.splitext(path)[1]:
            path += ".mp4"
        try:
            with av.open(path) as container:
                reader = VideoReader(container)
                fps = float(reader.rate or 30)
                for seg in video["segments"]:
                    idx = segment_frame_indices(seg["start"], seg["end"], fps, num_frames,
                                                reader.num_frames)
                    frames = reader.frames(idx)
                    clip = np.stack([np.asarray(frames[int(i)].convert("RGB")) for i in idx])
                    clips.append(transform(clip))
                    kept.append({"video": video["video"], "task": video["task"], **seg})
                    if len(clips) >= 4 * batch_size:
                        flush()
        except Exception as err:  # unreadable video: skip and record why
            skipped.append({"video": video["video"], "reason": str(err)[:200]})
        if verbose:
            print(f"\r{vi + 1}/{len(videos)} videos", end="", flush=True)
    flush()
    if verbose:
        print()
    if not chunks:
        raise ValueError(f"No segment of {len(videos)} videos under {video_root!r} could be "
                         "read.")
    embeddings = np.concatenate(chunks).astype("float32")
    os.makedirs(output_dir, exist_ok=True)
    np.save(emb_path, embeddings)
    index = {"segments": kept, "requested": wanted, "skipped": skipped,
             "encoder": getattr(encoder, "name", None), "num_frames": int(num_frames),
             "image_size": int(image_size)}
    with open(index_path, "w") as f:
        json.dump(index, f)
    return embeddings, index


def save_embedding_cache(output_dir, embeddings, segments, **info):
    """Writes ``embeddings`` ``(N, D)`` and their ``segments`` (dicts with the annotation
    keys) in the cache layout; returns ``output_dir``."""
    embeddings = np.asarray(embeddings, "float32")
    if embeddings.ndim != 2 or embeddings.shape[0] != len(segments):
        raise ValueError(f"embeddings {embeddings.shape} do not match {len(segments)} "
                         "segments.")
    os.makedirs(output_dir, exist_ok=True)
    np.save(os.path.join(output_dir, "embeddings.npy"), embeddings)
    with open(os.path.join(output_dir, "index.json"), "w") as f:
        json.dump({"segments": [_segment(s, "segment") for s in segments], **info}, f)
    return output_dir


class StepSequences:
    """Sequences of clip embeddings with step labels and a task label, padded to
    ``max_length`` (longer videos are cut into consecutive windows of ``max_length``).

    Attributes: ``embeddings (N, L, D)``, ``steps (N, L)`` (-1 on padding), ``tasks (N,)``,
    ``lengths (N,)``, ``videos`` (list of ids).

    Example:

    >>> import tempfile
    >>> d = save_embedding_cache(tempfile.mkdtemp(), np.ones((3, 4)), [
    ...     {"video": "a", "start": i, "end": i + 1, "step": i, "task": 1} for i in range(3)])
    >>> seq = StepSequences.from_cache(d, max_length=5)
    >>> seq.embeddings.shape, seq.steps.tolist(), seq.lengths.tolist()
    ((1, 5, 4), [[0, 1, 2, -1, -1]], [3])
    """

    def __init__(self, embeddings, steps, tasks, lengths, videos=None):
        self.embeddings = np.asarray(embeddings, "float32")
        self.steps = np.asarray(steps, "int32")
        self.tasks = np.asarray(tasks, "int32")
        self.lengths = np.asarray(lengths, "int32")
        self.videos = list(videos) if videos is not None else [str(i) for i in
                                                                range(len(self.tasks))]

    def __len__(self):
        return int(self.tasks.shape[0])

    @classmethod
    def from_cache(cls, cache_dir, max_length=16, min_length=2):
        embeddings = np.load(os.path.join(cache_dir, "embeddings.npy"))
        with open(os.path.join(cache_dir, "index.json")) as f:
            segments = json.load(f)["segments"]
        return cls.from_segments(embeddings, segments, max_length, min_length)

    @classmethod
    def from_segments(cls, embeddings, segments, max_length=16, min_length=2):
        """Groups rows of ``embeddings`` by ``segments[i]["video"]`` (sorted by start)."""
        groups = {}
        for i, seg in enumerate(segments):
            groups.setdefault(seg["video"], []).append(i)
        dim = embeddings.shape[-1]
        out_e, out_s, out_t, out_l, out_v = [], [], [], [], []
        for video, rows in groups.items():
            rows.sort(key=lambda r: float(segments[r]["start"]))
            for w in range(0, len(rows), max_length):
                window = rows[w:w + max_length]
                if len(window) < min_length:
                    continue
                e = np.zeros((max_length, dim), "float32")
                s = np.full((max_length,), -1, "int32")
                e[:len(window)] = embeddings[window]
                s[:len(window)] = [int(segments[r]["step"]) for r in window]
                out_e.append(e)
                out_s.append(s)
                out_t.append(int(segments[window[0]]["task"]))
                out_l.append(len(window))
                out_v.append(video)
        if not out_e:
            raise ValueError(f"No video has >= {min_length} segments.")
        return cls(np.stack(out_e), np.stack(out_s), out_t, out_l, out_v)

    def subset(self, index):
        index = np.asarray(index)
        return StepSequences(self.embeddings[index], self.steps[index], self.tasks[index],
                             self.lengths[index], [self.videos[i] for i in index])


# ---------------------------------------------------------------------------------------
# Synthetic procedural benchmark: step grammars rendered from digit images
# ---------------------------------------------------------------------------------------


class StepGrammar:
    """Tasks as stochastic step grammars: per task a start distribution and a Markov
    transition matrix over ``num_steps`` steps, with branch points (steps with several
    possible successors), so the future is genuinely multimodal.

    Args:
        num_tasks: tasks.
        num_steps: step vocabulary (10 when steps are rendered as digits).
        branch_probs: successor probabilities of a branching step, e.g. ``(0.6, 0.4)`` or
            ``(0.5, 0.3, 0.2)``; one of them is drawn per branch point.
        branch_fraction: fraction of (task, step) rows that branch.
        seed: numpy seed.

    Attributes: ``start (K, S)``, ``transitions (K, S, S)``; :meth:`is_branching`.

    Example:

    >>> g = StepGrammar(num_tasks=2, seed=0)
    >>> steps, tasks = g.sample(3, length=5, rng=np.random.default_rng(0))
    >>> steps.shape, tasks.shape, bool(np.allclose(g.transitions.sum(-1), 1))
    ((3, 5), (3,), True)
    """

    def __init__(self, num_tasks=4, num_steps=10, branch_probs=((0.6, 0.4), (0.5, 0.3, 0.2)),
                 branch_fraction=0.5, seed=0):
        if num_tasks < 1 or num_steps < 4:
            raise ValueError(f"Need num_tasks >= 1 and num_steps >= 4; got {num_tasks}, "
                             f"{num_steps}.")
        self.num_tasks, self.num_steps = int(num_tasks), int(num_steps)
        self.branch_probs = tuple(tuple(float(p) for p in b) for b in branch_probs)
        self.branch_fraction = float(branch_fraction)
        self.seed = seed
        rng = np.random.default_rng(seed)
        k, s = self.num_tasks, self.num_steps
        self.start = np.zeros((k, s))
        self.transitions = np.zeros((k, s, s))
        for task in range(k):
            self.start[task, rng.choice(s, 2, replace=False)] = (0.5, 0.5)
            for step in range(s):
                others = np.delete(np.arange(s), step)
                if rng.random() < self.branch_fraction:
                    probs = self.branch_probs[rng.integers(len(self.branch_probs))]
                else:
                    probs = (1.0,)
                succ = rng.choice(others, len(probs), replace=False)
                self.transitions[task, step, succ] = probs

    def is_branching(self, task, step):
        """Whether ``step`` has several successors in ``task`` (arrays broadcast)."""
        return (self.transitions[task, step] > 0).sum(-1) > 1

    def sample(self, num, length, rng=None, tasks=None):
        """``(steps (num, length), tasks (num,))`` drawn from the grammar."""
        rng = np.random.default_rng() if rng is None else rng
        tasks = rng.integers(0, self.num_tasks, num) if tasks is None else np.asarray(tasks)
        steps = np.zeros((num, length), "int32")
        cum_start = np.cumsum(self.start[tasks], -1)
        steps[:, 0] = (rng.random((num, 1)) > cum_start).sum(-1)
        for i in range(1, length):
            cum = np.cumsum(self.transitions[tasks, steps[:, i - 1]], -1)
            steps[:, i] = np.minimum((rng.random((num, 1)) > cum).sum(-1), self.num_steps - 1)
        return steps, tasks.astype("int32")

    def continue_from(self, last_steps, tasks, length, num_samples, rng=None):
        """Samples ``num_samples`` continuations of ``length`` steps after ``last_steps``:
        ``(N, num_samples, length)``."""
        rng = np.random.default_rng() if rng is None else rng
        n = len(last_steps)
        prev = np.repeat(np.asarray(last_steps), num_samples)
        t = np.repeat(np.asarray(tasks), num_samples)
        out = np.zeros((n * num_samples, length), "int32")
        for i in range(length):
            cum = np.cumsum(self.transitions[t, prev], -1)
            prev = np.minimum((rng.random((len(prev), 1)) > cum).sum(-1), self.num_steps - 1)
            out[:, i] = prev
        return out.reshape(n, num_samples, length)

    def most_likely_path(self, start_steps, goal_steps, tasks, horizon):
        """The oracle plan: the most probable ``horizon`` intermediate steps between each
        start and goal under the task's chain (Viterbi), ``(N, horizon)``."""
        logt = np.log(np.maximum(self.transitions, 1e-30))
        out = np.zeros((len(tasks), horizon), "int32")
        for n, (a, b, k) in enumerate(zip(start_steps, goal_steps, tasks)):
            score = logt[k, a]  # (S,) log p of first intermediate step
            back = []
            for _ in range(horizon - 1):
                cand = score[:, None] + logt[k]
                back.append(cand.argmax(0))
                score = cand.max(0)
            final = score + logt[k, :, b]
            path = [int(final.argmax())]
            for bp in reversed(back):
                path.append(int(bp[path[-1]]))
            out[n] = path[::-1]
        return out


def render_step_clips(images, labels, num_clips_per_step, num_steps=10, num_frames=4,
                      max_shift=2, noise_std=0.05, rng=None):
    """Short clips of each step: a digit image of the step's class drifting by up to
    ``max_shift`` pixels over ``num_frames`` frames, plus pixel noise.

    Returns:
        ``(clips (num_steps * n, T, H, W, C), steps (num_steps * n,))`` float32 / int32.

    Example:

    >>> imgs = np.random.default_rng(0).random((20, 8, 8, 3)).astype("float32")
    >>> clips, steps = render_step_clips(imgs, np.arange(20) % 10, 2, num_frames=3)
    >>> clips.shape, steps.tolist()[:4]
    ((20, 3, 8, 8, 3), [0, 0, 1, 1])
    """
    rng = np.random.default_rng() if rng is None else rng
    clips, steps = [], []
    for step in range(num_steps):
        pool = np.flatnonzero(labels == step)
        if not len(pool):
            raise ValueError(f"No image of class {step} to render step {step}.")
        for _ in range(num_clips_per_step):
            img = images[rng.choice(pool)]
            direction = rng.integers(-1, 2, size=2)
            frames = []
            for f in range(num_frames):
                shift = np.round(direction * max_shift * f / max(num_frames - 1, 1))
                frames.append(np.roll(img, tuple(int(v) for v in shift), axis=(0, 1)))
            clip = np.stack(frames) + rng.normal(0, noise_std, (num_frames,) + img.shape)
            clips.append(np.clip(clip, 0, 1))
            steps.append(step)
    return np.asarray(clips, "float32"), np.asarray(steps, "int32")


def make_procedural_digits(grammar=None, num_train=2000, num_test=500, length=8,
                           clips_per_step=60, image_size=16, num_frames=4, encoder=None,
                           encoder_epochs=4, seed=0):
    """The synthetic procedural benchmark: sequences from a :class:`StepGrammar`, each step
    a clip of a digit of that class embedded by a frozen encoder.

    Train and test draw clips from disjoint halves of the digit images. The default encoder
    is a small video :class:`~keras_jepa.models.VisionTransformer` (patch 8, tubelet 2,
    width 32, depth 2), seeded, trained for ``encoder_epochs`` quick epochs to recognise the
    digit of training clips (a stand-in for a strong public encoder; 0 keeps it random:
    mean-pooled random features separate the digits only ~60-75% linearly), then frozen;
    its embeddings are the mean of its tokens.

    Returns:
        dict with ``grammar``, ``train``/``test`` :class:`StepSequences`, and the clip
        banks ``bank_train``/``bank_test`` = ``(embeddings (M, D), steps (M,))``.
    """
    from keras_jepa.data.digits import load_digits
    from keras_jepa.models.vit.vision_transformer import VisionTransformer

    rng = np.random.default_rng(seed)
    grammar = StepGrammar(seed=seed) if grammar is None else grammar
    images, labels = load_digits(image_size)
    half = np.arange(len(labels)) % 2 == 0
    if encoder is None:
        encoder = VisionTransformer(image_size=image_size, patch_size=8, num_frames=num_frames,
                                    tubelet_size=2, hidden_dim=32, depth=2, num_heads=2,
                                    name="frozen_clip_encoder")
        _seed_encoder(encoder, seed)
    rendered = {}
    for split, keep in (("train", half), ("test", ~half)):
        rendered[split] = render_step_clips(images[keep], labels[keep], clips_per_step,
                                            grammar.num_steps, num_frames, rng=rng)
    if encoder_epochs:
        _train_encoder(encoder, *rendered["train"], grammar.num_steps, encoder_epochs)
    encoder.trainable = False
    banks = {split: (embed_clips(encoder, clips, batch_size=128), steps)
             for split, (clips, steps) in rendered.items()}
    out = {"grammar": grammar, "encoder": encoder}
    for split, num in (("train", num_train), ("test", num_test)):
        steps, tasks = grammar.sample(num, length, rng=rng)
        emb, bank_steps = banks[split]
        by_step = [np.flatnonzero(bank_steps == s) for s in range(grammar.num_steps)]
        rows = np.vectorize(lambda s: rng.choice(by_step[s]))(steps)
        out[split] = StepSequences(emb[rows], steps, tasks, np.full((num,), length))
        out["bank_" + split] = banks[split]
    return out


def _train_encoder(encoder, clips, steps, num_classes, epochs):
    """A few epochs of step recognition through mean-pooled tokens (the encoder only)."""
    import keras

    inputs = keras.Input(tuple(clips.shape[1:]))
    pooled = keras.ops.mean(encoder(inputs), axis=1)
    logits = keras.layers.Dense(num_classes)(pooled)
    model = keras.Model(inputs, logits)
    model.compile(optimizer=keras.optimizers.AdamW(2e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(clips, steps, batch_size=32, epochs=int(epochs), shuffle=True, verbose=0)


def _seed_encoder(encoder, seed):
    """Re-draws the encoder's kernels from a numpy seed (same weights on every backend)."""
    rng = np.random.default_rng(seed + 1000)
    for v in encoder.weights:
        shape = tuple(v.shape)
        if "kernel" in v.path:
            v.assign(rng.normal(0.0, 0.2, shape).astype("float32"))
