"""
Title: FlexPredict / StoP: stochastic positions for the I-JEPA predictor
Author: keras_jepa contributors
Date created: 2026/11/26
Description: What StoP changes in the predictor (noisy target queries through the shared
    context projection), how to switch it on, and a same-budget comparison with I-JEPA by
    a linear probe, on any backend.
Accelerator: None (CPU; `KERAS_JEPA_GUIDE_QUICK=1` runs a smoke version in seconds)
"""

"""
## Introduction

In I-JEPA the predictor places one learned mask token at each target position and predicts
that patch's features. Bar et al. ("Stochastic positional embeddings improve masked image
modeling", ICML 2024; first version "FlexPredict") make the target *positions* noisy, so
that the predictor cannot overfit to exact locations: each target query becomes

    query_j = pos(j) + A n_j + b,   n_j ~ N(0, sigma^2 I) in the encoder width,

where `A, b` is the **same** linear layer that projects the context tokens into the
predictor (`predictor_embed`). Tying the noise to that layer stops the model from simply
shrinking the noise away (A -> 0 would also erase the context), and the bias `b` takes over
the mask token's job. The official code uses sigma = 0.25 (ViT-B/L) and 0.2 (ViT-H); the
noise is only drawn in training.

In `keras_jepa` this is `JEPAPredictor(stochastic_positions=True, stop_std=...)`, exposed
as `IJEPA(..., stochastic_positions=True)` and by the `ijepa_stop_*` pretraining configs.
"""

"""
## Setup
"""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from keras_jepa.data import load_digits
from keras_jepa.programs.demo_digits import encoder_features, linear_probe
from keras_jepa.models import JEPAPredictor
from keras_jepa.models.jepa.recipes import get_config
from keras_jepa.programs.pretrain import pretrain

QUICK = os.environ.get("KERAS_JEPA_GUIDE_QUICK") == "1"
print("backend:", keras.backend.backend())

"""
## The noise, where it goes, and when

With `predictor_embed` set to `2 I` and bias `b`, the training-time queries minus their
positions are `2 n + b` (std `2 sigma`); in inference they are exactly `b`. The context
tokens never get noise (unless the `stop_context_noise` ablation is on).
"""

width = 16
pred = JEPAPredictor(grid_size=(4, 4), output_dim=width, hidden_dim=width, depth=1,
                     num_heads=2, stochastic_positions=True, stop_std=0.25, stop_seed=0)
pred.build()
bias = np.linspace(-1, 1, width).astype("float32")
pred.predictor_embed.kernel.assign(2.0 * np.eye(width, dtype="float32"))
pred.predictor_embed.bias.assign(bias)
context = np.random.default_rng(0).normal(size=(8, 6, width)).astype("float32")
context_ids = np.tile(np.arange(6), (8, 1))
target_ids = np.tile(np.arange(6, 16), (8, 1))
positions = keras.ops.convert_to_numpy(pred._positions(target_ids))
for training in (True, False):
    _, queries, _ = pred.embed_inputs(context, context_ids, target_ids, training=training)
    noise = keras.ops.convert_to_numpy(queries) - positions - bias
    print(f"training={training}: std of query noise {noise.std():.3f}")

"""
## Same budget, with and without StoP

We pretrain the tiny I-JEPA config and its StoP twin (`ijepa_stop_tiny_cpu`: identical but
for `stop_std=0.25`) on the training split of the scikit-learn digits with the same seed,
epochs and batch size, then fit a logistic-regression probe on the mean-pooled features of
each target encoder and score it on the held-out split.

At this scale the published gain (+1.7% on ImageNet with ViT-B) is not expected to show;
the point is that StoP trains as stably as I-JEPA and that the two probes are comparable.
"""

images, labels = load_digits(32)
order = np.random.default_rng(0).permutation(len(images))
train, test = order[:1347], order[1347:]
epochs = 1 if QUICK else 10
overrides = {}
if QUICK:
    train, test = train[:64], test[:64]
    overrides = dict(depth=1, hidden_dim=32, num_heads=2, predictor_depth=1, predictor_dim=16,
                     predictor_heads=2)

accuracy = {}
for name in ("ijepa_tiny_cpu", "ijepa_stop_tiny_cpu"):
    config = get_config(name).replace(**overrides)
    out = pretrain(config, images[train], epochs=epochs, batch_size=32 if QUICK else 128,
                   output_dir=tempfile.mkdtemp(), seed=0, verbose=0)
    loss = out["history"]["loss"]
    features = encoder_features(out["encoder"], images)
    accuracy[name] = linear_probe(features[train], labels[train], features[test],
                                  labels[test])
    kernel = keras.ops.convert_to_numpy(out["model"].predictor.predictor_embed.kernel)
    print(f"{name}: loss {loss[0]:.4f} -> {loss[-1]:.4f}; |predictor_embed| "
          f"{np.linalg.norm(kernel):.2f}; linear probe {100 * accuracy[name]:.1f}%")
print(f"linear probe: I-JEPA {100 * accuracy['ijepa_tiny_cpu']:.1f}% vs StoP "
      f"{100 * accuracy['ijepa_stop_tiny_cpu']:.1f}% ({epochs} epochs, "
      f"{keras.backend.backend()})")
