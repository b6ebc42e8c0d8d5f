"""The ``keras-jepa`` command.

Subcommands: ``presets`` (list the built-in presets), ``demo`` (the main job on embedded
data), ``xrm`` (discover environments with XRM, then train GroupDRO with them). ``--backend`` picks the Keras backend for this run (same as ``KERAS_BACKEND``).
"""

import argparse
import os
import sys


def _parser():
    from keras_jepa.version import __version__

    parser = argparse.ArgumentParser(
        prog="keras-jepa",
        description="JEPA-family self-supervised learning for Keras 3 (JAX, PyTorch, TensorFlow).",
    )
    parser.add_argument("--version", action="version", version=f"keras-jepa {__version__}")
    parser.add_argument(
        "--backend", choices=["jax", "torch", "tensorflow"],
        help="Keras backend for this run (default: $KERAS_BACKEND, else Keras's choice)",
    )
    sub = parser.add_subparsers(dest="command")

    presets = sub.add_parser("presets", help="list the built-in presets")
    presets.add_argument("--filter", default="", help="only names containing this text")

    demo = sub.add_parser(
        "demo", help="features of embedded images + linear probe (runs in about a minute on CPU)"
    )
    demo.add_argument("--image-size", type=int, default=32)
    demo.add_argument("--patch-size", type=int, default=8)
    demo.add_argument("--depth", type=int, default=6)
    demo.add_argument("--seed", type=int, default=0)
    from keras_jepa.evaluation.xrm_benchmark import add_arguments as add_xrm_arguments

    xrm = sub.add_parser(
        "xrm", help="XRM: discover environments without group labels, then GroupDRO with them"
    )
    add_xrm_arguments(xrm)
    return parser


def _ensure_backend(backend):
    """Re-executes the command under ``backend`` if Keras was imported with another one."""
    if backend is None:
        return
    import keras

    if keras.backend.backend() != backend:
        env = dict(os.environ, KERAS_BACKEND=backend)
        args = [sys.executable, "-m", "keras_jepa.cli"] + sys.argv[1:]
        os.execve(sys.executable, args, env)


def _list_presets(text):
    from keras_jepa.applications.preset_registry import PRESETS

    rows = [(name, e) for name, e in sorted(PRESETS.items()) if text in name]
    if not rows:
        print(f"No preset name contains {text!r}.")
        return 1
    width = max(len(name) for name, _ in rows)
    print(f"{'name':<{width}}  {'class':<18}  weights  description")
    for name, entry in rows:
        weights = "yes" if entry.get("handle") else "no"
        print(f"{name:<{width}}  {entry['class']:<18}  {weights:<7}  {entry['description']}")
    return 0


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 0
    if args.backend:
        os.environ.setdefault("KERAS_BACKEND", args.backend)
        _ensure_backend(args.backend)
    if args.command == "presets":
        return _list_presets(args.filter)
    if args.command == "xrm":
        from keras_jepa.evaluation.xrm_benchmark import run_from_args

        return run_from_args(args)
    if args.command == "demo":
        from keras_jepa import demo

        demo.run(
            image_size=args.image_size, patch_size=args.patch_size, depth=args.depth,
            seed=args.seed,
        )
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
