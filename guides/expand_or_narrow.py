"""
Title: Expand or narrow the last block of a JEPA encoder
Author: keras_jepa contributors
Date created: 2026/11/26
Description: Sweep the width of the encoder's last block (Bordes et al.'s "expand or narrow
    your representation" knob), pretrain I-JEPA at each width on the embedded digits, and
    compare frozen probes and activation sparsity.
Accelerator: None (CPU minutes; `KERAS_JEPA_GUIDE_QUICK=1` runs a smoke version)
"""

"""
## Introduction

Bordes, Lavoie, Balestriero, Ballas and Vincent ("A surprisingly simple technique to control
the pretraining bias for better transfer: Expand or Narrow your representation") change one
number: the dimension `D` of the backbone's last block, while the projector that the
pretext loss sees keeps its width `K`. The gradient that reaches the representation `f`
through a linear map `z = W f` (`W` of shape `K x D`) lies in the row space of `W`, of rank
at most `min(D, K)`. With `D >> K` most directions of `f` receive no gradient from the
pretext loss, which shields the representation from the pretext task's bias. They report
that expanding `D` improves self-supervised linear probes and transfer, and makes
representations sparser and more linearly separable; narrowing helps supervised
in-distribution accuracy.

In I-JEPA the map that plays `W` is the predictor's input embedding (`predictor_embed`,
`D -> K` with `K` the predictor width). `VisionTransformer(output_dim=D)` widens or narrows
only the last block: its MLP writes `D` channels, its residual stream goes through a linear
`shortcut` (as a ResNet stage that changes width does) and the final LayerNorm has width
`D`. Everything else stays the same. This guide sweeps `D` around the model width, pretrains
each encoder with the same recipe, and measures:

- the held-out accuracy of frozen probes (linear on mean-pooled tokens, k-NN, attentive);
- two sparsity statistics of the mean-pooled features: the Hoyer sparsity
  `(sqrt(D) - |x|_1 / |x|_2) / (sqrt(D) - 1)` (0 for a flat vector, 1 for a one-hot one)
  and the fraction of near-zero entries (`|x| < 0.1 * std`).

A caveat on sparsity: the paper's ResNets end in a ReLU, so their features have exact zeros;
a ViT ends in a LayerNorm, so we use the continuous measures above.
"""

"""
## Setup
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from keras_jepa.data import image_transform, load_digits
from keras_jepa.evaluation import extract_features
from keras_jepa.programs.evaluate import run_probes
from keras_jepa.models import VisionTransformer
from keras_jepa.models.jepa.recipes import (
    build_mask_sampler,
    build_model,
    build_optimizer,
    get_config,
    schedule_steps,
)
from keras_jepa.data.arrays import ArrayImageDataset, normalize_images

QUICK = os.environ.get("KERAS_JEPA_GUIDE_QUICK") == "1"
print("backend:", keras.backend.backend())

"""
## Configuration

The tiny I-JEPA recipe (`ijepa_tiny_cpu`: masks, lr and weight-decay schedules, EMA ramp) with
a 64-wide, 2-block encoder and a 64-wide predictor, so `K = 64`. The last block's width
takes the values in `widths`: narrower than, equal to and wider than `K`.
"""

config = get_config("ijepa_tiny_cpu").replace(depth=2, predictor_depth=2)
widths = [16, 64, 256]
epochs, probe_epochs, probes = 15, 15, ("linear", "knn", "attentive")
if QUICK:
    config = config.replace(hidden_dim=32, num_heads=2, depth=1, predictor_dim=16,
                            predictor_heads=2, predictor_depth=1)
    widths, epochs, probe_epochs, probes = [8, 64], 1, 2, ("linear", "knn")
print(f"width {config.hidden_dim}, depth {config.depth}, predictor width K = "
      f"{config.predictor_dim}; last-block widths {widths}")

images, labels = load_digits(image_size=config.image_size)
order = np.random.RandomState(0).permutation(len(images))
train_idx, test_idx = order[:1350], order[1350:]
if QUICK:
    train_idx, test_idx = order[:128], order[128:256]
inputs = normalize_images(images)

"""
## One run per width

Each run builds the encoder with `output_dim=width`, wraps it in the I-JEPA model (the
predictor reads `encoder.output_width`), trains with `fit`, then extracts the **target**
encoder's tokens once and trains the probes on them (`keras_jepa.evaluation.run_probes`).
The attentive probe uses a learning rate of 1e-2 here, not the official 1e-3: with only
about 600 probe steps, 1e-3 leaves the probe under-trained on narrow features (at `D = 16`
it scored 7.8%, chance level, while the linear probe reached 79%; on random 16-wide
features its training accuracy stayed near 30%), which would measure the probe's schedule
instead of the representation.
"""


def sparsity(features):
    x = np.abs(features)
    d = x.shape[-1]
    l1, l2 = x.sum(-1), np.sqrt((x**2).sum(-1)) + 1e-12
    hoyer = float(np.mean((np.sqrt(d) - l1 / l2) / (np.sqrt(d) - 1)))
    near_zero = float(np.mean(x < 0.1 * features.std()))
    return hoyer, near_zero


def run(width):
    keras.utils.set_random_seed(0)
    encoder = VisionTransformer(
        image_size=config.image_size, patch_size=config.patch_size,
        hidden_dim=config.hidden_dim, depth=config.depth, num_heads=config.num_heads,
        sincos_order=config.sincos_order, output_dim=width)
    dataset = ArrayImageDataset(
        images[train_idx], 64 if not QUICK else 32,
        transform=image_transform(config.image_size, scale=config.crop_scale),
        mask_sampler=build_mask_sampler(config, seed=0), seed=0)
    steps = schedule_steps(config, epochs, len(dataset))
    model = build_model(config, encoder=encoder, ema_steps=steps["ema_steps"])
    model.compile(optimizer=build_optimizer(config, steps["total_steps"],
                                            steps["warmup_steps"]))
    start = time.time()
    history = model.fit(dataset, epochs=epochs, shuffle=False, verbose=0,
                        callbacks=[dataset.epoch_callback()])
    tokens, _ = extract_features(model.target_encoder, inputs, batch_size=256, pool=None,
                                 verbose=0)
    feats = {"train": tokens[train_idx], "val": tokens[test_idx]}
    labs = {"train": labels[train_idx], "val": labels[test_idx]}
    rows = run_probes(feats, labs, probes=probes, epochs=probe_epochs, batch_size=32,
                      num_heads=2, lr=1e-2)
    hoyer, near_zero = sparsity(tokens[test_idx].mean(axis=1))
    result = {"width": width, "loss": history.history["loss"][-1], "hoyer": hoyer,
              "near_zero": near_zero, "seconds": time.time() - start,
              **{r["probe"]: r["top1"] for r in rows}}
    print(f"D = {width:4d}: " + ", ".join(
        f"{p} {100 * result[p]:.1f}%" for p in probes)
        + f"; Hoyer sparsity {hoyer:.3f}, near-zero {100 * near_zero:.1f}%; "
        f"final loss {result['loss']:.4f} ({result['seconds']:.0f} s)")
    return result


results = [run(w) for w in widths]

"""
## Results

A table and a plot (`expand_or_narrow.png`): probe accuracy (left axis) and Hoyer sparsity
(right axis) against the last block's width on a log scale. On data this small the
differences between widths are a few points and move with the seed; run the sweep with
several seeds (and longer pretraining) before drawing conclusions.

One full run (JAX backend, seed 0, the 2-core CPU machine, about 11 minutes) gave:

| D | linear | knn | attentive | Hoyer | near-zero |
|---|---|---|---|---|---|
| 16 | 79.2 | 61.3 | 55.3 | 0.209 | 0.3% |
| 64 | 79.9 | 54.1 | 93.7 | 0.186 | 4.6% |
| 256 | 87.7 | 53.2 | 91.1 | 0.216 | 8.7% |

Expanding the last block past the predictor width (`D = 256 > K = 64`) lifts the linear
probe by 8 points and raises the share of near-zero feature entries, as the paper reports
for self-supervised training; narrowing (`D = 16`) hurts the attentive probe most. The
k-NN probe moves the other way here, and the Hoyer measure is not monotone in `D`.
"""

print("\n| D | " + " | ".join(probes) + " | Hoyer | near-zero |")
print("|---|" + "---|" * (len(probes) + 2))
for r in results:
    print(f"| {r['width']} | " + " | ".join(f"{100 * r[p]:.1f}" for p in probes)
          + f" | {r['hoyer']:.3f} | {100 * r['near_zero']:.1f}% |")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6, 4))
for p in probes:
    ax.plot(widths, [100 * r[p] for r in results], marker="o", label=f"{p} probe")
ax.set_xscale("log", base=2)
ax.set_xlabel("last-block width D (predictor width K = %d)" % config.predictor_dim)
ax.set_ylabel("held-out accuracy (%)")
ax2 = ax.twinx()
ax2.plot(widths, [r["hoyer"] for r in results], color="gray", ls="--", marker="s",
         label="Hoyer sparsity")
ax2.set_ylabel("Hoyer sparsity of pooled features")
lines = ax.get_legend_handles_labels()
lines2 = ax2.get_legend_handles_labels()
ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="best", fontsize=8)
ax.set_title(f"Expand or narrow, I-JEPA on digits ({keras.backend.backend()})")
fig.tight_layout()
plot_path = os.path.join(os.environ.get("KERAS_JEPA_GUIDE_OUTPUT", "."),
                         "expand_or_narrow.png")
fig.savefig(plot_path, dpi=100)
plt.close(fig)
print("expand/narrow sweep done; plot:", plot_path)

"""
## Next steps

- Add a width to `widths` (e.g. 1024) or pretrain longer (`epochs`).
- `VisionTransformer(output_dim=...)` works for video encoders too, and the preset layer
  saves and reloads it (`save_to_preset` / `from_preset`).
- `keras-jepa evaluate --data DIR --encoder RUN/encoder` probes an encoder on your own
  labelled folder.
"""
