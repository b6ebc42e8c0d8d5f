"""``keras-jepa demo``: intuitive physics emerging from V-JEPA pretraining, on a CPU.

1. Data: procedural violation-of-expectation videos (``keras_jepa.data.physics_videos``).
   Pretraining sees only *possible* videos (both histories of random scenes of every
   property, plus property-neutral distractor scenes). Evaluation uses held-out minimal sets
   (other seeds): matched (possible, impossible) pairs that are identical up to the splice
   and made of the same frames.
2. Pretraining: a tiny V-JEPA (``VisionTransformer`` video encoder, EMA target encoder,
   predictor, L2 on layer-normed targets: ``loss_exp=2``, where the official recipe uses
   L1) trained with ``model.fit`` on random 8-frame
   windows (every 3rd frame, so a window covers nearly the whole video), with
   ``MultiBlockMask3D`` masks. The masks use the official
   ``max_temporal_keep`` option, so that later time steps are predicted from earlier ones
   as well as from the surrounding tubes.
3. Evaluation (``keras_jepa.evaluation.video_surprise``): sliding windows with stride 2
   (one window per 24-frame video at the default frame step), context lengths 2/4/6
   frames, surprise = L1 between predicted and target-encoder features of the rest of
   the window; pairwise accuracy per property (best context row, as the paper reports),
   for the trained model, the same network at its initial weights, and two pixel-space
   baselines: ``pixel_copy`` (error of predicting each frame by the previous one) and
   ``pixel_predictor`` (``keras_jepa.evaluation.pixel_predictor.PixelPredictor``: the
   V-JEPA's encoder and predictor sizes with a linear head to pixels, trained on the same
   clips and masks for the same wall-clock time as the V-JEPA, its surprise scored the
   same way: L1 between predicted and true pixels of the rest of each window, same
   windows and context lengths). Tables are given per property, over all properties by
   condition (occluded or visible, moving or static) and per property and condition.

A PNG of the surprise of one object-permanence pair (over the windows, or over the context
lengths when a video holds one window) and the loss curve are saved in ``output_dir``.
"""

import os
import time

import numpy as np

from keras_jepa.data.physics_videos import (
    PROPERTIES,
    make_training_videos,
    make_voe_dataset,
)

DEFAULT_OUTPUT = "keras_jepa_demo"  # relative to the current directory

DEMO_CONFIG = dict(
    # frame_step 3: an 8-frame window spans 22 of the 24 frames, long enough to hold an
    # occlusion whole (the object before the screen rises, and the reveal). With frame
    # step 2 (15 frames) no window held both, and occluded permanence stayed at chance.
    image_size=32, patch_size=8, video_frames=24, frame_step=3, frames_per_clip=8,
    tubelet_size=2, hidden_dim=64, depth=2, num_heads=4, predictor_dim=64, predictor_depth=2,
    # batch_size and steps: motion is learned late. Seed 0, JAX, all pairs (pixel baseline
    # off, L1): batch 16 for 3000 / 4000 / 6000 / 16000 steps gave 65.0 / 67.4 / 70.1 /
    # 81.7% (16000 steps: 843 s of training; gravity and inertia 78%). In the same time
    # more, smaller steps learn more: batch 8 x 11000 steps (258 s) 77.5%, batch 4 x 16000
    # (224 s) 69.0%, batch 12 x 8000 (256 s) 69.9%. The patch embedding as a matmul and
    # 10 steps per compiled call took the step from ~22 to ~17 ms (JAX, two cores), so
    # 14500 steps fit in about the time 11000 took; the pixel baseline trains as long,
    # and the demo stays within 10 minutes on two cores.
    predictor_heads=4, num_train_videos=1200, batch_size=8, steps=14500,
    # Optimizer steps per compiled call (at most; each epoch splits into whole calls; 1
    # on PyTorch, whose Keras trainer runs one): Keras's per-call work (callbacks, state
    # bookkeeping) is paid once per call.
    steps_per_execution=10,
    lr=3e-3, start_lr=2e-4, final_lr=1e-5, warmup=0.1, weight_decay=0.05,
    ema_momentum=(0.998, 1.0), context_lengths=(2, 4, 6), scenes_per_property=32,
    # Wall-clock seconds of training of the pixel-space predictor baseline: None = the
    # V-JEPA's training time (the same budget), 0 = skip it.
    pixel_budget=None,
    # L2 (|error| ** 2 / 2; the official code's loss_exp, 1 by default): seed 0, 14500
    # steps, pixel baseline off: 80.6% over all pairs (L1: 76.1), occluded and moving 70.2
    # (64.6), gravity 60.9 (48.4). The pixel predictor uses the same exponent.
    loss_exp=2.0,
    # One causal mask config: a one-token tube over the clip plus every token after the
    # first half of the clip are targets (MultiBlockMask3D's max_temporal_keep).
    masks=(
        dict(spatial_scale=(0.07, 0.07), temporal_scale=(1.0, 1.0), aspect_ratio=(1.0, 1.0),
             num_blocks=1, max_temporal_keep=0.5),
    ),
)


def copy_frame_surprise(videos):
    """Pixel-space baseline: per frame, the mean absolute error of predicting the frame by
    the previous one. ``(N, T, H, W, C)`` -> ``(N, 1, T - 1)`` (one "context row", one
    "window" per frame), the layout of ``video_surprise``.

    Example:

    >>> v = np.zeros((1, 3, 2, 2, 3), "float32"); v[0, 2] = 1.0
    >>> copy_frame_surprise(v).tolist()
    [[[0.0, 1.0]]]
    """
    v = np.asarray(videos)
    v = v.astype("float32") / 255.0 if v.dtype == np.uint8 else v.astype("float32")
    err = np.abs(v[:, 1:] - v[:, :-1]).mean(axis=(2, 3, 4))
    return err[:, None, :]


class _ClipBatches:
    """Batches of random windows of the training videos plus their masks (a factory for a
    ``keras.utils.PyDataset``; built lazily so importing this module stays light)."""

    @staticmethod
    def make(videos, frames_per_clip, frame_step, batch_size, sampler, steps, seed, offset=0):
        import keras

        from keras_jepa.evaluation.surprise import preprocess_videos

        class ClipBatches(keras.utils.PyDataset):
            def __len__(self):
                return steps

            def __getitem__(self, index):
                index = int(index) + int(offset)
                rng = np.random.default_rng([seed, index])
                pick = rng.integers(0, len(videos), batch_size)
                # A random window of frames_per_clip frames taken every frame_step frames.
                span = frame_step * (frames_per_clip - 1) + 1
                starts = rng.integers(0, videos.shape[1] - span + 1, batch_size)
                offsets = starts[:, None] + frame_step * np.arange(frames_per_clip)
                clips = videos[pick[:, None], offsets]
                flip = rng.random(batch_size) < 0.5
                clips[flip] = clips[flip][:, :, :, ::-1]
                masks = sampler(batch_size, step=index)
                return {
                    "videos": preprocess_videos(clips),
                    "context_indices": tuple(masks["context_indices"]),
                    "target_indices": tuple(masks["target_indices"]),
                }

        return ClipBatches()


def build_demo_model(config=None, steps=None, seed=0):
    """The tiny V-JEPA of the demo (``VisionTransformer`` video encoder + predictor).

    Example:

    >>> model = build_demo_model(dict(DEMO_CONFIG, depth=1, predictor_depth=1))
    >>> model.encoder.grid_size()
    (4, 4, 4)
    """
    import keras

    from keras_jepa.models import VJEPA

    c = dict(DEMO_CONFIG, **(config or {}))
    keras.utils.set_random_seed(seed)
    encoder = _demo_encoder(c)
    m0, m1 = c["ema_momentum"]
    return VJEPA(
        encoder, num_mask_tokens=len(c["masks"]), predictor_dim=c["predictor_dim"],
        predictor_depth=c["predictor_depth"], predictor_heads=c["predictor_heads"],
        ema_momentum=(m0, m1), ema_steps=int(steps or c["steps"]) if m0 != m1 else None,
        loss_exp=c["loss_exp"],
    )


def _demo_encoder(c):
    """The demo's video encoder for config ``c`` (V-JEPA and pixel baseline alike)."""
    from keras_jepa.models import VisionTransformer

    return VisionTransformer(
        image_size=c["image_size"], patch_size=c["patch_size"],
        num_frames=c["frames_per_clip"], tubelet_size=c["tubelet_size"],
        hidden_dim=c["hidden_dim"], depth=c["depth"], num_heads=c["num_heads"],
        uniform_power=True,
    )


def build_pixel_predictor(config=None, seed=0):
    """The pixel-space baseline of the demo: the V-JEPA's encoder and predictor sizes, a
    linear head to the pixels of each token
    (``keras_jepa.evaluation.pixel_predictor.PixelPredictor``).

    Example:

    >>> model = build_pixel_predictor(dict(DEMO_CONFIG, depth=1, predictor_depth=1))
    >>> model.pixel_dim == DEMO_CONFIG["tubelet_size"] * DEMO_CONFIG["patch_size"] ** 2 * 3
    True
    """
    import keras

    from keras_jepa.evaluation.pixel_predictor import PixelPredictor

    c = dict(DEMO_CONFIG, **(config or {}))
    keras.utils.set_random_seed(seed + 7)
    encoder = _demo_encoder(c)
    return PixelPredictor(encoder, predictor_dim=c["predictor_dim"],
                          predictor_depth=c["predictor_depth"],
                          predictor_heads=c["predictor_heads"],
                          num_mask_tokens=len(c["masks"]), loss_exp=c["loss_exp"])


class _StepTimes:
    """A Keras callback factory recording the wall time at the end of every batch and,
    given a ``deadline`` (a ``time.time()`` value), stopping the fit once it has passed."""

    @staticmethod
    def make(deadline=None):
        import keras

        class StepTimes(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times, self.steps = [], []  # after each call, and steps done by then
                self._done, self._last = 0, -1

            def on_epoch_begin(self, epoch, logs=None):
                self._last = -1

            def on_train_batch_end(self, batch, logs=None):
                # With steps_per_execution > 1, ``batch`` is the last step of the call.
                self._done += int(batch) - self._last
                self._last = int(batch)
                self.times.append(time.time())
                self.steps.append(self._done)
                if deadline is not None and self.times[-1] >= deadline:
                    self.model.stop_training = True

        return StepTimes()


def _divisor_at_most(n, k):
    """The largest divisor of ``n`` that is at most ``k``: an epoch count (at most 10
    progress lines), or the steps per compiled call that split an epoch into whole calls
    (Keras reports the last step of a call that stops short as if it had run in full)."""
    return max(d for d in range(1, max(min(int(n), int(k)), 1) + 1) if n % d == 0)


def train_pixel_predictor(config, videos, seconds, seed=0, verbose=0, calibration_steps=100):
    """Trains :func:`build_pixel_predictor` on the demo's clips and masks for about
    ``seconds`` of wall time (the V-JEPA's training time: the same budget).

    The first ``calibration_steps`` (at most a tenth of ``config["steps"]``, at least 5)
    measure the time of a step (after compilation); the learning-rate schedule is then set
    to the number of steps that fit in what is left of the budget, so the run ends with
    the schedule (warmup-cosine, as the V-JEPA's). Training stops when ``seconds`` have
    passed, so when the steps run slower than calibrated (on a machine whose load
    changes, for example) the schedule is cut short rather than the budget exceeded. The
    steps done and the time spent are returned.

    Returns ``(model, {"steps", "seconds", "losses"})``.
    """
    from keras_jepa.backend.execution import steps_per_call
    from keras_jepa.masks import MultiBlockMask3D
    from keras_jepa.training.optimizers import JEPAAdamW, WarmupCosineSchedule

    c = dict(DEMO_CONFIG, **(config or {}))
    model = build_pixel_predictor(c, seed=seed)
    grid = model.encoder.grid_size()
    sampler = MultiBlockMask3D(grid_size=grid, configs=list(c["masks"]), seed=seed + 7)
    guess = int(c["steps"])
    lr = WarmupCosineSchedule(c["start_lr"], c["lr"], c["final_lr"],
                              warmup_steps=int(c["warmup"] * guess), total_steps=guess)
    # At least 5 calibration steps, at most a tenth of the V-JEPA's steps.
    cal = int(min(calibration_steps, max(5, int(c["steps"]) // 10)))
    per_call = steps_per_call(_divisor_at_most(cal, c["steps_per_execution"]))
    model.compile(optimizer=JEPAAdamW(learning_rate=lr, weight_decay=c["weight_decay"]),
                  steps_per_execution=per_call)
    start = time.time()
    timer = _StepTimes.make()
    data = _ClipBatches.make(videos, c["frames_per_clip"], c["frame_step"], c["batch_size"],
                             sampler, cal, seed + 7)
    h1 = model.fit(data, epochs=1, steps_per_epoch=cal, verbose=0, callbacks=[timer])
    if len(timer.times) > 1:
        per_step = (timer.times[-1] - timer.times[0]) / (timer.steps[-1] - timer.steps[0])
    else:  # one call (tiny runs): its time, trace included, is all there is to go by
        per_step = (timer.times[0] - start) / timer.steps[0]
    # The step is traced again for the new schedule: reserve the first trace's time for it.
    retrace = max(timer.times[0] - start - per_step * timer.steps[0], 0.0)
    left = float(seconds) - (time.time() - start) - retrace
    # Epochs of whole calls: at most 10 epochs, at least one call each.
    rest = max(int(left / max(per_step, 1e-6)), 0) // per_call
    epochs = _divisor_at_most(rest, 10)
    total = cal + rest * per_call
    losses = [float(v) for v in h1.history["loss"]]
    if total > cal:
        # The schedule over the steps that fit; retrace the step with the new constants.
        lr.total_steps, lr.warmup_steps = total, int(c["warmup"] * total)
        model.train_function = None
        data = _ClipBatches.make(videos, c["frames_per_clip"], c["frame_step"],
                                 c["batch_size"], sampler, total - cal, seed + 7, offset=cal)
        timer = _StepTimes.make(deadline=start + float(seconds))
        h2 = model.fit(data, epochs=epochs, steps_per_epoch=(total - cal) // epochs,
                       verbose=1 if verbose else 0, callbacks=[timer])
        losses += [float(v) for v in h2.history["loss"]]
        total = cal + (timer.steps[-1] if timer.steps else 0)
    return model, {"steps": total, "seconds": time.time() - start, "losses": losses}


def _cpu_seconds():
    t = os.times()
    return t.user + t.system


def _plot_loss(losses, path):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(np.arange(1, len(losses) + 1), losses)
    ax.set_xlabel("epoch")
    ax.set_ylabel("V-JEPA loss")
    ax.set_title("V-JEPA pretraining on possible-only videos")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run_demo(steps=None, seed=0, output_dir=None, properties=PROPERTIES,
             scenes_per_property=None, verbose=1, **overrides):
    """Runs the intuitive-physics demo and returns its numbers.

    Args:
        steps: optimizer steps (default ``DEMO_CONFIG["steps"]``).
        seed: seeds the training videos, weights, masks and batches (the evaluation
            scenes use a disjoint seed stream).
        output_dir: PNGs, ``results.json``, ``surprise.npz`` (the raw surprises of both
            networks with the pairs' metadata) and the trained weights
            (``vjepa.weights.h5``, for ``build_demo_model(config).load_weights``);
            default: ``keras_jepa_demo`` in the current directory.
        properties: properties to evaluate (all by default; training uses all).
        scenes_per_property: minimal sets per property (2 pairs each).
        verbose: 0 silent, 1 progress bars and the table.
        **overrides: ``DEMO_CONFIG`` entries (e.g. ``depth=2``, ``num_train_videos=400``).

    Returns:
        ``{"backend", "tables", "condition_tables", "group_tables", "seconds",
        "train_seconds", "pixel_predictor", "losses", "plots", "output_dir"}``.
        ``tables`` holds one table per network (``"trained"``, ``"untrained"``,
        ``"pixel_copy"``, ``"pixel_predictor"`` unless ``pixel_budget=0``) mapping each
        property (and ``"all"``) to its metrics (see
        ``keras_jepa.evaluation.property_table``); ``group_tables`` the same over all
        properties per condition (occluded or visible, static or moving);
        ``condition_tables`` per property and condition; ``pixel_predictor`` its
        ``steps``, ``seconds`` and ``losses``.
    """
    import json

    import keras

    from keras_jepa.evaluation.surprise import (
        aggregate_surprise,
        format_metrics,
        format_table,
        plot_surprise_pair,
        property_table,
        video_surprise,
        window_starts,
    )
    from keras_jepa.backend.execution import steps_per_call
    from keras_jepa.masks import MultiBlockMask3D
    from keras_jepa.training.optimizers import JEPAAdamW, WarmupCosineSchedule

    start, cpu_start = time.time(), _cpu_seconds()
    c = dict(DEMO_CONFIG, **overrides)
    steps = int(steps or c["steps"])
    spp = int(scenes_per_property or c["scenes_per_property"])
    output_dir = os.path.abspath(output_dir or DEFAULT_OUTPUT)
    os.makedirs(output_dir, exist_ok=True)

    def say(msg=""):
        if verbose:
            print(msg, flush=True)

    size, frames, fpc = c["image_size"], c["video_frames"], c["frames_per_clip"]
    say(f"keras_jepa demo on backend '{keras.backend.backend()}': intuitive physics from "
        f"V-JEPA pretraining (violation of expectation)")
    train = make_training_videos(c["num_train_videos"], seed=seed, image_size=size,
                                 num_frames=frames)
    evalset = make_voe_dataset(properties, scenes_per_property=spp, seed=seed + 1,
                               image_size=size, num_frames=frames, dtype="uint8")
    say(f"  data: {len(train)} possible-only training videos and "
        f"{len(evalset['possible'])} held-out (possible, impossible) pairs over "
        f"{len(properties)} properties; {frames} frames at {size}x{size}")

    model = build_demo_model(c, steps=steps, seed=seed)
    grid = model.encoder.grid_size()
    say(f"  model: ViT width {c['hidden_dim']}, depth {c['depth']}, patch {c['patch_size']}, "
        f"tubelet {c['tubelet_size']} ({model.encoder.count_params():,} encoder parameters), "
        f"predictor {c['predictor_dim']}x{c['predictor_depth']}; {np.prod(grid)} tokens "
        f"per {fpc}-frame window")
    videos = np.concatenate([evalset["possible"], evalset["impossible"]])
    num_pairs = len(evalset["possible"])
    sur_kwargs = dict(frames_per_clip=fpc, frame_step=c["frame_step"], stride=2,
                      context_lengths=c["context_lengths"], batch_size=64)

    def surprise_of(m):
        s = video_surprise(m, videos, verbose=0, **sur_kwargs)
        return s[:num_pairs], s[num_pairs:]

    say("  surprise of the untrained network ...")
    untrained = surprise_of(model)

    sampler = MultiBlockMask3D(grid_size=grid, configs=list(c["masks"]), seed=seed)
    data = _ClipBatches.make(train, fpc, c["frame_step"], c["batch_size"], sampler, steps,
                             seed)
    lr = WarmupCosineSchedule(c["start_lr"], c["lr"], c["final_lr"],
                              warmup_steps=int(c["warmup"] * steps), total_steps=steps)
    # A progress line per tenth of the run: the largest divisor of steps up to 10.
    epochs = _divisor_at_most(steps, 10)
    model.compile(optimizer=JEPAAdamW(learning_rate=lr, weight_decay=c["weight_decay"]),
                  steps_per_execution=steps_per_call(
                      _divisor_at_most(steps // epochs, c["steps_per_execution"])))
    say(f"  pretraining: {steps} steps of {c['batch_size']} clips ({epochs} epochs of "
        f"{steps // epochs} steps)")
    t0 = time.time()
    history = model.fit(data, epochs=epochs, steps_per_epoch=steps // epochs,
                        verbose=1 if verbose else 0)
    train_seconds = time.time() - t0
    losses = [float(v) for v in history.history["loss"]]

    say("  surprise of the trained network ...")
    trained = surprise_of(model)
    pixel = (copy_frame_surprise(evalset["possible"]),
             copy_frame_surprise(evalset["impossible"]))
    # Each network's surprises and its context rows (the pixel baseline has one row).
    runs = [("trained", trained, c["context_lengths"]),
            ("untrained", untrained, c["context_lengths"]), ("pixel_copy", pixel, None)]
    pixel_info = None
    budget = train_seconds if c["pixel_budget"] is None else float(c["pixel_budget"])
    if budget > 0:
        from keras_jepa.evaluation.pixel_predictor import PixelSurpriseModel

        say(f"  pixel-space predictor: same clips, masks and sizes, pixel targets, "
            f"{budget:.0f} s of training (the V-JEPA's wall time) ...")
        pix_model, pixel_info = train_pixel_predictor(dict(c, steps=steps), train, budget,
                                                      seed=seed, verbose=verbose)
        head = PixelSurpriseModel(pix_model, c["context_lengths"])
        s = video_surprise(head, videos, verbose=0, **sur_kwargs)
        pixel_pred = (s[:num_pairs], s[num_pairs:])
        runs.append(("pixel_predictor", pixel_pred, c["context_lengths"]))
    tables = {name: property_table(*pair, evalset["property"], lengths)
              for name, pair, lengths in runs}
    # The same, split by condition (occluded or visible, static or moving): which
    # situations the network has learned, beyond the per-property average.
    conditions = np.asarray([
        f"{prop} ({'occluded' if occ else 'visible'}, {'moving' if mov else 'static'})"
        for prop, occ, mov in zip(evalset["property"], evalset["occluded"],
                                  evalset["moving"])
    ])
    condition_tables = {
        name: {k: v for k, v in property_table(*pair, conditions, lengths).items()
               if k != "all"}
        for name, pair, lengths in runs
    }
    # Over all properties, by condition: where the objects move behind a screen, ...
    groups = np.asarray([
        f"{'occluded' if occ else 'visible'}, {'moving' if mov else 'static'}"
        for occ, mov in zip(evalset["occluded"], evalset["moving"])
    ])
    group_tables = {
        name: {k: v for k, v in property_table(*pair, groups, lengths).items() if k != "all"}
        for name, pair, lengths in runs
    }
    # Surprise-over-time plot of the first pair of the first property: over the sliding
    # windows (first context length), or, when the video holds a single window, over the
    # context lengths (x: the raw frame where the context ends and prediction starts).
    first = int(np.flatnonzero(evalset["property"] == properties[0])[0])
    step = c["frame_step"]
    starts = step * window_starts(len(range(0, frames, step)), fpc, 2)
    plot_kw = dict(splice=int(evalset["splice"][first]))
    if len(starts) > 1:
        pair = (trained[0][first][0], trained[1][first][0])
        plot_kw.update(window_starts=starts, title=f"{evalset['property'][first]}: trained "
                       f"V-JEPA, context {c['context_lengths'][0]} frames")
    else:
        pair = (trained[0][first][:, 0], trained[1][first][:, 0])
        plot_kw.update(window_starts=step * np.asarray(c["context_lengths"]),
                       xlabel="prediction starts at frame (end of the context)",
                       title=f"{evalset['property'][first]}: trained V-JEPA, one "
                             f"{fpc}-frame window")
    plot_path = plot_surprise_pair(*pair, os.path.join(output_dir, "surprise_pair.png"),
                                   **plot_kw)
    loss_path = _plot_loss(losses, os.path.join(output_dir, "loss.png"))
    model.save_weights(os.path.join(output_dir, "vjepa.weights.h5"))
    # The raw surprises, (pairs, context lengths, windows) per model and side, with the
    # pairs' metadata, for analyses beyond the table (e.g. per condition).
    np.savez_compressed(
        os.path.join(output_dir, "surprise.npz"),
        trained_possible=trained[0], trained_impossible=trained[1],
        untrained_possible=untrained[0], untrained_impossible=untrained[1],
        **({"pixel_predictor_possible": pixel_pred[0],
            "pixel_predictor_impossible": pixel_pred[1]} if pixel_info else {}),
        context_lengths=np.asarray(c["context_lengths"]),
        **{k: evalset[k] for k in ("property", "splice", "occluded", "moving",
                                   "num_objects", "scene")},
    )
    seconds, cpu = time.time() - start, _cpu_seconds() - cpu_start
    say()
    say(format_table(
        tables,
        title="pairwise accuracy (%), avg surprise, best context row [bootstrap 95% CI]:",
    ))
    say()
    say(format_metrics(tables["trained"], title="trained V-JEPA, all metrics (%) of that "
                       "row:"))
    say()
    say(format_table(group_tables, title="all properties, by condition:"))
    say()
    say(format_table(condition_tables, title="by property and condition (few pairs each: a "
                     "diagnostic, not a result):"))
    if pixel_info:
        pl = pixel_info["losses"]
        say(f"  pixel predictor: {pixel_info['steps']} steps in "
            f"{pixel_info['seconds']:.0f} s, loss {pl[0]:.4f} -> {pl[-1]:.4f}")
    say(f"  chance is 50%. pretraining loss {losses[0]:.4f} -> {losses[-1]:.4f}; "
        f"train {train_seconds:.0f} s, total {seconds:.0f} s wall, {cpu:.0f} s CPU time of "
        f"this process (on a shared machine the wall time depends on its load)")
    say(f"  plots: {plot_path}, {loss_path}")
    say(f"  results, raw surprises and trained weights: {output_dir}")
    result = {
        "backend": keras.backend.backend(), "tables": tables,
        "condition_tables": condition_tables, "group_tables": group_tables,
        "seconds": seconds, "pixel_predictor": pixel_info,
        "cpu_seconds": cpu,
        "train_seconds": train_seconds, "losses": losses,
        "plots": [plot_path, loss_path], "output_dir": output_dir,
        "mean_surprise": {
            "trained": [float(aggregate_surprise(trained[0], "mean").mean()),
                        float(aggregate_surprise(trained[1], "mean").mean())],
        },
    }
    with open(os.path.join(output_dir, "results.json"), "w") as f:
        json.dump({k: v for k, v in result.items()}, f, indent=1, default=str)
    return result


# --------------------------------------------------------------------------- program


def add_arguments(parser):
    """Adds the ``demo`` options to ``parser``."""
    parser.add_argument("--task", choices=["physics", "digits"], default="physics",
                        help="physics: V-JEPA pretraining on possible-only videos, then "
                             "violation-of-expectation surprise (default); digits: I-JEPA")
    parser.add_argument("--steps", type=int, default=None,
                        help="pretraining steps, --task physics only (default: the demo's)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="pretraining epochs, --task digits only (default: the config's; "
                             "the physics task uses --steps)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="frame / image side in pixels (default: the task's, 32)")
    parser.add_argument("--patch-size", type=int, default=None,
                        help="ViT patch size (default: the task's: 8 physics, 4 digits)")
    parser.add_argument("--depth", type=int, default=None,
                        help="ViT encoder depth (default: the task's: 2 physics, 4 digits)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the data, weights, masks and batches (default 0)")
    parser.add_argument("--output", default=None,
                        help="output folder (default: ./keras_jepa_demo; --task digits: "
                             "./keras_jepa_demo_digits)")
    return parser


def run(args):
    """Runs the ``demo`` subcommand: the physics demo or, with ``--task digits``, I-JEPA on
    the embedded digits."""
    overrides = {
        k: v for k, v in dict(
            image_size=args.image_size, patch_size=args.patch_size, depth=args.depth
        ).items() if v is not None
    }
    if args.task == "physics":
        if args.epochs is not None:
            raise ValueError("--epochs applies to --task digits; use --steps")
        run_demo(steps=args.steps, seed=args.seed, output_dir=args.output, **overrides)
        return 0
    if args.steps is not None:
        raise ValueError("--steps applies to --task physics; use --epochs")
    from keras_jepa.programs import demo_digits as demo

    demo.run(seed=args.seed, epochs=args.epochs, output_dir=args.output, **overrides)
    return 0
