"""The only place that knows which array module (numpy or cupy) is in use.

Layers read ``self.xp`` and never branch on the device. Helpers here cover what
really differs between array modules: host copies, scatter-add, random numbers,
finiteness checks, synchronisation and device queries.

Modes follow Caffe: ``set_mode_cpu()`` (numpy), ``set_mode_gpu()`` (CuPy on the
device chosen by ``set_device(i)``, default 0). The mode may change at any
time; every change bumps :func:`generation`, and :func:`recaffe.device.ensure_device`
moves a net's (or solver's) arrays to the current device the next time it runs.

Random numbers are always drawn on the host from one numpy Generator and copied
to the device, so a seeded run gives the same masks and samples in both modes.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

_state: dict[str, Any] = {
    "mode": "cpu",
    "device": 0,
    "dtype": np.float32,
    "generation": 0,
    # The device array module (cupy); tests may install a stand-in.
    "device_module": None,
}
_rng = np.random.default_rng()
#: Array types that belong to an array module other than numpy and cupy
#: (type -> module); used by the test suite's stand-in device module.
_array_types: dict[type, Any] = {}

CUDA12_PACKAGE = "cupy-cuda12x"
CUDA13_PACKAGE = "cupy-cuda13x"


def install_hint() -> str:
    """How to install CuPy for GPU mode."""
    return (f"install CuPy for your CUDA driver: pip install 'recaffe[gpu]' "
            f"(= {CUDA12_PACKAGE}, CUDA 12.x) or pip install {CUDA13_PACKAGE} "
            "(CUDA 13.x); `nvidia-smi` shows the driver's CUDA version")


def _backend_error(msg: str):
    from recaffe.errors import BackendError

    return BackendError(msg)


def _import_cupy():
    """The cupy module, or a BackendError saying how to install it."""
    mod = _state["device_module"]
    if mod is not None:
        return mod
    try:
        import cupy
    except ImportError as exc:
        raise _backend_error(f"GPU mode needs CuPy, which is not installed; "
                             f"{install_hint()}") from exc
    except Exception as exc:
        raise _backend_error(f"GPU mode: importing CuPy failed ({exc}); "
                             f"{install_hint()}") from exc
    return cupy


def cupy_available() -> bool:
    """Whether CuPy imports (a device may still be missing)."""
    try:
        _import_cupy()
    except Exception:  # noqa: BLE001
        return False
    return True


def gpu_device_count() -> int:
    """Number of usable CUDA devices (0 without CuPy or a driver)."""
    try:
        cp = _import_cupy()
        return int(cp.cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001 - CUDA raises its own types
        return 0


def gpu_available() -> bool:
    return gpu_device_count() > 0


# -- mode ----------------------------------------------------------------------
def xp():
    """The array module of the current mode."""
    if _state["mode"] == "gpu":
        return _state["device_module"] or _import_cupy()
    return np


def mode() -> str:
    return _state["mode"]


def is_gpu() -> bool:
    return _state["mode"] == "gpu"


def device_id() -> int:
    return _state["device"]


def generation() -> int:
    """A counter bumped by every mode or device change."""
    return _state["generation"]


def _bump() -> None:
    _state["generation"] += 1


def set_mode_cpu() -> None:
    if _state["mode"] != "cpu":
        _state["mode"] = "cpu"
        _bump()


def set_mode_gpu() -> None:
    """Run on the GPU (CuPy). Raises BackendError without CuPy or a device."""
    cp = _import_cupy()
    try:
        n = int(cp.cuda.runtime.getDeviceCount())
    except Exception as exc:
        raise _backend_error(
            f"GPU mode: CuPy is installed but no usable CUDA device was found ({exc}); "
            f"check the driver (`nvidia-smi`) and that the CuPy package matches its "
            f"CUDA version ({install_hint()}), or use set_mode_cpu()") from exc
    if n == 0:
        raise _backend_error("GPU mode: CuPy found no CUDA device; use set_mode_cpu()")
    dev = _state["device"]
    if not 0 <= dev < n:
        raise _backend_error(f"GPU mode: device {dev} does not exist ({n} device(s): "
                             f"0..{n - 1}); call set_device(i) with a valid id")
    cp.cuda.Device(dev).use()
    if _state["mode"] != "gpu":
        _state["mode"] = "gpu"
        _bump()


def set_device(device_id: int) -> None:
    """Choose the CUDA device (used now in GPU mode, else at set_mode_gpu)."""
    dev = int(device_id)
    if dev < 0:
        raise _backend_error(f"set_device: device id must be >= 0, got {dev}")
    if _state["mode"] == "gpu":
        cp = xp()
        n = int(cp.cuda.runtime.getDeviceCount())
        if dev >= n:
            raise _backend_error(f"set_device: device {dev} does not exist ({n} "
                                 f"device(s): 0..{n - 1})")
        cp.cuda.Device(dev).use()
    if dev != _state["device"]:
        _state["device"] = dev
        if _state["mode"] == "gpu":
            _bump()


def synchronize() -> None:
    """Wait for queued device work (a no-op on the CPU); for timing."""
    if _state["mode"] == "gpu":
        xp().cuda.Device(_state["device"]).synchronize()


def device_query(device: int | None = None) -> list[str]:
    """Lines describing the current mode and the CUDA device(s)."""
    lines = [f"Mode: {_state['mode']} (numpy {np.__version__})"]
    try:
        cp = _import_cupy()
    except Exception as exc:  # noqa: BLE001
        return lines + [f"CuPy: not available ({exc})"]
    lines.append(f"CuPy: {getattr(cp, '__version__', '?')}")
    try:
        n = int(cp.cuda.runtime.getDeviceCount())
    except Exception as exc:  # noqa: BLE001
        return lines + [f"CUDA devices: none usable ({exc})"]
    lines.append(f"CUDA devices: {n}")
    with contextlib.suppress(Exception):  # informational only
        lines.append(f"CUDA driver: {cp.cuda.runtime.driverGetVersion()}, runtime: "
                     f"{cp.cuda.runtime.runtimeGetVersion()}")
    ids = range(n) if device is None else [int(device)]
    for i in ids:
        try:
            props = cp.cuda.runtime.getDeviceProperties(i)
        except Exception as exc:  # noqa: BLE001
            lines.append(f"Device {i}: unavailable ({exc})")
            continue
        name = props.get("name", b"")
        name = name.decode() if isinstance(name, bytes) else str(name)
        current = _state["mode"] == "gpu" and i == _state["device"]
        lines.append(
            f"Device {i}: {name}, compute capability {props.get('major')}."
            f"{props.get('minor')}, {props.get('multiProcessorCount')} SMs, "
            f"{int(props.get('totalGlobalMem', 0)) / 2**30:.1f} GiB"
            + (" (current)" if current else ""))
    return lines


# -- dtype -------------------------------------------------------------------------
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


# -- random numbers (host generator, copied to the device) ---------------------------
def rng() -> np.random.Generator:
    """The process-wide host random generator (seeded by set_random_seed)."""
    return _rng


def set_random_seed(seed: int) -> None:
    global _rng
    _rng = np.random.default_rng(int(seed))


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


# -- arrays --------------------------------------------------------------------------
def get_array_module(a):
    """numpy for host arrays (and non-arrays), else the array's device module."""
    t = type(a)
    if t is np.ndarray:
        return np
    mod = _array_types.get(t)
    if mod is not None:
        return mod
    if isinstance(a, (np.ndarray, np.generic)) or not hasattr(
            a, "__cuda_array_interface__"):
        return np
    import cupy

    return cupy.get_array_module(a)


def is_device_array(a) -> bool:
    return get_array_module(a) is not np


def to_host(a) -> np.ndarray:
    """A numpy array holding the values of ``a`` (copies from the GPU)."""
    if type(a) is np.ndarray:
        return a
    get = getattr(a, "get", None)
    if get is not None and not isinstance(a, np.generic):
        return get()
    return np.asarray(a)


def to_device(a, xpm=None):
    """``a`` as an array of the current (or given) array module."""
    xpm = xpm or xp()
    if xpm is np:
        return to_host(a)
    return xpm.asarray(a)


def copy_into(dst, src) -> None:
    """``dst[...] = src`` where ``src`` may live on another device (or be a list)."""
    if isinstance(src, (int, float, np.generic)):
        dst[...] = src
        return
    dst[...] = to_device(src, get_array_module(dst))


def scalar(a) -> float:
    """A Python float from a 0-d or 1-element array (syncs with the device)."""
    return float(to_host(a).reshape(-1)[0]) if hasattr(a, "shape") else float(a)


def all_finite(arrays) -> bool:
    """Whether every element of every array is finite, with one device sync."""
    arrays = list(arrays)
    if not arrays:
        return True
    xpm = get_array_module(arrays[0])
    if xpm is np:
        return all(bool(np.isfinite(a).all()) for a in arrays)
    flags = xpm.stack([xpm.isfinite(a).all() for a in arrays])
    return bool(flags.all())


def scatter_add(target, indices, values) -> None:
    """target[indices] += values, accumulating repeated indices."""
    xpm = get_array_module(target)
    if xpm is np:
        np.add.at(target, indices, values)
        return
    fn = getattr(xpm, "scatter_add_", None)  # stand-in modules
    if fn is not None:
        fn(target, indices, values)
        return
    import cupyx

    cupyx.scatter_add(target, indices, values)


def register_array_type(array_type: type, module) -> None:
    """Declare that arrays of ``array_type`` belong to ``module`` (tests)."""
    _array_types[array_type] = module


@contextlib.contextmanager
def device_module_scope(module):
    """Use ``module`` as the GPU array module inside the block (tests: a stand-in
    that behaves like CuPy on the CPU). Leaves the mode as it was on exit."""
    old_mod, old_mode = _state["device_module"], _state["mode"]
    _state["device_module"] = module
    _bump()
    try:
        yield module
    finally:
        _state["device_module"] = old_mod
        _state["mode"] = old_mode
        _bump()
