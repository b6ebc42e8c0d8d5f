"""Peak accelerator memory of the active backend (for benchmarks).

``peak_memory_bytes()`` returns the peak bytes allocated on the first accelerator since the
last ``reset_peak_memory()``, or ``None`` on CPU or when the backend does not expose it.
"""

import keras


def _backend():
    return keras.backend.backend()


def reset_peak_memory():
    """Resets the peak counter where the backend allows it (torch, TensorFlow)."""
    backend = _backend()
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            tf.config.experimental.reset_memory_stats(gpus[0].name)


def peak_memory_bytes():
    """Peak bytes in use on the first accelerator, or ``None`` (CPU / not exposed).

    JAX reports its allocator's peak since process start (it has no reset).
    """
    backend = _backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform == "cpu":
            return None
        stats = device.memory_stats() or {}
        return stats.get("peak_bytes_in_use")
    if backend == "torch":
        import torch

        return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        if not gpus:
            return None
        return int(tf.config.experimental.get_memory_info(gpus[0].name)["peak"])
    return None


def device_description():
    """A short description of the device the backend computes on."""
    backend = _backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform}:{getattr(device, 'device_kind', '')}"
    if backend == "torch":
        import torch

        return f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return f"gpu:{gpus[0].name}" if gpus else "cpu"
    return "unknown"
