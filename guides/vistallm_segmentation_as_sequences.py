"""
Title: Segmentation as a token sequence (VistaLLM)
Author: keras_jepa contributors
Date created: 2026/11/26
Description: Turn masks into short polygon sequences with gradient-aware adaptive sampling,
    then train a small vision-language model to answer referring-segmentation
    instructions with them, on JAX, PyTorch or TensorFlow.
Accelerator: None (CPU; the full run trains a small model for about 10 minutes,
    `KERAS_JEPA_GUIDE_QUICK=1` for a smoke run)
"""

"""
## Introduction

VistaLLM ("Jack of All Tasks, Master of Many", Pramanick et al., CVPR 2024) answers every
task with text, masks included. A mask becomes `<m_st> x1 y1 ... xN yN <m_ed>`: `N`
polygon points per contour, each coordinate normalised to `[0, 1]` and quantised into
1001 bins `<bin_0> ... <bin_1000>` (boxes and points use the same bins).

Which `N` points? *Gradient-aware adaptive sampling*: pre-sample the contour uniformly to
at most 40 points, score each point by its distance to the chord joining its two
neighbours (its "sharpness"), and drop the flattest points until `N` remain, in order.
Corners survive; points along straight edges go. The baseline spaces `N` points evenly
along the contour.

This guide measures how faithfully each sampler keeps a mask, then trains a small
VistaLLM-style model (ViT image tower, instruction-guided image tokenizer, causal text
decoder) with `model.fit` to caption synthetic scenes, box a referred object and segment
it as a polygon sequence.
"""

import os
import time

import keras
import numpy as np

from keras_jepa.models.vistallm import sequences as seq
from keras_jepa.models.vistallm.model import VistaLLM, evaluate_tasks, sequence_loss
from keras_jepa.models.vistallm.scenes import (
    make_scenes,
    random_shape_mask,
    sampling_fidelity,
    scene_examples,
    scene_vocabulary,
)

QUICK = os.environ.get("KERAS_JEPA_GUIDE_QUICK", "0") not in ("0", "")
keras.utils.set_random_seed(0)
print("backend:", keras.backend.backend())

"""
## A mask as tokens

`mask_to_tokens` traces the outer contour(s) of a mask along the pixel boundaries,
samples `N` points and writes the sequence; `tokens_to_mask` fills the decoded polygons
back into a raster (a pixel is in when its centre is inside).
"""

mask = np.zeros((16, 16), bool)
mask[3:12, 2:14] = True
mask[8:12, 6:10] = False  # a notch
tokens = seq.mask_to_tokens(mask, num_points=16)
print("tokens:", " ".join(tokens))
print("IoU of the decoded mask:", round(seq.mask_iou(seq.tokens_to_mask(tokens, mask.shape), mask), 3))

"""
## Adaptive versus uniform sampling

Masks with sharp corners: rotated rectangles, triangles, and a procedurally drawn
four-legged animal silhouette (non-convex, many corners), plus stars. Each mask is
128 x 128; the score is the IoU between the mask and the fill of its `N`-point polygon(s).
When scikit-image is installed (it is not a dependency of keras_jepa), its horse silhouette
(`skimage.data.horse()`, 328 x 400, shipped inside the package) is added as one more row.
"""

SIZE = 128
NUM_MASKS = 6 if QUICK else 40
KINDS = ("rectangle", "triangle", "silhouette", "star")
rng = np.random.default_rng(0)
masks = {kind: [random_shape_mask(kind, SIZE, rng) for _ in range(NUM_MASKS)] for kind in KINDS}
try:
    import skimage.data

    masks["horse"] = [~skimage.data.horse().astype(bool)]  # the horse is drawn in black
    KINDS = KINDS + ("horse",)
except ImportError:
    pass

print(f"\nmean IoU to the true mask ({NUM_MASKS} masks per shape, {SIZE}x{SIZE})")
METHODS = ("adaptive", "adaptive_refined", "uniform")
print(f"{'shape':<12}{'N':>4}{'reference':>11}{'refined':>9}{'uniform':>9}")
table = {}
for kind in KINDS:
    for n in (8, 16, 32):
        table[kind, n] = [sampling_fidelity(masks[kind], n, m) for m in METHODS]
        print(f"{kind:<12}{n:>4}" + "".join(f"{v:>{w}.4f}" for v, w in
                                          zip(table[kind, n], (11, 9, 9))))
for n in (8, 16, 32):
    means = [np.mean([table[k, n][i] for k in ("rectangle", "triangle", "silhouette")])
             for i in range(3)]
    print(f"rect+tri+silhouette N={n}: reference {means[0]:.4f} refined {means[1]:.4f} "
          f"uniform {means[2]:.4f}")

"""
Adaptive sampling spends its budget on corners, which wins whenever `N` is at least
the number of salient corners (rectangles and triangles at every `N`). The reference
algorithm (`"adaptive"`) takes three shortcuts that cost it on shapes with more corners
than `N` (the silhouette and the stars at small `N`): it scores every point once, so a
run of slightly bent points on a smooth stretch can outscore a real corner's neighbours;
it scores the contour as an open chain, so the contour's last point always takes one of
the `N` slots; and its 40-point pre-sampling steps over corners at large `N`.
`"adaptive_refined"` removes the flattest point one at a time, re-scoring its neighbours
after each removal, treats the contour as a loop, and pre-samples at least `4 N` points.

One full run (any backend: this part is numpy) gave, as mean IoU, reference / refined /
uniform: silhouette N=8 0.484 / 0.574 / 0.511, N=16 0.683 / 0.795 / 0.687, N=32
0.878 / 0.931 / 0.853; stars N=8 0.736 / 0.800 / 0.770; scikit-image's horse N=8
0.319 / 0.591 / 0.551, N=16 0.673 / 0.759 / 0.665, N=32 0.849 / 0.878 / 0.843. The refined
sampler beats uniform sampling on every shape and `N`; the reference loses at the smallest
budgets on the shapes with many corners.
"""

"""
## A small vision-language model

Synthetic scenes: 32 x 32 images with two or three coloured shapes (square, triangle,
circle in red, green, blue, yellow), non-overlapping. Every scene gives three kinds of
examples, each an instruction and a text answer:

- `<caption>` -> the objects from left to right, e.g. `red square blue circle`;
- `<box> red square` -> four coordinate bins `x0 y0 x1 y1`;
- `<mask> red square` -> `<m_st> x1 y1 ... x8 y8 <m_ed>` (adaptive sampling, 8 points,
  traced on a 4x finer rendering and rounded to the 32 x 32 pixel corners).

The model: a keras_jepa `VisionTransformer` (patch 8) encodes the image; the
`InstructionGuidedTokenizer` turns its patch tokens into 8 tokens, with learned queries
that read the instruction; a causal decoder of `TransformerBlock`s continues
`[image tokens; instruction; answer]`. Training is teacher forcing with `model.fit`; the
answer is then decoded greedily.

Three choices make this small model learn to localise on a CPU budget:

- **Bins.** The images are 32 x 32 and the points are snapped to pixel corners, so the
  model uses 33 bins (one per corner) instead of 1001; the sequence format is the same.
- **Soft bin targets.** The loss is cross-entropy with Gaussian-smoothed targets on
  coordinate bins (`bin_sigma=1` bin, one pixel): the bins are ordered, and telling the
  model that a near miss beats a far one speeds up learning.
- **Initialisation and learning rate.** The tokenizer's queries and kernels start at std
  `hidden_dim ** -0.5` (VistaLLM's `tokenizer_init_std` default), not the usual 0.02:
  at width 64, 0.02 leaves every query attending uniformly to all patches, so no position
  reaches the decoder. In a diagnostic run (one object per image, box task, 315 steps
  at lr 3e-3) the box IoU was 0.12 with the usual init and 0.34 with the wider one. The peak learning rate is 1e-3: at 3e-3 the loss
  sat on a plateau (the model predicted a typical box wherever the referred object was) for
  over 3,000 steps. At 1e-3 it left the plateau after about 600.
"""

NUM_TRAIN = 24 if QUICK else 2000
NUM_TEST = 8 if QUICK else 150
EPOCHS = 1 if QUICK else 12
vocab = scene_vocabulary(num_bins=33)
train_scenes = make_scenes(NUM_TRAIN, image_size=32, seed=1)
test_scenes = make_scenes(NUM_TEST, image_size=32, seed=2)
x_train, y_train, _ = scene_examples(train_scenes, vocab, num_points=8, snap_to_pixels=True)
x_test, y_test, meta_test = scene_examples(
    test_scenes, vocab, num_points=8, target_length=y_train.shape[1], snap_to_pixels=True
)
print(f"\n{len(y_train)} training and {len(y_test)} test examples")
for i in range(3):
    print(" ", vocab.decode(x_train["instruction"][i]), "->", " ".join(vocab.decode(y_train[i])))

model = VistaLLM(
    len(vocab),
    image_size=32,
    patch_size=8,
    hidden_dim=64,
    encoder_depth=2,
    decoder_depth=3,
    num_heads=4,
    num_queries=8,
    target_length=y_train.shape[1],
)
BATCH = 32
steps = EPOCHS * int(np.ceil(len(y_train) / BATCH))
schedule = keras.optimizers.schedules.CosineDecay(
    0.0, steps, warmup_target=1e-3, warmup_steps=max(1, min(100, steps // 10))
)
model.compile(
    keras.optimizers.AdamW(schedule, weight_decay=0.05),
    sequence_loss(vocab, bin_sigma=1.0),
)
start = time.time()
history = model.fit(x_train, y_train, batch_size=BATCH, epochs=EPOCHS, verbose=2)
print(f"training: {steps} steps in {time.time() - start:.0f} s")

start = time.time()
generated = model.generate(x_test, vocab)
print(f"greedy decoding of {len(y_test)} answers: {time.time() - start:.0f} s")
scores = evaluate_tasks(generated, meta_test, vocab, (32, 32))
for i in range(4):
    print(" ", vocab.decode(x_test["instruction"][i]), "->", " ".join(vocab.decode(generated[i])))

"""
The baseline answers every referring-mask instruction with the scene's largest object.
The model is useful only where it beats it. In the full run (JAX, seed 0, 2,000 training
scenes, 12 epochs = 4,512 steps of 32, 550 s on one core of a 2-core CPU) the model
learned to pick the referred object and outline it. On the 150 test scenes (914 answers):
referring-mask mIoU 0.495 (cIoU 0.529) against 0.393 (0.295) for the largest-object
baseline, and box mean IoU 0.710 with 85% of boxes at IoU >= 0.5. An earlier version
(1,000 scenes, 1001 bins, peak lr 3e-3, tokenizer init 0.02) stayed at mIoU 0.058 and
box IoU 0.12: it had learned the answer formats but not where the objects are. The training loss is still
falling at the end, so a longer run should do better.
"""

print(f"box: mean IoU {scores['box_miou']:.3f}, accuracy@0.5 {scores['box_acc50']:.3f}")
print(
    f"referring mask: model mIoU {scores['mask_miou']:.3f} (cIoU {scores['mask_ciou']:.3f}), "
    f"largest-object baseline mIoU {scores['baseline_miou']:.3f} "
    f"(cIoU {scores['baseline_ciou']:.3f})"
)
