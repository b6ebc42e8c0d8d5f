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
        "demo", help="I-JEPA pretraining on embedded digits + linear probe vs random init"
    )
    demo.add_argument("--image-size", type=int, default=None, help="default: the config's (32)")
    demo.add_argument("--patch-size", type=int, default=None, help="default: the config's")
    demo.add_argument("--depth", type=int, default=None, help="default: the config's")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--epochs", type=int, default=None, help="pretraining epochs")
    demo.add_argument("--output", default=None, help="output folder (default: a temp dir)")
    add_pretrain_arguments(sub.add_parser(
        "pretrain",
        help="pretrain I-JEPA / V-JEPA on a folder of images or videos (rerun to resume)",
    ))
    from keras_jepa.evaluation.xrm_benchmark import add_arguments as add_xrm_arguments

    xrm = sub.add_parser(
        "xrm", help="XRM: discover environments without group labels, then GroupDRO with them"
    )
    add_xrm_arguments(xrm)
    return parser


def add_pretrain_arguments(parser):
    """Adds the ``pretrain`` options to ``parser`` (also used by applications/pretrain_*.py)."""
    from keras_jepa.pretraining import CONFIGS

    parser.add_argument("--config", default="ijepa_tiny_cpu", choices=sorted(CONFIGS),
                        help="named pretraining config (default: ijepa_tiny_cpu)")
    parser.add_argument("--data", required=True,
                        help="folder of images/videos (recursive), or a CSV of video paths")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs (default: the config's)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="per-step batch size (default: the config's per-device size)")
    parser.add_argument("--output", default="jepa_pretraining",
                        help="output folder; rerun the same command to resume")
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--video", action="store_true",
                        help="the data are videos (needs a video config, e.g. vjepa_tiny_cpu)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="data-loading threads")
    parser.add_argument("--tensorboard", action="store_true")
    parser.add_argument("--save-context-encoder", action="store_true",
                        help="save the context encoder instead of the EMA target encoder")
    return parser


def run_pretrain(args):
    """Runs ``keras_jepa.pretraining.pretrain`` from parsed ``pretrain`` arguments."""
    from keras_jepa.pretraining import get_config, pretrain

    config = get_config(args.config)
    if args.video != (config.kind == "video"):
        hint = ("pass --video with a video config (e.g. vjepa_tiny_cpu)" if args.video
                else "drop --video, or use a video config")
        print(f"error: config {args.config!r} is for {config.kind}s; {hint}.", file=sys.stderr)
        return 2
    pretrain(config, args.data, epochs=args.epochs, batch_size=args.batch_size,
             output_dir=args.output, steps_per_epoch=args.steps_per_epoch, seed=args.seed,
             workers=args.workers, tensorboard=args.tensorboard,
             save_target_encoder=not args.save_context_encoder)
    return 0


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


def pretrain_script(default_config, video=False, argv=None, description=None):
    """Entry point of ``applications/pretrain_*.py``: the ``pretrain`` options with another
    default config (and ``--video`` implied for video configs)."""
    parser = add_pretrain_arguments(argparse.ArgumentParser(description=description))
    parser.set_defaults(config=default_config)
    argv = list(sys.argv[1:] if argv is None else argv)
    if video and "--video" not in argv:
        argv.append("--video")
    return run_pretrain(parser.parse_args(argv))


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

        overrides = {
            k: v for k, v in dict(
                image_size=args.image_size, patch_size=args.patch_size, depth=args.depth
            ).items() if v is not None
        }
        demo.run(seed=args.seed, epochs=args.epochs, output_dir=args.output, **overrides)
        return 0
    if args.command == "pretrain":
        return run_pretrain(args)
    return 1


if __name__ == "__main__":
    sys.exit(main())
