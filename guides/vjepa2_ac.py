"""
Title: V-JEPA 2-AC: an action-conditioned world model and planning in latent space
Author: keras_jepa contributors
Date created: 2026/12/03
Description: Pretrain a tiny V-JEPA 2 encoder on videos of a 2-D reaching world, train the
    block-causal action-conditioned predictor with teacher forcing and rollouts, then reach
    image goals with the cross-entropy method in latent space, on any backend.
Accelerator: None (CPU, about 8 minutes; `KERAS_JEPA_GUIDE_QUICK=1` runs a smoke version,
    about a minute, mostly compilation)
"""

"""
## Introduction

V-JEPA 2-AC (Assran et al., 2025) turns a frozen V-JEPA 2 video encoder into a world model:
a predictor reads the encoder's tokens of past frames together with the robot's actions
and end-effector states, and predicts the tokens of the next frame. Each time step is an
action token, a state token and the frame's patch tokens; attention is **block-causal**
over time (a step sees its own and earlier steps only), frame tokens carry 3-D RoPE and the
action/state tokens a temporal rotation. Training uses two L1 losses on layer-normed
features: **teacher forcing** (predict frames 1..T-1 from the true frames 0..T-2) and a
two-step **rollout** (feed the predictor its own prediction once).

Planning needs no reward: encode the current image and an image of the goal, then search
for actions whose predicted final frame is closest (L1) to the goal. The official planner
is the cross-entropy method (CEM); we execute its first action and plan again
(receding-horizon control).

Here everything runs on a CPU: a point that must reach a goal in a 32-pixel world with known
dynamics, so we can compare the planner against random actions, a one-step greedy planner
and a controller that knows both positions and heads straight for the goal.
"""

"""
## Setup
"""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from keras_jepa.models.ac import PointReachEnv, random_trajectories
from keras_jepa.programs import plan

QUICK = os.environ.get("KERAS_JEPA_GUIDE_QUICK") == "1"
print("backend:", keras.backend.backend())

"""
## The world

`PointReachEnv` renders the point as an anti-aliased red disc on a faint checker floor;
actions move it by at most 0.1 per axis. `random_trajectories` gives the training data in
the layout `VJEPA2AC.fit` takes: frames, the executed actions (`T - 1` per trajectory) and
the states (`T`), the analogue of DROID's end-effector poses.
"""

env = PointReachEnv()
data = random_trajectories(env, 48 if QUICK else 1024, 4, np.random.default_rng(0))
print({k: v.shape for k, v in data.items()})

"""
## 1. The encoder: V-JEPA 2 on the world's videos

A 48-wide, 2-block RoPE ViT (patch 8, tubelet 2) learns by predicting the EMA encoder's
features of masked spatio-temporal blocks. V-JEPA 2-AC keeps the EMA (target) encoder,
frozen.
"""

encoder = plan.pretrain_encoder(data["frames"], 6 if QUICK else 300, seed=0)

"""
## 2. The action-conditioned predictor

`VJEPA2AC` wraps the frozen encoder and an `ACPredictor` (here 64 wide, 2 blocks, 4 heads).
The frames are encoded once (layer-normed tokens), then `fit` trains the predictor on the
sum of the teacher-forcing and rollout losses, which are logged separately.
"""

world_model, history = plan.train_world_model(encoder, data, 1 if QUICK else 12, seed=0)

"""
## 3. Planning to image goals

Every controller gets the same episodes (start, goal at least 0.3 apart), 10 actions each
(3 in the quick run), with receding-horizon control. The planners see only images (encoded)
and the current state; success is ending within 0.08 of the goal. Intervals are Wilson 95%
(success) and mean +- 1.96 s.e. (distance).
"""

episodes = 3 if QUICK else 50
results = plan.evaluate(world_model, env, episodes, 3 if QUICK else 10, seed=0,
                        samples=16 if QUICK else 100, top_k=4 if QUICK else 10,
                        iterations=3 if QUICK else 10)

"""
The two planners met the same tasks, so they can be compared episode by episode: only the
tasks that one solves and the other does not say which is better (McNemar's exact test),
and the paired difference of final distances has a narrower interval than the two
separate ones.
"""

paired = plan.compare_planners(results, env.success_radius)

"""
A full run (`keras-jepa plan`, the same settings; JAX, 2-core CPU shared with other jobs,
187 s in all, 116 s of it training) printed: random actions 0% success [0, 7], final
distance 0.50 [0.45, 0.54]; the one-step greedy planner 100% [93, 100], 0.011 [0.009,
0.012]; CEM (horizon 1, 100 samples, top 10, 10 rounds) 100% [93, 100], 0.007 [0.006,
0.008]; heading straight for the goal (knowing both positions) 100%, 0.000. On this world
both latent planners reach every goal; CEM ends closer because it refines continuous
actions where the greedy planner picks from a 9 x 9 grid. Without the glow in the
rendering (`PointReachEnv(glow_sigma=0)`), latent distances stop growing once the discs
no longer overlap and neither planner beats random actions (0%, as we measured).

A harder world, `keras-jepa plan --world wall` (`WallReachEnv`): a wall stands between
every start and its goal, the predictor gets the commanded actions and no state, so it must
learn contact from the images, and CEM looks three steps ahead (`energy_steps="all"`: with
the official final-frame energy and a horizon above one, the executed first action is left
free and the controller wanders off goals it has reached: 40% success even with the true
dynamics). Heading straight for the goal ends against the wall (0%).
`keras-jepa plan --world wall --seeds 0 1 2` trains three world models (seeds 0, 1, 2) and
plans 50 tasks with each (14 actions per episode; JAX, 2-core CPU, 421-438 s per seed,
170 s or less of it training). Pooled over the 150 tasks: random 0% [0, 2], final
distance 0.59; straight for the goal 0%, 0.42; one-step greedy 52% [44, 60], 0.198 [0.167,
0.228]; CEM (horizon 3, energy of every step) 97% [92, 99], 0.045 [0.037, 0.053]. Task by
task, CEM alone reaches 68 goals and greedy alone 1 (McNemar exact p = 2e-19); CEM ends
0.153 [0.123, 0.183] nearer. Per seed, greedy reaches 78%, 40% and 38% and CEM 94%, 98%
and 98% (McNemar p = 0.02, 4e-9 and 2e-9). The greedy planner does better here than on
the true distance (where it stays stuck): the learned latent energy is nearly flat along
the wall, so it drifts along it and, with some models (seed 0), often round its end;
looking three steps ahead, CEM goes round it almost always.

## 4. The energy landscape

Sweep one-step actions around zero, from a state to the image of the state one true
action away: a good world model puts the minimum near the true action.
"""

path, best, truth = plan.landscape_plot(
    world_model, env, os.path.join(tempfile.gettempdir(), "vjepa2_ac_energy.png"))
print(f"energy minimum at {np.round(best, 3).tolist()}, true action "
      f"{np.round(truth, 3).tolist()}; plot: {path}")
print(f"vjepa2_ac guide: {len(results)} controllers on {episodes} episodes")
