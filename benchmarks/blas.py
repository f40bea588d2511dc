"""The talk's "MKL vs ATLAS vs OpenBLAS" experiment: sgemm throughput and an
LSTM LM train step with its GEMMs routed through each library
(:func:`recaffe.backend.blas.gemm`). Each library runs in its own process."""

from __future__ import annotations

import numpy as np

from benchmarks.common import median_time

LIBS = [("numpy (bundled OpenBLAS)", "numpy"),
        ("OpenBLAS (Debian libopenblas0-pthread)",
         "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0"),
        ("MKL (pip mkl)", "mkl"), ("ATLAS (Debian libatlas3-base)", "atlas"),
        ("BLIS (Debian libblis4-openmp)", "blis")]
SIZES = [(128, 128, 128), (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048),
         (3200, 577, 2048), (64, 512, 2048)]


def _select(lib: str, threads: int):
    from recaffe.backend import blas  # noqa: PLC0415

    blas.set_blas(lib)
    blas.set_num_threads(threads)
    return blas


def sgemm(lib: str, threads: int) -> dict:
    blas = _select(lib, threads)
    rng = np.random.default_rng(0)
    out = {}
    for m, k, n in SIZES:
        a = rng.random((m, k), dtype=np.float32)
        b = rng.random((k, n), dtype=np.float32)
        c = np.empty((m, n), np.float32)
        t = median_time(lambda a=a, b=b, c=c: blas.gemm(a, b, c), 5, warmup=2,
                        min_time=0.3)
        out[f"{m}x{k}x{n}"] = 2.0 * m * k * n / t / 1e9
    return {"gflops": out, "info": {k: str(v) for k, v in blas.info().items()}}


def lstm_step(lib: str, threads: int, T=50, N=64, V=65, H=512, iters=3) -> dict:
    """A NumPy LSTM LM train step (1 layer) whose GEMMs all go through gemm()."""
    blas = _select(lib, threads)
    g = blas.gemm
    rng = np.random.default_rng(0)
    f32 = np.float32
    Wx = rng.uniform(-.08, .08, (V, 4 * H)).astype(f32)
    Wh = rng.uniform(-.08, .08, (H, 4 * H)).astype(f32)
    b = np.zeros(4 * H, f32)
    Wo = rng.uniform(-.08, .08, (H, V)).astype(f32)
    ids = rng.integers(0, V, (T, N))
    X = np.zeros((T * N, V), f32)
    X[np.arange(T * N), ids.reshape(-1)] = 1
    lab = np.roll(ids, -1, axis=0).reshape(-1)
    G = np.empty((T, N, 4 * H), f32)
    Hs = np.zeros((T + 1, N, H), f32)
    Cs = np.zeros((T + 1, N, H), f32)
    dG = np.empty_like(G)
    dWx, dWh, dWo = np.empty_like(Wx), np.empty_like(Wh), np.empty_like(Wo)
    logits = np.empty((T * N, V), f32)
    dh_all = np.empty((T * N, H), f32)

    def sig(x):
        return 0.5 * np.tanh(0.5 * x) + 0.5

    def step():
        g(X, Wx, G.reshape(T * N, 4 * H))
        G[...] += b
        for t in range(T):
            g(Hs[t], Wh, G[t], beta=1.0)
            gt = G[t]
            gt[:, :3 * H] = sig(gt[:, :3 * H])
            gt[:, 3 * H:] = np.tanh(gt[:, 3 * H:])
            i, f, o, gg = (gt[:, k * H:(k + 1) * H] for k in range(4))
            Cs[t + 1] = f * Cs[t] + i * gg
            Hs[t + 1] = o * np.tanh(Cs[t + 1])
        hs = Hs[1:].reshape(T * N, H)
        g(hs, Wo, logits)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(T * N), lab] -= 1
        p /= T * N
        g(hs, p, dWo, trans_a=True)
        g(p, Wo, dh_all, trans_b=True)
        dh_all3 = dh_all.reshape(T, N, H)
        dh = np.zeros((N, H), f32)
        dc = np.zeros((N, H), f32)
        for t in range(T - 1, -1, -1):
            gt = G[t]
            i, f, o, gg = (gt[:, k * H:(k + 1) * H] for k in range(4))
            tc = np.tanh(Cs[t + 1])
            dht = dh_all3[t] + dh
            dc = dc + dht * o * (1 - tc * tc)
            d = dG[t]
            d[:, :H] = dc * gg * i * (1 - i)
            d[:, H:2 * H] = dc * Cs[t] * f * (1 - f)
            d[:, 2 * H:3 * H] = dht * tc * o * (1 - o)
            d[:, 3 * H:] = dc * i * (1 - gg * gg)
            dc = dc * f
            dh = g(d, Wh, None, trans_b=True)
        dG2 = dG.reshape(T * N, 4 * H)
        g(X, dG2, dWx, trans_a=True)
        g(Hs[:-1].reshape(T * N, H), dG2, dWh, trans_a=True)
        for w, dw in ((Wx, dWx), (Wh, dWh), (Wo, dWo)):
            w -= 0.01 * dw

    return {"s": median_time(step, iters, warmup=1)}


def run(quick: bool, threads: int) -> tuple[str, list[dict]]:
    from benchmarks.common import fmt_ms, run_worker, table  # noqa: PLC0415

    rows, records = [], []
    for label, lib in LIBS:
        r = run_worker("blas", "sgemm", {"lib": lib, "threads": threads}, threads)
        if "error" in r:
            rows.append([label, r["error"]] + ["-"] * (len(SIZES) + 1))
            continue
        s = run_worker("blas", "lstm_step", {"lib": lib, "threads": threads,
                                             "iters": 2 if quick else 5}, threads)
        gf = r["gflops"]
        rows.append([label] + [f"{gf[f'{m}x{k}x{n}']:.1f}" for m, k, n in SIZES]
                    + [fmt_ms(s.get("s")) if s.get("s") else s.get("error", "-")])
        records.append({"bench": "blas", "lib": label, **r, "lstm_step_s": s.get("s")})
    text = ("sgemm GFLOP/s (m x k x n) and a NumPy LSTM LM train step (V=65 T=50 N=64 "
            "H=512) with every GEMM through the library\n\n"
            + table(["library"] + [f"{m}x{k}x{n}" for m, k, n in SIZES]
                    + ["LSTM step ms"], rows))
    return text, records
