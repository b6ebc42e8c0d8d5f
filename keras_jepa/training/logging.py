"""Run logging: learning rate and weight decay in the epoch logs, the CSV log read back,
and the loss curve as a PNG."""

import csv
import os

import keras
import numpy as np


class ScheduleLogger(keras.callbacks.Callback):
    """Adds the learning rate and weight decay in force to the epoch logs of ``optimizer``
    (a ``JEPAAdamW``)."""

    def __init__(self, optimizer):
        super().__init__()
        self.schedule_optimizer = optimizer

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        optimizer = self.schedule_optimizer
        schedule = optimizer._learning_rate
        lr = schedule(optimizer.iterations - 1) if callable(schedule) else schedule
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(lr))
        logs["weight_decay"] = float(
            keras.ops.convert_to_numpy(optimizer.current_weight_decay())
        )


def read_log(path):
    """Rows of a ``CSVLogger`` file as ``{column: [floats]}``, keeping the last row of each
    epoch (a resumed run may repeat one)."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        rows = list(csv.DictReader(f))
    by_epoch = {}
    for row in rows:
        by_epoch[int(row["epoch"])] = row
    rows = [by_epoch[e] for e in sorted(by_epoch)]
    columns = rows[0].keys() if rows else []

    def number(value):
        try:
            return float(value)
        except (TypeError, ValueError):  # CSVLogger writes "NA" for a missing value
            return float("nan")

    log = {c: [number(r.get(c)) for r in rows] for c in columns}
    return {c: v for c, v in log.items() if not all(np.isnan(v))}


def plot_loss(log, path, title="JEPA pretraining"):
    """Writes the loss curve (and the learning rate, if logged) of ``log`` to ``path`` (PNG,
    matplotlib's Agg backend). Returns ``path``, or ``None`` without matplotlib or data.

    Example:

    >>> import tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "loss.png")
    >>> plot_loss({"epoch": [0, 1, 2], "loss": [1.0, 0.7, 0.5]}, out) == out
    True
    """
    if not log or not log.get("loss"):
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    epochs = [e + 1 for e in log["epoch"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, log["loss"], marker="o", ms=3, label="loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("prediction loss")
    ax.set_title(title)
    if log.get("learning_rate"):
        ax2 = ax.twinx()
        ax2.plot(epochs, log["learning_rate"], color="tab:orange", alpha=0.6, label="lr")
        ax2.set_ylabel("learning rate")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
