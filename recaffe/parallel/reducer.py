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

Overlap with the backward pass: the parameters are laid out in reverse order
(the last layers' parameters, whose gradients are final first, fill the first
bucket). :class:`BackwardOverlap` installs per-step hooks in the net's
backward pass (the execution plan's steps or the per-layer loop) that start a
bucket's allreduce as soon as the last step that writes any of its
parameters' diffs has run (a parameter shared by several layers or a
time-batched group is final after the last of them in backward order), and
poll the started ones at later steps (Open MPI progresses non-blocking
collectives only inside MPI calls). Buckets start in the same order on every
rank whatever path the backward pass took. The last bucket carries the loss
and signal slots and always starts in :meth:`GradientReducer.reduce`, after
backward, as do buckets whose hooks did not run (a CUDA-graph backward).
``RECAFFE_DIST_OVERLAP=0`` turns the hooks off.
"""

from __future__ import annotations

import os
import time

import numpy as np

from recaffe import backend
from recaffe.errors import DistributedError
from recaffe.parallel.comm import Communicator

__all__ = ["BackwardOverlap", "GradientReducer", "default_bucket_mb", "overlap_enabled"]

#: Extra slots after the gradients: loss, snapshot requests, stop requests.
_EXTRA = 3


def overlap_enabled() -> bool:
    """Whether reductions start during backward (``RECAFFE_DIST_OVERLAP``,
    default on; ``0`` starts them all after backward)."""
    return os.environ.get("RECAFFE_DIST_OVERLAP", "1").strip().lower() not in (
        "0", "false", "no", "off")


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
        #: Buckets started during the backward pass in the last :meth:`reduce`.
        self.early = 0
        #: Bumped each time :meth:`layout` rebuilds the buckets.
        self.version = 0
        self._requests: list = []

    def layout(self) -> None:
        """(Re)build the buffer and buckets when the diffs' arrays changed.
        Parameters are packed last first (reverse order), so the buckets the
        backward pass finishes first come first."""
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
        for i in reversed(range(len(self.params))):
            b = self.params[i]
            members.append((i, off))
            off += b.count
            if (off - start) * itemsize >= self.bucket_bytes:
                buckets.append((start, off, members))
                start, members = off, []
        # The last bucket also carries the loss and the action counts.
        buckets.append((start, off + _EXTRA, members))
        self.buckets = buckets
        self._key = key
        self.version += 1
        self._requests = []

    # -- starting buckets (during or after backward) ------------------------------
    def start_bucket(self) -> None:
        """Pack the next bucket's diffs and start its allreduce."""
        k = len(self._requests)
        start, stop_at, members = self.buckets[k]
        buf, params = self.buffer, self.params
        for i, off in members:
            b = params[i]
            buf[off:off + b.count] = b.diff.reshape(-1)
        self._requests.append(self.comm.iallreduce(buf[start:stop_at]))

    def poll(self) -> None:
        """Drive the started transfers (a non-blocking test of each)."""
        for req in self._requests:
            req.test()

    def reduce(self, loss: float, snapshot: bool = False, stop: bool = False
               ) -> tuple[float, int, int]:
        """Average the diffs over the ranks (in place); buckets already started
        during backward are not packed again.

        Returns:
            ``(mean loss, ranks asking for a snapshot, ranks asking to stop)``.
        """
        t0 = time.perf_counter()
        self.layout()
        buf = self.buffer
        params = self.params
        n = len(buf) - _EXTRA
        buf[n] = loss
        buf[n + 1] = 1.0 if snapshot else 0.0
        buf[n + 2] = 1.0 if stop else 0.0
        self.early = len(self._requests)
        while len(self._requests) < len(self.buckets):
            self.start_bucket()
        requests, self._requests = self._requests, []
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
        return float(extra[0]) / size, round(float(extra[1])), round(float(extra[2]))


class BackwardOverlap:
    """The net's backward hooks (``net.backward_hooks``) that start the
    reducer's buckets during the backward pass (see the module docstring).

    For each learnable parameter it knows the layers whose backward writes its
    diff (the owner and every layer sharing it); a bucket may start after the
    last of its parameters' writers in backward order has run, and not before
    the buckets ahead of it (every rank starts them in one order).
    """

    def __init__(self, net, reducer: GradientReducer):
        self.net, self.reducer = net, reducer
        index = {id(b): k for k, b in enumerate(reducer.params)}
        learn = {nid: index[id(net.param_blobs[nid])]
                 for nid in net.learnable_param_ids}
        writers: list[set[int]] = [set() for _ in reducer.params]
        for nid, (layer_id, _) in enumerate(net.param_layer_indices):
            owner = net.param_owners[nid]
            li = learn.get(nid if owner < 0 else owner)
            if li is not None:
                writers[li].add(layer_id)
        self.writers = writers
        self._plan = None
        self._plan_table = None
        self._layer_table = None
        self._version = None

    def _table(self, n: int, bucket_pos: list[int]) -> list:
        """Hooks for a pass of ``n`` steps, given for each bucket (but the last)
        the step after which its parameters are final."""
        red = self.reducer
        ready = []
        last = -1
        for p in bucket_pos:  # not before the buckets ahead of it
            last = max(last, p, 0)
            ready.append(last)
        table: list = [None] * n
        if not ready:
            return table
        for pos in range(ready[0], n):
            want = sum(1 for r in ready if r <= pos)

            def hook(want=want, red=red):
                red.poll()
                while len(red._requests) < want:
                    red.start_bucket()
            table[pos] = hook
        return table

    def _check(self) -> None:
        red = self.reducer
        red.layout()
        if self._version != red.version:
            self._version = red.version
            self._plan = self._plan_table = self._layer_table = None

    def layer_table(self, net) -> list:
        """One entry per layer, run after that layer in the per-layer loop."""
        self._check()
        if self._layer_table is None:
            n = len(net.layers_list)
            pos = []  # backward step of layer i is n-1-i; final after the first layer
            for _, _, members in self.reducer.buckets[:-1]:
                pos.append(max(n - 1 - min(self.writers[i], default=n - 1)
                               for i, _ in members))
            steps = self._table(n, pos)
            self._layer_table = [steps[n - 1 - i] for i in range(n)]
        return self._layer_table

    def plan_table(self, plan) -> list:
        """One entry per step of ``plan.bwd``."""
        self._check()
        if self._plan is not plan:
            entry = {k: e for e, k in enumerate(plan.bwd_steps)}
            pos = []
            for _, _, members in self.reducer.buckets[:-1]:
                p = -1
                for i, _ in members:
                    for layer in self.writers[i]:
                        p = max(p, entry.get(plan.order_index(layer), -1))
                pos.append(p)
            self._plan_table = self._table(len(plan.bwd), pos)
            self._plan = plan
        return self._plan_table
