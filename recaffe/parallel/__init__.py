"""Data-parallel training beyond one process (Caffe's multi-GPU training).

Every rank holds the whole net, reads its shard of the training data (item k
of a source to rank ``k mod N``), runs forward and backward, and the solver
averages the parameter gradients over the ranks between backward and update.
Rank 0 alone logs, tests and snapshots. See ``docs/distributed.md``.

- :func:`init`, :func:`rank`, :func:`size`, :func:`get_context`: the rank/size
  context (MPI under ``mpirun``, NCCL under ``recaffe train -gpu 0,1``).
- :class:`DataParallel`: attach to a solver.
- :class:`MPIComm`, :class:`NCCLComm`, :class:`SelfComm`: communicators.
- :class:`GradientReducer`: bucketed gradient averaging.
"""

from __future__ import annotations

from recaffe.parallel.comm import Communicator, MPIComm, NCCLComm, SelfComm
from recaffe.parallel.context import (
    Context,
    get_context,
    init,
    launched_by_mpi,
    rank,
    set_context,
    size,
)
from recaffe.parallel.data_parallel import DataParallel
from recaffe.parallel.reducer import GradientReducer
from recaffe.parallel.shard import ItemFilter, owner, train_shard

__all__ = [
    "Communicator",
    "Context",
    "DataParallel",
    "GradientReducer",
    "ItemFilter",
    "MPIComm",
    "NCCLComm",
    "SelfComm",
    "get_context",
    "init",
    "launched_by_mpi",
    "owner",
    "rank",
    "set_context",
    "size",
    "train_shard",
]
