"""
Title: Pretraining I-JEPA with `model.fit`
Author: keras_jepa contributors
Date created: 2026/11/26
Description: Multi-block masks, the I-JEPA model with its EMA target encoder, the official
    optimizer schedules, `fit`, and a linear probe of the learned features, on any backend.
Accelerator: None (CPU; `KERAS_JEPA_GUIDE_QUICK=1` runs a smoke version in seconds)
"""

"""
## Introduction

I-JEPA (Assran et al., 2023) learns image features without labels and without pixel
reconstruction: a *context encoder* sees one large block of patches, and a narrow
*predictor* predicts, for a few smaller *target* blocks, the features that a *target
encoder* computes on the full image. The target encoder is an exponential moving average
(EMA) of the context encoder, so nothing collapses through a gradient path into it.

This guide builds each piece with `keras_jepa` on the scikit-learn digits (they ship with
scikit-learn, so it runs offline), trains with the ordinary `model.fit`, and compares a
linear probe on the learned features with one on a random-init encoder. The same code runs
on JAX, PyTorch and TensorFlow; pick one with `KERAS_BACKEND`.
"""

"""
## Setup
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from keras_jepa.data import image_transform, load_digits
from keras_jepa.models.jepa.recipes import (
    build_encoder,
    build_mask_sampler,
    build_model,
    build_optimizer,
    get_config,
    schedule_steps,
)
from keras_jepa.data.arrays import ArrayImageDataset, normalize_images

QUICK = os.environ.get("KERAS_JEPA_GUIDE_QUICK") == "1"
keras.utils.set_random_seed(0)
print("backend:", keras.backend.backend())

"""
## The configuration

`keras_jepa.models.jepa.recipes.CONFIGS` holds the official recipes (`ijepa_vith14_in1k`,
`vjepa_vitl16`, `vjepa2_vitl16`) and tiny CPU ones. We start from `ijepa_tiny_cpu`: a ViT of
width 64 and depth 4 on 32x32 images with 4x4 patches (an 8x8 grid of 64 tokens) and a
predictor of depth 2, with the official masks, learning rate, weight decay and EMA ramp.
"""

config = get_config("ijepa_tiny_cpu")
if QUICK:
    config = config.replace(depth=1, predictor_depth=1, hidden_dim=32, num_heads=2,
                            predictor_dim=16, predictor_heads=2)
print(config.name, config.masks)

"""
## Multi-block masks

`MultiBlockMask` draws, for every image, 4 target rectangles of 15-20% of the grid and one
context rectangle of 85-100% from which the targets are cut out. Every batch has the same
number of context and target tokens (a *static budget*), so the jitted train step compiles
once. The sampler is a pure function of `(seed, step)`, which makes resumed runs exact.
"""

sampler = build_mask_sampler(config, seed=0)
masks = sampler(batch_size=2, step=0)
grid = np.full(sampler.num_tokens, ".")
grid[masks["context_indices"][0][0]] = "c"
for k, target in enumerate(masks["target_indices"]):
    grid[target[0]] = str(k)
print("context tokens:", sampler.num_context_tokens, "target tokens:", sampler.num_target_tokens)
print("\n".join(" ".join(row) for row in grid.reshape(sampler.grid_size)))

"""
## Data

`ArrayImageDataset` (and `ImageFolderDataset` for a folder) yields dict batches
`{"images", "context_indices", "target_indices"}`: random resized crops as in I-JEPA, and the
masks of the batch's global step. We pretrain on the training split only, without labels.
"""

images, labels = load_digits(image_size=config.image_size)
rng = np.random.RandomState(0)
order = rng.permutation(len(images))
train_idx, test_idx = order[:1350], order[1350:]
if QUICK:
    train_idx, test_idx = order[:64], order[64:192]
batch_size = 16 if QUICK else 64
dataset = ArrayImageDataset(images[train_idx], batch_size,
                            transform=image_transform(
                                config.image_size, scale=config.crop_scale),
                            mask_sampler=sampler, seed=0)
print({k: np.shape(v) for k, v in dataset[0].items()})

"""
## Model and optimizer

`build_model` makes an `IJEPA`: the context encoder, a frozen copy as target encoder, and the
predictor. `JEPAAdamW` uses a warmup-cosine learning rate (2e-4 -> 1e-3 -> 1e-6) and a cosine
weight decay that *increases* from 0.04 to 0.4; the EMA momentum rises from 0.996 to 1.0.
All three are functions of the optimizer's step counter and are sized from the run's length.

The EMA update of step `s` runs at the start of step `s + 1` (inside `compute_loss`), the
official order shifted by one step; the target encoder therefore lags by one update at the
end of `fit`.
"""

epochs = 1 if QUICK else 20
steps = schedule_steps(config, epochs, len(dataset))
model = build_model(config, ema_steps=steps["ema_steps"])
model.compile(optimizer=build_optimizer(config, steps["total_steps"], steps["warmup_steps"]))
initial_encoder = build_encoder(config)
initial_encoder.set_weights(model.encoder.get_weights())
print(steps)

"""
## Training

A plain `fit`. `shuffle=False` because the dataset shuffles itself per epoch from its seed
(Keras would otherwise reorder batches with Python's global RNG, which a resumed run cannot
replay); `dataset.epoch_callback()` tells it which epoch `fit` is in. For a real run,
`keras_jepa.programs.pretrain.pretrain` (or `keras-jepa pretrain`) adds CSV logs, checkpoints,
`BackupAndRestore` and a loss-curve PNG around this same call.
"""

history = model.fit(dataset, epochs=epochs, shuffle=False, verbose=2,
                    callbacks=[dataset.epoch_callback()])
print("loss per epoch:", [round(v, 4) for v in history.history["loss"]])

"""
## Features and a linear probe

We evaluate the **target** encoder, as the papers do: mean-pool its output tokens and fit a
logistic regression on the training split, then score the held-out split. The same probe on
the encoder's initial (random) weights is the baseline.
"""

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def features(encoder):
    tokens = encoder.predict(normalize_images(images), batch_size=256, verbose=0)
    return np.asarray(tokens).mean(axis=1)


def probe(x):
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(x[train_idx], labels[train_idx])
    return clf.score(x[test_idx], labels[test_idx])


pretrained = probe(features(model.target_encoder))
random_init = probe(features(initial_encoder))
print(f"linear probe: pretrained {100 * pretrained:.1f}%, random init {100 * random_init:.1f}%")

"""
## Next steps

- `keras-jepa pretrain --config ijepa_tiny_cpu --data DIR --output runs/x` on your own folder
  (rerun the same command to resume), or `--config ijepa_vith14_in1k` on an accelerator.
- `keras-jepa demo` runs this comparison end to end.
- `VisionTransformer.from_preset("runs/x/encoder")` loads the saved encoder.
"""
