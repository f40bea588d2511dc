"""Fused CPU kernels (numba, optional) for the recurrent cells' element-wise math.

Written with numpy ufuncs, one LSTM step is about a dozen passes over (N, H)
arrays plus as many temporaries; the recurrent GEMMs leave little else to
gain, so those passes are what the CPU path pays beyond BLAS. The kernels
here do a step's arithmetic in few passes, on the LSTM layer's time-major
blocks: a step's gates are (N, 4H) (columns [0, H) input gate, [H, 2H)
forget gate, [2H, 3H) output gate, [3H, 4H) cell candidate), states (N, H).

Transcendentals stay in numpy: ``np.tanh`` is SIMD-vectorised, numba's is a
scalar libm call, about 40x slower. So one forward step is

1. ``zt = W_hc @ h~_{t-1}^T`` (BLAS, (4H, N): the fastest orientation), then
   :func:`lstm_preact`: ``a = (zt^T + W_xc x_t + b_c) * s`` with ``s = 0.5``
   on the three sigmoid gates and 1 on the cell candidate
   (``sigmoid(x) = 0.5 tanh(x / 2) + 0.5``, no overflow);
2. ``np.tanh(a, out=a)``, then :func:`lstm_cell`: ``i, f, o`` (``f`` times
   ``cont``), ``g`` in place and ``c_t = f c_{t-1} + i g``;
3. ``np.tanh(c_t)``, then :func:`lstm_output`: ``h_t = o tanh(c_t)`` into the
   top and, times ``cont_{t+1}``, as the next step's GEMM input.

:func:`lstm_backward_step` is one pass for a step's gate-input gradients and
the carried ``dc`` (no transcendentals: it reads the stored activations);
:func:`rnn_backward_step` is the RNN's ``(da + cont * dz) (1 - h^2)``.

Every operation is the numpy path's, in the same order, with constants in the
arrays' dtype and no fused multiply-add (``fastmath=False``), so results equal
the numpy path's bit for bit (``tests/test_cpu_kernels.py``). float32 and
float64.

:func:`enabled` says whether to use them: numba importable, arrays are numpy
arrays, and the environment variable ``RECAFFE_CPU_KERNELS`` is not ``0``.
Install numba with ``pip install 'recaffe[fast]'``. Kernels compile on first
use (about a second each per dtype and array layout) and are cached on disk
(``cache=True``, numba's cache directory, or ``NUMBA_CACHE_DIR``); where no
cache directory is writable they compile in every process. Steps of at least
:data:`PARALLEL_MIN` elements run in parallel over rows (``prange``) on at
most 2 numba threads, smaller ones serially: measured on 2 cores at the
benchmark's largest step (N=64, 4H=2048) a parallel pass is no faster (the
passes are memory-bound and short), and idle numba threads would only compete
with BLAS's.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import numpy as np

ENV = "RECAFFE_CPU_KERNELS"
#: Element count of a step above which kernels run in parallel.
PARALLEL_MIN = 1 << 20

_state: dict = {"numba": None, "checked": False, "threads_set": False}
_kernels: dict = {}


def _numba():
    """The numba module, or None when it is not installed (checked once)."""
    if not _state["checked"]:
        _state["checked"] = True
        try:
            import numba
        except Exception:  # noqa: BLE001 - any import failure means "absent"
            numba = None
        _state["numba"] = numba
    return _state["numba"]


def available() -> bool:
    """Whether numba is installed (kernels can be compiled)."""
    return _numba() is not None


def env_enabled() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def enabled(xpm) -> bool:
    """Whether the fused CPU kernels apply to arrays of module ``xpm``."""
    return xpm is np and env_enabled() and available()


def usable(xpm, *arrays) -> bool:
    """:func:`enabled`, and every array float32 or float64 of one dtype."""
    if not enabled(xpm) or not arrays:
        return False
    dt = arrays[0].dtype
    return dt in (np.float32, np.float64) and all(a.dtype == dt for a in arrays)


def _set_threads(numba) -> None:
    if _state["threads_set"]:
        return
    _state["threads_set"] = True
    # Two cores are enough for a memory-bound pass over one step, and more
    # threads only compete with BLAS's between the GEMMs.
    with contextlib.suppress(Exception):
        numba.set_num_threads(max(1, min(2, numba.config.NUMBA_NUM_THREADS)))


def _compile(name: str, parallel: bool):
    numba = _numba()
    fn = _PY[name]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return numba.njit(parallel=parallel, fastmath=False, cache=True,
                              nogil=True)(fn)
    except Exception:  # noqa: BLE001 - no writable cache location
        return numba.njit(parallel=parallel, fastmath=False, nogil=True)(fn)


def _get(name: str, size: int):
    parallel = size >= PARALLEL_MIN
    key = (name, parallel)
    k = _kernels.get(key)
    if k is None:
        if parallel:
            _set_threads(_numba())
        k = _kernels[key] = _compile(name, parallel)
    return k


# -- kernel bodies (plain Python; numba compiles them) ----------------------------
# ``prange`` is looked up as a global at compile time; it is bound below.
prange = range


def _lstm_preact(zt, gx, out, scale):
    """out (N, 4H) = (zt^T + gx) * scale (per column: 0.5 for i, f, o, 1 for g).

    A transposition: tiles of 16 rows x 64 columns keep both sides in L1.
    """
    n, g4 = out.shape
    nb = (n + 15) // 16
    for b in prange(nb):
        j0 = b * 16
        j1 = min(j0 + 16, n)
        for k0 in range(0, g4, 64):
            k1 = min(k0 + 64, g4)
            for j in range(j0, j1):
                for k in range(k0, k1):
                    out[j, k] = (zt[k, j] + gx[j, k]) * scale[k]


def _lstm_cell(acts, c_prev, cont, c, hd, half):
    """acts (N, 4H): tanh values in, [i, f * cont, o, g] out; c = f c_prev + i g."""
    n = acts.shape[0]
    for j in prange(n):
        cj = cont[j]
        for k in range(hd):
            ig = acts[j, k] * half + half
            fg = (acts[j, hd + k] * half + half) * cj
            og = acts[j, 2 * hd + k] * half + half
            gg = acts[j, 3 * hd + k]
            acts[j, k] = ig
            acts[j, hd + k] = fg
            acts[j, 2 * hd + k] = og
            c[j, k] = fg * c_prev[j, k] + ig * gg


def _lstm_output(acts, tc, cont_next, hc_next, h_out, has_next):
    """h_out (N, H) = o * tanh(c); hc_next = h_out * cont_next."""
    n, hd = tc.shape
    for j in prange(n):
        cn = cont_next[j]
        for k in range(hd):
            hv = acts[j, 2 * hd + k] * tc[j, k]
            h_out[j, k] = hv
            if has_next:
                hc_next[j, k] = hv * cn


def _lstm_backward(acts, c_prev, tc, dtop, dh, cont_next, has_next, dg, dc, hd, one):
    """One step's gate-input gradients dg (N, 4H); dc (N, H) in and out.

    d_h = dtop + dh * cont_next (dh = dg_{t+1} W_hc of the later step).
    """
    n = dc.shape[0]
    for j in prange(n):
        cn = cont_next[j]
        for k in range(hd):
            d_h = dtop[j, k] + dh[j, k] * cn if has_next else dtop[j, k]
            ig = acts[j, k]
            fg = acts[j, hd + k]
            og = acts[j, 2 * hd + k]
            gg = acts[j, 3 * hd + k]
            t = tc[j, k]
            dcv = dc[j, k] + d_h * og * (one - t * t)
            dg[j, k] = (dcv * gg) * (ig * (one - ig))
            dg[j, hd + k] = (dcv * c_prev[j, k]) * (fg * (one - fg))
            dg[j, 2 * hd + k] = (d_h * t) * (og * (one - og))
            dg[j, 3 * hd + k] = (dcv * ig) * (one - gg * gg)
            dc[j, k] = dcv * fg


def _rnn_backward(da, dz, cont_next, h, has_next, one):
    """da (N, H) = (da + cont_next * dz) * (1 - h^2), in place."""
    n, hd = da.shape
    for j in prange(n):
        for k in range(hd):
            hv = h[j, k]
            if has_next:
                da[j, k] = (da[j, k] + dz[j, k] * cont_next[j]) * (one - hv * hv)
            else:
                da[j, k] = da[j, k] * (one - hv * hv)


def _lstm_unit_backward(acts, c_prev, tc, dc_top, dh_top, dc_prev, dx, want_c,
                        want_x, hd, one):
    """LSTMUnit backward from the forward's activations [i, f * cont, o, g]
    and tanh(c): dx (N, 4H) and dc_prev (N, H), each only where wanted.

    Products in the numpy layer path's order (bit-equal results).
    """
    n = acts.shape[0]
    for j in prange(n):
        for k in range(hd):
            ig = acts[j, k]
            fg = acts[j, hd + k]
            og = acts[j, 2 * hd + k]
            gg = acts[j, 3 * hd + k]
            t = tc[j, k]
            d_h = dh_top[j, k]
            dcv = dc_top[j, k] + d_h * og * (one - t * t)
            if want_c:
                dc_prev[j, k] = dcv * fg
            if want_x:
                dx[j, k] = dcv * gg * ig * (one - ig)
                dx[j, hd + k] = dcv * c_prev[j, k] * fg * (one - fg)
                dx[j, 2 * hd + k] = d_h * t * og * (one - og)
                dx[j, 3 * hd + k] = dcv * ig * (one - gg * gg)


_PY = {
    "lstm_preact": _lstm_preact,
    "lstm_cell": _lstm_cell,
    "lstm_output": _lstm_output,
    "lstm_backward": _lstm_backward,
    "rnn_backward": _rnn_backward,
    "lstm_unit_backward": _lstm_unit_backward,
}


def _bind_prange() -> None:
    numba = _numba()
    if numba is not None:
        globals()["prange"] = numba.prange


# -- wrappers ---------------------------------------------------------------------
def lstm_preact(zt, gx, out) -> None:
    """``out`` (N, 4H) = (``zt``^T + ``gx``) times 0.5 on the i, f, o columns
    (``zt`` (4H, N) is the transposed recurrent GEMM)."""
    _bind_prange()
    _get("lstm_preact", out.size)(zt, gx, out, _gate_scale(out.shape[1], out.dtype))


_scales: dict = {}


def _gate_scale(g4: int, dtype):
    """(4H,) of 0.5 (sigmoid gates) and 1 (cell candidate), in ``dtype``."""
    key = (g4, np.dtype(dtype))
    s = _scales.get(key)
    if s is None:
        s = np.ones(g4, dtype=dtype)
        s[: 3 * (g4 // 4)] = 0.5
        _scales[key] = s
    return s


def lstm_cell(acts, c_prev, cont, c) -> None:
    """``acts`` (N, 4H) holds tanh of the (halved) pre-activations; becomes
    [i, f * cont, o, g]. ``c`` (N, H) = f c_prev + i g."""
    _bind_prange()
    _get("lstm_cell", acts.size)(acts, c_prev, cont, c, acts.shape[1] // 4,
                                 acts.dtype.type(0.5))


def lstm_output(acts, tc, cont_next, hc_next, h_out, has_next: bool) -> None:
    """``h_out`` (N, H) = o * ``tc``; if ``has_next`` also ``hc_next`` =
    h * ``cont_next[:, None]`` (else both are ignored)."""
    _bind_prange()
    _get("lstm_output", acts.size)(acts, tc, cont_next, hc_next, h_out, has_next)


def lstm_backward_step(acts, c_prev, tc, dtop, dh, cont_next, has_next: bool, dg,
                       dc) -> None:
    """One LSTM step backward (time-major (N, 4H) / (N, H) blocks).

    ``dtop`` is the top diff at this step, ``dh`` the later step's
    ``dg W_hc`` and ``cont_next`` its cont (both ignored when not
    ``has_next``, the last step). Writes ``dg``; ``dc`` is the carried cell
    gradient, read and overwritten with ``dc * f``.
    """
    _bind_prange()
    _get("lstm_backward", acts.size)(acts, c_prev, tc, dtop, dh, cont_next, has_next,
                                     dg, dc, dc.shape[1], dc.dtype.type(1.0))


def rnn_backward_step(da, dz, cont_next, h, has_next: bool) -> None:
    """da (N, H) = (da + cont_next[:, None] * dz) * (1 - h^2); without
    ``has_next``: da * (1 - h^2) (``dz``, ``cont_next`` ignored)."""
    _bind_prange()
    _get("rnn_backward", da.size * 4)(da, dz, cont_next, h, has_next,
                                      da.dtype.type(1.0))


def lstm_unit_forward(x, c_prev, cont, acts, c, tc, h) -> None:
    """One LSTMUnit step forward on (N, 4H) ``x`` and (N, H) ``c_prev``.

    Writes ``acts`` (N, 4H) = [i, f * cont, o, g], ``c`` = f c_prev + i g,
    ``tc`` = tanh(c) and ``h`` = o tanh(c): one scaling pass, two vectorised
    ``np.tanh`` passes and two fused passes.
    """
    np.multiply(x, _gate_scale(x.shape[1], x.dtype), out=acts)
    np.tanh(acts, out=acts)
    lstm_cell(acts, c_prev, cont, c)
    np.tanh(c, out=tc)
    lstm_output(acts, tc, cont, h, h, False)


def lstm_unit_backward(acts, c_prev, tc, dc_top, dh_top, dc_prev, dx, want_c: bool,
                       want_x: bool) -> None:
    """One LSTMUnit step backward from :func:`lstm_unit_forward`'s ``acts``
    and ``tc``: ``dc_prev`` (N, H) if ``want_c``, ``dx`` (N, 4H) if
    ``want_x`` (an array not wanted is not touched); one pass."""
    _bind_prange()
    _get("lstm_unit_backward", acts.size)(acts, c_prev, tc, dc_top, dh_top, dc_prev,
                                          dx, want_c, want_x, tc.shape[1],
                                          tc.dtype.type(1.0))
