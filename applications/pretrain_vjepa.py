"""Pretrain VJEPA on a folder of videos (a thin wrapper of `keras-jepa pretrain`).

Usage::

    python applications/pretrain_vjepa.py --config vjepa_tiny_cpu --data DIR --epochs 10 \
        --batch-size 32 --output runs/vjepa

Rerun the same command to resume from the last finished epoch. Named configs (official and
tiny CPU ones) are in `keras_jepa.pretraining.CONFIGS`; the backend is `KERAS_BACKEND`.
Outputs in `--output`: `encoder/` (a preset of the EMA target encoder,
`VisionTransformer.from_preset(...)`), `log.csv`, `loss.png`, `checkpoints/`, `backup/`.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None):
    """Parses the `keras-jepa pretrain` options (default config: vjepa_tiny_cpu) and runs it."""
    from keras_jepa.cli import add_pretrain_arguments, run_pretrain

    parser = add_pretrain_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]))
    parser.set_defaults(config="vjepa_tiny_cpu")
    argv = list(sys.argv[1:] if argv is None else argv)
    if "vjepa" == "vjepa" and "--video" not in argv:
        argv.append("--video")
    return run_pretrain(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
