"""keras_jepa.backend.distribution: multi-device ``fit`` of a tiny I-JEPA on each backend.

The multi-device runs are the guide's CPU commands (``distribute.CPU_COMMANDS``), each in a
subprocess (device counts are fixed before a backend starts); each backend's process runs
only its own. The one-device references run in this process.
"""

import json
import os
import subprocess

import keras
import numpy as np
import pytest

from keras_jepa import distribute
from keras_jepa.backend import replicas
from keras_jepa.backend.distribution import CPU_COMMANDS, setup
from keras_jepa.programs.distribute_demo import batch_losses, run_demo
from tests.test_case import REPO_ROOT

BACKEND = keras.backend.backend()
ROOT = REPO_ROOT


def only(backend):
    return pytest.mark.skipif(BACKEND != backend, reason=f"{backend} backend only")


def run_command(key, output, timeout=600):
    """Runs ``CPU_COMMANDS[key]`` (a shell command line) and returns the rank records."""
    command = CPU_COMMANDS[key].format(output=output)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, timeout=timeout,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "[keras-jepa distribute]" in result.stdout
    records = {}
    for name in sorted(os.listdir(output)):
        if name.startswith("rank") and name.endswith(".json"):
            with open(os.path.join(output, name)) as f:
                record = json.load(f)
            records[record["rank"]] = record
    return records


def check_gather(record, rank, replicas=2, rows=2, width=3):
    """The demo's gather of rows filled with the replica index: the global batch in replica
    order, this replica's offset, and the gradient of sum(gathered * arange) summed over
    the replicas for the local rows."""
    expected = np.repeat(np.arange(replicas, dtype="float32"), rows)[:, None] * np.ones(width)
    np.testing.assert_array_equal(record["gather"]["gathered"], expected)
    assert record["gather"]["offset"] == rank * rows
    c = np.arange(replicas * rows * width, dtype="float32").reshape(-1, width)
    np.testing.assert_array_equal(record["gather"]["grad"],
                                  replicas * c[rank * rows:(rank + 1) * rows])


def weights(path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def max_weight_diff(a, b):
    """Largest difference of the variables, in model order (layer names get a suffix when
    several models are built in one process)."""
    assert len(a) == len(b)
    return max(float(np.abs(x - y).max()) for x, y in zip(a.values(), b.values()))


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One-device run with the global batch of the multi-device runs (8 images)."""
    output = str(tmp_path_factory.mktemp("single"))
    record = run_demo(setup("none"), output, per_replica_batch=8)
    return record, weights(os.path.join(output, "weights.npz"))


def test_commands_set_their_backend_and_bad_strategy_is_named():
    for key, command in CPU_COMMANDS.items():
        assert command.startswith(f"KERAS_BACKEND={key.split('_')[0]} ")
    assert "torchrun --standalone --nproc_per_node=2" in CPU_COMMANDS["torch_data"]
    with pytest.raises(ValueError, match="'pipeline'"):
        setup("pipeline")


def test_setup_none_is_a_single_device_no_op():
    dist = setup("none")
    assert (dist.num_replicas, dist.num_processes, dist.rank, dist.is_chief) == (1, 1, 0, True)
    assert dist.global_batch_size(4) == 4 and dist.process_batch_size(4) == 4
    data = object()
    assert dist.shard(data) is data


def test_non_chief_keeps_no_writers_and_only_restores(tmp_path):
    dist = distribute.Distributed("data", BACKEND, num_replicas=2, num_processes=2, rank=1)
    checkpoint = keras.callbacks.ModelCheckpoint(str(tmp_path / "m.weights.h5"),
                                                 save_weights_only=True)
    csv = keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    stop = keras.callbacks.EarlyStopping()
    kept = dist.callbacks([checkpoint, csv, backup, stop])
    names = [type(c).__name__ for c in kept]
    assert "ModelCheckpoint" not in names and "CSVLogger" not in names
    assert "EarlyStopping" in names and "_RestoreOnly" in names
    assert not hasattr(kept[names.index("_RestoreOnly")], "on_epoch_end") or (
        type(kept[names.index("_RestoreOnly")]).on_epoch_end is keras.callbacks.Callback.on_epoch_end)
    chief = distribute.Distributed("data", BACKEND, num_replicas=2, num_processes=2, rank=0)
    assert [c for c in chief.callbacks([checkpoint, csv]) if c in (checkpoint, csv)] == [
        checkpoint, csv]


def test_sharded_datasets_split_each_global_batch():
    from keras_jepa.data import image_transform
    from keras_jepa.models.jepa.recipes import build_mask_sampler, get_config
    from keras_jepa.data.arrays import ArrayImageDataset

    config = get_config("ijepa_tiny_cpu")
    images = np.random.default_rng(0).random((16, 36, 36, 3)).astype("float32")

    def dataset(batch):
        return ArrayImageDataset(images, batch, transform=image_transform(32), seed=3,
                                 mask_sampler=build_mask_sampler(config, seed=3))

    full = dataset(8)
    full.set_epoch(1)
    parts = []
    for rank in range(2):
        dist = distribute.Distributed("data", BACKEND, num_replicas=2, num_processes=2,
                                      rank=rank)
        part = dist.shard(dataset(4))
        part.set_epoch(1)
        assert len(part) == len(full) == 2
        parts.append(part[1])
    whole = full[1]
    for key in ("images", "context_indices", "target_indices"):
        glued = [np.concatenate([np.asarray(p[key][i] if key != "images" else p[key])
                                 for p in parts]) for i in range(
            1 if key == "images" else len(whole[key]))]
        expected = [np.asarray(whole[key])] if key == "images" else [
            np.asarray(v) for v in whole[key]]
        for a, b in zip(glued, expected):
            np.testing.assert_array_equal(a, b)
    # The two ranks get different images and different masks.
    assert not np.array_equal(parts[0]["images"], parts[1]["images"])
    assert not np.array_equal(parts[0]["target_indices"][0], parts[1]["target_indices"][0])
    with pytest.raises(ValueError, match="index=2"):
        dataset(4).shard(2, 2)


def test_gather_across_replicas_is_identity_on_one_device():
    x = keras.ops.reshape(keras.ops.arange(6, dtype="float32"), (3, 2))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(replicas.gather_across_replicas(x)),
                                  keras.ops.convert_to_numpy(x))
    assert replicas.replica_offset(3) == 0


# ------------------------------------------------------------------------ JAX


@only("jax")
def test_jax_data_parallel_matches_one_device(single, tmp_path):
    record, reference = single
    (run,) = run_command("jax_data", str(tmp_path)).values()
    assert run["num_replicas"] == 4 and run["num_processes"] == 1
    # Same global batch (4 devices x 2 = 8 images, same masks): same losses and weights,
    # up to float32 reduction order.
    np.testing.assert_allclose(batch_losses(run["running_losses"], 3),
                               batch_losses(record["running_losses"], 3), rtol=1e-5)
    assert max_weight_diff(weights(str(tmp_path / "weights.npz")), reference) < 1e-5
    assert max(run["ema_errors"]) < 1e-6
    # SPMD: the step already holds the global batch, the gather is the identity.
    assert np.shape(run["gather"]["gathered"]) == (8, 3) and run["gather"]["offset"] == 0


@only("jax")
def test_jax_model_parallel_shards_large_kernels_and_trains(single, tmp_path):
    record, reference = single
    (run,) = run_command("jax_model", str(tmp_path)).values()
    assert run["num_replicas"] == 2  # 4 devices = 2 (batch) x 2 (model)
    sharded = run["sharded"]
    for prefix in ("vision_transformer/blocks_0", "target_encoder/blocks_0",
                   "predictor/predictor_blocks_0"):
        for name in ("attn/qkv/kernel", "attn/proj/kernel", "mlp/fc1/kernel", "mlp/fc2/kernel"):
            assert sharded[f"{prefix}/{name}"], f"{prefix}/{name} is replicated"
    assert not sharded["vision_transformer/norm/gamma"]
    # Tensor parallelism changes only where the arithmetic runs: same global batch (2 x 4),
    # same losses as one device.
    np.testing.assert_allclose(batch_losses(run["running_losses"], 3),
                               batch_losses(record["running_losses"], 3), rtol=1e-5)
    assert max_weight_diff(weights(str(tmp_path / "weights.npz")), reference) < 1e-5


def test_jepa_layout_map_matches_every_large_kernel_once():
    from keras_jepa.models.jepa.recipes import build_model, get_config

    model = build_model(get_config("ijepa_tiny_cpu").replace(depth=1, predictor_depth=1),
                        ema_steps=10)
    mesh = keras.distribution.DeviceMesh((1, 1), ["batch", "model"], ["cpu:0"])
    layout = distribute.jepa_layout_map(mesh, "model")
    matched = {v.path: layout[v.path].axes for v in model.weights if layout[v.path] is not None}
    # 4 kernels + 2 biases per block in 3 modules, plus predictor_embed and predictor_proj.
    assert len(matched) == 3 * 6 + 3
    assert matched["target_encoder/blocks_0/attn/qkv/kernel"] == (None, "model")
    assert matched["predictor/predictor_blocks_0/mlp/fc2/kernel"] == ("model", None)
    with pytest.raises(ValueError, match="'pipe'"):
        distribute.jepa_layout_map(mesh, "pipe")


# ------------------------------------------------------------------------ torch


@only("torch")
def test_torchrun_ddp_synchronises_and_matches_global_batch(single, tmp_path):
    record, reference = single
    runs = run_command("torch_data", str(tmp_path))
    assert sorted(runs) == [0, 1] and runs[0]["num_replicas"] == 2
    w0 = weights(str(tmp_path / "weights_rank0.npz"))
    w1 = weights(str(tmp_path / "weights_rank1.npz"))
    # Gradients were averaged: both ranks hold the same weights after 6 steps...
    assert max_weight_diff(w0, w1) == 0.0
    # ... equal to one process training on the global batch (ranks' shards 4 + 4 images).
    assert max_weight_diff(w0, reference) < 1e-6
    ddp = np.mean([batch_losses(runs[r]["running_losses"], 3) for r in (0, 1)], axis=0)
    np.testing.assert_allclose(ddp, batch_losses(record["running_losses"], 3), rtol=1e-5)
    # The ranks saw different data (different local losses) and logged the global mean.
    assert runs[0]["running_losses"][0] != runs[1]["running_losses"][0]
    assert runs[0]["history"]["loss"] == runs[1]["history"]["loss"]
    # Only rank 0 writes checkpoints.
    assert "ModelCheckpoint" in runs[0]["callbacks"]
    assert "ModelCheckpoint" not in runs[1]["callbacks"]
    assert os.path.exists(tmp_path / "checkpoints" / "model.weights.h5")
    assert max(runs[0]["ema_errors"]) < 1e-6
    # The cross-replica gather returns the global batch on every rank.
    for rank in (0, 1):
        check_gather(runs[rank], rank)


@only("torch")
def test_without_gradient_sync_a_rank_trains_differently(single, tmp_path):
    # Rank 0 of the 2-rank run, without a process group: same shard of the same batches,
    # but its own gradients only.
    _, reference = single
    dist = distribute.Distributed("data", "torch", num_replicas=2, num_processes=2, rank=0)
    run_demo(dist, str(tmp_path), per_replica_batch=4)
    alone = weights(str(tmp_path / "weights.npz"))
    assert max_weight_diff(alone, reference) > 1e-4


# ------------------------------------------------------------------------ TensorFlow


@only("tensorflow")
def test_mirrored_strategy_fit_and_ema(single, tmp_path):
    record, reference = single
    (run,) = run_command("tensorflow_data", str(tmp_path)).values()
    assert run["num_replicas"] == 2
    # Every step's target update follows m * target + (1 - m) * online (step 0: none) ...
    assert len(run["ema_errors"]) == 6 and max(run["ema_errors"]) < 1e-6
    assert run["ema_step"] == 6.0
    # ... on both replicas' copies, which stay equal.
    assert run["replica_copy_diff"] == 0.0
    # The loss is scaled per replica, so 2 replicas x 4 train like one device x 8.
    np.testing.assert_allclose(batch_losses(run["running_losses"], 3),
                               batch_losses(record["running_losses"], 3), rtol=1e-4)
    assert max_weight_diff(weights(str(tmp_path / "weights.npz")), reference) < 1e-5
    check_gather(run, 0)
