"""Masks, boxes and points as short token sequences (VistaLLM), in numpy.

VistaLLM (Pramanick et al., CVPR 2024) writes every region output as text: coordinates are
normalised to ``[0, 1]`` (the image padded to a square) and quantised into 1001 bins
``<bin_0> ... <bin_1000>``; a mask becomes ``<m_st> x1 y1 ... xN yN <m_sep> ... <m_ed>``,
one group of ``N`` points per polygon. Its *gradient-aware adaptive sampling* picks those
``N`` points so that the sharpest parts of the contour survive:

1. trace the contour and pre-sample it uniformly with stride ``ceil(L / presample_points)``
   (``presample_points = 40`` in the reference code);
2. score each interior point by its distance to the chord joining its neighbours ``n``
   positions away (``n = 1``); the first and last ``n`` points get the score ``180`` and
   are kept;
3. drop the ``len - N`` lowest-scoring (flattest) points, keep the rest in order, pad with
   ``-1`` up to ``N`` (``N = 16`` in the reference code).

Uniform sampling (``N`` points evenly spaced along the contour) is the baseline.

The reference traces contours with OpenCV and fills decoded polygons with
``cv2.drawContours``. Here both directions are plain numpy: ``mask_to_contours`` follows
the *cracks* between pixels (vertices at pixel corners, one vertex per unit step, like
OpenCV's ``CHAIN_APPROX_NONE``), and ``polygons_to_mask`` fills a pixel when its centre
lies inside a polygon (even-odd rule, union over polygons). The pair is exact: filling the
traced outer contours of a mask gives back the mask (without its holes, which the token
format does not carry).

Example:

>>> import numpy as np
>>> mask = np.zeros((8, 8), bool); mask[2:6, 1:7] = True
>>> tokens = mask_to_tokens(mask, num_points=5)
>>> tokens[:3]
['<m_st>', '<bin_125>', '<bin_250>']
>>> bool((tokens_to_mask(tokens, (8, 8)) == mask).all())
True
"""

import math

import numpy as np

NUM_BINS = 1001
MASK_START, MASK_SEPARATOR, MASK_END = "<m_st>", "<m_sep>", "<m_ed>"
PAD_VALUE = -1.0
ENDPOINT_SCORE = 180.0

# Unit steps in image coordinates (x right, y down): east, south, west, north.
_STEPS = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.int64)


# ------------------------------------------------------------------------------ contours


def mask_to_contours(mask, min_area=1.0):
    """Outer boundaries of a binary mask as closed polygons along the pixel cracks.

    Every boundary side of a foreground pixel is a unit edge; edges are chained into
    loops, foreground on the right (clockwise on screen). Pixels that touch only at a
    corner belong to different loops (4-connectivity). Holes (counter-clockwise loops)
    are dropped. Each loop starts at the top-left corner of its top-most, left-most pixel.

    Args:
        mask: ``(H, W)`` array, nonzero = foreground.
        min_area: drop loops enclosing less area (pixels).

    Returns:
        A list of ``(L, 2)`` float arrays of ``(x, y)`` vertices in pixel units (corners:
        ``0 <= x <= W``, ``0 <= y <= H``), one vertex per unit step, largest area first.

    Example:

    >>> mask = np.zeros((4, 4), bool); mask[1:3, 1:3] = True
    >>> mask_to_contours(mask)[0].tolist()
    [[1.0, 1.0], [2.0, 1.0], [3.0, 1.0], [3.0, 2.0], [3.0, 3.0], [2.0, 3.0], [1.0, 3.0], [1.0, 2.0]]
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W); got shape {mask.shape}.")
    fg = np.pad(mask != 0, 1)
    inner = fg[1:-1, 1:-1]
    starts, dirs = [], []
    # (neighbour offset, start corner offset (dx, dy), direction index) per pixel side.
    sides = (
        ((-1, 0), (0, 0), 0),  # top side, heading east
        ((0, 1), (1, 0), 1),  # right side, heading south
        ((1, 0), (1, 1), 2),  # bottom side, heading west
        ((0, -1), (0, 1), 3),  # left side, heading north
    )
    for (dr, dc), (ox, oy), d in sides:
        neighbour = fg[1 + dr : fg.shape[0] - 1 + dr, 1 + dc : fg.shape[1] - 1 + dc]
        rows, cols = np.nonzero(inner & ~neighbour)
        starts.append(np.stack([cols + ox, rows + oy], axis=1))
        dirs.append(np.full(rows.shape, d))
    starts = np.concatenate(starts).astype(np.int64)
    dirs = np.concatenate(dirs)
    if not len(starts):
        return []
    # Visit edges in raster order of their start vertex so loops start at a top-left corner.
    order = np.lexsort((dirs, starts[:, 0], starts[:, 1]))
    starts, dirs = starts[order], dirs[order]
    ends = starts + _STEPS[dirs]
    width = int(mask.shape[1]) + 2
    keys = starts[:, 1] * width + starts[:, 0]
    outgoing = {}
    for index, key in enumerate(keys.tolist()):
        outgoing.setdefault(key, []).append(index)
    end_keys = (ends[:, 1] * width + ends[:, 0]).tolist()
    dirs_list = dirs.tolist()
    visited = np.zeros(len(starts), bool)
    loops = []
    for first in range(len(starts)):
        if visited[first]:
            continue
        chain, edge = [], first
        while not visited[edge]:
            visited[edge] = True
            chain.append(edge)
            options = outgoing[end_keys[edge]]
            if len(options) == 1:
                edge = options[0]
            else:
                # Two loops meet at this corner: turn right to stay on the same pixel.
                turn_right = (dirs_list[edge] + 1) % 4
                edge = [o for o in options if dirs_list[o] == turn_right][0]
        points = starts[chain].astype(np.float64)
        area = polygon_area(points)
        if area >= max(float(min_area), 1e-9):
            loops.append((area, points))
    loops.sort(key=lambda item: -item[0])
    return [points for _, points in loops]


def polygon_area(points):
    """Signed shoelace area of a closed polygon ``(L, 2)``; positive when clockwise on
    screen (y down), as ``mask_to_contours`` traces outer boundaries.

    >>> polygon_area(np.array([[0, 0], [2, 0], [2, 3], [0, 3]]))
    6.0
    """
    p = np.asarray(points, np.float64)
    q = np.roll(p, -1, axis=0)
    return float(0.5 * np.sum(p[:, 0] * q[:, 1] - q[:, 0] * p[:, 1]))


# ------------------------------------------------------------------------------ sampling


def uniform_presample(contour, presample_points=40):
    """The reference pre-sampling: every ``ceil(L / presample_points)``-th point.

    >>> uniform_presample(np.arange(20).reshape(10, 2), 4)[:, 0].tolist()
    [0, 6, 12, 18]
    """
    contour = _check_points(contour, "contour")
    if presample_points < 1:
        raise ValueError(f"presample_points must be >= 1; got {presample_points}.")
    stride = max(1, math.ceil(len(contour) / presample_points))
    return contour[::stride]


def sharpness_scores(points, offset=1, endpoint_score=ENDPOINT_SCORE, closed=False):
    """Distance of each point to the chord joining its neighbours ``offset`` steps away.

    ``s_i = |cross(p[i+n] - p[i-n], p[i-n] - p[i])| / |p[i+n] - p[i-n]|``; the first and
    last ``offset`` points get ``endpoint_score`` (180 in the reference). A point whose two
    neighbours coincide scores its distance to them.

    The reference treats the closed contour as an open chain, so its last point (the
    neighbour of the first) is always kept and takes one of the ``N`` slots.
    ``closed=True`` scores every point with wrap-around neighbours instead (no endpoint
    score).

    >>> np.round(sharpness_scores(np.array([[0, 0], [1, 0], [2, 0], [2, 2], [2, 4]])), 4).tolist()
    [180.0, 0.0, 0.8944, 0.0, 180.0]
    """
    p = _check_points(points, "points").astype(np.float64)
    n = int(offset)
    if n < 1:
        raise ValueError(f"offset must be >= 1; got {offset}.")
    if closed:
        return _chord_distance(np.roll(p, n, axis=0), np.roll(p, -n, axis=0), p)
    scores = np.full(len(p), float(endpoint_score))
    if len(p) > 2 * n:
        scores[n:-n] = _chord_distance(p[: -2 * n], p[2 * n :], p[n:-n])
    return scores


def _chord_distance(a, b, mid):
    chord = b - a
    to_a = a - mid
    cross = np.abs(chord[:, 0] * to_a[:, 1] - chord[:, 1] * to_a[:, 0])
    length = np.linalg.norm(chord, axis=1)
    fallback = np.linalg.norm(to_a, axis=1)
    return np.where(length > 0, cross / np.maximum(length, 1e-12), fallback)


def prune_points(
    points, num_points, offset=1, endpoint_score=ENDPOINT_SCORE, closed=False, rescore=False
):
    """Drops the ``len - num_points`` flattest points, keeping order; pads with ``-1``.

    Returns ``(num_points, 2)``. By default the scores are computed once on the input (not
    re-scored after each removal), as in the reference; ties drop the earlier point first.
    ``rescore=True`` removes one point at a time and re-scores its two neighbours against
    their new neighbours, so a run of flat points cannot shield each other and the kept
    points follow the outline that remains (the refinement; see ``sample_mask``).

    >>> square = np.array([[0, 0], [1, 0], [2, 0], [2, 1], [2, 2], [1, 2], [0, 2], [0, 1]])
    >>> prune_points(square, 5).tolist()
    [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0], [0.0, 1.0]]
    >>> prune_points(square, 4, closed=True).tolist()
    [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]
    >>> prune_points(square, 4, closed=True, rescore=True).tolist()
    [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]
    """
    p = _check_points(points, "points").astype(np.float64)
    num_points = _check_count(num_points)
    if len(p) > num_points and rescore:
        p = _prune_rescored(p, num_points, int(offset), float(endpoint_score), closed)
    elif len(p) > num_points:
        scores = sharpness_scores(p, offset, endpoint_score, closed)
        drop = np.argsort(scores, kind="stable")[: len(p) - num_points]
        p = np.delete(p, drop, axis=0)
    return pad_points(p, num_points)


def _prune_rescored(p, num_points, offset, endpoint_score, closed):
    """Greedy removal of the flattest point, re-scoring the points around it each time."""
    keep = list(range(len(p)))
    scores = sharpness_scores(p, offset, endpoint_score, closed).tolist()  # checks offset

    def score(j):  # j indexes ``keep``
        n = len(keep)
        if not closed and (j < offset or j >= n - offset):
            return endpoint_score
        a, b = keep[(j - offset) % n], keep[(j + offset) % n]
        return float(_chord_distance(p[a][None], p[b][None], p[keep[j]][None])[0])

    while len(keep) > num_points:
        j = int(np.argmin(scores))
        del keep[j], scores[j]
        n = len(keep)
        for k in range(j - offset, j + offset):
            if closed or 0 <= k < n:
                scores[k % n] = score(k % n)
    return p[keep]


def adaptive_sample(
    contour,
    num_points=16,
    presample_points=40,
    offset=1,
    endpoint_score=ENDPOINT_SCORE,
    closed=False,
    rescore=False,
):
    """Gradient-aware adaptive sampling: uniform pre-sample, then keep the sharpest.

    >>> contour = mask_to_contours(np.pad(np.ones((6, 6), bool), 1))[0]
    >>> adaptive_sample(contour, num_points=5, presample_points=24).tolist()
    [[1.0, 1.0], [7.0, 1.0], [7.0, 7.0], [1.0, 7.0], [1.0, 2.0]]
    """
    pre = uniform_presample(contour, presample_points)
    return prune_points(pre, num_points, offset, endpoint_score, closed, rescore)


def uniform_sample(contour, num_points=16):
    """The baseline: ``num_points`` points evenly spaced by index along the contour
    (the whole contour when it is shorter), padded with ``-1``.

    >>> uniform_sample(np.arange(16).reshape(8, 2), 4)[:, 0].tolist()
    [0.0, 4.0, 8.0, 12.0]
    """
    contour = _check_points(contour, "contour").astype(np.float64)
    num_points = _check_count(num_points)
    if len(contour) > num_points:
        index = np.floor(np.arange(num_points) * len(contour) / num_points).astype(int)
        contour = contour[index]
    return pad_points(contour, num_points)


def pad_points(points, num_points, pad_value=PAD_VALUE):
    """Pads ``(L, 2)`` with rows of ``pad_value`` to ``(num_points, 2)`` (L <= num_points)."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    if len(points) > num_points:
        raise ValueError(f"{len(points)} points do not fit in num_points={num_points}.")
    pad = np.full((num_points - len(points), 2), float(pad_value))
    return np.concatenate([points, pad], axis=0)


def strip_padding(points):
    """Drops the ``-1`` padding rows (any negative coordinate)."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    return points[(points >= 0).all(axis=1)]


def sample_mask(
    mask,
    num_points=16,
    method="adaptive",
    presample_points=40,
    offset=1,
    max_polygons=None,
    min_area=1.0,
    closed=False,
    rescore=False,
):
    """Mask -> list of ``(num_points, 2)`` padded polygons in pixel units, largest first.

    ``method``:

    * ``"adaptive"``: VistaLLM's sampling as in the reference (``closed`` and ``rescore``
      as in ``sharpness_scores`` / ``prune_points``, off by default);
    * ``"adaptive_refined"``: the same idea without the reference's three shortcuts: the
      contour is scored as a loop (``closed=True``), points are removed one at a time
      with their neighbours re-scored (``rescore=True``), and the pre-sampling keeps at
      least ``4 * num_points`` points so it does not step over corners at large ``N``;
    * ``"uniform"``: the baseline, ``num_points`` evenly spaced points.
    """
    if method not in ("adaptive", "adaptive_refined", "uniform"):
        raise ValueError(
            f"method must be 'adaptive', 'adaptive_refined' or 'uniform'; got {method!r}."
        )
    contours = mask_to_contours(mask, min_area=min_area)
    if max_polygons is not None:
        contours = contours[: int(max_polygons)]
    if method == "uniform":
        return [uniform_sample(c, num_points) for c in contours]
    if method == "adaptive_refined":
        presample_points = max(int(presample_points), 4 * int(num_points))
        closed, rescore = True, True
    return [
        adaptive_sample(c, num_points, presample_points, offset, closed=closed,
                        rescore=rescore)
        for c in contours
    ]


# -------------------------------------------------------------------- bins and tokens


def quantize(values, num_bins=NUM_BINS):
    """Normalised coordinates in ``[0, 1]`` -> integer bins ``round(v * (num_bins - 1))``.

    >>> quantize([0.0, 0.5, 0.12345, 1.0]).tolist()
    [0, 500, 123, 1000]
    """
    num_bins = _check_bins(num_bins)
    values = np.asarray(values, np.float64)
    return np.clip(np.rint(values * (num_bins - 1)), 0, num_bins - 1).astype(np.int64)


def dequantize(bins, num_bins=NUM_BINS):
    """Bins -> normalised coordinates ``bin / (num_bins - 1)``.

    >>> dequantize([0, 500, 1000]).tolist()
    [0.0, 0.5, 1.0]
    """
    num_bins = _check_bins(num_bins)
    return np.asarray(bins, np.float64) / (num_bins - 1)


def normalize_points(points, image_shape):
    """Pixel ``(x, y)`` -> ``[0, 1]`` by the longer image side (the image padded to a
    square, as in the reference); ``-1`` padding rows stay ``-1``."""
    points = np.asarray(points, np.float64)
    side = float(max(image_shape[:2]))
    out = points / side
    return np.where(points < 0, PAD_VALUE, out)


def bin_token(index):
    """``12 -> '<bin_12>'``."""
    return f"<bin_{int(index)}>"


def token_bin(token):
    """``'<bin_12>' -> 12``; ``None`` for any other token."""
    if isinstance(token, str) and token.startswith("<bin_") and token.endswith(">"):
        body = token[5:-1]
        if body.isdigit():
            return int(body)
    return None


def coordinates_to_tokens(values, image_shape, num_bins=NUM_BINS):
    """Pixel coordinates (any shape, flattened) -> bin tokens, normalised by the longer side.

    Boxes ``(x0, y0, x1, y1)`` and points ``(x, y)`` use this.

    >>> coordinates_to_tokens([8, 0, 16, 4], (16, 16))
    ['<bin_500>', '<bin_0>', '<bin_1000>', '<bin_250>']
    """
    norm = normalize_points(np.asarray(values, np.float64).reshape(-1), image_shape)
    return [bin_token(b) for b in quantize(norm, num_bins)]


def tokens_to_coordinates(tokens, image_shape, num_bins=NUM_BINS):
    """Bin tokens -> pixel coordinates (non-bin tokens are skipped)."""
    bins = [b for b in (token_bin(t) for t in tokens) if b is not None]
    return dequantize(bins, num_bins) * float(max(image_shape[:2]))


def box_to_tokens(box, image_shape, num_bins=NUM_BINS):
    """``(x0, y0, x1, y1)`` pixel box -> 4 bin tokens."""
    box = np.asarray(box, np.float64).reshape(-1)
    if box.shape != (4,):
        raise ValueError(f"box must have 4 numbers (x0, y0, x1, y1); got {box.tolist()}.")
    return coordinates_to_tokens(box, image_shape, num_bins)


def point_to_tokens(point, image_shape, num_bins=NUM_BINS):
    """``(x, y)`` pixel point -> 2 bin tokens."""
    point = np.asarray(point, np.float64).reshape(-1)
    if point.shape != (2,):
        raise ValueError(f"point must have 2 numbers (x, y); got {point.tolist()}.")
    return coordinates_to_tokens(point, image_shape, num_bins)


def polygons_to_tokens(polygons, image_shape, num_bins=NUM_BINS):
    """Padded pixel polygons -> ``<m_st> x y ... <m_sep> ... <m_ed>`` (padding skipped)."""
    tokens = [MASK_START]
    for i, polygon in enumerate(polygons):
        if i:
            tokens.append(MASK_SEPARATOR)
        tokens += coordinates_to_tokens(strip_padding(polygon), image_shape, num_bins)
    tokens.append(MASK_END)
    return tokens


def tokens_to_polygons(tokens, image_shape, num_bins=NUM_BINS):
    """Inverse of ``polygons_to_tokens``: a list of ``(K, 2)`` pixel polygons.

    Reads from the first ``<m_st>`` (or the start) to ``<m_ed>`` (or the end), splits at
    ``<m_sep>``, ignores other tokens and drops a trailing odd coordinate, so a truncated
    or noisy generation still decodes.
    """
    tokens = list(tokens)
    if MASK_START in tokens:
        tokens = tokens[tokens.index(MASK_START) + 1 :]
    if MASK_END in tokens:
        tokens = tokens[: tokens.index(MASK_END)]
    polygons, current = [], []
    for token in tokens + [MASK_SEPARATOR]:
        if token == MASK_SEPARATOR:
            coords = tokens_to_coordinates(current, image_shape, num_bins)
            coords = coords[: len(coords) // 2 * 2].reshape(-1, 2)
            if len(coords):
                polygons.append(coords)
            current = []
        else:
            current.append(token)
    return polygons


def mask_to_tokens(
    mask,
    num_points=16,
    method="adaptive",
    presample_points=40,
    max_polygons=None,
    num_bins=NUM_BINS,
):
    """Mask -> VistaLLM mask token sequence (one polygon per outer contour)."""
    polygons = sample_mask(
        mask, num_points, method, presample_points, max_polygons=max_polygons
    )
    return polygons_to_tokens(polygons, np.shape(mask), num_bins)


def tokens_to_mask(tokens, image_shape, num_bins=NUM_BINS):
    """Mask token sequence -> boolean ``image_shape[:2]`` raster."""
    return polygons_to_mask(tokens_to_polygons(tokens, image_shape, num_bins), image_shape)


# ------------------------------------------------------------------------ raster and IoU


def polygons_to_mask(polygons, image_shape):
    """Fills polygons (pixel units, ``-1`` padding ignored) into a boolean raster.

    A pixel ``(r, c)`` is set when its centre ``(c + 0.5, r + 0.5)`` lies inside any
    polygon (even-odd rule per polygon, union over polygons). Vectorised over pixels and
    edges: one ``(rows, W, edges)`` comparison per chunk of rows.

    >>> polygons_to_mask([np.array([[1, 1], [3, 1], [3, 2], [1, 2]])], (3, 4)).astype(int).tolist()
    [[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    out = np.zeros((height, width), bool)
    xc = np.arange(width) + 0.5
    for polygon in polygons:
        p = strip_padding(polygon)
        if len(p) < 3:
            continue
        q = np.roll(p, -1, axis=0)
        chunk = max(1, int(4_000_000 // max(1, width * len(p))))
        for r0 in range(0, height, chunk):
            yc = np.arange(r0, min(height, r0 + chunk))[:, None] + 0.5
            y0, y1 = p[None, :, 1], q[None, :, 1]
            crosses = (y0 <= yc) != (y1 <= yc)  # (rows, E), half-open: no double count
            dy = np.where(crosses, y1 - y0, 1.0)
            x_at = p[None, :, 0] + (yc - y0) * (q[None, :, 0] - p[None, :, 0]) / dy
            x_at = np.where(crosses, x_at, -np.inf)  # (rows, E)
            count = (x_at[:, None, :] > xc[None, :, None]).sum(-1)
            out[r0 : r0 + len(yc)] |= (count % 2) == 1
    return out


def mask_iou(prediction, target):
    """IoU of two boolean masks (1.0 when both are empty).

    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> b = np.zeros((4, 4), bool); b[1:3] = True
    >>> round(mask_iou(a, b), 4)
    0.3333
    """
    p, t = np.asarray(prediction) != 0, np.asarray(target) != 0
    if p.shape != t.shape:
        raise ValueError(f"Mask shapes differ: {p.shape} vs {t.shape}.")
    union = np.logical_or(p, t).sum()
    return 1.0 if union == 0 else float(np.logical_and(p, t).sum() / union)


def cumulative_iou(predictions, targets):
    """cIoU: total intersection over total union across a set of masks."""
    inter = union = 0
    for p, t in zip(predictions, targets):
        p, t = np.asarray(p) != 0, np.asarray(t) != 0
        inter += np.logical_and(p, t).sum()
        union += np.logical_or(p, t).sum()
    return 1.0 if union == 0 else float(inter / union)


def box_iou(box_a, box_b):
    """IoU of two ``(x0, y0, x1, y1)`` boxes."""
    a, b = np.asarray(box_a, np.float64), np.asarray(box_b, np.float64)
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return 0.0 if union <= 0 else float(inter / union)


# ----------------------------------------------------------------------------- checks


def _check_points(points, name):
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{name} must have shape (L, 2); got {points.shape}.")
    return points


def _check_count(num_points):
    if int(num_points) < 1:
        raise ValueError(f"num_points must be >= 1; got {num_points}.")
    return int(num_points)


def _check_bins(num_bins):
    if int(num_bins) < 2:
        raise ValueError(f"num_bins must be >= 2; got {num_bins}.")
    return int(num_bins)


# ------------------------------------------------------------------------- vocabulary


class Vocabulary:
    """Token strings <-> integer ids: ``<pad>`` (id 0), ``<bos>``, ``<eos>``, the mask
    markers, the given words, then ``num_bins`` coordinate tokens ``<bin_0>...``.

    >>> vocab = Vocabulary(["red", "square"], num_bins=11)
    >>> vocab.encode(["<bos>", "red", "<bin_10>"])
    [1, 6, 18]
    >>> vocab.decode([6, 18, 2, 6])
    ['red', '<bin_10>']
    """

    SPECIALS = ("<pad>", "<bos>", "<eos>", MASK_START, MASK_SEPARATOR, MASK_END)

    def __init__(self, words=(), num_bins=NUM_BINS):
        self.num_bins = _check_bins(num_bins)
        words = [w for w in words if w not in self.SPECIALS]
        self.tokens = list(self.SPECIALS) + words + [bin_token(i) for i in range(num_bins)]
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError(f"Duplicate words in the vocabulary: {list(words)}.")
        self.pad_id, self.bos_id, self.eos_id = 0, 1, 2
        self.first_bin_id = len(self.tokens) - num_bins

    def __len__(self):
        return len(self.tokens)

    def encode(self, tokens):
        unknown = [t for t in tokens if t not in self.index]
        if unknown:
            raise ValueError(f"Tokens not in the vocabulary: {unknown[:5]}.")
        return [self.index[t] for t in tokens]

    def decode(self, ids, stop_at_eos=True):
        """Ids -> tokens, dropping padding and stopping at ``<eos>``."""
        out = []
        for i in np.asarray(ids).reshape(-1).tolist():
            if i == self.eos_id and stop_at_eos:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(self.tokens[i])
        return out
