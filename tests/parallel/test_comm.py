"""Communicator and reducer logic without MPI or GPUs.

The NCCL communicator runs against a stand-in of ``cupy.cuda.nccl``: ranks are
threads of this process, "device" arrays are numpy arrays reached through
their addresses (as NCCL reaches device memory through pointers), and the
stand-in's collectives meet at a barrier. The same stand-in drives the
gradient reducer and the data-parallel start-up checks.
"""

from __future__ import annotations

import ctypes
import threading
import time

import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import DistributedError
from recaffe.parallel import GradientReducer, NCCLComm, SelfComm
from recaffe.parallel.launch import decode_uid


class FakeNccl:
    """The part of ``cupy.cuda.nccl`` that NCCLComm uses, for thread ranks."""

    NCCL_SUM = 0
    NCCL_FLOAT32, NCCL_FLOAT64, NCCL_FLOAT16 = 7, 8, 6
    NCCL_INT64, NCCL_INT32, NCCL_UINT8 = 4, 2, 1
    _DT = {7: np.float32, 8: np.float64, 6: np.float16, 4: np.int64, 2: np.int32,
           1: np.uint8}

    def __init__(self, size: int):
        self.size = size
        self.barrier = threading.Barrier(size, timeout=20)
        self.slots: dict = {}
        self.aborted = []
        self.hang_rank = None
        fake = self

        class NcclCommunicator:
            def __init__(self, n, uid, rank):
                assert n == fake.size
                self.rank = rank

            def _view(self, ptr, count, dtype):
                ct = ctypes.c_char * (count * np.dtype(fake._DT[dtype]).itemsize)
                return np.frombuffer(ct.from_address(ptr), dtype=fake._DT[dtype])

            def allReduce(self, send, recv, count, dtype, op, stream):
                if self.rank == fake.hang_rank:
                    return  # never joins: the others must time out
                a = self._view(send, count, dtype)
                fake.slots[self.rank] = a.copy()
                fake.barrier.wait()
                total = sum(fake.slots[r] for r in range(fake.size))
                fake.barrier.wait()
                self._view(recv, count, dtype)[...] = total
                fake.barrier.wait()

            def bcast(self, buf, count, dtype, root, stream):
                a = self._view(buf, count, dtype)
                if self.rank == root:
                    fake.slots["root"] = a.copy()
                fake.barrier.wait()
                a[...] = fake.slots["root"]
                fake.barrier.wait()

            def abort(self):
                fake.aborted.append(self.rank)

        self.NcclCommunicator = NcclCommunicator


class HostDevice:
    """Device adapter whose "device" is the host (synchronous collectives)."""

    def is_device(self, arr) -> bool:
        return getattr(arr, "_on_device", False) or isinstance(arr, DeviceArray)

    def to_device(self, host):
        return DeviceArray(np.array(host))

    def to_host(self, dev, out):
        out[...] = dev

    def ptr(self, arr) -> int:
        return arr.ctypes.data

    def stream(self) -> int:
        return 0

    def record(self):
        return object()

    @staticmethod
    def done(event) -> bool:
        return True


class DeviceArray(np.ndarray):
    def __new__(cls, a):
        return np.asarray(a).view(cls)


def run_ranks(size, body, nccl=None):
    """Run ``body(comm)`` in ``size`` threads; returns the results by rank."""
    nccl = FakeNccl(size) if nccl is None else nccl
    out, errors = [None] * size, []

    def worker(r):
        try:
            comm = NCCLComm(r, size, b"uid", nccl=nccl, device=HostDevice(),
                            timeout=2.0)
            out[r] = body(comm)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append((r, exc))

    threads = [threading.Thread(target=worker, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out, errors


def test_nccl_allreduce_and_bcast_of_host_and_device_arrays():
    def body(comm):
        host = np.full(5, comm.rank + 1, dtype=np.float32)
        comm.allreduce(host)  # host array: staged to the "device" and back
        dev = DeviceArray(np.arange(4, dtype=np.float64) * (comm.rank + 1))
        comm.allreduce(dev)
        b = np.full(3, comm.rank, dtype=np.int64)
        comm.bcast(b, root=2)
        return host, np.asarray(dev), b

    out, errors = run_ranks(3, body)
    assert not errors
    for host, dev, b in out:
        np.testing.assert_array_equal(host, np.full(5, 6, np.float32))
        np.testing.assert_array_equal(dev, np.arange(4) * 6.0)
        np.testing.assert_array_equal(b, [2, 2, 2])


def test_nccl_request_test_polls_without_blocking():
    def body(comm):
        a = DeviceArray(np.full(3, comm.rank + 1.0, dtype=np.float32))
        req = comm.iallreduce(a)
        done = req.test()
        req.wait()
        return done, np.asarray(a)

    out, errors = run_ranks(2, body)
    assert not errors
    for done, a in out:
        assert done is True  # the stand-in's stream has finished
        np.testing.assert_array_equal(a, [3.0, 3.0, 3.0])
    assert SelfComm().iallreduce(np.zeros(1)).test() is True


def test_nccl_allgather_bytes_of_different_lengths():
    out, errors = run_ranks(3, lambda c: c.allgather_bytes(b"r" * (c.rank + 1)))
    assert not errors
    assert out == [[b"r", b"rr", b"rrr"]] * 3


def test_nccl_refuses_unsupported_dtypes():
    _, errors = run_ranks(1, lambda c: c.allreduce(np.zeros(2, np.complex64)))
    assert errors and "NCCL cannot reduce arrays of type complex64" in str(errors[0][1])


def test_nccl_collective_that_never_completes_times_out_and_aborts():
    nccl = FakeNccl(2)

    class NeverDone(HostDevice):
        @staticmethod
        def done(event) -> bool:
            return False

    def body(comm):
        comm.device = NeverDone()
        req = comm.iallreduce(DeviceArray(np.zeros(2, np.float32)))
        assert req.test() is False  # polling never blocks
        req.wait()

    nccl.barrier = threading.Barrier(2, timeout=20)
    t0 = time.monotonic()
    _, errors = run_ranks(2, body, nccl)
    assert time.monotonic() - t0 < 15
    assert len(errors) == 2
    for r, exc in errors:
        assert isinstance(exc, DistributedError)
        assert f"rank {r} of 2" in str(exc)
        assert "did not complete within 2 s" in str(exc)
    assert sorted(nccl.aborted) == [0, 1]


def _params(seed: int, shapes):
    rng = np.random.default_rng(seed)
    blobs = []
    for s in shapes:
        b = Blob(s)
        b.diff[...] = rng.standard_normal(s).astype(np.float32)
        blobs.append(b)
    return blobs


@pytest.mark.parametrize("bucket_mb", [1e-4, 16.0])
def test_reducer_averages_diffs_loss_and_counts_requests(bucket_mb):
    shapes = [(7, 5), (5,), (3, 2, 4), (11,)]
    per_rank = [_params(r, shapes) for r in range(3)]
    expect = [np.mean([per_rank[r][i].diff for r in range(3)], axis=0)
              for i in range(len(shapes))]

    def body(comm):
        red = GradientReducer(per_rank[comm.rank], comm, bucket_mb=bucket_mb)
        res = red.reduce(float(comm.rank), snapshot=comm.rank == 1,
                         stop=comm.rank != 0)
        return res, len(red.buckets)

    out, errors = run_ranks(3, body)
    assert not errors
    for (loss, n_snap, n_stop), nb in out:
        assert loss == pytest.approx(1.0)
        assert (n_snap, n_stop) == (1, 2)
        # 104-byte buckets close after 35 | 5+24 | 11 (+ loss, counts) floats
        assert nb == (3 if bucket_mb < 1 else 1)
    for r in range(3):
        for i in range(len(shapes)):
            np.testing.assert_allclose(per_rank[r][i].diff, expect[i], rtol=1e-6)


def test_reducer_on_one_rank_leaves_diffs_alone():
    params = _params(0, [(4, 3)])
    before = params[0].diff.copy()
    loss, n_snap, n_stop = GradientReducer(params, SelfComm()).reduce(2.5, stop=True)
    np.testing.assert_array_equal(params[0].diff, before)
    assert (loss, n_snap, n_stop) == (2.5, 0, 1)


def test_nccl_uid_round_trips_through_the_launcher_encoding():
    uid = tuple(range(-128, 128, 2))
    raw = bytes(x & 0xFF for x in uid)
    assert decode_uid(bytes.fromhex(raw.hex())) == uid
