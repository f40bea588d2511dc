"""GEMMs that a CUDA graph can capture: cuBLAS through nvmath-python's bindings.

CuPy refuses its own cuBLAS calls while a stream is being captured
(``NotImplementedError: calling cuBLAS API during stream capture is currently
unsupported``). The raw cuBLAS bindings of nvmath-python
(``nvmath.bindings.cublas``) are thin wrappers of the C API: with a handle
bound to the capturing stream (``set_stream``) and a workspace of our own
(``set_workspace``, so that cuBLAS allocates nothing during the capture), a
``sgemm``/``dgemm`` is recorded into the graph like any kernel.

:func:`matmul` computes ``out = a @ b`` (or ``out += a @ b``) for row-major
CuPy arrays of float32 or float64: 1-D, 2-D or a batch of 3-D operands, each
contiguous in one of its two last axes (transposed views need no copy; other
layouts are copied first). cuBLAS is column-major, so ``C = A B`` is issued as
``C^T = B^T A^T``: a row-major matrix *is* its transpose in column-major
order. The scalars alpha and beta are host values (pointer mode host), read
when the call is recorded.

nvmath-python is installed with the ``gpu`` extras (``pip install
'recaffe[gpu]'``). A stand-in array module (tests) provides its own
``capturable_matmul`` with the same signature.
"""

from __future__ import annotations

import numpy as np

#: Workspace per handle: cuBLAS's recommendation for Hopper-class devices.
WORKSPACE_BYTES = 32 * 2**20

#: device id -> [handle, workspace array, stream pointer last bound]
_handles: dict[int, list] = {}


def _is_cupy(xpm) -> bool:
    return getattr(xpm, "__name__", "") == "cupy"


def unavailable(xpm) -> str | None:
    """Why GEMMs on arrays of ``xpm`` cannot be captured, or None."""
    if not _is_cupy(xpm):
        if getattr(xpm, "capturable_matmul", None) is not None:
            return None
        return (f"no capturable GEMM for the array module "
                f"{getattr(xpm, '__name__', xpm)!r}")
    try:
        from nvmath.bindings import cublas  # noqa: F401, PLC0415
    except Exception as exc:  # noqa: BLE001 - any import failure means "absent"
        return (f"nvmath-python's cuBLAS bindings are not available ({exc}); "
                "pip install 'recaffe[gpu]' (or nvmath-python)")
    return None


def matmul_for(xpm):
    """The capturable ``matmul(a, b, out=None, accumulate=False)`` for ``xpm``."""
    if _is_cupy(xpm):
        return matmul
    return xpm.capturable_matmul


def prepare(xpm) -> None:
    """Create the cuBLAS handle and workspace of the current device and bind
    them to the current stream (before a capture: nothing may be allocated
    while it is recorded)."""
    if _is_cupy(xpm):
        _handle(xpm)


def _handle(cp):
    """The cuBLAS handle of the current device, bound to the current stream."""
    from nvmath.bindings import cublas  # noqa: PLC0415

    dev = int(cp.cuda.Device().id)
    entry = _handles.get(dev)
    if entry is None:
        handle = cublas.create()
        workspace = cp.empty(WORKSPACE_BYTES, dtype=cp.uint8)
        entry = _handles[dev] = [handle, workspace, None]
    stream = int(cp.cuda.get_current_stream().ptr)
    if entry[2] != stream:
        # set_stream resets the workspace to cuBLAS's own pool: set ours again.
        cublas.set_stream(entry[0], stream)
        cublas.set_workspace(entry[0], int(entry[1].data.ptr), WORKSPACE_BYTES)
        entry[2] = stream
    return entry[0]


def _layout(x):
    """(array, op, leading dimension) of a 2-D row-major operand seen as the
    column-major matrix cuBLAS reads: op 0 ('N') when its rows are contiguous
    (the memory is x^T in column-major order), op 1 ('T') when its columns
    are (a transposed view); anything else is copied."""
    r, c = x.shape
    item = x.itemsize
    s0, s1 = x.strides
    if x.flags.c_contiguous:
        return x, 0, max(c, 1)
    if x.flags.f_contiguous:
        return x, 1, max(r, 1)
    if s1 == item and s0 % item == 0 and s0 >= c * item:
        return x, 0, s0 // item
    if s0 == item and s1 % item == 0 and s1 >= r * item:
        return x, 1, s1 // item
    import cupy as cp  # noqa: PLC0415

    y = cp.ascontiguousarray(x)
    return y, 0, max(c, 1)


def _gemm2d(cp, a, b, out, accumulate: bool) -> None:
    from nvmath.bindings import cublas  # noqa: PLC0415

    m, k = a.shape
    n = b.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:
        if not accumulate:
            out.fill(0)
        return
    dtype = out.dtype
    target = out
    item = out.itemsize
    s0, s1 = out.strides
    direct = out.flags.c_contiguous or (s1 == item and s0 % item == 0
                                        and s0 >= n * item)
    if not direct:
        target = cp.empty((m, n), dtype=dtype)
    ldc = n if target.flags.c_contiguous else target.strides[0] // item
    a2, op_a, lda = _layout(a)
    b2, op_b, ldb = _layout(b)
    alpha = np.array(1.0, dtype=dtype)
    beta = np.array(1.0 if (accumulate and direct) else 0.0, dtype=dtype)
    fn = cublas.sgemm if dtype == np.float32 else cublas.dgemm
    # Row-major C = A B is column-major C^T = B^T A^T.
    fn(_handle(cp), op_b, op_a, n, m, k, alpha.ctypes.data, int(b2.data.ptr), ldb,
       int(a2.data.ptr), lda, beta.ctypes.data, int(target.data.ptr), ldc)
    if not direct:
        if accumulate:
            out += target
        else:
            out[...] = target


def matmul(a, b, out=None, accumulate: bool = False):
    """``out = a @ b`` (``out += a @ b`` with ``accumulate``) through cuBLAS on
    the current stream, capturable; returns ``out``."""
    import cupy as cp  # noqa: PLC0415

    dtype = np.result_type(a.dtype, b.dtype)
    if dtype not in (np.float32, np.float64) or a.dtype != b.dtype or (
            out is not None and out.dtype != dtype):
        raise TypeError(f"capturable GEMM: float32 or float64 operands of one dtype "
                        f"expected, got {a.dtype}, {b.dtype}"
                        + ("" if out is None else f" -> {out.dtype}"))
    if a.ndim == 0 or b.ndim == 0 or a.ndim > 3 or b.ndim > 3:
        raise TypeError(f"capturable GEMM: 1-D to 3-D operands expected, got shapes "
                        f"{a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"capturable GEMM: inner dimensions differ: {a.shape} @ "
                         f"{b.shape}")
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    batch = max(a2.shape[0] if a2.ndim == 3 else 1, b2.shape[0] if b2.ndim == 3 else 1)
    shape2 = (a2.shape[-2], b2.shape[-1])
    full = ((batch,) if max(a2.ndim, b2.ndim) == 3 else ()) + shape2
    final_shape = ((batch,) if len(full) == 3 else ()) + tuple(
        d for d, keep in ((shape2[0], a.ndim > 1), (shape2[1], b.ndim > 1)) if keep)
    if out is None:
        out = cp.empty(final_shape, dtype=dtype)
        accumulate = False
    if out.shape != final_shape:
        raise ValueError(f"capturable GEMM: out has shape {out.shape}, expected "
                         f"{final_shape}")
    out3 = out.reshape(full)
    if len(full) == 2:
        _gemm2d(cp, a2, b2, out3, accumulate)
        return out
    for i in range(batch):
        _gemm2d(cp, a2[i] if a2.ndim == 3 else a2, b2[i] if b2.ndim == 3 else b2,
                out3[i], accumulate)
    return out
