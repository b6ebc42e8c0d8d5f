"""Multi-device training on every backend, with one entry point: :func:`setup`.

Call ``setup`` first, before building the model, then build and compile inside
``dist.scope()`` and train with ``dist.fit`` (or ``model.fit`` with ``dist.prepare``,
``dist.shard`` and ``dist.callbacks``)::

    import keras_jepa
    dist = keras_jepa.backend.distribution.setup("data")        # or "fsdp", "model" (JAX)
    with dist.scope():
        model = keras_jepa.models.jepa.recipes.build_model(config, ema_steps=steps)
        model.compile(optimizer=...)
    dataset = build_dataset(config, data, dist.process_batch_size(per_replica_batch))
    dist.fit(model, dataset, epochs=..., callbacks=[keras.callbacks.ModelCheckpoint(...)])

What ``setup`` does on each backend (Keras 3.15):

* **JAX** (one process per host; all local devices):
  ``"data"``: ``keras.distribution.DataParallel`` over every device;
  ``"fsdp"``: ``keras.distribution.ModelParallel`` on a 1-D ``("batch",)`` mesh whose
  :func:`jepa_layout_map` shards the large kernels of the encoder, target encoder and
  predictor along the batch axis (ZeRO-3/FSDP style: XLA gathers each weight where it is used);
  ``"model"``: a 2-D ``("batch", "model")`` mesh with ``model_parallel`` devices per model
  replica and Megatron-style tensor parallelism (qkv/fc1 split by columns, proj/fc2 by rows).
  With several hosts (a TPU pod slice, or ``KERAS_DISTRIBUTION_*`` / SLURM environment),
  ``keras.distribution.initialize()`` runs first; each host loads its own shard of the data.
  The compiled step sees the global batch, so the losses equal a one-device run with the same
  global batch (up to float reduction order).
* **PyTorch** (one process per device, launched by ``torchrun``): joins the process group
  (NCCL on GPUs, gloo on CPUs), and :meth:`Distributed.prepare` broadcasts rank 0's weights
  and averages the gradients over the ranks before every optimizer update
  (``keras_jepa.backend.torch_distributed``; released Keras has no DDP inside ``fit``). Each
  rank loads its shard of every global batch. Only ``"data"`` is supported.
* **TensorFlow**: ``tf.distribute.MirroredStrategy`` over the local GPUs (or
  ``cpu_devices`` logical CPUs), or ``TPUStrategy`` with ``tpu=...``; ``fit`` splits each
  global batch across the replicas. Only ``"data"`` is supported. The EMA target update in
  ``compute_loss`` runs in the replica context; the target variables are mirrored with
  aggregation ``"none"``, so each replica assigns its own copy from identical (already
  synchronised) online weights, and the copies stay equal (tested).

Every process sees different data and masks: :meth:`Distributed.shard` makes a
``keras_jepa`` ``FileDataset`` load rows ``rank * B ...`` of every global batch (see
``FileDataset.shard``), so all processes together see exactly the batches, augmentations and
masks that one process with the global batch size would. Checkpoints, logs and progress bars
are written by the chief process only (:meth:`Distributed.callbacks`).

The commands in ``CPU_COMMANDS`` launch ``python -m keras_jepa.programs.distribute_demo`` (a tiny I-JEPA
run, see that module) on CPUs; the guide ``guides/distributed_training.py`` and the tests
use exactly these.
"""

import contextlib
import os

import keras

STRATEGIES = ("data", "fsdp", "model", "none")

# Launch commands of the CPU demo (``keras_jepa.programs.distribute_demo``), shown by the guide
# and run by the tests. ``{output}`` is the output folder.
CPU_COMMANDS = {
    "jax_single": "KERAS_BACKEND=jax python -m keras_jepa.programs.distribute_demo --strategy none "
                  "--per-replica-batch 8 --output {output}",
    "jax_data": "KERAS_BACKEND=jax python -m keras_jepa.programs.distribute_demo --strategy data "
                "--cpu-devices 4 --per-replica-batch 2 --output {output}",
    "jax_model": "KERAS_BACKEND=jax python -m keras_jepa.programs.distribute_demo --strategy model "
                 "--cpu-devices 4 --model-parallel 2 --per-replica-batch 4 --output {output}",
    "jax_fsdp": "KERAS_BACKEND=jax python -m keras_jepa.programs.distribute_demo --strategy fsdp "
                "--cpu-devices 4 --per-replica-batch 2 --output {output}",
    "torch_data": "KERAS_BACKEND=torch torchrun --standalone --nproc_per_node=2 "
                  "-m keras_jepa.programs.distribute_demo --strategy data --per-replica-batch 4 "
                  "--output {output}",
    "tensorflow_data": "KERAS_BACKEND=tensorflow python -m keras_jepa.programs.distribute_demo "
                       "--strategy data --cpu-devices 2 --per-replica-batch 4 "
                       "--output {output}",
}

# Kernels split by output columns / input rows under tensor parallelism. Paths are those
# of VisionTransformer and JEPAPredictor weights, e.g. "target_encoder/blocks_3/attn/qkv/kernel",
# "predictor/predictor_blocks_0/mlp/fc2/kernel" (LayoutMap matches with re.fullmatch).
COLUMN_KERNELS = r".*/(attn/qkv|mlp/fc1|predictor_embed)/kernel"
COLUMN_BIASES = r".*/(attn/qkv|mlp/fc1|predictor_embed)/bias"
ROW_KERNELS = r".*/(attn/proj|mlp/fc2|mlp/fc3|predictor_proj)/kernel"


def jepa_layout_map(device_mesh, strategy="model", model_axis="model", batch_axis="batch"):
    """A ``keras.distribution.LayoutMap`` that shards the large 2-D kernels of keras_jepa
    ViTs and predictors (context encoder, EMA target encoder, predictor alike).

    Args:
        device_mesh: a ``keras.distribution.DeviceMesh``.
        strategy: ``"model"``: tensor parallelism over ``model_axis`` (qkv, fc1 and
            ``predictor_embed`` split by columns with their biases, ``attn/proj``, ``fc2``
            and ``predictor_proj`` by rows); ``"fsdp"``: every one of these kernels split
            along its first axis over ``batch_axis`` (weights sharded like the batch).
            Under SwiGLU MLPs ``fc2`` gets the row split of the plain MLP's ``fc2``: still
            correct (XLA inserts the collectives), not the cheapest.
        model_axis, batch_axis: mesh axis names.

    Example:

    >>> import keras
    >>> mesh = keras.distribution.DeviceMesh((1,), ["batch"], ["cpu:0"])
    >>> layout = jepa_layout_map(mesh, "fsdp")
    >>> layout["target_encoder/blocks_0/attn/qkv/kernel"].axes
    ('batch', None)
    """

    layout_map = keras.distribution.LayoutMap(device_mesh)
    if strategy == "model":
        layout_map[COLUMN_KERNELS] = (None, model_axis)
        layout_map[COLUMN_BIASES] = (model_axis,)
        layout_map[ROW_KERNELS] = (model_axis, None)
    elif strategy == "fsdp":
        layout_map[COLUMN_KERNELS] = (batch_axis, None)
        layout_map[ROW_KERNELS] = (batch_axis, None)
    else:
        raise ValueError(f"jepa_layout_map strategy must be 'model' or 'fsdp'; got {strategy!r}.")
    return layout_map


class Distributed:
    """What :func:`setup` returns: the chosen layout and the per-process facts.

    Attributes:
        strategy: ``"data"``, ``"fsdp"``, ``"model"`` or ``"none"``.
        backend: the Keras backend.
        num_replicas: data-parallel replicas (devices along the batch axis; torch: ranks).
        num_processes: processes taking part (JAX hosts, torch ranks; 1 on TensorFlow).
        rank: this process's index; ``is_chief``: ``rank == 0``.
        distribution: the ``keras.distribution`` object (JAX) or ``None``.
        tf_strategy: the ``tf.distribute`` strategy (TensorFlow) or ``None``.

    Example (one device, no distribution):

    >>> dist = setup("none")
    >>> dist.num_replicas, dist.rank, dist.is_chief, dist.global_batch_size(8)
    (1, 0, True, 8)
    >>> with dist.scope():
    ...     pass
    """

    def __init__(self, strategy, backend, num_replicas=1, num_processes=1, rank=0,
                 distribution=None, tf_strategy=None):
        self.strategy = strategy
        self.backend = backend
        self.num_replicas = int(num_replicas)
        self.num_processes = int(num_processes)
        self.rank = int(rank)
        self.distribution = distribution
        self.tf_strategy = tf_strategy

    @property
    def is_chief(self):
        """Whether this process writes checkpoints and logs (rank 0)."""
        return self.rank == 0

    def scope(self):
        """Build and compile the model inside this: the ``tf.distribute`` strategy's scope
        on TensorFlow, a no-op on JAX (the distribution is set globally) and torch."""
        if self.tf_strategy is not None:
            return self.tf_strategy.scope()
        return contextlib.nullcontext()

    def global_batch_size(self, per_replica):
        """Samples per optimizer step over all replicas."""
        return int(per_replica) * self.num_replicas

    def process_batch_size(self, per_replica):
        """The batch size this process's dataset must produce: the global batch on
        TensorFlow and single-host JAX, this host's part on multi-host JAX, the
        per-replica batch on torch."""
        return self.global_batch_size(per_replica) // self.num_processes

    # ------------------------------------------------------------------ data

    def shard(self, dataset):
        """This process's share of ``dataset`` (unchanged with one process).

        A keras_jepa ``FileDataset`` (``ImageFolderDataset``, ``VideoDataset``,
        ``ArrayImageDataset``) is sharded in place by rows of each global batch, masks
        included (``FileDataset.shard``); another ``keras.utils.PyDataset`` is wrapped so that
        this process takes every ``num_processes``-th batch.
        """
        if self.num_processes < 2:
            return dataset
        if hasattr(dataset, "shard") and hasattr(dataset, "num_shards"):
            return dataset.shard(self.num_processes, self.rank)
        if isinstance(dataset, keras.utils.PyDataset):
            return _BatchShard(dataset, self.num_processes, self.rank)
        raise ValueError(
            "With several processes, pass a keras.utils.PyDataset (e.g. keras_jepa's "
            f"ImageFolderDataset) so that each process loads its own data; got "
            f"{type(dataset).__name__}."
        )

    # ------------------------------------------------------------------ model and fit

    def prepare(self, model):
        """Readies a compiled model for this layout: on torch with several ranks, broadcasts
        rank 0's weights and makes the optimizer average gradients over the ranks. Returns
        the model."""
        if self.backend == "torch" and self.num_processes > 1:
            from keras_jepa.backend import torch_distributed

            if model.optimizer is None:
                raise ValueError("Compile the model before dist.prepare(model).")
            torch_distributed.broadcast_weights(model)
            torch_distributed.sync_gradients(model.optimizer)
        return model

    def callbacks(self, callbacks=None):
        """``callbacks`` for this process: on non-chief processes, checkpoint, CSV and
        TensorBoard writers are dropped and ``BackupAndRestore`` only restores; on torch a
        first callback prepares the model and averages the epoch metrics over the ranks."""
        callbacks = list(callbacks or [])
        out = []
        if self.backend == "torch" and self.num_processes > 1:
            out.append(_TorchSync(self))
        writers = (keras.callbacks.ModelCheckpoint, keras.callbacks.CSVLogger,
                   keras.callbacks.TensorBoard)
        for callback in callbacks:
            if self.is_chief:
                out.append(callback)
            elif isinstance(callback, keras.callbacks.BackupAndRestore):
                out.append(_RestoreOnly(callback))
            elif not isinstance(callback, writers):
                out.append(callback)
        return out

    def fit(self, model, x=None, callbacks=None, verbose="auto", **kwargs):
        """``model.fit`` with :meth:`prepare`, :meth:`shard` and :meth:`callbacks` applied;
        silent on non-chief processes."""
        self.prepare(model)
        if x is not None:
            x = self.shard(x)
        if not self.is_chief:
            verbose = 0
        return model.fit(x, callbacks=self.callbacks(callbacks), verbose=verbose, **kwargs)

    def shutdown(self):
        """Leaves the torch process group (no-op elsewhere)."""
        if self.backend == "torch":
            from keras_jepa.backend import torch_distributed

            torch_distributed.destroy_process_group()

    def __repr__(self):
        return (f"Distributed(strategy={self.strategy!r}, backend={self.backend!r}, "
                f"num_replicas={self.num_replicas}, num_processes={self.num_processes}, "
                f"rank={self.rank})")


class _BatchShard(keras.utils.PyDataset):
    """Every ``num_shards``-th batch of a PyDataset, starting at ``index``."""

    def __init__(self, dataset, num_shards, index):
        super().__init__(workers=dataset.workers,
                         use_multiprocessing=dataset.use_multiprocessing,
                         max_queue_size=dataset.max_queue_size)
        self.dataset, self.num_shards, self.index = dataset, num_shards, index

    def __len__(self):
        return len(self.dataset) // self.num_shards

    def __getitem__(self, i):
        return self.dataset[i * self.num_shards + self.index]

    def on_epoch_end(self):
        self.dataset.on_epoch_end()


class _RestoreOnly(keras.callbacks.Callback):
    """Runs a ``BackupAndRestore``'s restore, never its saving or deleting."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def set_model(self, model):
        super().set_model(model)
        self.inner.set_model(model)

    def on_train_begin(self, logs=None):
        self.inner.on_train_begin(logs)


class _TorchSync(keras.callbacks.Callback):
    """Prepares the model at the start of ``fit`` (idempotent) and averages the epoch logs
    over the ranks, so that the chief's logs describe the global batch."""

    def __init__(self, dist):
        super().__init__()
        self.dist = dist

    def on_train_begin(self, logs=None):
        self.dist.prepare(self.model)

    def on_epoch_end(self, epoch, logs=None):
        if not logs:
            return
        from keras_jepa.backend import torch_distributed

        keys = sorted(k for k, v in logs.items() if isinstance(v, (int, float)))
        means = torch_distributed.all_reduce_mean([logs[k] for k in keys])
        for key, value in zip(keys, means):
            logs[key] = value


# --------------------------------------------------------------------------- setup


def _set_cpu_devices(backend, count):
    if backend == "jax":
        import jax

        jax.config.update("jax_num_cpu_devices", int(count))
    elif backend == "tensorflow":
        import tensorflow as tf

        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * int(count)
        )


def setup(strategy="data", model_parallel=2, devices=None, cpu_devices=None,
          initialize=None, tpu=None):
    """Chooses how training is spread over devices and processes; call it before building
    the model.

    Args:
        strategy: ``"data"`` (replicated weights, split batch; every backend), ``"fsdp"``
            (weights sharded along the batch axis; JAX), ``"model"`` (tensor parallelism
            over ``model_parallel`` devices, data parallelism over the rest; JAX), or
            ``"none"`` (one device).
        model_parallel: devices per model replica for ``"model"``.
        devices: JAX/TensorFlow device names to use (default: all local accelerators, or
            the CPUs).
        cpu_devices: split the host CPU into this many devices (JAX:
            ``jax_num_cpu_devices``; TensorFlow: logical devices), for trying multi-device
            training on a laptop; must run before the backend starts.
        initialize: JAX multi-host: ``True`` calls ``keras.distribution.initialize()`` (TPU
            pods and SLURM are detected), ``None`` calls it when
            ``KERAS_DISTRIBUTION_NUM_PROCESSES`` or ``..._JOB_ADDRESSES`` is set.
        tpu: TensorFlow only: a TPU name or ``"local"`` (TPU VM) for ``TPUStrategy``.

    Returns:
        A :class:`Distributed`.
    """

    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}; got {strategy!r}.")
    backend = keras.backend.backend()
    if cpu_devices:
        _set_cpu_devices(backend, cpu_devices)
    if strategy == "none":
        return Distributed("none", backend)
    if backend != "jax" and strategy != "data":
        raise ValueError(
            f"strategy={strategy!r} needs the JAX backend (keras.distribution.ModelParallel); "
            f"the {backend} backend supports strategy='data'."
        )
    if backend == "jax":
        return _setup_jax(strategy, model_parallel, devices, initialize)
    if backend == "torch":
        from keras_jepa.backend import torch_distributed

        if torch_distributed.launched_by_torchrun():
            rank, world = torch_distributed.init_process_group()
        else:
            rank, world = torch_distributed.rank(), torch_distributed.world_size()
        return Distributed("data", backend, num_replicas=world, num_processes=world, rank=rank)
    return _setup_tensorflow(devices, tpu)


def _setup_jax(strategy, model_parallel, devices, initialize):
    import jax

    if initialize is None:
        initialize = bool(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES")
                          or os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES"))
    if initialize:
        keras.distribution.initialize()
    devices = list(devices or keras.distribution.list_devices())
    n = len(devices)
    if strategy == "data":
        distribution = keras.distribution.DataParallel(devices=devices)
        replicas = n
    elif strategy == "fsdp":
        mesh = keras.distribution.DeviceMesh((n,), ["batch"], devices)
        distribution = keras.distribution.ModelParallel(
            layout_map=jepa_layout_map(mesh, "fsdp"), batch_dim_name="batch")
        replicas = n
    else:
        mp = int(model_parallel)
        if mp < 1 or n % mp:
            raise ValueError(
                f"model_parallel={model_parallel} must divide the {n} devices."
            )
        mesh = keras.distribution.DeviceMesh((n // mp, mp), ["batch", "model"], devices)
        distribution = keras.distribution.ModelParallel(
            layout_map=jepa_layout_map(mesh, "model"), batch_dim_name="batch")
        replicas = n // mp
    keras.distribution.set_distribution(distribution)
    return Distributed(strategy, "jax", num_replicas=replicas,
                       num_processes=jax.process_count(), rank=jax.process_index(),
                       distribution=distribution)


def _setup_tensorflow(devices, tpu):
    import tensorflow as tf

    if tpu is not None:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu="" if tpu == "local" else tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    else:
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        strategy = tf.distribute.MirroredStrategy(devices)
    return Distributed("data", "tensorflow", num_replicas=strategy.num_replicas_in_sync,
                       tf_strategy=strategy)
