"""Reading checkpoint files written by PyTorch code (official releases, Hugging Face).

Pickled files (``.pth``, ``.pth.tar``, ``.pt``, ``.bin``) are read only with
``torch.load(weights_only=True)``: PyTorch's restricted unpickler, which builds tensors,
containers and plain values and refuses any other object, so a checkpoint cannot run code.
``.safetensors`` files are read with the ``safetensors`` package and ``.npz`` with numpy.
Tensors come back as numpy arrays (bfloat16 becomes float32); the nesting of dicts and
lists is kept.
"""

import os

import numpy as np

PICKLE_SUFFIXES = (".pth", ".pth.tar", ".pt", ".bin", ".ckpt", ".tar")


class UnsafeCheckpointError(ValueError):
    """The pickled checkpoint holds objects other than tensors and plain containers."""


def _to_numpy_tree(value):
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu()
        if "bfloat16" in str(value.dtype) or "float16" in str(value.dtype):
            value = value.float()
        return value.numpy()
    if isinstance(value, dict):
        return {k: _to_numpy_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_numpy_tree(v) for v in value)
    return value


def _read_pickle(path):
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            f"Reading the PyTorch checkpoint {path!r} needs torch (the CPU build is "
            "enough): `pip install torch`. Alternatively convert it once on a machine with "
            "torch (`keras-jepa convert`) and copy the resulting preset folder."
        ) from e
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError (or RuntimeError) here
        text = str(e)
        detail = [line.strip() for line in text.splitlines() if "Unsupported global" in line]
        detail = (detail or [text.splitlines()[0] if text else type(e).__name__])[0]
        if "weights_only" in text or "Unpickl" in type(e).__name__ or "GLOBAL" in text:
            raise UnsafeCheckpointError(
                f"Refusing to load {path!r}: it holds pickled objects other than tensors "
                "and plain containers, and keras_jepa reads checkpoints only with "
                "torch.load(weights_only=True), which never runs code from the file. If "
                "you trust the file, load it yourself with torch.load and pass its state "
                f"dict to keras_jepa. (torch said: {detail[:300]})"
            ) from e
        raise ValueError(f"Cannot read the PyTorch checkpoint {path!r}: {text[:300]}") from e
    return _to_numpy_tree(state)


def _read_safetensors(path):
    try:
        from safetensors import safe_open
    except ImportError as e:
        raise ImportError(
            f"Reading {path!r} needs the safetensors package: `pip install safetensors`."
        ) from e
    try:
        import torch  # noqa: F401  (the torch framework reads bfloat16)

        framework = "pt"
    except ImportError:
        framework = "numpy"
    out = {}
    with safe_open(path, framework=framework) as f:
        for key in f.keys():
            out[key] = _to_numpy_tree(f.get_tensor(key))
    return out


def read_checkpoint(path):
    """Reads a checkpoint file into nested dicts/lists of numpy arrays.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: a pickle holding arbitrary objects.
        ValueError: an unknown suffix or an unreadable file.
    """
    path = os.path.expanduser(str(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No checkpoint file at {path!r}.")
    lower = path.lower()
    if lower.endswith(".safetensors"):
        return _read_safetensors(path)
    if lower.endswith(".npz"):
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    if lower.endswith(PICKLE_SUFFIXES):
        return _read_pickle(path)
    raise ValueError(
        f"Unknown checkpoint format for {path!r}: expected .pth/.pth.tar/.pt/.bin (PyTorch), "
        ".safetensors or .npz."
    )
