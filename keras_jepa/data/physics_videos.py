"""Procedural violation-of-expectation (VoE) videos for intuitive-physics tests (numpy only).

Every test scene follows the minimal-set design of IntPhys. Two world histories ``A`` and
``B`` are rendered that differ only in one property variable (object present or absent,
disc or square, red or blue, where a moving object is, which way it goes...), with
everything else identical. Both obey the physics of the scene. The two impossible videos
are splices at frame ``s``: ``AB = A[:s] + B[s:]`` and ``BA = B[:s] + A[s:]``. Hence

* every frame occurs exactly as often among the possible videos ``{A, B}`` as among the
  impossible ones ``{AB, BA}``, so single-frame statistics cannot tell them apart;
* the matched pairs ``(A, AB)`` and ``(B, BA)`` are identical before the splice.

Properties (``PROPERTIES``) and their two histories:

=====================  =======================================  ==============================
property               histories A / B                           impossible (spliced) event
=====================  =======================================  ==============================
object_permanence      key object present / absent               object vanishes or appears
shape_constancy        disc / square (or triangle)               shape changes
colour_constancy       colour 1 / colour 2                       colour changes
continuity             same motion, B ahead by the screen gap    teleports across the gap
gravity                dropped from rest / tossed upward,        falls then flies up, or rises
                       crossing at the splice                    then drops at speed
solidity               hits a wall from the left and bounces /   passes through the wall
                       hits it from the right and bounces
inertia                constant velocity v1 / v2, crossing at     speed or direction changes
                       the splice                                with no contact
=====================  =======================================  ==============================

Conditions: ``occluded`` (the splice happens behind an opaque screen: a screen that rises
and falls in front of a static object, a static screen in front of a moving one, two screens
with a gap for continuity) or visible (no screen; the violation happens in view);
1-3 objects (the extra ones are identical in both histories); static or moving; plain or
textured (static noise) background. Rendering is vectorised over frames and pixels
(anti-aliased signed-distance shapes), at any square resolution and length, and a scene is
a pure function of its arguments and seed.

The ground-truth state of the key object is returned with each video (``states``: per frame
``present, x, y, shape, colour``); :func:`physics_violations` checks a state sequence
against the law of its property and is the oracle scorer of the tests.
"""

import os

import numpy as np

PROPERTIES = (
    "object_permanence",
    "shape_constancy",
    "colour_constancy",
    "continuity",
    "gravity",
    "solidity",
    "inertia",
)

SHAPES = ("disc", "square", "triangle")
PALETTE = np.array(
    [
        [0.90, 0.15, 0.15],  # red
        [0.15, 0.70, 0.20],  # green
        [0.15, 0.35, 0.95],  # blue
        [0.95, 0.80, 0.10],  # yellow
        [0.80, 0.20, 0.85],  # magenta
        [0.10, 0.80, 0.85],  # cyan
    ],
    dtype="float32",
)
FLOOR_Y = 0.86          # floor line (normalised, y grows downwards)
RADIUS = 0.1          # object radius (normalised)
GRAVITY = 1.6           # normalised units / (video duration)^2
STATE_FIELDS = ("present", "x", "y", "shape", "colour")
_SCREEN_COLOUR = np.array([0.45, 0.30, 0.18], "float32")
_WALL_COLOUR = np.array([0.25, 0.25, 0.28], "float32")
_FLOOR_COLOUR = np.array([0.55, 0.55, 0.50], "float32")


# --------------------------------------------------------------------------- checks


def _check_property(prop):
    if prop not in PROPERTIES:
        raise ValueError(f"Unknown property {prop!r}; choose from {list(PROPERTIES)}.")
    return prop


def _check_sizes(image_size, num_frames):
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or not (
        8 <= int(image_size) <= 1024
    ):
        raise ValueError(f"image_size must be an int in [8, 1024]; got {image_size!r}.")
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or (
        int(num_frames) < 4
    ):
        raise ValueError(f"num_frames must be an int >= 4; got {num_frames!r}.")
    return int(image_size), int(num_frames)


# --------------------------------------------------------------------------- rendering


def _grid(size):
    c = (np.arange(size, dtype="float32") + 0.5) / size
    return c[None, None, :], c[None, :, None]  # x (1, 1, W), y (1, H, 1)


def _coverage(sdf, size):
    """Anti-aliased coverage from a signed distance in normalised units."""
    return np.clip(0.5 - sdf * size, 0.0, 1.0)


def _shape_sdf(shape, x, y, cx, cy, r):
    dx, dy = x - cx, y - cy
    if shape == 0:  # disc
        return np.sqrt(dx * dx + dy * dy) - r
    if shape == 1:  # square (same area as the disc)
        return np.maximum(np.abs(dx), np.abs(dy)) - 0.886 * r
    # triangle pointing up, inradius 0.62 r (circumradius 1.24 r)
    s3 = np.float32(np.sqrt(3.0) / 2.0)
    d = np.maximum(dy, np.maximum(s3 * dx - 0.5 * dy, -s3 * dx - 0.5 * dy))
    return d - 0.62 * r


def _background(size, textured, rng):
    base = rng.uniform(0.72, 0.9)
    tint = rng.uniform(-0.05, 0.05, size=3).astype("float32")
    if not textured:
        img = np.full((size, size, 3), base, "float32") + tint
    else:
        low = rng.uniform(-1.0, 1.0, size=(6, 6, 3)).astype("float32")
        # Separable linear interpolation of the 6x6 grid to size x size.
        pos = np.linspace(0.0, 5.0, size, dtype="float32")
        i0 = np.minimum(np.floor(pos).astype(int), 4)
        w = (pos - i0)[:, None]
        interp = np.zeros((size, 6), "float32")
        interp[np.arange(size), i0] = 1.0 - w[:, 0]
        interp[np.arange(size), i0 + 1] += w[:, 0]
        tex = np.einsum("hi,ijc,wj->hwc", interp, low, interp)
        img = base + tint + 0.12 * tex
    _, y = _grid(size)
    floor = _coverage(FLOOR_Y - y[0], size)[..., None]  # (H, 1, 1)
    img = img * (1.0 - floor) + _FLOOR_COLOUR * floor
    return np.clip(img, 0.0, 1.0).astype("float32")


def render(scene, history):
    """Renders one history of ``scene`` (a dict from :func:`make_scene`): ``(T, S, S, 3)``
    float32 in ``[0, 1]``.

    Example:

    >>> scene = make_scene("object_permanence", seed=0, image_size=32, num_frames=8)
    >>> render(scene, "A").shape
    (8, 32, 32, 3)
    """
    size, frames = scene["image_size"], scene["num_frames"]
    x, y = _grid(size)
    video = np.broadcast_to(scene["background"], (frames, size, size, 3)).copy()

    def paint(cov, colour):
        cov = cov[..., None]
        video[...] = video * (1.0 - cov) + colour * cov

    for wall in scene["walls"]:
        sdf = np.maximum(np.abs(x - wall["x"]) - wall["half_width"],
                         np.maximum(wall["top"] - y, y - FLOOR_Y))
        paint(np.broadcast_to(_coverage(sdf, size), (frames, size, size)), _WALL_COLOUR)
    objects = list(scene["distractors"]) + [scene["histories"][history]]
    for obj in objects:
        cx = np.asarray(obj["x"], "float32")[:, None, None]
        cy = np.asarray(obj["y"], "float32")[:, None, None]
        present = np.asarray(obj["present"], "float32")[:, None, None]
        cov = _coverage(_shape_sdf(int(obj["shape"]), x, y, cx, cy, RADIUS), size) * present
        paint(cov, PALETTE[int(obj["colour"])])
    for screen in scene["screens"]:
        top = np.asarray(screen["top"], "float32")[:, None, None]
        sdf = np.maximum(np.abs(x - screen["x"]) - screen["half_width"],
                         np.maximum(top - y, y - screen["bottom"]))
        cov = _coverage(sdf, size)
        stripes = 0.06 * np.sign(np.sin(x * size * np.pi / 3.0)).astype("float32")
        colour = _SCREEN_COLOUR + stripes[..., None]
        cov = cov[..., None]
        video[...] = video * (1.0 - cov) + colour * cov
    return np.clip(video, 0.0, 1.0)


# --------------------------------------------------------------------------- scenes


def _times(frames):
    return np.linspace(0.0, 1.0, frames, dtype="float64")


def _obj(x, y, present, shape, colour, frames):
    return {
        "x": np.broadcast_to(np.asarray(x, "float64"), (frames,)).astype("float32"),
        "y": np.broadcast_to(np.asarray(y, "float64"), (frames,)).astype("float32"),
        "present": np.broadcast_to(np.asarray(present, bool), (frames,)).copy(),
        "shape": int(shape),
        "colour": int(colour),
    }


def _rising_screen(x, half_width, frames, splice, height, bottom=FLOOR_Y):
    """A screen that rises in front of ``x`` before the splice and falls after it."""
    t = np.arange(frames, dtype="float64")
    up0, up1 = max(0.0, splice - 0.45 * frames), max(1.0, splice - 0.2 * frames)
    dn0, dn1 = splice + 0.15 * frames, min(frames - 1.0, splice + 0.4 * frames)
    rise = np.clip((t - up0) / max(up1 - up0, 1e-6), 0.0, 1.0)
    fall = np.clip((t - dn0) / max(dn1 - dn0, 1e-6), 0.0, 1.0)
    h = height * (rise - fall).clip(0.0, 1.0)
    return {"x": float(x), "half_width": float(half_width), "bottom": float(bottom),
            "top": (bottom - h).astype("float32")}


def _static_screen(x, half_width, frames, top, bottom=FLOOR_Y):
    return {"x": float(x), "half_width": float(half_width), "bottom": float(bottom),
            "top": np.full((frames,), top, "float32")}


def make_scene(prop, seed=0, image_size=32, num_frames=16, occluded=True, num_objects=1,
               moving=None, textured=False):
    """The two histories of one minimal-set scene (a dict; render it with :func:`render`).

    Args:
        prop: one of ``PROPERTIES``.
        seed: the scene is a pure function of all arguments.
        image_size: square frame size in pixels (any size from 8; 32-224 in practice).
        num_frames: frames per video (>= 4).
        occluded: the splice happens behind a screen; ``False``: in view.
        num_objects: 1-3 (the key object plus identical distractors).
        moving: key object moves (``None``: drawn at random; the properties that are about
            motion always move).
        textured: static noise texture on the background.

    Returns:
        ``{"property", "splice", "histories": {"A", "B"}, "distractors", "screens",
        "walls", "background", "occluded", "moving", "num_objects", ...}``.

    Example:

    >>> scene = make_scene("shape_constancy", seed=3, image_size=32, num_frames=16)
    >>> scene["histories"]["A"]["shape"] != scene["histories"]["B"]["shape"]
    True
    """
    _check_property(prop)
    size, frames = _check_sizes(image_size, num_frames)
    if not 1 <= int(num_objects) <= 3:
        raise ValueError(f"num_objects must be 1, 2 or 3; got {num_objects!r}.")
    rng = np.random.default_rng([int(seed), PROPERTIES.index(prop), int(bool(occluded)),
                                 int(num_objects), int(bool(textured)), 7])
    motion_props = ("continuity", "gravity", "solidity", "inertia")
    if moving is None:
        moving = bool(rng.integers(2)) if prop not in motion_props else True
    moving = bool(moving) or prop in motion_props
    t = _times(frames)
    dt = 1.0 / (frames - 1)
    splice = int(rng.integers(int(round(0.4 * frames)), int(round(0.6 * frames)) + 1))
    ts = splice * dt
    ground = FLOOR_Y - RADIUS
    shape = int(rng.integers(3))
    colour = int(rng.integers(len(PALETTE)))
    screens, walls = [], []
    sign = 1.0 if rng.random() < 0.5 else -1.0  # direction of travel
    speed = rng.uniform(0.55, 0.8)

    if prop in ("object_permanence", "shape_constancy", "colour_constancy"):
        if moving:
            xc = rng.uniform(0.42, 0.58)
            x = xc + sign * speed * (t - ts)
            if occluded:
                screens.append(_static_screen(xc, RADIUS + 0.09 + 0.5 * speed * dt, frames,
                                              ground - RADIUS - 0.08))
        else:
            xc = rng.uniform(0.3, 0.7)
            x = np.full(frames, xc)
            if occluded:
                screens.append(_rising_screen(xc, RADIUS + 0.07, frames, splice,
                                              2 * RADIUS + 0.1))
        a = _obj(x, ground, True, shape, colour, frames)
        b = _obj(x, ground, True, shape, colour, frames)
        if prop == "object_permanence":
            b["present"][:] = False
        elif prop == "shape_constancy":
            b["shape"] = (shape + 1 + int(rng.integers(2))) % 3
        else:
            b["colour"] = (colour + 1 + int(rng.integers(len(PALETTE) - 1))) % len(PALETTE)
    elif prop == "continuity":
        gap = rng.uniform(0.28, 0.36)
        x1 = 0.5 - gap / 2
        x_a = x1 + sign * speed * (t - ts)
        if sign < 0:  # moving left: start behind the right screen
            x1 = 0.5 + gap / 2
            x_a = x1 + sign * speed * (t - ts)
        x_b = x_a + sign * gap
        if occluded:
            half = RADIUS + 0.04 + 0.5 * speed * dt
            top = ground - RADIUS - 0.08
            screens += [_static_screen(0.5 - gap / 2, half, frames, top),
                        _static_screen(0.5 + gap / 2, half, frames, top)]
        a = _obj(x_a, ground, True, shape, colour, frames)
        b = _obj(x_b, ground, True, shape, colour, frames)
    elif prop == "gravity":
        xc = rng.uniform(0.35, 0.65)
        drift = rng.uniform(-0.15, 0.15)
        x = xc + drift * (t - ts)
        y0 = rng.uniform(0.08, 0.14)                      # A: dropped from rest at t = 0
        y_a = y0 + 0.5 * GRAVITY * t ** 2
        yc = y0 + 0.5 * GRAVITY * ts ** 2                 # crossing height at the splice
        u = rng.uniform(0.7, 0.9)                         # B: tossed up, rising at the splice
        y_b = yc - u * (t - ts) + 0.5 * GRAVITY * (t - ts) ** 2
        y_a = np.minimum(y_a, ground)
        y_b = np.minimum(y_b, ground)
        if occluded:
            screens.append(_static_screen(xc, RADIUS + 0.08, frames, yc - RADIUS - 0.1,
                                          bottom=yc + RADIUS + 0.1))
        a = _obj(x, y_a, True, shape, colour, frames)
        b = _obj(x, y_b, True, shape, colour, frames)
    elif prop == "solidity":
        xw = rng.uniform(0.45, 0.55)
        half_wall = 0.03
        # The wall stands higher than the screen, so it stays visible when occluded.
        walls.append({"x": float(xw), "half_width": half_wall, "top": ground - RADIUS - 0.3})
        contact = half_wall + RADIUS
        # A: comes from the left, bounces at the splice; B: mirror image on the right.
        x_a = xw - contact - speed * np.abs(t - ts)
        x_b = xw + contact + speed * np.abs(t - ts)
        if sign < 0:
            x_a, x_b = x_b, x_a
        if occluded:
            screens.append(_static_screen(xw, contact + 0.06, frames, ground - RADIUS - 0.1))
        a = _obj(x_a, ground, True, shape, colour, frames)
        b = _obj(x_b, ground, True, shape, colour, frames)
    else:  # inertia
        xc = rng.uniform(0.4, 0.6)
        factor = [-1.0, 0.3, 2.0][int(rng.integers(3))]  # reversal, slow-down, speed-up
        x_a = xc + sign * speed * (t - ts)
        x_b = xc + sign * speed * factor * (t - ts)
        if occluded:
            screens.append(_static_screen(xc, RADIUS + 0.09 + speed * dt, frames,
                                          ground - RADIUS - 0.08))
        a = _obj(x_a, ground, True, shape, colour, frames)
        b = _obj(x_b, ground, True, shape, colour, frames)

    distractors = []
    for _ in range(int(num_objects) - 1):
        d_shape = int(rng.integers(3))
        d_colour = int(rng.integers(len(PALETTE)))
        # Distractors float in the upper half (like balloons), away from the key object.
        dy = rng.uniform(0.2, 0.45)
        if moving and rng.random() < 0.5:
            # Moves along the top band with constant velocity (reflected at the borders).
            v = rng.uniform(-0.5, 0.5)
            raw = rng.uniform(0.1, 0.9) + v * t
            span = 1.0 - 2 * RADIUS
            phase = np.mod(raw - RADIUS, 2 * span)
            dx = RADIUS + np.where(phase > span, 2 * span - phase, phase)
        else:
            dx = np.full(frames, rng.uniform(0.1, 0.9))
        distractors.append(_obj(dx, np.full(frames, min(dy, FLOOR_Y - 3 * RADIUS)), True,
                                d_shape, d_colour, frames))
    return {
        "property": prop, "seed": int(seed), "image_size": size, "num_frames": frames,
        "occluded": bool(occluded), "moving": bool(moving), "num_objects": int(num_objects),
        "textured": bool(textured), "splice": splice,
        "histories": {"A": a, "B": b}, "distractors": distractors, "screens": screens,
        "walls": walls, "background": _background(size, textured, rng),
    }


def _states(obj):
    frames = len(obj["x"])
    return np.stack([
        obj["present"].astype("float32"), obj["x"], obj["y"],
        np.full(frames, obj["shape"], "float32"), np.full(frames, obj["colour"], "float32"),
    ], axis=-1)


def splice(first, second, frame):
    """``first[:frame]`` followed by ``second[frame:]`` (along axis 0).

    Example:

    >>> splice(np.zeros(4), np.ones(4), 1).tolist()
    [0.0, 1.0, 1.0, 1.0]
    """
    return np.concatenate([first[:frame], second[frame:]], axis=0)


def make_quadruplet(prop, seed=0, image_size=32, num_frames=16, occluded=True, num_objects=1,
                    moving=None, textured=False, dtype="float32"):
    """One minimal set: ``videos`` ``(4, T, S, S, 3)`` in the order ``A, B, AB, BA`` (two
    possible, then their splices at ``splice``), ``labels`` ``[1, 1, 0, 0]`` (1 = possible),
    matched ``pairs`` ``[(0, 2), (1, 3)]`` and the key object's ``states`` ``(4, T, 5)``.

    ``dtype="uint8"`` returns ``[0, 255]`` frames.

    Example:

    >>> q = make_quadruplet("object_permanence", seed=1, image_size=32, num_frames=8)
    >>> q["videos"].shape, q["labels"].tolist()
    ((4, 8, 32, 32, 3), [1, 1, 0, 0])
    >>> bool((q["videos"][0, :q["splice"]] == q["videos"][2, :q["splice"]]).all())
    True
    """
    scene = make_scene(prop, seed=seed, image_size=image_size, num_frames=num_frames,
                       occluded=occluded, num_objects=num_objects, moving=moving,
                       textured=textured)
    s = scene["splice"]
    va, vb = render(scene, "A"), render(scene, "B")
    sa, sb = _states(scene["histories"]["A"]), _states(scene["histories"]["B"])
    videos = np.stack([va, vb, splice(va, vb, s), splice(vb, va, s)])
    if dtype == "uint8":
        videos = np.round(videos * 255.0).astype("uint8")
    elif dtype != "float32":
        raise ValueError(f"dtype must be 'float32' or 'uint8'; got {dtype!r}.")
    return {
        "videos": videos,
        "labels": np.array([1, 1, 0, 0], "int32"),
        "pairs": [(0, 2), (1, 3)],
        "states": np.stack([sa, sb, splice(sa, sb, s), splice(sb, sa, s)]),
        "splice": s, "property": prop, "occluded": scene["occluded"],
        "moving": scene["moving"], "num_objects": scene["num_objects"],
    }


def make_voe_dataset(properties=PROPERTIES, scenes_per_property=4, seed=0, image_size=32,
                     num_frames=16, occluded=(True, False), num_objects=(1, 2, 3),
                     textured=(False, True), dtype="float32"):
    """Matched (possible, impossible) evaluation pairs, two per minimal-set scene.

    Conditions cycle over the scenes of each property: ``occluded``, ``num_objects`` and
    ``textured`` are tuples of values to cycle through (motion is drawn per scene).

    Returns:
        ``{"possible": (P, T, S, S, 3), "impossible": (P, ...), "property": (P,) str,
        "splice", "occluded", "moving", "num_objects": (P,), "possible_states",
        "impossible_states": (P, T, 5), "scene": (P,) scene index}``; pair ``i`` is
        identical before ``splice[i]``.

    Example:

    >>> d = make_voe_dataset(["inertia"], scenes_per_property=2, image_size=16,
    ...                      num_frames=8)
    >>> d["possible"].shape, d["impossible"].shape, d["property"].tolist()
    ((4, 8, 16, 16, 3), (4, 8, 16, 16, 3), ['inertia', 'inertia', 'inertia', 'inertia'])
    """
    if isinstance(properties, str):
        properties = [properties]
    keys = ("possible", "impossible", "property", "splice", "occluded", "moving",
            "num_objects", "possible_states", "impossible_states", "scene")
    out = {k: [] for k in keys}
    scene_id = 0
    for p_index, prop in enumerate(properties):
        _check_property(prop)
        for i in range(int(scenes_per_property)):
            q = make_quadruplet(
                prop, seed=int(seed) * 100003 + p_index * 1009 + i, image_size=image_size,
                num_frames=num_frames, occluded=occluded[i % len(occluded)],
                num_objects=num_objects[(i // len(occluded)) % len(num_objects)],
                textured=textured[i % len(textured)], dtype=dtype,
            )
            for pos, imp in q["pairs"]:
                out["possible"].append(q["videos"][pos])
                out["impossible"].append(q["videos"][imp])
                out["possible_states"].append(q["states"][pos])
                out["impossible_states"].append(q["states"][imp])
                out["property"].append(prop)
                for k in ("splice", "occluded", "moving", "num_objects"):
                    out[k].append(q[k])
                out["scene"].append(scene_id)
            scene_id += 1
    return {k: np.asarray(v) for k, v in out.items()}


def _distractor_video(rng, size, frames, textured):
    """A property-neutral scene: 1-3 objects gliding or falling, maybe behind a screen."""
    t = _times(frames)
    objects = []
    for _ in range(int(rng.integers(1, 4))):
        v = rng.uniform(-0.6, 0.6)
        span = 1.0 - 2 * RADIUS
        phase = np.mod(rng.uniform(0.1, 0.9) - RADIUS + v * t, 2 * span)
        x = RADIUS + np.where(phase > span, 2 * span - phase, phase)
        if rng.random() < 0.5:
            y = np.full(frames, FLOOR_Y - RADIUS)
        else:  # dropped at a random time, stops on the floor
            y0, t0 = rng.uniform(0.1, 0.5), rng.uniform(-0.3, 0.5)
            y = np.minimum(y0 + 0.5 * GRAVITY * np.clip(t - t0, 0.0, None) ** 2,
                           FLOOR_Y - RADIUS)
        objects.append(_obj(x, y, True, rng.integers(3), rng.integers(len(PALETTE)), frames))
    screens = []
    if rng.random() < 0.6:
        xs = rng.uniform(0.25, 0.75)
        screens.append(_rising_screen(xs, RADIUS + 0.08, frames, int(rng.integers(
            frames // 3, 2 * frames // 3 + 1)), 2 * RADIUS + 0.1) if rng.random() < 0.5
            else _static_screen(xs, RADIUS + 0.08, frames, FLOOR_Y - 2 * RADIUS - 0.1))
    scene = {"image_size": size, "num_frames": frames, "walls": [], "screens": screens,
             "distractors": objects[1:], "histories": {"A": objects[0]},
             "background": _background(size, textured, rng)}
    return render(scene, "A")


def make_training_videos(num_videos, seed=0, image_size=32, num_frames=16,
                         properties=PROPERTIES, distractor_fraction=0.25, dtype="uint8"):
    """Possible-only training videos: histories ``A`` or ``B`` of random scenes of every
    property and condition, plus a ``distractor_fraction`` of property-neutral scenes.

    Returns ``(N, T, S, S, 3)`` (uint8 by default). Seeds do not overlap with
    :func:`make_voe_dataset` ones for the same ``seed`` (a different stream).

    Example:

    >>> make_training_videos(3, seed=0, image_size=16, num_frames=8).shape
    (3, 8, 16, 16, 3)
    """
    size, frames = _check_sizes(image_size, num_frames)
    if not 0.0 <= float(distractor_fraction) <= 1.0:
        raise ValueError(f"distractor_fraction must be in [0, 1]; got {distractor_fraction}.")
    rng = np.random.default_rng([int(seed), 0x7EA1])
    videos = np.empty((int(num_videos), frames, size, size, 3), "float32")
    for i in range(int(num_videos)):
        sub = np.random.default_rng([int(seed), 0x7EA1, i])
        if sub.random() < distractor_fraction:
            videos[i] = _distractor_video(sub, size, frames, bool(sub.integers(2)))
            continue
        prop = properties[int(rng.integers(len(properties)))]
        scene = make_scene(prop, seed=10**9 + int(seed) * 7919 + i, image_size=size,
                           num_frames=frames, occluded=bool(sub.integers(2)),
                           num_objects=int(sub.integers(1, 4)), textured=bool(sub.integers(2)))
        videos[i] = render(scene, "A" if sub.random() < 0.5 else "B")
    if dtype == "uint8":
        return np.round(videos * 255.0).astype("uint8")
    return videos


# --------------------------------------------------------------------------- oracle


def physics_violations(states, prop, tolerance=1e-4):
    """Per-frame violation score ``(..., T)`` of key-object ``states`` ``(..., T, 5)``
    against the law of ``prop`` (0 where the physics holds; frame 0 is always 0).

    * permanence / shape / colour: the presence, shape or colour changes;
    * continuity: a frame-to-frame step that differs from the video's median step (the
      motion is uniform in these scenes, so any jump breaks it);
    * gravity: the vertical second difference differs from ``g dt^2`` (the object is in
      free flight in these scenes until it rests on the floor);
    * solidity: the object jumps from one face of the wall to the other (a step longer
      than 1.5 times the median step);
    * inertia: the horizontal velocity changes (no contact in these scenes).

    Example:

    >>> q = make_quadruplet("inertia", seed=0, image_size=16, num_frames=12)
    >>> physics_violations(q["states"], "inertia").sum(-1) > 0
    array([False, False,  True,  True])
    """
    _check_property(prop)
    s = np.asarray(states, "float64")
    out = np.zeros(s.shape[:-1], "float64")
    frames = s.shape[-2]
    dt = 1.0 / (frames - 1)
    present, x, y, shape, colour = (s[..., k] for k in range(5))
    if prop == "object_permanence":
        out[..., 1:] = np.abs(np.diff(present, axis=-1))
    elif prop == "shape_constancy":
        out[..., 1:] = (np.diff(shape, axis=-1) != 0) * present[..., 1:]
    elif prop == "colour_constancy":
        out[..., 1:] = (np.diff(colour, axis=-1) != 0) * present[..., 1:]
    elif prop == "continuity":
        step = np.diff(x, axis=-1)
        jump = np.abs(step - np.median(step, axis=-1, keepdims=True))
        out[..., 1:] = jump * (jump > tolerance)
    elif prop == "gravity":
        ground = FLOOR_Y - RADIUS
        acc = y[..., 2:] - 2 * y[..., 1:-1] + y[..., :-2]
        flying = (y[..., 2:] < ground - tolerance) & (y[..., :-2] < ground - tolerance) & (
            y[..., 1:-1] < ground - tolerance)
        out[..., 1:-1] = np.abs(acc - GRAVITY * dt * dt) * flying * (
            np.abs(acc - GRAVITY * dt * dt) > tolerance)
    elif prop == "solidity":
        # Passing through the wall shows as a step longer than the speed allows (the
        # object jumps from one face of the wall to the other).
        step = np.abs(np.diff(x, axis=-1))
        typical = np.median(step, axis=-1, keepdims=True)
        out[..., 1:] = np.maximum(step - 1.5 * typical - tolerance, 0.0)
    else:  # inertia
        acc = x[..., 2:] - 2 * x[..., 1:-1] + x[..., :-2]
        out[..., 1:-1] = np.abs(acc) * (np.abs(acc) > tolerance)
    return out


# --------------------------------------------------------------------------- writing


def write_video(video, path, fps=10):
    """Writes ``(T, H, W, 3)`` frames (uint8, or floats in ``[0, 1]``) to ``path``:
    ``.mp4`` (H.264 through PyAV, even sizes) or ``.npy``.

    Example:

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "v.npy")
    >>> write_video(np.zeros((4, 8, 8, 3), "uint8"), path) == path
    True
    """
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"video must be (T, H, W, 3); got shape {video.shape}.")
    if video.dtype != np.uint8:
        video = np.clip(np.round(video.astype("float32") * 255.0), 0, 255).astype("uint8")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if path.endswith(".npy"):
        np.save(path, video)
        return path
    if not path.endswith(".mp4"):
        raise ValueError(f"path must end with .mp4 or .npy; got {path!r}.")
    import av

    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264", rate=int(fps))
        stream.width, stream.height = video.shape[2], video.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10"}
        for frame in video:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_voe_dataset(dataset, folder, format="mp4", fps=10):
    """Writes :func:`make_voe_dataset` pairs in the GRASP layout
    (``folder/P_<property>/<scene>.<ext>`` and ``folder/IP_<property>/<scene>.<ext>``),
    so ``keras_jepa.evaluation.load_voe_pairs(folder, "grasp")`` reads them back. Returns the folder.

    Example:

    >>> import tempfile
    >>> d = make_voe_dataset(["gravity"], scenes_per_property=1, image_size=16,
    ...                      num_frames=6)
    >>> folder = write_voe_dataset(d, tempfile.mkdtemp(), format="npy")
    >>> sorted(os.listdir(folder))
    ['IP_gravity', 'P_gravity']
    """
    if format not in ("mp4", "npy"):
        raise ValueError(f"format must be 'mp4' or 'npy'; got {format!r}.")
    for i, prop in enumerate(dataset["property"]):
        name = f"pair_{i:05d}.{format}"
        write_video(dataset["possible"][i], os.path.join(folder, f"P_{prop}", name), fps)
        write_video(dataset["impossible"][i], os.path.join(folder, f"IP_{prop}", name), fps)
    return folder
