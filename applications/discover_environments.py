"""Discover environments with XRM, then train group-robust classifiers with them.

Phase 1 trains XRM twins (no group labels) and labels every train/validation example by
cross-mistakes; phase 2 trains ERM and GroupDRO (optionally RWG/SUBG) with no groups, the
true groups and the XRM groups, selects each by validation worst-group accuracy on its own
groups, and prints average and worst-group test accuracy. A JSON of every number and a PNG
(flip rate over training for each phase-1 run, test worst-group accuracy per learner) go to
``--out-dir``.

Examples (any backend: set ``KERAS_BACKEND``)::

    # offline acceptance run: the synthetic set, then ColorDigits with the official search
    python applications/discover_environments.py --dataset all --out-dir xrm_out
    # smoke run (2 combinations, 200 steps)
    python applications/discover_environments.py --dataset color_digits --quick
    # Waterbirds on the official precomputed ResNet-50 features (download.py)
    python applications/discover_environments.py --dataset features \
        --features data/waterbirds/features.pt
    # a Waterbirds/CelebA folder + metadata CSV, encoded by your own Keras model
    python applications/discover_environments.py --dataset folder \
        --metadata data/waterbirds/metadata_waterbirds.csv \
        --image-root data/waterbirds/waterbird_complete95_forest2water2 \
        --encoder my_encoder.keras

The program body lives in ``keras_jepa.programs.xrm`` so that the installed
``keras-jepa xrm`` command runs the same code.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_jepa.programs.xrm import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
