"""
Title: Intuitive physics with V-JEPA surprise (violation of expectation)
Author: keras_jepa contributors
Date created: 2026/11/26
Description: Generate minimal-set physics videos, score them with the surprise of a V-JEPA,
    and compute the paper's pairwise accuracy, on JAX, PyTorch or TensorFlow.
Accelerator: None (CPU, a few minutes; `KERAS_JEPA_GUIDE_QUICK=1` for a smoke run)
"""

"""
## Introduction

Infants look longer at events that break physics: an object that vanishes behind a screen,
a ball that passes through a wall. "Intuitive physics understanding emerges from
self-supervised pretraining on natural videos" (Garrido et al., 2025) measures the same
*violation of expectation* (VoE) in a V-JEPA: the model watches the first frames of a
window, predicts the representation of the rest, and its **surprise** is the L1 error of
that prediction. A model with intuitive physics is more surprised by the impossible video
of a matched pair.

This guide shows the three pieces keras_jepa provides:

1. `keras_jepa.data.physics_videos`: procedural VoE videos with the IntPhys minimal-set
   design, for seven properties (object permanence, shape and colour constancy,
   continuity, gravity, solidity, inertia);
2. `keras_jepa.evaluation.video_surprise`: the official surprise (sliding windows, context
   lengths, target encoder over the whole window);
3. the official metrics: pairwise accuracy, absolute accuracy, AUROC, bootstrap intervals.
"""

"""
## Setup
"""

import os
import tempfile

import numpy as np

from keras_jepa.data import make_quadruplet, make_voe_dataset, physics_violations
from keras_jepa.evaluation import (
    format_table,
    pairwise_accuracy,
    plot_surprise_pair,
    property_table,
    video_surprise,
)

QUICK = os.environ.get("KERAS_JEPA_GUIDE_QUICK") == "1"
OUT = tempfile.mkdtemp(prefix="intuitive_physics_guide_")

"""
## Minimal sets

Each scene has two histories `A` and `B` that differ only in one property variable, e.g.
an object present or absent behind a screen. Both are possible. The impossible videos are
splices at frame `s`: `A[:s] + B[s:]` and `B[:s] + A[s:]`. So the four videos contain the
same frames, and each (possible, impossible) pair is identical before the splice: no
single-frame statistic can tell them apart.
"""

q = make_quadruplet("object_permanence", seed=0, image_size=32, num_frames=16,
                    occluded=True)
a, b, ab, ba = q["videos"]
s = q["splice"]
print("videos", q["videos"].shape, "splice at frame", s)
print("pair identical before the splice:", bool((a[:s] == ab[:s]).all()))
frames = lambda vs: sorted(f.tobytes() for v in vs for f in v)  # noqa: E731
print("same frames in possible and impossible sets:", frames([a, b]) == frames([ab, ba]))

"""
The generator also returns the key object's ground-truth state per frame. An *oracle*
that checks those states against the law of the property gets every pair right, which is
the ceiling a learned model is measured against.
"""

data = make_voe_dataset(scenes_per_property=2 if QUICK else 4, image_size=32,
                        num_frames=20, seed=1, dtype="uint8")
oracle = {k: np.array([physics_violations(st, p).sum() for st, p in
                       zip(data[f"{k}_states"], data["property"])])
          for k in ("possible", "impossible")}
print("oracle pairwise accuracy:", pairwise_accuracy(oracle["possible"],
                                                     oracle["impossible"]))

"""
## Surprise of a V-JEPA

`video_surprise(model, videos, ...)` takes a `keras_jepa.models.VJEPA` (context encoder,
EMA target encoder, predictor). For every window of `frames_per_clip` frames (stride 2)
and every context length `C`, the context is every token of the first `C` frames and the
target the rest of the window; it returns `(videos, context lengths, windows)`.

Here we score the videos with the tiny V-JEPA of `keras_jepa.programs.demo` at its
initial weights (`keras-jepa demo` pretrains it on possible-only videos and compares the
trained network with the untrained one and a pixel baseline). With released weights, load
the model instead (`keras-jepa intphys --preset ... --data ... --format
intphys|grasp|inflevel`).
"""

from keras_jepa.programs.demo import DEMO_CONFIG, build_demo_model  # noqa: E402

model = build_demo_model(dict(DEMO_CONFIG, depth=1, predictor_depth=1) if QUICK else None)
videos = np.concatenate([data["possible"], data["impossible"]])
surprise = video_surprise(model, videos, frames_per_clip=8, frame_step=2, stride=2,
                          context_lengths=(2, 4, 6), batch_size=32)
print("surprise", surprise.shape)
n = len(data["possible"])

"""
## Metrics

The official metrics compare each possible video with its impossible match. With an
untrained network the pairwise accuracy is at chance: by construction, a model that does
not relate the end of a video to its beginning gets exactly half of each minimal set
right.
"""

table = property_table(surprise[:n], surprise[n:], data["property"],
                       context_lengths=(2, 4, 6), num_bootstrap=200)
print(format_table({"untrained": table}, title="pairwise accuracy (%), avg surprise:"))
print("all properties, untrained:", round(100 * table["all"]["pairwise_avg"], 1))
path = plot_surprise_pair(surprise[0][0], surprise[n][0],
                          os.path.join(OUT, "surprise_pair.png"),
                          title="possible vs impossible (context 2 frames)")
print("plot:", path)

"""
## Going further

- `keras-jepa demo` pretrains the tiny V-JEPA on possible-only videos (9-10 minutes
  on two CPU cores) and prints the per-property and per-condition tables for the trained
  network, the same network untrained, a next-frame-copy pixel baseline and a pixel-space
  predictor trained for the same time.
- `keras_jepa.data.write_voe_dataset` writes the pairs as MP4 in the GRASP layout, and
  `keras_jepa.evaluation.load_voe_pairs` reads IntPhys, GRASP and InfLevel-lab folders.
"""
