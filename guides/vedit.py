"""
Title: VEDIT: generating the next steps of a procedure in a frozen embedding space
Author: keras_jepa contributors
Date created: 2026/11/26
Description: Flow matching over frozen clip embeddings predicts several possible futures
    of a procedural video; compare it with a deterministic regressor and a Markov oracle.
Accelerator: None (CPU; `KERAS_JEPA_GUIDE_QUICK=1` for a smoke run with meaningless numbers)
"""

"""
## Introduction

A procedural video (making coffee, changing a tire) is a sequence of steps. VEDIT (Lin et
al., ICLR 2025) keeps a public visual encoder **frozen**, turns every step segment into one
clip embedding, and trains a diffusion transformer over the *sequence* of embeddings: some
steps are observed, the others are generated from noise by flow matching, conditioned on
the observed ones. A light attentive classifier then reads the generated embeddings to
forecast the next step, plan the steps between a start and a goal, or recognise the task.

Why generate rather than regress? After "grind the beans" a person may boil water *or*
heat milk. A regressor trained with a squared error predicts the average of both futures,
which is neither. A generative model draws one of them per sample, and several samples
cover the possible futures. This guide checks that on a synthetic benchmark where the
branching is known exactly.
"""

"""
## Setup
"""

import os
import time

import keras
import numpy as np

from keras_jepa.data.procedural import StepGrammar
from keras_jepa.evaluation.procedural import format_benchmark, run_procedural_benchmark
from keras_jepa.models.vedit import VEDIT, forecast_roles, planning_roles

QUICK = os.environ.get("KERAS_JEPA_GUIDE_QUICK", "0") not in ("0", "")
print("backend:", keras.backend.backend())

"""
## Tasks as step grammars

Each task is a Markov chain over ten steps; about half of the steps branch into two or
three successors (probabilities 0.6/0.4 or 0.5/0.3/0.2). Each step is rendered as a short
clip of a handwritten digit of that class drifting across the frame, and a small frozen
video ViT turns each clip into a 32-d embedding (mean of its tokens).
"""

grammar = StepGrammar(seed=0)
steps, tasks = grammar.sample(3, length=8, rng=np.random.default_rng(0))
for s, t in zip(steps, tasks):
    print(f"task {t}: steps {s.tolist()}")
print("branching (task, step) rows:", int(grammar.is_branching(
    np.arange(grammar.num_tasks)[:, None], np.arange(grammar.num_steps)[None]).sum()))

"""
## The model

`VEDIT` takes a sequence of embeddings and a role per step: observed (`1`), to generate
(`2`) or absent (`0`). Masking patterns build the roles for each use:
"""

print("forecast next 2 of 6:", forecast_roles(6, 3, 2).tolist())
print("plan 3 steps between start and goal:", planning_roles(6, 3).tolist())

model = VEDIT(embed_dim=32, max_length=8, hidden_dim=64, depth=3, num_heads=4,
              time_distribution="logit_normal", sampling_steps=10, num_samples=5)
print("VEDIT parameters:", model.count_params())

"""
Training is `model.fit` on `{"embeddings", "roles"}`: the model draws `t` and the noise
with its own seed generator, forms `x_t = (1 - t) x0 + t noise` at the hidden steps and
regresses the velocity `noise - x0`. Sampling integrates that velocity with Euler steps
from pure noise (`t = 1`) to data (`t = 0`), `num_samples` futures per input in one batch.

## The benchmark

`run_procedural_benchmark` trains VEDIT and the same transformer as a deterministic
regressor (MSE), trains one attentive step classifier on *real* clip embeddings, and scores
the generated embeddings of both. The Markov oracle knows the grammar and the task: it is
the ceiling.
"""

start = time.time()
results = run_procedural_benchmark("quick" if QUICK else "full", seed=0)
print(format_benchmark(results))
print(f"benchmark wall time: {time.time() - start:.0f} s")

"""
What to look for: at **branching steps** VEDIT's forecast (class probabilities averaged
over 5 samples) should beat the regressor, whose mean of several futures is off the data
manifold; on **ED@Z** (the best of K sampled futures) the diversity of the samples pays,
while the regressor's K futures are all the same. At deterministic steps both should be
near the recogniser's accuracy.
"""
