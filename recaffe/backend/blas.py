"""BLAS choice: which library runs the matrix products, and with how many threads.

By default every GEMM is numpy's ``matmul`` (numpy's own BLAS, OpenBLAS in the
PyPI wheels). :func:`set_blas` routes :func:`gemm` through another CBLAS
library loaded with ctypes, as Caffe builds pick MKL, ATLAS or OpenBLAS at
compile time::

    from recaffe.backend import blas
    blas.info()                 # {'library': 'openblas', 'threads': 2, ...}
    blas.set_blas("mkl")        # libmkl_rt from the `mkl` pip package
    blas.set_blas("/usr/lib/x86_64-linux-gnu/libcblas.so.3")   # any CBLAS
    blas.set_num_threads(2)
    blas.gemm(a, b, out)        # out = a @ b through the chosen library

Names: ``"numpy"`` (the default), ``"openblas"`` (numpy's when numpy uses
OpenBLAS, else the system's ``libopenblas.so.0``), ``"mkl"``, ``"atlas"``,
``"blis"``, or a path to a shared library that exports ``cblas_sgemm``.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import sys
from typing import Any

import numpy as np

from recaffe.errors import BackendError

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112

_SYSTEM_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                "/usr/lib64", "/usr/lib", "/usr/local/lib")
_CANDIDATES = {
    "openblas": ("openblas-pthread/libopenblas.so.0", "libopenblas.so.0",
                 "libopenblas.so"),
    "atlas": ("libcblas.so.3", "atlas/libcblas.so.3", "libsatlas.so.3"),
    "blis": ("libblis.so.4", "blis-openmp/libblis.so.4", "blis-pthread/libblis.so.4",
             "libblis.so"),
}
_HINTS = {
    "mkl": "pip install mkl",
    "openblas": "apt-get install libopenblas0-pthread (or use the default 'numpy')",
    "atlas": "apt-get install libatlas3-base",
    "blis": "apt-get install libblis4-openmp",
}

_state: dict[str, Any] = {"name": "numpy", "lib": None, "path": None, "threads": None,
                          # GEMM for device arrays while a CUDA graph is captured
                          "device_gemm": None}


class _Lib:
    """A CBLAS library opened with ctypes."""

    def __init__(self, name: str, path: str):
        try:
            self.cdll = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            raise BackendError(f"BLAS '{name}': cannot load {path}: {exc}") from exc
        self.name, self.path = name, path
        try:
            self.sgemm = self.cdll.cblas_sgemm
            self.dgemm = self.cdll.cblas_dgemm
        except AttributeError as exc:
            raise BackendError(f"BLAS '{name}': {path} has no cblas_sgemm/cblas_dgemm "
                               "(not a CBLAS library)") from exc
        i, p = ctypes.c_int, ctypes.c_void_p
        self.sgemm.argtypes = [i, i, i, i, i, i, ctypes.c_float, p, i, p, i,
                               ctypes.c_float, p, i]
        self.dgemm.argtypes = [i, i, i, i, i, i, ctypes.c_double, p, i, p, i,
                               ctypes.c_double, p, i]
        self.sgemm.restype = self.dgemm.restype = None

    def set_threads(self, n: int) -> bool:
        for fn in ("MKL_Set_Num_Threads", "openblas_set_num_threads",
                   "bli_thread_set_num_threads"):
            f = getattr(self.cdll, fn, None)
            if f is not None:
                f.argtypes = [ctypes.c_int] if fn != "bli_thread_set_num_threads" \
                    else [ctypes.c_long]
                f(int(n))
                return True
        return False

    def get_threads(self) -> int | None:
        for fn in ("MKL_Get_Max_Threads", "openblas_get_num_threads",
                   "bli_thread_get_num_threads"):
            f = getattr(self.cdll, fn, None)
            if f is not None:
                f.restype = ctypes.c_int if fn != "bli_thread_get_num_threads" \
                    else ctypes.c_long
                return int(f())
        return None


def _numpy_blas() -> tuple[str, str | None, int | None, str]:
    """(library, version, threads, how we know) for numpy's own BLAS."""
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415

        for pool in threadpool_info():
            if pool.get("user_api") == "blas" and "numpy" in pool.get("filepath", ""):
                return (pool.get("internal_api", "?"), pool.get("version"),
                        pool.get("num_threads"), "threadpoolctl")
        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                return (pool.get("internal_api", "?"), pool.get("version"),
                        pool.get("num_threads"), "threadpoolctl")
    except ImportError:
        pass
    try:
        cfg = np.show_config(mode="dicts")
        b = cfg.get("Build Dependencies", {}).get("blas", {})
        name = str(b.get("name", "unknown"))
        lib = "openblas" if "openblas" in name else ("mkl" if "mkl" in name else name)
        return lib, b.get("version"), None, "numpy.show_config"
    except Exception:  # noqa: BLE001 - very old numpy
        return "unknown", None, None, "none"


def info() -> dict:
    """What runs the GEMMs now: library, version, threads, path."""
    lib = _state["lib"]
    np_lib, np_ver, np_threads, how = _numpy_blas()
    out = {"selected": _state["name"], "numpy_blas": np_lib,
           "numpy_blas_version": np_ver, "numpy_threads": np_threads,
           "detected_by": how}
    if lib is not None:
        out.update(library=lib.name, path=lib.path, threads=lib.get_threads())
    else:
        out.update(library=np_lib, path=None, threads=np_threads)
    return out


def _find_mkl() -> str | None:
    roots = {sys.prefix, sys.base_prefix,
             os.path.dirname(os.path.dirname(sys.executable))}
    for root in roots:
        for pat in ("lib/libmkl_rt.so*", "Library/bin/mkl_rt*.dll",
                    "lib/libmkl_rt*.dylib"):
            hits = sorted(glob.glob(os.path.join(root, pat)))
            if hits:
                return hits[0]
    for d in _SYSTEM_DIRS:
        hits = sorted(glob.glob(os.path.join(d, "libmkl_rt.so*")))
        if hits:
            return hits[0]
    return None


def _find(name: str) -> str | None:
    if name == "mkl":
        return _find_mkl()
    for d in _SYSTEM_DIRS:
        for c in _CANDIDATES.get(name, ()):
            p = os.path.join(d, c)
            if os.path.exists(p):
                return p
    return None


def set_blas(name: str) -> dict:
    """Route :func:`gemm` through ``name`` (see the module doc); returns info()."""
    key = str(name).strip()
    low = key.lower()
    if low == "numpy" or (low == "openblas" and _numpy_blas()[0] == "openblas"):
        _state.update(name=low, lib=None, path=None)
        return info()
    if os.sep in key or key.endswith((".so", ".dll", ".dylib")) or ".so." in key:
        if not os.path.exists(key):
            raise BackendError(f"BLAS library {key} does not exist")
        lib = _Lib(os.path.basename(key), key)
    elif low in ("mkl", "openblas", "atlas", "blis"):
        path = _find(low)
        if path is None:
            raise BackendError(f"BLAS '{low}' is not installed: {_HINTS[low]}")
        lib = _Lib(low, path)
    else:
        raise BackendError(f"unknown BLAS {name!r}: use 'numpy', 'openblas', 'mkl', "
                           "'atlas', 'blis' or a path to a CBLAS shared library")
    _state.update(name=low, lib=lib, path=lib.path)
    if _state["threads"] is not None:
        lib.set_threads(_state["threads"])
    return info()


def set_num_threads(n: int) -> None:
    """Threads for numpy's BLAS (threadpoolctl) and for the selected library."""
    n = int(n)
    if n < 1:
        raise BackendError(f"set_num_threads: need n >= 1, got {n}")
    _state["threads"] = n
    if _state["lib"] is not None:
        _state["lib"].set_threads(n)
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415

        threadpool_limits(limits=n, user_api="blas")
    except ImportError:
        if _state["lib"] is None:
            raise BackendError("set_num_threads for numpy's BLAS needs threadpoolctl: "
                               "pip install threadpoolctl (or set OPENBLAS_NUM_THREADS "
                               "before starting Python)") from None


def _operand(a, trans: bool):
    """(array, trans flag, leading dimension) for a row-major CBLAS call."""
    if a.flags.c_contiguous:
        return a, trans, a.shape[1]
    if a.flags.f_contiguous:  # a transposed view of a C-contiguous matrix
        return a, not trans, a.shape[0]
    a = np.ascontiguousarray(a)
    return a, trans, a.shape[1]


def gemm(a, b, out=None, trans_a: bool = False, trans_b: bool = False,
         alpha: float = 1.0, beta: float = 0.0):
    """``out = alpha * op(a) @ op(b) + beta * out`` for 2-D arrays; returns out.

    ``op(x)`` is ``x.T`` when the matching ``trans_*`` flag is set. Through the
    selected CBLAS library for float32/float64 numpy arrays, else numpy matmul.
    """
    lib = _state["lib"]
    opa = a.T if trans_a else a
    opb = b.T if trans_b else b
    m, k = opa.shape
    k2, n = opb.shape
    if k != k2:
        raise BackendError(f"gemm: inner dimensions differ: {opa.shape} @ {opb.shape}")
    dtype = a.dtype
    if out is None:
        out = np.empty((m, n), dtype=dtype) if isinstance(a, np.ndarray) else None
        beta = 0.0
    if out is None:  # another array module (cupy): its own matmul
        return alpha * _module_matmul(opa, opb, None)
    if (lib is None or not isinstance(a, np.ndarray) or dtype not in (np.float32,
            np.float64) or b.dtype != dtype or out.dtype != dtype
            or not out.flags.c_contiguous or out.shape != (m, n)):
        if beta == 0.0 and alpha == 1.0:
            if isinstance(a, np.ndarray):
                np.matmul(opa, opb, out=out)
            else:
                _module_matmul(opa, opb, out)
        else:
            prod = _module_matmul(opa, opb, None)
            if beta == 0.0:
                out[...] = alpha * prod
            else:
                out *= beta
                out += alpha * prod
        return out
    a2, ta, lda = _operand(a, trans_a)
    b2, tb, ldb = _operand(b, trans_b)
    fn = lib.sgemm if dtype == np.float32 else lib.dgemm
    fn(_ROW_MAJOR, _TRANS if ta else _NO_TRANS, _TRANS if tb else _NO_TRANS, m, n, k,
       alpha, a2.ctypes.data, lda, b2.ctypes.data, ldb, beta, out.ctypes.data, n)
    return out


def selected() -> str:
    """The name given to the last :func:`set_blas` ('numpy' by default)."""
    return _state["name"]


def routed() -> bool:
    """Whether GEMMs go somewhere other than numpy's own BLAS now: a library
    chosen with :func:`set_blas`, or a device GEMM (:func:`device_gemm`)."""
    return _state["lib"] is not None or _state["device_gemm"] is not None


@contextlib.contextmanager
def device_gemm(fn):
    """Run device GEMMs through ``fn(a, b, out=None, accumulate=False)`` inside
    the block (CUDA-graph capture: CuPy's cuBLAS calls refuse a capturing
    stream; see :mod:`recaffe.backend.cublas_capture`)."""
    old = _state["device_gemm"]
    _state["device_gemm"] = fn
    try:
        yield
    finally:
        _state["device_gemm"] = old


def _module_matmul(a, b, out):
    dev = _state["device_gemm"]
    if dev is not None and type(a) is not np.ndarray:
        return dev(a, b, out)
    if isinstance(a, np.ndarray):
        return np.matmul(a, b, out=out)
    import cupy  # noqa: PLC0415 - only reached with device arrays

    return cupy.matmul(a, b, out=out)


def vdot(a, b, xp):
    """``sum(a * b)`` of two 1-D arrays of module ``xp`` (a 0-d array on a
    device); through the capturable GEMM while a CUDA graph is captured."""
    dev = _state["device_gemm"]
    if dev is not None and type(a) is not np.ndarray:
        return dev(a.reshape(1, -1), b.reshape(-1, 1)).reshape(())
    return xp.vdot(a, b)


def matmul(a, b, out=None):
    """``a @ b`` (2-D, or a batch of 3-D) into ``out``, through the selected BLAS.

    The layers' GEMMs go through here, so :func:`set_blas` changes the library
    that runs them; with the default (numpy) it is ``numpy.matmul``.
    """
    lib = _state["lib"]
    if lib is None or not isinstance(a, np.ndarray) or \
            _state["device_gemm"] is not None:
        return _module_matmul(a, b, out)
    if out is None:
        out = np.empty(np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
                       + (a.shape[-2], b.shape[-1]), dtype=np.result_type(a, b))
    if a.ndim == 2 and b.ndim == 2:
        return gemm(a, b, out)
    for i in range(out.shape[0]):
        gemm(a[i] if a.ndim == 3 else a, b[i] if b.ndim == 3 else b, out[i])
    return out


def matmul_acc(a, b, out) -> None:
    """``out += a @ b`` through the selected BLAS (no temporary with a library)."""
    dev = _state["device_gemm"]
    if dev is not None and type(a) is not np.ndarray:
        dev(a, b, out, accumulate=True)
        return
    lib = _state["lib"]
    if lib is None or not isinstance(a, np.ndarray):
        out += a @ b
        return
    if a.ndim == 2 and b.ndim == 2:
        gemm(a, b, out, beta=1.0)
        return
    for i in range(out.shape[0]):
        gemm(a[i] if a.ndim == 3 else a, b[i] if b.ndim == 3 else b, out[i], beta=1.0)


# RECAFFE_BLAS=<name or path> selects the library for a whole program.
if os.environ.get("RECAFFE_BLAS", "numpy").strip().lower() not in ("", "numpy"):
    set_blas(os.environ["RECAFFE_BLAS"])


# -- numpy's own CBLAS, callable from compiled loops ----------------------------------
_np_cblas: dict[str, Any] = {"checked": False, "fns": {}}
_CBLAS_NAMES = (  # (symbol prefix, suffix, integer type), numpy 2 wheels first
    ("scipy_cblas_", "64_", ctypes.c_int64), ("scipy_cblas_", "", ctypes.c_int),
    ("cblas_", "64_", ctypes.c_int64))


def _numpy_openblas_path() -> str | None:
    """The OpenBLAS shared library bundled with numpy's wheel, if any."""
    root = os.path.dirname(os.path.dirname(np.__file__))
    for pat in ("numpy.libs/lib*openblas*.so*", "numpy/.dylibs/lib*openblas*.dylib"):
        hits = sorted(glob.glob(os.path.join(root, pat)))
        if hits:
            return hits[0]
    return None


def numpy_cblas(dtype) -> tuple | None:
    """``(gemm, gemv)``: ctypes functions of numpy's own OpenBLAS for
    ``dtype`` (float32 or float64), for compiled loops to call with raw
    pointers (row-major CBLAS; ``gemm(order, ta, tb, m, n, k, alpha, a, lda,
    b, ldb, beta, c, ldc)``, ``gemv(order, t, m, n, alpha, a, lda, x, incx,
    beta, y, incy)``). Calls match what ``numpy.matmul`` makes, so results
    are the same bits. None when numpy's BLAS is not a bundled OpenBLAS, or
    while :func:`set_blas` routes the layers' GEMMs elsewhere."""
    if routed():
        return None
    if not _np_cblas["checked"]:
        _np_cblas["checked"] = True
        path = _numpy_openblas_path()
        lib = None
        if path is not None:
            with contextlib.suppress(OSError):
                lib = ctypes.CDLL(path)
        for prefix, suffix, ity in _CBLAS_NAMES if lib is not None else ():
            fns = {}
            for letter, fty in (("s", ctypes.c_float), ("d", ctypes.c_double)):
                try:
                    gemm = getattr(lib, f"{prefix}{letter}gemm{suffix}")
                    gemv = getattr(lib, f"{prefix}{letter}gemv{suffix}")
                except AttributeError:
                    break
                e, p = ctypes.c_int, ctypes.c_void_p
                gemm_t = ctypes.CFUNCTYPE(None, e, e, e, ity, ity, ity, fty, p, ity,
                                          p, ity, fty, p, ity)
                gemv_t = ctypes.CFUNCTYPE(None, e, e, ity, ity, fty, p, ity, p, ity,
                                          fty, p, ity)
                fns[np.dtype(fty).type] = (
                    gemm_t(ctypes.cast(gemm, ctypes.c_void_p).value),
                    gemv_t(ctypes.cast(gemv, ctypes.c_void_p).value))
            if len(fns) == 2:
                _np_cblas["fns"] = {np.dtype(np.float32): fns[np.float32],
                                    np.dtype(np.float64): fns[np.float64]}
                break
    return _np_cblas["fns"].get(np.dtype(dtype))
