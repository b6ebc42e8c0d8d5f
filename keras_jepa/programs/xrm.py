"""The XRM program: discover environments (phase 1), train group-robust learners with them
(phase 2), and print the worst-group table. ``applications/discover_environments.py`` and
``keras-jepa xrm`` run ``main``.

Datasets and recipes (all numbers from ``facebookresearch/XRM``):

- ``synthetic``: ``make_spurious_features`` with the one-minute Waterbirds recipe
  (``quick_run.py``): bias-free zero-initialised linear twins and learners, SGD lr 1e-2,
  full batch, 3000 steps, GroupDRO eta 0.1; rows ERM, GroupDRO with class-only groups (the
  script's "no group label"), with the true groups, and with XRM's groups.
- ``color_digits``: ``make_color_digits`` with the ColorMNIST protocol (``main.py``):
  MLP 390-390 (Xavier kernels, zero biases), Adam (eps 1e-8) with coupled weight decay,
  ``num_combs`` random combinations per phase (official 10), 1000 steps reported every 50,
  phase-1 selection by final flip rate, phase-2 selection by validation worst-group
  accuracy on the learner's own groups; rows ERM, GroupDRO with the official "human"
  environments (the two colour-noise environments), with the planted groups (colour
  disagrees with label), and with XRM's groups.
- ``features`` (``--features file.npz|features.pt``) and ``folder`` (``--metadata CSV`` +
  ``--encoder model.keras``: images are encoded once and cached): the real benchmarks on
  precomputed features. ``--recipe quick`` (default) is the one-minute recipe; ``--recipe
  search`` is the ResNet-feature protocol (linear head with zero-initialised weights and
  bias, SGD momentum 0.9, 5000 steps, batch ``2**U(5,7)``).

The table reports validation worst-group accuracy on the groups used for selection and test
average / worst-group accuracy on the *true* test groups (for ColorDigits the planted ones;
the official ColorMNIST test groups are all zeros, i.e. worst-class accuracy). A PNG with
the flip rate over training of every phase-1 run and the test worst-group accuracy per row
is written to ``--out-dir`` with a JSON of all numbers.
"""

import argparse
import json
import os
import time

import keras
import numpy as np

from keras_jepa.models.xrm.data import (
    load_feature_arrays,
    load_images,
    make_color_digits,
    make_spurious_features,
    read_group_metadata,
    save_feature_arrays,
)
from keras_jepa.models.xrm.discovery import (
    run_xrm,
    search_group_robust,
    search_xrm,
    train_group_robust,
)
from keras_jepa.models.xrm.groups import group_agreement

DATASETS = ("synthetic", "color_digits", "features", "folder")


def _linear(num_classes, use_bias):
    return keras.Sequential(
        [keras.layers.Dense(num_classes, use_bias=use_bias, kernel_initializer="zeros")]
    )


def _mlp(num_classes, width=390):
    # Official ColorMNIST MLP: Xavier-uniform kernels, zero biases (the zero init of the last
    # layer is overwritten by the Xavier loop in networks.py, so it is Xavier too).
    return keras.Sequential(
        [
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(num_classes),
        ]
    )


def _load_dataset(dataset, seed, features=None, metadata=None, image_root=None,
                  encoder=None, image_size=224, crop="resize_then_crop", out_dir=None,
                  log=print):
    if dataset == "synthetic":
        return make_spurious_features(seed=seed), "Synthetic spurious Gaussian"
    if dataset == "color_digits":
        return make_color_digits(seed=seed), "ColorDigits (ColorMNIST recipe on sklearn digits)"
    if dataset == "features":
        if not features:
            raise ValueError("--dataset features needs --features PATH (.npz or features.pt).")
        return load_feature_arrays(features), f"Features from {features}"
    if dataset == "folder":
        if not metadata or not encoder:
            raise ValueError("--dataset folder needs --metadata CSV and --encoder MODEL.keras.")
        cache = os.path.join(out_dir, "features.npz") if out_dir else None
        if cache and os.path.exists(cache):
            log(f"using cached features {cache}")
            return load_feature_arrays(cache), f"Folder {metadata} (cached features)"
        meta = read_group_metadata(metadata, image_root=image_root)
        model = keras.models.load_model(encoder)
        data = {}
        for split, values in meta.items():
            log(f"encoding {len(values['paths'])} {split} images with {encoder}")
            feats = []
            for start in range(0, len(values["paths"]), 256):
                images = load_images(values["paths"][start : start + 256], image_size, crop)
                out = np.asarray(model.predict(images, verbose=0))
                if out.ndim > 2:  # token maps: average all but the channel axis
                    out = out.reshape(len(out), -1, out.shape[-1]).mean(1)
                feats.append(out)
            data[split] = {"x": np.concatenate(feats).astype("float32"),
                           "y": values["y"], "m": values["m"]}
        if cache:
            save_feature_arrays(cache, data)
        return data, f"Folder {metadata}"
    raise ValueError(f"dataset must be one of {DATASETS}; got {dataset!r}.")


def _zeros_like_m(split):
    return np.zeros_like(split["y"])


def run_benchmark(
    dataset="color_digits",
    recipe=None,
    num_combs=10,
    num_steps=None,
    report_every=50,
    methods=("groupdro",),
    seed=0,
    out_dir=None,
    log=print,
    **data_kwargs,
):
    """Runs phase 1 and phase 2 on one dataset and returns all numbers.

    Args:
        dataset: ``"synthetic"``, ``"color_digits"``, ``"features"`` or ``"folder"``.
        recipe: ``"quick"`` (one-minute recipe, no search) or ``"search"`` (random search);
            default: quick for synthetic/features/folder, search for color_digits.
        num_combs: combinations per search (official 10).
        num_steps: training steps (default: 3000 quick, 1000 ColorDigits, 5000 features).
        report_every: steps between validation reports (model selection points).
        methods: phase-2 learners run with XRM groups besides GroupDRO (``"rwg"``,
            ``"subg"``); GroupDRO and ERM rows are always run.
        seed: data and run seed.
        out_dir: where to write ``xrm_<dataset>.json`` and ``.png`` (none if ``None``).
        log: ``print``-like progress function.
        data_kwargs: ``features``, ``metadata``, ``image_root``, ``encoder``,
            ``image_size``, ``crop`` for the on-disk datasets.

    Returns:
        dict with ``rows`` (``{row name: selected report}``), ``agreement`` (inferred vs
        true groups per split), ``phase1`` (search runs), ``title``, ``seconds``.

    Example:

    >>> out = run_benchmark("synthetic", num_steps=40, report_every=20, log=None)  # doctest: +SKIP
    >>> sorted(out["rows"])[:2]  # doctest: +SKIP
    ['ERM', 'GroupDRO + XRM groups']
    """
    log = log or (lambda *_: None)
    start = time.time()
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    data, title = _load_dataset(dataset, seed, out_dir=out_dir, log=log, **data_kwargs)
    tr, va, te = data["tr"], data["va"], data["te"]
    num_classes = int(max(tr["y"].max(), va["y"].max(), te["y"].max())) + 1
    if recipe is None:
        recipe = "search" if dataset == "color_digits" else "quick"
    if recipe not in ("quick", "search"):
        raise ValueError(f"recipe must be 'quick' or 'search'; got {recipe!r}.")
    if num_steps is None:
        num_steps = {"quick": 3000, "search": 1000 if dataset == "color_digits" else 5000}[recipe]
    log(f"{title}: train {len(tr['y'])}, val {len(va['y'])}, test {len(te['y'])}; "
        f"backend {keras.backend.backend()}; recipe {recipe}, {num_steps} steps")

    # ---------------------------------------------------------------- phase 1
    log("phase 1: XRM twin training")
    if recipe == "quick":
        result = run_xrm(
            tr, va, lambda: _linear(num_classes, use_bias=False),
            lambda: keras.optimizers.SGD(1e-2), num_steps=num_steps, batch_size=-1,
            report_every=report_every, seed=seed,
        )
        phase1 = {"runs": [{"hparams": {"lr": 1e-2, "batch_size": -1},
                            "flip_rate": result["flip_rate"],
                            "degenerate": result["degenerate"],
                            "flip_rate_history": result["flip_rate_history"],
                            "seconds": result["seconds"]}], "best": 0}
        log(f"  flip rate {result['flip_rate']:.3f}, {result['seconds']:.1f} s")
    else:
        if dataset == "color_digits":
            net_type = "mlp"
            make_classifier = lambda h: _mlp(num_classes)  # noqa: E731
            make_optimizer = lambda h: keras.optimizers.Adam(h["lr"], epsilon=1e-8)  # noqa: E731
        else:
            net_type = "resnet"
            make_classifier = lambda h: keras.Sequential(  # noqa: E731
                [keras.layers.Dense(num_classes, kernel_initializer="zeros")])
            make_optimizer = lambda h: keras.optimizers.SGD(h["lr"], momentum=0.9)  # noqa: E731
        search = search_xrm(
            tr, va, make_classifier, make_optimizer, num_combs=num_combs, net_type=net_type,
            num_steps=num_steps, report_every=report_every, seed=seed, log=log,
        )
        result = search["result"]
        phase1 = {k: search[k] for k in ("runs", "best")}
        log(f"  selected combination {search['best']} "
            f"(flip rate {search['runs'][search['best']]['flip_rate']:.3f})")
    m_hat = result["m"]
    agreement = {s: group_agreement(m_hat[s], data[s]["m"], data[s]["y"]) for s in ("tr", "va")}
    for s in ("tr", "va"):
        a = agreement[s]
        log(f"  inferred vs true groups ({s}): accuracy {a['accuracy']:.3f}, precision "
            f"{a['precision']:.3f}, recall {a['recall']:.3f}, ARI {a['ari']:.3f}")

    # ---------------------------------------------------------------- phase 2
    rows_spec = [("ERM", "erm", _zeros_like_m(tr), _zeros_like_m(va))]
    if dataset == "color_digits":
        rows_spec.append(("GroupDRO + official environments", "groupdro", tr["env"], va["env"]))
    elif recipe == "quick":
        rows_spec.append(("GroupDRO + class-only groups", "groupdro", _zeros_like_m(tr),
                          _zeros_like_m(va)))
    rows_spec.append(("GroupDRO + true groups", "groupdro", tr["m"], va["m"]))
    rows_spec.append(("GroupDRO + XRM groups", "groupdro", m_hat["tr"], m_hat["va"]))
    for method in methods:
        if method == "groupdro":
            continue
        if method not in ("rwg", "subg", "erm"):
            raise ValueError(f"methods may hold 'rwg', 'subg', 'groupdro'; got {method!r}.")
        rows_spec.append((f"{method.upper()} + XRM groups", method, m_hat["tr"], m_hat["va"]))

    rows = {}
    for name, method, m_tr, m_va in rows_spec:
        log(f"phase 2: {name}")
        if recipe == "quick":
            out = train_group_robust(
                method, tr, va, lambda: _linear(num_classes, use_bias=False),
                lambda: keras.optimizers.SGD(1e-2), m_tr, m_va, test=te,
                num_steps=num_steps, batch_size=-1, eta=0.1, report_every=report_every,
                seed=seed,
            )
            best = out["best"]
            log(f"  val wga {best['val_wga']:.3f} (step {best['step']}), test wga "
                f"{best['test_wga']:.3f}, {out['seconds']:.1f} s")
        else:
            out = search_group_robust(
                method, tr, va, make_classifier, make_optimizer, m_tr, m_va, test=te,
                num_combs=num_combs, net_type=net_type, num_steps=num_steps,
                report_every=report_every, seed=seed, log=log,
            )
            best = out["selected"]
        rows[name] = best

    seconds = time.time() - start
    report = {"dataset": dataset, "title": title, "recipe": recipe, "num_steps": num_steps,
              "num_combs": num_combs if recipe == "search" else 1,
              "backend": keras.backend.backend(), "agreement": agreement, "rows": rows,
              "phase1": phase1, "planted_fraction": (
                  float(np.mean(tr["m"])) if dataset in ("synthetic", "color_digits") else None),
              "seconds": seconds}
    log(format_table(report))
    if out_dir:
        path = os.path.join(out_dir, f"xrm_{dataset}.json")
        with open(path, "w") as f:
            json.dump(report, f, indent=1, default=float)
        png = plot_report(report, os.path.join(out_dir, f"xrm_{dataset}.png"))
        log(f"wrote {path}" + (f" and {png}" if png else ""))
    return report


def format_table(report):
    """The phase-2 table as text (one line per learner).

    Example:

    >>> row = {"val_wga": 0.7, "test_avg_acc": 0.8, "test_wga": 0.75}
    >>> report = {"title": "toy", "backend": "jax", "recipe": "quick", "seconds": 1.0,
    ...           "agreement": {"tr": {"ari": 1.0, "accuracy": 1.0}},
    ...           "rows": {"GroupDRO + XRM groups": row}}
    >>> print(format_table(report).splitlines()[-2])
    GroupDRO + XRM groups                    0.700     0.800     0.750
    """
    lines = [
        "",
        f"{report['title']} | backend {report['backend']} | recipe {report['recipe']} | "
        f"{report['seconds']:.0f} s",
        "inferred vs true groups: "
        + ", ".join(f"{s} ARI {a['ari']:.3f} (acc {a['accuracy']:.3f})"
                    for s, a in report["agreement"].items()),
        f"{'learner + groups':<36}{'val wga*':>10}{'test avg':>10}{'test wga':>10}",
    ]
    for name, best in report["rows"].items():
        lines.append(f"{name:<36}{best['val_wga']:>10.3f}{best['test_avg_acc']:>10.3f}"
                     f"{best['test_wga']:>10.3f}")
    lines.append("* on the groups each learner was given (the selection metric); test "
                 "numbers on the true test groups.")
    return "\n".join(lines)


def plot_report(report, path):
    """Saves flip rate over steps (phase 1) and test worst-group accuracy per row (phase 2)
    to ``path``; returns the path, or ``None`` without matplotlib.

    Example (``report`` as returned by ``run_benchmark``):

    >>> import os, tempfile
    >>> report = {"title": "toy", "num_steps": 100, "planted_fraction": 0.1,
    ...           "phase1": {"best": 0, "runs": [{"flip_rate_history": [0.05, 0.1]}]},
    ...           "rows": {"ERM": {"test_wga": 0.2}, "GroupDRO + XRM groups": {"test_wga": 0.7}}}
    >>> path = plot_report(report, os.path.join(tempfile.mkdtemp(), "xrm.png"))
    >>> path is None or os.path.getsize(path) > 0
    True
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    runs = report["phase1"]["runs"]
    every = report["num_steps"] / max(len(runs[0]["flip_rate_history"]), 1)
    for k, run in enumerate(runs):
        history = run["flip_rate_history"]
        steps = np.arange(0, len(history) + 1) * every
        history = [0.0] + list(history)
        chosen = k == report["phase1"]["best"]
        left.plot(steps, history, lw=2.5 if chosen else 1, alpha=1 if chosen else 0.5,
                  label=f"comb {k}" + (" (selected)" if chosen else ""))
    if report.get("planted_fraction") is not None:
        left.axhline(report["planted_fraction"], color="k", ls="--", lw=1,
                     label="true minority fraction (train)")
    left.set_xlabel("step")
    left.set_ylabel("flip rate")
    left.set_title("XRM phase 1: fraction of labels flipped")
    left.legend(fontsize=7)
    names = list(report["rows"])
    values = [report["rows"][n]["test_wga"] for n in names]
    right.barh(range(len(names)), values, color="tab:blue")
    right.set_yticks(range(len(names)), names, fontsize=8)
    right.set_xlim(0, 1)
    right.set_xlabel("test worst-group accuracy")
    right.set_title(report["title"], fontsize=9)
    for i, v in enumerate(values):
        right.text(v + 0.01, i, f"{v:.2f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def add_arguments(parser):
    """Adds the program's options to an ``argparse`` parser (used by ``keras-jepa xrm``).

    Example:

    >>> import argparse
    >>> args = add_arguments(argparse.ArgumentParser()).parse_args(["--dataset", "synthetic"])
    >>> args.dataset, args.num_combs, args.recipe
    ('synthetic', 10, None)
    """
    parser.add_argument("--dataset", default="color_digits", choices=DATASETS + ("all",),
                        help="'all' runs synthetic then color_digits (default color_digits)")
    parser.add_argument("--recipe", choices=("quick", "search"), default=None,
                        help="quick: one-minute linear recipe; search: official random "
                        "search (default: search for color_digits, quick otherwise)")
    parser.add_argument("--num-combs", type=int, default=10,
                        help="random hyperparameter combinations per search (official 10)")
    parser.add_argument("--num-steps", type=int, default=None,
                        help="training steps per run (default: the recipe's: 3000 quick, "
                             "1000 color_digits, 5000 feature search)")
    parser.add_argument("--report-every", type=int, default=50,
                        help="steps between validation reports, the model-selection points "
                             "(default 50)")
    parser.add_argument("--methods", default="groupdro",
                        help="comma list of extra phase-2 learners with XRM groups: rwg,subg")
    parser.add_argument("--seed", type=int, default=0, help="data and run seed (default 0)")
    parser.add_argument("--out-dir", default="xrm_out",
                        help="folder for xrm_<dataset>.json and .png (default: xrm_out)")
    parser.add_argument("--features", help="features .npz or official features.pt")
    parser.add_argument("--metadata", help="metadata CSV (filename,y,a,split)")
    parser.add_argument("--image-root", help="folder the CSV filenames are relative to")
    parser.add_argument("--encoder", help="Keras model (.keras) that maps images to features")
    parser.add_argument("--image-size", type=int, default=224,
                        help="--dataset folder: side of the images given to --encoder "
                             "(default 224)")
    parser.add_argument("--crop", default="resize_then_crop",
                        choices=("resize_then_crop", "crop_then_resize", "resize"),
                        help="--dataset folder: how images are brought to --image-size "
                             "(default resize_then_crop)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny settings for a smoke run (2 combinations, 200 steps)")
    return parser


def build_parser():
    """The program's ``argparse`` parser.

    Example:

    >>> build_parser().parse_args(["--quick"]).quick
    True
    """
    return add_arguments(
        argparse.ArgumentParser(
            prog="discover_environments",
            description="XRM: discover environments without group labels, then train "
            "GroupDRO/ERM/RWG/SUBG with them and report worst-group accuracy.",
        )
    )


def run_from_args(args):
    """Runs the program for parsed arguments (``add_arguments``); returns the exit code.

    Example:

    >>> args = build_parser().parse_args(["--dataset", "synthetic", "--quick"])
    >>> run_from_args(args)  # doctest: +SKIP
    0
    """
    datasets = ("synthetic", "color_digits") if args.dataset == "all" else (args.dataset,)
    num_combs, num_steps = args.num_combs, args.num_steps
    if args.quick:
        num_combs, num_steps = 2, num_steps or 200
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    for dataset in datasets:
        run_benchmark(
            dataset, recipe=args.recipe, num_combs=num_combs, num_steps=num_steps,
            report_every=min(args.report_every, num_steps or args.report_every),
            methods=methods, seed=args.seed, out_dir=args.out_dir,
            features=args.features, metadata=args.metadata, image_root=args.image_root,
            encoder=args.encoder, image_size=args.image_size, crop=args.crop,
        )
    return 0


def run(args):
    """Runs the program from parsed arguments (``keras-jepa xrm``)."""
    return run_from_args(args)


def main(argv=None):
    """``python applications/discover_environments.py [options]``; see ``--help``.

    Example:

    >>> main(["--dataset", "synthetic", "--quick", "--out-dir", "xrm_out"])  # doctest: +SKIP
    0
    """
    import sys

    from keras_jepa.programs.runner import script_main

    return script_main(sys.modules[__name__], argv)
