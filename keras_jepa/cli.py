"""The ``keras-jepa`` command.

Subcommands: ``presets`` (list the built-in presets), ``convert`` (official or Hugging
Face checkpoint -> preset folder), ``demo`` (the main job on embedded
data), ``xrm`` (discover environments with XRM, then train GroupDRO with them), ``train-llip``
(Llip against SigLIP, zero-shot retrieval). ``--backend`` picks the Keras backend for this run (same as ``KERAS_BACKEND``).

Errors: bad input (a missing file or folder, a malformed file, an unknown name, options
that do not go together) prints ``error: <message>`` on stderr and exits with status 2, for
every subcommand; ``--debug`` shows the full traceback instead. Other exceptions are bugs
and keep their traceback.
"""

import argparse
import os
import pickle
import sys
import zipfile

DEBUG_HELP = "on an error, show the full traceback instead of a one-line message"


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
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command")

    presets = sub.add_parser("presets", help="list the built-in presets")
    presets.add_argument("--filter", default="", help="only names containing this text")
    add_convert_arguments(sub.add_parser(
        "convert",
        help="convert an official / Hugging Face checkpoint into a keras_jepa preset folder",
    ))

    demo = sub.add_parser(
        "demo", help="V-JEPA intuitive physics on generated videos (default), or "
                     "--task digits: I-JEPA on embedded digits + linear probe"
    )
    demo.add_argument("--task", choices=["physics", "digits"], default="physics",
                      help="physics: V-JEPA pretraining on possible-only videos, then "
                           "violation-of-expectation surprise (default); digits: I-JEPA")
    demo.add_argument("--steps", type=int, default=None,
                      help="pretraining steps, --task physics only (default: the demo's)")
    demo.add_argument("--epochs", type=int, default=None,
                      help="pretraining epochs, --task digits only (default: the config's; "
                           "the physics task uses --steps)")
    demo.add_argument("--image-size", type=int, default=None,
                      help="frame / image side in pixels (default: the task's, 32)")
    demo.add_argument("--patch-size", type=int, default=None,
                      help="ViT patch size (default: the task's: 8 physics, 4 digits)")
    demo.add_argument("--depth", type=int, default=None,
                      help="ViT encoder depth (default: the task's: 2 physics, 4 digits)")
    demo.add_argument("--seed", type=int, default=0,
                      help="seeds the data, weights, masks and batches (default 0)")
    demo.add_argument("--output", default=None,
                      help="output folder (default: ./keras_jepa_demo; --task digits: "
                           "./keras_jepa_demo_digits)")
    add_pretrain_arguments(sub.add_parser(
        "pretrain",
        help="pretrain I-JEPA / V-JEPA on a folder of images or videos (rerun to resume)",
    ))
    from keras_jepa.evaluation.xrm_benchmark import add_arguments as add_xrm_arguments

    from keras_jepa.evaluation.voe_benchmark import add_arguments as add_voe_arguments

    add_voe_arguments(sub.add_parser(
        "intphys", help="violation-of-expectation surprise of a V-JEPA on IntPhys, GRASP "
                        "or InfLevel folders (the paper's evaluation)"
    ))
    xrm = sub.add_parser(
        "xrm", help="XRM: discover environments without group labels, then GroupDRO with them"
    )
    add_xrm_arguments(xrm)
    from keras_jepa.evaluation.probe_benchmark import add_arguments as add_evaluate_arguments

    add_evaluate_arguments(sub.add_parser(
        "evaluate",
        help="frozen-backbone probes (attentive, linear, k-NN) on a labelled folder or digits",
    ))
    from keras_jepa.llip_training import add_arguments as add_llip_arguments

    add_llip_arguments(sub.add_parser(
        "train-llip",
        help="Llip vs SigLIP on synthetic multi-object captions (or your image-text data)",
    ))
    # ``--debug`` also works after the subcommand (``keras-jepa pretrain ... --debug``).
    for subparser in sub.choices.values():
        add_debug_argument(subparser, default=argparse.SUPPRESS)
    return parser


def add_debug_argument(parser, default=False):
    """Adds ``--debug`` (re-raise errors with their traceback) to ``parser``."""
    parser.add_argument("--debug", action="store_true", default=default, help=DEBUG_HELP)
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
                        help="output folder (default: ./jepa_pretraining). Rerunning the "
                             "same command resumes; other arguments are refused unless "
                             "--overwrite is given")
    parser.add_argument("--overwrite", action="store_true",
                        help="start fresh: delete the previous run's files in --output "
                             "(backup, checkpoints, logs, encoder; nothing else) first")
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help="optimizer steps per epoch (default: one pass over the data)")
    parser.add_argument("--video", action="store_true",
                        help="the data are videos (needs a video config, e.g. vjepa_tiny_cpu)")
    parser.add_argument("--short-videos", choices=["skip", "pad"], default="skip",
                        help="videos too short for one clip: skip them (default), or pad "
                             "them with their last frame (the official loader)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the weights, the data order and augmentations, and the "
                             "masks (default 0)")
    parser.add_argument("--workers", type=int, default=1,
                        help="data-loading threads (default 1)")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write TensorBoard logs to OUTPUT/tensorboard")
    parser.add_argument("--save-context-encoder", action="store_true",
                        help="save the context encoder instead of the EMA target encoder")
    return parser


def add_convert_arguments(parser):
    """Adds the ``convert`` options to ``parser``."""
    parser.add_argument("checkpoint",
                        help="official .pth.tar/.pt file, or a Hugging Face folder / "
                             ".safetensors file (config.json beside it)")
    parser.add_argument("output", help="preset folder to write")
    parser.add_argument("--arch", default=None,
                        help="official preset name (keras-jepa presets), pretraining config "
                             "name, or JSON file; optional for Hugging Face folders")
    parser.add_argument("--encoder", choices=["target", "context"], default="target",
                        help="encoder kept by --encoder-only, and the features encoder "
                             "of a full model (default: target, the EMA encoder)")
    parser.add_argument("--encoder-only", action="store_true",
                        help="write a VisionTransformer backbone instead of the full model")
    parser.add_argument("--non-strict", action="store_true",
                        help="skip (and list) checkpoint keys the model has no place for")
    parser.add_argument("--allow-missing", action="store_true",
                        help="keep the model's initial values for weights the checkpoint "
                             "lacks (e.g. a checkpoint without a predictor) instead of failing")
    parser.add_argument("--probe", action="store_true",
                        help="the checkpoint is an attentive probe (V-JEPA *-probe.pth.tar, "
                             "V-JEPA 2 evals/*.pt, or a Hugging Face classifier folder)")
    parser.add_argument("--index", type=int, default=0,
                        help="--probe: which classifier of a V-JEPA 2 list (default 0)")
    parser.add_argument("--num-heads", type=int, default=16,
                        help="--probe: attention heads (16 in every release)")
    return parser


# Python-API advice in converter messages, and the ``convert`` flag that does the same.
_CONVERT_FLAGS = (
    ("allow_missing=True", "--allow-missing"),
    ("strict=False", "--non-strict"),
    ("encoder_only=True", "--encoder-only"),
)


def _with_convert_flags(message):
    """``message`` with each Python argument it recommends followed by its CLI flag."""
    for argument, flag in _CONVERT_FLAGS:
        if argument in message and flag not in message:
            message = message.replace(argument, f"{argument} (CLI: {flag})")
    return message


def run_convert(args):
    """Runs ``keras_jepa.applications.convert_checkpoint`` from parsed arguments."""
    from keras_jepa.applications.converters import convert_checkpoint, load_probe_checkpoint

    try:
        if args.probe:
            from keras_jepa.utils.presets import save_preset

            if args.allow_missing:
                raise ValueError("--allow-missing does not apply to --probe: a probe file "
                                 "must hold every weight of the classifier.")
            probe = load_probe_checkpoint(args.checkpoint, num_heads=args.num_heads,
                                          index=args.index, strict=not args.non_strict)
            save_preset(probe, args.output)
            print(f"saved {probe.variant} probe ({probe.num_classes} classes, depth "
                  f"{probe.depth}) to {args.output}")
            return 0
        convert_checkpoint(args.checkpoint, args.output, arch=args.arch,
                           encoder=args.encoder, encoder_only=args.encoder_only,
                           strict=not args.non_strict, allow_missing=args.allow_missing)
    except ValueError as error:
        # The converters speak to Python callers; name the flags too. ``main`` reports it.
        message = _with_convert_flags(str(error))
        if message == str(error):
            raise
        raise ValueError(message) from error
    return 0


def run_pretrain(args):
    """Runs ``keras_jepa.pretraining.pretrain`` from parsed ``pretrain`` arguments."""
    from keras_jepa.pretraining import get_config, pretrain

    config = get_config(args.config)
    if args.video != (config.kind == "video"):
        hint = ("pass --video with a video config (e.g. vjepa_tiny_cpu)" if args.video
                else "drop --video, or use a video config")
        raise ValueError(f"config {args.config!r} is for {config.kind}s; {hint}.")
    if args.short_videos != "skip" and config.kind != "video":
        raise ValueError("--short-videos applies to videos (--video with a video config).")
    pretrain(config, args.data, epochs=args.epochs, batch_size=args.batch_size,
             output_dir=args.output, steps_per_epoch=args.steps_per_epoch, seed=args.seed,
             workers=args.workers, tensorboard=args.tensorboard,
             save_target_encoder=not args.save_context_encoder,
             overwrite=args.overwrite, short_videos=args.short_videos)
    return 0


def run_demo(args):
    """Runs the ``demo`` subcommand: the physics demo or, with ``--task digits``, I-JEPA on
    the embedded digits."""
    overrides = {
        k: v for k, v in dict(
            image_size=args.image_size, patch_size=args.patch_size, depth=args.depth
        ).items() if v is not None
    }
    if args.task == "physics":
        if args.epochs is not None:
            raise ValueError("--epochs applies to --task digits; use --steps")
        from keras_jepa.physics_demo import run_demo as run_physics

        run_physics(steps=args.steps, seed=args.seed, output_dir=args.output, **overrides)
        return 0
    if args.steps is not None:
        raise ValueError("--steps applies to --task physics; use --epochs")
    from keras_jepa import demo

    demo.run(seed=args.seed, epochs=args.epochs, output_dir=args.output, **overrides)
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
        raise ValueError(f"no preset name contains {text!r}; run `keras-jepa presets` to "
                         "list them all.")
    width = max(len(name) for name, _ in rows)
    print(f"{'name':<{width}}  {'class':<19}  weights  description")
    listed = False
    for name, entry in rows:
        if entry.get("source"):
            weights = "yes" if entry.get("supported", True) else "listed"
        else:
            weights = "yes" if entry.get("handle") else "no"
        listed = listed or weights == "listed"
        print(f"{name:<{width}}  {entry.get('class') or '-':<19}  {weights:<7}  "
              f"{entry['description']}")
    if listed:
        print("\nweights 'listed': a released checkpoint that keras_jepa cannot load yet "
              "(class '-': no keras_jepa class for the whole model); its description says "
              "what can be converted.")
    return 0


# --------------------------------------------------------------------------- errors


def _user_errors():
    """Exception types that mean bad input (a path, a file, a name, option values), not a
    bug: ``ValueError`` (this package's checks, malformed JSON/CSV, bad text encodings),
    ``OSError`` (missing, unreadable or unwritable files and folders, corrupt HDF5), and
    malformed checkpoints or YAML. ``KeyError``, ``TypeError``, ``RuntimeError`` and the
    rest keep their traceback: this package reports bad input as ``ValueError``."""
    types = [ValueError, OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile]
    yaml = sys.modules.get("yaml")  # only raised once loaded
    if yaml is not None and hasattr(yaml, "YAMLError"):
        types.append(yaml.YAMLError)
    return tuple(types)


def error_message(error):
    """The one-line text of a user-input error (``OSError`` without the ``[Errno N]``)."""
    if isinstance(error, OSError) and error.strerror and error.filename:
        return f"{error.strerror}: {error.filename!r}"
    return str(error) or type(error).__name__


def run_command(function, args):
    """Runs ``function(args)``; bad input (see :func:`_user_errors`) prints ``error:
    <message>`` on stderr and returns 2 (re-raised with ``args.debug``). Returns the exit
    status (0 when ``function`` returns ``None``)."""
    try:
        code = function(args)
    except _user_errors() as error:
        if getattr(args, "debug", False):
            raise
        print(f"error: {error_message(error)}", file=sys.stderr, flush=True)
        return 2
    return 0 if code is None else code


def pretrain_script(default_config, video=False, argv=None, description=None):
    """Entry point of ``applications/pretrain_*.py``: the ``pretrain`` options with another
    default config (and ``--video`` implied for video configs)."""
    parser = add_pretrain_arguments(argparse.ArgumentParser(description=description))
    add_debug_argument(parser)
    parser.set_defaults(config=default_config)
    argv = list(sys.argv[1:] if argv is None else argv)
    if video and "--video" not in argv:
        argv.append("--video")
    return run_command(run_pretrain, parser.parse_args(argv))


def _dispatch(args):
    if args.command == "convert":
        return run_convert(args)
    if args.command == "presets":
        return _list_presets(args.filter)
    if args.command == "xrm":
        from keras_jepa.evaluation.xrm_benchmark import run_from_args

        return run_from_args(args)
    if args.command == "evaluate":
        from keras_jepa.evaluation.probe_benchmark import run_from_args as run_evaluate

        run_evaluate(args)
        return 0
    if args.command == "intphys":
        from keras_jepa.evaluation.voe_benchmark import run_from_args as run_voe

        return run_voe(args)
    if args.command == "demo":
        return run_demo(args)
    if args.command == "pretrain":
        return run_pretrain(args)
    if args.command == "train-llip":
        from keras_jepa.llip_training import run_from_args as run_llip

        return run_llip(args)
    return 1


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.backend:
        os.environ.setdefault("KERAS_BACKEND", args.backend)
        _ensure_backend(args.backend)
    return run_command(_dispatch, args)


if __name__ == "__main__":
    sys.exit(main())
