"""
Title: LeJEPA: multi-crop views, SIGReg and an informative training loss
Author: keras_jepa contributors
Date created: 2026/12/03
Description: What SIGReg measures, how LeJEPA trains with it, a same-budget comparison with
    I-JEPA by linear probes over three seeds on two image sets, and how well LeJEPA's
    training loss tracks probe accuracy across checkpoints.
Accelerator: None (CPU; `KERAS_JEPA_GUIDE_QUICK=1` runs a smoke version)
"""

"""
## Introduction

LeJEPA (Balestriero & LeCun, 2025) trains an encoder and a small projector on several
augmented views of each image with two terms and one trade-off `lambda`:

* **invariance**: each view's projection is pulled to the mean projection of the global
  views (mean squared distance);
* **SIGReg**: the projections are pushed towards an isotropic standard normal. The
  embeddings are projected on `M` random unit directions (fresh at every step) and each
  1-D projection is scored by the Epps-Pulley test: the weighted squared distance between
  its empirical characteristic function and `exp(-t^2 / 2)`, times the batch size.

`loss = lambda * SIGReg + (1 - lambda) * invariance` (`lambda = 0.02` in the reference
minimal example). There is no teacher, no EMA, no stop-gradient and no predictor: SIGReg
alone prevents collapse. In `keras_jepa`: `keras_jepa.models.lejepa.SIGReg`,
`keras_jepa.models.lejepa.LeJEPA`, multi-crop views in `keras_jepa.data.multicrop`, configs
in `keras_jepa.models.lejepa.recipes` and the run in
`keras_jepa.programs.pretrain_lejepa.pretrain_lejepa`.
"""

"""
## Setup
"""

import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
from scipy import stats

from keras_jepa.data import load_digits
from keras_jepa.models.jepa.recipes import get_config
from keras_jepa.models.lejepa import SIGReg, get_lejepa_config, make_shapes
from keras_jepa.programs.demo_digits import encoder_features, linear_probe
from keras_jepa.programs.pretrain import pretrain
from keras_jepa.programs.pretrain_lejepa import pretrain_lejepa

QUICK = os.environ.get("KERAS_JEPA_GUIDE_QUICK") == "1"
OUT = os.environ.get("KERAS_JEPA_GUIDE_OUTPUT", tempfile.mkdtemp() if QUICK else ".")
print("backend:", keras.backend.backend())

"""
## What SIGReg sees

For standard normal embeddings the statistic stays near its expectation (about 1, whatever
the batch size); for collapsed or anisotropic embeddings it grows with the batch size.
"""

rng = np.random.default_rng(0)
gaussian = rng.normal(size=(1024, 16)).astype("float32")
cases = {
    "isotropic Gaussian": gaussian,
    "collapsed to a point": np.tile(gaussian[:1], (1024, 1)),
    "anisotropic (std 0.1 ... 3)": gaussian * np.linspace(0.1, 3.0, 16, dtype="float32"),
    "Gaussian, shifted by 1": gaussian + 1.0,
}
sigreg = SIGReg(num_slices=256, seed=0)
for name, z in cases.items():
    print(f"SIGReg, {name:28s} {float(keras.ops.convert_to_numpy(sigreg(z))):10.2f}")

"""
## LeJEPA and I-JEPA on the same budget

Both methods train the same encoder (ViT 64 wide, patch 4 at 32 px; depth 2 here to fit
the CPU budget) with the same batch size and number of epochs, on the training split of
two image sets:

* the scikit-learn digits (1,797 images, 10 classes);
* procedural textured shapes (`make_shapes`: 6 shapes at random pose, colour, stripes and
  grating backgrounds), harder because colour and texture are nuisances.

LeJEPA uses `lejepa_tiny_cpu` (2 global views of 32 px, 2 local views of 16 px);
I-JEPA uses `ijepa_tiny_cpu` (multi-block masks, EMA target, predictor depth 2). Each
trained encoder is scored by a logistic-regression probe on its mean-pooled features
(train split -> held-out split), for three seeds. After each LeJEPA epoch, a callback probes
the current encoder too, for the loss-accuracy correlation below.
"""


class ProbeEachEpoch(keras.callbacks.Callback):
    """Records ``(LeJEPA training loss, probe accuracy)`` at the end of every epoch."""

    def __init__(self, images, labels, train, test):
        super().__init__()
        self.data = (images, labels, train, test)
        self.points = []

    def on_epoch_end(self, epoch, logs=None):
        images, labels, train, test = self.data
        features = encoder_features(self.model.encoder, images)
        accuracy = linear_probe(features[train], labels[train], features[test], labels[test])
        self.points.append((float(logs["lejepa_loss"]), accuracy))


def image_sets():
    digits = load_digits(32)
    shapes = make_shapes(1800, image_size=32, seed=0)
    sets = {"digits": digits, "shapes": shapes}
    if QUICK:
        sets = {"shapes": (shapes[0][:96], shapes[1][:96])}
    return sets


encoder_size = dict(depth=2)
epochs, batch_size, seeds = 4, 128, (0, 1, 2)
if QUICK:
    encoder_size = dict(depth=1, hidden_dim=32, num_heads=2)
    epochs, batch_size, seeds = 1, 32, (0,)
lejepa_config = get_lejepa_config("lejepa_tiny_cpu").replace(**encoder_size)
ijepa_config = get_config("ijepa_tiny_cpu").replace(
    **encoder_size, **(dict(predictor_depth=1, predictor_dim=16, predictor_heads=2)
                       if QUICK else {}))

results, checkpoints, seconds = {}, {}, {}
start = time.time()
for set_name, (images, labels) in image_sets().items():
    order = np.random.default_rng(0).permutation(len(images))
    cut = int(0.75 * len(images))
    train, test = order[:cut], order[cut:]
    for seed in seeds:
        probe = ProbeEachEpoch(images, labels, train, test)
        run = pretrain_lejepa(lejepa_config, images[train], epochs=epochs,
                              batch_size=batch_size, output_dir=tempfile.mkdtemp(),
                              seed=seed, verbose=0, callbacks=[probe])
        results.setdefault((set_name, "LeJEPA"), []).append(probe.points[-1][1])
        checkpoints.setdefault(set_name, []).extend(probe.points)
        seconds.setdefault("LeJEPA", []).append(run["seconds"])
        run = pretrain(ijepa_config, images[train], epochs=epochs, batch_size=batch_size,
                       output_dir=tempfile.mkdtemp(), seed=seed, verbose=0)
        features = encoder_features(run["encoder"], images)
        results.setdefault((set_name, "I-JEPA"), []).append(
            linear_probe(features[train], labels[train], features[test], labels[test]))
        seconds.setdefault("I-JEPA", []).append(run["seconds"])
        print(f"{set_name} seed {seed}: LeJEPA {100 * results[(set_name, 'LeJEPA')][-1]:.1f}%"
              f", I-JEPA {100 * results[(set_name, 'I-JEPA')][-1]:.1f}%", flush=True)


def interval(values):
    """Mean and half-width of the 95% Student-t interval (0 for one value)."""
    values = 100 * np.asarray(values)
    if len(values) < 2:
        return values.mean(), 0.0
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return values.mean(), half


print()
print(f"linear probe, LeJEPA vs I-JEPA (mean ± 95% interval over {len(seeds)} seed(s), "
      f"{epochs} epoch(s), backend {keras.backend.backend()})")
print(f"{'data':8s} {'method':8s} {'accuracy':>16s}   per seed")
for (set_name, method), values in results.items():
    mean, half = interval(values)
    per_seed = ", ".join(f"{100 * v:.1f}" for v in values)
    print(f"{set_name:8s} {method:8s} {mean:8.1f} ± {half:4.1f}%   {per_seed}")
for method, values in seconds.items():
    print(f"{method}: {np.mean(values):.0f} s of training per run on average")
print(f"total {time.time() - start:.0f} s")

"""
## Is the training loss informative?

The paper reports that LeJEPA's training loss predicts downstream accuracy (a high rank
correlation), so checkpoints can be chosen without labels. Here: Spearman's rank
correlation between the epoch-end LeJEPA loss and the probe accuracy of the same
checkpoint, over every epoch of every seed (a negative value: lower loss, better probe).
"""

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(6, 4))
for set_name, points in checkpoints.items():
    loss, accuracy = np.asarray(points).T
    rho = stats.spearmanr(loss, accuracy)[0] if len(points) > 2 else float("nan")
    print(f"informative loss, {set_name}: Spearman rho(loss, probe accuracy) = {rho:.2f} "
          f"over {len(points)} checkpoints")
    ax.scatter(loss, 100 * accuracy, label=f"{set_name} (rho {rho:.2f})")
ax.set_xlabel("LeJEPA training loss (epoch end)")
ax.set_ylabel("linear probe accuracy (%)")
ax.set_title("LeJEPA: training loss vs probe accuracy")
ax.legend()
fig.tight_layout()
plot_path = os.path.join(OUT, "lejepa_loss_vs_probe.png")
fig.savefig(plot_path, dpi=100)
plt.close(fig)
print("plot:", plot_path)
