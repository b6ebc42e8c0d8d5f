"""``keras-jepa plan``: V-JEPA 2-AC end to end on a CPU. Pretrain a tiny encoder with the
V-JEPA 2 objective on videos of a 2-D reaching world (``--world open``: an empty square;
``--world wall``: a wall between start and goal), train the action-conditioned predictor on
random-action trajectories (teacher forcing + rollout), then reach image goals by planning
in latent space, against random actions, a one-step greedy planner and a controller that
heads straight for the goal knowing both positions; also saves the energy landscape around
a true action.

Examples::

    keras-jepa plan                              # the default run, a few minutes
    keras-jepa plan --quick                      # smoke run, meaningless numbers
    keras-jepa plan --episodes 100 --horizon 2 --out runs/plan
    keras-jepa plan --world wall                 # the wall world, CEM 3 steps ahead

Success: the point ends within 0.08 of the goal (the square is 1 wide). Intervals: Wilson
95% for success rates, mean +- 1.96 standard errors for final distances.
"""

import json
import math
import os
import time

import numpy as np

#: Per-world defaults of the options left unset (``None``) on the command line. The wall
#: world plans three steps ahead with the energy of every step (``energy_steps="all"``),
#: and its training data push into the wall (persistent actions, starts next to it).
WORLDS = {
    "open": dict(horizon=1, energy_steps="final", persistent=0.0, near_obstacle=0.0,
                 predictor_epochs=12, learning_rate=1e-3, episode_steps=10),
    "wall": dict(horizon=3, energy_steps="all", persistent=0.5, near_obstacle=0.8,
                 predictor_epochs=40, learning_rate=2e-3, episode_steps=14),
}

QUICK_SETTINGS = dict(trajectories=48, frames=4, encoder_steps=6, predictor_epochs=1,
                      episodes=3, episode_steps=3, samples=16, top_k=4, iterations=3)


def add_arguments(parser):
    """Adds the ``plan`` options to ``parser``."""
    parser.add_argument("--world", choices=sorted(WORLDS), default="open",
                        help="open: the point in an empty square (PointReachEnv); wall: a "
                             "wall between start and goal (WallReachEnv)")
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes")
    parser.add_argument("--episode-steps", type=int, default=None,
                        help="actions per episode (default: the world's, 10 open, 14 wall)")
    parser.add_argument("--trajectories", type=int, default=1024,
                        help="random-action training trajectories")
    parser.add_argument("--frames", type=int, default=4, help="frames per trajectory")
    parser.add_argument("--encoder-steps", type=int, default=300,
                        help="V-JEPA 2 pretraining steps of the encoder")
    parser.add_argument("--predictor-epochs", type=int, default=None,
                        help="epochs of AC predictor training (default: the world's, 12 "
                             "open, 40 wall)")
    parser.add_argument("--horizon", type=int, default=None,
                        help="CEM horizon (official 1; default: the world's, 1 open, 3 wall)")
    parser.add_argument("--energy-steps", choices=["final", "all"], default=None,
                        help="CEM energy: the final predicted frame's L1 (official) or the "
                             "sum over every predicted frame (default: final open, all wall)")
    parser.add_argument("--samples", type=int, default=100, help="CEM samples (official 100)")
    parser.add_argument("--top-k", type=int, default=10, help="CEM elites (official 10)")
    parser.add_argument("--iterations", type=int, default=10,
                        help="CEM rounds (official cem default 100, WorldModel wrapper 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, models, episodes")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="run the whole program once per seed (in OUT/seed_K) and pool "
                             "the episodes of every run (overrides --seed)")
    parser.add_argument("--out", default="plan_run",
                        help="folder for results.json and energy_landscape.png")
    parser.add_argument("--quick", action="store_true",
                        help="tiny smoke run (seconds); numbers are meaningless")
    return parser


# ----------------------------------------------------------------------------- training


def pretrain_encoder(videos, steps, seed=0, batch_size=16, width=48, depth=2, verbose=True):
    """A tiny V-JEPA 2 (RoPE encoder, multi-block 3-D masks, EMA target, L1 on layer-normed
    targets) trained on ``videos (N, T, S, S, 3)`` for ``steps`` steps; returns its EMA
    target encoder, the one V-JEPA 2-AC keeps frozen."""
    import keras

    from keras_jepa.models.jepa.recipes import build_mask_sampler, build_model, get_config

    frames, size = videos.shape[1], videos.shape[2]
    config = get_config("vjepa_tiny_cpu").replace(
        image_size=size, patch_size=8, num_frames=frames, frames_per_clip=frames,
        hidden_dim=width, depth=depth, num_heads=2, position_embedding="rope",
        uniform_power=False, predictor_dim=32, predictor_depth=1, predictor_heads=2,
        num_mask_tokens=2, ema_momentum=(0.99, 0.99))
    keras.utils.set_random_seed(seed)
    model = build_model(config)
    sampler = build_mask_sampler(config, seed=seed)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.04))
    rng = np.random.default_rng(seed)
    losses = []
    for step in range(int(steps)):
        idx = rng.integers(0, len(videos), batch_size)
        batch = {"videos": videos[idx], **{k: list(v) for k, v in sampler(batch_size).items()}}
        losses.append(float(model.train_on_batch(batch, return_dict=True)["loss"]))
    if verbose and losses:
        print(f"encoder (V-JEPA 2 objective): loss {losses[0]:.3f} -> "
              f"{np.mean(losses[-10:]):.3f} over {steps} steps")
    return model.target_encoder


def train_world_model(encoder, data, epochs, seed=0, batch_size=32, width=64, depth=2,
                      learning_rate=1e-3, verbose=True):
    """A ``VJEPA2AC`` around the frozen ``encoder``, its predictor trained for ``epochs`` on
    ``data`` (``random_trajectories``) with the official teacher-forcing + rollout losses
    (the frames are encoded once). Returns ``(model, history)``."""
    import keras

    from keras_jepa.models.ac.model import VJEPA2AC
    from keras_jepa.models.ac.planning import FrameEncoder

    keras.utils.set_random_seed(seed)
    frames = data["frames"].shape[1]
    model = VJEPA2AC(encoder, predictor_kwargs=dict(
        hidden_dim=width, depth=depth, num_heads=4, action_dim=data["actions"].shape[-1],
        max_steps=frames))
    encode = FrameEncoder(model)
    tokens = np.concatenate([encode.encode(data["frames"][i:i + 64])
                             for i in range(0, len(data["frames"]), 64)])
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate, weight_decay=0.04))
    history = model.fit({"tokens": tokens, "actions": data["actions"],
                         "states": data["states"]}, batch_size=batch_size, epochs=epochs,
                        shuffle=True, verbose=0).history
    if verbose:
        print(f"AC predictor: loss {history['loss'][0]:.3f} -> {history['loss'][-1]:.3f} "
              f"(teacher forcing {history['teacher_forcing_loss'][-1]:.3f}, rollout "
              f"{history['rollout_loss'][-1]:.3f}) over {epochs} epochs")
    return model, history


# ----------------------------------------------------------------------------- evaluation


def wilson_interval(successes, n, z=1.96):
    """Wilson score interval of a success rate."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarize(final_distances, success_radius):
    """Success rate (Wilson 95%) and mean final distance (+- 1.96 s.e.) of episodes."""
    d = np.asarray(final_distances, np.float64)
    wins = int((d < success_radius).sum())
    sem = d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
    return {"episodes": len(d), "success_rate": wins / len(d),
            "success_interval": wilson_interval(wins, len(d)),
            "final_distance": float(d.mean()),
            "final_distance_interval": (float(d.mean() - 1.96 * sem),
                                        float(d.mean() + 1.96 * sem))}


def paired_comparison(finals_a, finals_b, success_radius, z=1.96):
    """Compares two controllers run on the *same* tasks, episode by episode.

    Success: McNemar's exact test. Only the discordant tasks count (``a_only``: ``a``
    reaches the goal and ``b`` does not; ``b_only``: the reverse); under the null hypothesis
    that both controllers succeed equally often, ``a_only`` is Binomial(``a_only +
    b_only``, 1/2), and ``p_value`` is its two-sided tail. Distance: the mean of the paired
    differences ``a - b`` (negative: ``a`` ends nearer) with +- ``z`` standard errors.

    Example:

    >>> r = paired_comparison([0.0] * 10, [1.0] * 10, 0.5)
    >>> r["a_only"], r["b_only"], round(r["p_value"], 4)
    (10, 0, 0.002)
    """
    a = np.asarray(finals_a, np.float64)
    b = np.asarray(finals_b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"finals_a and finals_b must be equal-length 1-D sequences of the "
                         f"same tasks; got shapes {a.shape} and {b.shape}.")
    wa, wb = a < success_radius, b < success_radius
    a_only, b_only = int((wa & ~wb).sum()), int((wb & ~wa).sum())
    n, k = a_only + b_only, min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n if n else 1.0
    diff = a - b
    sem = diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
    return {"episodes": len(a), "a_only": a_only, "b_only": b_only,
            "p_value": min(1.0, 2.0 * tail) if n else 1.0,
            "distance_difference": float(diff.mean()),
            "distance_difference_interval": (float(diff.mean() - z * sem),
                                             float(diff.mean() + z * sem))}


def evaluate(world_model, env, episodes, steps, seed=0, samples=100, top_k=10,
             iterations=10, horizon=1, energy_steps="final", verbose=True):
    """Runs every controller on the same ``episodes`` (start, goal) pairs with receding
    horizon control; returns ``{controller: summarize(...)}`` plus timings."""
    from keras_jepa.models.ac.planning import (
        CEMPlanner,
        EnergyModel,
        FrameEncoder,
        action_grid,
        greedy_action,
        receding_horizon,
    )

    rng = np.random.default_rng(seed + 1)
    starts, goals = zip(*[env.sample_task(rng) for _ in range(episodes)])
    encoder = FrameEncoder(world_model)
    bounds = env.proprio_bounds
    energy = EnergyModel(world_model, state_bounds=bounds)
    cem = CEMPlanner(world_model, horizon=horizon, num_samples=samples, top_k=top_k,
                     iterations=iterations, action_bound=env.max_step, state_bounds=bounds,
                     energy_steps=energy_steps)
    grid = action_grid(env.max_step, 9)
    plan_rng = np.random.default_rng(seed + 2)

    def latent(env_, image):
        return encoder.encode(image[None, None])

    goal_latent = {}

    def cem_choice(env_):
        return cem.plan(latent(env_, env_.observe()), env_.proprio(env_.state),
                        goal_latent["z"], plan_rng)

    def greedy_choice(env_):
        return greedy_action(energy, latent(env_, env_.observe()), env_.proprio(env_.state),
                             goal_latent["z"], grid)

    controllers = {
        "random": lambda e: plan_rng.uniform(-e.max_step, e.max_step, 2),
        "greedy (1-step, 9x9 grid)": greedy_choice,
        f"CEM (horizon {horizon}, {samples} samples, top {top_k}, {iterations} rounds"
        f"{', energy of every step' if energy_steps == 'all' else ''})":
            cem_choice,
        "straight at the goal (knows both positions)": lambda e: np.clip(
            e.goal - e.state, -e.max_step, e.max_step),
    }
    results = {}
    for name, choose in controllers.items():
        start_time = time.time()
        finals = []
        for start, goal in zip(starts, goals):
            env.reset(rng, start=start, goal=goal)
            goal_latent["z"] = latent(env, env.goal_image())
            receding_horizon(env, choose, steps)
            finals.append(env.distance)
        results[name] = summarize(finals, env.success_radius)
        results[name]["final_distances"] = [float(d) for d in finals]
        results[name]["seconds"] = time.time() - start_time
        if verbose:
            print(f"{_format_row(name, results[name])}  ({results[name]['seconds']:.0f} s)")
    return results


def _format_row(name, r):
    """One controller's ``summarize`` line: success rate and final distance, intervals."""
    return (f"{name:<52} success {100 * r['success_rate']:5.1f}% "
            f"[{100 * r['success_interval'][0]:.0f}, {100 * r['success_interval'][1]:.0f}]"
            f" of {r['episodes']}  final distance {r['final_distance']:.3f} "
            f"[{r['final_distance_interval'][0]:.3f}, {r['final_distance_interval'][1]:.3f}]")


def compare_planners(results, success_radius, verbose=True):
    """:func:`paired_comparison` of the CEM row of ``evaluate``'s ``results`` against its
    greedy row (the same tasks, episode by episode)."""
    cem = next(name for name in results if name.startswith("CEM"))
    greedy = next(name for name in results if name.startswith("greedy"))
    paired = paired_comparison(results[cem]["final_distances"],
                               results[greedy]["final_distances"], success_radius)
    if verbose:
        print(f"CEM vs greedy on the same {paired['episodes']} tasks: CEM alone reaches "
              f"{paired['a_only']}, greedy alone {paired['b_only']} (McNemar exact p = "
              f"{paired['p_value']:.2g}); final distance CEM - greedy "
              f"{paired['distance_difference']:+.3f} "
              f"[{paired['distance_difference_interval'][0]:+.3f}, "
              f"{paired['distance_difference_interval'][1]:+.3f}]")
    return paired


def landscape_plot(world_model, env, path, seed=0):
    """Sweeps one-step actions around a true action (from a random state to a state one
    action away) and saves the energy landscape PNG; returns ``(path, argmin action, true
    action)``."""
    from keras_jepa.models.ac.planning import (
        EnergyModel,
        FrameEncoder,
        energy_landscape,
        plot_energy_landscape,
    )

    rng = np.random.default_rng(seed + 3)
    encoder = FrameEncoder(world_model)
    start = np.array([0.5, 0.5] if not env.blocked([0.5, 0.5]) else [0.3, 0.5], np.float32)
    true_action = rng.uniform(-env.max_step, env.max_step, 2).astype(np.float32)
    goal = env.next_state(start, true_action)
    context = encoder.encode(env.render(start)[None, None])
    goal_latent = encoder.encode(env.render(goal)[None, None])
    grid, axes = energy_landscape(EnergyModel(world_model), context, env.proprio(start),
                                  goal_latent,
                                  [0.0, 0.0], env.max_step * 1.5, num=21)
    i, j = np.unravel_index(np.argmin(grid), grid.shape)
    path = plot_energy_landscape(grid, axes, path, truth=true_action,
                                 labels=("action x", "action y"))
    return path, np.array([axes[0][i], axes[1][j]]), true_action


def run_pipeline(args, settings=None):
    """The whole program; returns the results dict (also written to ``out/results.json``)."""
    import keras

    from keras_jepa.models.ac.data import PointReachEnv, WallReachEnv, random_trajectories

    settings = dict(vars(args), **(settings or {}))
    world = settings.get("world") or "open"
    for key, value in WORLDS[world].items():
        if settings.get(key) is None:
            settings[key] = value
    if settings.get("quick"):
        settings.update(QUICK_SETTINGS)
    begin = time.time()
    print(f"backend: {keras.backend.backend()}")
    env = WallReachEnv() if world == "wall" else PointReachEnv()
    rng = np.random.default_rng(settings["seed"])
    data = random_trajectories(env, settings["trajectories"], settings["frames"], rng,
                               persistent=settings["persistent"],
                               near_obstacle=settings["near_obstacle"])
    print(f"data: {settings['trajectories']} random trajectories of {settings['frames']} "
          f"frames, {env.image_size} px, world '{world}'")
    encoder = pretrain_encoder(data["frames"], settings["encoder_steps"], settings["seed"])
    model, history = train_world_model(encoder, data, settings["predictor_epochs"],
                                       settings["seed"],
                                       learning_rate=settings["learning_rate"])
    trained = time.time() - begin
    os.makedirs(settings["out"], exist_ok=True)
    results = evaluate(model, env, settings["episodes"], settings["episode_steps"],
                       settings["seed"], samples=settings["samples"],
                       top_k=settings["top_k"], iterations=settings["iterations"],
                       horizon=settings["horizon"], energy_steps=settings["energy_steps"])
    paired = compare_planners(results, env.success_radius)
    path, best, truth = landscape_plot(model, env,
                                       os.path.join(settings["out"], "energy_landscape.png"),
                                       settings["seed"])
    print(f"energy landscape: minimum at {np.round(best, 3).tolist()}, true action "
          f"{np.round(truth, 3).tolist()} ({path})")
    total = time.time() - begin
    out = {"settings": {k: v for k, v in settings.items() if not callable(v)},
           "controllers": results, "cem_vs_greedy": paired,
           "success_radius": env.success_radius, "train_seconds": trained,
           "total_seconds": total, "predictor_loss": history["loss"],
           "landscape_minimum": best.tolist(),
           "landscape_true_action": truth.tolist()}
    with open(os.path.join(settings["out"], "results.json"), "w") as f:
        json.dump(out, f, indent=2, default=float)
    print(f"done in {total:.0f} s (training {trained:.0f} s); results in "
          f"{os.path.join(settings['out'], 'results.json')}")
    return out


def pool_runs(runs, verbose=False):
    """Pools the episodes of several ``run_pipeline`` results (e.g. one per training seed):
    ``{controller: summarize(...)}`` over all of them plus ``"cem_vs_greedy"``, the paired
    comparison over all tasks (printed with ``verbose``)."""
    success_radius = runs[0]["success_radius"]
    names = list(runs[0]["controllers"])
    finals = {name: [d for r in runs for d in r["controllers"][name]["final_distances"]]
              for name in names}
    pooled = {name: dict(summarize(finals[name], success_radius),
                         final_distances=finals[name]) for name in names}
    if verbose:
        for name, r in pooled.items():
            print(_format_row(name, r))
    return {"controllers": pooled,
            "cem_vs_greedy": compare_planners(pooled, success_radius, verbose=verbose)}


def run(args):
    if not args.seeds:
        run_pipeline(args)
        return 0
    runs = [run_pipeline(args, dict(seed=seed, out=os.path.join(args.out, f"seed_{seed}")))
            for seed in args.seeds]
    print(f"pooled over seeds {args.seeds}:")
    pooled = pool_runs(runs, verbose=True)
    with open(os.path.join(args.out, "pooled.json"), "w") as f:
        json.dump(dict(pooled, seeds=args.seeds), f, indent=2, default=float)
    return 0
