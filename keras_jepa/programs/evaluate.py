"""``keras-jepa evaluate``: frozen-backbone probes (attentive, linear, k-NN) on a folder of
images or videos with class subfolders, or on the embedded digits.

The body of ``applications/evaluate_probe.py`` and of the ``evaluate`` subcommand:

1. the encoder: a preset name or directory (``VisionTransformer.from_preset``), a pretraining
   output folder (its ``encoder`` preset), or a random one of a named pretraining config;
   optionally the same architecture at random init as a baseline (``--compare-random``);
2. the data: ``--data DIR`` (class subfolders; ``--val DIR`` or a stratified
   ``--val-fraction`` split), read with the evaluation transforms (images: resize
   ``S*256/224``, centre crop ``S``; videos: ``--segments`` temporal clips x ``--views``
   spatial views, short side resized to ``S``); images go to video encoders as 16 repeated
   frames. ``--data digits`` uses the embedded scikit-learn digits and, with
   ``--pretrain-epochs``, first pretrains I-JEPA on the training split (no labels);
3. features once per encoder (``extract_features``), then each probe trained with the
   official recipe and scored top-1 / top-5 on the validation split (softmax averaged over
   views). ``--recipe vjepa1`` (default): one attentive probe, AdamW without decay on
   biases and norms, lr 1e-3 cosine to 0, wd 0.01 video / 0.001 images, grad clip 1.
   ``--recipe vjepa2``: V-JEPA 2's grid of attentive probes (4 blocks, 16 heads), trained
   together in one ``fit`` on the same features, each with its own lr / wd (video: lr
   {5e-3 ... 1e-4} x wd {0.01, 0.1, 0.4, 0.8}; images: the ImageNet grid), every weight
   decayed, no clipping; every probe's accuracy is reported, and the best as
   ``attentive``;
4. the table printed and saved as ``metrics.csv``, ``metrics.json`` and ``metrics.md``.
"""

import csv
import json
import os
import time

import numpy as np

PROBES = ("attentive", "linear", "knn")
RECIPES = {"vjepa1": "vjepa", "vjepa2": "vjepa2"}  # recipe -> its probe variant


def add_arguments(parser):
    """Adds the ``evaluate`` options to ``parser``."""
    parser.add_argument("--data", required=True,
                        help="folder with one subfolder per class (images or videos), or "
                             "'digits' for the embedded scikit-learn digits")
    parser.add_argument("--val", default=None,
                        help="validation folder (default: a stratified split of --data)")
    parser.add_argument("--val-fraction", type=float, default=0.25,
                        help="fraction of --data held out for validation when --val is not "
                             "given (stratified; default 0.25)")
    parser.add_argument("--encoder", default=None,
                        help="preset name or directory, or a pretraining output folder; "
                             "default: a random encoder of --config")
    parser.add_argument("--config", default=None,
                        help="pretraining config of the random encoder / of "
                             "--pretrain-epochs (default: ijepa_tiny_cpu, or vjepa_tiny_cpu "
                             "with --video)")
    parser.add_argument("--pretrain-epochs", type=int, default=0,
                        help="first pretrain I-JEPA/V-JEPA on the training split for this "
                             "many epochs (labels unused)")
    parser.add_argument("--compare-random", action="store_true",
                        help="also probe the same architecture at random init")
    parser.add_argument("--probes", default="attentive,linear,knn",
                        help=f"comma-separated subset of {','.join(PROBES)}")
    parser.add_argument("--video", action="store_true", help="the data are videos")
    parser.add_argument("--image-size", type=int, default=None,
                        help="evaluation crop size (default: the encoder's)")
    parser.add_argument("--frames", type=int, default=None,
                        help="frames per clip (default: the encoder's)")
    parser.add_argument("--frame-step", type=int, default=4,
                        help="videos: frames between sampled frames (default 4)")
    parser.add_argument("--segments", type=int, default=1,
                        help="temporal segments per video (K400: 8, SSv2: 2)")
    parser.add_argument("--views", type=int, default=1,
                        help="spatial views per segment (official: 3)")
    parser.add_argument("--recipe", default="vjepa1", choices=list(RECIPES),
                        help="attentive-probe training: vjepa1 (one probe, --lr, "
                             "--weight-decay, grad clip 1; default) or vjepa2 (a grid of "
                             "probes trained together, one lr / weight decay each, the "
                             "best reported)")
    parser.add_argument("--grid-lrs", type=float, nargs="+", default=None,
                        help="--recipe vjepa2: learning rates of the grid (default: the "
                             "official 5e-3 3e-3 1e-3 3e-4 1e-4; images: the ImageNet "
                             "grid)")
    parser.add_argument("--grid-weight-decays", type=float, nargs="+", default=None,
                        help="--recipe vjepa2: weight decays of the grid (default: the "
                             "official 0.01 0.1 0.4 0.8)")
    parser.add_argument("--probe-variant", default=None, choices=["vjepa", "vjepa2"],
                        help="attentive probe design: vjepa (cross-attention, extra "
                             "blocks after it) or vjepa2 (self-attention blocks over the "
                             "tokens, then cross-attention); default: the recipe's")
    parser.add_argument("--probe-depth", type=int, default=None,
                        help="attentive probe blocks (default: the variant's, 1 vjepa, "
                             "4 vjepa2)")
    parser.add_argument("--probe-heads", type=int, default=None,
                        help="default: the encoder's heads (V-JEPA 1) or 16 (V-JEPA 2)")
    parser.add_argument("--epochs", type=int, default=20, help="probe epochs (official 20)")
    parser.add_argument("--batch-size", type=int, default=16, help="probe batch size")
    parser.add_argument("--lr", type=float, default=1e-3,
                        help="peak learning rate of the attentive probe of --recipe "
                             "vjepa1 (default 1e-3, cosine to 0)")
    parser.add_argument("--weight-decay", type=float, default=None,
                        help="weight decay of the attentive and linear probes of --recipe "
                             "vjepa1 (default: 0.01 for video, 0.001 for images)")
    parser.add_argument("--linear-lr", type=float, default=1e-2,
                        help="learning rate of the linear probe")
    parser.add_argument("--knn-k", type=int, default=20,
                        help="neighbours of the k-NN probe (default 20)")
    parser.add_argument("--knn-temperature", type=float, default=0.07,
                        help="temperature of the k-NN probe's similarity weights "
                             "(default 0.07)")
    parser.add_argument("--feature-batch-size", type=int, default=32,
                        help="images or clips per batch when extracting features "
                             "(default 32)")
    parser.add_argument("--workers", type=int, default=1,
                        help="data-loading threads (default 1)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the split, the random encoders and the probes "
                             "(default 0)")
    parser.add_argument("--output", default="probe_eval", help="output folder")
    parser.add_argument("--save-features", action="store_true",
                        help="also write the features as .npy in --output")
    return parser


# --------------------------------------------------------------------------- data


def _folder_split(paths, labels, fraction, seed):
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(paths))
    counts = np.bincount(labels)
    stratify = labels if counts.min() >= 2 else None
    return train_test_split(idx, test_size=fraction, stratify=stratify, random_state=seed)


def _dataset(paths, labels, video, size, args, frames):
    from keras_jepa.data import ImageFolderDataset, VideoDataset, image_transform
    from keras_jepa.data import video_transform

    common = dict(batch_size=args.feature_batch_size, labels=labels, shuffle=False,
                  drop_remainder=False, workers=args.workers, seed=args.seed)
    if video:
        transform = video_transform(size, training=False, num_views=args.views)
        return VideoDataset(list(paths), frames_per_clip=frames, frame_step=args.frame_step,
                            num_clips=args.segments, transform=transform,
                            random_clip_start=False, short_videos="pad", **common)
    transform = image_transform(size, training=False)
    return ImageFolderDataset(list(paths), transform=transform, **common)


def _folder_data(args, video, size, frames):
    """``{"train": dataset, "val": dataset}`` and the class names."""
    from keras_jepa.data import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, scan_folder

    ext = VIDEO_EXTENSIONS if video else IMAGE_EXTENSIONS
    paths, labels, names = scan_folder(args.data, ext)
    if labels is None:
        raise ValueError(
            f"{args.data!r} has no class subfolders; put each class in its own folder.")
    if args.val:
        val_paths, val_labels, val_names = scan_folder(args.val, ext)
        if val_names != names:
            raise ValueError(
                f"Class folders differ: {names} in --data, {val_names} in --val.")
        train = (paths, labels)
        val = (val_paths, val_labels)
    else:
        tr, va = _folder_split(paths, labels, args.val_fraction, args.seed)
        train = ([paths[i] for i in tr], labels[tr])
        val = ([paths[i] for i in va], labels[va])
    return {
        "train": _dataset(*train, video, size, args, frames),
        "val": _dataset(*val, video, size, args, frames),
    }, names


# --------------------------------------------------------------------------- encoders


def _load_encoder(spec):
    from keras_jepa.models import VisionTransformer

    if spec and os.path.isfile(os.path.join(spec, "encoder", "config.json")) and not (
            os.path.exists(os.path.join(spec, "model.weights.h5"))):
        spec = os.path.join(spec, "encoder")  # a pretraining output folder
    return VisionTransformer.from_preset(spec)


def random_like(encoder, seed=0):
    """The same architecture as ``encoder`` with fresh random weights (seeded)."""
    import keras

    keras.utils.set_random_seed(seed)
    return type(encoder).from_config(encoder.get_config())


# --------------------------------------------------------------------------- probes


def recipe_grid(video, lrs=None, weight_decays=None):
    """The probe hyperparameters of ``--recipe vjepa2``: the official grid for video or
    images, or the product of the given learning rates and weight decays (the official
    video values fill in the one not given).

    Example:

    >>> len(recipe_grid(video=True)), len(recipe_grid(video=False))
    (20, 21)
    >>> [(h["lr"], h["weight_decay"]) for h in recipe_grid(True, lrs=[1e-3], weight_decays=[0.1])]
    [(0.001, 0.1)]
    """
    from keras_jepa.evaluation.probes import (
        PROBE_GRIDS, VJEPA2_GRID_LRS, VJEPA2_GRID_WEIGHT_DECAYS, probe_grid,
    )

    if lrs is None and weight_decays is None:
        return PROBE_GRIDS["vjepa2_video" if video else "vjepa2_image"]
    return probe_grid(lrs or VJEPA2_GRID_LRS, weight_decays or VJEPA2_GRID_WEIGHT_DECAYS)


def run_probes(features, labels, probes=PROBES, num_heads=None, video=False, epochs=20,
               batch_size=16, lr=1e-3, weight_decay=None, linear_lr=1e-2,
               variant=None, depth=None, knn_k=20, knn_temperature=0.07, num_views=None,
               seed=0, recipe="vjepa1", grid=None, verbose=0):
    """Trains and scores each probe on precomputed token features.

    Args:
        features: ``{"train": (N, [V,] T, D), "val": ...}`` token arrays.
        labels: ``{"train": (N,), "val": (M,)}``.
        probes: subset of ``("attentive", "linear", "knn")``.
        num_heads: attentive-probe heads (default 16 for ``"vjepa2"``, else the largest of
            16, 8, 4, 2, 1 that divides the width).
        video: selects the default weight decay (0.01 video, 0.001 images) and the
            default grid of ``recipe="vjepa2"``.
        variant: attentive probe design; default: the recipe's (``"vjepa"`` for
            ``"vjepa1"``, ``"vjepa2"`` for ``"vjepa2"``).
        num_views: ``V`` when the features have a view axis.
        recipe: ``"vjepa1"`` (one attentive probe, ``lr`` / ``weight_decay``) or
            ``"vjepa2"`` (a :class:`~keras_jepa.evaluation.probes.ProbeGrid` trained with
            ``train_probe_grid``).
        grid: ``recipe="vjepa2"``: one hyperparameter dict per probe (default
            :func:`recipe_grid`).

    Returns:
        A list of ``{"probe", "top1", "top5", "train_top1", "seconds"}`` rows. With
        ``recipe="vjepa2"`` the ``"attentive"`` row is the best probe of the grid (highest
        validation top-1), followed by one ``"attentive lr=... wd=..."`` row per probe.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 40)
    >>> x = rng.normal(size=(40, 3, 8)).astype("float32") + y[:, None, None]
    >>> rows = run_probes({"train": x, "val": x}, {"train": y, "val": y}, probes=("knn",))
    >>> rows[0]["probe"], rows[0]["top1"] > 0.9
    ('knn', True)
    """
    import keras

    from keras_jepa.evaluation.attentive_probe import AttentiveClassifier
    from keras_jepa.evaluation.probes import (
        LinearClassifier, ProbeGrid, knn_classify, topk_accuracy, train_probe,
        train_probe_grid,
    )

    if recipe not in RECIPES:
        raise ValueError(f"Unknown recipe {recipe!r}; choose from {list(RECIPES)}.")
    variant = variant or RECIPES[recipe]

    train_x, val_x = features["train"], features["val"]
    train_y, val_y = np.asarray(labels["train"]), np.asarray(labels["val"])
    num_classes = int(max(train_y.max(), val_y.max())) + 1
    dim = int(train_x.shape[-1])
    wd = (0.01 if video else 0.001) if weight_decay is None else weight_decay
    if num_heads is None:
        num_heads = 16 if variant == "vjepa2" else next(
            h for h in (16, 8, 4, 2, 1) if dim % h == 0)
    rows = []
    for name in probes:
        start = time.time()
        keras.utils.set_random_seed(seed)
        if name == "knn":
            pooled = lambda x: x.mean(axis=-2)  # noqa: E731  tokens -> (N, [V,] D)
            tr, va = pooled(train_x), pooled(val_x)
            if num_views:
                tr, va = tr.mean(axis=1), va.mean(axis=1)
            votes = knn_classify(tr, train_y, va, k=knn_k, temperature=knn_temperature,
                                 num_classes=num_classes)
            train_votes = knn_classify(tr, train_y, tr, k=knn_k,
                                       temperature=knn_temperature, num_classes=num_classes)
            rows.append({"probe": "knn", "top1": topk_accuracy(votes, val_y, 1),
                         "top5": topk_accuracy(votes, val_y, 5),
                         "train_top1": topk_accuracy(train_votes, train_y, 1),
                         "seconds": time.time() - start})
            continue
        if name == "attentive" and recipe == "vjepa2":
            hyper = list(grid or recipe_grid(video))
            model = ProbeGrid(num_classes, dim, len(hyper), num_heads=num_heads,
                              variant=variant, depth=depth)
            out = train_probe_grid(model, train_x, train_y, hyper, epochs=epochs,
                                   batch_size=batch_size, num_views=num_views,
                                   validation_data=(val_x, val_y), verbose=verbose)
            seconds = time.time() - start
            named = [("attentive", out["probes"][out["best"]])] + [
                (f"attentive lr={p['lr']:g} wd={p['weight_decay']:g}", p)
                for p in out["probes"]]
            rows.extend({"probe": n, "top1": p["val"]["top1"], "top5": p["val"]["top5"],
                         "train_top1": p["train"]["top1"], "seconds": seconds}
                        for n, p in named)
            continue
        if name == "attentive":
            model = AttentiveClassifier(num_classes, dim, num_heads=num_heads,
                                        variant=variant, depth=depth)
            rate = lr
        elif name == "linear":
            model = LinearClassifier(num_classes, dim)
            rate = linear_lr
        else:
            raise ValueError(f"Unknown probe {name!r}; choose from {PROBES}.")
        out = train_probe(model, train_x, train_y, epochs=epochs, batch_size=batch_size,
                          lr=rate, weight_decay=wd, num_views=num_views,
                          validation_data=(val_x, val_y), verbose=verbose)
        rows.append({"probe": name, "top1": out["val"]["top1"], "top5": out["val"]["top5"],
                     "train_top1": out["train"]["top1"], "seconds": time.time() - start})
    return rows


# --------------------------------------------------------------------------- output


def format_table(rows, columns=("encoder", "probe", "top1", "top5", "train_top1",
                                "seconds")):
    """A markdown table of result rows (accuracies in %)."""
    def cell(key, value):
        if key in ("top1", "top5", "train_top1"):
            return f"{100 * value:.1f}"
        if key == "seconds":
            return f"{value:.1f}"
        return str(value)

    header = "| " + " | ".join(columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(cell(c, r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join([header, rule] + body)


def save_results(rows, output, meta):
    """Writes ``metrics.csv``, ``metrics.json`` and ``metrics.md`` to ``output``."""
    os.makedirs(output, exist_ok=True)
    keys = list(rows[0]) if rows else []
    with open(os.path.join(output, "metrics.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(output, "metrics.json"), "w") as f:
        json.dump({"meta": meta, "results": rows}, f, indent=2, default=str)
    with open(os.path.join(output, "metrics.md"), "w") as f:
        f.write(f"# Frozen-backbone probes\n\n{json.dumps(meta, default=str)}\n\n")
        f.write(format_table(rows) + "\n")
    return output


# --------------------------------------------------------------------------- main


def _digits(args, say):
    """Features of the embedded digits for the pretrained and random encoders."""
    import keras
    from sklearn.model_selection import train_test_split

    from keras_jepa.data import load_digits
    from keras_jepa.models.jepa.recipes import build_encoder, get_config
    from keras_jepa.data.arrays import normalize_images
    from keras_jepa.programs.pretrain import RunMismatchError, pretrain

    config = get_config(args.config or "ijepa_tiny_cpu")
    images, labels = load_digits(image_size=config.image_size)
    tr, va = train_test_split(np.arange(len(labels)), test_size=args.val_fraction,
                              stratify=labels, random_state=args.seed)
    x = normalize_images(images)
    data = {"train": (x[tr], labels[tr]), "val": (x[va], labels[va])}
    say(f"  data: embedded digits at {config.image_size}px, {len(tr)} train / {len(va)} "
        "held-out")
    keras.utils.set_random_seed(args.seed)
    random_encoder = build_encoder(config)
    encoders = {}
    if args.encoder:
        encoders["given"] = _load_encoder(args.encoder)
    elif args.pretrain_epochs:
        say(f"  pretraining {config.name} for {args.pretrain_epochs} epochs on the train "
            "split (no labels)")
        try:
            result = pretrain(config, images[tr], epochs=args.pretrain_epochs,
                              output_dir=os.path.join(args.output, "pretraining"),
                              seed=args.seed, verbose=2)
        except RunMismatchError as error:  # name this command's options, not pretrain's
            changed = ", ".join(key for key, _, _ in error.differences) or "unreadable record"
            raise ValueError(
                f"{error.output_dir} holds a pretraining run with other arguments "
                f"({changed}); rerun with the same ones to reuse it, choose another "
                "--output, or delete that folder to pretrain again."
            ) from error
        encoders["ijepa_pretrained"] = result["encoder"]
    if not encoders or args.compare_random:
        encoders["random_init"] = (random_like(encoders["given"], args.seed)
                                   if "given" in encoders else random_encoder)
    return encoders, data, False


def run_from_args(args):
    """Runs the evaluation from parsed arguments; returns the result rows."""
    import keras

    from keras_jepa.evaluation.features import extract_features

    start = time.time()
    probes = tuple(p.strip() for p in args.probes.split(",") if p.strip())
    for p in probes:
        if p not in PROBES:
            raise ValueError(f"Unknown probe {p!r} in --probes; choose from {PROBES}.")

    def say(msg):
        print(msg, flush=True)

    say(f"[keras-jepa evaluate] backend '{keras.backend.backend()}', probes {probes}")
    if args.data == "digits":
        encoders, arrays, video = _digits(args, say)
        datasets = None
    else:
        video = bool(args.video)
        if args.encoder:
            base = _load_encoder(args.encoder)
        else:
            from keras_jepa.models.jepa.recipes import build_encoder, get_config

            keras.utils.set_random_seed(args.seed)
            base = build_encoder(get_config(args.config or (
                "vjepa_tiny_cpu" if video else "ijepa_tiny_cpu")))
        encoders = {"encoder" if args.encoder else "random_init": base}
        if args.compare_random and args.encoder:
            encoders["random_init"] = random_like(base, args.seed)
        size = args.image_size or base.image_size[0]
        frames = args.frames or base.num_frames or 16
        datasets, names = _folder_data(args, video, size, frames)
        say(f"  data: {args.data} ({len(names)} classes): "
            f"{len(datasets['train'].paths)} train / {len(datasets['val'].paths)} val "
            f"{'videos' if video else 'images'} at {size}px"
            + (f", {args.segments} segment(s) x {args.views} view(s)" if video else ""))
        arrays = None
    num_views = args.views if (video and args.views > 1) else None
    variant = args.probe_variant or RECIPES[args.recipe]
    rows = []
    for enc_name, encoder in encoders.items():
        feats, labels = {}, {}
        t0 = time.time()
        for split in ("train", "val"):
            data = datasets[split] if datasets is not None else arrays[split]
            output = (os.path.join(args.output, f"{enc_name}_{split}.npy")
                      if args.save_features else None)
            f, y = extract_features(
                encoder, data, batch_size=args.feature_batch_size, pool=None,
                output=output, num_segments=args.segments if video else 1,
                num_views=args.views if video else 1,
                image_frames=getattr(encoder, "num_frames", None) or 16, verbose=1)
            feats[split], labels[split] = np.asarray(f), y
        say(f"  {enc_name}: features {feats['train'].shape[1:]} in {time.time() - t0:.1f} s")
        heads = args.probe_heads
        if heads is None and variant == "vjepa":
            heads = getattr(encoder, "num_heads", None)
            if heads and feats["train"].shape[-1] % heads:
                heads = None
        for row in run_probes(
                feats, labels, probes=probes, num_heads=heads, video=video,
                epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                weight_decay=args.weight_decay, linear_lr=args.linear_lr,
                variant=variant, depth=args.probe_depth, knn_k=args.knn_k,
                knn_temperature=args.knn_temperature, num_views=num_views, seed=args.seed,
                recipe=args.recipe,
                grid=(recipe_grid(video, args.grid_lrs, args.grid_weight_decays)
                      if args.recipe == "vjepa2" else None)):
            row = {"encoder": enc_name, **row}
            rows.append(row)
            say(f"  {enc_name:>18} {row['probe']:>9}: top-1 {100 * row['top1']:5.1f}%  "
                f"top-5 {100 * row['top5']:5.1f}%  ({row['seconds']:.1f} s)")
    meta = {"backend": keras.backend.backend(), "data": args.data,
            "seconds": time.time() - start, "probe_epochs": args.epochs,
            "probe_recipe": args.recipe, "probe_variant": variant, "seed": args.seed}
    save_results(rows, args.output, meta)
    say("")
    say(format_table(rows))
    say(f"  total {meta['seconds']:.0f} s on backend '{meta['backend']}'; tables in "
        f"{args.output}/metrics.{{csv,json,md}}")
    return rows


def run(args):
    """Runs the program from parsed arguments (``keras-jepa evaluate``)."""
    run_from_args(args)  # returns the rows, not an exit status
    return 0


def main(argv=None):
    """Entry point of ``applications/evaluate_probe.py`` (errors as ``keras-jepa evaluate``)."""
    import sys

    from keras_jepa.programs.runner import script_main

    return script_main(sys.modules[__name__], argv, description=(
        "Frozen-backbone probes (attentive, linear, k-NN) on a labelled folder or the "
        "embedded digits."))
