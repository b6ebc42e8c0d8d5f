"""What every pretraining program does with its run folder, whatever the method: record the
run's identity and refuse to continue a run with other arguments, delete the run's own
files on ``overwrite``, the standard callbacks of a resumable ``fit``, and the encoder
preset and loss plot saved at the end.

A run folder holds ``run_identity.json`` (:data:`RUN_IDENTITY_FILE`), ``config.json``,
``log.csv``, ``loss.png``, ``backup/`` (``BackupAndRestore``), ``checkpoints/`` (the weights
after the last finished epoch) and ``encoder/`` (a preset). Rerunning the same call resumes
from the last finished epoch; a rerun whose identity differs raises
:class:`RunMismatchError` listing the differences.
"""

import hashlib
import json
import os
import shutil
import sys
import time

import numpy as np

from keras_jepa.training.logging import ScheduleLogger, plot_loss, read_log

RUN_IDENTITY_FILE = "run_identity.json"
# What every run writes in its folder (a program may add its own, e.g. "tensorboard").
STANDARD_OUTPUTS = ("backup", "checkpoints", "encoder", "log.csv", "loss.png", "config.json",
                    RUN_IDENTITY_FILE)
# Outputs that hold training state a rerun would continue (or append to).
RUN_STATE = ("backup", "checkpoints", "log.csv")
CHECKPOINT_FILE = os.path.join("checkpoints", "model.weights.h5")


class RunMismatchError(ValueError):
    """A pretraining program was asked to continue the run in ``output_dir`` with other
    arguments (config, data, batch size, epochs, steps per epoch, seed); the message lists
    them.

    Attributes:
        output_dir: the run folder.
        differences: ``[(field, previous, now)]`` (see :func:`identity_differences`), empty
            when the recorded identity could not be read.

    Example:

    >>> error = RunMismatchError("other seed", "run", [("seed", 0, 1)])
    >>> isinstance(error, ValueError), error.differences
    (True, [('seed', 0, 1)])
    """

    def __init__(self, message, output_dir=None, differences=()):
        super().__init__(message)
        self.output_dir = output_dir
        self.differences = list(differences)


# --------------------------------------------------------------------------- identity


def _sha1_lines(lines):
    digest = hashlib.sha1()
    for line in lines:
        digest.update(os.fsencode(line) + b"\n")
    return digest.hexdigest()


def data_identity(data, dataset):
    """Where the data come from, how many samples, and a digest of the file list (or of the
    array's bytes). ``dataset`` is the run's dataset (its ``paths``: one per sample).

    Example:

    >>> images = np.zeros((2, 4, 4, 3), "uint8")
    >>> data_identity(images, type("D", (), {"paths": [0, 1]}))["source"]
    'array of shape [2, 4, 4, 3], uint8'
    """
    paths = list(dataset.paths)
    if isinstance(data, np.ndarray):
        array = np.ascontiguousarray(data)
        return {"source": f"array of shape {list(array.shape)}, {array.dtype}",
                "num_samples": len(paths),
                "sha1": hashlib.sha1(array.view(np.uint8).reshape(-1)).hexdigest()}
    if isinstance(data, (str, os.PathLike)):
        root = os.path.realpath(os.fspath(data))
        names = ([os.path.relpath(p, os.fspath(data)) for p in paths] if os.path.isdir(root)
                 else [os.path.realpath(p) for p in paths])
        return {"source": root, "num_samples": len(paths), "sha1": _sha1_lines(names)}
    return {"source": f"list of {len(paths)} paths", "num_samples": len(paths),
            "sha1": _sha1_lines(os.path.realpath(p) for p in paths)}


def make_identity(config_fields, data, dataset, batch_size, epochs, steps_per_epoch, seed,
                  **extra):
    """A run's identity as a JSON-friendly dict: ``config`` (``config_fields``), ``data``
    (:func:`data_identity`), batch size, epochs, optimizer steps per epoch, seed, then the
    program's own ``extra`` fields.

    Example:

    >>> files = type("D", (), {"paths": ["a.png"]})
    >>> identity = make_identity({"depth": 2}, ["a.png"], files, 8, 1, 4, 0)
    >>> identity["config"], identity["batch_size"], identity["data"]["num_samples"]
    ({'depth': 2}, 8, 1)
    """
    identity = {
        "config": config_fields,
        "data": data_identity(data, dataset),
        "batch_size": int(batch_size),
        "epochs": int(epochs),
        "steps_per_epoch": int(steps_per_epoch),
        "seed": int(seed),
        **extra,
    }
    return json.loads(json.dumps(identity, default=list))


def _flatten_identity(identity):
    flat = {}
    for key, value in identity.items():
        if key in ("config", "data") and isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def identity_differences(old, new):
    """``[(field, old value, new value)]`` of two run identities (config and data fields as
    ``config.depth``, ``data.num_samples``; ``"<absent>"`` for a missing field).

    Example:

    >>> identity_differences({"seed": 0, "config": {"depth": 4}},
    ...                      {"seed": 1, "config": {"depth": 4}})
    [('seed', 0, 1)]
    """
    a, b = _flatten_identity(old), _flatten_identity(new)
    keys = list(b) + [k for k in a if k not in b]
    return [(k, a.get(k, "<absent>"), b.get(k, "<absent>")) for k in keys
            if k not in a or k not in b or a[k] != b[k]]


def _show(value, limit=100):
    text = value if value == "<absent>" else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- run folder


def has_run_state(output_dir):
    """Whether ``output_dir`` holds training state a rerun would continue (``RUN_STATE``).

    Example:

    >>> import tempfile
    >>> has_run_state(tempfile.mkdtemp())
    False
    """
    for name in RUN_STATE:
        path = os.path.join(output_dir, name)
        if os.path.isfile(path) or (os.path.isdir(path) and os.listdir(path)):
            return True
    return False


def remove_run_outputs(output_dir, outputs=STANDARD_OUTPUTS):
    """Deletes the files and folders named in ``outputs`` in ``output_dir``, nothing else.
    Returns the names removed.

    Example:

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for name in ("log.csv", "notes.txt"):
    ...     open(os.path.join(folder, name), "w").close()
    >>> remove_run_outputs(folder), sorted(os.listdir(folder))
    (['log.csv'], ['notes.txt'])
    """
    removed = []
    for name in outputs:
        path = os.path.join(output_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
        else:
            continue
        removed.append(name)
    return removed


def check_rerun(output_dir, identity):
    """``"fresh"`` (nothing to continue), ``"resume"`` (same identity) or ``"unchecked"``
    (a run folder without ``run_identity.json``); raises :class:`RunMismatchError` when the
    folder holds a run with another identity.

    Example:

    >>> import tempfile
    >>> check_rerun(tempfile.mkdtemp(), {"seed": 0})
    'fresh'
    """
    path = os.path.join(output_dir, RUN_IDENTITY_FILE)
    has_state = has_run_state(output_dir)
    if not os.path.exists(path):
        return "unchecked" if has_state else "fresh"
    if not has_state:
        return "fresh"  # an earlier start that saved nothing: no state to mix with
    advice = ("choose another output_dir (CLI: --output), or pass overwrite=True (CLI: "
              "--overwrite) to delete the previous run's files and start fresh.")
    try:
        with open(path) as f:
            old = json.load(f)
        if not isinstance(old, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        raise RunMismatchError(
            f"{path} is not a valid run identity ({error}), so this run cannot be checked "
            f"before resuming; {advice}", output_dir=output_dir,
        ) from None
    differences = identity_differences(old, identity)
    if not differences:
        return "resume"
    lines = "\n".join(f"  {key}: {_show(a)} -> {_show(b)}" for key, a, b in differences)
    raise RunMismatchError(
        f"{output_dir} holds a pretraining run with other arguments (previous -> now):\n"
        f"{lines}\nResuming would mix the two runs (schedules, data, log.csv). Rerun with the "
        f"same arguments to resume, {advice}", output_dir=output_dir, differences=differences,
    )


def start_run(output_dir, identity, overwrite=False, outputs=STANDARD_OUTPUTS, verbose=1):
    """Prepares ``output_dir`` for a run of ``identity``: with ``overwrite``, deletes the
    previous run's ``outputs`` first; otherwise checks a previous run there
    (:func:`check_rerun`, raising :class:`RunMismatchError` before anything is touched).
    Records the identity in ``run_identity.json`` unless resuming. Returns ``"fresh"``,
    ``"resume"`` or ``"unchecked"`` (an older run folder, resumed with a warning).

    Example:

    >>> import tempfile
    >>> folder = os.path.join(tempfile.mkdtemp(), "run")
    >>> start_run(folder, {"seed": 0}), os.listdir(folder)
    ('fresh', ['run_identity.json'])
    """
    if overwrite:
        removed = remove_run_outputs(output_dir, outputs) if os.path.isdir(output_dir) else []
        if removed and verbose:
            print(f"[keras-jepa] overwrite: removed the previous run's {', '.join(removed)} "
                  f"in {output_dir}", flush=True)
        state = "fresh"
    else:
        state = check_rerun(output_dir, identity) if os.path.isdir(output_dir) else "fresh"
    if state == "unchecked":
        print(f"warning: {output_dir} holds a run without {RUN_IDENTITY_FILE} (made by an "
              "older keras_jepa), so its arguments could not be checked against these; "
              "resuming it. Pass overwrite=True (CLI: --overwrite) to start fresh instead.",
              file=sys.stderr, flush=True)
    os.makedirs(output_dir, exist_ok=True)
    if state != "resume":
        with open(os.path.join(output_dir, RUN_IDENTITY_FILE), "w") as f:
            json.dump(identity, f, indent=2)
    return state


def write_run_config(output_dir, config, **fields):
    """Writes ``output_dir/config.json``: ``config.to_dict()``, the run's ``fields`` and the
    Keras backend. Returns its path."""
    import keras

    path = os.path.join(output_dir, "config.json")
    with open(path, "w") as f:
        json.dump({"config": config.to_dict(), **fields, "backend": keras.backend.backend()},
                  f, indent=2, default=list)
    return path


# --------------------------------------------------------------------------- training


def standard_callbacks(output_dir, dataset, optimizer, backup_freq="epoch"):
    """The callbacks of a resumable run: ``BackupAndRestore`` (``backup/``: weights,
    optimizer and schedules), the dataset's epoch callback (which replays the same order
    and augmentations on resume), ``ScheduleLogger``, ``CSVLogger`` (``log.csv``, appended
    to on resume) and ``ModelCheckpoint`` (``checkpoints/model.weights.h5``)."""
    import keras

    return [
        keras.callbacks.BackupAndRestore(os.path.join(output_dir, "backup"),
                                         save_freq=backup_freq, delete_checkpoint=False),
        dataset.epoch_callback(),
        ScheduleLogger(optimizer),
        keras.callbacks.CSVLogger(os.path.join(output_dir, "log.csv"), append=True),
        keras.callbacks.ModelCheckpoint(os.path.join(output_dir, CHECKPOINT_FILE),
                                        save_weights_only=True),
    ]


def fit_run(model, dataset, optimizer, output_dir, epochs, steps_per_epoch=None,
            callbacks=(), verbose=1, backup_freq="epoch"):
    """``model.fit`` on ``dataset`` with :func:`standard_callbacks` and then ``callbacks``.
    Returns the seconds it took."""
    cbs = standard_callbacks(output_dir, dataset, optimizer, backup_freq=backup_freq)
    start = time.time()
    # shuffle=False: the dataset shuffles itself per (seed, epoch); Keras would reorder
    # batches with Python's global RNG, which a resumed run cannot replay.
    model.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch, shuffle=False,
              callbacks=cbs + list(callbacks), verbose=verbose)
    return time.time() - start


def save_outputs(source, output_dir, title):
    """Saves a copy of the encoder ``source`` (named ``encoder``) as a preset in
    ``output_dir/encoder`` and plots ``log.csv`` to ``loss.png``. Returns ``{"encoder",
    "encoder_dir", "history", "log_path", "plot_path"}`` (``history``: the whole run's
    ``{metric: per-epoch values}``, resumed parts included)."""
    encoder = type(source).from_config(
        {**source.get_config(), "name": "encoder", "trainable": True}
    )
    encoder.set_weights(source.get_weights())
    encoder_dir = os.path.join(output_dir, "encoder")
    encoder.save_to_preset(encoder_dir)
    log_path = os.path.join(output_dir, "log.csv")
    history = read_log(log_path)
    plot_path = plot_loss(history, os.path.join(output_dir, "loss.png"), title=title)
    return {"encoder": encoder, "encoder_dir": encoder_dir, "history": history,
            "log_path": log_path, "plot_path": plot_path}
