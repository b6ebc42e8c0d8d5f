"""The ``keras-jepa`` command: a table of subcommands, each a program of
``keras_jepa.programs`` (a module with ``add_arguments(parser)`` and ``run(args)``).

``--backend`` picks the Keras backend for the run (as ``KERAS_BACKEND`` does). Errors: bad
input prints ``error: <message>`` on stderr and exits with status 2, for every subcommand;
``--debug`` shows the full traceback instead (``keras_jepa.programs.runner``).
"""

import argparse
import importlib
import os
import sys

# subcommand -> (program module, help)
SUBCOMMANDS = {
    "demo": ("demo", "V-JEPA intuitive physics on generated videos (default), or --task "
                     "digits: I-JEPA on embedded digits + linear probe"),
    "presets": ("presets", "list the built-in presets"),
    "convert": ("convert", "convert an official / Hugging Face checkpoint into a keras_jepa "
                           "preset folder"),
    "pretrain": ("pretrain", "pretrain I-JEPA / V-JEPA on a folder of images or videos "
                             "(rerun to resume)"),
    "evaluate": ("evaluate", "frozen-backbone probes (attentive, linear, k-NN) on a labelled "
                             "folder or digits"),
    "intphys": ("intphys", "violation-of-expectation surprise of a V-JEPA on IntPhys, GRASP "
                           "or InfLevel folders (the paper's evaluation)"),
    "xrm": ("xrm", "XRM: discover environments without group labels, then GroupDRO with "
                   "them"),
    "train-llip": ("train_llip", "Llip vs SigLIP on synthetic multi-object captions (or your "
                                 "image-text data)"),
    "plan": ("plan", "V-JEPA 2-AC on a 2-D reaching world: pretrain an encoder, train the "
                     "action-conditioned predictor, plan to image goals (CEM) against random "
                     "and greedy"),
    "train-vedit": ("train_vedit", "VEDIT (flow matching over frozen clip embeddings) against "
                                   "a regressor, on the synthetic procedural benchmark or "
                                   "annotated videos"),
}


def program(command):
    """The program module of ``command``."""
    return importlib.import_module(f"keras_jepa.programs.{SUBCOMMANDS[command][0]}")


def _parser():
    from keras_jepa.programs.runner import DEBUG_HELP, add_debug_argument
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
    for command, (_, text) in SUBCOMMANDS.items():
        subparser = sub.add_parser(command, help=text)
        program(command).add_arguments(subparser)
        # ``--debug`` also works after the subcommand (``keras-jepa pretrain ... --debug``).
        add_debug_argument(subparser, default=argparse.SUPPRESS)
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


def main(argv=None):
    from keras_jepa.programs.runner import run_command

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.backend:
        os.environ.setdefault("KERAS_BACKEND", args.backend)
        _ensure_backend(args.backend)
    return run_command(program(args.command).run, args)


if __name__ == "__main__":
    sys.exit(main())
