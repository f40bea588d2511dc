"""Fused CUDA elementwise kernels (CuPy) for the recurrent cells.

On the GPU every numpy-style expression is a kernel launch and a trip through
device memory; an LSTM step written with ufuncs is about 15 launches over
(N, H) arrays. The kernels here do one step's cell math in one launch:

- :func:`sigmoid` ``y = 0.5 tanh(x / 2) + 0.5`` (the CPU path's formula);
- :func:`lstm_forward_step`: gates, ``c_t``, ``tanh(c_t)``, ``h_t`` from the
  pre-activations of one step (LSTM layer, fused path; LSTMUnit forward);
- :func:`lstm_backward_step`: the four gate-input gradients and the carried
  ``dc`` of one step (LSTM layer, fused path);
- :func:`lstm_unit_backward`: LSTMUnit's backward from its bottoms and tops;
- :func:`tanh_backward`: ``(dy [+ acc]) * (1 - y^2)`` (RNN fused path).

The math is the CPU path's, operation for operation (the CPU path in the
layers is untouched); results agree to float rounding. :func:`enabled` says
whether to use them: only for CuPy arrays, and not when the environment
variable ``RECAFFE_CUDA_KERNELS`` is ``0`` (then the layers run their generic
array code on the GPU too). Kernels are compiled by CuPy on first use and
cached on disk by CuPy.
"""

from __future__ import annotations

import os

_kernels: dict[str, object] = {}


def enabled(xpm) -> bool:
    """Whether the fused kernels apply to arrays of module ``xpm``."""
    if getattr(xpm, "__name__", "") != "cupy":
        return False
    return os.environ.get("RECAFFE_CUDA_KERNELS", "1").strip().lower() not in (
        "0", "false", "no", "off")


def _get(name: str):
    k = _kernels.get(name)
    if k is None:
        k = _kernels[name] = _BUILDERS[name]()
    return k


_SIG = "((T)0.5 * tanh((T)0.5 * ({x})) + (T)0.5)"


def _build_sigmoid():
    import cupy as cp

    return cp.ElementwiseKernel("T x", "T y", f"y = {_SIG.format(x='x')}",
                                "recaffe_sigmoid")


def _build_lstm_fwd():
    import cupy as cp

    # One thread per (n, k), k < H. z, acts: (N, 4H); c_prev, c, tc, h: (N, H);
    # cont: (N,). All C-contiguous.
    body = f"""
    const ptrdiff_t n = i / H;
    const ptrdiff_t k = i - n * H;
    const ptrdiff_t b = n * 4 * H + k;
    const T ig = {_SIG.format(x='z[b]')};
    const T fg = {_SIG.format(x='z[b + H]')} * cont[n];
    const T og = {_SIG.format(x='z[b + 2 * H]')};
    const T gg = tanh(z[b + 3 * H]);
    acts[b] = ig;
    acts[b + H] = fg;
    acts[b + 2 * H] = og;
    acts[b + 3 * H] = gg;
    const T cv = fg * c_prev[i] + ig * gg;
    const T t = tanh(cv);
    c[i] = cv;
    tc[i] = t;
    h[i] = og * t;
    """
    return cp.ElementwiseKernel(
        "raw T z, raw T c_prev, raw T cont, int64 H",
        "raw T acts, raw T c, raw T tc, raw T h",
        body, "recaffe_lstm_fwd")


def _build_lstm_bwd():
    import cupy as cp

    # acts, dg: (N, 4H); c_prev, tc, dtop, dh, dc: (N, H). dc is read (the
    # carried gradient) and overwritten with dc * f (the next carried one).
    body = """
    const ptrdiff_t n = i / H;
    const ptrdiff_t k = i - n * H;
    const ptrdiff_t b = n * 4 * H + k;
    const T ig = acts[b], fg = acts[b + H], og = acts[b + 2 * H], gg = acts[b + 3 * H];
    const T t = tc[i];
    const T d_h = dtop[i] + dh[i];
    const T dcv = dc[i] + d_h * og * ((T)1 - t * t);
    dg[b] = (dcv * gg) * (ig * ((T)1 - ig));
    dg[b + H] = (dcv * c_prev[i]) * (fg * ((T)1 - fg));
    dg[b + 2 * H] = (d_h * t) * (og * ((T)1 - og));
    dg[b + 3 * H] = (dcv * ig) * ((T)1 - gg * gg);
    dc[i] = dcv * fg;
    """
    return cp.ElementwiseKernel(
        "raw T acts, raw T c_prev, raw T tc, raw T dtop, raw T dh, int64 H",
        "raw T dg, raw T dc",
        body, "recaffe_lstm_bwd")


def _build_lstm_unit_bwd():
    import cupy as cp

    # x, dx: (N, 4H); c_prev, c, dC, dH, dc_prev: (N, H); cont: (N,).
    body = f"""
    const ptrdiff_t n = i / H;
    const ptrdiff_t k = i - n * H;
    const ptrdiff_t b = n * 4 * H + k;
    const T ig = {_SIG.format(x='x[b]')};
    const T fg = {_SIG.format(x='x[b + H]')} * cont[n];
    const T og = {_SIG.format(x='x[b + 2 * H]')};
    const T gg = tanh(x[b + 3 * H]);
    const T t = tanh(c[i]);
    const T d_h = dH[i];
    const T dcv = dC[i] + d_h * og * ((T)1 - t * t);
    if (want_c) dc_prev[i] = dcv * fg;
    if (want_x) {{
        dx[b] = dcv * gg * ig * ((T)1 - ig);
        dx[b + H] = dcv * c_prev[i] * fg * ((T)1 - fg);
        dx[b + 2 * H] = d_h * t * og * ((T)1 - og);
        dx[b + 3 * H] = dcv * ig * ((T)1 - gg * gg);
    }}
    """
    return cp.ElementwiseKernel(
        "raw T x, raw T c_prev, raw T cont, raw T c, raw T dC, raw T dH, int64 H, "
        "bool want_c, bool want_x",
        "raw T dc_prev, raw T dx",
        body, "recaffe_lstm_unit_bwd")


def _build_tanh_bwd():
    import cupy as cp

    return cp.ElementwiseKernel("T dy, T y", "T dx", "dx = dy * ((T)1 - y * y)",
                                "recaffe_tanh_bwd")


def _build_tanh_bwd_acc():
    import cupy as cp

    return cp.ElementwiseKernel("T acc, T y", "T dx",
                                "dx = (dx + acc) * ((T)1 - y * y)",
                                "recaffe_tanh_bwd_acc")


_BUILDERS = {
    "sigmoid": _build_sigmoid,
    "lstm_fwd": _build_lstm_fwd,
    "lstm_bwd": _build_lstm_bwd,
    "lstm_unit_bwd": _build_lstm_unit_bwd,
    "tanh_bwd": _build_tanh_bwd,
    "tanh_bwd_acc": _build_tanh_bwd_acc,
}


def usable(xpm, *arrays) -> bool:
    """:func:`enabled`, and every array C-contiguous with one dtype (the
    kernels index raw memory and have one type parameter)."""
    if not enabled(xpm) or not arrays:
        return False
    dt = arrays[0].dtype
    return all(a.dtype == dt and a.flags.c_contiguous for a in arrays)


def sigmoid(x, out) -> None:
    """out = sigmoid(x), elementwise."""
    _get("sigmoid")(x, out)


def lstm_forward_step(z, c_prev, cont, acts, c, tc, h) -> None:
    """One LSTM step from pre-activations ``z`` (N, 4H); ``cont`` (N,).

    Writes ``acts`` = [i, f*cont, o, g] (N, 4H), ``c``, ``tanh(c)`` and ``h``
    (each (N, H)).
    """
    n, h4 = z.shape
    hid = h4 // 4
    _get("lstm_fwd")(z, c_prev, cont, hid, acts, c, tc, h, size=n * hid)


def lstm_backward_step(acts, c_prev, tc, dtop, dh, dg, dc) -> None:
    """One LSTM step backward: ``dg`` (N, 4H) gate-input grads; ``dc`` in/out."""
    n, h4 = acts.shape
    hid = h4 // 4
    _get("lstm_bwd")(acts, c_prev, tc, dtop, dh, hid, dg, dc, size=n * hid)


def lstm_unit_backward(x, c_prev, cont, c, d_c, d_h, dc_prev, dx,
                       want_c: bool, want_x: bool) -> None:
    """LSTMUnit backward; ``dc_prev``/``dx`` written only where wanted."""
    n, h4 = x.shape
    hid = h4 // 4
    _get("lstm_unit_bwd")(x, c_prev, cont, c, d_c, d_h, hid, bool(want_c),
                          bool(want_x), dc_prev, dx, size=n * hid)


def tanh_backward(dy, y, out) -> None:
    """out = dy * (1 - y^2)."""
    _get("tanh_bwd")(dy, y, out)


def tanh_backward_acc(dx, acc, y) -> None:
    """dx = (dx + acc) * (1 - y^2), in place."""
    _get("tanh_bwd_acc")(acc, y, dx)
