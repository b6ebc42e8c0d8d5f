"""A tiny multi-device I-JEPA run: ``python -m keras_jepa.programs.distribute_demo --strategy ...``.

The launch commands in ``keras_jepa.backend.distribution.CPU_COMMANDS`` run this module on CPUs (JAX
and TensorFlow split the CPU into devices; torch runs under ``torchrun``). Each process
writes ``rank<r>.json`` (per-batch losses, the callbacks it kept, the EMA check, JAX
shardings, TensorFlow replica copies) and its weights, which the guide prints and the tests
compare with a one-device run of the same global batch.
"""

import argparse
import json
import os
import sys

import keras

from keras_jepa.backend.seeding import seed_everything

from keras_jepa.backend.distribution import STRATEGIES, setup
from keras_jepa.backend.replicas import gather_check




def run_demo(dist, output, per_replica_batch=4, steps=3, epochs=2, seed=0):
    """Trains a tiny I-JEPA (32 px, width 32, depth 1) with ``dist`` on ``steps`` global
    batches of seeded random images for ``epochs`` epochs, and writes ``output/rank<r>.json``: the per-batch local losses, epoch logs, the
    callbacks this process kept, the variables' shardings (JAX) and a weight digest; the chief
    also writes ``checkpoints/model.weights.h5`` and ``weights.npz`` (every variable).
    Returns the record."""
    import numpy as np

    from keras_jepa.models.jepa.recipes import build_mask_sampler, build_model, get_config
    from keras_jepa.data.arrays import ArrayImageDataset
    from keras_jepa.data import image_transform

    seed_everything(seed)
    config = get_config("ijepa_tiny_cpu").replace(
        hidden_dim=32, depth=1, num_heads=2, predictor_dim=32, predictor_depth=1,
        predictor_heads=2)
    total = steps * epochs
    with dist.scope():
        model = build_model(config, ema_steps=total)
        model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.05))
    images = dist.global_batch_size(per_replica_batch) * steps
    pixels = np.random.default_rng(seed).random((images, 36, 36, 3)).astype("float32")
    dataset = ArrayImageDataset(
        pixels, dist.process_batch_size(per_replica_batch),
        transform=image_transform(config.image_size, scale=tuple(config.crop_scale)),
        seed=seed, mask_sampler=build_mask_sampler(config, seed=seed))

    class Losses(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.values = []

        def on_train_batch_end(self, batch, logs=None):
            # The loss tracker's running mean over the epoch; differences give batch losses.
            self.values.append(float(logs["loss"]))

    class EMACheck(keras.callbacks.Callback):
        """Largest deviation of each step's target update from the EMA formula."""

        def __init__(self):
            super().__init__()
            self.errors = []

        def on_train_batch_begin(self, batch, logs=None):
            self.before = (
                float(keras.ops.convert_to_numpy(self.model.ema_step)),
                [keras.ops.convert_to_numpy(v.value) for v in self.model.target_encoder.weights],
                [keras.ops.convert_to_numpy(v.value) for v in self.model.encoder.weights],
            )

        def on_train_batch_end(self, batch, logs=None):
            step, targets, online = self.before
            m0, m1 = self.model.ema_momentum
            m = 1.0 if step == 0 else m0 + (m1 - m0) * min((step - 1) / self.model.ema_steps, 1)
            self.errors.append(max(
                float(np.abs(keras.ops.convert_to_numpy(v.value) - (m * t + (1 - m) * o)).max())
                for v, t, o in zip(self.model.target_encoder.weights, targets, online)))

    losses, ema_check = Losses(), EMACheck()
    os.makedirs(output, exist_ok=True)
    checkpoint = keras.callbacks.ModelCheckpoint(
        os.path.join(output, "checkpoints", "model.weights.h5"), save_weights_only=True)
    callbacks = [losses, ema_check, dataset.epoch_callback(), checkpoint]
    kept = [type(c).__name__ for c in dist.callbacks(callbacks)]
    history = dist.fit(model, dataset, epochs=epochs, shuffle=False,
                       callbacks=callbacks, verbose=0)
    weights = {v.path: keras.ops.convert_to_numpy(v.value) for v in model.weights}
    record = {
        "backend": dist.backend, "strategy": dist.strategy, "rank": dist.rank,
        "num_replicas": dist.num_replicas, "num_processes": dist.num_processes,
        "running_losses": losses.values, "history": history.history, "callbacks": kept,
        "steps_per_epoch": steps, "ema_errors": ema_check.errors,
        "ema_step": float(keras.ops.convert_to_numpy(model.ema_step)),
        "weight_digest": float(sum(np.abs(w).sum() for w in weights.values())),
    }
    if dist.backend == "jax":
        record["sharded"] = {
            v.path: not v.value.sharding.is_fully_replicated for v in model.weights}
    record["gather"] = gather_check(dist)
    if dist.tf_strategy is not None:
        # Largest difference between the replicas' copies of any variable (mirrored).
        record["replica_copy_diff"] = max(
            float(np.max(np.abs(np.asarray(c) - np.asarray(v.value.values[0]))))
            for v in model.weights for c in getattr(v.value, "values", [v.value]))
        record["target_aggregation"] = str(model.target_encoder.weights[0].value.aggregation)
    if dist.is_chief:
        np.savez(os.path.join(output, "weights.npz"), **{
            k.replace("/", "|"): w for k, w in weights.items()})
    np.savez(os.path.join(output, f"weights_rank{dist.rank}.npz"), **{
        k.replace("/", "|"): w for k, w in weights.items()})
    with open(os.path.join(output, f"rank{dist.rank}.json"), "w") as f:
        json.dump(record, f)
    return record


def batch_losses(running_losses, steps_per_epoch):
    """Per-batch losses from Keras's running epoch means (``logs["loss"]`` after each batch).

    Example:

    >>> batch_losses([1.0, 1.5, 2.0, 4.0], 2)
    [1.0, 2.0, 2.0, 6.0]
    """
    out = []
    for start in range(0, len(running_losses), steps_per_epoch):
        means = running_losses[start:start + steps_per_epoch]
        for i, mean in enumerate(means):
            out.append(mean * (i + 1) - (means[i - 1] * i if i else 0.0))
    return out


def main(argv=None):
    """``python -m keras_jepa.programs.distribute_demo``: the tiny run of ``distribute.CPU_COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="python -m keras_jepa.programs.distribute_demo",
        description="Train a tiny I-JEPA on random images with keras_jepa.backend.distribution.")
    parser.add_argument("--strategy", default="data", choices=STRATEGIES)
    parser.add_argument("--cpu-devices", type=int, default=None)
    parser.add_argument("--model-parallel", type=int, default=2)
    parser.add_argument("--per-replica-batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    dist = setup(args.strategy, model_parallel=args.model_parallel,
                 cpu_devices=args.cpu_devices)
    record = run_demo(dist, args.output, per_replica_batch=args.per_replica_batch,
                      steps=args.steps, epochs=args.epochs)
    if dist.is_chief:
        print(f"[keras-jepa distribute] {dist}: losses "
              f"{[round(v, 4) for v in batch_losses(record['running_losses'], args.steps)]}",
              flush=True)
    dist.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
