"""Data-parallel training: one solver per rank, gradients averaged each iteration.

:class:`DataParallel` attaches to an ordinary solver (any type)::

    import recaffe as caffe

    caffe.parallel.init()                      # under mpirun: MPI ranks
    solver = caffe.get_solver("solver.prototxt")
    caffe.parallel.DataParallel(solver)        # check, broadcast, reduce
    solver.solve()

The solver calls it at these places, and only there:

- when it attaches and in ``restore`` (which rank 0 alone reads): rank 0's
  weights, solver history, ``iter`` and the lr policy's step are broadcast
  (call :meth:`DataParallel.bcast` after changing weights by hand);
- before the (last) backward pass of an iteration: hooks that start each
  gradient bucket's allreduce as soon as the backward pass has finished its
  parameters (not with one rank, nor with ``RECAFFE_DIST_OVERLAP=0``);
- between backward and update: the diffs (and the loss, and signal requests)
  are averaged over the ranks by a :class:`~recaffe.parallel.reducer.GradientReducer`,
  so clipping, normalisation, regularisation and the update rule see the
  gradient of the whole N·B batch and every rank applies the same update;
- ``test``, ``snapshot`` and ``restore`` (reading) run on rank 0 alone;
- signal actions (stop, snapshot) are agreed by all ranks in the reduction.

At attach time every rank compares a digest of its solver parameters and of
its train net (layers and parameter shapes) with rank 0's: ranks started with
different files fail at once with an error that names them.
"""

from __future__ import annotations

import hashlib

import numpy as np

from recaffe import backend
from recaffe.errors import DistributedError
from recaffe.log import logger
from recaffe.parallel.context import Context, get_context
from recaffe.parallel.reducer import BackwardOverlap, GradientReducer, overlap_enabled
from recaffe.proto import caffe_pb2

__all__ = ["DataParallel", "setup_digests"]


def setup_digests(solver) -> tuple[bytes, bytes]:
    """SHA-256 digests of the solver parameters and of the train net (its
    layers and learnable parameter shapes). Fields that may differ between
    ranks without changing the training are left out: ``device_id``, the
    snapshot prefix (rank 0 alone writes) and the paths of net files (the
    train net's contents are compared instead)."""
    sp = caffe_pb2.SolverParameter()
    sp.CopyFrom(solver.param)
    for name in ("device_id", "snapshot_prefix", "net", "train_net", "test_net"):
        sp.ClearField(name)
    solver_digest = hashlib.sha256(sp.SerializeToString(deterministic=True)).digest()
    h = hashlib.sha256(solver.net.param.SerializeToString(deterministic=True))
    for b in solver.net.learnable_params:
        h.update(repr(tuple(b.shape)).encode())
    return solver_digest, h.digest()


class DataParallel:
    """Make ``solver`` one rank of a data-parallel job.

    Args:
        solver: a recaffe solver, built after :func:`recaffe.parallel.init` (so
            its data layers read their shard).
        ctx: the rank/size context (default: the process's).
        bucket_mb: gradient bucket size in MiB (default ``RECAFFE_BUCKET_MB``
            or 16).
    """

    def __init__(self, solver, ctx: Context | None = None,
                 bucket_mb: float | None = None):
        ctx = get_context() if ctx is None else ctx
        self.solver = solver
        self.ctx = ctx
        self.comm = ctx.comm
        self.rank, self.size = ctx.rank, ctx.size
        self.reducer = GradientReducer(solver.net.learnable_params, ctx.comm,
                                       bucket_mb)
        self.reducer.layout()
        #: Backward hooks starting buckets early (None: all start after backward).
        self.overlap = (BackwardOverlap(solver.net, self.reducer)
                        if self.size > 1 and overlap_enabled() else None)
        self._agreed = "none"
        self.check_same_setup()
        self.bcast()
        solver.reducer = self
        nbytes = sum(b.count * b.data.dtype.itemsize
                     for b in solver.net.learnable_params)
        logger.info(f"Data-parallel training on {self.size} rank(s) over "
                    f"{self.comm.name}: {nbytes / 2**20:.2f} MiB of gradients per "
                    f"iteration in {len(self.reducer.buckets)} "
                    "bucket(s)" + (", started during backward"
                                   if self.overlap is not None else ""))

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    # -- start-up ----------------------------------------------------------------
    def check_same_setup(self) -> None:
        """Fail on every rank when ranks disagree on the solver or the net."""
        if self.size == 1:
            return
        s, n = setup_digests(self.solver)
        table = self.comm.allgather_bytes(s + n)
        bad_solver = [r for r, d in enumerate(table) if d[:32] != table[0][:32]]
        bad_net = [r for r, d in enumerate(table) if d[32:] != table[0][32:]]
        if bad_solver or bad_net:
            what = []
            if bad_solver:
                what.append(f"solver parameters (rank(s) {_ranks(bad_solver)})")
            if bad_net:
                what.append(f"train net (rank(s) {_ranks(bad_net)})")
            raise DistributedError(
                f"rank {self.rank}: the ranks were started with different "
                f"{' and '.join(what)} than rank 0; start every rank with the same "
                "solver and net files"
            )

    def bcast(self) -> None:
        """Copy rank 0's weights, solver history, ``iter`` and lr step to every
        rank (pycaffe's ``NCCL.bcast``)."""
        solver = self.solver
        if self.size == 1:
            return
        params = solver.net.learnable_params
        if params:
            xpm = backend.get_array_module(params[0].data)
            flat = xpm.concatenate([b.data.reshape(-1) for b in params])
            self.comm.bcast(flat, root=0)
            off = 0
            for b in params:
                b.data[...] = flat[off:off + b.count].reshape(b.shape)
                off += b.count
        flats = solver.flat_buffers()
        if flats is not None:
            for h in flats[0]:
                self.comm.bcast(h, root=0)
        else:
            for h in solver.history:
                tmp = h.reshape(-1).copy()
                self.comm.bcast(tmp, root=0)
                h[...] = tmp.reshape(h.shape)
        state = np.array([solver.iter, solver.current_step], dtype=np.int64)
        self.comm.bcast(state, root=0)
        solver.iter, solver.current_step = int(state[0]), int(state[1])

    # -- solver hooks ---------------------------------------------------------------
    def before_backward(self) -> None:
        """Called before the iteration's last backward pass (not before a
        CUDA-graph iteration): let it start the buckets it finishes."""
        if self.overlap is not None:
            self.solver.net.backward_hooks = self.overlap

    def after_backward(self, loss: float) -> float:
        """Average diffs and loss; agree on signal actions. Returns the mean loss."""
        self.solver.net.backward_hooks = None
        local = self.solver._local_action()
        mean, n_snap, n_stop = self.reducer.reduce(
            loss, snapshot=local == "snapshot", stop=local == "stop")
        if n_stop:
            self._agreed = "stop"
        elif n_snap and self._agreed != "stop":
            self._agreed = "snapshot"
        return mean

    def agreed_action(self) -> str:
        """The action all ranks agreed on in the last reduction (reported once).
        While rank 0 tests, nothing is agreed: requests wait for the next
        reduction."""
        action, self._agreed = self._agreed, "none"
        return action


def _ranks(ranks: list[int]) -> str:
    return ", ".join(str(r) for r in ranks)
