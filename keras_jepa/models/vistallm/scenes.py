"""Synthetic shapes and scenes for the VistaLLM building blocks (numpy, offline).

- ``random_shape_polygon(kind, size, rng)``: sharp-cornered test shapes for the sampling
  benchmark: ``"rectangle"`` (rotated), ``"triangle"``, ``"star"`` and ``"silhouette"``
  (a procedurally drawn four-legged animal: body, neck, head, legs and tail, non-convex
  with many corners; it stands in for scikit-image's horse, which is not a dependency).
- ``make_scenes`` / ``scene_examples``: small images with several coloured shapes, their
  masks and boxes, a caption, referring expressions, and the tasks of the small
  vision-language model: caption, referring box and referring mask (as a polygon sequence).

Example:

>>> scenes = make_scenes(2, image_size=32, seed=0)
>>> tuple(scenes[0]["image"].shape), len(scenes[0]["objects"]) >= 2
((32, 32, 3), True)
"""

import numpy as np

from keras_jepa.models.vistallm import sequences as seq

SHAPE_KINDS = ("rectangle", "triangle", "star", "silhouette")
SCENE_COLOURS = {
    "red": (0.9, 0.15, 0.1),
    "green": (0.15, 0.8, 0.2),
    "blue": (0.15, 0.3, 0.95),
    "yellow": (0.95, 0.85, 0.1),
}
SCENE_SHAPES = ("square", "triangle", "circle")
TASKS = ("caption", "box", "mask")
TASK_TOKENS = {task: f"<{task}>" for task in TASKS}


def _rotate(points, angle, centre):
    c, s = np.cos(angle), np.sin(angle)
    return (points @ np.array([[c, -s], [s, c]]).T) + centre


def random_shape_polygon(kind, size, rng):
    """Vertices ``(K, 2)`` (pixel ``(x, y)``) of a random shape inside a ``size`` square;
    ``"silhouette"`` returns a list of polygons (its parts) to fill together.

    >>> rng = np.random.default_rng(0)
    >>> random_shape_polygon("triangle", 64, rng).shape
    (3, 2)
    """
    s = float(size)
    if kind == "rectangle":
        w, h = rng.uniform(0.25, 0.7, 2) * s
        box = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
        return _rotate(box, rng.uniform(0, np.pi), rng.uniform(0.4, 0.6, 2) * s)
    if kind == "triangle":
        while True:
            p = rng.uniform(0.1, 0.9, (3, 2)) * s
            if abs(seq.polygon_area(p)) > 0.06 * s * s:
                return p
    if kind == "star":
        k = int(rng.integers(4, 7))
        outer, inner = rng.uniform(0.3, 0.42) * s, rng.uniform(0.12, 0.22) * s
        radius = np.where(np.arange(2 * k) % 2 == 0, outer, inner)
        angle = np.arange(2 * k) * np.pi / k + rng.uniform(0, np.pi)
        return np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1) + s / 2
    if kind == "silhouette":
        return _silhouette(s, rng)
    raise ValueError(f"kind must be one of {SHAPE_KINDS}; got {kind!r}.")


def _silhouette(s, rng):
    """A side view of a four-legged animal as a union of polygons (pixel units)."""
    u = s / 100.0
    j = lambda: rng.uniform(-3, 3, 2) * u  # noqa: E731  small jitter per vertex
    body_w, body_h = rng.uniform(42, 52) * u, rng.uniform(18, 24) * u
    x0, y0 = 24 * u, 38 * u
    body = np.array([[x0, y0], [x0 + body_w, y0 - 2 * u], [x0 + body_w + 4 * u, y0 + body_h],
                     [x0 - 2 * u, y0 + body_h + 2 * u]])
    body = body + np.stack([j() for _ in range(4)])
    neck_x = x0 + body_w - 6 * u
    neck = np.array([[neck_x, y0 + 4 * u], [neck_x + 8 * u, y0 - 4 * u],
                     [neck_x + 16 * u, y0 - 22 * u], [neck_x + 8 * u, y0 - 24 * u],
                     [neck_x - 2 * u, y0]])
    head = np.array([[neck_x + 6 * u, y0 - 26 * u], [neck_x + 14 * u, y0 - 30 * u],
                     [neck_x + 26 * u, y0 - 18 * u], [neck_x + 22 * u, y0 - 13 * u],
                     [neck_x + 13 * u, y0 - 17 * u]])
    head = head + np.stack([j() for _ in range(5)])
    legs = []
    foot_y = y0 + body_h + rng.uniform(24, 32) * u
    for lx in (x0 + 2 * u, x0 + 10 * u, x0 + body_w - 10 * u, x0 + body_w - 2 * u):
        lean = rng.uniform(-6, 6) * u
        legs.append(np.array([[lx, y0 + body_h - 2 * u], [lx + 5 * u, y0 + body_h - 2 * u],
                              [lx + 5 * u + lean, foot_y], [lx + lean, foot_y]]))
    tail = np.array([[x0, y0 + 2 * u], [x0 - 14 * u, y0 + 22 * u + rng.uniform(-4, 4) * u],
                     [x0 - 10 * u, y0 + 24 * u], [x0 + 2 * u, y0 + 8 * u]])
    return [body, neck, head, tail] + legs


def random_shape_mask(kind, size, rng):
    """A boolean ``(size, size)`` mask of ``random_shape_polygon(kind, size, rng)``."""
    poly = random_shape_polygon(kind, size, rng)
    polys = poly if isinstance(poly, list) else [poly]
    return seq.polygons_to_mask(polys, (size, size))


def sampling_fidelity(masks, num_points, method, **kwargs):
    """Mean IoU between each mask and the fill of its ``num_points``-point polygons."""
    ious = []
    for mask in masks:
        polygons = seq.sample_mask(mask, num_points, method, **kwargs)
        ious.append(seq.mask_iou(seq.polygons_to_mask(polygons, mask.shape), mask))
    return float(np.mean(ious))


# ------------------------------------------------------------------------------ scenes


def _scene_object(kind, image_size, rng):
    s = float(image_size)
    size = rng.uniform(0.28, 0.45) * s
    if kind == "square":
        w, h = size * rng.uniform(0.75, 1.0, 2)
        x, y = rng.uniform(0, s - w), rng.uniform(0, s - h)
        return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
    if kind == "triangle":
        cx, cy = rng.uniform(size / 2, s - size / 2, 2)
        angle = rng.uniform(0, 2 * np.pi) + np.array([0.0, 2.1, 4.2]) + rng.uniform(-0.3, 0.3, 3)
        return np.stack([cx + size / 2 * np.cos(angle), cy + size / 2 * np.sin(angle)], 1)
    angle = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    cx, cy = rng.uniform(size / 2, s - size / 2, 2)
    return np.stack([cx + size / 2 * np.cos(angle), cy + size / 2 * np.sin(angle)], 1)


def make_scenes(num_scenes, image_size=32, min_objects=2, max_objects=3, seed=0,
                noise=0.05):
    """Images with ``min_objects..max_objects`` non-overlapping coloured shapes.

    Each (colour, shape) pair appears at most once per image, so "the red square" names
    one object. Returns a list of dicts: ``image`` ``(S, S, 3)`` float32 in ``[0, 1]``,
    ``objects`` (each: ``colour``, ``shape``, ``mask`` bool ``(S, S)``, ``box``
    ``(x0, y0, x1, y1)`` in pixels, the drawn ``polygon``), ``caption`` (objects left to
    right).
    """
    if min_objects < 1 or max_objects < min_objects:
        raise ValueError(
            f"Need 1 <= min_objects <= max_objects; got {min_objects}, {max_objects}."
        )
    rng = np.random.default_rng(seed)
    pairs = [(c, k) for c in SCENE_COLOURS for k in SCENE_SHAPES]
    scenes = []
    while len(scenes) < num_scenes:
        count = int(rng.integers(min_objects, max_objects + 1))
        chosen = [pairs[i] for i in rng.choice(len(pairs), count, replace=False)]
        occupied = np.zeros((image_size, image_size), bool)
        objects = []
        for colour, kind in chosen:
            for _ in range(50):
                polygon = _scene_object(kind, image_size, rng)
                mask = seq.polygons_to_mask([polygon], (image_size, image_size))
                grown = mask | np.roll(mask, 1, 0) | np.roll(mask, 1, 1)
                grown |= np.roll(mask, -1, 0) | np.roll(mask, -1, 1)
                if mask.sum() >= 12 and not (grown & occupied).any():
                    break
            else:
                break
            occupied |= mask
            rows, cols = np.nonzero(mask)
            box = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], float)
            objects.append(
                dict(colour=colour, shape=kind, mask=mask, box=box, polygon=polygon)
            )
        if len(objects) < count:
            continue
        image = rng.normal(0.1, noise, (image_size, image_size, 3))
        for obj in objects:
            image[obj["mask"]] = np.asarray(SCENE_COLOURS[obj["colour"]])
        objects.sort(key=lambda o: (o["box"][0] + o["box"][2]))
        caption = []
        for obj in objects:
            caption += [obj["colour"], obj["shape"]]
        scenes.append(
            dict(image=np.clip(image, 0, 1).astype("float32"), objects=objects,
                 caption=caption)
        )
    return scenes


def scene_vocabulary(num_bins=seq.NUM_BINS):
    """The token vocabulary of the scene tasks: task tokens, colours, shapes, bins."""
    words = list(TASK_TOKENS.values()) + list(SCENE_COLOURS) + list(SCENE_SHAPES)
    return seq.Vocabulary(words, num_bins=num_bins)


def scene_examples(scenes, vocabulary, tasks=TASKS, num_points=8, presample_points=40,
                   instruction_length=3, target_length=None, contour_scale=4,
                   snap_to_pixels=False):
    """Turns scenes into teacher-forcing arrays for the small vision-language model.

    Every scene gives one caption example and, for each object, one referring-box and
    one referring-mask example (the tasks in ``tasks``). Instructions are
    ``[<task>, colour, shape]`` (``[<caption>, <pad>, <pad>]``); targets are the answer
    tokens then ``<eos>``: caption words, 4 box bins, or the adaptive-sampled mask sequence
    ``<m_st> x y ... <m_ed>`` of the largest polygon (``num_points`` points).

    The mask's contour is traced on a ``contour_scale`` times finer rendering of the
    object (as annotation polygons are finer than a small model's input): on a contour
    shorter than ``presample_points`` the pre-sampling stride is 1, every pixel step
    then scores about the same sharpness and pruning keeps a cluster of steps instead of
    the corners. ``contour_scale=1`` samples the ``S x S`` mask itself.
    ``snap_to_pixels=True`` rounds the sampled points to the ``S x S`` pixel corners (at
    most ``S + 1`` distinct coordinates, an easier target for a small model).

    Returns ``(inputs, targets, meta)``: ``inputs`` holds ``images`` ``(E, S, S, 3)``,
    ``instruction`` ``(E, instruction_length)`` and ``tokens`` (``<bos>`` + targets
    shifted right) ``(E, target_length)``; ``targets`` ``(E, target_length)`` int32 with
    0 = padding; ``meta`` has per example the ``task``, the referred ``mask`` and ``box``,
    and the mask of the scene's largest object (the baseline's answer).
    """
    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"Unknown task {task!r}; choose from {TASKS}.")
    if target_length is None:
        longest_caption = max(len(scene["caption"]) for scene in scenes)
        target_length = max(longest_caption + 1, 5, 2 * num_points + 3)
    images, instructions, answers, meta = [], [], [], []
    for index, scene in enumerate(scenes):
        shape = scene["image"].shape
        largest = max(scene["objects"], key=lambda o: o["mask"].sum())["mask"]
        items = []
        if "caption" in tasks:
            items.append(("caption", None, list(scene["caption"])))
        for obj in scene["objects"]:
            if "box" in tasks:
                items.append(("box", obj, seq.box_to_tokens(obj["box"], shape,
                                                             vocabulary.num_bins)))
            if "mask" in tasks:
                fine = (shape[0] * contour_scale, shape[1] * contour_scale)
                fine_mask = seq.polygons_to_mask([obj["polygon"] * contour_scale], fine)
                polygons = seq.sample_mask(fine_mask, num_points, "adaptive",
                                           presample_points, max_polygons=1)
                frame = fine
                if snap_to_pixels:
                    polygons = [np.where(p < 0, seq.PAD_VALUE, np.round(p / contour_scale))
                                for p in polygons]
                    frame = shape
                items.append(("mask", obj, seq.polygons_to_tokens(polygons, frame,
                                                                  vocabulary.num_bins)))
        for task, obj, answer in items:
            instruction = [TASK_TOKENS[task]]
            if obj is not None:
                instruction += [obj["colour"], obj["shape"]]
            ids = vocabulary.encode(instruction)
            instructions.append(ids + [0] * (instruction_length - len(ids)))
            answer = vocabulary.encode(answer) + [vocabulary.eos_id]
            if len(answer) > target_length:
                raise ValueError(
                    f"An answer of {len(answer)} tokens exceeds target_length="
                    f"{target_length}."
                )
            answers.append(answer + [0] * (target_length - len(answer)))
            images.append(index)
            meta.append(dict(task=task, scene=index,
                             mask=None if obj is None else obj["mask"],
                             box=None if obj is None else obj["box"],
                             largest_mask=largest))
    targets = np.asarray(answers, "int32")
    tokens = np.concatenate(
        [np.full((len(targets), 1), vocabulary.bos_id, "int32"), targets[:, :-1]], axis=1
    )
    stack = np.stack([s["image"] for s in scenes])
    inputs = dict(images=stack[np.asarray(images)],
                  instruction=np.asarray(instructions, "int32"), tokens=tokens)
    return inputs, targets, meta

