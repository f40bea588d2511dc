"""Recurrent-path kernels: the small layers of a recurrent loop as closures.

InnerProduct, Sigmoid, TanH, Eltwise SUM, Split, Slice and Concat run as
closures over their arrays (NumPy only), resolved once when the plan is built.
A Slice or Concat whose per-step blobs are the rows of one stack is one
transposed copy. InnerProducts on the recurrent path that share their
parameters compute their weight gradients once, after the last of them, as one
GEMM per run of members whose inputs and output diffs are consecutive stack
rows (no copies): :func:`chain_rows_backward`.

InnerProducts that share their weight and are not time-batched (the
recurrent product of every step) multiply through oneDNN's matmul with the
weight packed once per pass (:class:`PackedProduct`), where oneDNN is
installed and the weight is large enough (:func:`packed_pays`); so do
other InnerProducts with a short input and a wide output (an unrolled net's
input projection over all steps, :func:`wide_pays`), their bias added
inside.

Every function returns ``(forward, backward)`` callables with the layer
methods' signatures, or ``(None, None)`` where the layer's own methods are used.
Parameters are read from their blobs at each call (the solver and weight
sharing may re-point them).
"""

from __future__ import annotations

import numpy as np

from recaffe.backend import cpu_kernels, onednn
from recaffe.errors import BackendError
from recaffe.log import logger

#: An InnerProduct computes its forward as ``(W x^T)^T`` (one transposed
#: copy) when it has at most TRANSPOSED_MAX_ROWS rows and a weight of at least
#: TRANSPOSED_MIN_WEIGHT elements, or at most SMALL_BATCH_ROWS rows and at
#: least SMALL_BATCH_MIN_WEIGHT. Measured on 2 threads, x W^T vs (W x^T)^T in
#: µs: x (64, 512) W (2048, 512) 902 vs 793; x (32, 128) W (512, 128) 44 vs 37;
#: (64, 128) by (512, 128) 114 vs 75; (32, 64) by (256, 64) 13.1 vs 11.9; but
#: (100, 128) by (128, 128) 28.7 vs 29.4, (100, 16) by (16, 16) 1.6 vs 3.0 and
#: (256, 128) by (512, 128) 215 vs 301.
TRANSPOSED_MAX_ROWS = 256
TRANSPOSED_MIN_WEIGHT = 1 << 20
SMALL_BATCH_ROWS = 64
SMALL_BATCH_MIN_WEIGHT = 1 << 14
#: When a shared weight's products run through oneDNN's packed matmul: M >=
#: PACKED_MIN_ROWS rows and a weight of K N >= PACKED_BIG_WEIGHT elements
#: (OpenBLAS packs several MB again at every product), or of K N >=
#: PACKED_MID_WEIGHT with at most PACKED_FEW_ROWS rows or M K N >=
#: PACKED_MIN_MACS. Below that, waking oneDNN's threads at every step costs
#: the gain. Measured on 2 threads, LSTM LM training step through an unrolled
#: net, ms, numpy vs packed matmul, by (M, K, N): (64, 512, 2048) 168 vs 149,
#: (8, 512, 2048) 33.3 vs 24.4, (2, 512, 2048) 19.9 vs 12.1, (32, 256, 1024)
#: 28.2 vs 26.8, (16, 256, 1024) 16.3 vs 16.5, (4, 256, 1024) 6.9 vs 5.5,
#: (64, 128, 512) 20.9 vs 21.0, (32, 128, 512) 16.0 vs 16.9, (8, 128, 512)
#: 3.4 vs 3.9; forward only, (64, 512, 2048): 65.5 vs 55.8.
PACKED_MIN_ROWS = 2
PACKED_BIG_WEIGHT = 1 << 20
PACKED_MID_WEIGHT = 1 << 18
PACKED_FEW_ROWS = 4
PACKED_MIN_MACS = 1 << 23


def packed_pays(m: int, k: int, n: int) -> bool:
    """Whether a shared (K, N) weight's products with (M, K) inputs run
    through oneDNN's packed matmul (see ``PACKED_*``)."""
    if m < PACKED_MIN_ROWS:
        return False
    w = k * n
    return w >= PACKED_BIG_WEIGHT or (w >= PACKED_MID_WEIGHT and (
        m <= PACKED_FEW_ROWS or m * w >= PACKED_MIN_MACS))


#: An InnerProduct outside those sets whose one GEMM per pass has a wide
#: output and a short input (an unrolled net's input projection over all
#: steps: (T N, D) by (D, 4H)) runs through oneDNN's matmul too, its bias
#: added inside: N >= WIDE_MIN_OUTPUTS, K <= WIDE_MAX_INPUTS and M K N >=
#: WIDE_MIN_MACS. Measured on 2 threads, ms, oneDNN (packing included) vs
#: numpy's GEMM plus the bias pass, (M, K, N): (3200, 65, 2048) 4.40 vs 7.97,
#: (3200, 128, 2048) 8.09 vs 11.8, (3200, 256, 2048) 15.4 vs 19.6, (1600, 65,
#: 512) 0.50 vs 0.79, (1600, 128, 512) 0.95 vs 1.23; but (3200, 512, 65)
#: 1.28 vs 1.18 without the bias. The floor keeps the gain above the cost
#: of switching thread pools next to OpenBLAS's layers.
WIDE_MIN_OUTPUTS = 512
WIDE_MAX_INPUTS = 256
WIDE_MIN_MACS = 1 << 24


def wide_pays(m: int, k: int, n: int) -> bool:
    """Whether an InnerProduct's one GEMM per pass runs through oneDNN's
    matmul (see ``WIDE_*``)."""
    return n >= WIDE_MIN_OUTPUTS and k <= WIDE_MAX_INPUTS and \
        m * k * n >= WIDE_MIN_MACS


def packed_sets(net, groups) -> dict:
    """The InnerProducts whose products run through :class:`PackedProduct`,
    each with the key of its set: the shared-weight sets
    (:func:`shared_weight_sets`) by layer id; the other InnerProducts whose
    GEMM pays (:func:`wide_pays`) by layer id, and the time-batched ones by
    ("group", first member)."""
    grouped = {m for g in groups for m in g.members}
    out: dict = shared_weight_sets(net, grouped)
    for u, layer in enumerate(net.layers_list):
        if layer.type == "InnerProduct" and u not in grouped and u not in out \
                and layer.blobs and wide_pays(layer.M, layer.K, layer.N):
            out[u] = ("one", u)
    for g in groups:
        rep = g.rep
        if rep is not None and rep.type == "InnerProduct" and rep.blobs and \
                wide_pays(rep.M, rep.K, rep.N):
            out[("group", g.members[0])] = ("group", g.members[0])
    return out


def shared_weight_sets(net, grouped: set[int]) -> dict[int, tuple]:
    """For the InnerProducts that share their weight with another one of the
    same shapes and are not time-batched (``grouped``): layer -> a key of
    its set. Only sets whose products pay for :class:`PackedProduct`
    (:func:`packed_pays`)."""
    sets: dict[tuple, list[int]] = {}
    for u, layer in enumerate(net.layers_list):
        if layer.type != "InnerProduct" or u in grouped or not layer.blobs:
            continue
        m, k, n = layer.M, layer.K, layer.N
        if not packed_pays(m, k, n):
            continue
        key = ("shared", net.param_owner(u, 0), m, k, n,
               bool(layer.transpose), bool(layer.bias_term))
        sets.setdefault(key, []).append(u)
    return {u: key for key, members in sets.items() if len(members) >= 2
            for u in members}


class PackedProduct:
    """``x @ op(W)`` for the members of a set of InnerProducts that share the
    weight W (or for one wide InnerProduct), through oneDNN's matmul
    (:class:`recaffe.backend.onednn.PackedMatmul`). The first product of a
    pass packs W as the weight blob holds it then (the plan counts its
    passes in ``scratch["pass"]``), so the solver's updates and a script's
    edits between passes are seen. Calling it returns False
    where oneDNN does not run this pass (not installed, switched off,
    numpy's BLAS shared with other threads, or a primitive that could not be
    made): the caller's numpy product runs instead."""

    def __init__(self, blob, shape, w_strides, scratch, bias=False):
        self._blob, self._shape, self._strides = blob, shape, w_strides
        self._scratch, self._bias = scratch, bias
        self._mm = None
        self._pass = None
        self._on = False
        self._failed = False

    def __call__(self, x, y, bias=None) -> bool:
        """``y`` := ``x @ op(W)`` (+ ``bias`` for a product made with one);
        False where numpy must compute it."""
        p = self._scratch["pass"]
        if p != self._pass:
            self._pass = p
            self._on = self._prepare()
        if self._on:
            self._mm.run(x, y, bias)
        return self._on

    def _prepare(self) -> bool:
        w = self._blob.data
        if self._failed or not isinstance(w, np.ndarray) or w.dtype != np.float32 \
                or not w.flags.c_contiguous:
            return False
        try:
            self._mm = onednn.packed_matmul(*self._shape, self._strides, self._mm,
                                            self._bias)
        except BackendError as exc:  # e.g. no memory
            self._failed = True
            logger.warning(f"oneDNN's matmul could not be made for an "
                           f"InnerProduct's product {self._shape} ({exc}); numpy "
                           "runs it")
            return False
        if self._mm is None:
            return False
        self._mm.pack(w)
        return True


def packed_product(scratch, layer_id, which: str, layer, arrays, bias=False):
    """The :class:`PackedProduct` of ``layer_id``'s set (``scratch["packed_ip"]``,
    :func:`packed_sets`) for ``which`` ("forward": ``x W^T`` (+ the bias with
    ``bias``), "backward": ``dy W``, for shared weights only; transposed for a
    ``transpose`` layer), or None (not in such a set, or ``arrays`` not all
    C-contiguous float32)."""
    key = None if scratch is None else scratch.get("packed_ip", {}).get(layer_id)
    if key is None or not all(a.dtype == np.float32 and a.flags.c_contiguous
                              for a in arrays):
        return None
    if which == "backward" and key[0] != "shared":
        return None  # a wide layer's dy W has a short output: OpenBLAS's
    m, k, n = layer.M, layer.K, layer.N
    if which == "forward":  # (M, K) @ (K, N): W as stored (N, K), or (K, N)
        shape, strides = (m, k, n), ((n, 1) if layer.transpose else (1, k))
    else:  # (M, N) @ (N, K): W (N, K) as stored, or (K, N) transposed
        shape, strides = (m, n, k), ((1, n) if layer.transpose else (k, 1))
    return scratch.setdefault(("packed", which, key), PackedProduct(
        layer.blobs[0], shape, strides, scratch, bias))


def layer_kernels(net, graph, u: int, data_rows, diff_rows, xp, scratch=None):
    """Pre-bound (forward, backward) for layer ``u`` of ``net``; a layer no
    backward reaches gets no backward and its diffs are not touched (they
    would be allocated). ``scratch`` (a dict) holds work arrays that the
    kernels of one plan share (see :func:`ip_kernels`)."""
    layer = net.layers_list[u]
    backward = bool(net.layer_need_backward[u])
    b, t = net.bottom_vecs[u], net.top_vecs[u]
    if xp is not np or any(
            net.layers_list[graph.producer[x]].type == "Python"
            for x in net.bottom_ids[u] if x in graph.producer):
        return None, None
    if set(net.bottom_ids[u]) & set(net.top_ids[u]):
        return None, None
    typ = layer.type
    pd = net.bottom_need_backward[u]
    if typ == "InnerProduct":
        return ip_kernels(layer, b, t, pd, backward, scratch, layer_id=u)
    if typ in ("Slice", "Concat"):
        return slice_kernels(net, u, data_rows, diff_rows)
    if typ == "Sigmoid" or typ == "TanH":
        return _activation_kernels(typ, b, t, pd, backward, scratch)
    if typ == "LSTMUnit":
        return _lstm_unit_kernels(layer, b, t, pd, backward)
    if typ == "Scale" and len(b) == 2 and not layer.bias_term and \
            not (backward and pd[1]):
        return _scale_kernels(layer, b, t, pd, backward)
    if typ == "Eltwise" and len(b) == 2 and layer.op == 1 and \
            layer.coeffs == [1.0, 1.0]:
        x0, x1, y = b[0].data, b[1].data, t[0].data

        def fwd(_b, _t):
            np.add(x0, x1, out=y)
        if not backward:
            return fwd, None
        dy = t[0].diff
        dxs = [bb.diff for bb, p in zip(b, pd, strict=True) if p]

        def bwd(_t, _pd, _b):
            for dx in dxs:
                np.copyto(dx, dy)
        return fwd, bwd
    if typ == "Split" and len(t) == 2:
        if not backward:
            return (lambda _b, _t: None), None
        dx = b[0].diff if pd[0] else None
        d0, d1 = t[0].diff, t[1].diff

        def bwd(_t, _pd, _b):
            if dx is not None:
                np.add(d0, d1, out=dx)
        return (lambda _b, _t: None), bwd
    return None, None


def _work_array(scratch, purpose: str, shape, dtype):
    """An array for ``purpose`` that lives only inside one kernel call: one
    per shape and dtype in ``scratch`` (a plan's dict), or a new one."""
    key = (purpose, tuple(shape), np.dtype(dtype))
    arr = None if scratch is None else scratch.get(key)
    if arr is None:
        arr = np.empty(shape, dtype=dtype)
        if scratch is not None:
            scratch[key] = arr
    return arr


def _activation_kernels(typ, b, t, pd, backward=True, scratch=None):
    x, y = b[0].data, t[0].data
    dy, dx = (t[0].diff, b[0].diff if pd[0] else None) if backward else (None, None)
    # 0-d operands of the arrays' dtype: numpy converts a Python float
    # operand on every call, which costs as much as the operation here.
    half, one = np.array(0.5, dtype=y.dtype), np.array(1.0, dtype=y.dtype)
    multiply, add, subtract, tanh = np.multiply, np.add, np.subtract, np.tanh
    if typ == "Sigmoid":
        def fwd(_b, _t):
            multiply(x, half, out=y)
            tanh(y, out=y)
            multiply(y, half, out=y)
            add(y, half, out=y)
    else:
        def fwd(_b, _t):
            tanh(x, out=y)
    arrays = [a for a in (x, y, dy, dx) if a is not None]
    if cpu_kernels.usable(np, *arrays) and all(a.flags.c_contiguous for a in arrays):
        return _compiled_activation(typ, x, y, dy, dx, backward, fwd)
    if not backward:
        return fwd, None
    work = _work_array(scratch, "activation_grad", y.shape, y.dtype)
    if typ == "Sigmoid":
        def bwd(_t, _pd, _b):
            if dx is not None:  # dy * y * (1 - y)
                subtract(one, y, out=work)
                multiply(work, y, out=work)
                multiply(dy, work, out=dx)
    else:
        def bwd(_t, _pd, _b):
            if dx is not None:  # dy * (1 - y^2)
                multiply(y, y, out=work)
                subtract(one, work, out=work)
                multiply(dy, work, out=dx)
    return fwd, bwd


def _compiled_activation(typ, x, y, dy, dx, backward, numpy_fwd):
    """Sigmoid / TanH with one compiled call per pass (recaffe.backend.cpu_kernels):
    a float32 Sigmoid forward with fast_math.tanh32 (other forwards stay
    ``numpy_fwd``); backward the numpy closures' operations in their order
    (same bits)."""
    fwd = numpy_fwd
    if typ == "Sigmoid" and y.dtype == np.float32:
        sig = cpu_kernels.activation_kernel("sigmoid_forward32")
        half = np.float32(0.5)

        def fwd(_b, _t):
            sig(x, y, half)
    if not backward:
        return fwd, None
    grad = cpu_kernels.activation_kernel(
        "sigmoid_backward" if typ == "Sigmoid" else "tanh_backward")
    one = y.dtype.type(1.0)

    def bwd(_t, _pd, _b):
        if dx is not None:
            grad(y, dy, dx, one)
    return fwd, bwd


def _lstm_unit_kernels(layer, b, t, pd, backward=True):
    """LSTMUnit on its arrays with the compiled CPU kernels (the layer's own
    CPU path without its per-call checks and look-ups; same results)."""
    c_prev, x, cont = b[0].data[0], b[1].data[0], b[2].data[0]
    c, h = t[0].data[0], t[1].data[0]
    arrays = [c_prev, x, cont, c, h]
    want_c, want_x = bool(backward and pd[0]), bool(backward and pd[1])
    if backward:
        dc_top, dh_top = t[0].diff[0], t[1].diff[0]
        arrays += [dc_top, dh_top] + [b[k].diff[0] for k in (0, 1) if pd[k]]
    if not cpu_kernels.usable(np, *arrays):
        return None, None
    if not backward and x.dtype == np.float32:
        # Nothing reads the gates again: c and h in one pass, no scratch.
        infer, half = cpu_kernels.lstm_unit_infer_kernel(x.size), np.float32(0.5)

        def fwd_only(_b, _t):
            infer(x, c_prev, cont, c, h, half)
            layer._saved = None
        return fwd_only, None
    forward_only = getattr(layer, "forward_only", False) or not backward
    acts, tc = layer._scratch(x, c_prev) if forward_only else \
        layer._cpu_buffers(x, c_prev)
    unit_forward = cpu_kernels.lstm_unit_forward
    key = (x.shape, x.dtype)

    def fwd(_b, _t):
        unit_forward(x, c_prev, cont, acts, c, tc, h)
        layer._saved = None if forward_only else key
    if not backward:
        return fwd, None
    dc_prev = b[0].diff[0] if want_c else tc
    dx = b[1].diff[0] if want_x else acts
    dcont = b[2].diff if pd[2] else None
    unit_backward = cpu_kernels.lstm_unit_backward

    def bwd(_t, _pd, _b):
        if dcont is not None:
            dcont[...] = 0
        if want_c or want_x:
            unit_backward(acts, c_prev, tc, dc_top, dh_top, dc_prev, dx, want_c,
                          want_x)
    return fwd, bwd


def _scale_kernels(layer, b, t, pd, backward=True):
    """Scale of bottom[0] by bottom[1] (no bias, no gradient to the scale):
    the layer's products on its arrays."""
    outer, dim, inner = layer.dims
    x = b[0].data.reshape(outer, dim, inner)
    s = b[1].data.reshape(1, dim, 1)
    y = t[0].data.reshape(outer, dim, inner)
    multiply = np.multiply

    def fwd(_b, _t):
        multiply(x, s, out=y)
    if not (backward and pd[0]):
        return fwd, (lambda _t, _pd, _b: None) if backward else None
    dy = t[0].diff.reshape(outer, dim, inner)
    dx = b[0].diff.reshape(outer, dim, inner)

    def bwd(_t, _pd, _b):
        multiply(dy, s, out=dx)
    return fwd, bwd


def ip_kernels(layer, b, t, pd, backward=True, scratch=None, layer_id=None):
    """InnerProduct over its arrays (also a time-batched group's carriers);
    with ``backward`` false, no backward and no diffs touched. The transposed
    product of a recurrent step lives only inside one forward call, so the
    kernels given the same ``scratch`` dict share one such array per shape
    (every step of an unrolled net: one (N, M) array instead of T). Layer
    ``layer_id`` (a layer id, or ("group", first member) for a group's
    carriers) of :func:`packed_sets` multiplies through a
    :class:`PackedProduct`."""
    M, K, N = layer.M, layer.K, layer.N
    x = b[0].data.reshape(M, K)
    y = t[0].data.reshape(M, N)
    dy = t[0].diff.reshape(M, N) if backward else None
    dx = b[0].diff.reshape(M, K) if backward and pd[0] else None
    blobs, transpose, bias = layer.blobs, layer.transpose, layer.bias_term
    ppd = layer.param_propagate_down
    w_grad = bool(ppd and ppd[0])
    b_grad = bool(bias and ppd[1])
    if not (x.base is not None or x.flags.c_contiguous):
        return None, None
    dtypes = {x.dtype, y.dtype, blobs[0].data.dtype}
    if bias:
        dtypes.add(blobs[1].data.dtype)
    if len(dtypes) != 1 or not y.flags.c_contiguous or (
            dx is not None and not dx.flags.c_contiguous):
        return None, None
    # np.dot on 2-D arrays has less per-call overhead than matmul.
    dot = np.dot
    ones = np.ones(M, dtype=x.dtype)
    add_bias = bias_adder(y, M, N) if bias else None
    if M == 1 and not transpose:
        # one row (one stream): a GEMV straight into the row
        x1, y1 = x.reshape(K), y.reshape(N)

        def product():
            dot(blobs[0].data, x1, out=y1)
    elif not transpose and (
            (M <= TRANSPOSED_MAX_ROWS and N * K >= TRANSPOSED_MIN_WEIGHT)
            or (M <= SMALL_BATCH_ROWS and N * K >= SMALL_BATCH_MIN_WEIGHT)):
        # A recurrent step's product with a large weight: W x^T (the weight as
        # stored) and one transposed copy beat x W^T (the same dot products).
        yt = _work_array(scratch, "ip_transposed", (N, M), y.dtype)
        copyto = np.copyto

        def product():
            dot(blobs[0].data, x.T, out=yt)
            copyto(y, yt.T)
    else:
        def product():
            w = blobs[0].data
            dot(x, w if transpose else w.T, out=y)
    packed = packed_product(scratch, layer_id, "forward", layer, (x, y), bias)

    def fwd(_b, _t):
        if packed is not None and packed(x, y, blobs[1].data if bias else None):
            return  # the bias added inside
        product()
        if bias:
            add_bias(blobs[1].data)
    packed_dx = None if dx is None else packed_product(scratch, layer_id, "backward",
                                                       layer, (dy, dx))

    def bwd(_t, _pd, _b):
        if w_grad:
            wd = blobs[0].diff
            if transpose:
                wd += dot(x.T, dy)
            else:
                wd += dot(dy.T, x)
        if b_grad:
            bd = blobs[1].diff
            bd += dot(ones, dy)
        if dx is not None and (packed_dx is None or not packed_dx(dy, dx)):
            w = blobs[0].data
            dot(dy, w.T if transpose else w, out=dx)
    return fwd, (bwd if backward else None)


def slice_kernels(net, u: int, data_rows, diff_rows):
    """Slice (forward) and Concat (``concat=True``, its mirror image): one
    copy through a transposed view when the per-step blobs are the rows of
    one stack, else one copy per section."""
    layer = net.layers_list[u]
    b, t = net.bottom_vecs[u], net.top_vecs[u]
    pd = net.bottom_need_backward[u]
    concat = layer.type == "Concat"
    whole = t[0] if concat else b[0]
    parts = b if concat else t
    part_ids = net.bottom_ids[u] if concat else net.top_ids[u]
    axis, bounds = layer.axis, layer.bounds
    if len(parts) < 2 or len(bounds) != len(parts) + 1:
        return None, None
    shape = whole.shape
    pre = int(np.prod(shape[:axis], dtype=np.int64))
    post = int(np.prod(shape[axis + 1:], dtype=np.int64))
    n = len(parts)
    widths = {bounds[j + 1] - bounds[j] for j in range(n)}
    lead = (slice(None),) * axis

    def stacked(table, arr_of_whole):
        rows = [table.get(i) for i in part_ids]
        if len(widths) != 1 or any(r is None for r in rows):
            return None
        stack = rows[0][0]
        if any(r[0] is not stack for r in rows) or stack.shape[0] != n:
            return None
        if [r[1] for r in rows] != list(range(n)):
            return None
        w = next(iter(widths))
        chunk = w * post * stack.dtype.itemsize
        if chunk in (1, 2, 4, 8) and arr_of_whole.flags.c_contiguous:
            # Each part's row of w*post values moves as one integer: a 2-D
            # transposed copy instead of one with tiny inner loops.
            wide = np.dtype(f"u{chunk}")
            return (stack.view(wide).reshape(n, pre),
                    arr_of_whole.reshape(pre, n * w * post).view(wide).T)
        return (stack.reshape(n, pre, w, post),
                arr_of_whole.reshape(pre, n, w, post).transpose(1, 0, 2, 3))

    def sections(arr):
        return [arr[lead + (slice(bounds[j], bounds[j + 1]),)] for j in range(n)]

    # forward: parts -> whole (Concat) or whole -> parts (Slice)
    st = stacked(data_rows, whole.data)
    if st is not None:
        stack4, whole4 = st
        src, dst = (stack4, whole4) if concat else (whole4, stack4)
        pairs_f = [(dst, src)]
    else:
        secs = sections(whole.data)
        pairs_f = [(s_, p.data) if concat else (p.data, s_)
                   for s_, p in zip(secs, parts, strict=True)]
    # backward: whole.diff -> parts (Concat) or parts -> whole.diff (Slice)
    need = [bool(x) for x in pd] if concat else [bool(pd[0])] * n
    pairs_b = []
    if any(need):
        st = stacked(diff_rows, whole.diff) if all(need) else None
        if st is not None:
            stack4, whole4 = st
            pairs_b = [(stack4, whole4) if concat else (whole4, stack4)]
        else:
            secs = sections(whole.diff)
            pairs_b = [(p.diff, s_) if concat else (s_, p.diff)
                       for s_, p, nd in zip(secs, parts, need, strict=True) if nd]
    copyto = np.copyto

    def fwd(_b, _t):
        for dst_, src_ in pairs_f:
            copyto(dst_, src_)

    def bwd(_t, _pd, _b):
        for dst_, src_ in pairs_b:
            copyto(dst_, src_)
    return fwd, bwd


def chain_backward(net, members: list[int], order_index, xp) -> dict[int, object]:
    """InnerProduct layers on the recurrent path that share their params.

    They depend on each other, so their forward stays a loop, but their
    weight (and bias) gradients need no loop: each member's backward only
    computes its bottom diff, and the one that runs last in the backward
    pass accumulates ``sum_t dY_t^T X_t`` as a single GEMM over stacked
    ``dY`` and ``X``. ``order_index(layer)`` is the layer's plan position.
    """
    layers = [net.layers_list[m] for m in members]
    rep = layers[0]
    T, M, K, N = len(members), rep.M, rep.K, rep.N
    dtype = net.blob_list[net.bottom_ids[members[0]][0]].dtype
    xs = [net.bottom_vecs[m][0] for m in members]
    dys = [net.top_vecs[m][0] for m in members]
    x_all = xp.empty((T, M, K), dtype=dtype)
    dy_all = xp.empty((T, M, N), dtype=dtype)
    transpose, bias = rep.transpose, rep.bias_term
    ppd = list(rep.param_propagate_down)
    blobs = rep.blobs
    order = sorted(members, key=order_index)
    last = order[0]  # earliest in forward order = last in backward order

    def bottom_diff(t, pd, b):
        if pd[0]:
            dy = t[0].diff.reshape(M, N)
            w = blobs[0].data
            xp.matmul(dy, w.T if transpose else w, out=b[0].diff.reshape(M, K))

    def final(t, pd, b):
        bottom_diff(t, pd, b)
        xp.stack([x.data.reshape(M, K) for x in xs], out=x_all)
        xp.stack([y.diff.reshape(M, N) for y in dys], out=dy_all)
        dy2 = dy_all.reshape(T * M, N)
        x2 = x_all.reshape(T * M, K)
        if ppd[0]:
            if transpose:
                blobs[0].diff += x2.T @ dy2
            else:
                blobs[0].diff += dy2.T @ x2
        if bias and ppd[1]:
            blobs[1].diff += dy2.sum(axis=0)
    return {m: (final if m == last else bottom_diff) for m in members}


def chain_rows_backward(net, graph, members: list[int], order_index,
                        data_rows, diff_rows, xp, scratch=None):
    """Like :func:`chain_backward`, without copies: where consecutive
    members' inputs and output diffs are consecutive rows of stacks (the
    layout), their weight gradients are one GEMM over those rows; the input
    gradients multiply through a :class:`PackedProduct` where the members
    form a shared-weight set (``scratch["packed_ip"]``).
    None when no two members line up so (or not on the host)."""
    if xp is not np:
        return None
    rep = net.layers_list[members[0]]
    M, K, N = rep.M, rep.K, rep.N
    transpose, bias = rep.transpose, rep.bias_term
    ppd = list(rep.param_propagate_down)
    w_grad, b_grad = bool(ppd and ppd[0]), bool(bias and ppd[1])
    blobs = rep.blobs
    order = sorted(members, key=order_index)
    pairs = []  # (x rows, dy rows, x array, dy array) per member, forward order
    for m in order:
        xb, yb = net.bottom_ids[m][0], net.top_ids[m][0]
        x = net.blob_list[xb].data
        dy = net.blob_list[yb].diff
        if x.dtype != dy.dtype or x.dtype != blobs[0].data.dtype:
            return None
        xr = data_rows.get(graph.data_root(xb))
        if xr is not None and not np.shares_memory(xr[0][xr[1]], x):
            xr = None
        pairs.append((xr, diff_rows.get(yb), x.reshape(M, K), dy.reshape(M, N)))
    runs: list[list] = []   # [x stack, dy stack, x row, dy row, length]
    terms = []
    for xr, dr, x, dy in pairs:
        if xr is not None and dr is not None:
            last = runs[-1] if runs else None
            if last is not None and last[0] is xr[0] and last[1] is dr[0] and \
                    last[2] + last[4] == xr[1] and last[3] + last[4] == dr[1]:
                last[4] += 1
                continue
            runs.append([xr[0], dr[0], xr[1], dr[1], 1])
            continue
        terms.append((x, dy))
    if not any(r[4] > 1 for r in runs):
        return None
    for xs, ds, kx, ky, n in runs:
        terms.append((xs[kx:kx + n].reshape(n * M, K),
                      ds[ky:ky + n].reshape(n * M, N)))
    ones = {len(dy): np.ones(len(dy), dtype=dy.dtype) for _x, dy in terms}
    dot = np.dot
    dxs = {}
    for m, (_xr, _dr, _x, dy) in zip(order, pairs, strict=True):
        if net.bottom_need_backward[m][0]:
            dx = net.blob_list[net.bottom_ids[m][0]].diff.reshape(M, K)
            if not dx.flags.c_contiguous:
                return None
            dxs[m] = (dy, dx)

    def bottom_diff(m):
        if m not in dxs:
            return lambda _t, _pd, _b: None
        dy, dx = dxs[m]
        packed = packed_product(scratch, m, "backward", rep, (dy, dx))

        def run(_t, _pd, _b):
            if packed is None or not packed(dy, dx):
                w = blobs[0].data
                dot(dy, w.T if transpose else w, out=dx)
        return run

    def weight_grads():
        if w_grad:
            wd = blobs[0].diff
            for x, dy in terms:
                wd += dot(x.T, dy) if transpose else dot(dy.T, x)
        if b_grad:
            bd = blobs[1].diff
            for _x, dy in terms:
                bd += dot(ones[len(dy)], dy)

    out = {m: bottom_diff(m) for m in order[1:]}
    first = bottom_diff(order[0])

    def final(t, pd, b):
        first(t, pd, b)
        weight_grads()
    out[order[0]] = final
    return out


def bias_adder(y, M: int, N: int):
    """``f(b)``: ``y += b`` over the rows of the (M, N) array ``y``. For narrow
    rows the bias is first tiled r times so that numpy adds long rows of r*N
    (the same sums, with less per-row overhead)."""
    if N < 64 and M * N >= 4096:
        r = max(d for d in range(1, min(M, 512 // N) + 1) if M % d == 0)
        if r > 1:
            tiled = np.empty(r * N, dtype=y.dtype)
            tiled2 = tiled.reshape(r, N)
            y2 = y.reshape(M // r, r * N)
            copyto, add = np.copyto, np.add

            def add_tiled(bias):
                copyto(tiled2, bias)
                add(y2, tiled, out=y2)
            return add_tiled

    def add_rows(bias):
        np.add(y, bias, out=y)
    return add_rows
