"""
Title: Training on many devices: JAX (GPU, TPU pods), PyTorch DDP, TensorFlow
Author: keras_jepa contributors
Date created: 2026/11/26
Description: One `keras_jepa.distribute.setup` call spreads JEPA pretraining over devices
    and hosts on every backend: data parallelism everywhere, FSDP and tensor parallelism on
    JAX, with per-process data shards and chief-only checkpoints.
Accelerator: None to try it (CPU devices); GPUs or TPUs for real runs
"""

"""
## Introduction

The JEPA models train with `model.fit` and update their EMA target encoder inside
`compute_loss`, so scaling out is a matter of telling each backend's own engine how to
spread `fit`:

| backend | strategies | engine | launch |
|---|---|---|---|
| JAX | `"data"`, `"fsdp"`, `"model"` | `keras.distribution` (SPMD) | `python train.py` on every host |
| PyTorch | `"data"` | process group + gradient all-reduce | `torchrun --nproc_per_node=N train.py` |
| TensorFlow | `"data"` | `tf.distribute.MirroredStrategy` / `TPUStrategy` | `python train.py` |

`keras_jepa.distribute.setup(strategy)` is the one call; it returns an object with
`scope()`, `num_replicas`, `rank`, `is_chief`, `global_batch_size(per_replica)`,
`process_batch_size(per_replica)`, `shard(dataset)`, `callbacks(callbacks)` and
`fit(model, dataset, ...)`.
"""

"""
## A training script that runs anywhere

```python
import keras
from keras_jepa import distribute
from keras_jepa.models.jepa.recipes import (
    build_dataset, build_model, build_optimizer, get_config, schedule_steps)

dist = distribute.setup("data")          # first, before any model is built
config = get_config("ijepa_vith14_in1k")
per_replica = config.per_device_batch_size                     # 128
dataset = build_dataset(config, "/data/imagenet/train",
                        batch_size=dist.process_batch_size(per_replica), workers=8)
dataset = dist.shard(dataset)             # this process's rows of every global batch
steps = len(dataset)                      # global steps per epoch
lengths = schedule_steps(config, epochs=300, steps_per_epoch=steps)
with dist.scope():                        # tf.distribute scope; no-op on JAX and torch
    model = build_model(config, ema_steps=lengths["ema_steps"])
    model.compile(optimizer=build_optimizer(
        config, lengths["total_steps"], lengths["warmup_steps"], steps_per_epoch=steps))
dist.fit(model, dataset, epochs=300, shuffle=False, callbacks=[
    dataset.epoch_callback(),
    keras.callbacks.BackupAndRestore("run/backup"),       # every rank restores, rank 0 saves
    keras.callbacks.ModelCheckpoint("run/ckpt/model.weights.h5", save_weights_only=True),
    keras.callbacks.CSVLogger("run/log.csv"),             # rank 0 only
])
if dist.is_chief:
    model.backbone.save_to_preset("run/encoder")
dist.shutdown()
```

What each piece does:

* **Data.** Every global batch is split between processes by rows:
  `dist.shard` makes a keras_jepa `FileDataset` (`ImageFolderDataset`, `VideoDataset`,
  `ArrayImageDataset`) load rows `rank * B ...` of the batch that one process with the
  global batch size would load, with the masks of those rows (the mask sampler draws the
  global batch's masks from `(seed, step)` and each process keeps its rows). All processes
  see different images and masks, and together exactly the single-process run's data.
  Any other `keras.utils.PyDataset` is split by whole batches.
* **Batch sizes.** `per_replica` is the per-device batch of the official configs.
  `process_batch_size` is what this process's dataset must produce: the global batch on
  one JAX host or under TensorFlow's `MirroredStrategy` (the engine splits it over the
  devices), this host's part on a multi-host JAX job, and the per-device batch under
  torchrun. Schedules count global steps.
* **Writers.** `dist.callbacks` (used by `dist.fit`) drops `ModelCheckpoint`, `CSVLogger`
  and `TensorBoard` on non-chief processes and keeps only the restore half of
  `BackupAndRestore`; progress bars print on the chief only.
"""

"""
## One GPU

Nothing to change: `setup("none")` (or no `setup` at all) trains on the default device.
On one GPU, `setup("data")` is the same thing with one replica.

## Many GPUs on one machine

```bash
# JAX: one process drives all local GPUs (SPMD)
KERAS_BACKEND=jax python train.py
# PyTorch: one process per GPU; NCCL; each process pins GPU LOCAL_RANK
KERAS_BACKEND=torch torchrun --standalone --nproc_per_node=8 train.py
# TensorFlow: MirroredStrategy over the local GPUs
KERAS_BACKEND=tensorflow python train.py
```

On PyTorch, Keras 3.15's `fit` has no built-in DDP: `dist.prepare(model)` (called by
`dist.fit`) broadcasts rank 0's weights (EMA target and step counter included) and wraps the
optimizer's `apply` so that the gradients are averaged over the ranks in ~25 MB buckets
before clipping and the update. All ranks then hold identical weights and apply the same
EMA. The reduction runs after the backward pass (DDP overlaps it with the backward).

On TensorFlow, the EMA update of `compute_loss` runs in each replica: the mirrored target
variables (aggregation `"none"`) are each assigned from that replica's online weights,
which `MirroredStrategy` keeps identical, so the copies stay equal. JEPA's `compute_loss`
divides its loss by the number of replicas, as Keras's own losses do, because TensorFlow
sums the replicas' gradients.

## Many machines, and TPU pods (JAX)

Run the same script on every host. On a Cloud TPU VM pod slice:

```bash
gcloud compute tpus tpu-vm ssh my-pod --zone=us-central2-b --worker=all \\
  --command="cd keras_jepa && KERAS_BACKEND=jax python train.py"
```

`setup` calls `keras.distribution.initialize()` when `KERAS_DISTRIBUTION_NUM_PROCESSES` or
`KERAS_DISTRIBUTION_JOB_ADDRESSES` is set, or when you pass `initialize=True` (TPU pods and
SLURM are detected by JAX with no arguments). On GPU clusters without a scheduler, set on
each host:

```bash
KERAS_DISTRIBUTION_JOB_ADDRESSES=host0:1234,host1:1234 \\
KERAS_DISTRIBUTION_NUM_PROCESSES=2 KERAS_DISTRIBUTION_PROCESS_ID=<0 or 1> \\
KERAS_BACKEND=jax python train.py
```

Each host loads `dist.process_batch_size(per_replica)` images per step (its shard), and
Keras assembles the global batch across hosts.

**FSDP and tensor parallelism.** For models whose weights and optimizer state do not fit one
device (ViT-H/g with AdamW), `setup("fsdp")` shards the large kernels of the encoder, the
EMA target encoder and the predictor along the batch axis (XLA gathers each one where it
is used, ZeRO-3 style), and `setup("model", model_parallel=4)` builds a
`("batch", "model")` mesh with Megatron-style splits (qkv and fc1 by columns, attention
projection and fc2 by rows). `keras_jepa.distribute.jepa_layout_map(mesh, strategy)` gives
the `LayoutMap` for your own `ModelParallel`. Under either, checkpoints written by the chief
need the weights addressable on host 0: on multi-host model-parallel runs, save with every
process (e.g. Orbax) instead of `ModelCheckpoint`.

## TPUs with TensorFlow

`setup("data", tpu="local")` (on a TPU VM; or the TPU's name) connects to the TPU system and
returns a `TPUStrategy`; build and compile inside `dist.scope()` as above. JAX is the better
supported path for TPUs in Keras 3.

## Try it on a CPU

Each command below trains a tiny I-JEPA (32 px, width 32) on random images for two epochs
of three global steps of 8 images, and writes the per-rank losses and weights. They are
`keras_jepa.distribute.CPU_COMMANDS`, and the tests run exactly these. The one-device run
gives the reference: data parallelism (JAX, torch, TensorFlow) and tensor parallelism (JAX)
reproduce its losses, because the 8 images and their masks of every step are the same.
"""

import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_jepa.distribute import CPU_COMMANDS  # noqa: E402

for key, command in CPU_COMMANDS.items():
    print(f"{key:16s} {command.format(output='/tmp/' + key)}")

"""
Running this guide executes the commands of the backend you chose (`KERAS_BACKEND`,
default jax) and prints their losses; `KERAS_JEPA_GUIDE_QUICK=1` only prints the commands.
"""

QUICK = os.environ.get("KERAS_JEPA_GUIDE_QUICK") == "1"
backend = os.environ.get("KERAS_BACKEND", "jax")
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if not QUICK:
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    for key, command in CPU_COMMANDS.items():
        if not key.startswith(backend) or key == "jax_fsdp":
            continue
        with tempfile.TemporaryDirectory() as output:
            result = subprocess.run(["bash", "-c", command.format(output=output)], cwd=root,
                                    env=env, capture_output=True, text=True)
        lines = [line for line in result.stdout.splitlines() if "[keras-jepa" in line]
        print(key, "->", lines[-1] if lines else result.stderr[-2000:], flush=True)
    sys.stdout.flush()
