"""The physics demo at a toy size: the pixel-predictor row next to the copy baseline, the
tables over conditions, and the pixel predictor's time budget."""

import json

import numpy as np


def test_demo_has_the_pixel_predictor_row_and_condition_groups(tmp_path):
    from keras_jepa.programs.demo import run_demo

    config = dict(image_size=16, patch_size=8, video_frames=12, frame_step=2,
                  frames_per_clip=6, hidden_dim=16, depth=1, num_heads=2, predictor_dim=16,
                  predictor_depth=1, predictor_heads=2, num_train_videos=4, batch_size=2,
                  context_lengths=(2, 4), pixel_budget=1.0)
    out = run_demo(steps=4, output_dir=str(tmp_path),
                   properties=("object_permanence", "inertia"), scenes_per_property=2,
                   verbose=0, **config)
    assert set(out["tables"]) == {"trained", "untrained", "pixel_copy", "pixel_predictor"}
    assert out["tables"]["pixel_predictor"]["all"]["num_pairs"] == 8
    # Calibration steps always run; the budget is wall time, so more steps may follow.
    assert out["pixel_predictor"]["steps"] >= 5
    groups = out["group_tables"]["pixel_predictor"]
    assert sum(row["num_pairs"] for row in groups.values()) == 8
    assert set(groups) <= {"occluded, moving", "occluded, static", "visible, moving",
                           "visible, static"}
    saved = np.load(tmp_path / "surprise.npz")
    assert saved["pixel_predictor_possible"].shape == (8, 2, 1)
    with open(tmp_path / "results.json") as f:
        results = json.load(f)
    assert "pixel_predictor" in results["tables"] and "group_tables" in results


def test_step_timer_stops_the_fit_at_its_deadline():
    """The pixel baseline's budget is enforced by this callback: a deadline already passed
    ends the fit after one call (of 3 epochs x 8 batches); without one, all 24 steps run,
    and with 4 steps per call (where the backend runs several) the timer counts steps."""
    import keras

    from keras_jepa.backend.execution import steps_per_call
    from keras_jepa.programs.demo import _StepTimes

    x = np.zeros((16, 3), "float32")
    y = np.zeros((16, 1), "float32")
    k = steps_per_call(4)
    for deadline, per_call, steps in ((0.0, 1, [1]), (None, 1, list(range(1, 25))),
                                      (None, k, list(range(k, 25, k))), (0.0, k, [k])):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse", run_eagerly=True,
                      steps_per_execution=per_call)
        timer = _StepTimes.make(deadline=deadline)
        model.fit(x, y, batch_size=2, epochs=3, verbose=0, callbacks=[timer])
        assert timer.steps == steps
        assert len(timer.times) == len(steps)


def test_divisor_at_most():
    from keras_jepa.programs.demo import _divisor_at_most

    assert [_divisor_at_most(n, 10) for n in (14500, 1450, 97, 2, 1, 0)] == [10, 10, 1, 2, 1, 1]
    assert _divisor_at_most(100, 7) == 5
