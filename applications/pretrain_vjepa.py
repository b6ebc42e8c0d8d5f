"""Pretrain VJEPA on a folder of videos (a thin wrapper of `keras-jepa pretrain`).

Usage::

    python applications/pretrain_vjepa.py --config vjepa_tiny_cpu --data DIR --epochs 10 \
        --batch-size 32 --output runs/vjepa

Rerun the same command to resume from the last finished epoch; a rerun with other arguments
is refused (`--overwrite` starts fresh). Named configs (official and tiny CPU ones) are in
`keras_jepa.models.jepa.recipes.CONFIGS`; the backend is `KERAS_BACKEND`. Outputs in `--output`:
`encoder/` (a preset of the EMA target encoder, `VisionTransformer.from_preset(...)`),
`log.csv`, `loss.png`, `checkpoints/`, `backup/`, `run_identity.json`.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

if __name__ == "__main__":
    from keras_jepa.programs.pretrain import script as pretrain_script

    sys.exit(pretrain_script("vjepa_tiny_cpu", video=True, description=__doc__.splitlines()[0]))
