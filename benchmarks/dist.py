"""Data-parallel training: samples/s at 1 and 2 ranks, the allreduce share, and
the cost model of docs/distributed.md fed with this machine's measurements.

Models (weak scaling: each rank keeps its batch, so N ranks train N times the
samples per iteration): the char-level LSTM LM of ``benchmarks.lstm`` and the
binary-addition RNN of ``benchmarks.rnn``. Every configuration runs as its own
``mpirun -n K`` job (Open MPI from ``pip install 'recaffe[mpi]'``): 2 ranks
with ``threads // 2`` BLAS threads each, one rank on all threads, and one rank
on ``threads // 2`` (the compute of one rank of the 2-rank job, which the cost
model scales). The allreduce share is the time the solver spends in the
gradient reducer (packing, transfer, unpacking) over the whole iteration.

The cost model: ``t_iter(N) = t_compute + t_allreduce(N, P)`` with a ring
allreduce ``t_allreduce = 2 (N-1) alpha + 2 (N-1)/N * P / bandwidth`` for P
parameter bytes; ``t_compute`` and P are measured here, alpha and bandwidth
are those of the named networks.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

from benchmarks.common import ROOT, result_of, table, thread_env

MODELS = {
    # name: (builder kwargs, batch per rank)
    "lstm_lm": dict(T=32, N=16, V=64, H=256),
    "binary_addition": dict(T=9, N=50, H=16),
}
NETWORKS = {"25 Gb/s Ethernet": (25e9 / 8, 10e-6), "100 Gb/s": (100e9 / 8, 3e-6)}
RANKS = (1, 2, 4, 8, 16, 32, 64)


def _solver(model: str, quick: bool):
    from benchmarks import lstm, rnn
    from benchmarks.recaffe_util import feed, make_solver

    kw = MODELS[model]
    if model == "lstm_lm":
        solver = make_solver(lstm.lm_net(kw["T"], kw["N"], kw["V"], kw["H"], 1),
                             lr=0.01)
        x, cont, label = lstm._data(kw["T"], kw["N"], kw["V"])
        feed(solver.net, {"x": x, "cont": cont, "label": label})
        return solver, kw["N"], (8 if quick else 30)
    solver = make_solver(rnn.talk_manual_net(kw["T"], kw["N"], kw["H"]), lr=0.01)
    data, label = rnn._data(kw["T"], kw["N"])
    feed(solver.net, {"data": data, "label": label})
    return solver, kw["N"], (100 if quick else 400)


def worker(model: str, quick: bool) -> dict:
    """One rank of a timing job (run under mpirun); rank 0 returns the result."""
    from recaffe import parallel

    ctx = parallel.init()
    solver, batch, iters = _solver(model, quick)
    dp = parallel.DataParallel(solver) if ctx.size > 1 else None
    solver.step(max(3, iters // 10))  # warm-up
    red = dp.reducer if dp is not None else None
    t_red0 = red.total_seconds if red else 0.0
    ctx.comm.allreduce(np.zeros(1, np.float32))
    t0 = time.perf_counter()
    solver.step(iters)
    ctx.comm.allreduce(np.zeros(1, np.float32))
    wall = time.perf_counter() - t0
    t_red = (red.total_seconds - t_red0) if red else 0.0
    nbytes = sum(b.count * b.data.dtype.itemsize for b in solver.net.learnable_params)
    out = {"model": model, "ranks": ctx.size, "iter_s": wall / iters,
           "samples_s": ctx.size * batch * iters / wall,
           "reduce_share": t_red / wall, "param_bytes": nbytes,
           "reduce_s": t_red / iters}
    if ctx.size > 1:
        out["alpha_beta"] = _alpha_beta(ctx.comm)
    return out if ctx.rank == 0 else {}


def _alpha_beta(comm) -> dict:
    """Allreduce time of 4 B and 4 MiB here: alpha and bandwidth of this
    machine's shared-memory transport (fit of t = a + P / bw)."""
    res = {}
    for nbytes in (4, 4 << 20):
        buf = np.zeros(nbytes // 4, np.float32)
        for _ in range(3):
            comm.allreduce(buf)
        n = 50 if nbytes == 4 else 10
        t0 = time.perf_counter()
        for _ in range(n):
            comm.allreduce(buf)
        res[nbytes] = (time.perf_counter() - t0) / n
    small, big = res[4], res[4 << 20]
    return {"alpha_s": small, "bandwidth_Bps": (4 << 20) / max(big - small, 1e-9)}


def _launch(model: str, ranks: int, threads: int, quick: bool) -> dict:
    """``mpirun -n ranks`` of :func:`worker` with ``threads`` per rank."""
    from recaffe.parallel.launch import find_mpirun

    env = thread_env(threads)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = [find_mpirun(), "-n", str(ranks), "--oversubscribe", "--bind-to", "none",
           sys.executable, "-m", "benchmarks.dist", "--worker", model,
           "quick" if quick else "full"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=900, check=False)
    return result_of(p)


def model_rows(t_compute: float, nbytes: int) -> list[list]:
    """Predicted iteration time and weak-scaling efficiency for 1-64 ranks."""
    rows = []
    for n in RANKS:
        row = [n]
        for bw, alpha in NETWORKS.values():
            t_ar = 0.0 if n == 1 else \
                2 * (n - 1) * alpha + 2 * (n - 1) / n * nbytes / bw
            t = t_compute + t_ar
            row += [f"{t * 1e3:.2f}", f"{t_compute / t:.0%}"]
        rows.append(row)
    return rows


def run(quick: bool, threads: int) -> tuple[str, list[dict]]:
    from recaffe.parallel.launch import find_mpirun

    if find_mpirun() is None:
        return ("dist: no mpirun (pip install 'recaffe[mpi]')", [])
    out, records = [], []
    for model in MODELS:
        # (ranks, threads per rank): 1 rank on all threads, 1 rank on a half
        # (the compute of one rank of the 2-rank job), 2 ranks on a half each.
        half = max(1, threads // 2)
        configs = [(1, threads)] + ([(1, half)] if half != threads else []) + \
            [(2, half)]
        res = {c: _launch(model, c[0], c[1], quick) for c in configs}
        records += list(res.values())
        if any("error" in r for r in res.values()):
            out.append(f"{model}: " + "; ".join(r.get("error", "ok")
                                                for r in res.values()))
            continue
        one, two = res[(1, half)], res[(2, half)]
        rows = [[f"{k} x {t} thread(s)", f"{r['iter_s'] * 1e3:.2f}",
                 f"{r['samples_s']:.0f}", f"{r['reduce_share']:.1%}",
                 f"{r['reduce_s'] * 1e3:.3f}"] for (k, t), r in res.items()]
        ab = two["alpha_beta"]
        out.append(f"{model}: {MODELS[model]}, {one['param_bytes'] / 2**20:.2f} MiB "
                   "of gradients\n" + table(
                       ["ranks", "ms/iter", "samples/s", "allreduce share",
                        "reduce ms/iter"], rows)
                   + f"\n2 ranks / 1 rank ({half} thread(s) per rank) samples/s: "
                     f"{two['samples_s'] / one['samples_s']:.2f}x; allreduce on "
                     f"this machine: alpha {ab['alpha_s'] * 1e6:.1f} us, "
                     f"{ab['bandwidth_Bps'] / 1e9:.2f} GB/s")
        heads = ["ranks"]
        for name in NETWORKS:
            heads += [f"{name} ms/iter", "efficiency"]
        out.append(f"model for {model} (t_compute {one['iter_s'] * 1e3:.2f} ms at "
                   f"1 rank, P = {one['param_bytes']} bytes):\n"
                   + table(heads, model_rows(one["iter_s"], one["param_bytes"])))
    return "\n\n".join(out), records


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        result = worker(sys.argv[2], sys.argv[3] == "quick")
        if result:
            print("RESULT " + json.dumps(result), flush=True)
    else:
        from benchmarks.__main__ import main

        sys.exit(main(["dist", *sys.argv[1:]]))
