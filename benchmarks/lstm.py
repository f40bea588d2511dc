"""Char-level LSTM language model: train step time, recaffe vs PyTorch, GEMM bound.

Model: one-hot characters (vocab V) -> LSTM (H, 1 or 2 layers) -> InnerProduct
(V) -> softmax cross-entropy, T steps x N streams, SGD with momentum. recaffe
runs it with its ``LSTM`` layer and with an ``unroll``-built LSTM
(:func:`recaffe.recurrent.cells.lstm`); PyTorch with ``nn.LSTM``.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import (
    fmt_ms,
    lstm_rows,
    median_time,
    own_loop_row,
    run_worker,
    table,
)
from benchmarks.recaffe_util import feed, make_solver, set_plan


def train_flops(T, N, V, H, layers) -> float:
    """GEMM FLOPs of one train step (forward, weight and data gradients; no
    gradient for the one-hot input)."""
    tn, f = T * N, 0.0
    d = V
    for layer in range(layers):
        gemm = 2.0 * tn * 4 * H * (d + H)
        f += 2 * gemm                                   # forward + weight grad
        f += 2.0 * tn * 4 * H * (H + (d if layer else 0))  # data grads (h, x)
        d = H
    f += 3 * 2.0 * tn * H * V                           # decoder
    return f


def infer_flops(T, N, V, H, layers=1) -> float:
    d, f = V, 0.0
    for _ in range(layers):
        f += 2.0 * T * N * 4 * H * (d + H)
        d = H
    return f + 2.0 * T * N * H * V


def _data(T, N, V, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, (T + 1, N))
    x = np.zeros((T, N, V), np.float32)
    x[np.arange(T)[:, None], np.arange(N)[None, :], ids[:-1]] = 1
    cont = np.ones((T, N), np.float32)
    cont[0] = 0
    return x, cont, ids[1:].astype(np.float32)


def lm_net(T, N, V, H, layers, impl="layer", phase_train=True):
    import recaffe as caffe  # noqa: PLC0415
    from recaffe import layers as L  # noqa: PLC0415

    ns = caffe.NetSpec()
    if phase_train:
        ns.x, ns.cont, ns.label = L.Input(shape=[dict(dim=[T, N, V]), dict(dim=[T, N]),
                                                 dict(dim=[T, N])], ntop=3)
    else:
        ns.x, ns.cont = L.Input(shape=[dict(dim=[T, N, V]), dict(dim=[T, N])], ntop=2)
    h = ns.x
    filler = dict(type="uniform", min=-0.08, max=0.08)
    for k in range(layers):
        if impl == "layer":
            h = L.LSTM(h, ns.cont, name=f"lstm{k + 1}",
                       recurrent_param=dict(num_output=H, weight_filler=filler,
                                            bias_filler=dict(type="constant")))
        else:
            from recaffe.recurrent.cells import lstm  # noqa: PLC0415

            r = lstm(h, ns.cont, T, H, N=N, name=f"lstm{k + 1}",
                     weight_filler=filler, ns=ns)
            h = r.output
        setattr(ns, f"h{k + 1}", h)
    ns.logits = L.InnerProduct(h, axis=2, num_output=V, weight_filler=filler)
    if phase_train:
        ns.loss = L.SoftmaxWithLoss(ns.logits, ns.label, softmax_param=dict(axis=2))
    else:
        ns.prob = L.Softmax(ns.logits, axis=2)
    return ns.to_proto()


def recaffe_train(T, N, V, H, layers, impl="layer", iters=5, plan=True, onednn=True,
                  share=False):
    from recaffe.backend import onednn as dnnl  # noqa: PLC0415

    dnnl.set_enabled(onednn)
    set_plan(plan)
    solver = make_solver(lm_net(T, N, V, H, layers, impl), lr=0.01)
    solver.net.share_buffers = share
    x, cont, label = _data(T, N, V)
    feed(solver.net, {"x": x, "cont": cont, "label": label})
    t = median_time(lambda: solver.step(1), iters, warmup=2)
    return {"s": t, "loss": float(solver.net.blobs["loss"].data)}


def torch_train(T, N, V, H, layers, iters=5):
    import torch  # noqa: PLC0415

    torch.manual_seed(0)
    x, _cont, label = _data(T, N, V)
    x, y = torch.from_numpy(x), torch.from_numpy(label).long()
    rnn, dec = torch.nn.LSTM(V, H, layers), torch.nn.Linear(H, V)
    opt = torch.optim.SGD([*rnn.parameters(), *dec.parameters()], lr=0.01,
                          momentum=0.9)
    lossf = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        h, _ = rnn(x)
        loss = lossf(dec(h).reshape(T * N, V), y.reshape(T * N))
        loss.backward()
        opt.step()
        return loss

    t = median_time(step, iters, warmup=2)
    return {"s": t, "loss": float(step().detach())}


def sgemm_rate(T, N, V, H) -> dict:
    """numpy sgemm throughput at this model's main GEMM shapes (GFLOP/s)."""
    from benchmarks.common import sgemm_gflops  # noqa: PLC0415

    big = sgemm_gflops(T * N, V + H, 4 * H)       # batched input/weight-grad GEMMs
    step = sgemm_gflops(N, H, 4 * H, iters=50)    # one recurrent step
    return {"gflops_big": big, "gflops_step": step}


CASES = [  # (label, T, N, V, H, layers)
    ("V=65 T=50 N=64 H=512, 1 layer", 50, 64, 65, 512, 1),
    ("V=65 T=50 N=64 H=512, 2 layers", 50, 64, 65, 512, 2),
    ("V=65 T=50 N=32 H=128, 1 layer", 50, 32, 65, 128, 1),
]


def run(quick: bool, threads: int, rounds: int = 1) -> tuple[str, list[dict]]:
    iters = 3 if quick else 10
    rows, records = [], []
    for label, T, N, V, H, layers in CASES:
        kw = {"T": T, "N": N, "V": V, "H": H, "layers": layers, "iters": iters}
        rate = run_worker("lstm", "sgemm_rate", {"T": T, "N": N, "V": V, "H": H},
                          threads)
        flops = train_flops(T, N, V, H, layers)
        bound = flops / (rate.get("gflops_big", np.nan) * 1e9)
        res = lstm_rows("lstm", "PyTorch nn.LSTM", "torch_train", "recaffe_train",
                        kw, threads, rounds, own_loop_row(kw["N"]))
        ref = res["PyTorch nn.LSTM"].get("s")
        for name, r in res.items():
            s = r.get("s")
            rows.append([label, name, fmt_ms(s) if s else r.get("error", "-"),
                         f"{s / ref:.2f}" if s and ref else "-",
                         f"{s / bound:.2f}" if s else "-", r.get("rss_mb", "-")])
            records.append({"bench": "lstm", "case": label, "name": name, **r})
        rows.append([label, f"GEMM bound ({flops / 1e9:.1f} GFLOP at "
                     f"{rate.get('gflops_big', 0):.0f} GFLOP/s)", fmt_ms(bound),
                     f"{bound / ref:.2f}" if ref else "-", "1.00", "-"])
        records.append({"bench": "lstm", "case": label, "name": "gemm_bound",
                        "s": bound, "gflop": flops / 1e9, **rate})
    text = ("Char LSTM LM train step (forward+backward+SGD momentum), median"
            + (f" of {rounds} alternating rounds" if rounds > 1 else "") + "\n\n"
            + table(["case", "implementation", "ms/iter", "x PyTorch", "x GEMM bound",
                     "peak RSS MB"], rows))
    return text, records
