"""Execution plan: a Net compiled into pre-bound steps, with time batching.

The plain way to run a net walks ``net.layers`` and calls each layer's
``Forward`` (reshape, forward, loss) and ``Backward``. For an unrolled recurrent
net most of that time is Python overhead: hundreds of tiny layers, each doing a
reshape, a few attribute look-ups and a small GEMM. The plan removes it.

**Steps.** The plan is a list of ``(callable, bottoms, tops)`` triples with the
layer's bound method and its blob lists resolved once. Layers whose ``reshape``
depends only on bottom shapes and parameters (``_PURE_RESHAPE``) are not
reshaped in steady state; every other layer (data layers, Python layers, …) is
reshaped before each forward as Caffe does, and its top shapes are compared with
the ones the plan was built for. A change stops the plan: the rest of the pass
runs the plain way and the plan is rebuilt on the next call. Loss terms are
computed as ``dot(top.data, top.diff)`` (Caffe's formula) without temporaries.

**Time batching.** In an unrolled net, every step's input projection (and
output projection, and the nonlinearity after it, …) is a separate layer with
the same type, the same parameters (shared by ``ParamSpec.name``) and
bottoms of the same shape, and no member depends on another. Such a group runs
as one layer over blobs stacked along axis 0: one ``(T*N, K) @ (K, H)`` GEMM
instead of T small ones, and one weight-gradient GEMM accumulated into the
shared diff instead of T. The members' top blobs (data and diff) are re-pointed
into the stacked arrays, so producers and consumers read and write them in
place; the members' bottoms are re-pointed too where their producer writes into
its tops, else gathered (forward) and scattered (backward) by copy. Only
layer types whose forward treats axis 0 row by row are batched
(``_ROWWISE``), and layers are re-ordered only as the dependencies allow
(stable topological order, original order as the tie-break).

**Recurrent-path kernels.** InnerProduct, Sigmoid, TanH, Eltwise SUM, Split,
Slice and Concat run as closures over their arrays (NumPy only). A Slice or
Concat whose per-step blobs are the rows of one stack is one transposed copy.
An Eltwise SUM with unit coefficients hands its top diff unchanged to its
bottoms, so where nothing else touches those diffs they share one array and
its backward is dropped. InnerProducts on the recurrent path that share their
parameters compute their weight gradients once, after the last of them, as one
GEMM per run of members whose inputs and output diffs are consecutive stack
rows (no copies).

Results equal the plain loop's up to float32 summation order (tested). Set
``RECAFFE_PLAN=0`` to run every net the plain way.
"""

from __future__ import annotations

import heapq
import os

import numpy as np

from recaffe import backend
from recaffe.blob import Blob

#: Layer types whose reshape depends only on bottom shapes and their params, so
#: that a plan built for fixed input shapes may skip it.
_PURE_RESHAPE = frozenset({
    "AbsVal", "Accuracy", "ArgMax", "BNLL", "Bias", "Clip", "Concat", "ELU",
    "Eltwise", "Embed", "EuclideanLoss", "Exp", "Flatten", "InnerProduct",
    "Log", "Power", "ReLU", "Reduction", "Reshape", "Scale", "Sigmoid",
    "SigmoidCrossEntropyLoss", "Silence", "Slice", "Softmax", "SoftmaxWithLoss",
    "Split", "Swish", "TanH", "Threshold", "Tile", "Dropout", "LSTMUnit",
})

#: Types that point their tops at other blobs' memory (never re-pointed here).
_SHARES_TOPS = frozenset({"Split", "Reshape", "Flatten", "Python", "Squeeze"})


def _axis_ge1(lp, field: str, default_axis: int, ndim: int) -> bool:
    axis = getattr(getattr(lp, field), "axis", default_axis)
    axis = axis + ndim if axis < 0 else axis
    return axis >= 1


#: Types whose forward/backward treat axis 0 row by row (concatenating members
#: along axis 0 gives the same results), with a check of their parameters.
_ROWWISE = {
    "InnerProduct": lambda lp, nd: _axis_ge1(lp, "inner_product_param", 1, nd),
    "Sigmoid": lambda lp, nd: True,
    "TanH": lambda lp, nd: True,
    "ReLU": lambda lp, nd: True,
    "ELU": lambda lp, nd: True,
    "AbsVal": lambda lp, nd: True,
    "BNLL": lambda lp, nd: True,
    "Exp": lambda lp, nd: True,
    "Log": lambda lp, nd: True,
    "Clip": lambda lp, nd: True,
    "Threshold": lambda lp, nd: True,
    "Eltwise": lambda lp, nd: lp.eltwise_param.operation != 2,  # MAX keeps state
    "Embed": lambda lp, nd: True,
    "Softmax": lambda lp, nd: _axis_ge1(lp, "softmax_param", 1, nd),
}


def plan_enabled() -> bool:
    """False when the environment variable ``RECAFFE_PLAN`` is ``0``."""
    return os.environ.get("RECAFFE_PLAN", "1").strip().lower() not in (
        "0", "false", "no", "off")


class ShapeChanged(Exception):  # noqa: N818 - internal control flow
    """A reshaped layer produced other top shapes than the plan was built for."""


def _point(blob: Blob, data=None, diff=None) -> None:
    """Re-point ``blob``'s data and/or diff at flat arrays (contents copied)."""
    if data is not None:
        data[...] = blob.data.reshape(-1)
        blob.set_buffers(data=data)
    if diff is not None:
        if blob.has_diff:
            diff[...] = blob.diff.reshape(-1)
        else:
            diff[...] = 0
        blob.set_buffers(diff=diff)


def _carrier(shape, data2d, diff2d=None) -> Blob:
    """A Blob of ``shape`` whose data (and diff) are the given stacked arrays."""
    b = Blob((), dtype=data2d.dtype)
    b.reshape(shape)
    b.set_buffers(data=data2d.reshape(-1),
                  diff=None if diff2d is None else diff2d.reshape(-1))
    return b


class _Group:
    """A time-batched set of independent layers that share their parameters."""

    def __init__(self, members: list[int]):
        self.members = members
        self.rep = None
        self.pb: list[Blob] = []
        self.pt: list[Blob] = []
        self.gathers: list[tuple[list[Blob], object]] = []  # (member bottoms, 3-D)
        self.scatters: list[tuple[list[Blob], object]] = []


class ExecutionPlan:
    """The compiled form of a :class:`recaffe.net.Net` (see the module doc)."""

    #: One weight-gradient GEMM for InnerProducts on the recurrent path.
    defer_weight_grads = False

    def __init__(self, net, time_batching: bool = True):
        self.net = net
        self.xp = backend.xp()
        net.reshape()  # shapes of the current inputs, before grouping by shape
        n = len(net.layers_list)
        self.producer: dict[int, int] = {}
        self.writers: dict[int, int] = {}
        self.readers: dict[int, list[int]] = {}
        for i in range(n):
            for tid in net.top_ids[i]:
                self.producer.setdefault(tid, i)
                self.writers[tid] = self.writers.get(tid, 0) + 1
            for bid in net.bottom_ids[i]:
                self.readers.setdefault(bid, []).append(i)
        deps = self._dependencies()
        self.groups: list[_Group] = []
        self.chains = []
        if time_batching:
            self.groups = self._find_groups(deps)
        self.order = self._schedule(deps)
        self._layout()
        self._build_steps()

    # -- analysis ------------------------------------------------------------------
    def _dependencies(self) -> list[set[int]]:
        """deps[i]: layers that must run before layer i (RAW, WAW and WAR)."""
        net = self.net
        last_writer: dict[int, int] = {}
        readers: dict[int, list[int]] = {}
        deps: list[set[int]] = []
        for i in range(len(net.layers_list)):
            d: set[int] = set()
            for bid in net.bottom_ids[i]:
                if bid in last_writer:
                    d.add(last_writer[bid])
                readers.setdefault(bid, []).append(i)
            for tid in net.top_ids[i]:
                if tid in last_writer:
                    d.add(last_writer[tid])
                for r in readers.get(tid, ()):
                    if r != i:
                        d.add(r)
                readers[tid] = []
                last_writer[tid] = i
            deps.append(d)
        return deps

    def _signature(self, i: int):
        net = self.net
        layer = net.layers_list[i]
        lp = layer.layer_param
        check = _ROWWISE.get(lp.type)
        if check is None:
            return None
        bids, tids = net.bottom_ids[i], net.top_ids[i]
        if not bids or set(bids) & set(tids):
            return None
        shapes_b = tuple(net.blob_list[b].shape for b in bids)
        shapes_t = tuple(net.blob_list[t].shape for t in tids)
        if any(len(s) == 0 for s in shapes_b + shapes_t):
            return None
        if not check(lp, len(shapes_b[0])):
            return None
        if any(w != 0 for w in layer.loss_weights):
            return None
        if any(self.writers.get(t, 0) != 1 for t in tids):
            return None
        key_lp = type(lp)()
        key_lp.CopyFrom(lp)
        key_lp.ClearField("name")
        key_lp.ClearField("bottom")
        key_lp.ClearField("top")
        params = []
        for j in range(len(layer.blobs)):
            pid = net.param_id_of[(i, j)]
            owner = net.param_owners[pid]
            params.append(pid if owner < 0 else owner)
        return (lp.type, key_lp.SerializeToString(deterministic=True), tuple(params),
                shapes_b, shapes_t, tuple(net.bottom_need_backward[i]),
                net.layer_need_backward[i], tuple(layer.param_propagate_down),
                tuple(net.blob_list[b].dtype for b in bids))

    def _find_groups(self, deps: list[set[int]]) -> list[_Group]:
        net = self.net
        n = len(net.layers_list)
        buckets: dict[object, list[int]] = {}
        for i in range(n):
            sig = self._signature(i)
            if sig is not None:
                buckets.setdefault(sig, []).append(i)
        # ancestors as bitsets (ints), in layer order (deps point backwards).
        anc = [0] * n
        for i in range(n):
            a = 0
            for d in deps[i]:
                a |= anc[d] | (1 << d)
            anc[i] = a
        groups: list[_Group] = []
        self.chains: list[list[int]] = []
        for sig, members in buckets.items():
            if len(members) < 2:
                continue
            if sig[0] == "InnerProduct" and sig[6] and any(sig[7]):
                self.chains.append(members)
            # Keep the members that depend on no other member (greedy, in order).
            chosen: list[int] = []
            mask = 0
            for m in members:
                if anc[m] & mask:
                    continue
                if any(anc[c] >> m & 1 for c in chosen):
                    continue
                chosen.append(m)
                mask |= 1 << m
            if len(chosen) >= 2:
                groups.append(_Group(chosen))
        # Drop groups that make the contracted graph cyclic.
        kept: list[_Group] = []
        for g in groups:
            if self._acyclic(deps, kept + [g]):
                kept.append(g)
        grouped = {m for g in kept for m in g.members}
        self.chains = [c for c in ([m for m in ch if m not in grouped]
                                   for ch in self.chains) if len(c) >= 2]
        return kept

    def _contract(self, deps, groups):
        n = len(deps)
        node = list(range(n))
        for gi, g in enumerate(groups):
            for m in g.members:
                node[m] = n + gi
        cdeps: dict[int, set[int]] = {}
        prio: dict[int, int] = {}
        for i in range(n):
            u = node[i]
            prio[u] = min(prio.get(u, i), i)
            s = cdeps.setdefault(u, set())
            for d in deps[i]:
                if node[d] != u:
                    s.add(node[d])
        return node, cdeps, prio

    def _acyclic(self, deps, groups) -> bool:
        return self._toposort(*self._contract(deps, groups)[1:]) is not None

    @staticmethod
    def _toposort(cdeps, prio):
        users: dict[int, list[int]] = {u: [] for u in cdeps}
        indeg = {u: len(d) for u, d in cdeps.items()}
        for u, d in cdeps.items():
            for v in d:
                users[v].append(u)
        heap = [(prio[u], u) for u, k in indeg.items() if k == 0]
        heapq.heapify(heap)
        out = []
        while heap:
            _, u = heapq.heappop(heap)
            out.append(u)
            for w in users[u]:
                indeg[w] -= 1
                if indeg[w] == 0:
                    heapq.heappush(heap, (prio[w], w))
        return out if len(out) == len(cdeps) else None

    def _schedule(self, deps) -> list[int]:
        """Plan order: layer index i, or -(g+1) for group g."""
        _node, cdeps, prio = self._contract(deps, self.groups)
        order = self._toposort(cdeps, prio)
        n = len(deps)
        return [u if u < n else -(u - n + 1) for u in order]

    # -- memory layout -----------------------------------------------------------
    def _data_root(self, bid: int) -> int:
        net = self.net
        while True:
            p = self.producer.get(bid)
            if p is None or net.layers_list[p].type != "Split":
                return bid
            bid = net.bottom_ids[p][0]

    def _can_point(self, bid: int, kind: str = "data") -> bool:
        net = self.net
        p = self.producer.get(bid)
        if p is None or self.writers.get(bid, 0) != 1:
            return False
        shares = _SHARES_TOPS - {"Split"} if kind == "diff" else _SHARES_TOPS
        if net.layers_list[p].type in shares or bid in net.bottom_ids[p]:
            return False
        return net.layers_list[p].type not in ("Input",)

    def _layout(self) -> None:
        net, xp = self.net, self.xp
        data_at: dict[int, tuple[int, int]] = {}   # blob -> (stack id, position)
        diff_at: dict[int, tuple[int, int]] = {}
        stacks: list[object] = []

        def new_stack(T, count, dtype):
            stacks.append(xp.zeros((T, count), dtype=dtype))
            return len(stacks) - 1

        def stacked(ids, table, kind):
            """Stack id holding ``ids`` at positions 0..T-1, pointing them if needed."""
            T = len(ids)
            blob0 = net.blob_list[ids[0]]
            hit = [table.get(b) for b in ids]
            if hit[0] is not None:
                sid = hit[0][0]
                if all(h == (sid, k) for k, h in enumerate(hit)) and \
                        stacks[sid].shape[0] == T:
                    return sid
                return None
            if any(h is not None for h in hit):
                return None
            if len(set(ids)) != T or not all(self._can_point(b, kind) for b in ids):
                return None
            sid = new_stack(T, blob0.count, blob0.dtype)
            for k, b in enumerate(ids):
                table[b] = (sid, k)
                if kind == "data":
                    _point(net.blob_list[b], data=stacks[sid][k])
                else:
                    _point(net.blob_list[b], diff=stacks[sid][k])
            return sid

        for g in self.groups:
            # Stack the members in the order their consumers run (time order
            # in an unrolled net), whatever order the layers were listed in.
            def consumer_key(m):
                after = [r for t in net.top_ids[m] for r in self.readers.get(t, ())]
                return (min(after) if after else len(net.layers_list), m)
            g.members.sort(key=consumer_key)
            ms = g.members
            T = len(ms)
            rep = net.layers_list[ms[0]]
            g.rep = rep
            # tops: always owned by the members.
            for j in range(len(net.top_ids[ms[0]])):
                ids = [net.top_ids[m][j] for m in ms]
                b0 = net.blob_list[ids[0]]
                shape = (T * b0.shape[0],) + b0.shape[1:]
                sd = stacked(ids, data_at, "data")
                sg = stacked(ids, diff_at, "diff")
                if sd is None or sg is None:  # cannot happen for owned tops
                    raise RuntimeError("plan: could not stack group tops")
                g.pt.append(_carrier(shape, stacks[sd], stacks[sg]))
            for j in range(len(net.bottom_ids[ms[0]])):
                ids = [net.bottom_ids[m][j] for m in ms]
                b0 = net.blob_list[ids[0]]
                shape = (T * b0.shape[0],) + b0.shape[1:]
                roots = [self._data_root(b) for b in ids]
                sd = stacked(roots, data_at, "data")
                need_diff = net.bottom_need_backward[ms[0]][j]
                sg = stacked(ids, diff_at, "diff") if need_diff else None
                data3 = stacks[sd] if sd is not None else xp.zeros(
                    (T, b0.count), dtype=b0.dtype)
                diff3 = stacks[sg] if sg is not None else xp.zeros(
                    (T, b0.count), dtype=b0.dtype)
                blobs = [net.blob_list[b] for b in ids]
                if sd is None:
                    g.gathers.append((blobs, data3.reshape((T,) + b0.shape)))
                if need_diff and sg is None:
                    g.scatters.append((blobs, diff3.reshape((T,) + b0.shape)))
                g.pb.append(_carrier(shape, data3, diff3))
        self.aliased_sums: set[int] = set()
        for u in range(len(net.layers_list)):
            ids = self._sum_alias_ids(u)
            if ids is None:
                continue
            in_stack = [i for i in ids if i in diff_at]
            if len(in_stack) > 1:
                continue
            if in_stack:
                sid, k = diff_at[in_stack[0]]
                target = stacks[sid][k]
            else:
                target = net.blob_list[ids[0]].diff.reshape(-1)
            for i in ids:
                if in_stack and i != in_stack[0]:
                    diff_at[i] = diff_at[in_stack[0]]
                net.blob_list[i].set_buffers(diff=target)
            self.aliased_sums.add(u)
        # Where each re-pointed blob's data / diff lives: (stack, row).
        self.data_rows = {b: (stacks[sid], k) for b, (sid, k) in data_at.items()}
        self.diff_rows = {b: (stacks[sid], k) for b, (sid, k) in diff_at.items()}
        # Re-share aliases (Split/Reshape/Flatten tops) onto the new memory.
        net.reshape()
        self.sync()

    def _sum_alias_ids(self, u: int):
        """[top, bottoms...] of an Eltwise SUM with unit coefficients whose
        diffs may share one array: its backward hands the top diff unchanged
        to each bottom, which no other layer reads or writes. None otherwise."""
        net = self.net
        layer = net.layers_list[u]
        if layer.type != "Eltwise" or getattr(layer, "op", None) != 1:
            return None
        bids, tids = net.bottom_ids[u], net.top_ids[u]
        if len(tids) != 1 or len(bids) < 2 or len(set(bids)) != len(bids) or \
                tids[0] in bids or list(layer.coeffs) != [1.0] * len(bids):
            return None
        if not net.layer_need_backward[u] or not all(net.bottom_need_backward[u]):
            return None
        if any(w != 0 for w in layer.loss_weights) or \
                any(u in g.members for g in self.groups):
            return None
        ids = [tids[0], *bids]
        blob0 = net.blob_list[ids[0]]
        for i in ids:
            blob = net.blob_list[i]
            if blob.shape != blob0.shape or blob.dtype != blob0.dtype or \
                    self.writers.get(i, 0) != 1 or not self._can_point(i, "diff"):
                return None
        if any(self.readers.get(b, []) != [u] for b in bids):
            return None
        return ids

    def sync(self) -> None:
        """Point every group's layer state at the stacked blobs again."""
        for g in self.groups:
            g.rep.reshape(g.pb, g.pt)

    # -- steps -----------------------------------------------------------------------
    def _build_steps(self) -> None:
        net = self.net
        fwd, bwd = [], []
        bwd_steps: list[int] = []
        self.watch: list[tuple[Blob, tuple]] = []
        chain_bwd: dict[int, object] = {}
        self.row_chains: list[list[int]] = []
        for members in self.chains:
            rows = self._chain_rows_backward(members)
            if rows is not None:
                chain_bwd.update(rows)
                self.row_chains.append(members)
            elif self.defer_weight_grads:
                chain_bwd.update(self._chain_backward(members))
        for u in self.order:
            if u < 0:
                g = self.groups[-u - 1]
                pd = list(net.bottom_need_backward[g.members[0]])
                kf, kb = self._group_kernels(g, pd)
                fwd.append((self._group_forward(g, kf), g.pb, g.pt))
                if net.layer_need_backward[g.members[0]]:
                    bwd.append((self._group_backward(g, kb), g.pt, pd, g.pb))
                    bwd_steps.append(len(fwd) - 1)
                continue
            layer = net.layers_list[u]
            b, t = net.bottom_vecs[u], net.top_vecs[u]
            losses = [(tb, w) for tb, w in zip(t, layer.loss_weights, strict=False)
                      if w != 0]
            pure = layer.type in _PURE_RESHAPE
            if not pure:
                self.watch.extend((tb, tb.shape) for tb in t)
            kf, kb = self._kernels(u) if pure and not losses else (None, None)
            if kf is not None:
                fwd.append((kf, b, t))
            elif pure and not losses:
                fwd.append((layer.forward, b, t))
            else:
                fwd.append((self._wrapped_forward(layer, pure, losses), b, t))
            if net.layer_need_backward[u] and u not in self.aliased_sums:
                f = chain_bwd.get(u) or (kb if kf is not None else None)
                f = f or layer.backward
                bwd.append((f, t, net.bottom_need_backward[u], b))
                bwd_steps.append(len(fwd) - 1)
        bwd.reverse()
        bwd_steps.reverse()
        self.fwd, self.bwd = fwd, bwd
        #: for each backward entry, the index of its step in ``self.fwd``
        self.bwd_steps = bwd_steps
        self.loss = 0.0

    def _wrapped_forward(self, layer, pure, losses):
        plan = self
        dot = self.xp.dot
        shapes = [tb.shape for tb in layer_tops(self.net, layer)] if not pure else None
        reshape, forward = layer.reshape, layer.forward
        if pure:
            # Loss tops keep their arrays (the layer is not reshaped).
            flats = [(tb.data.reshape(-1), tb.diff.reshape(-1)) for tb, _w in losses]

            def run_pure(b, t):
                forward(b, t)
                for d, g in flats:
                    plan.loss += float(dot(d, g))
            return run_pure

        def run(b, t):
            reshape(b, t)
            forward(b, t)
            for tb, _w in losses:
                d = tb.data.reshape(-1)
                plan.loss += float(dot(d, tb.diff.reshape(-1)))
            for k, tb in enumerate(t):
                if tb.shape != shapes[k]:
                    raise ShapeChanged
        return run

    def _group_kernels(self, g: _Group, pd):
        """(forward, backward) for a time-batched group: the small-layer
        kernels over the stacked blobs where there are some, else the
        representative layer's own methods."""
        rep = g.rep
        if rep.type == "InnerProduct" and self.xp is np:
            kf, kb = self._ip_kernels(rep, g.pb, g.pt, pd)
            if kf is not None:
                return kf, kb
        return rep.forward, rep.backward

    def _group_forward(self, g: _Group, forward):
        xp = self.xp
        gathers = g.gathers
        if not gathers:
            return forward

        def run(pb, pt):
            for blobs, out in gathers:
                xp.stack([b.data for b in blobs], out=out)
            forward(pb, pt)
        return run

    def _group_backward(self, g: _Group, backward):
        scatters = g.scatters
        if not scatters:
            return backward

        def run(pt, pd, pb):
            backward(pt, pd, pb)
            for blobs, src in scatters:
                for k, b in enumerate(blobs):
                    b.diff[...] = src[k]
        return run

    def _kernels(self, u: int):
        """Pre-bound (forward, backward) for the small layers of a recurrent
        loop, with the blob arrays resolved once; (None, None) where the layer's
        own methods are used. Parameters are read from their blobs at each call
        (the solver and weight sharing may re-point them)."""
        net, xp = self.net, self.xp
        layer = net.layers_list[u]
        b, t = net.bottom_vecs[u], net.top_vecs[u]
        if xp is not np or any(
                net.layers_list[self.producer[x]].type == "Python"
                for x in net.bottom_ids[u] if x in self.producer):
            return None, None
        if set(net.bottom_ids[u]) & set(net.top_ids[u]):
            return None, None
        typ = layer.type
        pd = net.bottom_need_backward[u]
        if typ == "InnerProduct":
            return self._ip_kernels(layer, b, t, pd)
        if typ in ("Slice", "Concat"):
            return self._slice_kernels(u, layer, b, t, pd)
        if typ == "Sigmoid" or typ == "TanH":
            x, y = b[0].data, t[0].data
            dy, dx = t[0].diff, (b[0].diff if pd[0] else None)
            scratch = np.empty_like(y)
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

                def bwd(_t, _pd, _b):
                    if dx is not None:  # dy * y * (1 - y)
                        subtract(one, y, out=scratch)
                        multiply(scratch, y, out=scratch)
                        multiply(dy, scratch, out=dx)
            else:
                def fwd(_b, _t):
                    tanh(x, out=y)

                def bwd(_t, _pd, _b):
                    if dx is not None:  # dy * (1 - y^2)
                        multiply(y, y, out=scratch)
                        subtract(one, scratch, out=scratch)
                        multiply(dy, scratch, out=dx)
            return fwd, bwd
        if typ == "Eltwise" and len(b) == 2 and layer.op == 1 and \
                layer.coeffs == [1.0, 1.0]:
            x0, x1, y = b[0].data, b[1].data, t[0].data
            dy = t[0].diff
            dxs = [bb.diff for bb, p in zip(b, pd, strict=True) if p]

            def fwd(_b, _t):
                np.add(x0, x1, out=y)

            def bwd(_t, _pd, _b):
                for dx in dxs:
                    np.copyto(dx, dy)
            return fwd, bwd
        if typ == "Split" and len(t) == 2:
            dx = b[0].diff if pd[0] else None
            d0, d1 = t[0].diff, t[1].diff

            def bwd(_t, _pd, _b):
                if dx is not None:
                    np.add(d0, d1, out=dx)
            return (lambda _b, _t: None), bwd
        return None, None

    def _ip_kernels(self, layer, b, t, pd):
        M, K, N = layer.M, layer.K, layer.N
        x = b[0].data.reshape(M, K)
        y = t[0].data.reshape(M, N)
        dy = t[0].diff.reshape(M, N)
        dx = b[0].diff.reshape(M, K) if pd[0] else None
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
        add_bias = _bias_adder(y, M, N) if bias else None

        def fwd(_b, _t):
            w = blobs[0].data
            dot(x, w if transpose else w.T, out=y)
            if bias:
                add_bias(blobs[1].data)

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
            if dx is not None:
                w = blobs[0].data
                dot(dy, w.T if transpose else w, out=dx)
        return fwd, bwd

    def _slice_kernels(self, u: int, layer, b, t, pd):
        """Slice (forward) and Concat (``concat=True``, its mirror image): one
        copy through a transposed view when the per-step blobs are the rows of
        one stack, else one copy per section."""
        net = self.net
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
        st = stacked(self.data_rows, whole.data)
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
            st = stacked(self.diff_rows, whole.diff) if all(need) else None
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

    def _chain_backward(self, members: list[int]) -> dict[int, object]:
        """InnerProduct layers on the recurrent path that share their params.

        They depend on each other, so their forward stays a loop, but their
        weight (and bias) gradients need no loop: each member's backward only
        computes its bottom diff, and the one that runs last in the backward
        pass accumulates ``sum_t dY_t^T X_t`` as a single GEMM over stacked
        ``dY`` and ``X``.
        """
        net, xp = self.net, self.xp
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
        order = sorted(members, key=self.order_index)
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

    def _chain_rows_backward(self, members: list[int]):
        """Like :meth:`_chain_backward`, without copies: where consecutive
        members' inputs and output diffs are consecutive rows of stacks (the
        layout above), their weight gradients are one GEMM over those rows.
        None when no two members line up so (or not on the host)."""
        net = self.net
        if self.xp is not np:
            return None
        rep = net.layers_list[members[0]]
        M, K, N = rep.M, rep.K, rep.N
        transpose, bias = rep.transpose, rep.bias_term
        ppd = list(rep.param_propagate_down)
        w_grad, b_grad = bool(ppd and ppd[0]), bool(bias and ppd[1])
        blobs = rep.blobs
        order = sorted(members, key=self.order_index)
        pairs = []  # (x rows, dy rows, x array, dy array) per member, forward order
        for m in order:
            xb, yb = net.bottom_ids[m][0], net.top_ids[m][0]
            x = net.blob_list[xb].data
            dy = net.blob_list[yb].diff
            if x.dtype != dy.dtype or x.dtype != blobs[0].data.dtype:
                return None
            xr = self.data_rows.get(self._data_root(xb))
            if xr is not None and not np.shares_memory(xr[0][xr[1]], x):
                xr = None
            pairs.append((xr, self.diff_rows.get(yb), x.reshape(M, K),
                          dy.reshape(M, N)))
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

            def run(_t, _pd, _b):
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

    def order_index(self, layer_id: int) -> int:
        if not hasattr(self, "_pos"):
            self._pos = {}
            for k, u in enumerate(self.order):
                for m in (self.groups[-u - 1].members if u < 0 else [u]):
                    self._pos[m] = k
        return self._pos[layer_id]

    # -- running ---------------------------------------------------------------------
    def forward(self) -> tuple[float, int]:
        """Run all steps; returns (loss, -1), or (loss so far, step index) when a
        layer's top shapes changed at that step (the caller finishes the pass)."""
        self.loss = 0.0
        k = 0
        try:
            for k, (f, b, t) in enumerate(self.fwd):  # noqa: B007
                f(b, t)
        except ShapeChanged:
            return self.loss, k
        return self.loss, -1

    def backward(self) -> None:
        for f, t, pd, b in self.bwd:
            f(t, pd, b)

    def executed_layers(self, upto: int) -> set[int]:
        """Layer indices run by steps 0..upto (inclusive)."""
        done: set[int] = set()
        for u in self.order[: upto + 1]:
            if u < 0:
                done.update(self.groups[-u - 1].members)
            else:
                done.add(u)
        return done

    def shapes_valid(self) -> bool:
        """Cheap check that the watched (reshaped-every-time) tops kept shape."""
        return all(b.shape == s for b, s in self.watch)

    def timed_pass(self, sync=lambda: None) -> tuple[list[float], list[float]]:
        """One forward and one backward, timed per step: (forward seconds per
        step, backward seconds per step; 0 where a step has no backward)."""
        from time import perf_counter  # noqa: PLC0415

        fwd_t = [0.0] * len(self.fwd)
        bwd_t = [0.0] * len(self.fwd)
        self.loss = 0.0
        for k, (f, b, t) in enumerate(self.fwd):
            t0 = perf_counter()
            f(b, t)
            sync()
            fwd_t[k] = perf_counter() - t0
        for (f, t, pd, b), k in zip(self.bwd, self.bwd_steps, strict=True):
            t0 = perf_counter()
            f(t, pd, b)
            sync()
            bwd_t[k] = perf_counter() - t0
        return fwd_t, bwd_t

    def describe(self) -> str:
        """One line per step (for logs and tests)."""
        net = self.net
        lines = []
        for u in self.order:
            if u < 0:
                g = self.groups[-u - 1]
                names = [net.layer_names[m] for m in g.members]
                lines.append(f"batched {net.layers_list[g.members[0]].type} x"
                             f"{len(names)}: {names[0]} .. {names[-1]}")
            else:
                lines.append(f"{net.layers_list[u].type} {net.layer_names[u]}")
        return "\n".join(lines)


def _bias_adder(y, M: int, N: int):
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


def layer_tops(net, layer) -> list[Blob]:
    return net.top_vecs[net.layers_list.index(layer)]
