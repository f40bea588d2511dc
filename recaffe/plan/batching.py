"""Time batching: which layers run as one stacked layer, and in which order.

In an unrolled net, every step's input projection (and output projection, and
the nonlinearity after it, …) is a separate layer with the same type, the same
parameters (shared by ``ParamSpec.name``) and bottoms of the same shape, and no
member depends on another. :func:`find_groups` collects such sets
(:class:`Group`); only layer types whose forward treats axis 0 row by row are
batched (``ROWWISE``). :func:`schedule` orders the layers and groups as the
dependencies allow (stable topological order, original order as the
tie-break). The memory the groups run on is laid out by :mod:`.layout`.
"""

from __future__ import annotations

import heapq

from recaffe.blob import Blob


def _axis_ge1(lp, field: str, default_axis: int, ndim: int) -> bool:
    axis = getattr(getattr(lp, field), "axis", default_axis)
    axis = axis + ndim if axis < 0 else axis
    return axis >= 1


#: Types whose forward/backward treat axis 0 row by row (concatenating members
#: along axis 0 gives the same results), with a check of their parameters.
ROWWISE = {
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


class Group:
    """A time-batched set of independent layers that share their parameters."""

    def __init__(self, members: list[int]):
        self.members = members
        self.rep = None
        self.pb: list[Blob] = []
        self.pt: list[Blob] = []
        self.gathers: list[tuple[list[Blob], object]] = []  # (member bottoms, 3-D)
        self.scatters: list[tuple[list[Blob], object]] = []


def signature(net, graph, i: int):
    """What layer ``i`` must share with another to be batched with it (type,
    parameters, shapes, gradient needs), or None if it cannot be batched."""
    layer = net.layers_list[i]
    lp = layer.layer_param
    check = ROWWISE.get(lp.type)
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
    if any(graph.writers.get(t, 0) != 1 for t in tids):
        return None
    key_lp = type(lp)()
    key_lp.CopyFrom(lp)
    key_lp.ClearField("name")
    key_lp.ClearField("bottom")
    key_lp.ClearField("top")
    params = [net.param_owner(i, j) for j in range(len(layer.blobs))]
    return (lp.type, key_lp.SerializeToString(deterministic=True), tuple(params),
            shapes_b, shapes_t, tuple(net.bottom_need_backward[i]),
            net.layer_need_backward[i], tuple(layer.param_propagate_down),
            tuple(net.blob_list[b].dtype for b in bids))


def find_groups(net, graph, deps, exclude=frozenset()) -> tuple[list[Group],
                                                               list[list[int]]]:
    """(groups, chains): the time-batched groups, and the sets of InnerProducts
    that share parameters and need weight gradients but depend on each other
    (the recurrent path; their weight gradients may still be batched). Layers
    in ``exclude`` join no group."""
    n = len(net.layers_list)
    buckets: dict[object, list[int]] = {}
    for i in range(n):
        sig = signature(net, graph, i)
        if sig is not None:
            buckets.setdefault(sig, []).append(i)
    # ancestors as bitsets (ints), in layer order (deps point backwards).
    anc = [0] * n
    for i in range(n):
        a = 0
        for d in deps[i]:
            a |= anc[d] | (1 << d)
        anc[i] = a
    groups: list[Group] = []
    chains: list[list[int]] = []
    for sig, members in buckets.items():
        if len(members) < 2:
            continue
        if sig[0] == "InnerProduct" and sig[6] and any(sig[7]):
            chains.append(members)
        # Keep the members that depend on no other member (greedy, in order).
        chosen: list[int] = []
        mask = 0
        for m in members:
            if m in exclude or anc[m] & mask:
                continue
            if any(anc[c] >> m & 1 for c in chosen):
                continue
            chosen.append(m)
            mask |= 1 << m
        if len(chosen) >= 2:
            groups.append(Group(chosen))
    # Drop groups that make the contracted graph cyclic.
    kept: list[Group] = []
    for g in groups:
        if runs_fit(deps, kept + [g]):
            kept.append(g)
    grouped = {m for g in kept for m in g.members}
    chains = [c for c in ([m for m in ch if m not in grouped] for ch in chains)
              if len(c) >= 2]
    return kept, chains


def contract(deps, sets):
    """(node of each layer, dependencies between nodes, priority of each node)
    of the graph where each set of layers (a group's members) is one node."""
    n = len(deps)
    node = list(range(n))
    for gi, members in enumerate(sets):
        for m in members:
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


def toposort(cdeps, prio):
    """Stable topological order (lowest priority first), None if cyclic."""
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


def schedule(deps, groups, runs=()) -> list[int]:
    """Plan order: layer index i, or -(g+1) for group g. The layers of each
    of ``runs`` (lists of layer indices) come one after another, in their
    own order."""
    _node, cdeps, prio = contract(deps, _node_sets(groups, runs))
    order = toposort(cdeps, prio)
    n, ng = len(deps), len(groups)
    out: list[int] = []
    for u in order:
        if u < n:
            out.append(u)
        elif u - n < ng:
            out.append(-(u - n + 1))
        else:
            out.extend(sorted(runs[u - n - ng]))
    return out


def runs_fit(deps, groups, runs=()) -> bool:
    """Whether every group and the layers of every run can each come as one
    node (no layer outside one both depends on it and feeds it)."""
    return toposort(*contract(deps, _node_sets(groups, runs))[1:]) is not None


def _node_sets(groups, runs) -> list[list[int]]:
    """The layer sets that :func:`contract` makes single nodes: each group's
    members, then each run."""
    return [g.members for g in groups] + [list(r) for r in runs]
