"""Datasets with a planted spurious feature, group-annotated benchmark loaders, and the
indexed batch stream that XRM and the group-robust learners train on.

Every loader returns the same layout, one dict per split (``"tr"``, ``"va"``, ``"te"``, the
official split names)::

    {"tr": {"x": float32 (N, ...), "y": int32 (N,), "m": int32 (N,), ...}, "va": ..., "te": ...}

``m`` is the environment bit that, with the class, defines the groups ``g = 2 * y + m``: for
the synthetic sets it is "the spurious feature disagrees with the label", for Waterbirds and
CelebA the annotated attribute (place, gender). Extra keys carry dataset-specific truths.

- ``make_color_digits``: the official ColorMNIST recipe of ``facebookresearch/XRM``
  (``datasets.py``) applied to scikit-learn's 8x8 digits, offline.
- ``make_spurious_features``: a Waterbirds-like Gaussian set with one invariant and one
  spurious direction.
- ``read_group_metadata`` / ``load_images``: Waterbirds/CelebA/MetaShift-style folders with a
  metadata CSV (``filename, y, a, split``), the format the official ``download.py`` writes.
- ``load_feature_arrays`` / ``save_feature_arrays``: precomputed features (``.npz``, or the
  official ``features.pt``) for the one-minute linear runs.
- ``IndexedBatches``: a ``keras.utils.PyDataset`` of shuffled minibatches that carry each
  example's row index (needed by XRM's label store) and optionally its group; it reproduces
  the official loaders (random order each pass, last partial batch kept; group-weighted
  sampling with replacement for RWG).
"""

import csv
import math
import os

import keras
import numpy as np

SPLITS = ("tr", "va", "te")

# The official ColorMNIST family (``datasets.py``): train/validation are built from two
# environments (every other example after a shuffle), the test set from one.
COLOR_MNIST_VARIANTS = {
    "ColorMNIST": {
        "tr_va_label_noise": (0.25, 0.25),
        "tr_va_color_noise": (0.2, 0.1),
        "te_label_noise": 0.25,
        "te_color_noise": 0.9,
    },
    "InverseColorMNIST": {
        "tr_va_label_noise": (0.15, 0.15),
        "tr_va_color_noise": (0.2, 0.3),
        "te_label_noise": 0.15,
        "te_color_noise": 0.9,
    },
    "MColor": {
        "tr_va_label_noise": (0.2, 0.3),
        "tr_va_color_noise": (0.15, 0.15),
        "te_label_noise": 0.9,
        "te_color_noise": 0.15,
    },
    "ColorMNIST_V3": {
        "tr_va_label_noise": (0.2, 0.1),
        "tr_va_color_noise": (0.25, 0.25),
        "te_label_noise": 0.9,
        "te_color_noise": 0.25,
    },
}


def _color_environment(images, digits, label_noise, color_noise, rng):
    """The official ``make_env``: binary label ``digit < 5``, XOR label noise, colour =
    noisy label XOR colour noise, the other channel zeroed."""
    clean = (digits < 5).astype("int32")
    labels = clean ^ (rng.random(len(digits)) < label_noise).astype("int32")
    colors = labels ^ (rng.random(len(digits)) < color_noise).astype("int32")
    stacked = np.stack([images, images], axis=1)  # (N, 2, H, W), channels first
    stacked[np.arange(len(images)), 1 - colors] = 0.0
    return stacked.astype("float32"), labels, clean, colors


def make_color_digits(
    variant="ColorMNIST",
    split_fractions=(5 / 7, 1 / 7, 1 / 7),
    layout="flat",
    seed=0,
):
    """ColorDigits: the official XRM ColorMNIST recipe on scikit-learn's 8x8 digits (offline).

    Recipe (``facebookresearch/XRM`` ``datasets.py``, checked): the label is ``digit < 5``
    flipped with probability ``label_noise``; the colour is the *noisy* label flipped with
    probability ``color_noise``; the image is stacked into two channels and the channel
    ``1 - colour`` is zeroed. Train and validation are each made of two environments (even
    and odd rows after a shuffle) with colour noise 0.2 and 0.1 and label noise 0.25; the
    test set has colour noise 0.9. Differences from MNIST: 1,797 digits at 8x8 (MNIST is
    subsampled to 14x14 officially), split 5:1:1 like MNIST's 50k/10k/10k, intensities
    ``/16`` instead of ``/255``, numpy's RNG instead of torch's.

    Keys per split: ``x`` (``(N, 128)`` channels-first flattened, or ``(N, 8, 8, 2)`` with
    ``layout="channels_last"``), ``y`` (noisy label), ``m`` (planted group bit:
    ``colour != y``), ``env`` (the official "human" environment index: 0 or 1 for train and
    validation, 0 for test; the official code's ``group_labels='yes'``), ``color``,
    ``clean_y`` (``digit < 5``) and ``digit``.

    Args:
        variant: a key of ``COLOR_MNIST_VARIANTS`` or a dict with the same keys.
        split_fractions: train/validation/test fractions of the 1,797 digits.
        layout: ``"flat"`` or ``"channels_last"``.
        seed: numpy seed for the split, the noise and the colours.

    Example:

    >>> data = make_color_digits(seed=0)
    >>> data["tr"]["x"].shape, data["te"]["x"].shape
    ((1284, 128), (256, 128))
    >>> round(float(data["tr"]["m"].mean()), 2)         # about 15% disagree with the colour
    0.17
    """
    from keras_jepa.data.digits import load_digits

    if isinstance(variant, str):
        if variant not in COLOR_MNIST_VARIANTS:
            raise ValueError(
                f"Unknown ColorMNIST variant {variant!r}; expected one of "
                f"{sorted(COLOR_MNIST_VARIANTS)} or a dict."
            )
        config = COLOR_MNIST_VARIANTS[variant]
    else:
        config = dict(variant)
    if layout not in ("flat", "channels_last"):
        raise ValueError(f"layout must be 'flat' or 'channels_last'; got {layout!r}.")
    fractions = np.asarray(split_fractions, "float64")
    if fractions.shape != (3,) or np.any(fractions <= 0):
        raise ValueError(
            f"split_fractions must be three positive numbers; got {split_fractions}."
        )
    fractions = fractions / fractions.sum()

    images, digits = load_digits(image_size=8, channels=1)
    images = images[..., 0]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits))
    n_tr = int(round(fractions[0] * len(digits)))
    n_va = int(round(fractions[1] * len(digits)))
    rows = {"tr": order[:n_tr], "va": order[n_tr : n_tr + n_va], "te": order[n_tr + n_va :]}

    data = {}
    for split in SPLITS:
        split_images, split_digits = images[rows[split]], digits[rows[split]]
        if split == "te":
            envs = [(np.arange(len(split_digits)), config["te_label_noise"],
                     config["te_color_noise"], 0)]
        else:
            envs = [
                (np.arange(0, len(split_digits), 2), config["tr_va_label_noise"][0],
                 config["tr_va_color_noise"][0], 0),
                (np.arange(1, len(split_digits), 2), config["tr_va_label_noise"][1],
                 config["tr_va_color_noise"][1], 1),
            ]
        parts = []
        for picked, label_noise, color_noise, env in envs:
            x, y, clean, color = _color_environment(
                split_images[picked], split_digits[picked], label_noise, color_noise, rng
            )
            parts.append(
                dict(x=x, y=y, clean_y=clean, color=color, digit=split_digits[picked],
                     env=np.full(len(y), env, "int32"))
            )
        merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        x = merged.pop("x")
        if layout == "flat":
            x = x.reshape(len(x), -1)
        else:
            x = np.transpose(x, (0, 2, 3, 1))
        merged["m"] = (merged["color"] != merged["y"]).astype("int32")
        data[split] = {"x": np.ascontiguousarray(x, "float32"),
                       **{k: v.astype("int32") for k, v in merged.items()}}
    return data


def make_spurious_features(
    num_train=2000,
    num_val=1000,
    num_test=2000,
    correlation=0.95,
    val_correlation=None,
    test_correlation=0.5,
    invariant_margin=1.0,
    invariant_noise=1.0,
    spurious_margin=1.0,
    spurious_noise=0.1,
    noise_dims=20,
    seed=0,
):
    """A Waterbirds-like Gaussian dataset with one invariant and one spurious direction.

    ``y`` is a fair coin; the spurious attribute ``a`` equals ``y`` with probability
    ``correlation`` (train), ``val_correlation`` (validation, default the train value) and
    ``test_correlation`` (test, 0.5: independent). Features::

        x = [ (2y-1) * invariant_margin + invariant_noise * N(0,1),     # 84% predictive
              (2a-1) * spurious_margin  + spurious_noise  * N(0,1),     # separable, shortcut
              N(0, 1) * noise_dims ]

    The spurious feature has a much larger margin relative to its noise, so an ERM model
    leans on it and fails on the minority groups ``a != y``. Groups: ``m = (a != y)``.

    Keys per split: ``x`` (``(N, 2 + noise_dims)``), ``y``, ``m``, ``a``.

    Example:

    >>> data = make_spurious_features(seed=0)
    >>> data["tr"]["x"].shape
    (2000, 22)
    >>> round(float(data["tr"]["m"].mean()), 2), round(float(data["te"]["m"].mean()), 1)
    (0.05, 0.5)
    """
    for name, value in (("correlation", correlation), ("test_correlation", test_correlation)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1]; got {value}.")
    if val_correlation is None:
        val_correlation = correlation
    rng = np.random.default_rng(seed)
    data = {}
    for split, n, rho in (
        ("tr", num_train, correlation),
        ("va", num_val, val_correlation),
        ("te", num_test, test_correlation),
    ):
        if n < 1:
            raise ValueError(f"the {split} split needs at least one example; got {n}.")
        y = rng.integers(0, 2, n).astype("int32")
        a = np.where(rng.random(n) < rho, y, 1 - y).astype("int32")
        invariant = (2 * y - 1) * invariant_margin + invariant_noise * rng.normal(size=n)
        spurious = (2 * a - 1) * spurious_margin + spurious_noise * rng.normal(size=n)
        noise = rng.normal(size=(n, noise_dims))
        x = np.concatenate([invariant[:, None], spurious[:, None], noise], axis=1)
        data[split] = {
            "x": x.astype("float32"),
            "y": y,
            "m": (a != y).astype("int32"),
            "a": a,
        }
    return data


# --------------------------------------------------------------------------- benchmarks on disk
_SPLIT_NAMES = {
    "0": "tr", "1": "va", "2": "te",
    "tr": "tr", "va": "va", "te": "te",
    "train": "tr", "val": "va", "valid": "va", "validation": "va", "test": "te",
    # ImageNet-Backgrounds' metadata (the official loader maps these three names).
    "mixed_rand": "te",
}


def read_group_metadata(metadata_csv, image_root=None, attribute_column="a"):
    """Reads a Waterbirds/CelebA-style metadata CSV into per-split file lists.

    The CSV has at least the columns ``filename``, ``y``, ``split`` and the attribute column
    (``a``: place for Waterbirds, gender for CelebA), the format of the official
    ``download.py`` (``metadata_waterbirds.csv``, ``metadata_celeba.csv``,
    ``metadata_metashift.csv``). ``split`` is 0/1/2 or ``train``/``val``/``test``
    (ImageNet-Backgrounds' ``mixed_rand`` is the test split, as in the official loader).

    Args:
        metadata_csv: path to the CSV.
        image_root: folder the ``filename`` column is relative to (default: the CSV's
            folder).
        attribute_column: the column holding the group attribute.

    Returns:
        ``{"tr": {"paths": [...], "y": int32, "m": int32}, "va": ..., "te": ...}``, ``m``
        being the attribute.

    Example:

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "metadata.csv"), "w") as f:
    ...     _ = f.write("filename,y,a,split\\na.png,0,1,0\\nb.png,1,1,2\\n")
    >>> meta = read_group_metadata(os.path.join(folder, "metadata.csv"))
    >>> meta["tr"]["y"].tolist(), meta["te"]["m"].tolist(), len(meta["va"]["paths"])
    ([0], [1], 0)
    """
    if not os.path.exists(metadata_csv):
        raise FileNotFoundError(
            f"Metadata CSV {metadata_csv!r} not found. Waterbirds/CelebA folders come from "
            "the official facebookresearch/XRM download.py (columns filename,y,a,split)."
        )
    if image_root is None:
        image_root = os.path.dirname(os.path.abspath(metadata_csv))
    rows = {s: {"paths": [], "y": [], "m": []} for s in SPLITS}
    with open(metadata_csv, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"filename", "y", "split", attribute_column} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(
                f"{metadata_csv!r} lacks the column(s) {sorted(missing)}; found "
                f"{reader.fieldnames}."
            )
        for line, row in enumerate(reader, start=2):
            split_value = str(row["split"]).strip()
            split = _SPLIT_NAMES.get(split_value)
            if split is None:
                raise ValueError(
                    f"{metadata_csv!r} line {line}: unknown split {split_value!r}; expected "
                    "0/1/2 or train/val/test."
                )
            rows[split]["paths"].append(os.path.join(image_root, row["filename"]))
            rows[split]["y"].append(int(float(row["y"])))
            rows[split]["m"].append(int(float(row[attribute_column])))
    return {
        s: {"paths": v["paths"], "y": np.asarray(v["y"], "int32"),
            "m": np.asarray(v["m"], "int32")}
        for s, v in rows.items()
    }


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def load_images(paths, image_size=224, crop="resize_then_crop", normalize=True):
    """Loads RGB images as float32 ``(N, image_size, image_size, 3)``, channels last.

    ``crop`` picks the official transforms: ``"resize_then_crop"`` (Waterbirds: resize to
    ``image_size * 256/224`` then centre-crop), ``"crop_then_resize"`` (CelebA: centre-crop
    the largest square, 178 px on aligned CelebA, then resize), or ``"resize"``. With
    ``normalize`` the ImageNet mean/std are applied, otherwise values are in ``[0, 1]``.

    Example:

    >>> import os, tempfile, numpy as np
    >>> from PIL import Image
    >>> path = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> Image.fromarray(np.zeros((40, 30, 3), "uint8")).save(path)
    >>> load_images([path], image_size=16, normalize=False).shape
    (1, 16, 16, 3)
    """
    from PIL import Image

    from keras_jepa.data.image_io import open_rgb

    if crop not in ("resize_then_crop", "crop_then_resize", "resize"):
        raise ValueError(
            "crop must be 'resize_then_crop', 'crop_then_resize' or 'resize'; got "
            f"{crop!r}."
        )
    out = np.zeros((len(paths), image_size, image_size, 3), "float32")
    for i, path in enumerate(paths):
        image = open_rgb(path)
        if crop == "resize_then_crop":
            side = int(image_size * 256 / 224)
            image = image.resize((side, side), Image.BILINEAR)
            offset = (side - image_size) // 2
            image = image.crop((offset, offset, offset + image_size, offset + image_size))
        elif crop == "crop_then_resize":
            w, h = image.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            image = image.crop((left, top, left + side, top + side))
            image = image.resize((image_size, image_size), Image.BILINEAR)
        else:
            image = image.resize((image_size, image_size), Image.BILINEAR)
        out[i] = np.asarray(image, "float32") / 255.0
    if normalize:
        out = (out - np.asarray(_IMAGENET_MEAN, "float32")) / np.asarray(_IMAGENET_STD, "float32")
    return out


def save_feature_arrays(path, data):
    """Saves ``{"tr": {"x", "y", "m"}, ...}`` to an ``.npz`` that ``load_feature_arrays``
    reads (keys ``tr_x``, ``tr_y``, ``tr_m``...).

    Example:

    >>> import os, tempfile, numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "features.npz")
    >>> split = {"x": np.zeros((2, 3), "float32"), "y": np.array([0, 1]), "m": np.array([1, 0])}
    >>> save_feature_arrays(path, {"tr": split, "va": split, "te": split})
    >>> load_feature_arrays(path)["va"]["x"].shape
    (2, 3)
    """
    arrays = {}
    for split, values in data.items():
        for key in ("x", "y", "m"):
            if key not in values:
                raise ValueError(f"split {split!r} lacks {key!r}; it has {sorted(values)}.")
            arrays[f"{split}_{key}"] = np.asarray(values[key])
    np.savez(path, **arrays)


def load_feature_arrays(path):
    """Loads precomputed features for the three splits.

    Accepts an ``.npz`` with ``{split}_x``, ``{split}_y``, ``{split}_m`` arrays (see
    ``save_feature_arrays``) or the official ``features.pt`` written by
    ``facebookresearch/XRM`` ``download.py`` (``{split: {"x", "y", "m"}}``, read with
    ``torch.load(weights_only=True)``; needs torch installed).

    Returns:
        ``{"tr": {"x": float32, "y": int32, "m": int32}, "va": ..., "te": ...}``.

    Example: see ``save_feature_arrays``.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"Feature file {path!r} not found. Write one with save_feature_arrays, or use "
            "the official features.pt (facebookresearch/XRM download.py)."
        )
    if path.endswith(".pt") or path.endswith(".pth"):
        from keras_jepa.backend.checkpoint_io import read_checkpoint

        raw = read_checkpoint(path)  # tensors as numpy arrays; no arbitrary unpickling
        get = lambda split, key: raw[split][key]  # noqa: E731
    else:
        raw = np.load(path)
        get = lambda split, key: raw[f"{split}_{key}"]  # noqa: E731
    data = {}
    for split in SPLITS:
        try:
            data[split] = {
                "x": np.asarray(get(split, "x"), "float32"),
                "y": np.asarray(get(split, "y"), "int64").reshape(-1).astype("int32"),
                "m": np.asarray(get(split, "m"), "int64").reshape(-1).astype("int32"),
            }
        except KeyError as error:
            raise ValueError(
                f"{path!r} lacks split {split!r} or one of its arrays x/y/m ({error})."
            ) from None
    return data


# --------------------------------------------------------------------------- batch stream
class IndexedBatches(keras.utils.PyDataset):
    """Minibatches ``({"features", "index"[, "group"]}, y)`` in the official loaders' order.

    Each pass over the data is a fresh random order (numpy ``default_rng([seed, pass])``),
    cut into batches of ``batch_size`` with the last partial batch kept, as the official
    ``FastBatchSampler`` over a ``RandomSampler``. With ``weights`` each pass instead draws
    ``len(rows)`` examples *with replacement* in proportion to the weights (the official
    ``WeightedRandomSampler`` used by RWG). ``rows`` restricts the stream to a subset (SUBG);
    ``"index"`` is always the row in the full arrays.

    Steps are counted globally, so ``steps_per_epoch`` may cut passes anywhere: ``fit(ds,
    epochs=E)`` takes ``E * steps_per_epoch`` steps, like the official step loop that
    reports every ``checkpoint_freq`` steps. The batch for a step is a pure function of
    ``(seed, step)``, so Keras's batch shuffling or a restart cannot repeat or skip data
    within an epoch.

    Args:
        features: ``(N, ...)`` array.
        labels: ``(N,)`` int array.
        batch_size: examples per batch (``-1``: full batch).
        steps_per_epoch: batches per Keras epoch (default: one pass).
        groups: optional ``(N,)`` int group ids, passed as ``"group"``.
        weights: optional ``(N,)`` sampling weights (RWG).
        rows: optional subset of row indices (SUBG).
        shuffle: random order per pass (``False``: sequential, no weights allowed).
        seed: seed of the order.

    Example:

    >>> import numpy as np
    >>> ds = IndexedBatches(np.zeros((10, 3)), np.arange(10), batch_size=4, seed=0)
    >>> len(ds), [len(ds[i][1]) for i in range(3)]
    (3, [4, 4, 2])
    >>> sorted(np.concatenate([ds[i][0]["index"] for i in range(3)]).tolist()) == list(range(10))
    True
    """

    def __init__(
        self,
        features,
        labels,
        batch_size,
        steps_per_epoch=None,
        groups=None,
        weights=None,
        rows=None,
        shuffle=True,
        seed=0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.features = np.asarray(features)
        self.labels = np.asarray(labels).reshape(-1)
        n = len(self.features)
        if len(self.labels) != n:
            raise ValueError(
                f"features has {n} rows but labels has {len(self.labels)}."
            )
        self.groups = None if groups is None else np.asarray(groups).reshape(-1)
        if self.groups is not None and len(self.groups) != n:
            raise ValueError(f"groups has {len(self.groups)} entries; expected {n}.")
        self.rows = np.arange(n) if rows is None else np.asarray(rows, "int64").reshape(-1)
        if len(self.rows) == 0:
            raise ValueError("rows is empty: nothing to train on.")
        if self.rows.min() < 0 or self.rows.max() >= n:
            raise ValueError(
                f"rows must index the {n} examples; got values in "
                f"[{self.rows.min()}, {self.rows.max()}]."
            )
        if weights is not None:
            weights = np.asarray(weights, "float64").reshape(-1)
            if len(weights) != n:
                raise ValueError(f"weights has {len(weights)} entries; expected {n}.")
            weights = weights[self.rows]
            if np.any(weights < 0) or weights.sum() <= 0:
                raise ValueError("weights must be >= 0 with a positive sum.")
            if not shuffle:
                raise ValueError("weighted sampling is random; it needs shuffle=True.")
            weights = weights / weights.sum()
        self.weights = weights
        self.batch_size = len(self.rows) if batch_size in (-1, None) else int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 or -1; got {batch_size}.")
        self.shuffle = shuffle
        self.seed = seed
        self.batches_per_pass = math.ceil(len(self.rows) / self.batch_size)
        self.steps_per_epoch = int(steps_per_epoch or self.batches_per_pass)
        self.epoch = 0
        self._cached_pass = None

    def __len__(self):
        return self.steps_per_epoch

    def _order(self, pass_index):
        if self._cached_pass is not None and self._cached_pass[0] == pass_index:
            return self._cached_pass[1]
        if not self.shuffle:
            order = self.rows
        else:
            rng = np.random.default_rng([int(self.seed), int(pass_index)])
            if self.weights is None:
                order = self.rows[rng.permutation(len(self.rows))]
            else:
                order = self.rows[rng.choice(len(self.rows), len(self.rows), p=self.weights)]
        self._cached_pass = (pass_index, order)
        return order

    def batch_rows(self, step):
        """Row indices of the batch at global step ``step``."""
        pass_index, position = divmod(int(step), self.batches_per_pass)
        order = self._order(pass_index)
        return order[position * self.batch_size : (position + 1) * self.batch_size]

    def __getitem__(self, i):
        if i < 0 or i >= self.steps_per_epoch:
            raise IndexError(f"batch {i} out of range for {self.steps_per_epoch} batches.")
        rows = self.batch_rows(self.epoch * self.steps_per_epoch + i)
        inputs = {"features": self.features[rows], "index": rows.astype("int32")}
        if self.groups is not None:
            inputs["group"] = self.groups[rows].astype("int32")
        return inputs, self.labels[rows].astype("int32")

    def on_epoch_end(self):
        self.epoch += 1
