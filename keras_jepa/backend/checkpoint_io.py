"""Reading checkpoint files written by PyTorch code (official releases, Hugging Face).

Pickled files (``.pth``, ``.pth.tar``, ``.pt``, ``.bin``) are read only with
``torch.load(weights_only=True)``: PyTorch's restricted unpickler, which builds tensors,
containers and plain values and refuses any other object, so a checkpoint cannot run code.
``.safetensors`` files are read with the ``safetensors`` package and ``.npz`` with numpy.
Tensors come back as numpy arrays (bfloat16 becomes float32); the nesting of dicts and
lists is kept.

The format is read from the file's first bytes, not trusted from its name
(``checkpoint_format``): an empty, truncated or foreign file fails with a ``ValueError``
that names the path and the cause before any reader sees it.
"""

import json
import os
import struct
import zipfile

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
        cause = text.splitlines()[0] if text else type(e).__name__
        raise ValueError(
            f"Cannot read the PyTorch checkpoint {path!r} ({os.path.getsize(path)} bytes): "
            f"torch.load failed with {type(e).__name__}: {cause[:300]}. The file may be "
            "corrupt or incomplete; download or copy it again."
        ) from e
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
    try:
        with safe_open(path, framework=framework) as f:
            for key in f.keys():
                out[key] = _to_numpy_tree(f.get_tensor(key))
    except Exception as e:  # safetensors raises its own SafetensorError
        raise ValueError(
            f"Cannot read the safetensors file {path!r} ({os.path.getsize(path)} bytes): "
            f"{type(e).__name__}: {str(e)[:300]}. The file may be corrupt or incomplete; "
            "download or copy it again."
        ) from e
    return out


def _zip_problem(path):
    """``(None, member names)`` for a readable zip archive, else ``(cause, [])``."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            size = os.path.getsize(path)
            for info in archive.infolist():
                if info.header_offset + info.compress_size > size:
                    return f"its entry {info.filename!r} ends past the end of the file", []
            return None, names
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        return f"its zip central directory cannot be read ({e})", []


def _safetensors_problem(path, size, head):
    """``None`` for a complete safetensors file; a cause string when ``head`` looks like
    one but the file is cut short; ``"not safetensors"`` otherwise."""
    if size < 10 or head[8:9] != b"{":
        return "not safetensors"
    (header_len,) = struct.unpack("<Q", head[:8])
    if header_len > 100_000_000:
        return "not safetensors"
    if 8 + header_len > size:
        return (f"its header announces {header_len} bytes of metadata, but the file ends "
                f"after {size} bytes")
    with open(path, "rb") as f:
        f.seek(8)
        raw = f.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "not safetensors"
    if not isinstance(header, dict):
        return "not safetensors"
    ends = [int(v["data_offsets"][1]) for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v]
    expected = 8 + header_len + max(ends, default=0)
    if expected > size:
        return f"its header describes {expected} bytes of data, but the file has {size}"
    return None


def checkpoint_format(path):
    """The format of a checkpoint file, read from its first bytes: ``"torch_zip"``
    (``torch.save`` since PyTorch 1.6), ``"torch_pickle"`` (older ``torch.save``),
    ``"safetensors"`` or ``"npz"``.

    Raises:
        ValueError: the file is empty, truncated (a zip archive whose central directory
            is missing, a safetensors file shorter than its header says), or in none of
            these formats. The message names the path and the cause.
    """
    size = os.path.getsize(path)
    if size == 0:
        raise ValueError(
            f"The checkpoint file {path!r} is empty (0 bytes): an interrupted download or "
            "copy? Fetch it again."
        )
    with open(path, "rb") as f:
        head = f.read(64)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        problem, names = _zip_problem(path)
        if problem:
            raise ValueError(
                f"The checkpoint file {path!r} ({size} bytes) is truncated or corrupt: it "
                f"starts like a zip archive (PyTorch's format) but {problem}. Download or "
                "copy it again."
            )
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return "torch_zip"
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        raise ValueError(
            f"The file {path!r} is a zip archive but not a PyTorch checkpoint (no data.pkl "
            f"entry) nor a numpy .npz; its first entries: {names[:5]}."
        )
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "torch_pickle"
    problem = _safetensors_problem(path, size, head)
    if problem is None:
        return "safetensors"
    if problem != "not safetensors":
        raise ValueError(
            f"The safetensors file {path!r} is truncated or corrupt: {problem}. Download or "
            "copy it again."
        )
    raise ValueError(
        f"The file {path!r} ({size} bytes) is not a PyTorch checkpoint (zip or pickle) nor "
        f"safetensors: it starts with {head[:16]!r}. Expected a file written by torch.save "
        "(.pth, .pth.tar, .pt, .bin) or a .safetensors file; was an error page or a "
        "partial file saved instead?"
    )


def can_read_pickles():
    """Whether PyTorch pickles (``.pth``/``.pt``, zip or legacy) can be read here: they need
    torch installed (safetensors and ``.npz`` files do not)."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def read_checkpoint(path):
    """Reads a checkpoint file into nested dicts/lists of numpy arrays.

    The suffix must be a known one; the format itself is read from the content
    (``checkpoint_format``), so a safetensors file named ``.bin`` is read as safetensors.

    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: a pickle holding arbitrary objects.
        ValueError: an unknown suffix, or an empty, truncated, foreign or unreadable
            file (the message names the path and the cause).
    """
    path = os.path.expanduser(str(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No checkpoint file at {path!r}.")
    lower = path.lower()
    if lower.endswith((".safetensors", ".npz") + PICKLE_SUFFIXES):
        kind = checkpoint_format(path)
        if kind == "safetensors":
            return _read_safetensors(path)
        if kind == "npz":
            try:
                with np.load(path, allow_pickle=False) as data:
                    return {k: data[k] for k in data.files}
            except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
                raise ValueError(f"Cannot read the .npz file {path!r}: {e}") from e
        return _read_pickle(path)
    raise ValueError(
        f"Unknown checkpoint format for {path!r}: expected .pth/.pth.tar/.pt/.bin (PyTorch), "
        ".safetensors or .npz."
    )
