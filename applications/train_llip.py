"""Train Llip and its SigLIP baseline with the same towers and budget; report zero-shot
retrieval (caption->image and image->caption recall@1/5) on held-out data.

Examples (any backend: set ``KERAS_BACKEND``)::

    # synthetic multi-object scenes with partial captions (offline; the default budget:
    # 8192 scenes, at least 1200 steps of 64, about 5 minutes on a 2-core CPU with JAX)
    python applications/train_llip.py --output llip_out
    # add the CLIP-loss baselines
    python applications/train_llip.py --models siglip,llip,clip,llip_softmax
    # your own images: a CSV/JSONL of captions next to the images, or webdataset shards
    python applications/train_llip.py --data data/captions.jsonl --image-size 64 --patch-size 8
    python applications/train_llip.py --data shards/000.tar,shards/001.tar

The program body lives in ``keras_jepa.programs.train_llip`` so that the installed
``keras-jepa train-llip`` command runs the same code.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from keras_jepa.programs.train_llip import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
