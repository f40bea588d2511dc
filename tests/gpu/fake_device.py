"""A CPU stand-in for CuPy, strict where CuPy is strict, for tests without a GPU.

Arrays are a numpy subclass (:class:`FakeDeviceArray`) with CuPy's ``get()``;
like CuPy, a ufunc or module function refuses a host (plain numpy) array
mixed into device arrays, and an assignment ``device[...] = host_array``, so
code that forgets a host->device copy fails here as it would on a GPU. It
counts transfers (:data:`COPIES`: ``asarray``/``set`` from the host, ``get``)
so tests can check recaffe's own copy counters against it. Module functions,
reductions and scalar indexing return device arrays (0-d for scalars), as
CuPy's do. It does not catch everything
CuPy would (implicit device->host conversion through ``np.asarray``, numpy
functions dispatched by ``__array_function__``), and it compiles no CUDA
kernel (``__name__`` is not "cupy", so the fused kernels are not used).

**Stream capture** (CUDA graphs) is modelled as CUDA does it: between
``Stream.begin_capture()`` and ``end_capture()`` device operations are
*recorded, not run*, into a tape with their operands (arrays by reference,
Python scalars by value); ``Graph.launch()`` replays the tape. Operations
that write into existing arrays (``out=``, in-place operators, item
assignment, ``fill``, scatter-add) are only recorded; operations that make a
new array compute it from the current values (to give it its shape) and are
replayed into that same array. Reading a device value on the host during a
capture raises (CUDA refuses the synchronisation), as does a host-to-device
copy (``asarray``/``set`` of a host array; neither is counted then), and so
does a GEMM through
the module (``matmul``, ``dot``: CuPy refuses cuBLAS during a capture); the
module's ``capturable_matmul`` is the stand-in for nvmath-python's cuBLAS.
Arrays made during a capture are reported to the allocator installed with
``cuda.using_allocator`` (the keep-alive of CuPy's memory pool).
"""

from __future__ import annotations

import contextlib
import types

import numpy as np

from recaffe import backend

#: Host<->device transfers made through the stand-in (an independent count
#: to check recaffe's own): asarray/array/set from host memory, get().
COPIES = {"host_to_device": 0, "device_to_host": 0}


def reset_copies() -> None:
    COPIES["host_to_device"] = COPIES["device_to_host"] = 0


class CaptureViolation(RuntimeError):
    """What CUDA or CuPy would raise for this operation during a capture."""


class _Tape:
    """The operations recorded by a capture."""

    def __init__(self):
        self.ops: list = []


#: The tape of the capture in progress (None: operations run at once).
_tape: _Tape | None = None
#: The allocator installed by cuda.using_allocator (called for new arrays
#: made during a capture).
_allocator = None


def _record(op) -> None:
    _tape.ops.append(op)


def _new_array(result, replay) -> object:
    """Register ``result`` (made during a capture) and its replay."""
    if _allocator is not None:
        _allocator(max(int(getattr(result, "nbytes", 0)), 1))
    if isinstance(result, np.ndarray):
        target = result.view(np.ndarray)

        def op():
            np.copyto(target, replay(), casting="unsafe")
        _record(op)
    return result


def _host_read(what: str):
    if _tape is not None:
        raise CaptureViolation(f"{what}: cudaErrorStreamCaptureUnsupported: "
                               "operation not permitted when stream is capturing")


def _gemm_refused():
    if _tape is not None:
        raise NotImplementedError("calling cuBLAS API during stream capture is "
                                  "currently unsupported")


class FakeDeviceArray(np.ndarray):
    """A 'device' array: numpy memory, CuPy's rules for mixing with the host."""

    def get(self, stream=None, order="C", out=None):
        _host_read("get()")
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
        _host_read("set(host array): a synchronous host-to-device copy")
        COPIES["host_to_device"] += 1
        self.view(np.ndarray)[...] = arr

    def __float__(self):
        _host_read("float()")
        return float(self.view(np.ndarray))

    def __int__(self):
        _host_read("int()")
        return int(self.view(np.ndarray))

    def __bool__(self):
        _host_read("bool()")
        return bool(self.view(np.ndarray))

    def __index__(self):
        _host_read("index")
        return self.view(np.ndarray).__index__()

    def item(self, *args):
        _host_read("item()")
        return self.view(np.ndarray).item(*args)

    def tolist(self):
        _host_read("tolist()")
        return self.view(np.ndarray).tolist()

    def dot(self, b, out=None):
        _gemm_refused()
        return _wrap(np.dot(_plain(self), _plain(b), out=_plain(out)))

    def __getitem__(self, key):
        pkey = _plain_key(key)
        res = np.ndarray.__getitem__(self.view(np.ndarray), pkey)
        if isinstance(res, np.generic):  # CuPy: a 0-d device array
            res = np.ndarray.__getitem__(self.view(np.ndarray), _ellipsis(pkey))
        if np.may_share_memory(res, self.view(np.ndarray)):
            return res.view(FakeDeviceArray)
        out = res.view(FakeDeviceArray)
        if _tape is not None:
            base = self.view(np.ndarray)
            _new_array(out, lambda: np.ndarray.__getitem__(base, pkey))
        return out

    def __setitem__(self, key, value) -> None:
        # CuPy refuses a non-scalar host array here (no implicit transfer).
        if isinstance(value, np.ndarray) and not isinstance(value, FakeDeviceArray) \
                and value.ndim > 0:
            raise ValueError("non-scalar numpy.ndarray cannot be used for fill")
        pkey, pval = _plain_key(key), _plain(value)
        base = self.view(np.ndarray)
        if _tape is not None:
            _record(lambda: np.ndarray.__setitem__(base, pkey, pval))
            return
        np.ndarray.__setitem__(base, pkey, pval)

    def fill(self, value):
        base = self.view(np.ndarray)
        if _tape is not None:
            _record(lambda: base.fill(value))
            return
        base.fill(value)

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        _refuse_host(ufunc.__name__, inputs + (out or ()))
        if ufunc is np.matmul:
            _gemm_refused()
        args = [_plain(x) for x in inputs]
        if method == "at":  # in place, into inputs[0]
            fn = ufunc.at
            if _tape is not None:
                _record(lambda: fn(*args, **kwargs))
                return None
            return fn(*args, **kwargs)
        if out is not None:
            kwargs["out"] = tuple(_plain(o) for o in out)
            if _tape is not None:
                fn = getattr(ufunc, method)
                _record(lambda: fn(*args, **kwargs))
                return out[0] if len(out) == 1 else out
        result = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        result = _wrap(result)
        if _tape is not None and isinstance(result, np.ndarray):
            fn = getattr(ufunc, method)
            _new_array(result, lambda: fn(*args, **kwargs))
        return result


def _method(name):
    """A method that may make a new array (recorded during a capture) or write
    into ``out=``."""
    base_fn = getattr(np.ndarray, name)

    def call(self, *args, **kwargs):
        out = kwargs.get("out")
        pargs = [_plain(a) for a in args]
        pkw = {k: _plain(v) for k, v in kwargs.items()}
        me = self.view(np.ndarray)
        if out is not None and _tape is not None:
            _record(lambda: base_fn(me, *pargs, **pkw))
            return out
        res = base_fn(me, *pargs, **pkw)
        if out is not None:
            return out
        if isinstance(res, np.generic):
            res = np.asarray(res)
        if not isinstance(res, np.ndarray):
            return res
        if np.may_share_memory(res, me):
            return res.view(FakeDeviceArray)
        res = res.view(FakeDeviceArray)
        if _tape is not None:
            _new_array(res, lambda: base_fn(me, *pargs, **pkw))
        return res

    call.__name__ = name
    return call


for _name in ("astype", "copy", "take", "argmax", "argmin", "cumsum", "repeat",
              "flatten", "ravel", "reshape", "squeeze", "clip", "round"):
    setattr(FakeDeviceArray, _name, _method(_name))


def _plain_key(key):
    if isinstance(key, tuple):
        return tuple(_plain(k) for k in key)
    return _plain(key)


def _ellipsis(key):
    return (key if isinstance(key, tuple) else (key,)) + (Ellipsis,)


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
    if isinstance(r, np.generic):  # CuPy returns 0-d device arrays
        return np.asarray(r).view(FakeDeviceArray)
    if isinstance(r, tuple):
        return tuple(_wrap(x) for x in r)
    if isinstance(r, list):
        return [_wrap(x) for x in r]
    return r


_FROM_HOST = {"asarray", "array", "ascontiguousarray", "asanyarray"}
#: Module functions that write into their first argument.
_IN_PLACE = {"copyto", "put", "place", "putmask", "fill_diagonal", "put_along_axis"}


def _function(name, fn):
    def call(*args, **kwargs):
        if name in ("matmul", "dot", "tensordot", "inner", "vdot", "einsum"):
            _gemm_refused()
        if name in _FROM_HOST:
            src = args[0]
            if not isinstance(src, FakeDeviceArray):
                _host_read(f"{name}(host array): a synchronous host-to-device copy")
                COPIES["host_to_device"] += 1
            a = np.array(_plain(src), copy=True, **kwargs) if name == "array" \
                else np.array(_plain(src), copy=True, dtype=kwargs.get("dtype"))
            a = a.view(FakeDeviceArray)
            if _tape is not None:
                p = _plain(src)
                _new_array(a, lambda: p)
            return a
        _refuse_host(name, list(args) + list(kwargs.values()))
        out = kwargs.get("out")
        if isinstance(out, FakeDeviceArray):
            kwargs["out"] = out.view(np.ndarray)
        pargs = [_plain(a) for a in args]
        if (out is not None or name in _IN_PLACE) and _tape is not None:
            _record(lambda: fn(*pargs, **kwargs))
            return out
        result = fn(*pargs, **kwargs)
        if out is not None:
            return out
        result = _wrap(result)
        if _tape is not None and isinstance(result, np.ndarray):
            _new_array(result, lambda: fn(*pargs, **kwargs))
        return result

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
    t, i, v = _plain(target), _plain(indices), _plain(values)
    if _tape is not None:
        _record(lambda: np.add.at(t, i, v))
        return
    np.add.at(t, i, v)


class _Graph:
    """A captured tape; ``launch`` replays it."""

    def __init__(self, tape: _Tape):
        self.tape = tape
        self.launches = 0

    def launch(self, stream=None):
        if _tape is not None:
            raise CaptureViolation("graph launch inside a capture")
        for op in self.tape.ops:
            op()
        self.launches += 1


class _Stream:
    null = None

    def __init__(self, null=False, non_blocking=False):
        self.ptr = 0 if null else id(self)
        self._capturing = False
        self._prev = None

    def __enter__(self):
        self._prev = _current[0]
        _current[0] = self
        return self

    def __exit__(self, *exc):
        _current[0] = self._prev

    def begin_capture(self, mode=None):
        global _tape
        if self.ptr == 0:
            raise RuntimeError("cannot capture on the default (legacy) stream")
        if _tape is not None:
            raise RuntimeError("already capturing")
        _tape = _Tape()
        self._capturing = True

    def end_capture(self):
        global _tape
        tape, _tape = _tape, None
        self._capturing = False
        if tape is None:
            raise RuntimeError("end_capture without begin_capture")
        return _Graph(tape)

    def is_capturing(self):
        return self._capturing

    def synchronize(self):
        _host_read("stream synchronize")


_Stream.null = _Stream(null=True)
_current = [_Stream.null]


class _Mem:
    def __init__(self, size):
        self.size = size


class _MemoryPool:
    """Counts what it hands out (the blocks a capture keeps alive)."""

    def __init__(self):
        self.blocks = 0
        self.bytes = 0

    def malloc(self, nbytes):
        self.blocks += 1
        self.bytes += int(nbytes)
        return _Mem(nbytes)

    def total_bytes(self):
        return self.bytes


@contextlib.contextmanager
def _using_allocator(fn=None):
    global _allocator
    old, _allocator = _allocator, fn
    try:
        yield
    finally:
        _allocator = old


def capturable_matmul(a, b, out=None, accumulate=False):
    """The stand-in of nvmath-python's cuBLAS GEMM: allowed during a capture."""
    pa, pb = _plain(a), _plain(b)
    if out is None:
        res = np.matmul(pa, pb).view(FakeDeviceArray)
        if _tape is not None:
            _new_array(res, lambda: np.matmul(pa, pb))
        return res
    po = _plain(out)

    def op():
        if accumulate:
            po[...] += np.matmul(pa, pb)
        else:
            np.matmul(pa, pb, out=po)
    if _tape is not None:
        _record(op)
    else:
        op()
    return out


def capturing() -> bool:
    return _tape is not None


def make_module() -> types.ModuleType:
    mod = types.ModuleType("fakecupy")
    mod.__version__ = "fake"
    mod.ndarray = FakeDeviceArray
    mod.cuda = types.SimpleNamespace(
        runtime=_Runtime, Device=_Device, Stream=_Stream, Graph=_Graph,
        MemoryPool=_MemoryPool, using_allocator=_using_allocator,
        get_current_stream=lambda: _current[0])
    mod.scatter_add_ = _scatter_add
    mod.capturable_matmul = capturable_matmul
    mod.get_array_module = lambda *a: mod

    def as_strided(a, shape=None, strides=None):
        return np.lib.stride_tricks.as_strided(a, shape, strides, subok=True)

    mod.lib = types.SimpleNamespace(
        stride_tricks=types.SimpleNamespace(as_strided=as_strided))

    def take(a, indices, axis=None, out=None, mode="wrap"):
        # CuPy's take wraps out-of-range indices (it has no 'raise' mode).
        return _function("take", np.take)(a, indices, axis=axis, out=out, mode=mode)

    mod.take = take

    def getattr_(name):
        obj = getattr(np, name)
        if isinstance(obj, (type, types.ModuleType)) or not callable(obj):
            return obj
        return _function(name, obj)

    mod.__getattr__ = getattr_
    backend.register_array_type(FakeDeviceArray, mod)
    return mod


FAKE = make_module()
