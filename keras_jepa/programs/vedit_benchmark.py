"""Procedural-video evaluation for VEDIT: attentive classifiers on (generated) clip
embeddings and the synthetic benchmark, with the metrics of the procedural-video literature
(``keras_jepa.models.vedit.metrics``):

* step forecasting and task classification: top-1 accuracy (:func:`top1_accuracy`);
* procedure planning (:func:`planning_metrics`), per plan of ``T`` steps: success rate SR
  (all ``T`` steps right), mean accuracy mAcc (fraction of right steps, position by
  position), mIoU (IoU of the *sets* of predicted and true steps; computed per plan and
  averaged);
* long-horizon anticipation (Ego4D LTA): edit distance ``ED@Z`` (Levenshtein distance
  between the predicted and the true ``Z`` steps, divided by ``Z``), the minimum over ``K``
  sampled futures, averaged (:func:`min_edit_distance`).

Read-out protocol of :func:`run_procedural_benchmark`: one step classifier
(:class:`~keras_jepa.evaluation.AttentiveClassifier` over a single token) is trained on the
*real* clip embeddings of the training clips and shared by every method; with ``K``
samples, the class probabilities are averaged over samples before the argmax (top-1,
planning) or each sample is decoded separately (``ED@Z``, minimum over samples).

Step forecasting is reported three ways, all split into branching and deterministic steps:

* **top-1** (``results["forecast"][m]``): one forecast per input -- for VEDIT the argmax of
  the class probabilities averaged over its ``K`` samples (``"vedit"``), the majority vote
  of the ``K`` per-sample argmaxes (``"vedit_vote"``, :func:`majority_vote`) or the first
  sample alone (``"vedit_1sample"``); the regressor's one prediction; the oracle's most
  probable successor under the true task. At a branching step this rewards guessing the
  most likely branch, which a mean-seeking regressor can also do.
* **best-of-K top-1** (``results["forecast_best_of_k"][m]``): right if *any* of the ``K``
  forecasts is the true step -- the same minimum-over-samples protocol as ``ED@Z``. The
  regressor's ``K`` forecasts are identical (its best-of-K equals its top-1); the oracle
  draws ``K`` successors from the true task's transition row. This measures whether the
  samples *cover* the possible futures, which is what a generative forecaster adds.
"""

import time

import numpy as np

from keras_jepa.evaluation.attentive_probe import AttentiveClassifier
from keras_jepa.evaluation.probes import predict_probabilities, train_probe
from keras_jepa.models.vedit.metrics import (
    majority_vote,
    min_edit_distance,
    planning_metrics,
    top1_accuracy,
)

# ---------------------------------------------------------------------------------------
# Attentive classifiers on clip embeddings
# ---------------------------------------------------------------------------------------


def train_step_classifier(embeddings, steps, num_classes, num_heads=4, epochs=20,
                          batch_size=64, lr=1e-3, verbose=0):
    """An attentive classifier of single clip embeddings ``(M, D)`` -> step ``(M,)``
    (each embedding is a one-token sequence). Returns ``(classifier, train_result)``."""
    embeddings = np.asarray(embeddings, "float32")
    probe = AttentiveClassifier(num_classes, embed_dim=embeddings.shape[-1],
                                num_heads=num_heads)
    result = train_probe(probe, embeddings[:, None], steps, epochs=epochs,
                         batch_size=batch_size, lr=lr, verbose=verbose)
    return probe, result


def train_sequence_classifier(sequences, labels, num_classes, num_heads=4, epochs=20,
                              batch_size=64, lr=1e-3, verbose=0):
    """An attentive classifier over whole sequences of clip embeddings ``(N, L, D)`` (task
    classification). Returns ``(classifier, train_result)``."""
    sequences = np.asarray(sequences, "float32")
    probe = AttentiveClassifier(num_classes, embed_dim=sequences.shape[-1],
                                num_heads=num_heads)
    result = train_probe(probe, sequences, labels, epochs=epochs, batch_size=batch_size,
                         lr=lr, verbose=verbose)
    return probe, result


def step_probabilities(classifier, embeddings, batch_size=512):
    """Step probabilities of embeddings ``(..., D)``: ``(..., C)``."""
    embeddings = np.asarray(embeddings, "float32")
    lead = embeddings.shape[:-1]
    flat = embeddings.reshape(-1, 1, embeddings.shape[-1])
    probs = predict_probabilities(classifier, flat, batch_size=batch_size)
    return np.asarray(probs).reshape(lead + (-1,))


# ---------------------------------------------------------------------------------------
# Synthetic benchmark
# ---------------------------------------------------------------------------------------

BENCHMARK_SETTINGS = {
    "full": dict(num_train=2000, num_test=400, length=8, hidden_dim=64, depth=3,
                 num_heads=4, train_repeats=80, batch_size=128, lr=3e-3, sampling_steps=10,
                 num_samples=5, probe_epochs=40, encoder_epochs=12, lta_observed=3,
                 plan_horizon=3, task_observed=2, time_distribution="uniform"),
    "quick": dict(num_train=200, num_test=40, length=6, hidden_dim=32, depth=1,
                  num_heads=2, train_repeats=2, batch_size=64, lr=1e-3, sampling_steps=3,
                  num_samples=3, probe_epochs=2, encoder_epochs=0, lta_observed=2,
                  plan_horizon=2, task_observed=2, time_distribution="uniform"),
}


def _fit_predictor(objective, train, settings, seed, verbose):
    import keras

    from keras_jepa.models.vedit.model import VEDIT, random_roles

    rng = np.random.default_rng(seed)
    reps = settings["train_repeats"]
    emb = np.repeat(train.embeddings, reps, axis=0)
    roles = random_roles(len(emb), emb.shape[1], lengths=np.repeat(train.lengths, reps),
                         rng=rng)
    model = VEDIT(embed_dim=emb.shape[-1], max_length=emb.shape[1],
                  hidden_dim=settings["hidden_dim"], depth=settings["depth"],
                  num_heads=settings["num_heads"], objective=objective,
                  sampling_steps=settings["sampling_steps"],
                  num_samples=settings["num_samples"], seed=seed,
                  time_distribution=settings["time_distribution"],
                  name=f"vedit_{objective}")
    model.adapt(train.embeddings)
    steps = int(np.ceil(len(emb) / settings["batch_size"]))
    schedule = keras.optimizers.schedules.CosineDecay(settings["lr"], steps, alpha=0.05)
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.01,
                                                   clipnorm=1.0))
    start = time.time()
    history = model.fit({"embeddings": emb, "roles": roles}, epochs=1,
                        batch_size=settings["batch_size"], shuffle=True, verbose=verbose)
    return model, {"loss": history.history["loss"][-1], "seconds": time.time() - start,
                   "steps": steps}


def run_procedural_benchmark(mode="full", seed=0, verbose=0, **overrides):
    """Trains VEDIT and a deterministic regressor (same transformer, MSE) on the synthetic
    procedural digits, and scores both and a Markov oracle (knows the grammar and the
    task) on step forecasting (overall and at branching steps), long-horizon ``ED@Z``
    (``K`` samples), procedure planning and task classification.

    Args:
        mode: ``"full"`` or ``"quick"`` (:data:`BENCHMARK_SETTINGS`); ``**overrides``
            replace single settings.

    Returns:
        a dict ``{"settings", "timing", "recognizer_accuracy", "forecast",
        "forecast_best_of_k", "lta", "planning", "task"}``; each metric dict maps
        ``"vedit"``, ``"regressor"``, ``"oracle"`` (and ``"vedit_vote"``,
        ``"vedit_1sample"`` for top-1) to numbers (see the module docstring for the
        definitions).
    """
    from keras_jepa.models.vedit.data import make_procedural_digits
    from keras_jepa.models.vedit.model import (
        classification_roles,
        forecast_roles,
        planning_roles,
    )

    if mode not in BENCHMARK_SETTINGS:
        raise ValueError(f"mode must be one of {sorted(BENCHMARK_SETTINGS)}; got {mode!r}.")
    settings = dict(BENCHMARK_SETTINGS[mode], **overrides)
    timing = {}
    start = time.time()
    data = make_procedural_digits(num_train=settings["num_train"],
                                  num_test=settings["num_test"], length=settings["length"],
                                  encoder_epochs=settings["encoder_epochs"], seed=seed)
    timing["data"] = time.time() - start
    grammar, train, test = data["grammar"], data["train"], data["test"]
    num_steps, length, k_samples = grammar.num_steps, settings["length"], settings["num_samples"]
    rng = np.random.default_rng(seed + 1)

    start = time.time()
    bank_x, bank_y = data["bank_train"]
    recognizer, _ = train_step_classifier(bank_x, bank_y, num_steps,
                                          epochs=settings["probe_epochs"])
    test_x, test_y = data["bank_test"]
    recognizer_acc = top1_accuracy(step_probabilities(recognizer, test_x).argmax(-1), test_y)
    task_clf, _ = train_sequence_classifier(train.embeddings, train.tasks, grammar.num_tasks,
                                            epochs=settings["probe_epochs"])
    timing["probes"] = time.time() - start

    models = {}
    for name, objective in (("vedit", "flow"), ("regressor", "regression")):
        models[name], timing[f"train_{name}"] = _fit_predictor(objective, train, settings,
                                                               seed, verbose)

    def generate(name, roles):
        start = time.time()
        out = models[name].sample(test.embeddings, roles,
                                  num_samples=k_samples if name == "vedit" else 1)
        timing[f"sample_{name}"] = timing.get(f"sample_{name}", 0.0) + time.time() - start
        return out

    n = len(test)
    steps, tasks = test.steps, test.tasks
    results = {"settings": settings, "timing": timing, "recognizer_accuracy": recognizer_acc}

    # Step forecasting: a random prefix observed, the next step predicted.
    observed = rng.integers(1, length, n)
    roles = np.stack([forecast_roles(length, int(k), 1) for k in observed])
    truth = steps[np.arange(n), observed]
    prev = steps[np.arange(n), observed - 1]
    branching = grammar.is_branching(tasks, prev)
    preds, hits = {}, {}
    for name in models:
        gen = generate(name, roles)[np.arange(n), :, observed]  # (n, K, D)
        probs = step_probabilities(recognizer, gen)  # (n, K, C)
        preds[name] = probs.mean(1).argmax(-1)
        sample_classes = probs.argmax(-1)  # (n, K)
        hits[name] = (sample_classes == truth[:, None]).any(1)
        if name == "vedit":
            preds["vedit_1sample"] = sample_classes[:, 0]
            preds["vedit_vote"] = majority_vote(sample_classes, probs.mean(1))
    preds["oracle"] = grammar.transitions[tasks, prev].argmax(-1)
    oracle_samples = grammar.continue_from(prev, tasks, 1, k_samples, rng=rng)[:, :, 0]
    hits["oracle"] = (oracle_samples == truth[:, None]).any(1)

    def split(correct):
        correct = np.asarray(correct, "float64")
        return {"top1": float(correct.mean()),
                "top1_branching": float(correct[branching].mean()),
                "top1_deterministic": float(correct[~branching].mean())}

    results["forecast"] = {name: split(p == truth) for name, p in preds.items()}
    results["forecast"]["branching_fraction"] = float(branching.mean())
    results["forecast_best_of_k"] = dict({name: split(h) for name, h in hits.items()},
                                         K=k_samples)

    # Long-horizon anticipation: observe a prefix, predict the remaining Z steps.
    n_obs = settings["lta_observed"]
    roles = np.stack([forecast_roles(length, n_obs, length - n_obs)] * n)
    truth = steps[:, n_obs:]
    lta = {}
    for name in models:
        gen = generate(name, roles)[:, :, n_obs:]
        lta[name] = min_edit_distance(step_probabilities(recognizer, gen).argmax(-1), truth)
    lta["oracle"] = min_edit_distance(
        grammar.continue_from(steps[:, n_obs - 1], tasks, length - n_obs, k_samples, rng=rng),
        truth)
    results["lta"] = dict(lta, Z=length - n_obs, K=k_samples)

    # Procedure planning: start and goal observed, the steps between predicted.
    horizon = settings["plan_horizon"]
    roles = np.stack([planning_roles(length, horizon)] * n)
    truth = steps[:, 1:horizon + 1]
    plans = {}
    for name in models:
        gen = generate(name, roles)[:, :, 1:horizon + 1]
        plans[name] = planning_metrics(
            step_probabilities(recognizer, gen).mean(1).argmax(-1), truth)
    plans["oracle"] = planning_metrics(
        grammar.most_likely_path(steps[:, 0], steps[:, horizon + 1], tasks, horizon), truth)
    results["planning"] = dict(plans, T=horizon)

    # Task classification from a prefix + generated remainder.
    n_obs = settings["task_observed"]
    roles = np.stack([classification_roles(length, n_obs)] * n)
    task_pred = {}
    for name in models:
        gen = generate(name, roles)
        kk = gen.shape[1]
        probs = np.asarray(predict_probabilities(task_clf, gen.reshape((n * kk,) + gen.shape[2:])))
        task_pred[name] = probs.reshape(n, kk, -1).mean(1).argmax(-1)
    real = np.asarray(predict_probabilities(task_clf, test.embeddings)).argmax(-1)
    like = np.log(np.maximum(grammar.start[:, steps[:, 0]], 1e-30)).T  # (n, tasks)
    for i in range(1, n_obs):
        like = like + np.log(np.maximum(
            grammar.transitions[:, steps[:, i - 1], steps[:, i]], 1e-30)).T
    task_pred["oracle"] = like.argmax(-1)
    results["task"] = {name: top1_accuracy(p, tasks) for name, p in task_pred.items()}
    results["task"]["full_real_sequence"] = top1_accuracy(real, tasks)
    results["task"]["observed"] = n_obs
    return results


def format_benchmark(results):
    """A text table of :func:`run_procedural_benchmark`'s results."""
    f, lta, plan, task = (results[k] for k in ("forecast", "lta", "planning", "task"))
    lines = [
        f"step recognizer on real test clips: top-1 {results['recognizer_accuracy']:.3f}",
        f"{'metric':36s} {'VEDIT':>8s} {'regressor':>10s} {'oracle':>8s}",
    ]

    def row(label, v, r, o):
        lines.append(f"{label:36s} {v:8.3f} {r:10.3f} {o:8.3f}")

    for key, label in (("top1", "forecast top-1 (all)"),
                       ("top1_branching", "forecast top-1 (branching steps)"),
                       ("top1_deterministic", "forecast top-1 (deterministic)")):
        row(label, f["vedit"][key], f["regressor"][key], f["oracle"][key])
    for key, label in (("vedit_vote", "vote of K"), ("vedit_1sample", "1 sample")):
        lines.append(f"{'top-1 branching, ' + label:36s} "
                     f"{f[key]['top1_branching']:8.3f}")
    best = results["forecast_best_of_k"]
    for key, label in (("top1_branching", "branching"), ("top1_deterministic", "determ.")):
        row(f"best-of-K={best['K']} top-1 ({label})", best["vedit"][key],
            best["regressor"][key], best["oracle"][key])
    row(f"ED@{lta['Z']} (min of K={lta['K']}, lower better)", lta["vedit"], lta["regressor"],
        lta["oracle"])
    for key, label in (("success_rate", "SR"), ("mean_accuracy", "mAcc"), ("miou", "mIoU")):
        row(f"planning T={plan['T']} {label}", plan["vedit"][key], plan["regressor"][key],
            plan["oracle"][key])
    row(f"task top-1 ({task['observed']} steps observed)", task["vedit"], task["regressor"],
        task["oracle"])
    lines.append(f"task top-1 on full real sequences: {task['full_real_sequence']:.3f}")
    timing = results["timing"]
    lines.append("seconds: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else
                                          f"{k} {v['seconds']:.1f}" for k, v in timing.items()))
    return "\n".join(lines)
