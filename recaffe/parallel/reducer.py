"""Gradient averaging over ranks, in a few large buckets.

The reducer owns one flat buffer with room for every learnable parameter's
diff back to back, plus three slots: the iteration's loss and the numbers of
ranks that asked for a snapshot or a stop (signals), so one set of collectives
per iteration carries everything the ranks must agree on.

:meth:`GradientReducer.reduce` packs the diffs bucket by bucket (a bucket ends
at a parameter boundary once it holds ``bucket_mb`` MiB) and starts each
bucket's allreduce as soon as it is packed, so packing the next bucket overlaps
the transfer of the previous one; it then waits for all, divides by the number
of ranks and writes the means back into the diffs. Every rank then holds the
same averaged gradient and applies the same update.
"""

from __future__ import annotations

import os
import time

import numpy as np

from recaffe import backend
from recaffe.errors import DistributedError
from recaffe.parallel.comm import Communicator

__all__ = ["GradientReducer", "default_bucket_mb"]

#: Extra slots after the gradients: loss, snapshot requests, stop requests.
_EXTRA = 3


def default_bucket_mb() -> float:
    raw = os.environ.get("RECAFFE_BUCKET_MB", "16")
    try:
        value = float(raw)
    except ValueError:
        raise DistributedError(f"RECAFFE_BUCKET_MB must be a number, got {raw!r}"
                               ) from None
    if value <= 0:
        raise DistributedError(f"RECAFFE_BUCKET_MB must be > 0, got {raw!r}")
    return value


class GradientReducer:
    """Averages the diffs of ``params`` over the ranks of ``comm``.

    Args:
        params: the learnable parameter blobs (the solver's ``net.learnable_params``).
        comm: the communicator.
        bucket_mb: bucket size in MiB (default ``RECAFFE_BUCKET_MB`` or 16).
    """

    def __init__(self, params, comm: Communicator, bucket_mb: float | None = None):
        self.params = list(params)
        self.comm = comm
        self.bucket_bytes = int((bucket_mb or default_bucket_mb()) * 2**20)
        self.buffer = None
        self.buckets: list[tuple[int, int, list[tuple[int, int]]]] = []
        #: Seconds spent in the last :meth:`reduce` (packing, transfer, unpacking).
        self.last_seconds = 0.0
        #: Sum of :attr:`last_seconds` over all reductions.
        self.total_seconds = 0.0
        self.calls = 0

    def layout(self) -> None:
        """(Re)build the buffer and buckets when the diffs' arrays changed."""
        diffs = [b.diff for b in self.params]
        xpm = backend.get_array_module(diffs[0]) if diffs else np
        dtype = diffs[0].dtype if diffs else np.float32
        key = (xpm, dtype, tuple(b.count for b in self.params))
        if self.buffer is not None and self._key == key:
            return
        total = sum(b.count for b in self.params)
        self.buffer = xpm.zeros(total + _EXTRA, dtype=dtype)
        itemsize = self.buffer.itemsize
        buckets = []
        start = off = 0
        members: list[tuple[int, int]] = []
        for i, b in enumerate(self.params):
            members.append((i, off))
            off += b.count
            if (off - start) * itemsize >= self.bucket_bytes:
                buckets.append((start, off, members))
                start, members = off, []
        # The last bucket also carries the loss and the action counts.
        buckets.append((start, off + _EXTRA, members))
        self.buckets = buckets
        self._key = key

    def reduce(self, loss: float, snapshot: bool = False, stop: bool = False
               ) -> tuple[float, int, int]:
        """Average the diffs over the ranks (in place).

        Returns:
            ``(mean loss, ranks asking for a snapshot, ranks asking to stop)``.
        """
        t0 = time.perf_counter()
        self.layout()
        buf = self.buffer
        params = self.params
        requests = []
        n = len(buf) - _EXTRA
        for start, stop_at, members in self.buckets:
            for i, off in members:
                b = params[i]
                buf[off:off + b.count] = b.diff.reshape(-1)
            if stop_at > n:
                buf[n] = loss
                buf[n + 1] = 1.0 if snapshot else 0.0
                buf[n + 2] = 1.0 if stop else 0.0
            requests.append(self.comm.iallreduce(buf[start:stop_at]))
        for req in requests:
            req.wait()
        size = self.comm.size
        if size > 1:
            buf *= buf.dtype.type(1.0 / size)
        for _, _, members in self.buckets:
            for i, off in members:
                b = params[i]
                b.diff[...] = buf[off:off + b.count].reshape(b.shape)
        extra = backend.to_host(buf[n:]) * size
        self.last_seconds = time.perf_counter() - t0
        self.total_seconds += self.last_seconds
        self.calls += 1
        return float(extra[0]) / size, round(float(extra[1])), round(float(extra[2]))
