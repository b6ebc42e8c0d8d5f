"""Per-replica loss scaling for ``tf.distribute`` (the one backend whose ``fit`` sums the
replicas' gradients).

Under ``tf.distribute.MirroredStrategy``/``TPUStrategy`` Keras's TensorFlow ``train_step``
sums the gradients of the replicas and divides the loss it logs by nothing: its own
``compute_loss`` therefore returns each replica's loss divided by the number of replicas
(``keras.losses`` do that internally). A model that overrides ``compute_loss`` must do the
same, or the gradient becomes ``num_replicas`` times the global-batch gradient (and the
logged loss ``num_replicas`` times too). JAX SPMD, torch and one device need no scaling.
"""

import keras


def scale_loss_for_replicas(loss):
    """``loss / num_replicas_in_sync`` under a multi-replica ``tf.distribute`` strategy,
    ``loss`` everywhere else.

    Example:

    >>> float(scale_loss_for_replicas(keras.ops.convert_to_tensor(2.0)))
    2.0
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            loss = loss * keras.ops.cast(1.0 / replicas, loss.dtype)
    return loss
