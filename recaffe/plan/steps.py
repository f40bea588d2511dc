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

from recaffe.plan import kernels
from recaffe.plan.watch import PURE_RESHAPE, ShapeWatch, reshaping_forward


class Steps:
    """``fwd``, ``bwd`` (in backward order), ``bwd_steps`` (for each backward
    entry, the index of its step in ``fwd``) and the shape ``watch``."""

    def __init__(self, net, graph, order, groups, layout, xp, chain_bwd, sink):
        self.net, self.graph, self.xp = net, graph, xp
        self.layout = layout
        fwd, bwd = [], []
        bwd_steps: list[int] = []
        self.watch = ShapeWatch()
        for u in order:
            if u < 0:
                g = groups[-u - 1]
                pd = list(net.bottom_need_backward[g.members[0]])
                kf, kb = group_kernels(g, pd, xp,
                                       bool(net.layer_need_backward[g.members[0]]))
                fwd.append((group_forward(g, kf, xp), g.pb, g.pt))
                if net.layer_need_backward[g.members[0]]:
                    bwd.append((group_backward(g, kb), g.pt, pd, g.pb))
                    bwd_steps.append(len(fwd) - 1)
                continue
            layer = net.layers_list[u]
            b, t = net.bottom_vecs[u], net.top_vecs[u]
            if u in layout.viewed_slices:  # its tops are views: nothing to do
                fwd.append((_nothing, b, t))
                continue
            losses = [(tb, w) for tb, w in zip(t, layer.loss_weights, strict=False)
                      if w != 0]
            pure = layer.type in PURE_RESHAPE
            if not pure:
                self.watch.add(t)
            kf, kb = self._kernels(u) if pure and not losses else (None, None)
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
                f = f or layer.backward
                bwd.append((f, t, net.bottom_need_backward[u], b))
                bwd_steps.append(len(fwd) - 1)
        bwd.reverse()
        bwd_steps.reverse()
        self.fwd, self.bwd, self.bwd_steps = fwd, bwd, bwd_steps

    def _kernels(self, u):
        lay = self.layout
        return kernels.layer_kernels(self.net, self.graph, u, lay.data_rows,
                                     lay.diff_rows, self.xp)


def _nothing(_b, _t):
    return None


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


def group_kernels(g, pd, xp, backward=True):
    """(forward, backward) for a time-batched group: the small-layer kernels
    over the stacked blobs where there are some, else the representative
    layer's own methods."""
    rep = g.rep
    if rep.type == "InnerProduct" and xp is np:
        kf, kb = kernels.ip_kernels(rep, g.pb, g.pt, pd, backward)
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
