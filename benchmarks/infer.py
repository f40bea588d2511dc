"""LSTM inference (forward only, T=50): recaffe's LSTM layer vs PyTorch."""

from __future__ import annotations

from benchmarks.common import (
    fmt_ms,
    lstm_rows,
    median_time,
    own_loop_row,
    run_worker,
    table,
)
from benchmarks.lstm import _data, infer_flops, lm_net
from benchmarks.recaffe_util import feed, set_plan


def recaffe_infer(T, N, V, H, iters=20, impl="layer", onednn=True, share=False):
    import recaffe as caffe  # noqa: PLC0415
    from recaffe.backend import onednn as dnnl  # noqa: PLC0415

    dnnl.set_enabled(onednn)
    set_plan(True)
    caffe.set_random_seed(0)
    net = caffe.Net(lm_net(T, N, V, H, 1, impl, phase_train=False), caffe.TEST)
    net.share_buffers = share
    x, cont, _ = _data(T, N, V)
    feed(net, {"x": x, "cont": cont})
    return {"s": median_time(net.forward_prefilled, iters, warmup=2, min_time=0.5)}


def torch_infer(T, N, V, H, iters=20):
    import torch  # noqa: PLC0415

    torch.manual_seed(0)
    x, _, _ = _data(T, N, V)
    x = torch.from_numpy(x)
    rnn, dec = torch.nn.LSTM(V, H), torch.nn.Linear(H, V)

    def run():
        with torch.no_grad():
            h, _ = rnn(x)
            return torch.softmax(dec(h), dim=2)

    return {"s": median_time(run, iters, warmup=2, min_time=0.5)}


def run(quick: bool, threads: int, rounds: int = 1) -> tuple[str, list[dict]]:
    iters = 5 if quick else 20
    rows, records = [], []
    for N in (1, 64):
        kw = {"T": 50, "N": N, "V": 65, "H": 512, "iters": iters}
        rate = run_worker("lstm", "sgemm_rate", {"T": 50, "N": N, "V": 65, "H": 512},
                          threads)
        fl = infer_flops(50, N, 65, 512)
        # The recurrent GEMMs are (N, H) @ (H, 4H): bound by that shape's rate.
        bound = fl / (rate.get("gflops_step", 1.0) * 1e9)
        res = lstm_rows("infer", "PyTorch nn.LSTM (no_grad)", "torch_infer",
                        "recaffe_infer", kw, threads, rounds, own_loop_row(N))
        ref = res["PyTorch nn.LSTM (no_grad)"].get("s")
        for name, r in res.items():
            s = r.get("s")
            rows.append([N, name, fmt_ms(s) if s else r.get("error", "-"),
                         f"{s / ref:.2f}" if s and ref else "-", r.get("rss_mb", "-")])
            records.append({"bench": "infer", "N": N, "name": name, **r})
        rows.append([N, f"GEMM bound ({fl / 1e9:.2f} GFLOP at step-GEMM rate "
                     f"{rate.get('gflops_step', 0):.0f} GFLOP/s)", fmt_ms(bound),
                     f"{bound / ref:.2f}" if ref else "-", "-"])
    text = ("LSTM inference, V=65, T=50, H=512, 1 layer, forward only, median"
            + (f" of {rounds} alternating rounds" if rounds > 1 else "") + "\n\n"
            + table(["N", "implementation", "ms/iter", "x PyTorch", "peak RSS MB"],
                    rows))
    return text, records
