"""
Title: Discovering environments with XRM
Author: keras_jepa contributors
Date created: 2026/11/26
Description: Find the groups a classifier fails on without group labels (XRM), then train
    GroupDRO with them, on JAX, PyTorch or TensorFlow.
Accelerator: None (CPU, under a minute with JAX; `KERAS_JEPA_GUIDE_QUICK=1` for a smoke run)
"""

"""
## Introduction

A classifier trained by plain empirical risk minimisation (ERM) happily uses any feature that
predicts the label in the training set, including *spurious* ones: the background of a bird
photo, the colour of a digit. It then fails on the minority of examples where the spurious
feature disagrees with the label. Group-robust methods such as GroupDRO fix this, but they
need to know the groups (label x spurious attribute) for every training and validation
example, and those annotations are expensive or unknown.

XRM ("Discovering environments with XRM", Pezeshki et al., ICML 2024) finds the groups
itself. It trains two *twin* networks, each on a fixed random half of the data. After every
step each example's label may be replaced by the prediction of the twin that did **not**
train on it, with probability `q = (p - 1/C) * C / (C - 1)` where `p` is that twin's
confidence. Each twin thus learns to imitate its twin's confident mistakes. The mistakes of
a network that relies on the spurious feature are exactly the minority examples, so this
"echo chamber" pushes both twins onto the shortcut. At the end, an example goes into
environment `m = 1` if either twin misclassifies it against its original label.

This guide runs the whole pipeline on *ColorDigits*: the official ColorMNIST recipe applied
to scikit-learn's 8x8 digits, so it runs offline in about a minute on a CPU.
"""

"""
## Setup

Any Keras backend works; XRM trains with the standard `model.fit`. Set
`KERAS_JEPA_GUIDE_QUICK=1` to run with tiny settings (the numbers are then meaningless).
"""

import os
import tempfile

import keras
import numpy as np

from keras_jepa.models.xrm.data import IndexedBatches, make_color_digits
from keras_jepa.models.xrm.discovery import train_group_robust
from keras_jepa.models.xrm.groups import (
    group_agreement,
    group_ids,
    group_metrics,
    infer_environments,
    is_degenerate,
)
from keras_jepa.models.xrm.model import XRM

QUICK = os.environ.get("KERAS_JEPA_GUIDE_QUICK", "0") not in ("0", "")
STEPS = 100 if QUICK else 1000  # the official ColorMNIST runs use 1001 steps
keras.utils.set_random_seed(0)
print("backend:", keras.backend.backend())

"""
## The data: ColorDigits

The label is "digit < 5", flipped for 25% of the examples (label noise), so the shape of the
digit predicts the label at most 75% of the time. Each image is put in one of two colour
channels; the colour agrees with the (noisy) label for 80% or 90% of the training examples
(two environments), and for only 10% of the test examples. The colour is the shortcut.

Every split is a dict with features `x`, labels `y` and the planted group bit `m` (1 when
the colour disagrees with the label), which XRM will never see.
"""

data = make_color_digits(seed=0)
train, val, test = data["tr"], data["va"], data["te"]
for name, split in data.items():
    print(
        f"{name}: {len(split['y'])} examples, colour disagrees with label for "
        f"{split['m'].mean():.0%}"
    )

"""
## Phase 1: twin training

`XRM` wraps any Keras classifier; here the official ColorMNIST MLP (two hidden layers of
390 units). Passing a function makes two independently initialised twins. The model keeps
its state in variables that are saved with its weights:

- `assignments`: which twin holds each training example in (a fixed coin flip);
- `dynamic_labels`: the current (possibly flipped) label of each example;
- `flip_count`, `step_counter` and the flip generator's seed.

Because the label store is indexed by example, training inputs carry each example's row:
`IndexedBatches` yields `({"features": x, "index": i}, y)` batches in the same order as the
official loader. The official runs use Adam with torch's (coupled) weight decay, which the
`l2` argument reproduces.
"""


def make_mlp():
    return keras.Sequential(
        [
            keras.layers.Dense(390, activation="relu"),
            keras.layers.Dense(390, activation="relu"),
            keras.layers.Dense(2),
        ]
    )


xrm = XRM(make_mlp, num_examples=len(train["y"]), assignment_seed=0, flip_seed=0, l2=1e-5)
xrm.compile(optimizer=keras.optimizers.Adam(1e-4, epsilon=1e-8))
batches = IndexedBatches(train["x"], train["y"], batch_size=32, steps_per_epoch=50, seed=0)
history = xrm.fit(batches, epochs=STEPS // 50, shuffle=False, verbose=0)
print("flip rate per 50 steps:", np.round(history.history["flip_rate"], 3))

"""
The *flip rate*, the fraction of training labels that currently differ from the original
ones, rises and settles. Which examples got flipped? Almost all of them are examples whose
colour disagrees with their label:
"""

flipped = xrm.label_store(train["y"]) != train["y"]
print(f"flipped: {flipped.mean():.1%} of the training set; "
      f"{train['m'][flipped].mean():.0%} of the flipped examples disagree with their colour")

"""
## Inferring environments

The cross-mistake rule labels train *and* validation examples with their original labels:
`m = 1` if either twin is wrong. A run is *degenerate* when some class ends up with a
single environment (the official code then reports a flip rate of 0, so that run is never
selected).
"""

env_tr = infer_environments(xrm, train["x"], train["y"], index=np.arange(len(train["y"])))
env_va = infer_environments(xrm, val["x"], val["y"])
m_tr, m_va = env_tr["m"], env_va["m"]
print("degenerate:", is_degenerate({"tr": (train["y"], m_tr), "va": (val["y"], m_va)}))
for name, m_hat, split in (("train", m_tr, train), ("validation", m_va, val)):
    agreement = group_agreement(m_hat, split["m"], split["y"])
    print(f"{name}: inferred vs planted groups, accuracy {agreement['accuracy']:.3f}, "
          f"adjusted Rand index {agreement['ari']:.3f}")

"""
In a real problem there is no planted split to compare with. The official recipe chooses
XRM's hyperparameters by the largest *final flip rate* over a random search
(`keras_jepa.models.xrm.discovery.search_xrm` does it), which needs no group
label either.

## Saving and resuming

The label store, assignments and the flip generator are model state: a checkpoint taken
mid-training resumes with the same flips.
"""

path = os.path.join(tempfile.mkdtemp(), "xrm.weights.h5")
xrm.save_weights(path)
restored = XRM.from_config(xrm.get_config())
restored(train["x"][:1])
restored.load_weights(path)
print("label store restored:", np.array_equal(restored.label_store(), xrm.label_store()))

"""
## Phase 2: GroupDRO with the inferred groups

GroupDRO minimises the loss of the worst group, with groups `2 * y + m`. Model selection
uses the validation worst-group accuracy computed with the **inferred** validation groups,
so no annotation is needed anywhere. We compare with ERM and with GroupDRO given the true
groups, and report the test worst-group accuracy on the true test groups.
`train_group_robust` runs one learner with this selection (the official code also searches
10 hyperparameter combinations; `search_group_robust` does that).
"""


def phase2(method, m_train, m_val):
    out = train_group_robust(
        method, train, val, make_mlp, lambda: keras.optimizers.Adam(1e-4, epsilon=1e-8),
        m_train, m_val, test=test, num_steps=STEPS, batch_size=32, eta=0.01, l2=1e-5,
        report_every=50,
    )
    return out["best"]


zeros_tr, zeros_va = np.zeros_like(train["y"]), np.zeros_like(val["y"])
rows = {
    "ERM": phase2("erm", zeros_tr, zeros_va),
    "GroupDRO + true groups": phase2("groupdro", train["m"], val["m"]),
    "GroupDRO + XRM groups": phase2("groupdro", m_tr, m_va),
}
print(f"{'':<26}{'test avg':>10}{'test worst-group':>18}")
for name, best in rows.items():
    print(f"{name:<26}{best['test_avg_acc']:>10.3f}{best['test_wga']:>18.3f}")

"""
ERM relies on the colour and is almost always wrong on the test examples whose colour
disagrees with their label. GroupDRO with XRM's groups matches GroupDRO with the true
groups, because XRM recovered them. (The label noise caps any model at 75%; from 8x8 digits
and ~1,300 training images the shape alone gets well below that, and the test groups where
the colour agrees with the label hold only about a dozen examples each, so these numbers
move by several points between seeds.)

`group_metrics` gives the per-group picture of any model:
"""

erm_like = keras.Sequential([keras.layers.Dense(2)])
erm_like.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
erm_like.fit(train["x"], train["y"], epochs=2 if QUICK else 10, verbose=0)
metrics = group_metrics(test["y"], erm_like.predict(test["x"], verbose=0),
                        group_ids(test["y"], test["m"]))
print("linear ERM, test accuracy per group (2y + m):", metrics["per_group"])

"""
## Real benchmarks

`keras_jepa.models.xrm.data` loads Waterbirds/CelebA-style folders with a metadata CSV
(`read_group_metadata`, `load_images`) and precomputed features (`load_feature_arrays`,
including the official `features.pt`). The program
`applications/discover_environments.py` (also `keras-jepa xrm`) runs phase 1 and phase 2
with the official protocol and prints the table:

```
python applications/discover_environments.py --dataset all
python applications/discover_environments.py --dataset features \\
    --features data/waterbirds/features.pt
```
"""
