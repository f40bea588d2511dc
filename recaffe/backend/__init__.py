"""The only place that knows which array module (numpy or cupy) is in use.

Layers read ``self.xp`` and never branch on the device. Helpers here cover what
really differs between array modules: host copies, scatter-add, random numbers.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

_state: dict[str, Any] = {"mode": "cpu", "device": 0, "dtype": np.float32}
_rng = np.random.default_rng()


def xp():
    """The array module of the current mode."""
    if _state["mode"] == "gpu":
        import cupy  # noqa: PLC0415

        return cupy
    return np


def mode() -> str:
    return _state["mode"]


def set_mode_cpu() -> None:
    _state["mode"] = "cpu"


def set_mode_gpu() -> None:
    from recaffe.errors import BackendError  # noqa: PLC0415

    try:
        import cupy  # noqa: PLC0415
    except ImportError as exc:
        raise BackendError(
            "GPU mode needs CuPy, which is not installed: "
            "pip install 'recaffe[gpu]' (CUDA 12) or cupy-cuda13x (CUDA 13)"
        ) from exc
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - CUDA raises its own types
        raise BackendError(f"GPU mode: no usable CUDA device ({exc})") from exc
    if n == 0:
        raise BackendError("GPU mode: CuPy found no CUDA device")
    _state["mode"] = "gpu"


def set_device(device_id: int) -> None:
    _state["device"] = int(device_id)
    if _state["mode"] == "gpu":
        import cupy  # noqa: PLC0415

        cupy.cuda.Device(int(device_id)).use()


def default_dtype():
    return _state["dtype"]


@contextlib.contextmanager
def dtype_scope(dtype):
    """Create blobs of ``dtype`` inside the block (float64 for gradient checks)."""
    old = _state["dtype"]
    _state["dtype"] = np.dtype(dtype).type
    try:
        yield
    finally:
        _state["dtype"] = old


def rng() -> np.random.Generator:
    """The process-wide host random generator (seeded by set_random_seed)."""
    return _rng


def set_random_seed(seed: int) -> None:
    global _rng
    _rng = np.random.default_rng(int(seed))


def to_host(a) -> np.ndarray:
    """A numpy array holding the values of ``a`` (copies from the GPU)."""
    if isinstance(a, np.ndarray):
        return a
    get = getattr(a, "get", None)
    if get is not None:
        return get()
    return np.asarray(a)


def to_device(a, xpm=None):
    """``a`` as an array of the current (or given) array module."""
    xpm = xpm or xp()
    if xpm is np:
        return np.asarray(a)
    return xpm.asarray(a)


def get_array_module(a):
    if isinstance(a, np.ndarray):
        return np
    try:
        import cupy  # noqa: PLC0415

        return cupy.get_array_module(a)
    except ImportError:
        return np


def scatter_add(target, indices, values) -> None:
    """target[indices] += values, accumulating repeated indices."""
    xpm = get_array_module(target)
    if xpm is np:
        np.add.at(target, indices, values)
    else:
        import cupyx  # noqa: PLC0415

        cupyx.scatter_add(target, indices, values)


def random_uniform(shape, low, high, dtype):
    a = _rng.uniform(low, high, size=shape).astype(dtype, copy=False)
    return to_device(a)


def random_normal(shape, mean, std, dtype):
    a = _rng.normal(mean, std, size=shape).astype(dtype, copy=False)
    return to_device(a)


def random_bernoulli(shape, p):
    return to_device(_rng.random(size=shape) < p)


def random_integers(low, high, size=None):
    return _rng.integers(low, high, size=size)
