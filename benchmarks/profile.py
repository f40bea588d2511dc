"""Per-phase profile of the LSTM LM train step (the ``lstm`` suite's model).

One worker per case. Before the net is built, the BLAS entry points
(``np.dot``, ``np.matmul``, ``recaffe.backend.blas.matmul``/``matmul_acc``,
oneDNN's ``PackedMatmul``),
the cell kernels (``recaffe.backend.cpu_kernels.lstm_*``), the LSTM layer's
compiled whole-sequence loops and ``np.tanh`` are wrapped with timers (the
plan's kernels bind them when the plan is built, so they are timed too). The
compiled loops call BLAS from inside; their GEMMs are timed afterwards by
making the same calls alone (``np.matmul`` on the layer's own arrays), and
the rest of the loops' time counts as element-wise. An iteration is then
split into:

- **GEMM**: time inside BLAS calls and oneDNN's matmul (an unrolled net's
  recurrent products through ``PackedMatmul``, packing included);
- **element-wise**: the cell kernels, ``np.tanh``, the compiled loops less
  their GEMMs;
- **oneDNN**: the LSTM layer's calls of oneDNN's primitives (forward and
  backward whole, packing the weights included), where they run;
- **other forward/backward**: the rest of ``forward`` + ``backward`` (Python
  control flow, the per-step call overhead, small numpy operations, copies,
  the softmax loss);
- **solver**: ``apply_update`` (momentum SGD over the flat parameters) and
  clearing the diffs.

The timers add about 0.3 µs per wrapped call, which lands in the phase it
wraps. Reported: medians over the timed iterations, in ms.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from benchmarks.lstm import _data, lm_net
from benchmarks.recaffe_util import feed, make_solver, set_plan

PHASES = ("gemm", "elementwise", "onednn", "other", "solver")


class _Timed:
    """Calls ``fn``, adding the time to ``acc[key]``; other attributes are
    ``fn``'s (code that reads ``np.tanh.nin`` still works)."""

    def __init__(self, fn, acc, key):
        self._fn, self._acc, self._key = fn, acc, key

    def __call__(self, *a, **k):
        acc = self._acc
        if acc["depth"]:  # inside another timed call (blas.matmul -> np.matmul)
            return self._fn(*a, **k)
        acc["depth"] = 1
        t0 = time.perf_counter()
        try:
            return self._fn(*a, **k)
        finally:
            acc[self._key] += time.perf_counter() - t0
            acc["depth"] = 0

    def __getattr__(self, name):
        return getattr(self._fn, name)


def _wrap(owner, name, acc, key):
    setattr(owner, name, _Timed(getattr(owner, name), acc, key))


def _wrap_method(cls, name, acc, key):
    """Times a method of ``cls`` (a plain function wrapper, so that it binds)."""
    fn = getattr(cls, name)
    timed = _Timed(fn, acc, key)

    def method(self, *a, **k):
        return timed(self, *a, **k)

    setattr(cls, name, method)


def profile_step(T, N, V, H, layers, impl="layer", iters=5) -> dict:
    from recaffe.backend import blas, cpu_kernels, onednn  # noqa: PLC0415

    acc = {"gemm": 0.0, "elementwise": 0.0, "loops": 0.0, "onednn": 0.0, "depth": 0}
    _wrap(np, "dot", acc, "gemm")
    _wrap(np, "matmul", acc, "gemm")
    _wrap(blas, "matmul", acc, "gemm")
    _wrap(blas, "matmul_acc", acc, "gemm")
    _wrap(np, "tanh", acc, "elementwise")
    for name in ("lstm_forward_step", "lstm_backward_step_t", "lstm_cell",
                 "lstm_output", "lstm_unit_forward", "lstm_unit_backward"):
        _wrap(cpu_kernels, name, acc, "elementwise")
    for name in ("lstm_seq_forward", "lstm_seq_backward"):
        _wrap(cpu_kernels, name, acc, "loops")
    for owner, name in ((onednn.LSTMTraining, "forward"), (onednn.LSTMTraining,
                        "backward"), (onednn.LSTMInference, "run")):
        _wrap_method(owner, name, acc, "onednn")
    for name in ("run", "pack"):
        _wrap_method(onednn.PackedMatmul, name, acc, "gemm")
    set_plan(True)
    solver = make_solver(lm_net(T, N, V, H, layers, impl), lr=0.01)
    x, cont, label = _data(T, N, V)
    net = solver.net
    feed(net, {"x": x, "cont": cont, "label": label})
    rows = []
    for it in range(iters + 2):
        acc["gemm"] = acc["elementwise"] = acc["loops"] = acc["onednn"] = 0.0
        t0 = time.perf_counter()
        net.clear_param_diffs()
        net.forward_prefilled()
        net.backward_all()
        t1 = time.perf_counter()
        solver.apply_update()
        t2 = time.perf_counter()
        if it >= 2:  # warm-up: plan build, kernel compilation
            rows.append({"total": t2 - t0, "gemm": acc["gemm"],
                         "elementwise": acc["elementwise"], "loops": acc["loops"],
                         "onednn": acc["onednn"],
                         "other": (t1 - t0) - acc["gemm"] - acc["elementwise"]
                         - acc["loops"] - acc["onednn"],
                         "solver": t2 - t1})
    loop_gemm = _loop_gemms(net) if any(r["loops"] for r in rows) else 0.0
    for r in rows:
        r["gemm"] += loop_gemm
        r["elementwise"] += r["loops"] - loop_gemm
    return {k: statistics.median(r[k] for r in rows) for k in (*PHASES, "total")}


def _loop_gemms(net, reps: int = 5) -> float:
    """Seconds the compiled loops of ``net``'s LSTM layers spend in BLAS per
    iteration: their products, made alone on the layers' arrays (forward
    ``[W_hc | W_xc] [h~_t | x_t]^T``, or ``W_hc h~_t^T`` where the inputs
    are projected first, into the gate block; backward ``W_hc^T dG_t``),
    median of ``reps``."""
    calls = []
    for layer in net.layers:
        if layer.type != "LSTM" or getattr(layer, "_kept", None) is None:
            continue
        w_hc = layer.blobs[-1].data
        w = w_hc if layer._wcat is None else layer._wcat  # fewer than 16 streams
        acts, src, dg, dht = layer._acts, layer._src, layer._gx, layer._dht
        for t in range(layer.T):
            calls.append((w, src[t].T, acts[t]))
            if t:
                calls.append((w_hc.T, dg[:, t], dht))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for a, b, out in calls:
            np.matmul(a, b, out=out)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


CASES = [  # (label, T, N, V, H, layers, impl)
    ("H=512 N=64, 1 layer, LSTM layer", 50, 64, 65, 512, 1, "layer"),
    ("H=512 N=64, 1 layer, unroll-built", 50, 64, 65, 512, 1, "unroll"),
    ("H=128 N=32, 1 layer, LSTM layer", 50, 32, 65, 128, 1, "layer"),
    ("H=128 N=32, 1 layer, unroll-built", 50, 32, 65, 128, 1, "unroll"),
]


def run(quick: bool, threads: int) -> tuple[str, list[dict]]:
    from benchmarks.common import run_worker, table  # noqa: PLC0415

    iters = 3 if quick else 7
    rows, records = [], []
    for label, T, N, V, H, layers, impl in CASES:
        r = run_worker("profile", "profile_step",
                       {"T": T, "N": N, "V": V, "H": H, "layers": layers,
                        "impl": impl, "iters": iters}, threads)
        records.append({"bench": "profile", "case": label, **r})
        if "total" not in r:
            rows.append([label, r.get("error", "-")] + [""] * len(PHASES))
            continue
        tot = r["total"]
        rows.append([label, f"{tot * 1e3:.1f}"] + [
            f"{r[p] * 1e3:.1f} ({100 * r[p] / tot:.0f} %)" for p in PHASES])
    text = ("Per-phase profile of one LSTM LM train step (V=65, T=50), median ms\n\n"
            + table(["case", "total", "GEMM", "element-wise", "oneDNN LSTM",
                     "other fwd/bwd (Python, small ops)", "solver"], rows))
    return text, records
