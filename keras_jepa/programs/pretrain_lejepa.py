"""LeJEPA pretraining with ``model.fit`` on a folder of images or an in-memory array, from
a named config (``keras_jepa.models.lejepa.recipes.LEJEPA_CONFIGS``).

Outputs in ``output_dir``: ``config.json``, ``log.csv`` (per epoch: ``loss``,
``lejepa_loss``, ``sigreg``, ``invariance``, the learning rate and, with labels,
``probe_loss`` / ``probe_accuracy``), ``loss.png``, ``checkpoints/model.weights.h5``, a
``backup/`` that a rerun of the same call resumes from, and ``encoder/`` (a preset that
``VisionTransformer.from_preset`` reads).

The run's identity (config, data, batch size, epochs, steps per epoch, seed, and explicit
labels) is recorded in ``run_identity.json``: a rerun with other arguments is refused
with ``RunMismatchError`` listing the differences, unless ``overwrite=True``
(``keras_jepa.programs.run_state``, shared with ``keras-jepa pretrain``, which runs this for
a LeJEPA ``--config``).
"""

import hashlib
import os

import numpy as np

from keras_jepa.data.multicrop import multicrop_dataset
from keras_jepa.models.lejepa.recipes import (
    build_model,
    build_optimizer,
    build_views,
    get_lejepa_config,
    schedule_steps,
)
from keras_jepa.programs.run_state import (
    STANDARD_OUTPUTS,
    fit_run,
    make_identity,
    save_outputs,
    start_run,
    write_run_config,
)

# What ``pretrain_lejepa`` writes in ``output_dir``: all that ``overwrite=True`` deletes.
LEJEPA_OUTPUTS = STANDARD_OUTPUTS


def lejepa_run_identity(config, data, dataset, batch_size, epochs, steps_per_epoch, seed,
                        labels=None):
    """What determines a LeJEPA run, as recorded in ``run_identity.json``: the config (every
    field), the data (``keras_jepa.programs.run_state.data_identity``), batch size, epochs,
    optimizer steps per epoch, seed and, when given as an array, a digest of the labels
    (a folder's labels follow its file list).

    Example:

    >>> files = type("D", (), {"paths": ["a.png"]})
    >>> config = get_lejepa_config("lejepa_tiny_cpu")
    >>> identity = lejepa_run_identity(config, ["a.png"], files, 8, 1, 4, 0)
    >>> identity["config"]["name"], identity["seed"], "labels" in identity
    ('lejepa_tiny_cpu', 0, False)
    """
    extra = {}
    if labels is not None and not isinstance(labels, str):
        values = np.ascontiguousarray(np.asarray(labels, "int64"))
        extra["labels"] = hashlib.sha1(values.view(np.uint8).reshape(-1)).hexdigest()
    return make_identity(config.to_dict(), data, dataset, batch_size, epochs,
                         steps_per_epoch, seed, **extra)


def pretrain_lejepa(config, data, epochs=None, batch_size=None, output_dir="lejepa_pretraining",
                    labels=None, steps_per_epoch=None, seed=0, workers=1, verbose=1,
                    callbacks=None, overwrite=False):
    """Pretrains a LeJEPA model with ``model.fit`` and saves its encoder.

    Args:
        config: a ``LeJEPAConfig`` or the name of one (``LEJEPA_CONFIGS``).
        data: a folder of images (recursive; class folders give labels), a list of image
            paths, or an ``(N, H, W, C)`` array (``uint8``, or floats in ``[0, 1]``).
        epochs, batch_size: default the config's.
        output_dir: where logs, checkpoints, backup and encoder go; rerunning the same
            call resumes from the last finished epoch. The run's identity is kept in
            ``run_identity.json``; a rerun with other values raises ``RunMismatchError``
            (a ``ValueError``) listing them.
        labels: one int per array image: adds the online linear probe (its accuracy is
            logged as ``probe_accuracy``). Folders with class subfolders give labels too.
        steps_per_epoch: optimizer steps per epoch (default: one pass over ``data``).
        seed: seeds the weights, the slices, the data order and the views.
        workers: data-loading threads.
        verbose: Keras's ``fit`` verbosity; also prints a summary when not 0.
        callbacks: extra Keras callbacks.
        overwrite: delete the previous run's files in ``output_dir`` (``LEJEPA_OUTPUTS``;
            nothing else) first and start fresh.

    Returns:
        ``{"model", "encoder", "history", "encoder_dir", "log_path", "plot_path",
        "seconds", "steps"}``.

    Example (a few seconds on a CPU):

    >>> import tempfile
    >>> images = np.random.rand(16, 32, 32, 3).astype("float32")
    >>> config = get_lejepa_config("lejepa_tiny_cpu").replace(depth=1, num_slices=32)
    >>> out = pretrain_lejepa(config, images, epochs=1, batch_size=8, verbose=0,
    ...                       output_dir=tempfile.mkdtemp())
    >>> sorted(os.listdir(out["encoder_dir"]))
    ['config.json', 'metadata.json', 'model.weights.h5']
    """
    import keras

    from keras_jepa.backend.seeding import seed_everything

    config = get_lejepa_config(config)
    epochs = int(epochs or config.epochs)
    batch_size = int(batch_size or config.batch_size)
    seed_everything(seed)
    if labels is None and not isinstance(data, np.ndarray):
        labels = "inferred"
    dataset = multicrop_dataset(data, batch_size, build_views(config), labels=labels,
                                seed=seed, workers=workers)
    steps = int(steps_per_epoch or len(dataset))
    identity = lejepa_run_identity(config, data, dataset, batch_size, epochs, steps, seed,
                                   labels=labels)
    state = start_run(output_dir, identity, overwrite=overwrite, outputs=LEJEPA_OUTPUTS,
                      verbose=verbose)
    has_labels = dataset.labels is not None
    num_classes = int(np.max(dataset.labels)) + 1 if has_labels else None
    lengths = schedule_steps(config, epochs, steps)
    model = build_model(config, num_classes=num_classes, seed=seed)
    optimizer = build_optimizer(config, **lengths)
    model.compile(optimizer=optimizer)
    write_run_config(output_dir, config, epochs=epochs, batch_size=batch_size,
                     steps_per_epoch=steps, seed=seed, num_classes=num_classes, **lengths)
    resuming = state != "fresh" and os.path.isdir(os.path.join(output_dir, "backup"))
    if verbose:
        print(f"[keras-jepa] {config.name} on backend '{keras.backend.backend()}': "
              f"{len(dataset.paths)} images, batch {batch_size}, {steps} steps/epoch x "
              f"{epochs} epochs, {config.num_global_views} global + "
              f"{config.num_local_views} local views; output {output_dir}"
              + (" (resuming)" if resuming else ""), flush=True)
    seconds = fit_run(model, dataset, optimizer, output_dir, epochs,
                      steps_per_epoch=steps_per_epoch, callbacks=list(callbacks or []),
                      verbose=verbose)
    outputs = save_outputs(model.encoder, output_dir,
                           title=f"{config.name} ({keras.backend.backend()})")
    if verbose:
        last = outputs["history"].get("lejepa_loss", [float("nan")])[-1]
        print(f"[keras-jepa] done in {seconds:.0f} s; final LeJEPA loss {last:.4f}; "
              f"encoder -> {outputs['encoder_dir']}", flush=True)
    return {"model": model, **outputs, "seconds": seconds, "steps": lengths}
