"""Communicators: one small interface over MPI (mpi4py) and NCCL (CuPy).

A communicator knows its ``rank`` and ``size`` and offers the few collectives
data-parallel training needs, all in place on one contiguous array:

- ``allreduce(arr)``: element-wise sum over the ranks;
- ``iallreduce(arr)``: the same, started now and finished by ``.wait()``
  (so the next bucket can be packed while this one travels); ``.test()``
  says whether it has finished without blocking, and drives its progress
  (Open MPI advances non-blocking collectives only inside MPI calls);
- ``bcast(arr, root)``: rank ``root``'s values everywhere;
- ``allgather_bytes(b)``: every rank's byte string (start-up checks);
- ``abort(code)``: stop every rank of the job.

No collective blocks forever: each wait polls with a deadline
(``RECAFFE_DIST_TIMEOUT`` seconds, default 1800: long enough for rank 0's
test phases and snapshots, which the other ranks wait for) and raises
:class:`~recaffe.errors.DistributedError` naming the rank when it passes.

:class:`MPIComm` moves host arrays (device arrays are staged through the host).
:class:`NCCLComm` reduces device arrays on the GPUs (host arrays are staged to
the device); its ``nccl`` and ``device`` are injectable so the logic runs with
a stand-in where no GPU is present.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from recaffe.errors import DistributedError

__all__ = [
    "Communicator",
    "MPIComm",
    "NCCLComm",
    "SelfComm",
    "default_timeout",
    "import_mpi",
]

_MPI_HINT = "pip install 'recaffe[mpi]' (mpi4py with Open MPI from PyPI)"


def default_timeout() -> float:
    """Seconds a collective may wait (``RECAFFE_DIST_TIMEOUT``, default 1800)."""
    raw = os.environ.get("RECAFFE_DIST_TIMEOUT", "1800")
    try:
        value = float(raw)
    except ValueError:
        raise DistributedError(
            f"RECAFFE_DIST_TIMEOUT must be a number of seconds, got {raw!r}"
        ) from None
    if value <= 0:
        raise DistributedError(f"RECAFFE_DIST_TIMEOUT must be > 0, got {raw!r}")
    return value


def import_mpi():
    """mpi4py's ``MPI`` module, or a DistributedError that says how to install it."""
    try:
        from mpi4py import MPI  # noqa: PLC0415
    except ImportError as exc:
        raise DistributedError(
            f"data-parallel training over MPI needs mpi4py, which is not installed "
            f"or not loadable ({exc}): {_MPI_HINT}"
        ) from None
    return MPI


def _backoff_wait(done, deadline: float, on_timeout, spin: float = 2e-3) -> None:
    """Poll ``done()`` until true: for ``spin`` seconds only yielding the CPU
    (collectives usually finish within that, and sleeping would add the
    scheduler's latency to each), then sleeping a little longer each time (so
    a rank waiting for a slow peer leaves the CPU to it on a shared machine)."""
    if done():
        return
    now = time.monotonic()
    spin_until = now + spin
    pause = 0.0
    while not done():
        now = time.monotonic()
        if now > deadline:
            on_timeout()
        if now < spin_until:
            time.sleep(0)
            continue
        time.sleep(pause)
        pause = min(max(pause * 2, 1e-5), 2e-3)


class Request:
    """A started collective; :meth:`wait` finishes it, :meth:`test` polls it."""

    def wait(self) -> None:
        raise NotImplementedError

    def test(self) -> bool:
        """Whether the transfer has finished (never blocks; :meth:`wait` must
        still be called to finish the request)."""
        raise NotImplementedError


class _Done(Request):
    def wait(self) -> None:
        pass

    def test(self) -> bool:
        return True


class Communicator:
    """The collectives of data-parallel training (see the module docstring)."""

    name = "base"
    rank = 0
    size = 1
    timeout = 1800.0

    def allreduce(self, arr) -> None:
        self.iallreduce(arr).wait()

    def iallreduce(self, arr) -> Request:
        raise NotImplementedError

    def bcast(self, arr, root: int = 0) -> None:
        raise NotImplementedError

    def allgather_bytes(self, data: bytes) -> list[bytes]:
        raise NotImplementedError

    def abort(self, code: int = 1):
        sys.exit(code)

    def _timed_out(self, what: str):
        raise DistributedError(
            f"rank {self.rank} of {self.size}: {what} did not complete within "
            f"{self.timeout:g} s; another rank stopped or hangs (the limit is "
            "RECAFFE_DIST_TIMEOUT)"
        )


class SelfComm(Communicator):
    """One rank: every collective is the identity."""

    name = "self"

    def iallreduce(self, arr) -> Request:
        return _Done()

    def bcast(self, arr, root: int = 0) -> None:
        pass

    def allgather_bytes(self, data: bytes) -> list[bytes]:
        return [bytes(data)]


class _MPIRequest(Request):
    def __init__(self, comm: MPIComm, req, host, target):
        self.comm, self.req, self.host, self.target = comm, req, host, target

    def wait(self) -> None:
        c = self.comm
        _backoff_wait(self.req.Test, time.monotonic() + c.timeout,
                      lambda: c._timed_out("an allreduce"))
        if self.target is not None:  # device array staged through the host
            self.target[...] = _to_like(self.host, self.target)

    def test(self) -> bool:
        return bool(self.req.Test())


def _to_like(host: np.ndarray, like):
    if isinstance(like, np.ndarray):
        return host
    import cupy  # noqa: PLC0415 - only device arrays get here

    return cupy.asarray(host)


def _host(arr) -> tuple[np.ndarray, object]:
    """A contiguous host array for ``arr`` and the device array to copy back to
    (None when ``arr`` is already a host array)."""
    if isinstance(arr, np.ndarray):
        if not arr.flags["C_CONTIGUOUS"]:
            raise DistributedError("collectives need contiguous arrays")
        return arr, None
    return np.ascontiguousarray(arr.get()), arr


class MPIComm(Communicator):
    """Collectives over MPI (mpi4py); device arrays go through the host."""

    name = "mpi"

    def __init__(self, comm=None, timeout: float | None = None):
        MPI = import_mpi()
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.timeout = default_timeout() if timeout is None else float(timeout)

    def iallreduce(self, arr) -> Request:
        host, target = _host(arr)
        req = self.comm.Iallreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM)
        return _MPIRequest(self, req, host, target)

    def bcast(self, arr, root: int = 0) -> None:
        host, target = _host(arr)
        req = self.comm.Ibcast(host, root=root)
        _MPIRequest(self, req, host, target).wait()

    def allgather_bytes(self, data: bytes) -> list[bytes]:
        n = np.zeros(self.size, dtype=np.int64)
        mine = np.frombuffer(bytes(data), dtype=np.uint8)
        req = self.comm.Iallgather(np.array([mine.size], dtype=np.int64), n)
        _MPIRequest(self, req, None, None).wait()
        width = int(n.max()) if self.size else 0
        send = np.zeros(width, dtype=np.uint8)
        send[:mine.size] = mine
        recv = np.zeros(width * self.size, dtype=np.uint8)
        req = self.comm.Iallgather(send, recv)
        _MPIRequest(self, req, None, None).wait()
        return [recv[i * width:i * width + int(n[i])].tobytes()
                for i in range(self.size)]

    def abort(self, code: int = 1):
        self.comm.Abort(code)


class CupyDevice:
    """How :class:`NCCLComm` reaches device memory: CuPy arrays and streams."""

    def __init__(self):
        import cupy  # noqa: PLC0415

        self.cupy = cupy

    def is_device(self, arr) -> bool:
        return isinstance(arr, self.cupy.ndarray)

    def to_device(self, host):
        return self.cupy.asarray(host)

    def to_host(self, dev, out: np.ndarray) -> None:
        out[...] = dev.get()

    def ptr(self, arr) -> int:
        return int(arr.data.ptr)

    def stream(self) -> int:
        return int(self.cupy.cuda.get_current_stream().ptr)

    def record(self):
        ev = self.cupy.cuda.Event(disable_timing=True)
        ev.record()
        return ev

    @staticmethod
    def done(event) -> bool:
        return bool(event.done)


_NCCL_TYPES = {"float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
               "float16": "NCCL_FLOAT16", "int64": "NCCL_INT64",
               "int32": "NCCL_INT32", "uint8": "NCCL_UINT8"}


class _NCCLRequest(Request):
    def __init__(self, comm: NCCLComm, event, host, staged):
        self.comm, self.event, self.host, self.staged = comm, event, host, staged

    def wait(self) -> None:
        c = self.comm
        _backoff_wait(lambda: c.device.done(self.event),
                      time.monotonic() + c.timeout, c._nccl_timed_out)
        if self.host is not None:  # host array staged to the device
            c.device.to_host(self.staged, self.host)

    def test(self) -> bool:
        return bool(self.comm.device.done(self.event))


class NCCLComm(Communicator):
    """Collectives over NCCL (``cupy.cuda.nccl``) between GPUs.

    Args:
        rank, size: this process's rank and the number of ranks.
        uid: the NCCL unique id made by rank 0 (``nccl.get_unique_id()``) and
            handed to every rank.
        nccl: the NCCL module (default ``cupy.cuda.nccl``).
        device: device-memory adapter (default :class:`CupyDevice`).
    """

    name = "nccl"

    def __init__(self, rank: int, size: int, uid, nccl=None, device=None,
                 timeout: float | None = None):
        if nccl is None:
            nccl = import_nccl()
        self.nccl = nccl
        self.device = CupyDevice() if device is None else device
        self.rank, self.size = int(rank), int(size)
        self.timeout = default_timeout() if timeout is None else float(timeout)
        self.comm = nccl.NcclCommunicator(self.size, uid, self.rank)

    def _dtype(self, arr) -> int:
        name = _NCCL_TYPES.get(str(arr.dtype))
        if name is None:
            raise DistributedError(f"NCCL cannot reduce arrays of type {arr.dtype}")
        return getattr(self.nccl, name)

    def _stage(self, arr):
        if self.device.is_device(arr):
            return arr, None
        if not arr.flags["C_CONTIGUOUS"]:
            raise DistributedError("collectives need contiguous arrays")
        return self.device.to_device(arr), arr

    def iallreduce(self, arr) -> Request:
        dev, host = self._stage(arr)
        p = self.device.ptr(dev)
        self.comm.allReduce(p, p, dev.size, self._dtype(dev), self.nccl.NCCL_SUM,
                            self.device.stream())
        return _NCCLRequest(self, self.device.record(), host, dev)

    def bcast(self, arr, root: int = 0) -> None:
        dev, host = self._stage(arr)
        self.comm.bcast(self.device.ptr(dev), dev.size, self._dtype(dev), root,
                        self.device.stream())
        _NCCLRequest(self, self.device.record(), host, dev).wait()

    def allgather_bytes(self, data: bytes) -> list[bytes]:
        sizes = np.zeros(self.size, dtype=np.int64)
        sizes[self.rank] = len(data)
        self.allreduce(sizes)
        width = int(sizes.max())
        table = np.zeros((self.size, width), dtype=np.uint8)
        table[self.rank, :len(data)] = np.frombuffer(bytes(data), dtype=np.uint8)
        # Every rank fills only its own row: a sum is a gather.
        flat = table.reshape(-1)
        self.allreduce(flat)
        return [table[i, :int(sizes[i])].tobytes() for i in range(self.size)]

    def _nccl_timed_out(self):
        try:
            self.comm.abort()
        finally:
            self._timed_out("an NCCL collective")

    def abort(self, code: int = 1):
        try:
            self.comm.abort()
        finally:
            sys.exit(code)


def import_nccl():
    """``cupy.cuda.nccl``, or a DistributedError that says what is missing."""
    try:
        from cupy.cuda import nccl  # noqa: PLC0415
    except ImportError as exc:
        raise DistributedError(
            f"NCCL is not available ({exc}): install CuPy with NCCL "
            "(pip install 'recaffe[gpu]' nvidia-nccl-cu12), or run one process "
            "per GPU under mpirun, which stages gradients through the host"
        ) from None
    if not getattr(nccl, "available", True):
        raise DistributedError(
            "CuPy was built without NCCL: install nvidia-nccl-cu12, or run one "
            "process per GPU under mpirun, which stages gradients through the host"
        )
    return nccl
