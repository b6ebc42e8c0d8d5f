"""``keras-jepa pretrain``: I-JEPA / V-JEPA / V-JEPA 2 / V-JEPA 2.1 pretraining with
``model.fit`` on a folder of images or videos (or in-memory arrays), from a named recipe
(``keras_jepa.models.jepa.recipes``).

V-JEPA 2.1 configs (``vjepa2_1_*``) train ``VJEPA2_1`` (hierarchical targets, dense
context loss) on videos; with ``image_data`` (CLI ``--image-data``) every step also takes
an image batch (``image_batch_size``, CLI ``--image-batch-size``; default the config's),
the official joint image + video training (``VJEPA2_1``'s ``image_loss_weight``).

The run's identity (config, data, batch size, epochs, steps per epoch, seed, and the run or
preset it starts from) is recorded in ``output_dir/run_identity.json``; rerunning the same
command resumes from the last finished epoch, a rerun with other arguments is refused
(:class:`RunMismatchError`, listing the differences) unless ``overwrite=True`` (CLI:
``--overwrite``).

A run can start from the weights of another (``init_from``, CLI ``--init-from``): a
pretraining run folder (its last checkpoint) or a JEPA preset. This is the V-JEPA 2
cooldown: ``keras-jepa pretrain --config vjepa2_vitl16_cooldown --init-from
<pretraining run> ...`` (64 frames, linear lr decay). The clip length and resolution may
change: fixed sin-cos tables are not copied but recomputed for the new grid, and RoPE
positions follow the input; every other weight must have the same shape.

The command also runs LeJEPA: a LeJEPA ``--config`` (``lejepa_*``,
``keras_jepa.models.lejepa.recipes.LEJEPA_CONFIGS``) goes to
``keras_jepa.programs.pretrain_lejepa.pretrain_lejepa``, with the same run-folder checks
(``keras_jepa.programs.run_state``, where the identity and rerun machinery lives).
"""

import json
import os
import sys

import numpy as np

from keras_jepa.models.jepa.recipes import (
    PretrainConfig,
    build_dataset,
    build_model,
    build_optimizer,
    get_config,
    schedule_steps,
)
from keras_jepa.programs.run_state import (  # noqa: F401 (re-exported: public names)
    CHECKPOINT_FILE,
    RUN_IDENTITY_FILE,
    RUN_STATE as _RUN_STATE,
    STANDARD_OUTPUTS,
    RunMismatchError,
    check_rerun as _check_rerun,
    data_identity as _data_identity,
    fit_run,
    has_run_state as _has_run_state,
    identity_differences,
    make_identity,
    remove_run_outputs,
    save_outputs,
    start_run,
    write_run_config,
)


# What ``pretrain`` writes in ``output_dir``: all that ``overwrite=True`` deletes.
RUN_OUTPUTS = STANDARD_OUTPUTS + ("tensorboard",)
# Config fields added after runs were first recorded: left out of the identity at their
# default, so those runs still resume.
_LATER_FIELDS = {"linear_decay": False, "clip_lengths": None,
                 # V-JEPA 2.1 fields: at these defaults a config is not a 2.1 one.
                 "rope_tiled": True, "img_temporal_dim_size": None,
                 "modality_embedding": False, "interpolate_rope": False,
                 "hierarchical_layers": None, "n_output_distillation": None,
                 "predict_all": True, "context_loss_weight": 0.5,
                 "image_context_loss_weight": None, "context_loss_ramp": None,
                 "weight_distance_loss": False, "offset_context_loss": False,
                 "image_loss_weight": 0.5, "image_masks": None, "image_batch_size": None}


def run_identity(config, data, dataset, batch_size, epochs, steps_per_epoch, seed,
                 short_videos="skip", init_from=None, image_data=None, image_batch_size=None):
    """What determines a pretraining run's schedule and data, as a JSON-friendly dict: the
    config (every field), the data (resolved path, number of samples, digest of the file
    list), batch size, epochs, optimizer steps per epoch, seed, video flag (and, for videos,
    ``short_videos``; for a run started from another, ``init_from``: the resolved run
    folder or the preset; for a joint V-JEPA 2.1 run, the image data and image batch size).
    ``pretrain`` records it in ``output_dir/run_identity.json`` and refuses to continue a
    run whose identity differs."""
    fields = {k: v for k, v in config.to_dict().items()
              if k not in _LATER_FIELDS or v != _LATER_FIELDS[k]}
    extra = {"video": config.kind == "video"}
    if config.kind == "video":
        extra["short_videos"] = short_videos
    if init_from is not None:
        extra["init_from"] = _init_source(init_from)
    if image_data is not None:
        extra["image_data"] = _data_identity(image_data, dataset.images)
        extra["image_batch_size"] = int(image_batch_size)
    return make_identity(fields, data, dataset, batch_size, epochs, steps_per_epoch, seed,
                         **extra)


def _remove_run_outputs(output_dir):
    """Deletes the files and folders ``pretrain`` writes in ``output_dir`` (``RUN_OUTPUTS``),
    nothing else. Returns the names removed."""
    return remove_run_outputs(output_dir, RUN_OUTPUTS)


# --------------------------------------------------------------------------- init_from


def _is_run_folder(path):
    return os.path.isfile(os.path.join(path, RUN_IDENTITY_FILE))


def _init_source(init_from):
    """``init_from`` as recorded in the run identity: a run folder's real path, or the
    preset handle (a preset folder's real path)."""
    if os.path.isdir(os.fspath(init_from)):
        return os.path.realpath(os.fspath(init_from))
    return str(init_from)


def load_init_model(init_from, kind):
    """The trained model a run starts from: a ``pretrain`` run folder (rebuilt from its
    ``config.json`` and loaded from ``checkpoints/model.weights.h5``, the last finished
    epoch) or a JEPA preset (name or folder) of the same kind (``"image"`` / ``"video"``)."""
    from keras_jepa.models.jepa.ijepa import IJEPA
    from keras_jepa.models.jepa.vjepa import VJEPA

    path = os.fspath(init_from)
    if os.path.isdir(path) and _is_run_folder(path):
        weights = os.path.join(path, CHECKPOINT_FILE)
        config_path = os.path.join(path, "config.json")
        if not os.path.isfile(weights) or not os.path.isfile(config_path):
            raise ValueError(
                f"init_from={path!r} is a pretraining run folder without "
                f"{CHECKPOINT_FILE} and config.json: it has not finished an epoch yet."
            )
        with open(config_path) as f:
            source_config = PretrainConfig(**json.load(f)["config"])
        if source_config.kind != kind:
            raise ValueError(
                f"init_from={path!r} is a {source_config.kind} run ({source_config.name}); "
                f"this run is for {kind}s."
            )
        m0, m1 = source_config.ema_momentum
        model = build_model(source_config, ema_steps=None if m0 == m1 else 1)
        model.load_weights(weights)
        return model
    cls = VJEPA if kind == "video" else IJEPA
    try:
        return cls.from_preset(path)
    except (ValueError, FileNotFoundError) as error:
        raise ValueError(
            f"init_from={path!r} is neither a pretraining run folder (with "
            f"{RUN_IDENTITY_FILE}) nor a loadable {cls.__name__} preset: {error}"
        ) from None


def _transferable(module):
    """``{path inside module: variable}`` of the weights a new run takes over: all but the
    fixed sin-cos tables (recomputed for the new grid)."""
    prefix = module.path + "/"
    return {v.path[len(prefix):] if v.path.startswith(prefix) else v.path: v
            for v in module.weights if not v.path.endswith("pos_embed/table")}


def init_weights_from(model, source):
    """Copies the encoder, target-encoder and predictor weights of ``source`` (a trained
    ``IJEPA``/``VJEPA``) into ``model`` (same kind, possibly another clip length or
    resolution). Fixed sin-cos position tables are left as built (recomputed for the new
    grid); RoPE has no weights. Raises ``ValueError`` naming the first variable that is
    missing on either side or differs in shape. Returns the number of variables copied.

    The optimizer state and the EMA step are not copied: the new run's schedules start
    from step 0 (the official cooldown also reloads the Adam moments).
    """
    if type(source) is not type(model):
        raise ValueError(
            f"init_from holds a {type(source).__name__}; this run trains a "
            f"{type(model).__name__}."
        )
    pairs = []
    for part in ("encoder", "target_encoder", "predictor"):
        new, old = _transferable(getattr(model, part)), _transferable(getattr(source, part))
        for key in sorted(set(new) | set(old)):
            if key not in new or key not in old:
                where = "this run's model" if key in new else "the init_from model"
                raise ValueError(
                    f"init_from: {part} weight {key!r} exists only in {where}; the "
                    "architectures differ (width, depth, heads, position embedding, mask "
                    "tokens must match; only clip length and resolution may change)."
                )
            if tuple(new[key].shape) != tuple(old[key].shape):
                raise ValueError(
                    f"init_from: {part} weight {key!r} has shape {tuple(old[key].shape)} in "
                    f"the init_from model and {tuple(new[key].shape)} here; only clip length "
                    "and resolution may change between the two runs."
                )
            pairs.append((new[key], old[key]))
    for target, value in pairs:
        target.assign(value.value)
    return len(pairs)


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
    init_from=None,
    image_data=None,
    image_batch_size=None,
):
    """Pretrains an I-JEPA, V-JEPA or V-JEPA 2.1 model with ``model.fit`` and saves the
    encoder.

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
        init_from: start from the weights of a ``pretrain`` run folder (its last finished
            epoch) or a JEPA preset, e.g. the V-JEPA 2 cooldown from its pretraining run
            (see :func:`init_weights_from`); recorded in the run identity.
        image_data: V-JEPA 2.1 configs only: a folder / list of images or an
            ``(N, H, W, C)`` array; every step then also trains on an image batch (the
            official joint image + video training; loss ``r * L_image + (1 - r) *
            L_video`` with the config's ``image_loss_weight``). Recorded in the identity.
        image_batch_size: images per step with ``image_data`` (default: the config's
            ``image_batch_size``).

    Returns:
        A dict: ``model`` (the trained ``IJEPA``/``VJEPA``/``VJEPA2_1``), ``encoder`` (the saved
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
    if len(config.clip_lengths or ()) > 1 and keras.backend.backend() == "tensorflow":
        raise ValueError(
            f"clip_lengths={list(config.clip_lengths)}: batches of several clip lengths need "
            "a static frame count per step, which JAX and torch fit give; TensorFlow's "
            "dataset adapter merges them into an unknown one. Use the jax or torch backend "
            "(KERAS_BACKEND), or one clip length per run."
        )
    if image_data is not None:
        if config.hierarchical_layers is None or config.kind != "video":
            raise ValueError(
                f"image_data (CLI --image-data) is for V-JEPA 2.1 configs (joint image + "
                f"video steps, e.g. vjepa2_1_tiny_cpu); {config.name!r} is not one."
            )
        image_batch_size = int(image_batch_size or config.image_batch_size or batch_size)
    elif image_batch_size is not None:
        raise ValueError("image_batch_size (CLI --image-batch-size) needs image_data.")
    keras.utils.set_random_seed(seed)

    dataset = build_dataset(config, data, batch_size, seed=seed, workers=workers,
                            short_videos=short_videos, image_data=image_data,
                            image_batch_size=image_batch_size)
    steps = int(steps_per_epoch or len(dataset))
    identity = run_identity(config, data, dataset, batch_size, epochs, steps, seed,
                            short_videos=short_videos, init_from=init_from,
                            image_data=image_data, image_batch_size=image_batch_size)
    state = start_run(output_dir, identity, overwrite=overwrite, outputs=RUN_OUTPUTS,
                      verbose=verbose)
    lengths = schedule_steps(config, epochs, steps)
    m0, m1 = config.ema_momentum
    model = build_model(config, ema_steps=lengths["ema_steps"] if m0 != m1 else None)
    if init_from is not None:
        # A resumed run then restores its own weights from the backup, over these.
        copied = init_weights_from(model, load_init_model(init_from, config.kind))
        if verbose:
            print(f"[keras-jepa] initialised {copied} weights from {init_from}", flush=True)
    optimizer = build_optimizer(
        config, lengths["total_steps"], lengths["warmup_steps"], steps_per_epoch=steps
    )
    model.compile(optimizer=optimizer)
    write_run_config(output_dir, config, epochs=epochs, batch_size=batch_size,
                     steps_per_epoch=steps, seed=seed, **lengths)

    backup_dir = os.path.join(output_dir, "backup")
    # Files are found now; unreadable ones are only known once read (skipped, with a
    # warning, and counted at the end).
    found = (f"{len(dataset.paths)} images (array)" if isinstance(data, np.ndarray)
             else f"{len(dataset.paths)} files found")
    if image_data is not None:
        found += (f" + {len(dataset.images.paths)} images ({image_batch_size} per step, "
                  f"weight {config.image_loss_weight})")
    if verbose:
        print(
            f"[keras-jepa] {config.name} on backend '{keras.backend.backend()}': "
            f"{found}, batch {batch_size}, {steps} steps/epoch x "
            f"{epochs} epochs; lr warmup {lengths['warmup_steps']} of "
            f"{lengths['total_steps']} steps; output {output_dir}"
            + (" (resuming)" if state != "fresh" and os.path.isdir(backup_dir) else ""),
            flush=True,
        )
    # BackupAndRestore restores weights, optimizer (schedules) and the EMA step; the
    # dataset's epoch callback then replays the same order, crops and masks.
    extra = ([keras.callbacks.TensorBoard(os.path.join(output_dir, "tensorboard"))]
             if tensorboard else [])
    seconds = fit_run(model, dataset, optimizer, output_dir, epochs,
                      steps_per_epoch=steps_per_epoch, callbacks=extra + list(callbacks or []),
                      verbose=verbose, backup_freq=backup_freq)
    outputs = save_outputs(model.target_encoder if save_target_encoder else model.encoder,
                           output_dir, title=f"{config.name} ({keras.backend.backend()})")
    history, encoder_dir = outputs["history"], outputs["encoder_dir"]
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
    return {"model": model, **outputs, "seconds": seconds, "steps": lengths,
            "dataset": dataset}


# --------------------------------------------------------------------------- program


def add_arguments(parser):
    """Adds the ``pretrain`` options to ``parser`` (also used by applications/pretrain_*.py)."""
    from keras_jepa.models.jepa.recipes import CONFIGS
    from keras_jepa.models.lejepa.recipes import LEJEPA_CONFIGS

    parser.add_argument("--config", default="ijepa_tiny_cpu",
                        choices=sorted(CONFIGS) + sorted(LEJEPA_CONFIGS),
                        help="named pretraining config: I-JEPA / V-JEPA / V-JEPA 2 / "
                             "V-JEPA 2.1 (vjepa2_1_*: videos, optionally with "
                             "--image-data), or LeJEPA (lejepa_*: images, run by "
                             "pretrain_lejepa) (default: ijepa_tiny_cpu)")
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
    parser.add_argument("--image-data", default=None, metavar="FOLDER",
                        help="V-JEPA 2.1 configs (vjepa2_1_*): a folder of images; each "
                             "step also trains on an image batch (the official joint "
                             "image + video training)")
    parser.add_argument("--image-batch-size", type=int, default=None,
                        help="images per step with --image-data (default: the config's)")
    parser.add_argument("--short-videos", choices=["skip", "pad"], default="skip",
                        help="videos too short for one clip: skip them (default), or pad "
                             "them with their last frame (the official loader)")
    parser.add_argument("--init-from", default=None, metavar="RUN_OR_PRESET",
                        help="start from the weights of a pretraining run folder (its last "
                             "checkpoint) or a JEPA preset, e.g. the V-JEPA 2 cooldown "
                             "(--config vjepa2_vitl16_cooldown) from its pretraining run; "
                             "clip length and resolution may differ")
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


def _run_lejepa(args):
    """Runs ``pretrain_lejepa`` from parsed ``pretrain`` arguments (a LeJEPA ``--config``)."""
    from keras_jepa.programs.pretrain_lejepa import pretrain_lejepa

    refused = [("--video", args.video, "LeJEPA configs train on images"),
               ("--image-data", args.image_data is not None,
                "it adds images to V-JEPA 2.1 video runs"),
               ("--init-from", args.init_from is not None,
                "LeJEPA runs start from fresh weights"),
               ("--short-videos pad", args.short_videos != "skip", "it applies to videos"),
               ("--save-context-encoder", args.save_context_encoder,
                "LeJEPA has one encoder (no EMA target), which is saved"),
               ("--tensorboard", args.tensorboard, "LeJEPA runs log to log.csv only")]
    for flag, given, reason in refused:
        if given:
            raise ValueError(f"{flag} does not apply to the LeJEPA config {args.config!r}: "
                             f"{reason}. Drop {flag.split()[0]}, or use a JEPA config.")
    pretrain_lejepa(args.config, args.data, epochs=args.epochs, batch_size=args.batch_size,
                    output_dir=args.output, steps_per_epoch=args.steps_per_epoch,
                    seed=args.seed, workers=args.workers, overwrite=args.overwrite)
    return 0


def run(args):
    """Runs :func:`pretrain` from parsed ``pretrain`` arguments (``pretrain_lejepa`` for a
    LeJEPA config)."""
    from keras_jepa.models.lejepa.recipes import LEJEPA_CONFIGS

    if args.config in LEJEPA_CONFIGS:
        return _run_lejepa(args)

    config = get_config(args.config)
    if args.video != (config.kind == "video"):
        hint = ("pass --video with a video config (e.g. vjepa_tiny_cpu)" if args.video
                else "drop --video, or use a video config")
        raise ValueError(f"config {args.config!r} is for {config.kind}s; {hint}.")
    if args.short_videos != "skip" and config.kind != "video":
        raise ValueError("--short-videos applies to videos (--video with a video config).")
    if args.image_data is not None and config.hierarchical_layers is None:
        raise ValueError(f"--image-data is for V-JEPA 2.1 configs (vjepa2_1_*); "
                         f"{args.config!r} is not one.")
    pretrain(config, args.data, epochs=args.epochs, batch_size=args.batch_size,
             output_dir=args.output, steps_per_epoch=args.steps_per_epoch, seed=args.seed,
             workers=args.workers, tensorboard=args.tensorboard,
             save_target_encoder=not args.save_context_encoder,
             overwrite=args.overwrite, short_videos=args.short_videos,
             init_from=args.init_from, image_data=args.image_data,
             image_batch_size=args.image_batch_size)
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
