"""A CPU stand-in for CuPy, strict where CuPy is strict, for tests without a GPU.

Arrays are a numpy subclass (:class:`FakeDeviceArray`) with CuPy's ``get()``;
like CuPy, a ufunc or module function refuses a host (plain numpy) array
mixed into device arrays, and an assignment ``device[...] = host_array``, so
code that forgets a host->device copy fails here as it would on a GPU. It
counts transfers (:data:`COPIES`: ``asarray``/``set`` from the host, ``get``)
so tests can check recaffe's own copy counters against it. Module functions
return device arrays. It does not catch everything CuPy would (implicit
device->host conversion through ``np.asarray``, numpy functions dispatched
by ``__array_function__``), and it compiles no CUDA kernel (``__name__`` is
not "cupy", so the fused kernels are not used).
"""

from __future__ import annotations

import types

import numpy as np

from recaffe import backend

#: Host<->device transfers made through the stand-in (an independent count
#: to check recaffe's own): asarray/array/set from host memory, get().
COPIES = {"host_to_device": 0, "device_to_host": 0}


def reset_copies() -> None:
    COPIES["host_to_device"] = COPIES["device_to_host"] = 0


class FakeDeviceArray(np.ndarray):
    """A 'device' array: numpy memory, CuPy's rules for mixing with the host."""

    def get(self, stream=None, order="C", out=None):
        COPIES["device_to_host"] += 1
        if out is not None:
            if isinstance(out, FakeDeviceArray) or out.shape != self.shape:
                raise ValueError("get(out=): out must be a host array of the same "
                                 "shape")
            out[...] = self.view(np.ndarray)
            return out
        return np.array(self.view(np.ndarray), copy=True)

    def set(self, arr, stream=None):
        if isinstance(arr, FakeDeviceArray) or not isinstance(arr, np.ndarray):
            raise TypeError("set(): only a host numpy array can be copied in")
        if arr.shape != self.shape:
            raise ValueError(f"set(): shape mismatch {arr.shape} != {self.shape}")
        COPIES["host_to_device"] += 1
        self.view(np.ndarray)[...] = arr

    def __setitem__(self, key, value) -> None:
        # CuPy refuses a non-scalar host array here (no implicit transfer).
        if isinstance(value, np.ndarray) and not isinstance(value, FakeDeviceArray) \
                and value.ndim > 0:
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        super().__setitem__(key, _plain(value))

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _refuse_host(ufunc.__name__, inputs + (out or ()))
        args = [_plain(x) for x in inputs]
        if out is not None:
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)


def _refuse_host(name, values) -> None:
    for x in values:
        if type(x) is np.ndarray and x.ndim > 0:
            raise TypeError(f"{name}: a host numpy array {x.shape} mixed with device "
                            "arrays (CuPy refuses implicit host->device conversion)")


def _plain(x):
    return x.view(np.ndarray) if isinstance(x, FakeDeviceArray) else x


def _wrap(r):
    if type(r) is np.ndarray:
        return r.view(FakeDeviceArray)
    if isinstance(r, tuple):
        return tuple(_wrap(x) for x in r)
    if isinstance(r, list):
        return [_wrap(x) for x in r]
    return r


_FROM_HOST = {"asarray", "array", "ascontiguousarray", "asanyarray"}


def _function(name, fn):
    def call(*args, **kwargs):
        if name in _FROM_HOST:
            if not isinstance(args[0], FakeDeviceArray):
                COPIES["host_to_device"] += 1
            a = np.array(_plain(args[0]), copy=True, **kwargs) if name == "array" \
                else np.array(_plain(args[0]), copy=True, dtype=kwargs.get("dtype"))
            return a.view(FakeDeviceArray)
        _refuse_host(name, list(args) + list(kwargs.values()))
        out = kwargs.get("out")
        if isinstance(out, FakeDeviceArray):
            kwargs["out"] = out.view(np.ndarray)
        result = fn(*[_plain(a) for a in args], **kwargs)
        return out if out is not None else _wrap(result)

    call.__name__ = name
    return call


class _Device:
    def __init__(self, i=0):
        self.id = int(i)

    def use(self):
        return None

    def synchronize(self):
        return None


class _Runtime:
    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def getDeviceProperties(i):
        return {"name": b"Fake device (CPU stand-in)", "major": 0, "minor": 0,
                "multiProcessorCount": 1, "totalGlobalMem": 2**30}

    @staticmethod
    def driverGetVersion():
        return 0

    @staticmethod
    def runtimeGetVersion():
        return 0


def _scatter_add(target, indices, values) -> None:
    np.add.at(_plain(target), _plain(indices), _plain(values))


def make_module() -> types.ModuleType:
    mod = types.ModuleType("fakecupy")
    mod.__version__ = "fake"
    mod.ndarray = FakeDeviceArray
    mod.cuda = types.SimpleNamespace(runtime=_Runtime, Device=_Device)
    mod.scatter_add_ = _scatter_add
    mod.get_array_module = lambda *a: mod

    def as_strided(a, shape=None, strides=None):
        return np.lib.stride_tricks.as_strided(a, shape, strides, subok=True)

    mod.lib = types.SimpleNamespace(
        stride_tricks=types.SimpleNamespace(as_strided=as_strided))

    def getattr_(name):
        obj = getattr(np, name)
        if isinstance(obj, (type, types.ModuleType)) or not callable(obj):
            return obj
        return _function(name, obj)

    mod.__getattr__ = getattr_
    backend.register_array_type(FakeDeviceArray, mod)
    return mod


FAKE = make_module()
