"""``keras-jepa pretrain``: I-JEPA / V-JEPA / V-JEPA 2 pretraining with ``model.fit`` on a
folder of images or videos (or in-memory arrays), from a named recipe
(``keras_jepa.models.jepa.recipes``).

The run's identity (config, data, batch size, epochs, steps per epoch, seed) is recorded in
``output_dir/run_identity.json``; rerunning the same command resumes from the last finished
epoch, a rerun with other arguments is refused (:class:`RunMismatchError`, listing the
differences) unless ``overwrite=True`` (CLI: ``--overwrite``).
"""

import hashlib
import json
import os
import shutil
import sys
import time

import numpy as np

from keras_jepa.models.jepa.recipes import (
    build_dataset,
    build_model,
    build_optimizer,
    get_config,
    schedule_steps,
)
from keras_jepa.training.logging import ScheduleLogger, plot_loss, read_log


RUN_IDENTITY_FILE = "run_identity.json"
# What ``pretrain`` writes in ``output_dir``: all that ``overwrite=True`` deletes.
RUN_OUTPUTS = ("backup", "checkpoints", "encoder", "tensorboard", "log.csv", "loss.png",
               "config.json", RUN_IDENTITY_FILE)
# Outputs that hold training state a rerun would continue (or append to).
_RUN_STATE = ("backup", "checkpoints", "log.csv")


class RunMismatchError(ValueError):
    """``pretrain`` was asked to continue the run in ``output_dir`` with other arguments
    (config, data, batch size, epochs, steps per epoch, seed); the message lists them.

    Attributes:
        output_dir: the run folder.
        differences: ``[(field, previous, now)]`` (see :func:`identity_differences`), empty
            when the recorded identity could not be read.
    """

    def __init__(self, message, output_dir=None, differences=()):
        super().__init__(message)
        self.output_dir = output_dir
        self.differences = list(differences)


def _sha1_lines(lines):
    digest = hashlib.sha1()
    for line in lines:
        digest.update(os.fsencode(line) + b"\n")
    return digest.hexdigest()


def _data_identity(data, dataset):
    """Where the data come from, how many samples, and a digest of the file list (or of the
    array's bytes)."""
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


def run_identity(config, data, dataset, batch_size, epochs, steps_per_epoch, seed,
                 short_videos="skip"):
    """What determines a pretraining run's schedule and data, as a JSON-friendly dict: the
    config (every field), the data (resolved path, number of samples, digest of the file
    list), batch size, epochs, optimizer steps per epoch, seed, video flag (and, for videos,
    ``short_videos``). ``pretrain`` records it in ``output_dir/run_identity.json`` and
    refuses to continue a run whose identity differs."""
    identity = {
        "config": config.to_dict(),
        "video": config.kind == "video",
        "data": _data_identity(data, dataset),
        "batch_size": int(batch_size),
        "epochs": int(epochs),
        "steps_per_epoch": int(steps_per_epoch),
        "seed": int(seed),
    }
    if config.kind == "video":
        identity["short_videos"] = short_videos
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
    """``[(field, old value, new value)]`` of two :func:`run_identity` dicts (config and
    data fields as ``config.depth``, ``data.num_samples``; ``"<absent>"`` for a missing
    field).

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


def _has_run_state(output_dir):
    for name in _RUN_STATE:
        path = os.path.join(output_dir, name)
        if os.path.isfile(path) or (os.path.isdir(path) and os.listdir(path)):
            return True
    return False


def _remove_run_outputs(output_dir):
    """Deletes the files and folders ``pretrain`` writes in ``output_dir`` (``RUN_OUTPUTS``),
    nothing else. Returns the names removed."""
    removed = []
    for name in RUN_OUTPUTS:
        path = os.path.join(output_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
        else:
            continue
        removed.append(name)
    return removed


def _check_rerun(output_dir, identity):
    """``"fresh"`` (nothing to continue), ``"resume"`` (same identity) or ``"unchecked"``
    (a run folder without ``run_identity.json``); raises :class:`RunMismatchError` when the
    folder holds a run with another identity."""
    path = os.path.join(output_dir, RUN_IDENTITY_FILE)
    has_state = _has_run_state(output_dir)
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


# --------------------------------------------------------------------------- pretrain


def pretrain(
    config,
    data,
    epochs=None,
    batch_size=None,
    output_dir="jepa_pretraining",
    steps_per_epoch=None,
    seed=0,
    workers=1,
    verbose=1,
    tensorboard=False,
    save_target_encoder=True,
    backup_freq="epoch",
    callbacks=None,
    overwrite=False,
    short_videos="skip",
):
    """Pretrains an I-JEPA or V-JEPA model with ``model.fit`` and saves the encoder.

    Args:
        config: a :class:`PretrainConfig` or the name of one (``CONFIGS``).
        data: a folder of images / videos (recursive), a list of paths, a CSV of video
            paths, or (images) an ``(N, H, W, C)`` array.
        epochs: passes over the data (default: the config's).
        batch_size: images or clips per step (default: the config's per-device size).
        output_dir: where the logs, checkpoints, backup and encoder go. Rerun the same call
            to resume after an interruption: the run's identity (config, data, batch
            size, epochs, steps per epoch, seed) is kept in ``run_identity.json``, and a
            rerun with other values raises :class:`RunMismatchError` (a ``ValueError``)
            listing them. A run folder from before that file existed is resumed with a
            warning (its arguments cannot be checked).
        steps_per_epoch: optimizer steps per epoch (default: one pass over ``data``; the
            video configs' official 300 "iterations per epoch" is ``config.steps_per_epoch``).
        seed: seeds the weights (``keras.utils.set_random_seed``), the data order and
            augmentations, and the masks.
        workers: ``PyDataset`` loader threads.
        verbose: 1 = Keras progress bar, 2 = one line per epoch, 0 = silent.
        tensorboard: also write TensorBoard logs to ``output_dir/tensorboard``.
        save_target_encoder: save the EMA target encoder (the papers evaluate it); ``False``
            saves the context encoder.
        backup_freq: ``BackupAndRestore`` save frequency (``"epoch"`` or a step count).
        callbacks: extra Keras callbacks.
        overwrite: delete the previous run's files in ``output_dir`` (``RUN_OUTPUTS``:
            backup, checkpoints, logs, encoder, ...; nothing else) and start fresh.
        short_videos: videos only: ``"skip"`` (default) videos too short for a clip, or
            ``"pad"`` them with their last frame (the official loader).

    Returns:
        A dict: ``model`` (the trained ``IJEPA``/``VJEPA``), ``encoder`` (the saved
        ``VisionTransformer``), ``history`` (``{metric: per-epoch values}`` over the whole
        run, resumed parts included), ``encoder_dir``, ``log_path``, ``plot_path``,
        ``seconds``, ``steps`` (schedule lengths).

    Example (a few seconds on a CPU):

    >>> import tempfile
    >>> images = np.random.rand(16, 32, 32, 3).astype("float32")
    >>> config = get_config("ijepa_tiny_cpu").replace(depth=1, predictor_depth=1)
    >>> out = pretrain(config, images, epochs=1, batch_size=8, verbose=0,
    ...                output_dir=tempfile.mkdtemp())
    >>> sorted(os.listdir(out["encoder_dir"]))
    ['config.json', 'metadata.json', 'model.weights.h5']
    """
    import keras

    config = get_config(config)
    epochs = int(epochs or config.epochs)
    batch_size = int(batch_size or config.per_device_batch_size)
    if short_videos not in ("skip", "pad"):
        raise ValueError(f'short_videos must be "skip" or "pad"; got {short_videos!r}.')
    if short_videos != "skip" and config.kind != "video":
        raise ValueError(f"short_videos applies to video configs; {config.name!r} is for "
                         "images.")
    keras.utils.set_random_seed(seed)

    dataset = build_dataset(config, data, batch_size, seed=seed, workers=workers,
                            short_videos=short_videos)
    steps = int(steps_per_epoch or len(dataset))
    identity = run_identity(config, data, dataset, batch_size, epochs, steps, seed,
                            short_videos=short_videos)
    if overwrite:
        removed = _remove_run_outputs(output_dir) if os.path.isdir(output_dir) else []
        if removed and verbose:
            print(f"[keras-jepa] overwrite: removed the previous run's {', '.join(removed)} "
                  f"in {output_dir}", flush=True)
        state = "fresh"
    else:
        state = _check_rerun(output_dir, identity) if os.path.isdir(output_dir) else "fresh"
    if state == "unchecked":
        print(f"warning: {output_dir} holds a run without {RUN_IDENTITY_FILE} (made by an "
              "older keras_jepa), so its arguments could not be checked against these; "
              "resuming it. Pass overwrite=True (CLI: --overwrite) to start fresh instead.",
              file=sys.stderr, flush=True)
    os.makedirs(output_dir, exist_ok=True)
    if state != "resume":
        with open(os.path.join(output_dir, RUN_IDENTITY_FILE), "w") as f:
            json.dump(identity, f, indent=2)
    lengths = schedule_steps(config, epochs, steps)
    m0, m1 = config.ema_momentum
    model = build_model(config, ema_steps=lengths["ema_steps"] if m0 != m1 else None)
    optimizer = build_optimizer(
        config, lengths["total_steps"], lengths["warmup_steps"], steps_per_epoch=steps
    )
    model.compile(optimizer=optimizer)
    with open(os.path.join(output_dir, "config.json"), "w") as f:
        json.dump({"config": config.to_dict(), "epochs": epochs, "batch_size": batch_size,
                   "steps_per_epoch": steps, "seed": seed, **lengths,
                   "backend": keras.backend.backend()}, f, indent=2, default=list)

    log_path = os.path.join(output_dir, "log.csv")
    backup_dir = os.path.join(output_dir, "backup")
    # Files are found now; unreadable ones are only known once read (skipped, with a
    # warning, and counted at the end).
    found = (f"{len(dataset.paths)} images (array)" if isinstance(data, np.ndarray)
             else f"{len(dataset.paths)} files found")
    if verbose:
        print(
            f"[keras-jepa] {config.name} on backend '{keras.backend.backend()}': "
            f"{found}, batch {batch_size}, {steps} steps/epoch x "
            f"{epochs} epochs; lr warmup {lengths['warmup_steps']} of "
            f"{lengths['total_steps']} steps; output {output_dir}"
            + (" (resuming)" if state != "fresh" and os.path.isdir(backup_dir) else ""),
            flush=True,
        )
    cbs = [
        # Restores weights, optimizer (schedules) and the EMA step; the dataset's epoch
        # callback then replays the same order, crops and masks.
        keras.callbacks.BackupAndRestore(backup_dir, save_freq=backup_freq,
                                         delete_checkpoint=False),
        dataset.epoch_callback(),
        ScheduleLogger(optimizer),
        keras.callbacks.CSVLogger(log_path, append=True),
        keras.callbacks.ModelCheckpoint(
            os.path.join(output_dir, "checkpoints", "model.weights.h5"),
            save_weights_only=True,
        ),
    ]
    if tensorboard:
        cbs.append(keras.callbacks.TensorBoard(os.path.join(output_dir, "tensorboard")))
    cbs.extend(callbacks or [])
    start = time.time()
    # shuffle=False: the dataset shuffles itself per (seed, epoch); Keras would reorder
    # batches with Python's global RNG, which a resumed run cannot replay.
    model.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch, shuffle=False,
              callbacks=cbs, verbose=verbose)
    seconds = time.time() - start

    source = model.target_encoder if save_target_encoder else model.encoder
    encoder = type(source).from_config(
        {**source.get_config(), "name": "encoder", "trainable": True}
    )
    encoder.set_weights(source.get_weights())
    encoder_dir = os.path.join(output_dir, "encoder")
    encoder.save_to_preset(encoder_dir)
    history = read_log(log_path)
    plot_path = plot_loss(history, os.path.join(output_dir, "loss.png"),
                          title=f"{config.name} ({keras.backend.backend()})")
    if verbose:
        last = history.get("loss", [float("nan")])[-1]
        print(f"[keras-jepa] done in {seconds:.0f} s; final loss {last:.4f}; "
              f"{'target' if save_target_encoder else 'context'} encoder -> {encoder_dir}",
              flush=True)
        if dataset.num_skipped:
            total = len(dataset.paths)
            reasons = ", ".join(f"{n} {r.replace('_', ' ')}"
                                for r, n in dataset.skipped.items() if n)
            print(f"[keras-jepa] {total - dataset.num_skipped} of {total} files readable; "
                  f"skipped {reasons} (replaced by other files; see the warnings)",
                  flush=True)
    return {
        "model": model, "encoder": encoder, "history": history, "encoder_dir": encoder_dir,
        "log_path": log_path, "plot_path": plot_path, "seconds": seconds, "steps": lengths,
        "dataset": dataset,
    }


# --------------------------------------------------------------------------- program


def add_arguments(parser):
    """Adds the ``pretrain`` options to ``parser`` (also used by applications/pretrain_*.py)."""
    from keras_jepa.models.jepa.recipes import CONFIGS

    parser.add_argument("--config", default="ijepa_tiny_cpu", choices=sorted(CONFIGS),
                        help="named pretraining config (default: ijepa_tiny_cpu)")
    parser.add_argument("--data", required=True,
                        help="folder of images/videos (recursive), or a CSV of video paths")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs (default: the config's)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="per-step batch size (default: the config's per-device size)")
    parser.add_argument("--output", default="jepa_pretraining",
                        help="output folder (default: ./jepa_pretraining). Rerunning the "
                             "same command resumes; other arguments are refused unless "
                             "--overwrite is given")
    parser.add_argument("--overwrite", action="store_true",
                        help="start fresh: delete the previous run's files in --output "
                             "(backup, checkpoints, logs, encoder; nothing else) first")
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help="optimizer steps per epoch (default: one pass over the data)")
    parser.add_argument("--video", action="store_true",
                        help="the data are videos (needs a video config, e.g. vjepa_tiny_cpu)")
    parser.add_argument("--short-videos", choices=["skip", "pad"], default="skip",
                        help="videos too short for one clip: skip them (default), or pad "
                             "them with their last frame (the official loader)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the weights, the data order and augmentations, and the "
                             "masks (default 0)")
    parser.add_argument("--workers", type=int, default=1,
                        help="data-loading threads (default 1)")
    parser.add_argument("--tensorboard", action="store_true",
                        help="also write TensorBoard logs to OUTPUT/tensorboard")
    parser.add_argument("--save-context-encoder", action="store_true",
                        help="save the context encoder instead of the EMA target encoder")
    return parser


def run(args):
    """Runs :func:`pretrain` from parsed ``pretrain`` arguments."""

    config = get_config(args.config)
    if args.video != (config.kind == "video"):
        hint = ("pass --video with a video config (e.g. vjepa_tiny_cpu)" if args.video
                else "drop --video, or use a video config")
        raise ValueError(f"config {args.config!r} is for {config.kind}s; {hint}.")
    if args.short_videos != "skip" and config.kind != "video":
        raise ValueError("--short-videos applies to videos (--video with a video config).")
    pretrain(config, args.data, epochs=args.epochs, batch_size=args.batch_size,
             output_dir=args.output, steps_per_epoch=args.steps_per_epoch, seed=args.seed,
             workers=args.workers, tensorboard=args.tensorboard,
             save_target_encoder=not args.save_context_encoder,
             overwrite=args.overwrite, short_videos=args.short_videos)
    return 0


def script(default_config, video=False, argv=None, description=None):
    """Entry point of ``applications/pretrain_*.py``: the ``pretrain`` options with another
    default config (and ``--video`` implied for video configs)."""
    from keras_jepa.programs import pretrain as program
    from keras_jepa.programs.runner import script_main

    argv = list(sys.argv[1:] if argv is None else argv)
    if video and "--video" not in argv:
        argv.append("--video")
    return script_main(program, argv, description=description, config=default_config)
