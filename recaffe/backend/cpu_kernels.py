"""Compiled CPU kernels (numba, optional) for the recurrent layers.

**The LSTM layer's loops.** The whole forward and backward time loops of the
``LSTM`` layer compile into one function each (:func:`lstm_seq_forward`,
:func:`lstm_seq_backward`), which call numpy's own OpenBLAS for the
recurrent products through its CBLAS entry points (``blas.numpy_cblas``:
the same library, thread pool and calls as ``numpy.matmul``). Nothing goes
back to Python between steps. The layer keeps a step's gates gate-major,
(4H, N), and its states (H, N). A forward step's one GEMM is
``[W_hc | W_xc] [h~ | x_t]^T`` (the input projection rides along with the
recurrent product, in BLAS's fastest orientation at these shapes) and lands
in the gate block; the gate math runs along contiguous rows of N. One
forward step (:func:`_lstm_forward_step`) is the GEMM, then one vectorised
pass for the four gates (``tanh32`` of :mod:`recaffe.backend.fast_math`,
which compiles to SIMD code; ``sigmoid(x) = 0.5 tanh(x / 2) + 0.5``), one
for the cell and
``h``, and the (H, N) -> (N, H) transposition of ``h`` into the top. One
backward step (:func:`_lstm_backward_step`) is one pass for the four
gate-input gradients and the carried ``dc`` (no transcendentals: it reads
the stored activations), then ``W_hc^T dG_t``. Forward is float32 only (its
tanh); backward any float dtype. :func:`lstm_forward_step` and
:func:`lstm_backward_step_t` are the same steps for a loop that stays in
Python (another BLAS selected).

**LSTMUnit and RNN.** :func:`lstm_unit_forward` / :func:`lstm_unit_backward`
(one pass each plus ``np.tanh``), :func:`lstm_unit_infer` (a forward that
stores only ``c`` and ``h``, for units no backward reads) and
:func:`rnn_backward_step` (``(da + cont * dz) (1 - h^2)``) work on
time-major (N, 4H) / (N, H) blocks.

Operations keep the numpy paths' order, constants are in the arrays' dtype
and nothing is fused into multiply-adds (``fastmath=False``): results equal
the numpy paths' bit for bit except where the compiled float32 LSTM step has
``tanh32`` and numpy ``np.tanh`` (at most 6.6 ulp apart;
``tests/test_cpu_kernels.py``).

:func:`enabled` says whether to use them: numba importable, arrays are numpy
arrays, and the environment variable ``RECAFFE_CPU_KERNELS`` is not ``0``.
Install numba with ``pip install 'recaffe[fast]'``. Kernels compile on first
use (one to three seconds each per dtype and array layout) and are cached on
disk (``cache=True``, numba's cache directory, or ``NUMBA_CACHE_DIR``);
where no cache directory is writable they compile in every process. The
LSTMUnit and RNN kernels' steps of at least :data:`PARALLEL_MIN` elements run
in parallel over rows (``prange``) on at most 2 numba threads, smaller ones
serially (a parallel pass over one step is no faster on 2 cores: the passes
are memory-bound and short, and idle numba threads compete with BLAS's).
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings

import numpy as np

from recaffe.backend import blas, fast_math

ENV = "RECAFFE_CPU_KERNELS"
#: Element count of a step above which kernels run in parallel.
PARALLEL_MIN = 1 << 20

_state: dict = {"numba": None, "checked": False, "threads_set": False}
_kernels: dict = {}
# First uses (import, helper binding, compiles) may come from several threads
# at once (a data-parallel run's workers); one at a time does them.
_lock = threading.RLock()


def _numba():
    """The numba module, or None when it is not installed (checked once)."""
    if not _state["checked"]:
        with _lock:
            if not _state["checked"]:
                try:
                    import numba
                except Exception:  # noqa: BLE001 - any import failure means "absent"
                    numba = None
                _state["numba"] = numba
                _state["checked"] = True
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
    # error_model="numpy": a float division is IEEE (no zero check), which is
    # what lets the loops around tanh32's division vectorise.
    opts = dict(parallel=parallel, fastmath=False, nogil=True, error_model="numpy")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return numba.njit(cache=True, **opts)(fn)
    except Exception:  # noqa: BLE001 - no writable cache location
        return numba.njit(**opts)(fn)


def _get(name: str, size: int):
    parallel = size >= PARALLEL_MIN
    key = (name, parallel)
    k = _kernels.get(key)
    if k is None:
        with _lock:
            k = _kernels.get(key)
            if k is None:
                if parallel:
                    _set_threads(_numba())
                k = _kernels[key] = _compile(name, parallel)
    return k


# -- kernel bodies (plain Python; numba compiles them) ----------------------------
# ``prange`` is looked up as a global at compile time; it is bound below.
prange = range


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


def _lstm_unit_forward32(x, c_prev, cont, acts, c, tc, h, half):
    """LSTMUnit forward, float32, one pass per row: ``acts`` = [i, f * cont,
    o, g] from ``x`` (N, 4H) (tanh32; sigmoid as 0.5 tanh32(x / 2) + 0.5),
    ``c = f c_prev + i g``, ``tc = tanh32(c)``, ``h = o tc``. Each gate's
    columns are taken as a row slice of their own, which lets the loop
    vectorise (81 instead of 123 µs at N=64 H=512 against four loops over
    the 2-D arrays; the same operations and bits)."""
    n, g4 = x.shape
    hd = g4 // 4
    for j in prange(n):
        cj = cont[j]
        xi, xf = x[j, :hd], x[j, hd:2 * hd]
        xo, xg = x[j, 2 * hd:3 * hd], x[j, 3 * hd:]
        ai, af = acts[j, :hd], acts[j, hd:2 * hd]
        ao, ag = acts[j, 2 * hd:3 * hd], acts[j, 3 * hd:]
        cr, cp, tr, hr = c[j], c_prev[j], tc[j], h[j]
        for k in range(hd):
            ig = tanh32(xi[k] * half) * half + half
            fg = (tanh32(xf[k] * half) * half + half) * cj
            og = tanh32(xo[k] * half) * half + half
            gg = tanh32(xg[k])
            ai[k] = ig
            af[k] = fg
            ao[k] = og
            ag[k] = gg
            cv = fg * cp[k] + ig * gg
            cr[k] = cv
            tv = tanh32(cv)
            tr[k] = tv
            hr[k] = og * tv


def _lstm_unit_infer32(x, c_prev, cont, c, h, half):
    """:func:`_lstm_unit_forward32` for a unit whose backward never runs:
    the same operations on each element, keeping the gates and ``tanh(c)``
    in registers instead of storing them (indexing the 2-D arrays here is
    faster than row slices: 69 vs 77 µs at N=64 H=512)."""
    n, g4 = x.shape
    hd = g4 // 4
    for j in prange(n):
        cj = cont[j]
        for k in range(hd):
            ig = tanh32(x[j, k] * half) * half + half
            fg = (tanh32(x[j, hd + k] * half) * half + half) * cj
            og = tanh32(x[j, 2 * hd + k] * half) * half + half
            gg = tanh32(x[j, 3 * hd + k])
            cv = fg * c_prev[j, k] + ig * gg
            c[j, k] = cv
            h[j, k] = og * tanh32(cv)


def _sigmoid_forward32(x, y, half):
    """y = 0.5 tanh32(x / 2) + 0.5 (float32, any C-contiguous shape)."""
    xf = x.reshape(-1)
    yf = y.reshape(-1)
    for i in range(xf.size):
        yf[i] = tanh32(xf[i] * half) * half + half


def _sigmoid_backward(y, dy, dx, one):
    """dx = dy ((1 - y) y), the numpy path's order."""
    yf = y.reshape(-1)
    gf = dy.reshape(-1)
    xf = dx.reshape(-1)
    for i in range(yf.size):
        xf[i] = gf[i] * ((one - yf[i]) * yf[i])


def _sum_sigmoid32(x0, x1, z, a, half):
    """z = x0 + x1 and a = sigmoid(z) (0.5 tanh32(z / 2) + 0.5), float32."""
    x0f, x1f = x0.reshape(-1), x1.reshape(-1)
    zf, af = z.reshape(-1), a.reshape(-1)
    for i in range(zf.size):
        zz = x0f[i] + x1f[i]
        zf[i] = zz
        af[i] = tanh32(zz * half) * half + half


def _split_sigmoid_backward(d0, d1, dy, y, dx, one):
    """dy = d0 + d1 (a two-top Split's backward), then dx = dy ((1 - y) y)."""
    d0f, d1f = d0.reshape(-1), d1.reshape(-1)
    dyf, yf, dxf = dy.reshape(-1), y.reshape(-1), dx.reshape(-1)
    for i in range(yf.size):
        g = d0f[i] + d1f[i]
        dyf[i] = g
        dxf[i] = g * ((one - yf[i]) * yf[i])


def _tanh_backward(y, dy, dx, one):
    """dx = dy (1 - y y), the numpy path's order."""
    yf = y.reshape(-1)
    gf = dy.reshape(-1)
    xf = dx.reshape(-1)
    for i in range(yf.size):
        xf[i] = gf[i] * (one - yf[i] * yf[i])


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

    Products in the numpy layer path's order (bit-equal results). Each
    gate's columns are a row slice of their own, which lets the loop
    vectorise (27 instead of 88 µs at N=64 H=512).
    """
    n = acts.shape[0]
    for j in prange(n):
        ai, af = acts[j, :hd], acts[j, hd:2 * hd]
        ao, ag = acts[j, 2 * hd:3 * hd], acts[j, 3 * hd:]
        dxi, dxf = dx[j, :hd], dx[j, hd:2 * hd]
        dxo, dxg = dx[j, 2 * hd:3 * hd], dx[j, 3 * hd:]
        tr, dhr, dcr = tc[j], dh_top[j], dc_top[j]
        cp, dcp = c_prev[j], dc_prev[j]
        for k in range(hd):
            ig = ai[k]
            fg = af[k]
            og = ao[k]
            gg = ag[k]
            t = tr[k]
            d_h = dhr[k]
            dcv = dcr[k] + d_h * og * (one - t * t)
            if want_c:
                dcp[k] = dcv * fg
            if want_x:
                dxi[k] = dcv * gg * ig * (one - ig)
                dxf[k] = dcv * cp[k] * fg * (one - fg)
                dxo[k] = d_h * t * og * (one - og)
                dxg[k] = dcv * ig * (one - gg * gg)


# -- the LSTM layer's gate-major loops --------------------------------------------
# The LSTM layer's CPU path keeps a step's gates as (4H, N) and its states as
# (H, N): the step's GEMM [W_hc | W_xc] [h~ | x_t]^T (BLAS's fastest
# orientation at these shapes) lands in place, and nothing of size 4H x N is
# transposed. Only h_t (into the (T, N, H) top) and the top's diff going back
# are transposed, (H, N) <-> (N, H). ``dg`` is (4H, T, N): the weight
# gradients are single GEMMs over all steps.
#
# ``tanh32``, ``forward_step``, ``backward_step``, ``gemm_wt`` and
# ``gemm_tn`` are bound to inlined numba functions before the kernels that
# call them compile (_bind_helpers).
tanh32 = fast_math.tanh32


def _lstm_forward_step(at, add, t, c_prev, c, tc, ht, hout_t, src_next, cont_t,
                       cont_n, has_next, half):
    """One float32 step. ``at`` (4H, N) holds the step's product
    (``W_hc h~^T``, and ``W_xc x_t^T`` when the input rides along); with the
    addend ``add`` it becomes the gates [i, f * cont_t, o, g]. ``add`` is
    (4H, 1, 1) (the bias), (4H, 1, N) (bias plus a static input's term) or
    (4H, T, N) (the input projection and all of that; step ``t`` reads
    ``add[:, t]``). ``c = f c_prev + i g``, ``tc = tanh32(c)``, ``h = o tc``
    into ``hout_t`` (N, H) and, when ``has_next``, ``h * cont_n`` into the
    first H columns of ``src_next`` (N, K). Sigmoid is 0.5 tanh32(x / 2) +
    0.5. ``ht`` (H, N) is scratch. Operations and order as LSTMLayer's numpy
    step."""
    g4, n = at.shape
    hd = g4 // 4
    ta = t if add.shape[1] != 1 else 0
    per_stream = add.shape[2] != 1
    if n == 1:  # flat rows, so the loops vectorise along H
        a = at.reshape(g4)
        cp = c_prev.reshape(hd)
        cc = c.reshape(hd)
        tt = tc.reshape(hd)
        ho = hout_t.reshape(hd)
        hn = src_next[0]
        cj = cont_t[0]
        cn = cont_n[0]
        for r in range(3 * hd):
            a[r] = tanh32((a[r] + add[r, ta, 0]) * half)
        for r in range(3 * hd, g4):
            a[r] = tanh32(a[r] + add[r, ta, 0])
        for k in range(hd):
            ig = a[k] * half + half
            fg = (a[hd + k] * half + half) * cj
            og = a[2 * hd + k] * half + half
            gg = a[3 * hd + k]
            a[k] = ig
            a[hd + k] = fg
            a[2 * hd + k] = og
            cc[k] = fg * cp[k] + ig * gg
        for k in range(hd):
            tt[k] = tanh32(cc[k])
        for k in range(hd):
            hv = a[2 * hd + k] * tt[k]
            ho[k] = hv
            if has_next:
                hn[k] = hv * cn
        return
    if per_stream:
        for r in range(3 * hd):
            for j in range(n):
                at[r, j] = tanh32((at[r, j] + add[r, ta, j]) * half)
        for r in range(3 * hd, g4):
            for j in range(n):
                at[r, j] = tanh32(at[r, j] + add[r, ta, j])
    else:
        for r in range(3 * hd):
            br = add[r, ta, 0]
            for j in range(n):
                at[r, j] = tanh32((at[r, j] + br) * half)
        for r in range(3 * hd, g4):
            br = add[r, ta, 0]
            for j in range(n):
                at[r, j] = tanh32(at[r, j] + br)
    for k in range(hd):
        for j in range(n):
            ig = at[k, j] * half + half
            fg = (at[hd + k, j] * half + half) * cont_t[j]
            og = at[2 * hd + k, j] * half + half
            gg = at[3 * hd + k, j]
            at[k, j] = ig
            at[hd + k, j] = fg
            at[2 * hd + k, j] = og
            c[k, j] = fg * c_prev[k, j] + ig * gg
        for j in range(n):
            tv = tanh32(c[k, j])
            tc[k, j] = tv
            ht[k, j] = at[2 * hd + k, j] * tv
    for k0 in range(0, hd, 64):  # h (H, N) -> (N, H), in tiles
        k1 = min(k0 + 64, hd)
        for j in range(n):
            cn = cont_n[j]
            for k in range(k0, k1):
                hv = ht[k, j]
                hout_t[j, k] = hv
                if has_next:
                    src_next[j, k] = hv * cn


def _lstm_backward_step(at, c_prev, tc, dtop_t, dht, cont_n, has_next, dg, t, dc, dtt,
                        one):
    """One step back: ``dg[:, t]`` (4H, N) from the gates ``at``, ``c_prev``,
    ``tc`` (H, N), the top's diff ``dtop_t`` (N, H) and, when ``has_next``,
    ``dht * cont_n`` (``dht`` = W_hc^T dg_{t+1}). ``dc`` (H, N) is carried
    (in: from step t+1, out: dc * f); ``dtt`` (H, N) is scratch."""
    g4, n = at.shape
    hd = g4 // 4
    for j in range(n):
        for k in range(hd):
            dtt[k, j] = dtop_t[j, k]
    for k in range(hd):
        for j in range(n):
            d_h = dtt[k, j] + dht[k, j] * cont_n[j] if has_next else dtt[k, j]
            ig = at[k, j]
            fg = at[hd + k, j]
            og = at[2 * hd + k, j]
            gg = at[3 * hd + k, j]
            tv = tc[k, j]
            dcv = dc[k, j] + d_h * og * (one - tv * tv)
            dg[k, t, j] = (dcv * gg) * (ig * (one - ig))
            dg[hd + k, t, j] = (dcv * c_prev[k, j]) * (fg * (one - fg))
            dg[2 * hd + k, t, j] = (d_h * tv) * (og * (one - og))
            dg[3 * hd + k, t, j] = (dcv * ig) * (one - gg * gg)
            dc[k, j] = dcv * fg


def _gemm_wt(gemm, gemv, one, w, x, out):
    """``out`` (M, n) = ``w`` (M, K) @ ``x``^T, ``x`` (n, K): the call
    ``numpy.matmul(w, x.T, out=out)`` makes (GEMV for one column)."""
    m, k = w.shape
    n = x.shape[0]
    zero = one - one
    if n == 1:
        gemv(101, 111, m, k, one, w.ctypes.data, k, x.ctypes.data, 1, zero,
             out.ctypes.data, 1)
    else:
        gemm(101, 111, 112, m, n, k, one, w.ctypes.data, k, x.ctypes.data, k, zero,
             out.ctypes.data, n)


def _gemm_tn(gemm, gemv, one, w, x, t, out):
    """``out`` (K, n) = ``w``^T @ ``x[:, t, :]`` (``w`` (M, K), ``x``
    (M, T, n)): the call ``numpy.matmul(w.T, x[:, t], out=out)`` makes."""
    m, k = w.shape
    n = out.shape[1]
    ld = x.shape[1] * n
    zero = one - one
    xp = x.ctypes.data + t * n * x.itemsize
    if n == 1:
        gemv(101, 112, m, k, one, w.ctypes.data, k, xp, ld, zero, out.ctypes.data, 1)
    else:
        gemm(101, 112, 111, k, n, m, one, w.ctypes.data, k, xp, ld, zero,
             out.ctypes.data, n)


# Plain-Python bindings until _bind_helpers replaces them with inlined numba
# functions.
forward_step, backward_step = _lstm_forward_step, _lstm_backward_step
gemm_wt, gemm_tn = _gemm_wt, _gemm_tn


def _lstm_seq_forward(gemm, gemv, one, half, w, x, add, cont, acts, cs, tc, src, hout,
                      ht, keep):
    """The whole float32 forward loop. ``w`` (4H, K) is [W_hc | W_xc], a
    step's source rows ``src[t]`` (N, K) are [cont_t h_{t-1} | x_t]: the
    loop copies ``x[t]`` (N, D) in, one GEMM makes the gate block, the step
    writes the next source's first H columns (``x`` may have no columns:
    then ``w`` is W_hc and ``add`` holds the input projection, see
    :func:`_lstm_forward_step`). With ``keep`` every step's
    arrays are kept (``acts`` (T, 4H, N), ``cs`` (T + 1, H, N), ``tc`` (T,
    H, N), ``src`` (T, N, K)); without, one step of each is reused and ``cs``
    holds two (step t reads ``cs[t % 2]`` and writes ``cs[(t + 1) % 2]``)."""
    t_, n, d = x.shape
    hd = cs.shape[1]
    for t in range(t_):
        nxt = t + 1 < t_
        tn = t + 1 if nxt else t
        if keep:
            s, at, tct = src[t], acts[t], tc[t]
            c_prev, c, dst = cs[t], cs[t + 1], src[tn]
        else:
            s, at, tct = src[0], acts[0], tc[0]
            c_prev, c, dst = cs[t % 2], cs[(t + 1) % 2], src[0]
        xt = x[t]
        for j in range(n):
            for k in range(d):
                s[j, hd + k] = xt[j, k]
        gemm_wt(gemm, gemv, one, w, s, at)
        forward_step(at, add, t, c_prev, c, tct, ht, hout[t], dst, cont[t], cont[tn],
                     nxt, half)


def _lstm_seq_backward(gemm, gemv, one, w_hc, acts, cs, tc, dtop, cont, dg, dht, dc,
                       dtt):
    """The whole backward loop: ``dg`` (4H, T, N) for every step; ``dc``
    (H, N) comes in as the gradient reaching the last cell state (the caller
    sets it, zero for the layer) and goes out as the first one's."""
    t_ = acts.shape[0]
    for t in range(t_ - 1, -1, -1):
        nxt = t + 1 < t_
        backward_step(acts[t], cs[t], tc[t], dtop[t], dht, cont[t + 1 if nxt else t],
                      nxt, dg, t, dc, dtt, one)
        if t > 0:
            gemm_tn(gemm, gemv, one, w_hc, dg, t, dht)


_PY = {
    "lstm_forward_step": _lstm_forward_step,
    "lstm_backward_step": _lstm_backward_step,
    "lstm_seq_forward": _lstm_seq_forward,
    "lstm_seq_backward": _lstm_seq_backward,
    "lstm_cell": _lstm_cell,
    "lstm_output": _lstm_output,
    "rnn_backward": _rnn_backward,
    "lstm_unit_backward": _lstm_unit_backward,
    "lstm_unit_forward32": _lstm_unit_forward32,
    "lstm_unit_infer32": _lstm_unit_infer32,
    "sigmoid_forward32": _sigmoid_forward32,
    "sigmoid_backward": _sigmoid_backward,
    "tanh_backward": _tanh_backward,
    "sum_sigmoid32": _sum_sigmoid32,
    "split_sigmoid_backward": _split_sigmoid_backward,
}


def _bind_prange() -> None:
    numba = _numba()
    if numba is not None:
        globals()["prange"] = numba.prange


_HELPERS = {"tanh32": fast_math.tanh32, "forward_step": _lstm_forward_step,
            "backward_step": _lstm_backward_step, "gemm_wt": _gemm_wt,
            "gemm_tn": _gemm_tn}


def _bind_helpers() -> None:
    """Bind the helpers the compound kernels call to inlined numba functions
    (the callers compile after this; ``prange`` in a serial kernel is range)."""
    if _state.get("helpers"):
        return
    with _lock:
        if _state.get("helpers"):
            return
        numba = _numba()
        _bind_prange()
        g = globals()
        # tanh32 first: the step kernel that inlines it compiles after the binding.
        for name in ("tanh32", "gemm_wt", "gemm_tn", "forward_step", "backward_step"):
            g[name] = numba.njit(inline="always", error_model="numpy")(_HELPERS[name])
        _state["helpers"] = True


# -- wrappers ---------------------------------------------------------------------
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


def rnn_backward_step(da, dz, cont_next, h, has_next: bool) -> None:
    """da (N, H) = (da + cont_next[:, None] * dz) * (1 - h^2); without
    ``has_next``: da * (1 - h^2) (``dz``, ``cont_next`` ignored)."""
    _bind_prange()
    _get("rnn_backward", da.size * 4)(da, dz, cont_next, h, has_next,
                                      da.dtype.type(1.0))


def lstm_unit_forward(x, c_prev, cont, acts, c, tc, h) -> None:
    """One LSTMUnit step forward on (N, 4H) ``x`` and (N, H) ``c_prev``.

    Writes ``acts`` (N, 4H) = [i, f * cont, o, g], ``c`` = f c_prev + i g,
    ``tc`` = tanh(c) and ``h`` = o tanh(c). float32: one compiled pass per
    row with fast_math.tanh32; float64: a scaling pass, two ``np.tanh``
    passes and two fused passes (the numpy path's bits).
    """
    if x.dtype == np.float32:
        _bind_helpers()
        _get("lstm_unit_forward32", x.size)(x, c_prev, cont, acts, c, tc, h,
                                            np.float32(0.5))
        return
    np.multiply(x, _gate_scale(x.shape[1], x.dtype), out=acts)
    np.tanh(acts, out=acts)
    lstm_cell(acts, c_prev, cont, c)
    np.tanh(c, out=tc)
    lstm_output(acts, tc, cont, h, h, False)


def lstm_unit_infer(x, c_prev, cont, c, h) -> bool:
    """:func:`lstm_unit_forward` without ``acts`` and ``tanh(c)`` (a unit no
    backward reads): the same bits for ``c`` and ``h``, in one pass (at N=64
    H=512 69 µs, against 81 for the forward that stores them). float32
    only; False (nothing done) for another dtype."""
    if x.dtype != np.float32:
        return False
    lstm_unit_infer_kernel(x.size)(x, c_prev, cont, c, h, np.float32(0.5))
    return True


def lstm_unit_infer_kernel(size: int):
    """The compiled float32 kernel of :func:`lstm_unit_infer` for ``size``
    gate inputs, called ``(x, c_prev, cont, c, h, np.float32(0.5))``."""
    _bind_helpers()
    return _get("lstm_unit_infer32", size)


def lstm_unit_backward(acts, c_prev, tc, dc_top, dh_top, dc_prev, dx, want_c: bool,
                       want_x: bool) -> None:
    """One LSTMUnit step backward from :func:`lstm_unit_forward`'s ``acts``
    and ``tc``: ``dc_prev`` (N, H) if ``want_c``, ``dx`` (N, 4H) if
    ``want_x`` (an array not wanted is not touched); one pass."""
    _bind_prange()
    _get("lstm_unit_backward", acts.size)(acts, c_prev, tc, dc_top, dh_top, dc_prev,
                                          dx, want_c, want_x, tc.shape[1],
                                          tc.dtype.type(1.0))


# -- the LSTM layer's gate-major loops ------------------------------------------------
def lstm_forward_step(at, add, t, c_prev, c, tc, ht, hout_t, src_next, cont_t, cont_n,
                      has_next: bool) -> None:
    """One float32 gate-major step (see :func:`_lstm_forward_step`)."""
    _bind_helpers()
    _get("lstm_forward_step", 0)(at, add, t, c_prev, c, tc, ht, hout_t, src_next,
                                 cont_t, cont_n, has_next, at.dtype.type(0.5))


def lstm_backward_step_t(at, c_prev, tc, dtop_t, dht, cont_n, has_next: bool, dg, t,
                         dc, dtt) -> None:
    """One gate-major step back (see :func:`_lstm_backward_step`)."""
    _bind_helpers()
    _get("lstm_backward_step", 0)(at, c_prev, tc, dtop_t, dht, cont_n, has_next, dg, t,
                                  dc, dtt, dc.dtype.type(1.0))


def sequence_blas(*arrays):
    """``(gemm, gemv)`` of numpy's CBLAS when the whole-sequence loops can run
    on these arrays (kernels enabled, one float dtype, all C-contiguous,
    numpy's BLAS reachable and selected), else None."""
    if not usable(np, *arrays) or not all(a.flags.c_contiguous for a in arrays):
        return None
    return blas.numpy_cblas(arrays[0].dtype)


def lstm_seq_forward(fns, w, x, add, cont, acts, cs, tc, src, hout, ht, keep: bool):
    """The float32 forward loop over all steps (``fns`` from :func:`sequence_blas`)."""
    _bind_helpers()
    dt = x.dtype.type
    _get("lstm_seq_forward", 0)(fns[0], fns[1], dt(1.0), dt(0.5), w, x, add, cont, acts,
                                cs, tc, src, hout, ht, keep)


def lstm_seq_backward(fns, w_hc, acts, cs, tc, dtop, cont, dg, dht, dc, dtt) -> None:
    """The backward loop over all steps (float32 or float64); ``dc`` in: the
    last cell state's gradient, out: the initial one's."""
    _bind_helpers()
    _get("lstm_seq_backward", 0)(fns[0], fns[1], dg.dtype.type(1.0), w_hc, acts, cs, tc,
                                 dtop, cont, dg, dht, dc, dtt)


def activation_kernel(name: str):
    """The compiled ``sigmoid_forward32``, ``sigmoid_backward``,
    ``tanh_backward``, ``sum_sigmoid32`` or ``split_sigmoid_backward`` itself,
    for callers that bind it once and call it every step (no wrapper: a call
    is about 1 µs where numpy's four ufunc calls for a small sigmoid are
    about 2)."""
    _bind_helpers()
    return _get(name, 0)
