"""V-JEPA surprise (violation of expectation): masks, windows, the batched compiled forward
against a step-by-step computation, and the official metrics against hand-computed values."""

import os

import numpy as np
import pytest
from keras import ops

from keras_jepa.evaluation.surprise import (
    SurpriseModel,
    absolute_accuracy,
    absolute_threshold,
    aggregate_surprise,
    auprc,
    auroc,
    best_absolute_accuracy,
    bootstrap_ci,
    format_metrics,
    pairwise_accuracy,
    plot_surprise_pair,
    preprocess_videos,
    property_table,
    subsample_frames,
    time_masks,
    video_surprise,
    voe_metrics,
    window_starts,
)
from keras_jepa.backend.seeding import seed_everything


@pytest.fixture(scope="module")
def tiny_vjepa():
    from keras_jepa.models import VJEPA, VisionTransformer

    seed_everything(3)
    enc = VisionTransformer(image_size=16, patch_size=8, num_frames=6, tubelet_size=2,
                            hidden_dim=24, depth=1, num_heads=2, uniform_power=True)
    model = VJEPA(enc, predictor_dim=16, predictor_depth=1, predictor_heads=2,
                  num_mask_tokens=2, ema_momentum=(0.99, 0.99))
    # Make the target encoder differ from the context encoder, as after training.
    rng = np.random.default_rng(0)
    model.target_encoder.set_weights(
        [w + 0.05 * rng.standard_normal(w.shape).astype(w.dtype)
         for w in model.target_encoder.get_weights()])
    # Non-zero mask tokens so mask_index 0 and 1 differ.
    model.predictor.mask_tokens.assign(
        rng.standard_normal(tuple(model.predictor.mask_tokens.shape)).astype("float32"))
    return model


def test_time_masks_split_the_window_by_frames():
    ctx, tgt = time_masks(4, (3, 2, 2), tubelet_size=2)
    assert ctx.tolist() == list(range(8)) and tgt.tolist() == [8, 9, 10, 11]
    ctx, tgt = time_masks(10, (8, 14, 14), tubelet_size=2)   # official 224/16, 16 frames
    assert len(ctx) == 196 * 5 and len(tgt) == 196 * 3
    for bad in (3, 0, 6):
        with pytest.raises(ValueError, match=f"context length {bad}"):
            time_masks(bad, (3, 2, 2), tubelet_size=2)


def test_windows_and_subsampling():
    assert window_starts(16, 16, 2).tolist() == [0]
    assert window_starts(49, 16, 2).tolist() == list(range(0, 34, 2))   # IntPhys, step 2
    with pytest.raises(ValueError, match="shorter than one window"):
        window_starts(8, 16)
    assert subsample_frames(np.arange(100), 2, 99 // 2).tolist() == list(range(0, 98, 2))
    x = preprocess_videos(np.full((1, 1, 1, 1, 3), 255, "uint8"))
    np.testing.assert_allclose(x.reshape(-1), (1 - np.array([0.485, 0.456, 0.406]))
                               / np.array([0.229, 0.224, 0.225]), rtol=1e-6)


def _layer_norm(x, eps=1e-5):
    x = np.asarray(x, "float64")
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps)


def _reference_surprise(model, video, fpc, stride, contexts, mask_index=0):
    """One window and one context length at a time, with the model's layers called
    directly and the layer norm / L1 in float64 numpy."""
    frames = preprocess_videos(video[None])[0]
    out = np.zeros((len(contexts), len(range(0, len(frames) - fpc + 1, stride))))
    grid = model.encoder.grid_size()
    per_step = grid[1] * grid[2]
    for w, s in enumerate(range(0, len(frames) - fpc + 1, stride)):
        window = frames[s:s + fpc][None]
        h = _layer_norm(ops.convert_to_numpy(model.target_encoder(window)))[0]
        for k, c in enumerate(contexts):
            n_ctx = (c // model.encoder.tubelet_size) * per_step
            ctx = np.arange(n_ctx)[None]
            tgt = np.arange(n_ctx, h.shape[0])[None]
            z = model.encoder(window, token_indices=ctx)
            pred = ops.convert_to_numpy(
                model.predictor(z, ctx, tgt, mask_index=mask_index)).astype("float64")[0]
            out[k, w] = np.abs(pred - h[n_ctx:]).mean()
    return out


def test_video_surprise_matches_step_by_step_computation(tiny_vjepa):
    rng = np.random.default_rng(1)
    videos = rng.integers(0, 256, size=(3, 8, 16, 16, 3)).astype("uint8")
    # One head (one compiled forward pass: every call is padded to the same batch).
    head = SurpriseModel(tiny_vjepa, context_lengths=(2, 4))
    got = video_surprise(head, videos, frames_per_clip=6, stride=2, batch_size=4)
    assert got.shape == (3, 2, 2)
    ref = np.stack([_reference_surprise(tiny_vjepa, v, 6, 2, (2, 4)) for v in videos[:2]])
    np.testing.assert_allclose(got[:2], ref, rtol=2e-4, atol=2e-5)
    # The paper's pairwise decision (video 0 as possible, video 1 as impossible).
    for agg, fn in (("mean", np.mean), ("max", np.max)):
        mine = aggregate_surprise(got[:2], agg)
        theirs = fn(ref, axis=-1)
        assert (mine[0] < mine[1]).tolist() == (theirs[0] < theirs[1]).tolist()
    # Variable lengths (list output) and a frame step.
    step = video_surprise(head, [videos[0], videos[1, :6], videos[1, ::-1].repeat(2, 0)],
                          frame_step=1, batch_size=4)
    assert isinstance(step, list) and [s.shape for s in step] == [(2, 2), (2, 1), (2, 6)]
    np.testing.assert_allclose(step[1], ref[1][:, :1], rtol=2e-4, atol=2e-5)
    sub = video_surprise(head, videos[1, ::-1].repeat(2, 0)[None], frame_step=2,
                         batch_size=4)
    # Frames 0, 2, 4... of the doubled video are the reversed video.
    np.testing.assert_allclose(
        sub[0], video_surprise(head, videos[1, ::-1][None], batch_size=4)[0], rtol=1e-5)
    with pytest.raises(ValueError, match="differ from the SurpriseModel"):
        video_surprise(head, videos, context_lengths=(2,))


def test_video_surprise_rejects_bad_inputs(tiny_vjepa):
    videos = np.zeros((1, 8, 16, 16, 3), "float32")
    with pytest.raises(ValueError, match="frames_per_clip=8"):
        video_surprise(tiny_vjepa, videos, frames_per_clip=8)
    with pytest.raises(ValueError, match=r"\(12, 12, 3\)"):
        video_surprise(tiny_vjepa, np.zeros((1, 8, 12, 12, 3)))
    with pytest.raises(ValueError, match="no 'encoder'"):
        SurpriseModel(object())


def test_aggregation_and_metrics_by_hand():
    s = np.array([[[1.0, 4.0, 2.0], [3.0, 1.0, 1.0]]])          # 1 video, 2 contexts
    assert aggregate_surprise(s, "mean").tolist() == [[7 / 3, 5 / 3]]
    assert aggregate_surprise(s, "max", 0).tolist() == [4.0]
    assert aggregate_surprise(s, "mean", "filtered").tolist() == [1.0]   # min per window
    with pytest.raises(ValueError, match="'median'"):
        aggregate_surprise(s, "median")

    possible = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    impossible = np.array([0.3, 0.1, 0.35, 0.4, 0.9])
    assert pairwise_accuracy(possible, impossible) == 3 / 5      # ties do not count
    # 90th percentile rule: sorted possible[ceil(0.9 * 5) = 5 -> clipped to 4] = 0.5.
    assert absolute_threshold(possible) == 0.5
    assert absolute_accuracy(possible, impossible) == (4 + 1) / 10
    ten = np.arange(10.0)
    assert absolute_threshold(ten) == 9.0 and absolute_threshold(np.arange(20.0)) == 18.0
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.ones(5), np.zeros(5)]
    assert auroc(possible, impossible) == pytest.approx(
        roc_auc_score(labels, -np.r_[possible, impossible]))
    lo, hi = bootstrap_ci(possible, impossible, num_samples=2000, seed=0)
    assert 0.0 <= lo < 0.6 < hi <= 1.0
    assert bootstrap_ci(possible, impossible, seed=1) == bootstrap_ci(possible, impossible,
                                                                      seed=1)
    with pytest.raises(ValueError, match="aligned pairs"):
        pairwise_accuracy([1.0, 2.0], [1.0])


def _precision_recall_brute_force(possible, impossible):
    """Float64 reference: for each distinct threshold t of the score -surprise, from the
    highest, call "possible" every video with score >= t; (recall 0, precision 1) first."""
    scores = -np.r_[possible, impossible]
    positive = np.r_[np.ones(len(possible)), np.zeros(len(impossible))].astype(bool)
    recall, precision = [0.0], [1.0]
    for t in sorted(set(scores.tolist()), reverse=True):
        called = scores >= t
        recall.append((called & positive).sum() / positive.sum())
        precision.append((called & positive).sum() / called.sum())
    return np.array(recall), np.array(precision)


def test_auprc_and_best_absolute_accuracy_against_references():
    # Hand-computed: surprise 0.1 (possible), 0.2 (impossible), 0.3 (possible): points
    # (0, 1), (1/2, 1), (1/2, 1/2), (1, 2/3); trapezoid 1/2 + 0 + 1/2 * (1/2 + 2/3) / 2.
    assert auprc([0.1, 0.3], [0.2]) == pytest.approx(0.5 + 0.5 * (0.5 + 2 / 3) / 2)
    assert auprc([0.1, 0.3], [0.2], "step") == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert auprc([0.1, 0.2], [0.3, 0.4]) == 1.0          # perfectly separated
    rng = np.random.default_rng(0)
    possible = np.round(rng.normal(1.0, 0.5, 40), 1)      # rounded: many ties
    impossible = np.round(rng.normal(1.4, 0.5, 40), 1)
    recall, precision = _precision_recall_brute_force(possible, impossible)
    trapezoid = sum((recall[k] - recall[k - 1]) * (precision[k] + precision[k - 1]) / 2
                    for k in range(1, len(recall)))
    step = sum((recall[k] - recall[k - 1]) * precision[k] for k in range(1, len(recall)))
    assert auprc(possible, impossible) == pytest.approx(trapezoid, abs=1e-12)
    assert auprc(possible, impossible, "step") == pytest.approx(step, abs=1e-12)
    assert 0.6 < auprc(possible, impossible) < 0.95
    # Official best absolute accuracy: 100 thresholds from min(possible) to
    # max(impossible); the denominator is twice the number of (possible) pairs.
    best = max(((possible < t).sum() + (impossible > t).sum()) / (2 * len(possible))
               for t in np.linspace(possible.min(), impossible.max(), 100))
    assert best_absolute_accuracy(possible, impossible) == pytest.approx(best, abs=1e-12)
    acc, thr = best_absolute_accuracy(possible, impossible, return_threshold=True)
    assert acc == pytest.approx(((possible < thr).sum() + (impossible > thr).sum()) / 80)
    assert best_absolute_accuracy(possible, impossible) >= absolute_accuracy(possible,
                                                                           impossible)
    with pytest.raises(ValueError, match="'area'"):
        auprc(possible, impossible, "area")
    with pytest.raises(ValueError, match="possible"):
        auprc([], [1.0])


def test_auprc_matches_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    possible = np.round(rng.normal(1.0, 0.5, 30), 1)
    impossible = np.round(rng.normal(1.3, 0.5, 25), 1)
    labels = np.r_[np.ones(30), np.zeros(25)]
    score = -np.r_[possible, impossible]
    precision, recall, _ = metrics.precision_recall_curve(labels, score)
    assert auprc(possible, impossible) == pytest.approx(metrics.auc(recall, precision),
                                                        abs=1e-12)
    assert auprc(possible, impossible, "step") == pytest.approx(
        metrics.average_precision_score(labels, score), abs=1e-12)


def test_metric_rows_and_property_table():
    # Pair 0: possible lower everywhere; pair 1: lower on average, higher at the max.
    p = np.array([[[1.0, 1.0], [2.0, 2.0]], [[1.0, 5.0], [0.0, 0.0]]])
    i = np.array([[[2.0, 2.0], [3.0, 3.0]], [[4.0, 4.0], [1.0, 0.5]]])
    rows = voe_metrics(p, i, context_lengths=(2, 4))
    assert list(rows) == [2, 4, "filtered"]
    assert rows[2]["pairwise_avg"] == 1.0 and rows[2]["pairwise_max"] == 0.5
    assert rows[4]["pairwise_avg"] == 1.0
    assert rows["filtered"]["pairwise_avg"] == 1.0     # min over contexts per window
    table = property_table(np.concatenate([p, p]), np.concatenate([i, p]),
                           ["a", "a", "b", "b"], context_lengths=(2, 4), num_bootstrap=200)
    assert table["a"]["pairwise_avg"] == 1.0 and table["a"]["best_row"] == 2
    assert table["b"]["pairwise_avg"] == 0.0 and table["all"]["num_pairs"] == 4
    assert table["all"]["pairwise_avg"] == 0.5
    # Row 2 (context 2): avg surprise possible [1, 3], impossible [2, 4]; points (0, 1),
    # (1/2, 1), (1/2, 1/2), (1, 2/3), (1, 1/2).
    assert rows[2]["auprc_avg"] == pytest.approx(0.5 + 0.5 * (0.5 + 2 / 3) / 2)
    assert rows[2]["auroc_avg"] == 0.75
    # Max surprise possible [1, 5], impossible [2, 4].
    assert rows[2]["auprc_max"] == auprc([1.0, 5.0], [2.0, 4.0])
    assert rows[2]["best_absolute_max"] == best_absolute_accuracy([1.0, 5.0], [2.0, 4.0])
    text = format_metrics(table)
    assert text.splitlines()[0].split()[-2:] == ["AUPRC", "max"]
    assert text.splitlines()[1].split()[:3] == ["a", "2", "2"]   # property, pairs, row


def test_surprise_plot(tmp_path):
    path = plot_surprise_pair([0.1, 0.2, 0.1], [0.1, 0.6, 0.7], str(tmp_path / "s.png"),
                              window_starts=[0, 2, 4], splice=2)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_cli_demo_defaults_to_physics_and_keeps_digits():
    from keras_jepa.cli import _parser

    parser = _parser()
    assert parser.parse_args(["demo"]).task == "physics"
    args = parser.parse_args(["demo", "--task", "digits", "--epochs", "1"])
    assert args.task == "digits" and args.epochs == 1
    args = parser.parse_args(["intphys", "--preset", "m.keras", "--data", "d",
                              "--format", "grasp"])
    assert args.format == "grasp" and args.stride == 2


@pytest.mark.slow
def test_benchmark_program_on_a_grasp_folder(tiny_vjepa, tmp_path):
    from keras_jepa.data import make_voe_dataset, write_voe_dataset
    from keras_jepa.programs.intphys import evaluate_folder, load_vjepa

    d = make_voe_dataset(["gravity", "inertia"], 1, image_size=16, num_frames=8,
                         dtype="uint8")
    write_voe_dataset(d, str(tmp_path / "grasp"), format="npy")
    tiny_vjepa.save(str(tmp_path / "m.keras"))
    model = load_vjepa(str(tmp_path / "m.keras"))
    out = evaluate_folder(model, str(tmp_path / "grasp"), "grasp", frame_step=1,
                          context_lengths=(2, 4), output_dir=str(tmp_path / "out"),
                          verbose=0)
    assert out["property"] == ["gravity", "gravity", "inertia", "inertia"]
    direct = video_surprise(tiny_vjepa, np.concatenate([d["possible"], d["impossible"]]),
                            context_lengths=(2, 4))
    np.testing.assert_allclose(np.stack(out["surprise"][0]), direct[:4], rtol=1e-4,
                               atol=1e-6)
    assert sorted(os.listdir(tmp_path / "out")) == ["results.json", "surprise_pair.png"]
    with pytest.raises(ValueError, match="not found"):
        load_vjepa(str(tmp_path / "missing.keras"))
