"""Execution plan: a Net compiled into pre-bound steps, with time batching.

The package's parts, each usable alone: :mod:`.graph` (who writes and reads
each blob, layer dependencies), :mod:`.batching` (time-batched groups and the
schedule), :mod:`.layout` (stacked memory, shared diffs), :mod:`.kernels`
(recurrent-path kernels), :mod:`.sharing` (blobs sharing arrays, off by
default), :mod:`.sequence` (an unrolled LSTM run as one step, with sharing
on), :mod:`.steps` (building the step lists),
:mod:`.watch` (the shape watch) and :mod:`.core` (the plan itself).

The plain way to run a net walks ``net.layers`` and calls each layer's
``Forward`` (reshape, forward, loss) and ``Backward``. For an unrolled recurrent
net most of that time is Python overhead: hundreds of tiny layers, each doing a
reshape, a few attribute look-ups and a small GEMM. The plan removes it.

**Steps.** The plan is a list of ``(callable, bottoms, tops)`` triples with the
layer's bound method and its blob lists resolved once. Layers whose ``reshape``
depends only on bottom shapes and parameters (``watch.PURE_RESHAPE``) are not
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
(``batching.ROWWISE``), and layers are re-ordered only as the dependencies allow
(stable topological order, original order as the tie-break).

**Recurrent-path kernels.** InnerProduct, Sigmoid, TanH, Eltwise SUM, Split,
Slice and Concat run as closures over their arrays (NumPy only). A Slice or
Concat whose per-step blobs are the rows of one stack is one transposed copy.
A Slice along T hands out views of its bottom's rows, and a Concat along T
(every step's ``h_t`` into ``(T, N, H)``) has its bottoms written into its
top's rows, so neither copies anything.
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

import os

from recaffe.plan.core import ExecutionPlan
from recaffe.plan.kernels import bias_adder
from recaffe.plan.watch import PURE_RESHAPE, ShapeChanged

__all__ = ["PURE_RESHAPE", "ExecutionPlan", "ShapeChanged", "bias_adder",
           "plan_enabled", "share_buffers_default"]


def plan_enabled() -> bool:
    """False when the environment variable ``RECAFFE_PLAN`` is ``0``."""
    return os.environ.get("RECAFFE_PLAN", "1").strip().lower() not in (
        "0", "false", "no", "off")


def share_buffers_default() -> bool:
    """True when the environment variable ``RECAFFE_SHARE_BUFFERS`` is ``1``
    (the default of :attr:`recaffe.net.Net.share_buffers`)."""
    return os.environ.get("RECAFFE_SHARE_BUFFERS", "0").strip().lower() in (
        "1", "true", "yes", "on")
