"""The sharding rule of Caffe's multi-GPU data layers.

With N ranks, the k-th item a data layer passes over in its source order
(LMDB record, HDF5 row, image-list line, MemoryData row) belongs to rank
``k mod N``. Every rank walks the same order and keeps its own items, so N
ranks with batch B see, in each iteration, exactly the items that one process
with batch N·B sees. Only TRAIN nets are sharded: test nets run on rank 0 over
the whole source.
"""

from __future__ import annotations

from collections.abc import Callable

from recaffe.parallel.context import get_context
from recaffe.proto import caffe_pb2

__all__ = ["ItemFilter", "owner", "train_shard"]


def owner(k: int, size: int) -> int:
    """The rank that gets item ``k`` of the source order."""
    return k % size


def train_shard(phase: int) -> tuple[int, int]:
    """``(rank, size)`` a data layer of ``phase`` reads with: the context's
    for TRAIN, ``(0, 1)`` (the whole source) for TEST."""
    ctx = get_context()
    if phase != caffe_pb2.TRAIN:
        return 0, 1
    return ctx.rank, ctx.size


class ItemFilter:
    """Counts the items a layer passes over; :meth:`keep` says whether the next
    one is this rank's (Caffe's ``DataLayer::Skip``)."""

    def __init__(self, rank: int, size: int):
        self.rank, self.size = int(rank), int(size)
        self.offset = 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def keep(self) -> bool:
        k = self.offset
        self.offset += 1
        return k % self.size == self.rank

    def skip(self, advance: Callable[[], object]) -> None:
        """Call ``advance`` past the other ranks' items, up to this rank's next
        one (counted as kept)."""
        while not self.keep():
            advance()
