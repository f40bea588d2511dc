"""Binary-addition RNN (the talk's net): train step time, recaffe vs PyTorch vs NumPy.

Net (T steps, N streams, H hidden): ``zX_t = IP(x_t)`` (params WX, bX),
``zH_t = IP(H_{t-1})`` (WH, no bias), ``H_t = sigmoid(zX_t + zH_t)``,
``out_t = IP(H_t)`` (WO, bO, 1 output), ``Concat`` over t, ``EuclideanLoss``.
A train step is forward + backward + SGD-with-momentum update.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from benchmarks.common import ROOT, median_time
from benchmarks.recaffe_util import feed, make_solver, set_plan

#: Small enough that no implementation diverges (saturated sigmoids and
#: denormals would distort the timings).
LR = 0.01


def talk_manual_net(T: int, N: int, H: int):
    """The talk's hand-written loop (slide "Binary Addition with RNN"), with
    ``num_hu = H`` and Input layers instead of HDF5Data."""
    import recaffe as caffe  # noqa: PLC0415
    from recaffe import layers as L  # noqa: PLC0415
    from recaffe import params as P  # noqa: PLC0415

    ns = caffe.NetSpec()
    ns.data, ns.label = L.Input(shape=[dict(dim=[N, 1, 1, 2 * T]), dict(dim=[N, T])],
                                ntop=2)
    X = L.Slice(ns.data, name="X", ntop=T,
                slice_param=dict(axis=3, slice_point=list(range(2, 2 * T, 2))))
    ns.H = L.DummyData(dummy_data_param=dict(shape=dict(dim=[N, 1, H]),
                                             data_filler=dict(type="constant")))
    output = []
    for t in range(T):
        step = str(t + 1)
        zX = L.InnerProduct(X[t], param=[dict(name="WX", lr_mult=1),
                                         dict(name="bX", lr_mult=1)],
                            num_output=H, weight_filler=dict(type="xavier"),
                            bias_filler=dict(type="constant"))
        setattr(ns, "zX" + step, zX)
        zH = L.InnerProduct(ns.H, param=dict(name="WH", lr_mult=1), bias_term=False,
                            num_output=H, weight_filler=dict(type="xavier"))
        setattr(ns, "zH" + step, zH)
        z = L.Eltwise(zX, zH, eltwise_param=dict(operation=P.Eltwise.SUM))
        setattr(ns, "z" + step, z)
        a = L.Sigmoid(z)
        setattr(ns, "a" + step, a)
        out = L.InnerProduct(a, param=[dict(name="WO", lr_mult=1),
                                       dict(name="bO", lr_mult=1)],
                             num_output=1, weight_filler=dict(type="xavier"),
                             bias_filler=dict(type="constant"))
        setattr(ns, "out" + step, out)
        output.append(out)
        ns.H = a
    ns.output = L.Concat(*output, concat_param=dict(axis=1))
    ns.loss = L.EuclideanLoss(ns.output, ns.label)
    return ns.to_proto()


def unroll_net(T: int, N: int, H: int):
    sys.path.insert(0, os.path.join(ROOT, "examples", "binary_addition"))
    from net_unroll import binary_addition_net  # noqa: PLC0415

    return binary_addition_net(T, N, None, num_hu=H)


def _data(T, N, seed=0):
    rng = np.random.default_rng(seed)
    high = 2 ** (T - 1)
    a, b = rng.integers(0, high, N), rng.integers(0, high, N)
    bits = np.arange(T)
    data = np.zeros((N, 1, 1, 2 * T), np.float32)
    data[:, 0, 0, 0::2] = (a[:, None] >> bits) & 1
    data[:, 0, 0, 1::2] = (b[:, None] >> bits) & 1
    label = (((a + b)[:, None] >> bits) & 1).astype(np.float32)
    return data, label


def recaffe_train(T, N, H, which="manual", plan=True, iters=200):
    set_plan(plan)
    param = talk_manual_net(T, N, H) if which == "manual" else unroll_net(T, N, H)
    solver = make_solver(param, lr=LR)
    data, label = _data(T, N)
    feed(solver.net, {"data": data, "label": label})
    t = median_time(lambda: solver.step(1), iters, warmup=10, min_time=1.0)
    return {"s": t, "loss": float(solver.net.blobs["loss"].data)}


def numpy_train(T, N, H, iters=200):
    """Hand-written NumPy BPTT of the same net (batched projections, fused loop)."""
    data, label = _data(T, N)
    X = np.ascontiguousarray(data.reshape(N, T, 2).transpose(1, 0, 2))  # (T, N, 2)
    Y = np.ascontiguousarray(label.T)                                  # (T, N)
    rng = np.random.default_rng(0)
    s = np.sqrt(3.0 / 2)
    p = {"WX": rng.uniform(-s, s, (H, 2)).astype(np.float32),
         "bX": np.zeros(H, np.float32),
         "WH": rng.uniform(-np.sqrt(3 / H), np.sqrt(3 / H), (H, H)).astype(np.float32),
         "WO": rng.uniform(-np.sqrt(3 / H), np.sqrt(3 / H), (1, H)).astype(np.float32),
         "bO": np.zeros(1, np.float32)}
    g = {k: np.zeros_like(v) for k, v in p.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    A = np.zeros((T + 1, N, H), np.float32)   # A[0] = h_0 = 0
    dZ = np.zeros((T, N, H), np.float32)
    lr, mom = LR, 0.9

    def step():
        ZX = X.reshape(T * N, 2) @ p["WX"].T
        ZX += p["bX"]
        ZX = ZX.reshape(T, N, H)
        WHt = p["WH"].T
        for t in range(T):
            z = ZX[t] + A[t] @ WHt
            np.multiply(z, 0.5, out=z)
            np.tanh(z, out=z)
            z *= 0.5
            z += 0.5
            A[t + 1] = z
        out = (A[1:].reshape(T * N, H) @ p["WO"].T).reshape(T, N) + p["bO"]
        d = out - Y
        loss = float((d * d).sum()) / (2 * N)
        d /= N
        g["WO"][...] = d.reshape(1, T * N) @ A[1:].reshape(T * N, H)
        g["bO"][...] = d.sum()
        dA = d[:, :, None] * p["WO"][0]
        dh = np.zeros((N, H), np.float32)
        WH = p["WH"]
        for t in range(T - 1, -1, -1):
            a = A[t + 1]
            dz = dZ[t]
            np.add(dA[t], dh, out=dz)
            dz *= a * (1 - a)
            dh = dz @ WH
        g["WH"][...] = dZ.reshape(T * N, H).T @ A[:-1].reshape(T * N, H)
        g["WX"][...] = dZ.reshape(T * N, H).T @ X.reshape(T * N, 2)
        g["bX"][...] = dZ.sum(axis=(0, 1))
        for k in p:
            m[k] *= mom
            m[k] += lr * g[k]
            p[k] -= m[k]
        return loss

    t = median_time(step, iters, warmup=10, min_time=1.0)
    return {"s": t, "loss": step()}


def torch_train(T, N, H, iters=200):
    import torch  # noqa: PLC0415

    data, label = _data(T, N)
    X = torch.from_numpy(np.ascontiguousarray(data.reshape(N, T, 2).transpose(1, 0, 2)))
    Y = torch.from_numpy(np.ascontiguousarray(label))
    torch.manual_seed(0)
    lx, lh = torch.nn.Linear(2, H), torch.nn.Linear(H, H, bias=False)
    lo = torch.nn.Linear(H, 1)
    params = [*lx.parameters(), *lh.parameters(), *lo.parameters()]
    opt = torch.optim.SGD(params, lr=LR, momentum=0.9)

    def step():
        opt.zero_grad()
        h = torch.zeros(N, H)
        outs = []
        for t in range(T):
            h = torch.sigmoid(lx(X[t]) + lh(h))
            outs.append(lo(h))
        out = torch.cat(outs, dim=1)
        loss = ((out - Y) ** 2).sum() / (2 * N)
        loss.backward()
        opt.step()
        return loss

    t = median_time(step, iters, warmup=10, min_time=1.0)
    return {"s": t, "loss": float(step())}


def run(quick: bool, threads: int) -> tuple[str, list[dict]]:
    from benchmarks.common import fmt_ms, run_worker, table, torch_available  # noqa: PLC0415

    T, N = 8, 100
    iters = 50 if quick else 300
    rows, records = [], []
    for H in (16, 128):
        kw = {"T": T, "N": N, "H": H, "iters": iters}
        res = {
            "PyTorch eager": run_worker("rnn", "torch_train", kw, threads)
            if torch_available() else {"error": "torch not installed"},
            "hand-written NumPy BPTT": run_worker("rnn", "numpy_train", kw, threads),
            "recaffe, talk's manual loop (plan)": run_worker(
                "rnn", "recaffe_train", {**kw, "which": "manual"}, threads),
            "recaffe, talk's manual loop (RECAFFE_PLAN=0)": run_worker(
                "rnn", "recaffe_train", {**kw, "which": "manual", "plan": False},
                threads),
            "recaffe, unroll-built (plan)": run_worker(
                "rnn", "recaffe_train", {**kw, "which": "unroll"}, threads),
            "recaffe, unroll-built (RECAFFE_PLAN=0)": run_worker(
                "rnn", "recaffe_train", {**kw, "which": "unroll", "plan": False},
                threads),
        }
        ref = res["PyTorch eager"].get("s")
        npy = res["hand-written NumPy BPTT"].get("s")
        for name, r in res.items():
            s = r.get("s")
            rows.append([H, name, fmt_ms(s) if s else r.get("error", "-"),
                         f"{s / ref:.2f}" if s and ref else "-",
                         f"{s / npy:.2f}" if s and npy else "-",
                         r.get("rss_mb", "-")])
            records.append({"bench": "rnn", "H": H, "name": name, **r})
    text = ("Binary-addition RNN, T=8, N=100, train step (forward+backward+SGD "
            "momentum), median\n\n" + table(
                ["H", "implementation", "ms/iter", "x PyTorch", "x NumPy BPTT",
                 "peak RSS MB"], rows))
    return text, records
