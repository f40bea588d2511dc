"""Who writes and reads each blob of a net, and the order constraints that follow.

:class:`BlobGraph` answers the questions every other part of the plan asks:
which layer produces a blob, how many layers write it, which read it, whether
its memory may be re-pointed into a stack, and where a chain of Split tops
really starts. :func:`dependencies` lists, for every layer, the layers that
must run before it.
"""

from __future__ import annotations

#: Types that point their tops at other blobs' memory (never re-pointed here).
SHARES_TOPS = frozenset({"Split", "Reshape", "Flatten", "Python", "Squeeze"})


class BlobGraph:
    """Producer, writer count and readers of every blob id of ``net``."""

    def __init__(self, net):
        self.net = net
        self.producer: dict[int, int] = {}
        self.writers: dict[int, int] = {}
        self.readers: dict[int, list[int]] = {}
        for i in range(len(net.layers_list)):
            for tid in net.top_ids[i]:
                self.producer.setdefault(tid, i)
                self.writers[tid] = self.writers.get(tid, 0) + 1
            for bid in net.bottom_ids[i]:
                self.readers.setdefault(bid, []).append(i)

    def data_root(self, bid: int) -> int:
        """The blob whose data ``bid`` shares through a chain of Split layers."""
        net = self.net
        while True:
            p = self.producer.get(bid)
            if p is None or net.layers_list[p].type != "Split":
                return bid
            bid = net.bottom_ids[p][0]

    def can_point(self, bid: int, kind: str = "data") -> bool:
        """Whether the blob's data (``kind="data"``) or diff may be re-pointed
        at other memory: one writer, which owns its tops and is not an Input."""
        net = self.net
        p = self.producer.get(bid)
        if p is None or self.writers.get(bid, 0) != 1:
            return False
        shares = SHARES_TOPS - {"Split"} if kind == "diff" else SHARES_TOPS
        if net.layers_list[p].type in shares or bid in net.bottom_ids[p]:
            return False
        return net.layers_list[p].type not in ("Input",)


def dependencies(net) -> list[set[int]]:
    """deps[i]: layers that must run before layer i (RAW, WAW and WAR)."""
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
