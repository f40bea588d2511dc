"""oneDNN's LSTM primitives for the ``LSTM`` layer on the CPU, and its packed
matmul for unrolled nets (optional).

With the ``onednn-cpu-gomp`` package installed (``pip install
'recaffe[onednn]'``, Linux x86-64), an ``LSTM`` layer runs its whole sequence
through oneDNN's fused LSTM primitives when the batch allows it: float32, at
least :data:`MIN_N` streams, no static input, ``cont`` 1 after the first step
(the first step's cont is folded into the initial states; for training it
must be 0 or 1), numpy's own BLAS selected. A forward-only layer (TEST phase,
or no loss reaches it) uses the inference primitive, which keeps nothing; a
training forward uses the training primitive, whose workspace its backward
reads. One call for the T steps, the weights packed once per call into the
primitive's own layout, the gates computed while the product is still in
cache. It is the library PyTorch's CPU LSTM runs on. Otherwise (or without
the package, or with ``RECAFFE_ONEDNN=0``) the layer runs recaffe's own loop.
The two agree to float32 rounding (oneDNN sums and rounds in its own order),
not bit for bit; the gradients are Caffe's.

The same library's matmul primitive serves the execution plan
(:class:`PackedMatmul`): the InnerProducts of an unrolled net's steps that
share one weight multiply through it with the weight packed once per pass,
where OpenBLAS would pack it again at every step (``recaffe.plan.kernels.
PackedProduct``).

``RECAFFE_ONEDNN`` may also name the ``libdnnl.so`` to load;
:func:`set_enabled` switches the primitives off and on inside a program.

Two thread pools on the same cores: oneDNN's OpenMP threads (GNU libgomp) and
numpy's OpenBLAS threads. Each spins for a while after its work before it
sleeps, and a spinning pool halves the speed of the other one (measured, T=50
N=64 H=512, 2 cores: the primitive takes 37 ms alone, 76-108 ms right after
an OpenBLAS GEMM; a small GEMM takes 1.2 ms alone, 4.0 ms right after the
primitive). So:

- libgomp is loaded with ``GOMP_SPINCOUNT=1000`` (unless the user set it or
  ``OMP_WAIT_POLICY``): its threads sleep soon after the primitive. The
  primitive itself is as fast (37.5 ms) and the following GEMM 1.6 ms;
- before a primitive runs, numpy's OpenBLAS stops its worker threads
  (``blas_thread_shutdown_``, what OpenBLAS does itself before a fork); its
  next threaded call starts them again (about 0.05 ms). This is done only
  while no other Python thread runs, which could be inside OpenBLAS, or
  after :func:`set_blas_stop` ``("always")`` (the program says no other
  thread calls numpy's BLAS while nets run: a notebook kernel's threads do
  not). Otherwise, with other threads alive and OpenBLAS on more than one
  thread, the layers run their own loop (logged once), as they do when
  numpy's BLAS is not its bundled OpenBLAS.

oneDNN runs as many threads as numpy's BLAS has (threadpoolctl and
``recaffe.backend.blas.set_num_threads`` limit both).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from typing import Any

import numpy as np

from recaffe.errors import BackendError

#: Fewest streams for which the primitives are used. Measured (T=50, D=65,
#: 2 threads, ms, recaffe's own loop vs oneDNN; forward-only, then forward +
#: backward): H=512 N=1 1.75 vs 1.81, 6.13 vs 6.73; N=2 7.58 vs 2.06, 17.6 vs
#: 7.83; N=8 12.0 vs 5.11, 29.8 vs 17.8; N=64 47.2 vs 36.4, 130 vs 116. H=128
#: N=1 0.28 vs 0.27, 0.65 vs 0.85; N=2 0.55 vs 0.35, 1.02 vs 1.09; N=4 1.08 vs
#: 0.46, 1.73 vs 1.38; N=32 3.19 vs 1.96, 6.82 vs 6.31.
MIN_N = 2

# oneDNN C API constants (dnnl_types.h, v3)
_CPU = 1                   # dnnl_cpu
_IN_ORDER = 1              # dnnl_stream_in_order
_F32 = 3                   # dnnl_f32
_TAG_ANY = 1               # dnnl_format_tag_any
_FWD_INFERENCE = 96        # dnnl_forward_inference
_LEFT2RIGHT = 1            # dnnl_unidirectional_left2right
_QUERY_EXEC_ARG_MD = 255   # dnnl_query_exec_arg_md
_ARG_SRC_LAYER, _ARG_SRC_ITER, _ARG_SRC_ITER_C = 1, 2, 3
_ARG_DST_LAYER, _ARG_DST_ITER, _ARG_DST_ITER_C = 17, 18, 19
_ARG_WEIGHTS_LAYER, _ARG_WEIGHTS_ITER, _ARG_BIAS = 33, 34, 41
_ARG_FROM, _ARG_TO = 1, 17
_ARG_SRC, _ARG_WEIGHTS, _ARG_DST = 1, 33, 17  # a matmul's (aliases of the above)
_ARG_DIFF_WEIGHTS_LAYER, _ARG_DIFF_WEIGHTS_ITER, _ARG_WORKSPACE = 161, 162, 64
_FWD_TRAINING = 64         # dnnl_forward_training
_BACKWARD = 128            # dnnl_backward
#: Each array an LSTM primitive reads or writes, by recaffe's name: its exec
#: argument (the diffs: DNNL_ARG_DIFF_*).
_ARG_OF = {"x": _ARG_SRC_LAYER, "h0": _ARG_SRC_ITER, "c0": _ARG_SRC_ITER_C,
           "b": _ARG_BIAS, "y": _ARG_DST_LAYER, "hT": _ARG_DST_ITER,
           "cT": _ARG_DST_ITER_C, "dx": 129, "dh0": 130, "dc0": 131, "db": 169,
           "dy": 145, "dhT": 146, "dcT": 147}
_CALL_NAMES = ("x", "h0", "c0", "b", "y", "hT", "cT")  # a forward's arrays
_P = ctypes.c_void_p
_Dims = ctypes.c_int64 * 12


class _ExecArg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_int), ("memory", _P)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_int), ("minor", ctypes.c_int),
                ("patch", ctypes.c_int), ("hash", ctypes.c_char_p),
                ("cpu_runtime", ctypes.c_uint), ("gpu_runtime", ctypes.c_uint)]


_state: dict[str, Any] = {"checked": False, "lib": None, "path": None, "why": None,
                          "enabled": True, "told": False,
                          "stop_blas": "single-thread",
                          "engine": None, "gomp": None,
                          "openblas": None}
_lock = threading.Lock()
_local = threading.local()  # per thread: a stream, the inference primitives


def _library_path() -> str | None:
    """The libdnnl shared library of the ``onednn-cpu-gomp`` distribution."""
    from importlib import metadata  # noqa: PLC0415

    try:
        files = metadata.files("onednn-cpu-gomp") or []
    except metadata.PackageNotFoundError:
        return None
    hits = sorted({os.path.realpath(f.locate()) for f in files
                   if f.name.startswith("libdnnl.so")})
    return next((h for h in hits if os.path.exists(h)), None)


def _gomp_loaded() -> bool:
    with contextlib.suppress(OSError), open("/proc/self/maps") as f:
        return "libgomp" in f.read()
    return False


def _load() -> None:
    stop = os.environ.get("RECAFFE_ONEDNN_STOP_BLAS", "").strip()
    if stop:
        try:
            set_blas_stop(stop)
        except BackendError as exc:
            raise BackendError(f"RECAFFE_ONEDNN_STOP_BLAS={stop}: {exc}") from None
    setting = os.environ.get("RECAFFE_ONEDNN", "").strip()
    if setting.lower() in ("0", "off", "no", "false"):
        _state["why"] = "disabled by RECAFFE_ONEDNN"
        return
    path = setting or _library_path()
    if not path:
        _state["why"] = "onednn-cpu-gomp is not installed (pip install recaffe[onednn])"
        return
    # libgomp reads its settings once, when it is loaded (see the module doc).
    quiet = not _gomp_loaded() and "GOMP_SPINCOUNT" not in os.environ \
        and "OMP_WAIT_POLICY" not in os.environ
    if quiet:
        os.environ["GOMP_SPINCOUNT"] = "1000"
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        _state["why"] = f"cannot load {path}: {exc}"
        if setting:
            raise BackendError(f"RECAFFE_ONEDNN={setting}: {_state['why']}") from exc
        return
    finally:
        if quiet:
            del os.environ["GOMP_SPINCOUNT"]
    lib.dnnl_primitive_desc_query_md.restype = _P
    lib.dnnl_version.restype = ctypes.POINTER(_Version)
    engine = _P()
    _check(lib.dnnl_engine_create(ctypes.byref(engine), _CPU, ctypes.c_size_t(0)),
           "dnnl_engine_create")
    gomp = None
    with contextlib.suppress(OSError, AttributeError):
        gomp = ctypes.CDLL("libgomp.so.1")
        gomp.omp_set_num_threads.argtypes = [ctypes.c_int]
    _state.update(lib=lib, path=path, engine=engine, gomp=gomp,
                  openblas=_numpy_openblas())
    os.register_at_fork(after_in_child=_forked)


def _forked() -> None:
    """In a child of fork(): libgomp's threads are gone and its next parallel
    region would wait for them forever, so the child runs recaffe's own
    loops."""
    _state.update(lib=None, why="a forked child of a process that ran oneDNN "
                  "(OpenMP's threads do not survive fork())")
    _local.__dict__.clear()


class _Stream:
    """A oneDNN stream, destroyed with its holder (a thread's local data)."""

    def __init__(self):
        self.handle = _P()
        _check(_state["lib"].dnnl_stream_create(ctypes.byref(self.handle),
                                                _state["engine"], _IN_ORDER),
               "dnnl_stream_create")

    def __del__(self):
        with contextlib.suppress(Exception):
            _state["lib"].dnnl_stream_destroy(self.handle)


def _stream() -> _P:
    """This thread's oneDNN stream (a stream is used by one thread at a time)."""
    holder = getattr(_local, "stream", None)
    if holder is None:
        holder = _local.stream = _Stream()
    return holder.handle


def _may_stop_blas() -> bool:
    """Whether numpy's OpenBLAS workers may be stopped now: no other Python
    thread runs (one could be inside OpenBLAS), or the program said that none
    calls it while nets run (:func:`set_blas_stop`)."""
    return _state["stop_blas"] == "always" or threading.active_count() == 1


def _quiet_blas() -> bool:
    """Whether numpy's BLAS can be kept off the cores while oneDNN runs:
    OpenBLAS with one thread (no workers), or one whose workers may be
    stopped. Otherwise the two pools would fight (2-3x slower than recaffe's
    own loop, see the module doc), and the layers run their own loop."""
    ob = _state["openblas"]
    if ob is None:
        return False
    if int(ob[0]()) <= 1 or _may_stop_blas():
        return True
    if not _state["told"]:
        _state["told"] = True
        from recaffe.log import logger  # noqa: PLC0415

        logger.info("LSTM layers run recaffe's own loop, not oneDNN's primitives: "
                    f"{threading.active_count() - 1} other Python thread(s) are "
                    "alive and numpy's BLAS has several threads. If none of them "
                    "calls numpy's BLAS while nets run (a notebook kernel's threads "
                    "do not), recaffe.backend.onednn.set_blas_stop('always') lets "
                    "the primitives run")
    return False


def _usable() -> bool:
    """Whether primitives may be made and run now: available, switched on,
    numpy's BLAS kept off the cores (:func:`_quiet_blas`)."""
    return _state["enabled"] and library() is not None and _quiet_blas()


def set_blas_stop(policy: str) -> None:
    """When numpy's OpenBLAS workers may be stopped before a primitive runs:
    ``"single-thread"`` (the default: only while no other Python thread is
    alive) or ``"always"`` (the program promises that no other thread calls
    numpy's BLAS while nets run; stopping the workers under a running BLAS
    call would break it). Also ``RECAFFE_ONEDNN_STOP_BLAS``."""
    if policy not in ("single-thread", "always"):
        raise BackendError(f"set_blas_stop: expected 'single-thread' or 'always', "
                           f"got {policy!r}")
    _state["stop_blas"] = policy


def _numpy_openblas() -> tuple | None:
    """(get_num_threads, thread_shutdown) of numpy's bundled OpenBLAS."""
    from recaffe.backend import blas  # noqa: PLC0415

    path = blas._numpy_openblas_path()
    if path is None:
        return None
    try:
        ob = ctypes.CDLL(path)
        shutdown = ob.blas_thread_shutdown_
    except (OSError, AttributeError):
        return None
    for name in ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                 "openblas_get_num_threads64_", "openblas_get_num_threads"):
        get = getattr(ob, name, None)
        if get is not None:
            get.restype = ctypes.c_int
            return get, shutdown
    return None


_STATUS = {1: "out of memory", 2: "invalid arguments", 3: "unimplemented",
           4: "no more implementations", 5: "runtime error", 6: "not required"}


def _check(status: int, what: str) -> None:
    if status != 0:
        raise BackendError(f"oneDNN {what} failed: "
                           f"{_STATUS.get(status, 'status')} ({status})")


def library():
    """The loaded libdnnl (ctypes), or None; see :func:`info` for why not."""
    if not _state["checked"]:
        with _lock:
            if not _state["checked"]:
                try:
                    _load()
                finally:
                    _state["checked"] = True
    return _state["lib"]


def available() -> bool:
    """Whether libdnnl is loaded (:func:`set_enabled` aside)."""
    return library() is not None


def set_enabled(flag: bool) -> None:
    """Let ``LSTM`` layers use the primitives and execution plans use the
    matmul (:class:`PackedMatmul`; the default when they are available), or
    not: with ``False`` the layers run recaffe's own loop, whose forward-only
    results are the same bits as its training forward's, and numpy runs every
    InnerProduct."""
    _state["enabled"] = bool(flag)


def info() -> dict:
    """Whether the primitives are available and switched on, the library's
    path and version, the fewest streams they run for; or why not."""
    lib = library()
    if lib is None:
        return {"available": False, "why": _state["why"]}
    v = lib.dnnl_version().contents
    return {"available": True, "enabled": _state["enabled"], "path": _state["path"],
            "version": f"{v.major}.{v.minor}.{v.patch}", "min_streams": MIN_N}


def _md(shape, owned: list, strides=None) -> _P:
    """A float32 memory descriptor, plain with element ``strides`` or 'any';
    appended to ``owned`` for destruction."""
    lib, md = _state["lib"], _P()
    if strides is None:
        _check(lib.dnnl_memory_desc_create_with_tag(
            ctypes.byref(md), len(shape), _Dims(*shape), _F32, _TAG_ANY),
            "dnnl_memory_desc_create_with_tag")
    else:
        _check(lib.dnnl_memory_desc_create_with_strides(
            ctypes.byref(md), len(shape), _Dims(*shape), _F32, _Dims(*strides)),
            "dnnl_memory_desc_create_with_strides")
    owned.append(("dnnl_memory_desc_destroy", md))
    return md


def _threads() -> int:
    """numpy's BLAS thread count, which oneDNN's pool follows (the primitives
    run only where numpy's OpenBLAS is known: :func:`_quiet_blas`)."""
    return max(1, int(_state["openblas"][0]()))


#: Caffe's gate blocks (i, f, o, g) in oneDNN's order (i, f, g, o): (first
#: Caffe gate, number of gates, oneDNN's gate for the first)
_GATE_BLOCKS = ((0, 2, 0), (2, 1, 3), (3, 1, 2))


def _gate_rows(h: int):
    """(Caffe's rows, oneDNN's rows) of each gate block of a (4H,) vector."""
    for first, count, to in _GATE_BLOCKS:
        yield slice(first * h, (first + count) * h), slice(to * h, (to + count) * h)


class _Primitives:
    """oneDNN objects made for one shape and thread count (primitives,
    memories, descriptors), destroyed with their holder."""

    def __init__(self, threads: int):
        if library() is None:
            raise BackendError(f"oneDNN is not available: {_state['why']}")
        self.threads = threads
        self._owned: list[tuple[str, _P]] = []  # (destroy function, handle)
        self._set_threads()  # the primitives are made for this many threads

    def _query(self, pd, arg: int) -> _P:
        return _P(_state["lib"].dnnl_primitive_desc_query_md(pd, _QUERY_EXEC_ARG_MD,
                                                               arg))

    def _reorder(self, src_md, dst_md, attr=None):
        """(source memory, destination memory, reorder, args) from ``src_md``
        to ``dst_md``; both memories get their data handles later."""
        rpd = _P()
        _check(_state["lib"].dnnl_reorder_primitive_desc_create(
            ctypes.byref(rpd), src_md, _state["engine"], dst_md, _state["engine"],
            attr), "dnnl_reorder_primitive_desc_create")
        self._owned.append(("dnnl_primitive_desc_destroy", rpd))
        src, dst = self._memory(src_md), self._memory(dst_md)
        args = (_ExecArg * 2)(_ExecArg(_ARG_FROM, src), _ExecArg(_ARG_TO, dst))
        return src, dst, self._primitive(rpd), args

    def _primitive(self, pd) -> _P:
        prim = _P()
        _check(_state["lib"].dnnl_primitive_create(ctypes.byref(prim), pd),
               "dnnl_primitive_create")
        self._owned.append(("dnnl_primitive_destroy", prim))
        return prim

    def _memory(self, md, alloc=False) -> _P:
        """A memory for ``md``: oneDNN's own allocation, or none (a data
        handle is set before use)."""
        mem = _P()
        handle = _P(ctypes.c_size_t(-1).value) if alloc else _P(0)
        _check(_state["lib"].dnnl_memory_create(ctypes.byref(mem), md,
                                                _state["engine"], handle),
               "dnnl_memory_create")
        self._owned.append(("dnnl_memory_destroy", mem))
        return mem

    @staticmethod
    def _share_buffer(mem, owner) -> None:
        """Point ``mem`` at the buffer oneDNN allocated for ``owner``."""
        base = _P()
        _check(_state["lib"].dnnl_memory_get_data_handle(owner, ctypes.byref(base)),
               "dnnl_memory_get_data_handle")
        _check(_state["lib"].dnnl_memory_set_data_handle(mem, base),
               "dnnl_memory_set_data_handle")

    def close(self) -> None:
        """Free oneDNN's objects (packed weights among them)."""
        lib, owned = _state["lib"], self.__dict__.get("_owned", [])
        while owned:  # newest first: primitives before their descriptors
            fn, handle = owned.pop()
            getattr(lib, fn)(handle)

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()

    # -- per call ------------------------------------------------------------------
    def _begin(self) -> None:
        """Before oneDNN runs: OpenBLAS's workers stop spinning (see the
        module doc), oneDNN's pool gets its thread count."""
        ob = _state["openblas"]
        if ob is not None and int(ob[0]()) > 1 and _may_stop_blas():
            ob[1]()
        self._set_threads()

    def _set_threads(self) -> None:
        gomp = _state["gomp"]
        if gomp is not None and self.threads > 0:
            gomp.omp_set_num_threads(self.threads)

    @staticmethod
    def _point(mem, array, offset=0) -> None:
        _check(_state["lib"].dnnl_memory_set_data_handle(
            mem, _P(array.ctypes.data + offset * array.itemsize)),
            "dnnl_memory_set_data_handle")

    @staticmethod
    def _execute(prim, args) -> None:
        _check(_state["lib"].dnnl_primitive_execute(prim, _stream(), len(args),
                                                    args), "dnnl_primitive_execute")

    @staticmethod
    def _wait() -> None:
        _check(_state["lib"].dnnl_stream_wait(_stream()), "dnnl_stream_wait")


class _LSTMPrimitives(_Primitives):
    """oneDNN objects for one LSTM shape: x (T, N, D) float32, h (T, N, H),
    states (N, H), Caffe's weights W_xc (4H, D), W_hc (4H, H), b_c (4H,).
    Caffe's gate order (i, f, o, g) becomes oneDNN's (i, f, g, o) where the
    weights are packed (and back for their gradients)."""

    def __init__(self, t: int, n: int, d: int, h: int, threads: int):
        super().__init__(threads)
        self.shape = (t, n, d, h)
        own = self._owned
        self._mds = {  # plain layouts of recaffe's arrays
            "x": _md((t, n, d), own, (n * d, d, 1)),
            "y": _md((t, n, h), own, (n * h, h, 1)),
            "state": _md((1, 1, n, h), own, (n * h, n * h, h, 1)),
            "b": _md((1, 1, 4, h), own, (4 * h, 4 * h, h, 1)),
        }
        self._bperm = np.empty(4 * h, np.float32)  # b_c in oneDNN's gate order
        self._mem: dict[str, _P] = {}  # the call's array memories, by name
        self._args: dict[int, Any] = {}  # each primitive's exec arguments

    def _lstm_pd(self, prop_kind: int) -> _P:
        """A forward primitive descriptor; the weights' layouts left to oneDNN."""
        d, h = self.shape[2:]
        m, own, pd = self._mds, self._owned, _P()
        _check(_state["lib"].dnnl_lstm_forward_primitive_desc_create(
            ctypes.byref(pd), _state["engine"], prop_kind, _LEFT2RIGHT, m["x"],
            m["state"], m["state"], _md((1, 1, d, 4, h), own),
            _md((1, 1, h, 4, h), own), None, None, m["b"], m["y"], m["state"],
            m["state"], ctypes.c_uint(0), None),
            "dnnl_lstm_forward_primitive_desc_create")
        own.append(("dnnl_primitive_desc_destroy", pd))
        return pd

    def _packed_weights(self, pd):
        """oneDNN-owned memories for the weights as ``pd`` wants them, and
        the reorders that fill them from Caffe's arrays, a block of gates at a
        time: ({"wx", "wh"} -> memory, [(weight, element offset, source
        memory, reorder, args)])."""
        d, h = self.shape[2:]
        packed, reorders = {}, []
        for key, arg, k in (("wx", _ARG_WEIGHTS_LAYER, d),
                            ("wh", _ARG_WEIGHTS_ITER, h)):
            packed_md = self._query(pd, arg)
            packed[key] = self._memory(packed_md, alloc=True)
            for first, count, to in _GATE_BLOCKS:
                dst_md = _P()
                _check(_state["lib"].dnnl_memory_desc_create_submemory(
                    ctypes.byref(dst_md), packed_md, _Dims(1, 1, k, count, h),
                    _Dims(0, 0, 0, to, 0)), "dnnl_memory_desc_create_submemory")
                self._owned.append(("dnnl_memory_desc_destroy", dst_md))
                src, dst, prim, rargs = self._reorder(self._caffe_md(k, count), dst_md)
                self._share_buffer(dst, packed[key])
                reorders.append((key, first * h * k, src, prim, rargs))
        return packed, reorders

    def _dnnl_md(self, k: int, count: int) -> _P:
        """``count`` gate blocks of a plain oneDNN (layer, direction, K, gate,
        H) weight with all four gates: element strides (4H, H, 1) on the last
        three."""
        h = self.shape[3]
        return _md((1, 1, k, count, h), self._owned,
                   (4 * h * k, 4 * h * k, 4 * h, h, 1))

    def _caffe_md(self, k: int, count: int) -> _P:
        """``count`` gate blocks of a Caffe weight (4H, K) as oneDNN's (layer,
        direction, K, gate, H): element strides (1, H K, K) on the last three."""
        h = self.shape[3]
        return _md((1, 1, k, count, h), self._owned,
                   (4 * h * k, 4 * h * k, 1, h * k, k))

    def _pack(self, reorders, w_xc, w_hc, b_c) -> None:
        """Fill packed weights from Caffe's arrays; b_c into _bperm."""
        for caffe, dnnl in _gate_rows(self.shape[3]):
            self._bperm[dnnl] = b_c[caffe]
        weights = {"wx": w_xc, "wh": w_hc}
        for key, offset, src, prim, args in reorders:
            self._point(src, weights[key], offset)
            self._execute(prim, args)

    def _call(self, prim, arrays: dict) -> None:
        """Run ``prim`` with its argument memories pointed at ``arrays``."""
        for name, arr in arrays.items():
            self._point(self._mem[name], arr)
        self._execute(prim, self._args[prim.value])
        self._wait()

    def _bind(self, prim, packed, names, extra=()) -> None:
        """The exec arguments of ``prim``: the named call memories (made on
        first use), the packed weights and ``extra`` (arg, memory) pairs."""
        m = self._mds
        mds = {"x": m["x"], "h0": m["state"], "c0": m["state"], "b": m["b"],
               "y": m["y"], "hT": m["state"], "cT": m["state"], "dx": m["x"],
               "dh0": m["state"], "dc0": m["state"], "db": m["b"], "dy": m["y"],
               "dhT": m["state"], "dcT": m["state"]}
        for name in names:
            if name not in self._mem:
                self._mem[name] = self._memory(mds[name])
        pairs = [(_ARG_OF[name], self._mem[name]) for name in names]
        pairs += [(_ARG_WEIGHTS_LAYER, packed["wx"]), (_ARG_WEIGHTS_ITER, packed["wh"])]
        pairs += list(extra)
        self._args[prim.value] = (_ExecArg * len(pairs))(*(_ExecArg(a, mem)
                                                           for a, mem in pairs))


class LSTMInference(_LSTMPrimitives):
    """oneDNN's LSTM forward for inference (nothing kept for backward). The
    weights are packed again only when their bits changed since the last
    call: comparing them takes about a fifth of packing them (H=512: 0.15
    vs 0.65 ms), and a net that only runs forward keeps its weights."""

    def __init__(self, t: int, n: int, d: int, h: int, threads: int):
        super().__init__(t, n, d, h, threads)
        pd = self._lstm_pd(_FWD_INFERENCE)
        self._prim = self._primitive(pd)
        packed, self._reorders = self._packed_weights(pd)
        self._bind(self._prim, packed, _CALL_NAMES)
        self._packed_bits: list | None = None  # the bits of the packed weights

    def _changed_bits(self, weights) -> list | None:
        """Copies of the bits of ``weights`` when they differ in any bit
        from the packed ones (-0.0 and 0.0, NaNs: compared as bits), else
        None."""
        bits = [w.view(np.uint32) for w in weights]
        kept = self._packed_bits
        if kept is not None and all(np.array_equal(b, k)
                                    for b, k in zip(bits, kept, strict=True)):
            return None
        return [b.copy() for b in bits]

    def run(self, x, w_xc, b_c, w_hc, h0, c0, y, h_t, c_t) -> None:
        """``y``, ``h_t``, ``c_t`` := the LSTM of ``x`` from states ``h0``,
        ``c0`` (every array C-contiguous float32 of the shapes above; cont is
        1 at every step, the first step's cont is already in ``h0``/``c0``)."""
        self._begin()
        bits = self._changed_bits((w_xc, w_hc, b_c))
        if bits is not None:
            self._packed_bits = None
            self._pack(self._reorders, w_xc, w_hc, b_c)
            self._packed_bits = bits
        self._call(self._prim, {"x": x, "h0": h0, "c0": c0, "b": self._bperm, "y": y,
                                "hT": h_t, "cT": c_t})


class LSTMTraining(_LSTMPrimitives):
    """oneDNN's LSTM forward for training and its backward. The forward's
    outputs and the workspace stay here until the backward: :meth:`forward`
    returns arrays that the caller copies."""

    def __init__(self, t: int, n: int, d: int, h: int, threads: int):
        super().__init__(t, n, d, h, threads)
        lib, own = _state["lib"], self._owned
        fpd = self._lstm_pd(_FWD_TRAINING)
        m = self._mds
        # The weights' gradients come out in oneDNN's plain (K, gate, H) order;
        # reorders that add them to Caffe's gradient arrays follow.
        dw_md = {"wx": self._dnnl_md(d, 4), "wh": self._dnnl_md(h, 4)}
        bpd = _P()
        _check(lib.dnnl_lstm_backward_primitive_desc_create(
            ctypes.byref(bpd), _state["engine"], _BACKWARD, _LEFT2RIGHT, m["x"],
            m["state"], m["state"], _md((1, 1, d, 4, h), own),
            _md((1, 1, h, 4, h), own), None, None, m["b"], m["y"], m["state"],
            m["state"], m["x"], m["state"], m["state"], dw_md["wx"], dw_md["wh"],
            None, None, m["b"], m["y"], m["state"], m["state"], ctypes.c_uint(0), fpd,
            None), "dnnl_lstm_backward_primitive_desc_create")
        own.append(("dnnl_primitive_desc_destroy", bpd))
        self._fwd, self._bwd = self._primitive(fpd), self._primitive(bpd)
        fpacked, self._fwd_reorders = self._packed_weights(fpd)
        bpacked, self._bwd_reorders = self._packed_weights(bpd)
        ws = self._memory(self._query(fpd, _ARG_WORKSPACE), alloc=True)
        self._dw = {"wx": np.zeros((d, 4, h), np.float32),
                    "wh": np.zeros((h, 4, h), np.float32)}
        self._db = np.zeros(4 * h, np.float32)
        # (weight, element offsets (from, to), source, destination, reorder, args)
        self._acc = []
        attr = self._sum_attr()
        for key, k in (("wx", d), ("wh", h)):
            for first, count, to in _GATE_BLOCKS:
                self._acc.append((key, (to * h, first * h * k)) + self._reorder(
                    self._dnnl_md(k, count), self._caffe_md(k, count), attr))
        # the forward's results and the states it started from, kept
        self.y = np.zeros((t, n, h), np.float32)
        self._states = {name: np.zeros((n, h), np.float32)
                        for name in ("h0", "c0", "hT", "cT", "dh0", "dc0", "zero")}
        self._dx = None  # where the input's gradient goes when nobody wants it
        self._bind(self._fwd, fpacked, _CALL_NAMES, [(_ARG_WORKSPACE, ws)])
        dw_mem = {key: self._memory(md) for key, md in dw_md.items()}
        for key, mem in dw_mem.items():
            self._point(mem, self._dw[key])
        self._bind(self._bwd, bpacked, _CALL_NAMES + (
            "dx", "dh0", "dc0", "db", "dy", "dhT", "dcT"), [
            (_ARG_WORKSPACE, ws), (_ARG_DIFF_WEIGHTS_LAYER, dw_mem["wx"]),
            (_ARG_DIFF_WEIGHTS_ITER, dw_mem["wh"])])

    def _sum_attr(self) -> _P:
        """A primitive attribute whose reorders add to their destination."""
        lib, attr, ops = _state["lib"], _P(), _P()
        _check(lib.dnnl_primitive_attr_create(ctypes.byref(attr)),
               "dnnl_primitive_attr_create")
        self._owned.insert(0, ("dnnl_primitive_attr_destroy", attr))
        _check(lib.dnnl_post_ops_create(ctypes.byref(ops)), "dnnl_post_ops_create")
        self._owned.insert(0, ("dnnl_post_ops_destroy", ops))
        _check(lib.dnnl_post_ops_append_sum(ops, ctypes.c_float(1.0), ctypes.c_int32(0),
                                            0), "dnnl_post_ops_append_sum")
        _check(lib.dnnl_primitive_attr_set_post_ops(attr, ops),
               "dnnl_primitive_attr_set_post_ops")
        return attr

    def forward(self, x, w_xc, b_c, w_hc, h0, c0):
        """(h (T, N, H), h_T, c_T) from ``h0``, ``c0`` (copied here, cont
        folded in as for :meth:`LSTMInference.run`); the arrays are this
        object's, valid until its next forward."""
        st = self._states
        st["h0"][...] = h0
        st["c0"][...] = c0
        self._begin()
        self._pack(self._fwd_reorders, w_xc, w_hc, b_c)
        self._call(self._fwd, {"x": x, "h0": st["h0"], "c0": st["c0"], "b": self._bperm,
                               "y": self.y, "hT": st["hT"], "cT": st["cT"]})
        return self.y, st["hT"], st["cT"]

    def backward(self, x, w_xc, b_c, w_hc, dy, dx, grads, dc_t=None) -> None:
        """After :meth:`forward` on the same ``x`` and weights: ``dx`` (or
        None) := dL/dx for the top's diff ``dy``; ``grads`` maps "wx", "wh",
        "b" to Caffe's gradient arrays that get the weights' gradients added
        (a missing key: not wanted). ``dc_t`` (N, H): a gradient reaching the
        final cell state (None: zero). The initial states' gradients are
        left for :meth:`initial_state_diffs`."""
        st = self._states
        if dx is None:
            if self._dx is None:
                self._dx = np.empty(x.shape, np.float32)
            dx = self._dx
        self._begin()
        self._pack(self._bwd_reorders, w_xc, w_hc, b_c)
        for arr in (self._dw["wx"], self._dw["wh"], self._db):
            arr.fill(0.0)  # the primitive adds to its gradients
        self._call(self._bwd, {
            "x": x, "h0": st["h0"], "c0": st["c0"], "b": self._bperm, "y": self.y,
            "hT": st["hT"], "cT": st["cT"], "dx": dx, "dh0": st["dh0"],
            "dc0": st["dc0"], "db": self._db, "dy": dy, "dhT": st["zero"],
            "dcT": st["zero"] if dc_t is None else
            np.ascontiguousarray(dc_t, dtype=np.float32)})
        for key, (src_off, dst_off), src, dst, prim, args in self._acc:
            if key in grads:
                self._point(src, self._dw[key], src_off)
                self._point(dst, grads[key], dst_off)
                self._execute(prim, args)
        self._wait()
        if "b" in grads:
            for caffe, dnnl in _gate_rows(self.shape[3]):
                grads["b"][caffe] += self._db[dnnl]

    def initial_state_diffs(self):
        """The last :meth:`backward`'s gradients of the initial states it
        started from (h_0 and c_0, (N, H) each): this object's arrays, valid
        until its next backward."""
        st = self._states
        return st["dh0"], st["dc0"]


class PackedMatmul(_Primitives):
    """``y = x @ w`` for x (M, K) and y (M, N), C-contiguous float32, through
    oneDNN's matmul primitive with the weight packed once (:meth:`pack`) for
    many products (:meth:`run`): the steps of an unrolled recurrent net
    multiply by the same weight T times, and OpenBLAS packs its operand again
    at every call. ``w`` is a (K, N) float32 matrix with element strides
    ``w_strides`` (``(1, K)`` for Caffe's (N, K) InnerProduct weight used as
    its transpose). Measured on 2 threads, us per product, packed matmul vs
    numpy's fastest orientation: (64, 512) @ (512, 2048) 594 vs 822, (64,
    2048) @ (2048, 512) 590 vs 945, (32, 128) @ (128, 512) 28 vs 41, (32,
    512) @ (512, 128) 26 vs 51; packing 143, 74, 11 and 9 us."""

    def __init__(self, m: int, k: int, n: int, w_strides, threads: int,
                 bias: bool = False):
        super().__init__(threads)
        self.shape, self.w_strides, self.bias = (m, k, n), tuple(w_strides), bias
        lib, own = _state["lib"], self._owned
        src, dst = _md((m, k), own, (k, 1)), _md((m, n), own, (n, 1))
        bias_md = _md((1, n), own, (n, 1)) if bias else None
        pd = _P()
        _check(lib.dnnl_matmul_primitive_desc_create(
            ctypes.byref(pd), _state["engine"], src, _md((k, n), own), bias_md, dst,
            None), "dnnl_matmul_primitive_desc_create")
        own.append(("dnnl_primitive_desc_destroy", pd))
        self._prim = self._primitive(pd)
        packed_md = self._query(pd, _ARG_WEIGHTS)
        packed = self._memory(packed_md, alloc=True)
        self._w, wdst, self._reorder_prim, self._reorder_args = self._reorder(
            _md((k, n), own, self.w_strides), packed_md)
        self._share_buffer(wdst, packed)
        self._x, self._y = self._memory(src), self._memory(dst)
        pairs = [(_ARG_SRC, self._x), (_ARG_WEIGHTS, packed), (_ARG_DST, self._y)]
        if bias:
            self._b = self._memory(bias_md)
            pairs.append((_ARG_BIAS, self._b))
        self._args = (_ExecArg * len(pairs))(*(_ExecArg(a, mem) for a, mem in pairs))

    def pack(self, w) -> None:
        """Pack ``w`` (its strides as given at construction) for :meth:`run`."""
        self._begin()
        self._point(self._w, w)
        self._execute(self._reorder_prim, self._reorder_args)
        self._wait()

    def run(self, x, y, bias=None) -> None:
        """``y`` := ``x`` @ the packed weight (+ ``bias``, an (N,) array, for
        a primitive made with one)."""
        self._begin()
        self._point(self._x, x)
        self._point(self._y, y)
        if self.bias:
            self._point(self._b, bias)
        self._execute(self._prim, self._args)
        self._wait()


def packed_matmul(m: int, k: int, n: int, w_strides, old: PackedMatmul | None = None,
                  bias: bool = False) -> PackedMatmul | None:
    """A :class:`PackedMatmul` for this shape (``old`` when it fits it and
    the thread count), or None where oneDNN is not available, switched off
    (:func:`set_enabled`), or numpy's BLAS cannot be kept off the cores now."""
    if not _usable():
        return None
    threads = _threads()
    return _fitting(old, old is not None and old.shape == (m, k, n)
                    and old.bias == bias and old.w_strides == tuple(w_strides)
                    and old.threads == threads,
                    lambda: PackedMatmul(m, k, n, w_strides, threads, bias))


def _fitting(old, fits: bool, make):
    """``old`` when it ``fits``, else ``make()`` (``old`` closed first)."""
    if fits:
        return old
    if old is not None:
        old.close()
    return make()


def lstm_inference(t: int, n: int, d: int, h: int) -> LSTMInference | None:
    """The inference primitive for this thread and shape (cached: it keeps
    nothing between calls), or None when oneDNN is not available, switched
    off, or numpy's BLAS cannot be kept off the cores now."""
    if not _usable():
        return None
    key = (t, n, d, h, _threads())
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    prim = cache.get(key)
    if prim is None:
        if len(cache) >= 8:
            for old in cache.values():
                old.close()
            cache.clear()
        prim = cache[key] = LSTMInference(*key)
    return prim


def lstm_training(t: int, n: int, d: int, h: int,
                  old: LSTMTraining | None = None) -> LSTMTraining | None:
    """Training primitives for one layer (never shared: they keep the
    forward's workspace for the backward): ``old`` when it fits this shape
    and thread count, else new ones; None as for :func:`lstm_inference`."""
    if not _usable():
        return None
    key = (t, n, d, h, _threads())
    return _fitting(old, old is not None and old.shape + (old.threads,) == key,
                    lambda: LSTMTraining(*key))
