"""CUDA graphs: record a pass of device work once, replay it with one launch.

Every recaffe step on the GPU is a few kernel launches issued from Python; a
training iteration of an unrolled or recurrent net is hundreds of them, and
their launch cost, not the arithmetic, sets the pace. CUDA stream capture
records the launches of one pass into a graph that is then replayed with a
single ``cudaGraphLaunch``. This module holds the device side of that:

- :func:`capture` runs a Python function on a side stream in capture mode
  (CuPy's ``Stream.begin_capture``/``end_capture``, relaxed mode, so that the
  memory pool may grow during the capture) and returns a :class:`DeviceGraph`;
- GEMMs issued through :mod:`recaffe.backend.blas` during the capture go
  through cuBLAS bindings that accept a capturing stream
  (:mod:`recaffe.backend.cublas_capture`; CuPy's own cuBLAS calls refuse);
- every allocation made during the capture comes from a private memory pool
  and is kept alive as long as the graph (:attr:`DeviceGraph.keep`): the
  replays write into that memory, so it must never be handed to other arrays;
- values the host needs after a replay (losses, flags) are gathered inside the
  graph into one small device vector, read with a single copy
  (:meth:`DeviceGraph.readback`);
- checks of bad input that a layer does on the host (``bool(bad.any())``) are
  deferred during a capture by :func:`any_flag`: the flag is computed inside
  the graph, read back after each replay, and when set the layer's own check
  runs eagerly and raises its typed error.

A capture that fails (a host read, an unsupported call, a CUDA error) raises
:class:`CaptureError` with the reason; callers then run eagerly. Set
``RECAFFE_CUDA_GRAPH=0`` to turn graphs off.

The array module needs CuPy's surface for this (``cuda.Stream`` with
``begin_capture``, ``cuda.MemoryPool``, ``cuda.using_allocator``); the test
suite's CPU stand-in provides the same surface.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from recaffe.backend import blas, cublas_capture

#: The capture in progress (one at a time; captures are not nested).
_active: Capture | None = None
#: One capture stream per (array module, device).
_streams: dict[tuple[int, int], object] = {}


class CaptureError(Exception):
    """A pass could not be captured; ``str(exc)`` is the reason."""


def enabled() -> bool:
    """False when the environment variable ``RECAFFE_CUDA_GRAPH`` is ``0``."""
    return os.environ.get("RECAFFE_CUDA_GRAPH", "1").strip().lower() not in (
        "0", "false", "no", "off")


def unsupported(xpm) -> str | None:
    """Why arrays of module ``xpm`` cannot be captured, or None when they can."""
    cuda = getattr(xpm, "cuda", None)
    stream_cls = getattr(cuda, "Stream", None)
    if stream_cls is None or not hasattr(stream_cls, "begin_capture"):
        name = getattr(xpm, "__name__", xpm)
        return f"the array module {name!r} has no stream capture"
    if getattr(getattr(cuda, "runtime", None), "is_hip", False):
        return "stream capture is not supported on HIP"
    return cublas_capture.unavailable(xpm)


def capturing() -> bool:
    """Whether a capture is in progress."""
    return _active is not None


def any_flag(bad, recheck: Callable[[], object]) -> bool:
    """``bool(bad.any())`` for a device array of flags; during a capture, False
    at once, with the flag computed in the graph and read after each replay
    (when set, ``recheck()`` runs eagerly and is expected to raise the
    layer's error)."""
    cap = _active
    if cap is None:
        return bool(bad.any())
    cap.checks.append((bad.any(), recheck))
    return False


class _NoDraws:
    """Stands in for the host random generator during a capture: a layer that
    draws host random numbers (Dropout masks, ...) cannot be replayed, and
    must fail before it consumes any (the eager rerun draws them)."""

    def __getattr__(self, name):
        raise CaptureError("a layer draws random numbers on the host each pass "
                           "(e.g. Dropout in TRAIN phase)")


class Capture:
    """State of the capture in progress: deferred checks."""

    def __init__(self):
        self.checks: list[tuple[object, Callable[[], object]]] = []


class DeviceGraph:
    """A captured pass: launch it, then read back the values it produced.

    Attributes:
        keep: every block allocated during the capture (kept alive with it).
        pool: the private memory pool those blocks come from.
    """

    def __init__(self, xpm, graph, keep, pool, out_sizes, rechecks, readback):
        self.xpm = xpm
        self.graph = graph
        self.keep = keep
        self.pool = pool
        self.out_sizes = out_sizes
        self.rechecks = rechecks
        self._readback = readback
        #: bytes allocated during the capture (kept alive with the graph)
        self.kept_bytes = 0

    def launch(self) -> None:
        """Replay on the current stream (ordered with the eager work there)."""
        self.graph.launch()

    def readback(self) -> list:
        """The host values of the arrays the captured function returned (flat
        numpy arrays, one per array), after the deferred checks: a set flag
        runs its layer's check eagerly, which raises. Synchronises."""
        if self._readback is None:
            return []
        host = self._readback.get()
        n_out = sum(self.out_sizes)
        flags = host[n_out:]
        for flag, recheck in zip(flags, self.rechecks, strict=True):
            if flag:
                recheck()
                raise CaptureError("a deferred check failed but its layer's "
                                   "recheck did not raise")
        return _split(host, self.out_sizes)



def capture_stream(xpm):
    """The side stream captures run on (one per device)."""
    dev = int(xpm.cuda.Device().id) if hasattr(xpm.cuda, "Device") else 0
    key = (id(xpm), dev)
    s = _streams.get(key)
    if s is None:
        s = _streams[key] = xpm.cuda.Stream(non_blocking=True)
    return s


def new_pool(xpm):
    """A private memory pool for the allocations of captures."""
    return xpm.cuda.MemoryPool()


def capture(fn: Callable[[], list], xpm, pool=None) -> DeviceGraph:
    """Capture the device work of ``fn()`` into a graph (not run: launch it).

    ``fn`` returns a list of device arrays whose values the host reads after
    each replay (:meth:`DeviceGraph.readback`). Raises :class:`CaptureError`
    with the reason when the work cannot be captured.
    """
    global _active
    if _active is not None:
        raise CaptureError("captures cannot be nested")
    reason = unsupported(xpm)
    if reason is not None:
        raise CaptureError(reason)
    pool = pool if pool is not None else new_pool(xpm)
    keep: list = []
    kept = [0]

    def allocate(nbytes):
        mem = pool.malloc(nbytes)
        keep.append(mem)
        kept[0] += int(nbytes)
        return mem

    stream = capture_stream(xpm)
    cap = Capture()
    gemm = cublas_capture.matmul_for(xpm)
    graph = None
    readback = None
    sizes: list[int] = []
    from recaffe import backend  # noqa: PLC0415 - the package imports this module

    with contextlib.ExitStack() as stack:
        rng = backend._rng
        backend._rng = _NoDraws()
        stack.callback(setattr, backend, "_rng", rng)
        stack.enter_context(stream)
        # Handle, stream binding and workspace before the capture: cuBLAS must
        # allocate nothing while it is recorded.
        cublas_capture.prepare(xpm)
        stack.enter_context(xpm.cuda.using_allocator(allocate))
        stack.enter_context(blas.device_gemm(gemm))
        try:
            stream.begin_capture()
        except Exception as exc:
            raise CaptureError(f"cannot begin a capture: {_describe(exc)}") from exc
        _active = cap
        try:
            outs = list(fn() or [])
            readback, sizes = _gather(xpm, outs, [f for f, _r in cap.checks])
        except BaseException as exc:
            _active = None
            with contextlib.suppress(Exception):
                stream.end_capture()  # ends the (possibly invalidated) capture
            if isinstance(exc, CaptureError):
                raise
            if not isinstance(exc, Exception):
                raise
            raise CaptureError(_describe(exc)) from exc
        _active = None
        try:
            graph = stream.end_capture()
        except Exception as exc:
            why = _describe(exc)
            raise CaptureError(f"the capture was invalidated: {why}") from exc
    g = DeviceGraph(xpm, graph, keep, pool, sizes, [r for _f, r in cap.checks],
                    readback)
    g.kept_bytes = kept[0]
    return g


def _gather(xpm, outs, flags):
    """One float32 vector of every output's values and every check flag (the
    host reads it with one copy); its size per output."""
    parts = [o.reshape(-1).astype(xpm.float32) for o in outs]
    sizes = [int(p.size) for p in parts]
    parts += [f.reshape(1).astype(xpm.float32) for f in flags]
    return (xpm.concatenate(parts) if parts else None), sizes


def run_eager(fn: Callable[[], list], xpm) -> list:
    """Run ``fn`` at once, as :func:`capture` would record it (the same GEMM
    path, the same gathering of outputs): the warm-up before a capture, which
    compiles and loads every kernel the capture will record. Returns the host
    values of the arrays ``fn`` returned (flat numpy arrays)."""
    from recaffe import backend  # noqa: PLC0415 - the package imports this module

    gemm = cublas_capture.matmul_for(xpm) if unsupported(xpm) is None else None
    if gemm is not None:
        cublas_capture.prepare(xpm)
    with blas.device_gemm(gemm) if gemm is not None else contextlib.nullcontext():
        outs = list(fn() or [])
    vec, sizes = _gather(xpm, outs, [])
    if vec is None:
        return []
    return _split(backend.to_host(vec), sizes)


def _split(host, sizes) -> list:
    """``host`` cut into consecutive pieces of ``sizes`` elements (the values
    of each output :func:`_gather` put in one vector)."""
    out, off = [], 0
    for n in sizes:
        out.append(host[off:off + n])
        off += n
    return out


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
