"""The rank/size context: which share of the work this process does.

One process-wide :class:`Context` (rank, size, communicator). Data layers read
it at setup (:func:`recaffe.parallel.shard.train_shard`); pycaffe's
``caffe.solver_rank()`` / ``caffe.solver_count()`` and Python layers read it
through :func:`rank` and :func:`size`.

:func:`init` makes it: under ``mpirun`` (or ``mpiexec``, Open MPI or MPICH) an
MPI communicator over ``COMM_WORLD``; in a process started by
``recaffe train -gpu 0,1`` an NCCL communicator (the launcher hands the rank,
size and NCCL id over in ``RECAFFE_*`` variables); otherwise one rank.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from recaffe.errors import DistributedError
from recaffe.parallel.comm import Communicator, MPIComm, NCCLComm, SelfComm

__all__ = ["Context", "get_context", "init", "launched_by_mpi", "rank", "set_context",
           "size", "use_nccl_between_gpus"]

#: Variables that MPI launchers set in every rank (Open MPI, PMIx, MPICH/Hydra).
_MPI_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
_MPI_RANK_VARS = ("OMPI_COMM_WORLD_RANK", "PMI_RANK")


@dataclass
class Context:
    """This process's place in a data-parallel job."""

    rank: int = 0
    size: int = 1
    comm: Communicator = field(default_factory=SelfComm)

    @property
    def is_root(self) -> bool:
        return self.rank == 0


_ctx = Context()


def get_context() -> Context:
    return _ctx


def set_context(ctx: Context) -> Context:
    """Make ``ctx`` the process's context (returns the previous one)."""
    global _ctx
    old, _ctx = _ctx, ctx
    return old


def rank() -> int:
    """This process's rank (0 in a single-process run)."""
    return _ctx.rank


def size() -> int:
    """The number of ranks (1 in a single-process run)."""
    return _ctx.size


def launched_by_mpi() -> tuple[int, int] | None:
    """``(rank, size)`` from an MPI launcher's variables, or None."""
    for var in _MPI_SIZE_VARS:
        raw = os.environ.get(var)
        if raw and raw.isdigit():
            n = int(raw)
            r = next((int(os.environ[v]) for v in _MPI_RANK_VARS
                      if os.environ.get(v, "").isdigit()), 0)
            return r, n
    return None


def _nccl_from_env() -> Context | None:
    uid_hex = os.environ.get("RECAFFE_NCCL_UID")
    if not uid_hex:
        return None
    try:
        r = int(os.environ["RECAFFE_RANK"])
        n = int(os.environ["RECAFFE_WORLD_SIZE"])
        uid = bytes.fromhex(uid_hex)
    except (KeyError, ValueError) as exc:
        raise DistributedError(
            f"bad launcher variables for NCCL ranks: {exc}") from None
    from recaffe.parallel.launch import decode_uid  # noqa: PLC0415

    gpu = os.environ.get("RECAFFE_GPU")
    if gpu is not None:
        # NCCL binds a communicator to the current device: select it first.
        from recaffe import backend  # noqa: PLC0415

        backend.set_mode_gpu()
        backend.set_device(int(gpu))
    return Context(r, n, NCCLComm(r, n, decode_uid(uid)))


def use_nccl_between_gpus(ctx: Context) -> Context:
    """Under mpirun with one GPU per rank: reduce over NCCL when CuPy has it
    (rank 0's NCCL id travels over MPI), else keep MPI with host staging."""
    if ctx.size == 1 or not isinstance(ctx.comm, MPIComm):
        return ctx
    from recaffe.parallel.comm import import_nccl  # noqa: PLC0415
    from recaffe.parallel.launch import decode_uid, encode_uid  # noqa: PLC0415

    try:
        nccl = import_nccl()
        ok = b"1"
    except DistributedError:
        nccl, ok = None, b"0"
    if any(v != b"1" for v in ctx.comm.allgather_bytes(ok)):
        from recaffe.log import logger  # noqa: PLC0415

        logger.warning("NCCL is not available on every rank: gradients are staged "
                       "through the host and reduced over MPI")
        return ctx
    uid = encode_uid(nccl.get_unique_id()) if ctx.rank == 0 else b""
    uid = ctx.comm.allgather_bytes(uid)[0]
    new = Context(ctx.rank, ctx.size, NCCLComm(ctx.rank, ctx.size, decode_uid(uid),
                                               nccl=nccl))
    set_context(new)
    return new


def init(comm: Communicator | None = None, *, quiet_others: bool = True) -> Context:
    """Make this process's context and return it.

    Args:
        comm: a communicator to use; by default MPI under an MPI launcher,
            NCCL in a process of ``recaffe train -gpu 0,1``, else one rank.
        quiet_others: ranks other than 0 log only warnings and errors (rank 0
            alone prints Caffe's log).

    Raises:
        DistributedError: started by ``mpirun`` with several ranks but mpi4py is
            not installed (every rank says so).
    """
    if comm is None:
        ctx = _nccl_from_env()
        if ctx is None:
            launched = launched_by_mpi()
            if launched is not None and launched[1] > 1:
                try:
                    comm = MPIComm()
                except DistributedError as exc:
                    raise DistributedError(
                        f"rank {launched[0]} of {launched[1]}: started by an MPI "
                        f"launcher, but {exc}; or run without mpirun for one process"
                    ) from None
            elif launched is not None:
                try:
                    comm = MPIComm()
                except DistributedError:
                    comm = SelfComm()
            else:
                comm = SelfComm()
    else:
        ctx = None
    if ctx is None:
        ctx = Context(comm.rank, comm.size, comm)
    set_context(ctx)
    if ctx.size > 1:
        _share_seed(ctx)
        _install_excepthook(ctx)
        if quiet_others and ctx.rank != 0:
            from recaffe.log import logger  # noqa: PLC0415

            logger.setLevel(logging.WARNING)
    return ctx


def _share_seed(ctx: Context) -> None:
    """Give every rank rank 0's random stream, so shuffles of a shared source
    agree (the sharding rule needs one item order); a solver's random_seed
    later re-seeds all ranks alike."""
    from recaffe import backend  # noqa: PLC0415

    seed = np.array([int.from_bytes(os.urandom(4), "little")], dtype=np.int64)
    ctx.comm.bcast(seed, root=0)
    backend.set_random_seed(int(seed[0]))


def _install_excepthook(ctx: Context) -> None:
    """An uncaught exception in one rank stops the whole job (instead of leaving
    the others waiting in a collective): print it naming the rank, then abort."""
    previous = sys.excepthook

    def hook(etype, value, tb):
        if issubclass(etype, KeyboardInterrupt):
            previous(etype, value, tb)
        else:
            from recaffe.errors import RecaffeError  # noqa: PLC0415

            if issubclass(etype, RecaffeError):
                msg = " ".join(str(value).split())
                if f"rank {ctx.rank}" not in msg:
                    msg = f"rank {ctx.rank}: {msg}"
                print(f"recaffe: error: {msg}", file=sys.stderr)
            else:
                print(f"rank {ctx.rank} of {ctx.size} failed:", file=sys.stderr)
                previous(etype, value, tb)
        sys.stderr.flush()
        ctx.comm.abort(1)

    sys.excepthook = hook
