"""Data-parallel ``model.fit`` over processes on the PyTorch backend (``torchrun``).

Keras 3.15's torch trainer has no distribution support: ``fit`` runs the model in one
process. This module adds what ``torch.nn.parallel.DistributedDataParallel`` would give,
without changing Keras's ``train_step``:

* ``init_process_group()``: joins the process group that ``torchrun`` describes in the
  environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``),
  with NCCL on GPUs and gloo on CPUs, and pins the process to GPU ``LOCAL_RANK``.
* ``broadcast_weights(model)``: copies every variable of rank 0 (trainable or not: the EMA
  target encoder and step counters too) to the other ranks, so all start identical.
* ``sync_gradients(optimizer)``: wraps ``optimizer.apply`` (which Keras's torch
  ``train_step`` calls with the local gradients, right after ``loss.backward()``) so that the
  gradients are first averaged over the ranks: one all-reduce of a flat float32 buffer per
  bucket of about 25 MB, like DDP's buckets. A variable without gradient on every rank keeps
  ``None`` (the optimizer skips it, as in one process); one with a gradient on some ranks only
  gets the mean with zeros for the others. Clipping, loss scaling and gradient accumulation
  inside the optimizer then see the global gradient. Unlike DDP, the reduction runs after the
  backward pass instead of overlapping with it.
* ``all_reduce_mean(values)``: averages Python numbers over the ranks (epoch metrics).
* ``all_gather_with_grad(x)``: concatenation over ranks along axis 0 whose gradient flows to
  the local rows (for contrastive losses).

Because every rank applies the same averaged gradient to the same weights, the weights stay
identical, and so does the EMA target encoder that ``compute_loss`` updates from them.
"""

import os

import torch
import torch.distributed as dist

_BUCKET_BYTES = 25 * 1024 * 1024
_WRAPPED = "_keras_jepa_unsynced_apply"


def is_initialized():
    """Whether a ``torch.distributed`` process group is running."""
    return dist.is_available() and dist.is_initialized()


def world_size():
    """Number of processes in the group (1 without one)."""
    return dist.get_world_size() if is_initialized() else 1


def rank():
    """This process's rank in the group (0 without one)."""
    return dist.get_rank() if is_initialized() else 0


def local_rank():
    """``LOCAL_RANK`` set by ``torchrun`` (0 when unset)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def launched_by_torchrun():
    """Whether the environment describes more than one process (``WORLD_SIZE > 1``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_process_group(backend=None, timeout_s=1800):
    """Joins the process group described by the environment, once.

    Args:
        backend: ``"nccl"``, ``"gloo"`` or ``None`` (NCCL when CUDA is available, else gloo).
        timeout_s: collective timeout in seconds.

    Returns:
        ``(rank, world_size)``.
    """
    if not is_initialized():
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            # Keras puts tensors on "cuda", i.e. the current device: make it this rank's GPU.
            torch.cuda.set_device(local_rank())
        import datetime

        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return rank(), world_size()


def destroy_process_group():
    """Leaves the process group (no-op without one)."""
    if is_initialized():
        dist.destroy_process_group()


def barrier():
    """Waits for every rank (no-op without a group)."""
    if world_size() > 1:
        dist.barrier()


def _tensor(variable):
    value = variable.value if hasattr(variable, "value") else variable
    return value.data if isinstance(value, torch.nn.Parameter) else value


def broadcast_weights(model, src=0):
    """Copies all of ``model``'s variables (and its optimizer's, if built) from rank ``src``."""
    if world_size() < 2:
        return
    variables = list(model.variables)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and getattr(optimizer, "built", False):
        variables += list(optimizer.variables)
    with torch.no_grad():
        for variable in variables:
            dist.broadcast(_tensor(variable), src=src)


def _buckets(items, limit=_BUCKET_BYTES):
    bucket, size = [], 0
    for item in items:
        bucket.append(item)
        size += item[1].numel() * 4
        if size >= limit:
            yield bucket
            bucket, size = [], 0
    if bucket:
        yield bucket


def all_reduce_gradients(gradients, variables=None):
    """The mean of ``gradients`` (a list of tensors or ``None``) over the ranks.

    An entry that is ``None`` on every rank stays ``None``; one that is ``None`` here but
    not on another rank counts as zeros here (its shape is taken from ``variables``).
    """
    n = world_size()
    gradients = list(gradients)
    if n < 2:
        return gradients
    reference = next((g for g in gradients if g is not None), None)
    device = reference.device if reference is not None else torch.device("cpu")
    # Presence flags, summed over ranks: which entries have a gradient somewhere.
    flags = torch.tensor(
        [0.0 if g is None else 1.0 for g in gradients], dtype=torch.float32, device=device
    )
    dist.all_reduce(flags)
    present = [bool(f > 0) for f in flags.cpu()]
    items = []
    for i, g in enumerate(gradients):
        if not present[i]:
            continue
        if g is None:
            if variables is None:
                raise ValueError(
                    f"Gradient {i} is None on this rank but not on another; pass the "
                    "variables so that zeros of the right shape can stand in for it."
                )
            g = torch.zeros_like(_tensor(variables[i]))
        items.append((i, g))
    out = [None] * len(gradients)
    for bucket in _buckets(items):
        flat = torch.cat([g.detach().reshape(-1).to(torch.float32) for _, g in bucket])
        dist.all_reduce(flat)
        flat /= n
        offset = 0
        for i, g in bucket:
            size = g.numel()
            out[i] = flat[offset : offset + size].view(g.shape).to(g.dtype)
            offset += size
    return out


def sync_gradients(optimizer):
    """Makes ``optimizer.apply(grads, variables)`` average ``grads`` over the ranks first.

    Idempotent; ``unsync_gradients`` undoes it. Returns the optimizer.
    """
    if getattr(optimizer, _WRAPPED, None) is not None:
        return optimizer
    original = optimizer.apply

    def apply(grads, trainable_variables=None):
        if trainable_variables is None:
            return original(all_reduce_gradients(grads))
        variables = list(trainable_variables)
        return original(all_reduce_gradients(grads, variables), variables)

    object.__setattr__(optimizer, _WRAPPED, original)
    object.__setattr__(optimizer, "apply", apply)
    return optimizer


def unsync_gradients(optimizer):
    """Undoes :func:`sync_gradients`."""
    if getattr(optimizer, _WRAPPED, None) is not None:
        object.__delattr__(optimizer, "apply")
        object.__delattr__(optimizer, _WRAPPED)
    return optimizer


def all_reduce_mean(values):
    """Averages a list of Python numbers over the ranks (float64)."""
    n = world_size()
    values = [float(v) for v in values]
    if n < 2 or not values:
        return values
    device = "cuda" if torch.cuda.is_available() and dist.get_backend() == "nccl" else "cpu"
    buffer = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(buffer)
    return (buffer / n).tolist()


class _AllGather(torch.autograd.Function):
    """All-gather along axis 0; backward: sum the gradient over ranks, keep the local rows
    (a reduce-scatter written with an all-reduce, which gloo and NCCL both have)."""

    @staticmethod
    def forward(ctx, x):
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        ctx.rows = x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start : start + ctx.rows]


def all_gather_with_grad(x):
    """Concatenation of ``x`` over the ranks along axis 0, in rank order; the backward pass
    returns to each rank the summed gradient of its own rows."""
    if world_size() < 2:
        return x
    return _AllGather.apply(x)
