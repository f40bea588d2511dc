"""Buffer sharing: blobs whose values no later step needs share memory.

Off by default (``Net.share_buffers``, or ``RECAFFE_SHARE_BUFFERS=1`` for every
net): with it on, the plan gives blobs whose lifetimes do not overlap one
array. In an unrolled LSTM every step's ``h W_hc^T`` and gate input are read
once, in the same step's forward, and never by the backward, so all steps of
a layer can use one array each instead of T; the per-step diffs of ``h`` and
``c`` are written and read within one step of the backward, and share too.

What it changes: after a pass, a shared blob holds the values of whichever
step last wrote its array, not its own. Net outputs, loss tops, net inputs,
parameters, every blob a backward reads (here or later) and every blob a
script has looked up in ``net.blobs`` (a state carry's final states, say:
``keep``) keep their own memory; looking up a blob the last pass shared
raises a NetError once and keeps it from then on. Shapes and the results of
forward and backward are unchanged (the same operations on the same values;
tested bit for bit).

**Lifetimes.** The plan's forward steps are positions ``0 .. F-1`` and its
backward steps ``F .. 2F-1`` (the reverse order). A blob's *data* lives from
the step that writes it to the last step that reads it: a consumer's forward,
and the backward of a consumer or producer that reads it there
(:data:`BACKWARD_READS`). A blob's *diff* lives from its consumers' backward
(which write it whole) to its producer's backward (which reads it). Data and
diffs have separate pools, so a second backward after one forward sees the
same values as the first. Each lifetime starts one step early: two
neighbouring kernels may run as one call (:mod:`.steps`).

**Candidates.** A blob (with the Split tops sharing its data) whose producer
and consumers all have known reads (:data:`BACKWARD_READS`), that owns its
whole array (not a row of a stack, not a view), has one writer, no loss
weight, a consumer (else it is an output) and a producer other than an Input;
not touching a time-batched group or a weight-gradient chain (their kernels
read at other steps). Anything else keeps its array.

**Leaving the plan.** Running layers the plain way (a changed shape
mid-pass, a partial ``forward(start=...)``, callbacks, a device switch)
first gives every shared blob its own copy of its array again
(:meth:`Sharing.undo`): the blobs alive at that point keep their values.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys

import numpy as np

from recaffe.backend import cpu_kernels

#: A backward that reads no bottom's and no top's data.
_NO_READS = (frozenset(), frozenset())


def _bottoms(layer, net, u):
    return frozenset(range(len(net.bottom_ids[u]))), frozenset()


def _lstm_unit(layer, net, u):
    # The compiled kernels keep the activations and tanh(c) from the
    # forward: the backward reads c_prev and cont only. The numpy path
    # recomputes from the gate input and reads the top c too.
    b, t = net.bottom_vecs[u], net.top_vecs[u]
    arrays = [b[0].data, b[1].data, b[2].data, t[0].data, t[1].data]
    if cpu_kernels.usable(np, *arrays):
        return frozenset({0, 2}), frozenset()
    return frozenset({0, 1, 2}), frozenset({0})


def _eltwise(layer, net, u):
    return _NO_READS if layer.op == 1 else None  # SUM only


#: For each layer type: ``f(layer, net, u)`` -> (indices of the bottoms, of
#: the tops) whose data its backward reads, or None when not known. Every
#: type listed writes (never accumulates into) the bottom diffs it
#: propagates to, and reads nothing but its own blobs.
BACKWARD_READS = {
    "InnerProduct": lambda layer, net, u: (frozenset({0}), frozenset()),
    "Eltwise": _eltwise,
    "Scale": _bottoms,
    "LSTMUnit": _lstm_unit,
    "Split": lambda layer, net, u: _NO_READS,
    "Concat": lambda layer, net, u: _NO_READS,
    "Slice": lambda layer, net, u: _NO_READS,
    "Sigmoid": lambda layer, net, u: (frozenset(), frozenset({0})),
    "TanH": lambda layer, net, u: (frozenset(), frozenset({0})),
    "ReLU": _bottoms,
}


def _root(arr):
    while isinstance(getattr(arr, "base", None), np.ndarray):
        arr = arr.base
    return arr


def _buf(blob, kind):
    """The blob's data (``kind`` "data") or diff buffer (None: not made yet)."""
    return blob._dbuf if kind == "data" else blob._gbuf


def _set_buf(blob, kind, buf) -> None:
    blob.set_buffers(**{kind: buf})


class Sharing:
    """The shared arrays of one plan: ``groups`` lists ``(kind, array,
    blobs)`` for every set of blobs pointed at a shared array."""

    def __init__(self):
        self.groups: list[tuple[str, object, list]] = []
        #: Blob ids whose data / diff may hold another blob's values.
        self.data_ids: set[int] = set()
        self.diff_ids: set[int] = set()
        self.active = False

    def ids(self, kind: str) -> set[int]:
        """The blob ids whose data (``kind`` "data") or diff is shared."""
        return self.data_ids if kind == "data" else self.diff_ids

    def point(self, net, kind: str, ids, buf) -> None:
        """Point blobs ``ids``' data or diff at ``buf``, recorded as shared."""
        blobs = [net.blob_list[b] for b in ids]
        for b in blobs:
            _set_buf(b, kind, buf)
        self.groups.append((kind, buf, blobs))
        self.ids(kind).update(ids)

    def undo(self) -> None:
        """Give every shared blob its own array again, a copy of the shared
        one (the blob alive now keeps its values)."""
        if not self.active:
            return
        self.active = False
        for kind, buf, blobs in self.groups:
            # (A blob reshaped larger since has a new array of its own.)
            mine = [b for b in blobs if _buf(b, kind) is buf]
            if not mine:
                continue
            own = buf[: max(b.count for b in mine)].copy()
            for b in mine:
                _set_buf(b, kind, own)


def plan_sharing(net, graph, order, groups, chains, xp, keep=frozenset(),
                 dead=frozenset()) -> Sharing:
    """Work out and apply the sharing for a plan (see the module text); the
    blob ids in ``keep`` keep their arrays. No step touches the blobs in
    ``dead`` (the insides of a recurrence run as one step, :mod:`.sequence`):
    they share one array per size and count as shared."""
    sharing = Sharing()
    if xp is not np:
        return sharing
    nlayers = len(net.layers_list)
    F = len(order)
    fpos = [0] * nlayers
    for k, unit in enumerate(order):
        for m in (groups[-unit - 1].members if unit < 0 else [unit]):
            fpos[m] = k

    # Time-batched members' blobs are stacked or gathered: they stay put.
    fixed = {m for g in groups for m in g.members}
    # Chain members' weight gradients may run after the last member's
    # backward: what they read (bottom data, top diff) lives to the end.
    late = {m for members in chains for m in members}

    def bpos(u, read=True, _late=late):
        """Backward position of layer ``u``'s reads (``read``) or writes."""
        return 2 * F - 1 if read and u in _late else 2 * F - 1 - fpos[u]

    reads = {}
    for u, layer in enumerate(net.layers_list):
        f = BACKWARD_READS.get(layer.type)
        reads[u] = None if f is None or u in fixed else f(layer, net, u)

    def known(u):
        return reads.get(u) is not None

    # Data: one entry per array (a blob and the Split tops sharing it).
    by_root: dict[int, list[int]] = {}
    for bid, blob in enumerate(net.blob_list):
        by_root.setdefault(id(_root(blob._dbuf)), []).append(bid)
    data_spans = []
    dead_data, dead_diff = [], []
    for ids in by_root.values():
        if keep.intersection(ids):
            continue
        if dead.issuperset(ids):
            dead_data.extend(_alias_sets(net, ids, "data"))
            continue
        span = _data_span(net, graph, ids, reads, known, fpos, bpos)
        if span is not None:
            data_spans.append((span, ids))
    # Diffs: only arrays no other blob points into (Eltwise SUMs and stacks
    # hand theirs around).
    diff_roots: dict[int, list[int]] = {}
    for bid, blob in enumerate(net.blob_list):
        if blob._gbuf is not None:
            diff_roots.setdefault(id(_root(blob._gbuf)), []).append(bid)
    for ids in diff_roots.values():
        if dead.issuperset(ids) and not keep.intersection(ids):
            dead_diff.extend(_alias_sets(net, ids, "diff"))
    diff_spans = []
    for bid, blob in enumerate(net.blob_list):
        if bid in dead or bid in keep or (
                blob._gbuf is not None and len(diff_roots[id(_root(blob._gbuf))]) != 1):
            continue
        span = _diff_span(net, graph, bid, reads, known, bpos)
        if span is not None:
            diff_spans.append((span, [bid]))
    for kind, spans in (("data", data_spans), ("diff", diff_spans)):
        _assign(net, graph, kind, spans, sharing)
    _drop(net, "data", dead_data, sharing)
    _drop(net, "diff", dead_diff, sharing)
    # Dead blobs whose arrays stay (views, stacks) hold stale values too.
    sharing.data_ids.update(dead)
    sharing.diff_ids.update(dead)
    sharing.active = bool(sharing.groups or dead)
    if sharing.groups:
        release_freed_memory()
    return sharing


def release_freed_memory() -> None:
    """Hand memory the C allocator holds free back to the system (glibc's
    ``malloc_trim``; nothing elsewhere). The arrays the shared blobs gave up
    were touched when the net was built, and freed heap memory otherwise
    stays resident."""
    global _trim
    if _trim is None:
        _trim = False
        with contextlib.suppress(Exception):
            if sys.platform.startswith("linux"):
                _trim = ctypes.CDLL(None).malloc_trim
    if _trim:
        _trim(0)


_trim = None


def _owned(blob, kind) -> bool:
    buf = _buf(blob, kind)
    if buf is None:
        return kind == "diff"  # allocated later, as this blob's own
    return buf.base is None and buf.size == blob.count and blob.count > 0


def _data_span(net, graph, ids, reads, known, fpos, bpos):
    """(first, last) step of the array's data, or None if it must stay."""
    blobs = [net.blob_list[b] for b in ids]
    if not _owned(blobs[0], "data") or any(b._dbuf is not blobs[0]._dbuf
                                            for b in blobs):
        return None
    first, last = None, None
    for bid in ids:
        p = graph.producer.get(bid)
        readers = graph.readers.get(bid, [])
        if p is None or not readers or graph.writers.get(bid, 0) != 1 \
                or not known(p) or _loss_top(net, p, bid):
            return None
        if net.layers_list[p].type == "Split":
            if net.bottom_ids[p][0] not in ids:
                return None  # (cannot happen: a Split's tops are its bottom's)
        else:
            first = fpos[p] if first is None else min(first, fpos[p])
        last = max(last or 0, fpos[p])
        if net.layer_need_backward[p] and \
                net.top_ids[p].index(bid) in reads[p][1]:
            last = max(last, bpos(p))
        for r in readers:
            if not known(r):
                return None
            pos = fpos[r]
            if net.layer_need_backward[r] and any(
                    b == bid and k in reads[r][0]
                    for k, b in enumerate(net.bottom_ids[r])):
                pos = bpos(r)
            last = max(last, pos)
    if first is None:
        return None
    return max(first - 1, 0), last


def _loss_top(net, u, bid) -> bool:
    weights = net.layers_list[u].loss_weights
    j = net.top_ids[u].index(bid)
    return j < len(weights) and weights[j] != 0


def _diff_span(net, graph, bid, reads, known, bpos):
    """(first, last) step of the blob's diff, or None if it must stay."""
    p = graph.producer.get(bid)
    readers = graph.readers.get(bid, [])
    if p is None or len(readers) != 1 or graph.writers.get(bid, 0) != 1 \
            or not known(p) or not net.layer_need_backward[p] \
            or _loss_top(net, p, bid) or not _owned(net.blob_list[bid], "diff"):
        return None
    r = readers[0]
    ks = [k for k, b in enumerate(net.bottom_ids[r]) if b == bid]
    if not known(r) or len(ks) != 1 or not net.layer_need_backward[r] \
            or not net.bottom_need_backward[r][ks[0]]:
        return None  # not written by a backward: the producer reads it as is
    return max(bpos(r, read=False) - 1, 0), bpos(p)


def _assign(net, graph, kind, spans, sharing) -> None:
    """Greedy interval colouring per (dtype, size): each span takes a free
    array whose last use ended before it starts."""
    spans.sort(key=lambda s: s[0])
    free: dict[tuple, list[list]] = {}  # key -> [[end, array, ids, role], ...]
    for (start, end), ids in spans:
        b0 = net.blob_list[ids[0]]
        role = _role(net, graph, ids[0])
        pool = free.setdefault((b0.dtype, b0.count), [])
        # The same role's array first (every step's gate input in one array,
        # written and read by the same kernels, keeps the caches warm;
        # handing it to another role was measured 40 % slower per step).
        slot = next((s for s in pool if s[0] < start and s[3] == role), None) or \
            next((s for s in pool if s[0] < start), None)
        if slot is None:
            pool.append([end, None, ids, role])
            continue
        slot[3] = role
        if slot[1] is None:  # first reuse: the first holder's array
            holder = net.blob_list[slot[2][0]]
            if kind == "data":
                slot[1] = holder._dbuf
            else:
                holder.diff  # noqa: B018 - allocates it
                slot[1] = holder._gbuf
            sharing.point(net, kind, slot[2], slot[1])
        slot[0] = end
        sharing.point(net, kind, ids, slot[1])


def _alias_sets(net, ids, kind) -> list[list[int]]:
    """``ids`` (blobs whose ``kind`` arrays share one root: a blob, its
    Split tops, views of its rows) split into sets pointing at the same
    buffer object (a blob and its Split tops)."""
    sets: dict[int, list[int]] = {}
    for b in ids:
        buf = _buf(net.blob_list[b], kind)
        if buf is not None and net.blob_list[b].count > 0:
            sets.setdefault(id(buf), []).append(b)
    return list(sets.values())


def _drop(net, kind, id_sets, sharing) -> None:
    """Point every set of blob ids at one array per dtype (the largest they
    need): their values are never computed, and the arrays they held (a
    stack and its rows included) are freed."""
    size: dict = {}
    for ids in id_sets:
        b0 = net.blob_list[ids[0]]
        size[b0.dtype] = max(size.get(b0.dtype, 0), b0.count)
    bufs = {dt: np.zeros(n, dtype=dt) for dt, n in size.items()}
    for ids in id_sets:
        sharing.point(net, kind, ids, bufs[net.blob_list[ids[0]].dtype])


def _role(net, graph, bid):
    """What a blob is, whatever its step: its producer's type and top index,
    and its consumers' types."""
    p = graph.producer[bid]
    return (net.layers_list[p].type, net.top_ids[p].index(bid),
            tuple(sorted(net.layers_list[r].type for r in graph.readers[bid])))
