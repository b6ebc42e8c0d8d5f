"""Readers for the intuitive-physics (violation-of-expectation) benchmarks, in the layouts the
official V-JEPA evaluation reads. Each yields matched ``(possible, impossible)`` pairs:
``{"possible": (T, H, W, 3) uint8, "impossible": ..., "property": str, "name": str}``.

* **IntPhys** (dev): ``root/<scene>/{1,2,3,4}/scene/*.png`` with an optional
  ``root/<scene>/<k>/status.json`` whose ``header.is_possible`` gives the label (a missing
  file means possible). ``root`` is one block (``O1``, ``O2``, ``O3``), or a folder holding
  block folders. A scene is a quadruplet (2 possible, 2 impossible); the pairs are found as
  in the official code: for clips 2-4, the first frame where each differs from clip 1 (the
  "breaking point"); the clip that stays identical longest is clip 1's match and the other
  two form the second pair. (The official code sums *signed* differences, which two
  different frames could cancel; absolute differences are used here.)
* **GRASP** (level 2): ``root/P_<property>/<scene>`` (possible) and
  ``root/IP_<property>/<scene>`` (impossible), videos with the same file name.
* **InfLevel-lab**: a CSV per property (``continuity.csv``, ``solidity.csv``,
  ``gravity.csv``) with columns ``vid1_path, vid1_start_priming_1, vid1_end_priming_1,
  vid1_start_priming_2, vid1_end_priming_2, vid1_label`` and the same for ``vid2``; paths
  are relative to ``root``, labels are ``possible``/``impossible``. By default each video
  starts after its ``end_priming_2`` frame, and the one with more frames left skips its
  extra first frames so both end together; ``priming=True`` keeps the whole videos, the
  longer one skipping its extra first frames.

Frames are subsampled with ``frame_step`` (then cut to ``max_frames``) while reading; with
``image_size`` each frame is centre-cropped to a square and resized (the official
evaluation transform: resize-crop at scale 1 and aspect 1).
"""

import csv
import glob
import json
import os

import numpy as np

GRASP_PREFIXES = ("P_", "IP_")
INFLEVEL_PROPERTIES = ("continuity", "solidity", "gravity")
_VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".npy")


def resize_frames(frames, image_size):
    """Centre square crop then bilinear resize of ``(T, H, W, 3)`` uint8 frames.

    Example:

    >>> resize_frames(np.zeros((2, 10, 20, 3), "uint8"), 8).shape
    (2, 8, 8, 3)
    """
    from PIL import Image

    frames = np.asarray(frames)
    if image_size is None:
        return frames
    h, w = frames.shape[1:3]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = frames[:, top:top + side, left:left + side]
    if side == int(image_size):
        return np.ascontiguousarray(crop)
    size = (int(image_size), int(image_size))
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR))
                     for f in crop])


def read_video_frames(path, frame_step=1, start=0, max_frames=None, image_size=None):
    """Decodes ``path`` (PyAV; or a ``.npy`` array of ``(T, H, W, 3)``) and keeps frames
    ``start, start + frame_step, ...`` (at most ``max_frames``), as uint8 RGB.

    Example:

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "v.npy")
    >>> np.save(path, np.arange(5 * 4 * 4 * 3, dtype="uint8").reshape(5, 4, 4, 3))
    >>> read_video_frames(path, frame_step=2).shape
    (3, 4, 4, 3)
    """
    if not os.path.exists(path):
        raise ValueError(f"Video file not found: {path!r}.")
    start, step = int(start), int(frame_step)
    if path.endswith(".npy"):
        frames = np.load(path)
        if frames.dtype != np.uint8:
            frames = np.clip(np.round(frames * 255.0), 0, 255).astype("uint8")
        frames = frames[start::step]
    else:
        import av

        frames = []
        with av.open(path) as container:
            for k, frame in enumerate(container.decode(video=0)):
                if k >= start and (k - start) % step == 0:
                    frames.append(frame.to_ndarray(format="rgb24"))
                    if max_frames is not None and len(frames) >= int(max_frames):
                        break
        if not frames:
            raise ValueError(f"No frames decoded from {path!r} (start={start}).")
        frames = np.stack(frames)
    if max_frames is not None:
        frames = frames[: int(max_frames)]
    return resize_frames(frames, image_size)


def count_video_frames(path):
    """Number of frames of a video (decodes it; ``.npy`` reads the array header)."""
    if path.endswith(".npy"):
        return int(np.load(path, mmap_mode="r").shape[0])
    import av

    with av.open(path) as container:
        return sum(1 for _ in container.decode(video=0))


# --------------------------------------------------------------------------- IntPhys


def _is_intphys_scene(folder):
    return all(os.path.isdir(os.path.join(folder, str(k), "scene")) for k in (1, 2, 3, 4))


def intphys_label(clip_folder):
    """``header.is_possible`` of ``clip_folder/status.json``; True when the file is missing
    (as the official reader)."""
    path = os.path.join(clip_folder, "status.json")
    if not os.path.exists(path):
        return True
    with open(path, encoding="utf-8") as f:
        return bool(json.load(f)["header"]["is_possible"])


def breaking_points(clips):
    """For clips 2-4 of a quadruplet ``(4, T, ...)``: the first frame where each differs
    from clip 1 (``T`` if never).

    Example:

    >>> q = np.zeros((4, 5, 1)); q[1, 3:] = 1; q[2, 1:] = 1; q[3, 2:] = 1
    >>> breaking_points(q)
    [3, 1, 2]
    """
    out = []
    for k in (1, 2, 3):
        diff = np.abs(clips[0].astype("float64") - clips[k].astype("float64"))
        per_frame = diff.reshape(diff.shape[0], -1).sum(axis=1)
        nz = np.flatnonzero(per_frame != 0)
        out.append(int(nz[0]) if len(nz) else int(clips.shape[1]))
    return out


def match_quadruplet(points):
    """The two matched pairs of clip indices (0-based) from :func:`breaking_points`: clip 0
    with the clip that stays identical longest, the other two together.

    Example:

    >>> match_quadruplet([3, 1, 2])
    [(0, 1), (2, 3)]
    """
    best = int(np.argmax(points))
    return [[(0, 1), (2, 3)], [(0, 2), (1, 3)], [(0, 3), (1, 2)]][best]


def iter_intphys(root, frame_step=1, max_frames=None, image_size=None):
    """Yields the matched pairs of an IntPhys dev folder (see the module docstring).

    ``property`` is the block folder name (``O1``...) when ``root`` holds block folders,
    else ``root``'s own name.
    """
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise ValueError(f"IntPhys folder not found: {root!r}.")
    blocks = []
    entries = sorted(os.listdir(root))
    if any(_is_intphys_scene(os.path.join(root, e)) for e in entries):
        blocks.append((os.path.basename(root), root))
    else:
        blocks += [(e, os.path.join(root, e)) for e in entries
                   if os.path.isdir(os.path.join(root, e))]
    found = False
    for block, folder in blocks:
        for scene in sorted(os.listdir(folder)):
            path = os.path.join(folder, scene)
            if not _is_intphys_scene(path):
                continue
            found = True
            clips, labels = [], []
            for k in (1, 2, 3, 4):
                clip_dir = os.path.join(path, str(k))
                files = sorted(glob.glob(os.path.join(clip_dir, "scene", "*.png")))
                if not files:
                    raise ValueError(f"No PNG frames in {os.path.join(clip_dir, 'scene')!r}.")
                files = files[:: int(frame_step)]
                if max_frames is not None:
                    files = files[: int(max_frames)]
                clips.append(_read_pngs(files))
                labels.append(intphys_label(clip_dir))
            if len({c.shape for c in clips}) != 1:
                raise ValueError(f"The 4 clips of scene {path!r} differ in shape.")
            clips = np.stack(clips)
            for a, b in match_quadruplet(breaking_points(clips)):
                if labels[a] == labels[b]:
                    raise ValueError(
                        f"Scene {path!r}: matched clips {a + 1} and {b + 1} are both "
                        f"{'possible' if labels[a] else 'impossible'}; check status.json."
                    )
                pos, imp = (a, b) if labels[a] else (b, a)
                yield {"possible": resize_frames(clips[pos], image_size),
                       "impossible": resize_frames(clips[imp], image_size),
                       "property": block, "name": f"{block}/{scene}/{pos + 1}-{imp + 1}"}
    if not found:
        raise ValueError(
            f"No IntPhys scene (<scene>/1..4/scene/*.png) under {root!r}."
        )


def _read_pngs(files):
    from keras_jepa.data.image_io import open_rgb

    return np.stack([np.asarray(open_rgb(f)) for f in files])


# --------------------------------------------------------------------------- GRASP


def grasp_properties(root):
    """Properties with both ``P_<prop>`` and ``IP_<prop>`` folders under ``root``."""
    names = set(os.listdir(root)) if os.path.isdir(root) else set()
    return sorted(n[2:] for n in names if n.startswith("P_") and f"IP_{n[2:]}" in names)


def iter_grasp(root, properties=None, frame_step=1, max_frames=None, image_size=None):
    """Yields the matched pairs of a GRASP folder: ``P_<prop>/<scene>`` with
    ``IP_<prop>/<scene>``, per property (all found by default)."""
    root = os.path.abspath(root)
    available = grasp_properties(root)
    if not available:
        raise ValueError(f"No P_<property>/IP_<property> folder pair under {root!r}.")
    properties = available if properties is None else list(properties)
    for prop in properties:
        if prop not in available:
            raise ValueError(f"GRASP property {prop!r} not found under {root!r}; "
                             f"found {available}.")
        folder = os.path.join(root, f"P_{prop}")
        for scene in sorted(os.listdir(folder)):
            if not scene.lower().endswith(_VIDEO_EXTENSIONS):
                continue
            other = os.path.join(root, f"IP_{prop}", scene)
            if not os.path.exists(other):
                raise ValueError(f"{os.path.join(folder, scene)!r} has no impossible "
                                 f"match {other!r}.")
            kw = dict(frame_step=frame_step, max_frames=max_frames, image_size=image_size)
            yield {"possible": read_video_frames(os.path.join(folder, scene), **kw),
                   "impossible": read_video_frames(other, **kw),
                   "property": prop, "name": f"{prop}/{scene}"}


# --------------------------------------------------------------------------- InfLevel


def read_inflevel_csv(path):
    """Rows of an InfLevel pair CSV as dicts (frame numbers as ints)."""
    required = [f"vid{k}_{c}" for k in (1, 2) for c in (
        "path", "start_priming_1", "end_priming_1", "start_priming_2", "end_priming_2",
        "label")]
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path!r} lacks the InfLevel columns {missing}.")
        rows = []
        for row in reader:
            for key in required:
                if "priming" in key:
                    row[key] = int(row[key])
            rows.append(row)
    return rows


def inflevel_starts(length1, length2, row, priming=False):
    """First frame of each video of an InfLevel pair (official alignment rules).

    Example:

    >>> row = {"vid1_end_priming_2": 10, "vid2_end_priming_2": 12}
    >>> inflevel_starts(40, 40, row), inflevel_starts(40, 38, row, priming=True)
    ((13, 13), (2, 0))
    """
    if priming:
        diff = length1 - length2
        return (diff if diff > 0 else 0), (-diff if diff < 0 else 0)
    e1, e2 = int(row["vid1_end_priming_2"]), int(row["vid2_end_priming_2"])
    diff = (length1 - e1) - (length2 - e2)
    return e1 + 1 + max(diff, 0), e2 + 1 + max(-diff, 0)


def iter_inflevel(root, csv_files, priming=False, frame_step=1, max_frames=None,
                  image_size=None):
    """Yields the pairs listed in InfLevel CSVs (one per property; the property is the
    CSV's file name without extension). Video paths are relative to ``root``."""
    if isinstance(csv_files, str):
        csv_files = [csv_files]
    if not csv_files:
        raise ValueError("InfLevel needs at least one pair CSV (e.g. continuity.csv).")
    for csv_path in csv_files:
        prop = os.path.splitext(os.path.basename(csv_path))[0]
        for row in read_inflevel_csv(csv_path):
            paths = [os.path.join(root, row[f"vid{k}_path"]) for k in (1, 2)]
            lengths = [count_video_frames(p) for p in paths]
            starts = inflevel_starts(lengths[0], lengths[1], row, priming)
            videos = [read_video_frames(p, frame_step=frame_step, start=s,
                                        max_frames=max_frames, image_size=image_size)
                      for p, s in zip(paths, starts)]
            labels = [row[f"vid{k}_label"].strip().lower() for k in (1, 2)]
            if sorted(labels) != ["impossible", "possible"]:
                raise ValueError(f"{csv_path!r}: a pair needs one possible and one "
                                 f"impossible video; got labels {labels}.")
            pos = labels.index("possible")
            yield {"possible": videos[pos], "impossible": videos[1 - pos],
                   "property": prop, "name": row[f"vid{pos + 1}_path"]}


def load_voe_pairs(root, format, frame_step=1, max_frames=None, image_size=None,
                   csv_files=None, properties=None, priming=False):
    """All matched pairs of a benchmark folder as lists: ``{"possible": [...],
    "impossible": [...], "property": [...], "name": [...]}``.

    ``format``: ``"intphys"``, ``"grasp"`` or ``"inflevel"`` (then ``csv_files``: the pair
    CSVs; default ``root/*.csv``).

    Example:

    >>> import tempfile
    >>> from keras_jepa.data.physics_videos import make_voe_dataset, write_voe_dataset
    >>> folder = write_voe_dataset(make_voe_dataset(["inertia"], 1, image_size=16,
    ...                            num_frames=6), tempfile.mkdtemp(), format="npy")
    >>> pairs = load_voe_pairs(folder, "grasp")
    >>> len(pairs["possible"]), pairs["property"]
    (2, ['inertia', 'inertia'])
    """
    kw = dict(frame_step=frame_step, max_frames=max_frames, image_size=image_size)
    if format == "intphys":
        it = iter_intphys(root, **kw)
    elif format == "grasp":
        it = iter_grasp(root, properties=properties, **kw)
    elif format == "inflevel":
        if csv_files is None:
            csv_files = sorted(glob.glob(os.path.join(root, "*.csv")))
        it = iter_inflevel(root, csv_files, priming=priming, **kw)
    else:
        raise ValueError(f"format must be 'intphys', 'grasp' or 'inflevel'; got {format!r}.")
    out = {"possible": [], "impossible": [], "property": [], "name": []}
    for pair in it:
        for key in out:
            out[key].append(pair[key])
    return out
