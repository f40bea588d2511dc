"""Timing, subprocess workers, sgemm throughput and table printing."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def median_time(fn, iters: int, warmup: int = 3, min_time: float = 0.0) -> float:
    """Median seconds of ``fn()`` over ``iters`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    t_start = time.perf_counter()
    while len(times) < iters or time.perf_counter() - t_start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM; ru_maxrss would include the parent's
    peak, which Linux carries across exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def root_env() -> dict:
    """This process's environment with the repository root first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def thread_env(threads: int, blas_env: dict | None = None) -> dict:
    env = root_env()
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "BLIS_NUM_THREADS"):
        env[k] = str(threads)
    env.update(blas_env or {})
    return env


def result_of(proc: subprocess.CompletedProcess, limit: int = 200) -> dict:
    """A worker's result: the JSON of its last ``RESULT `` line on stdout, else
    ``{"error": ...}`` with the last line of its stderr (or stdout) cut to
    ``limit`` characters."""
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"error": tail[0][:limit]}


def run_worker(module: str, func: str, kwargs: dict, threads: int,
               env: dict | None = None, timeout: float = 900) -> dict:
    """Run ``benchmarks.<module>.<func>(**kwargs)`` in a fresh interpreter.

    Returns its result dict plus ``rss_mb`` (the worker's peak RSS), or
    ``{"error": ...}`` when it failed (e.g. torch not installed).
    """
    cmd = [sys.executable, "-m", "benchmarks.worker", module, func, json.dumps(kwargs),
           str(threads)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env=thread_env(threads, env), cwd=ROOT, check=False)
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    return result_of(p)


def alternate(jobs: dict, threads: int, rounds: int = 1) -> dict:
    """Run the jobs (name -> ``(module, func, kwargs)``), each in its own
    worker, one after the other, ``rounds`` times over: machine speed that
    drifts during a run then reaches every job alike. Per job: the median of
    its rounds' times as ``s``, every round's time as ``s_rounds``, the
    largest peak RSS; a job that failed in any round gives that round's
    error."""
    per: dict[str, list[dict]] = {name: [] for name in jobs}
    for _ in range(max(1, rounds)):
        for name, (module, func, kwargs) in jobs.items():
            per[name].append(run_worker(module, func, kwargs, threads))
    out = {}
    for name, results in per.items():
        failed = [r for r in results if "s" not in r]
        if failed:
            out[name] = failed[0]
            continue
        merged = dict(results[0])
        merged["s_rounds"] = [r["s"] for r in results]
        merged["s"] = statistics.median(merged["s_rounds"])
        rss = [r["rss_mb"] for r in results if isinstance(r.get("rss_mb"), int | float)]
        if rss:
            merged["rss_mb"] = max(rss)
        out[name] = merged
    return out


def lstm_rows(module: str, torch_name: str, torch_func: str, recaffe_func: str,
              kw: dict, threads: int, rounds: int = 1,
              extra: dict | None = None) -> dict:
    """The three implementations an LSTM suite compares, run with
    :func:`alternate`: PyTorch (``torch_name``, an error row without torch),
    recaffe's ``LSTM`` layer, the unroll-built LSTM (``impl="unroll"``) and
    the same with ``Net.share_buffers`` on, then ``extra`` rows (name ->
    keyword arguments added to ``kw``)."""
    jobs = {torch_name: (module, torch_func, kw),
            "recaffe LSTM layer": (module, recaffe_func, kw),
            "recaffe unroll-built LSTM": (module, recaffe_func,
                                          {**kw, "impl": "unroll"}),
            SHARED: (module, recaffe_func, {**kw, "impl": "unroll", "share": True})}
    for name, more in (extra or {}).items():
        jobs[name] = (module, recaffe_func, {**kw, **more})
    if not torch_available():
        jobs.pop(torch_name)
    return {torch_name: {"error": "torch not installed"},
            **alternate(jobs, threads, rounds)}


OWN_LOOP = "recaffe LSTM layer, own loop (oneDNN off)"
SHARED = "recaffe unroll-built LSTM, shared buffers"


def own_loop_row(n: int) -> dict | None:
    """The extra row for :func:`lstm_rows` where the ``LSTM`` layer runs
    oneDNN's primitives (N streams): the layer with its own loop."""
    from recaffe.backend import onednn  # noqa: PLC0415

    if n < onednn.MIN_N or not onednn.available():
        return None
    return {OWN_LOOP: {"onednn": False}}


def sgemm_gflops(m: int, k: int, n: int, iters: int = 5) -> float:
    """numpy float32 GEMM throughput (GFLOP/s) for (m, k) @ (k, n)."""
    import numpy as np  # noqa: PLC0415

    rng = np.random.default_rng(0)
    a = rng.random((m, k), dtype=np.float32)
    b = rng.random((k, n), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    t = median_time(lambda: np.matmul(a, b, out=out), iters, warmup=2, min_time=0.3)
    return 2.0 * m * k * n / t / 1e9


def fmt_ms(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1e3:.3f}" if s < 0.01 else (f"{s * 1e3:.2f}" if s < 1 else
                                              f"{s * 1e3:.0f}")


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table."""
    cells = [[str(c) for c in r] for r in rows]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers)
           + "|"]
    out += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(out)


def torch_available() -> bool:
    try:
        import importlib.util  # noqa: PLC0415

        return importlib.util.find_spec("torch") is not None
    except Exception:  # noqa: BLE001
        return False
