"""Several GPUs on one machine: ``recaffe train -gpu 0,1`` / ``-gpu all``.

The launcher starts one ``recaffe train`` process per GPU (rank r on the r-th
listed GPU), hands them the rank, the number of ranks and an NCCL unique id in
``RECAFFE_*`` variables, and supervises them: SIGINT and SIGHUP are passed on
to every rank (so they stop or snapshot together, as one process would); when
one rank fails, the others are stopped (SIGTERM, then SIGKILL after a grace
period) and the error names the rank and its GPU.

Under ``mpirun`` no launcher runs: each MPI rank takes the GPU ``ids[rank]`` and
reduces over NCCL when CuPy has it, else over MPI with host staging.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

from recaffe.errors import DistributedError

__all__ = ["child_env", "find_mpirun", "gpu_ids", "launch_gpus", "supervise"]


def _device_count() -> int:
    try:
        import cupy  # noqa: PLC0415
    except ImportError:
        raise DistributedError(
            "-gpu needs CuPy, which is not installed: pip install 'recaffe[gpu]' "
            "(or leave out -gpu to train on the CPU)") from None
    try:
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # noqa: BLE001 - CUDA raises its own types
        raise DistributedError(f"-gpu: no usable CUDA device ({exc})") from None


def gpu_ids(flag: str, device_count=_device_count) -> list[int]:
    """The device ids of a ``-gpu`` flag (``0``, ``0,1``, ``all``), checked
    against the machine's GPUs; ``[]`` for an empty flag (CPU)."""
    flag = flag.strip()
    if not flag:
        return []
    if flag == "all":
        n = device_count()
        if n < 1:
            raise DistributedError("-gpu all: this machine has no GPU")
        return list(range(n))
    try:
        ids = [int(x) for x in flag.split(",") if x.strip()]
    except ValueError:
        raise DistributedError(f"-gpu must be device ids like 0 or 0,1 or 'all', "
                               f"got '{flag}'") from None
    if not ids or min(ids) < 0:
        raise DistributedError(f"-gpu must list device ids >= 0, got '{flag}'")
    if len(set(ids)) != len(ids):
        raise DistributedError(f"-gpu lists a device twice: '{flag}'")
    n = device_count()
    bad = [i for i in ids if i >= n]
    if bad:
        have = f"ids 0 to {n - 1}" if n else "none"
        raise DistributedError(
            f"-gpu {flag}: no GPU {', '.join(map(str, bad))} on this machine, which "
            f"has {n} GPU(s) ({have}); run 'recaffe device_query' and list those")
    return ids


def child_env(base: dict, rank: int, size: int, uid: bytes, gpu: int = 0) -> dict:
    """The environment of rank ``rank`` (on GPU ``gpu``) of a multi-GPU job."""
    env = dict(base)
    env["RECAFFE_GPU"] = str(gpu)
    env["RECAFFE_RANK"] = str(rank)
    env["RECAFFE_WORLD_SIZE"] = str(size)
    env["RECAFFE_NCCL_UID"] = bytes(uid).hex()
    return env


def supervise(procs: list[subprocess.Popen], names: list[str],
              grace: float = 10.0, poll: float = 0.05) -> int:
    """Wait for every process; pass SIGINT/SIGHUP on; when one fails, stop the
    others. Returns 0, or raises DistributedError naming the failed rank."""
    forwarded = [signal.SIGINT] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP")
                                   else [])

    def forward(signum, frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in forwarded}
    try:
        failed = None
        while True:
            codes = [p.poll() for p in procs]
            failed = next((i for i, c in enumerate(codes) if c not in (None, 0)),
                          None)
            if failed is not None or all(c == 0 for c in codes):
                break
            time.sleep(poll)
        if failed is None:
            return 0
        _stop(procs, grace)
        code = procs[failed].returncode
        how = (f"was killed by signal {-code}" if code < 0
               else f"exited with status {code}")
        raise DistributedError(f"{names[failed]} {how}; the other ranks were stopped")
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _stop(procs: list[subprocess.Popen], grace: float) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        left = max(0.0, deadline - time.monotonic())
        try:
            p.wait(timeout=left)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def launch_gpus(argv: list[str], ids: list[int]) -> int:
    """Run ``recaffe train argv`` once per GPU of ``ids`` with NCCL between them."""
    from recaffe.parallel.comm import import_nccl  # noqa: PLC0415

    nccl = import_nccl()
    uid = encode_uid(nccl.get_unique_id())
    procs, names = [], []
    for rank, gpu in enumerate(ids):
        env = child_env(os.environ, rank, len(ids), uid, gpu)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "recaffe", "train", *argv], env=env))
        names.append(f"rank {rank} (GPU {gpu})")
    return supervise(procs, names)


def encode_uid(uid) -> bytes:
    """The NCCL unique id of ``nccl.get_unique_id()`` (signed chars) as bytes,
    to pass to other ranks (:func:`decode_uid` turns them back)."""
    return bytes(int(x) & 0xFF for x in uid)


def decode_uid(raw: bytes) -> tuple[int, ...]:
    """The NCCL unique id as ``NcclCommunicator`` takes it (signed chars)."""
    return tuple(b - 256 if b > 127 else b for b in raw)


def find_mpirun() -> str | None:
    """The ``mpirun`` next to the Python interpreter (the ``mpi`` extra's Open
    MPI) if there is one, else the one on ``PATH``; None when there is none."""
    local = os.path.join(os.path.dirname(sys.executable), "mpirun")
    return local if os.path.exists(local) else shutil.which("mpirun")
