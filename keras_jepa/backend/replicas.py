"""Cross-replica collectives used by contrastive losses (global-batch negatives).

Contrastive image-text losses (SigLIP, CLIP, Llip) get better with more negatives, and the
published recipes score every image against every caption of the *global* batch, gathered
from all devices. ``gather_across_replicas`` is the single hook through which keras_jepa's
losses ask for that gather.

Contract (what a multi-device implementation must keep):

* input ``x`` of shape ``(b, ...)``: this replica's rows;
* output of shape ``(num_replicas * b, ...)``: the rows of every replica concatenated in
  replica order, so this replica's rows sit at ``replica_index * b``;
* gradients flow back to the local rows (an all-gather whose backward is a
  reduce-scatter, as in the SigLIP/CLIP reference training code);
* on a single device (or outside any distribution strategy) it is the identity. Under JAX
  SPMD (``keras.distribution``) the batch axis is already global inside the compiled step,
  so the identity is also correct there.

Per backend:

* JAX: identity (SPMD: the step sees the global batch, sharded by the compiler);
* torch: with a ``torch.distributed`` group of more than one process (``torchrun``, see
  ``keras_jepa.backend.distribution``), an all-gather whose backward sums the gradient over the ranks
  and keeps the local rows (``keras_jepa.backend.torch_distributed``);
* TensorFlow: inside a ``tf.distribute`` replica context with more than one replica
  (``MirroredStrategy``/``TPUStrategy`` ``fit``), ``ReplicaContext.all_gather``, which is
  differentiable the same way; identity in the default (one-replica) context.
"""

import keras


def _tf_replica_context():
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync < 2:
        return None
    return context


def _torch_world():
    from keras_jepa.backend import torch_distributed

    return torch_distributed if torch_distributed.world_size() > 1 else None


def gather_across_replicas(x):
    """Concatenates ``x`` over replicas along axis 0 (identity on a single device).

    Args:
        x: a tensor of per-replica rows, ``(b, ...)``.

    Returns:
        ``(num_replicas * b, ...)``; on a single device ``x`` itself.

    Example:

    >>> import numpy as np
    >>> tuple(gather_across_replicas(np.zeros((4, 3), "float32")).shape)
    (4, 3)
    """
    backend = keras.backend.backend()
    if backend == "torch":
        world = _torch_world()
        if world is not None:
            return world.all_gather_with_grad(x)
    elif backend == "tensorflow":
        context = _tf_replica_context()
        if context is not None:
            return context.all_gather(x, axis=0)
    return x


def replica_offset(local_batch_size):
    """Row index of this replica's first row in the gathered batch (0 on one device).

    Example:

    >>> replica_offset(8)
    0
    """
    backend = keras.backend.backend()
    if backend == "torch":
        world = _torch_world()
        if world is not None:
            return world.rank() * local_batch_size
    elif backend == "tensorflow":
        context = _tf_replica_context()
        if context is not None:
            return context.replica_id_in_sync_group * local_batch_size
    return 0


def gather_check(dist, rows=2, width=3):
    """``gather_across_replicas`` of rows holding each replica's index, in a replica
    context, and the gradient of ``sum(gathered * c)`` (``c = arange``) for the local rows.

    Returns ``{"gathered": [[...]], "offset": int, "grad": [[...]]}`` (replica 0's view on
    TensorFlow; this rank's on torch)."""
    import numpy as np

    n = dist.num_replicas
    weights = np.arange(n * rows * width, dtype="float32").reshape(n * rows, width)
    if dist.backend == "tensorflow" and dist.tf_strategy is not None:
        import tensorflow as tf

        strategy = dist.tf_strategy

        def local(context):
            return tf.fill((rows, width), tf.cast(context.replica_id_in_sync_group, "float32"))

        values = strategy.experimental_distribute_values_from_function(local)

        def step(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                gathered = gather_across_replicas(x)
                loss = tf.reduce_sum(gathered[: n * rows] * weights)
            return gathered, replica_offset(rows), tape.gradient(loss, x)

        gathered, offset, grad = strategy.run(step, args=(values,))
        first = strategy.experimental_local_results
        return {"gathered": np.asarray(first(gathered)[0]).tolist(),
                "offset": int(first(offset)[0]), "grad": np.asarray(first(grad)[0]).tolist()}
    if dist.backend == "torch":
        import torch

        from keras_jepa.backend import torch_distributed

        n = torch_distributed.world_size()
        weights = weights[: n * rows]
        x = torch.full((rows, width), float(dist.rank), requires_grad=True)
        gathered = gather_across_replicas(x)
        (gathered * torch.from_numpy(weights)).sum().backward()
        return {"gathered": gathered.detach().numpy().tolist(),
                "offset": int(replica_offset(rows)), "grad": x.grad.numpy().tolist()}
    import keras

    x = keras.ops.zeros((n * rows, width))  # JAX SPMD: the step already sees every row
    return {"gathered": keras.ops.convert_to_numpy(gather_across_replicas(x)).tolist(),
            "offset": int(replica_offset(rows)), "grad": None}
