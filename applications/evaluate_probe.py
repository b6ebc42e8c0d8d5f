"""Frozen-backbone evaluation: attentive, linear and k-NN probes on a labelled folder.

Examples (any backend: set ``KERAS_BACKEND``)::

    # the embedded digits: I-JEPA pretraining (20 epochs), then every probe, against the
    # same encoder at random init
    python applications/evaluate_probe.py --data digits --pretrain-epochs 20 \
        --compare-random --output probe_digits
    # a folder of images with class subfolders, encoder from a preset directory
    python applications/evaluate_probe.py --data my_images/ --encoder my_run/encoder
    # videos, V-JEPA protocol: 2 temporal segments x 3 spatial views, V-JEPA 2 probe
    python applications/evaluate_probe.py --data my_videos/ --video --encoder my_preset \
        --segments 2 --views 3 --probe-variant vjepa2

The program body lives in ``keras_jepa.programs.evaluate`` so that the installed
``keras-jepa evaluate`` command runs the same code.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_jepa.programs.evaluate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
