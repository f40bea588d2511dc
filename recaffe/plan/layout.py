"""Memory layout of a time-batched net: stacked blobs and shared diffs.

The members of a :class:`~.batching.Group` have their top blobs (data and diff)
re-pointed into one array of shape ``(T, count)``, so producers and consumers
read and write them in place, and the group runs as one layer over *carrier*
blobs whose arrays are those stacks. The members' bottoms are re-pointed too
where their producer writes into its tops, else gathered (forward) and
scattered (backward) by copy.

An Eltwise SUM with unit coefficients hands its top diff unchanged to its
bottoms, so where nothing else touches those diffs they share one array and
its backward is dropped (:func:`sum_alias_ids`).
"""

from __future__ import annotations

import numpy as np

from recaffe.blob import Blob


def point(blob: Blob, data=None, diff=None) -> None:
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


def carrier(shape, data2d, diff2d=None) -> Blob:
    """A Blob of ``shape`` whose data (and diff) are the given stacked arrays."""
    b = Blob((), dtype=data2d.dtype)
    b.reshape(shape)
    b.set_buffers(data=data2d.reshape(-1),
                  diff=None if diff2d is None else diff2d.reshape(-1))
    return b


class Layout:
    """The stacks of a net's groups; ``data_rows`` / ``diff_rows`` map each
    re-pointed blob id to ``(stack array, row)``; ``aliased_sums`` holds the
    Eltwise SUM layers whose diffs are shared (their backward is dropped)."""

    def __init__(self, net, graph, groups, xp, chains=()):
        self.net, self.graph, self.groups, self.xp = net, graph, groups, xp
        self.data_at: dict[int, tuple[int, int]] = {}  # blob -> (stack, position)
        self.diff_at: dict[int, tuple[int, int]] = {}
        self.stacks: list[object] = []
        for g in groups:
            self._stack_group(g)
        for members in chains:
            self._stack_chain_inputs(members)
        #: Slice layers whose tops are views of their bottom, and Concat
        #: layers whose bottoms are views of their top (no copies).
        self.viewed_slices: set[int] = set()
        for u in range(len(net.layers_list)):
            self._view_slice(u)
            if xp is np:
                self._view_concat(u)
        self.aliased_sums: set[int] = set()
        for u in range(len(net.layers_list)):
            self._alias_sum(u)
        stacks = self.stacks
        self.data_rows = {b: (stacks[sid], k) for b, (sid, k) in self.data_at.items()}
        self.diff_rows = {b: (stacks[sid], k) for b, (sid, k) in self.diff_at.items()}

    def forget(self, ids) -> None:
        """Drop blob ids (and the stacks only they used) from the tables:
        their arrays were handed back (:mod:`.sharing`'s dead blobs)."""
        for table, rows in ((self.data_at, self.data_rows),
                            (self.diff_at, self.diff_rows)):
            for b in ids:
                table.pop(b, None)
                rows.pop(b, None)
        used = {sid for table in (self.data_at, self.diff_at)
                for sid, _ in table.values()}
        for sid in range(len(self.stacks)):
            if sid not in used:
                self.stacks[sid] = None

    def _new_stack(self, T, count, dtype) -> int:
        self.stacks.append(self.xp.zeros((T, count), dtype=dtype))
        return len(self.stacks) - 1

    def _stacked(self, ids, table, kind):
        """Stack id holding ``ids`` at positions 0..T-1, pointing them if needed."""
        net, stacks = self.net, self.stacks
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
        if len(set(ids)) != T or not all(self.graph.can_point(b, kind) for b in ids):
            return None
        sid = self._new_stack(T, blob0.count, blob0.dtype)
        for k, b in enumerate(ids):
            table[b] = (sid, k)
            if kind == "data":
                point(net.blob_list[b], data=stacks[sid][k])
            else:
                point(net.blob_list[b], diff=stacks[sid][k])
        return sid

    def _stack_group(self, g) -> None:
        net, xp, stacks, graph = self.net, self.xp, self.stacks, self.graph

        # Stack the members in the order their consumers run (time order in an
        # unrolled net), whatever order the layers were listed in.
        def consumer_key(m):
            after = [r for t in net.top_ids[m] for r in graph.readers.get(t, ())]
            return (min(after) if after else len(net.layers_list), m)
        g.members.sort(key=consumer_key)
        ms = g.members
        T = len(ms)
        rep = net.layers_list[ms[0]]
        g.rep = rep
        backward = bool(net.layer_need_backward[ms[0]])
        # tops: always owned by the members (diffs only where backward runs).
        for j in range(len(net.top_ids[ms[0]])):
            ids = [net.top_ids[m][j] for m in ms]
            b0 = net.blob_list[ids[0]]
            shape = (T * b0.shape[0],) + b0.shape[1:]
            sd = self._stacked(ids, self.data_at, "data")
            sg = self._stacked(ids, self.diff_at, "diff") if backward else None
            if sd is None or (backward and sg is None):  # cannot happen (owned)
                raise RuntimeError("plan: could not stack group tops")
            g.pt.append(carrier(shape, stacks[sd],
                                stacks[sg] if sg is not None else None))
        for j in range(len(net.bottom_ids[ms[0]])):
            ids = [net.bottom_ids[m][j] for m in ms]
            b0 = net.blob_list[ids[0]]
            shape = (T * b0.shape[0],) + b0.shape[1:]
            roots = [graph.data_root(b) for b in ids]
            sd = self._stacked(roots, self.data_at, "data")
            need_diff = net.bottom_need_backward[ms[0]][j]
            sg = self._stacked(ids, self.diff_at, "diff") if need_diff else None
            data3 = stacks[sd] if sd is not None else xp.zeros(
                (T, b0.count), dtype=b0.dtype)
            diff3 = stacks[sg] if sg is not None else (xp.zeros(
                (T, b0.count), dtype=b0.dtype) if backward else None)
            blobs = [net.blob_list[b] for b in ids]
            if sd is None:
                g.gathers.append((blobs, data3.reshape((T,) + b0.shape)))
            if need_diff and sg is None:
                g.scatters.append((blobs, diff3.reshape((T,) + b0.shape)))
            g.pb.append(carrier(shape, data3, diff3))

    def _stack_chain_inputs(self, members) -> None:
        """The inputs of a chain of recurrent InnerProducts (one per step,
        shared weights; e.g. every step's ``cont * h`` of an unrolled LSTM)
        become consecutive rows of one stack, in layer order, so that their
        weight gradient is one GEMM over all steps instead of one per step."""
        net, graph = self.net, self.graph
        ms = sorted(members)
        ids = [graph.data_root(net.bottom_ids[m][0]) for m in ms]
        if len(set(ids)) != len(ids) or any(b in self.data_at for b in ids):
            return
        blobs = [net.blob_list[b] for b in ids]
        if any(b.count != blobs[0].count or b.dtype != blobs[0].dtype
               for b in blobs) or not all(graph.can_point(b) for b in ids):
            return
        self._stacked(ids, self.data_at, "data")

    def _view_slice(self, u: int) -> None:
        """A Slice into equal, contiguous parts (everything before its axis
        of size 1, e.g. per-step slices along T) gets tops that are rows of
        its bottom's arrays: its forward and backward copy nothing, and the
        rows count as a stack (so an Eltwise SUM's shared diff, a Concat or the
        recurrent weight gradients find them there)."""
        net, graph = self.net, self.graph
        layer = net.layers_list[u]
        if layer.type != "Slice" or any(w != 0 for w in layer.loss_weights):
            return
        bids, tids = net.bottom_ids[u], net.top_ids[u]
        if len(bids) != 1 or len(tids) < 2 or len(set(tids)) != len(tids):
            return
        bottom = net.blob_list[bids[0]]
        axis, bounds = layer.axis, layer.bounds
        n = len(tids)
        if any(d != 1 for d in bottom.shape[:axis]) or \
                len({bounds[j + 1] - bounds[j] for j in range(n)}) != 1:
            return
        if any(t in self.data_at or t in self.diff_at or not graph.can_point(t)
               or net.blob_list[t].dtype != bottom.dtype for t in tids):
            return
        need_diff = bool(net.bottom_need_backward[u][0])
        if need_diff and (graph.readers.get(bids[0]) != [u] or
                          not all(graph.can_point(t, "diff") for t in tids)):
            return
        # The tops show the bottom's rows as they are (nothing copied).
        if self._as_rows(bottom, tids, tids if need_diff else (), keep=False):
            self.viewed_slices.add(u)

    def _view_concat(self, u: int) -> None:
        """A Concat of equal, contiguous parts (everything before its axis of
        size 1, e.g. every step's ``h_t`` along T) whose bottoms' producers
        may write anywhere: they write into the rows of its top, so its
        forward and backward copy nothing (the Slice's case turned around;
        the bottoms' diffs are the rows of the top's diff)."""
        net, graph = self.net, self.graph
        layer = net.layers_list[u]
        if layer.type != "Concat" or any(w != 0 for w in layer.loss_weights):
            return
        bids, tids = net.bottom_ids[u], net.top_ids[u]
        n = len(bids)
        if len(tids) != 1 or n < 2 or len(set(bids)) != n:
            return
        top = net.blob_list[tids[0]]
        axis, bounds = layer.axis, layer.bounds
        if any(d != 1 for d in top.shape[:axis]) or \
                len({bounds[j + 1] - bounds[j] for j in range(n)}) != 1:
            return
        roots = [graph.data_root(b) for b in bids]
        if len(set(roots)) != n or tids[0] in self.data_at or \
                tids[0] in self.diff_at or graph.writers.get(tids[0], 0) != 1:
            return
        if any(r in self.data_at or not graph.can_point(r)
               or net.blob_list[r].dtype != top.dtype for r in roots):
            return
        need_diff = bool(net.layer_need_backward[u]) and \
            any(net.bottom_need_backward[u])
        if need_diff and not all(
                net.bottom_need_backward[u][j] and b not in self.diff_at
                and graph.can_point(b, "diff") for j, b in enumerate(bids)):
            return
        # The rows take the bottoms' values (their producers write there next).
        if self._as_rows(top, roots, bids if need_diff else (), keep=True):
            self.viewed_slices.add(u)

    def _as_rows(self, whole, data_ids, diff_ids, keep: bool) -> bool:
        """Point blobs ``data_ids`` (and ``diff_ids``) at consecutive rows of
        ``whole``'s data (and diff), which become stacks; with ``keep`` the
        rows take the blobs' current values first. False (nothing done)
        where ``whole``'s array cannot be seen as such rows."""
        net = self.net
        n, count = len(data_ids), net.blob_list[data_ids[0]].count
        data = whole.data.reshape(n, count)
        if not np.shares_memory(data, whole.data):
            return False
        for ids, table, kind in ((data_ids, self.data_at, "data"),
                                 (diff_ids, self.diff_at, "diff")):
            if not ids:
                continue
            arr = data if kind == "data" else whole.diff.reshape(n, count)
            sid = len(self.stacks)
            self.stacks.append(arr)
            for k, b in enumerate(ids):
                table[b] = (sid, k)
                if keep:
                    point(net.blob_list[b], **{kind: arr[k]})
                else:
                    net.blob_list[b].set_buffers(**{kind: arr[k]})
        return True

    def _alias_sum(self, u: int) -> None:
        net, diff_at, stacks = self.net, self.diff_at, self.stacks
        ids = sum_alias_ids(net, self.graph, self.groups, u)
        if ids is None:
            return
        in_stack = [i for i in ids if i in diff_at]
        if len(in_stack) > 1:
            return
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


def sum_alias_ids(net, graph, groups, u: int):
    """[top, bottoms...] of an Eltwise SUM with unit coefficients whose diffs
    may share one array: its backward hands the top diff unchanged to each
    bottom, which no other layer reads or writes. None otherwise."""
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
            any(u in g.members for g in groups):
        return None
    ids = [tids[0], *bids]
    blob0 = net.blob_list[ids[0]]
    for i in ids:
        blob = net.blob_list[i]
        if blob.shape != blob0.shape or blob.dtype != blob0.dtype or \
                graph.writers.get(i, 0) != 1 or not graph.can_point(i, "diff"):
            return None
    if any(graph.readers.get(b, []) != [u] for b in bids):
        return None
    return ids
