"""Building steps: the plan's forward and backward lists of pre-bound calls.

Each forward step is ``(callable, bottoms, tops)`` and each backward step
``(callable, tops, propagate_down, bottoms)``, with the layer's bound method
(or a kernel of :mod:`.kernels`, or a time-batched group's run over its
stacked carriers) and its blob lists resolved once. Loss terms are computed as
``dot(top.data, top.diff)`` (Caffe's formula) without temporaries and added to
``sink.loss``.
"""

from __future__ import annotations

import numpy as np

from recaffe.backend import cpu_kernels
from recaffe.plan import kernels
from recaffe.plan.watch import PURE_RESHAPE, ShapeWatch, reshaping_forward


class Steps:
    """``fwd``, ``bwd`` (in backward order), ``bwd_steps`` (for each backward
    entry, the index of its step in ``fwd``) and the shape ``watch``."""

    def __init__(self, net, graph, order, groups, layout, xp, chain_bwd, sink,
                 scratch=None, sequences=()):
        self.net, self.graph, self.xp = net, graph, xp
        self.layout = layout
        #: Work arrays (and state) the kernels share: see ExecutionPlan.
        self.scratch: dict = {} if scratch is None else scratch
        fwd, bwd = [], []
        bwd_steps: list[int] = []
        self.watch = ShapeWatch()
        # Per entry: the layer whose small-layer kernel it is, else None.
        fwd_kernel, bwd_kernel = [], []
        # A recognised LSTM recurrence (:mod:`.sequence`) runs as one step:
        # its forward at its first layer's entry, its backward at the first
        # of its layers' backward entries (the last one listed here); the
        # other entries do nothing, so entries and layers keep their places.
        fused = {m: seq for seq in sequences for m in seq.members}
        placed: set = set()
        last_bwd: dict = {}  # recurrence -> index of its backward entry
        for u in order:
            if u < 0:
                g = groups[-u - 1]
                pd = list(net.bottom_need_backward[g.members[0]])
                kf, kb = group_kernels(g, pd, xp,
                                       bool(net.layer_need_backward[g.members[0]]),
                                       self.scratch)
                fwd.append((group_forward(g, kf, xp), g.pb, g.pt))
                fwd_kernel.append(None)
                if net.layer_need_backward[g.members[0]]:
                    bwd.append((group_backward(g, kb), g.pt, pd, g.pb))
                    bwd_kernel.append(None)
                    bwd_steps.append(len(fwd) - 1)
                continue
            layer = net.layers_list[u]
            b, t = net.bottom_vecs[u], net.top_vecs[u]
            if u in layout.viewed_slices:  # its tops are views: nothing to do
                fwd.append((_nothing, b, t))
                fwd_kernel.append(None)
                continue
            if u in fused:
                seq = fused[u]
                fwd.append((_nothing if seq in placed else seq.forward, b, t))
                fwd_kernel.append(None)
                placed.add(seq)
                if net.layer_need_backward[u] and u not in layout.aliased_sums:
                    last_bwd[seq] = len(bwd)
                    bwd.append((_nothing_back, t, net.bottom_need_backward[u], b))
                    bwd_kernel.append(None)
                    bwd_steps.append(len(fwd) - 1)
                continue
            losses = [(tb, w) for tb, w in zip(t, layer.loss_weights, strict=False)
                      if w != 0]
            pure = layer.type in PURE_RESHAPE
            if not pure:
                self.watch.add(t)
            kf, kb = self._kernels(u) if pure and not losses else (None, None)
            fwd_kernel.append(u if kf is not None else None)
            if kf is not None:
                fwd.append((kf, b, t))
            elif pure and not losses:
                fwd.append((layer.forward, b, t))
            elif pure:
                fwd.append((pure_loss_forward(layer, losses, sink, xp), b, t))
            else:
                fwd.append((reshaping_forward(layer, t, losses, sink, xp), b, t))
            if net.layer_need_backward[u] and u not in layout.aliased_sums:
                f = chain_bwd.get(u) or (kb if kf is not None else None)
                bwd_kernel.append(u if f is not None and f is kb else None)
                f = f or layer.backward
                bwd.append((f, t, net.bottom_need_backward[u], b))
                bwd_steps.append(len(fwd) - 1)
        for seq, i in last_bwd.items():
            bwd[i] = (seq.backward, *bwd[i][1:])
        bwd.reverse()
        bwd_steps.reverse()
        bwd_kernel.reverse()
        #: The steps one by one, for per-layer timing (``fwd``/``bwd`` may
        #: run two neighbouring layers in one call).
        self.fwd_single, self.bwd_single = list(fwd), list(bwd)
        if xp is np:
            fuse_sum_sigmoid(net, fwd, fwd_kernel)
            fuse_split_sigmoid_backward(net, bwd, bwd_kernel)
        self.fwd, self.bwd, self.bwd_steps = fwd, bwd, bwd_steps

    def _kernels(self, u):
        lay = self.layout
        return kernels.layer_kernels(self.net, self.graph, u, lay.data_rows,
                                     lay.diff_rows, self.xp, self.scratch)


def _nothing(_b, _t):
    return None


def _nothing_back(_t, _pd, _b):
    return None


def _bound(kernel, *args):
    """A forward step calling ``kernel(*args)``."""
    def run(_b, _t):
        kernel(*args)
    return run


def _bound_back(kernel, *args):
    """A backward step calling ``kernel(*args)``."""
    def run(_t, _pd, _b):
        kernel(*args)
    return run


def _fusable(arrays) -> bool:
    """float32 numpy arrays of one shape, C-contiguous, with the compiled
    kernels enabled."""
    return (cpu_kernels.usable(np, *arrays) and arrays[0].dtype == np.float32
            and all(a.flags.c_contiguous and a.shape == arrays[0].shape
                    for a in arrays))


def _kernel_pairs(net, kinds, first: str, second: str):
    """``(i, u, v)`` for neighbouring entries ``i``, ``i + 1`` that are the
    small-layer kernels of a ``first``-type layer ``u`` and a ``second``-type
    layer ``v``."""
    for i in range(len(kinds) - 1):
        u, v = kinds[i], kinds[i + 1]
        if u is not None and v is not None and \
                net.layers_list[u].type == first and net.layers_list[v].type == second:
            yield i, u, v


def fuse_sum_sigmoid(net, fwd, fwd_kernel) -> None:
    """An ``Eltwise`` SUM of two bottoms whose top only a ``Sigmoid`` reads
    next (a vanilla RNN step: ``a = sigmoid(W_x x + W_h h)``), both as
    small-layer kernels: one compiled call writes the sum and the sigmoid
    (the same operations as the two kernels, so the same bits). The
    Sigmoid's entry becomes a no-op; indices are unchanged."""
    for i, u2, u3 in _kernel_pairs(net, fwd_kernel, "Eltwise", "Sigmoid"):
        l2 = net.layers_list[u2]
        if net.bottom_ids[u3] != net.top_ids[u2] or len(net.bottom_vecs[u2]) != 2 \
                or l2.op != 1 or l2.coeffs != [1.0, 1.0]:
            continue
        x0, x1 = (bb.data for bb in net.bottom_vecs[u2])
        z, a = net.top_vecs[u2][0].data, net.top_vecs[u3][0].data
        if not _fusable([x0, x1, z, a]):
            continue
        fwd[i] = (_bound(cpu_kernels.activation_kernel("sum_sigmoid32"), x0, x1, z, a,
                         np.float32(0.5)), fwd[i][1], fwd[i][2])
        fwd[i + 1] = (_nothing, fwd[i + 1][1], fwd[i + 1][2])


def fuse_split_sigmoid_backward(net, bwd, bwd_kernel) -> None:
    """Backward of a two-top ``Split`` of a ``Sigmoid``'s top followed by the
    Sigmoid's backward, both small-layer kernels: one compiled call sums the
    two diffs into the Sigmoid's top diff and writes its bottom diff (the
    same operations as the two kernels, so the same bits)."""
    for i, us, u3 in _kernel_pairs(net, bwd_kernel, "Split", "Sigmoid"):
        if net.bottom_ids[us] != net.top_ids[u3] or len(net.top_vecs[us]) != 2 \
                or not net.bottom_need_backward[us][0] \
                or not net.bottom_need_backward[u3][0]:
            continue
        d0, d1 = (tb.diff for tb in net.top_vecs[us])
        dy, y = net.top_vecs[u3][0].diff, net.top_vecs[u3][0].data
        dx = net.bottom_vecs[u3][0].diff
        if not _fusable([d0, d1, dy, y, dx]):
            continue
        kernel = cpu_kernels.activation_kernel("split_sigmoid_backward")
        bwd[i] = (_bound_back(kernel, d0, d1, dy, y, dx, np.float32(1.0)),
                  *bwd[i][1:])
        bwd[i + 1] = (_nothing_back, *bwd[i + 1][1:])


def pure_loss_forward(layer, losses, sink, xp):
    """Forward of a loss layer that is not reshaped: loss tops keep their
    arrays, so their flat views are taken once."""
    forward, dot = layer.forward, xp.dot
    flats = [(tb.data.reshape(-1), tb.diff.reshape(-1)) for tb, _w in losses]

    def run_pure(b, t):
        forward(b, t)
        for d, g in flats:
            sink.loss += float(dot(d, g))
    return run_pure


def group_kernels(g, pd, xp, backward=True, scratch=None):
    """(forward, backward) for a time-batched group: the small-layer kernels
    over the stacked blobs where there are some, else the representative
    layer's own methods."""
    rep = g.rep
    if rep.type == "InnerProduct" and xp is np:
        kf, kb = kernels.ip_kernels(rep, g.pb, g.pt, pd, backward, scratch,
                                    layer_id=("group", g.members[0]))
        if kf is not None:
            return kf, kb
    return rep.forward, rep.backward


def group_forward(g, forward, xp):
    """The group's forward, after gathering bottoms that are not stacked."""
    gathers = g.gathers
    if not gathers:
        return forward

    def run(pb, pt):
        for blobs, out in gathers:
            xp.stack([b.data for b in blobs], out=out)
        forward(pb, pt)
    return run


def group_backward(g, backward):
    """The group's backward, then scattering diffs of unstacked bottoms."""
    scatters = g.scatters
    if not scatters:
        return backward

    def run(pt, pd, pb):
        backward(pt, pd, pb)
        for blobs, src in scatters:
            for k, b in enumerate(blobs):
                b.diff[...] = src[k]
    return run
