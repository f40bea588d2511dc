"""CPU vs GPU: one training iteration of two recurrent models, recaffe and PyTorch.

Models (the same shapes in both frameworks, time-major):

- ``rnn``: binary addition, an Elman RNN (T=9 steps, batch 50, 2 inputs,
  16 hidden units) -> 1 logit per step, sigmoid cross-entropy;
- ``lstm``: a character LSTM language model (vocab 65, T=50, batch 64,
  embedding 64, hidden 512) -> 65 logits per step, softmax loss.

One iteration = forward, backward and an SGD update. Rows: recaffe CPU, recaffe
GPU (CuPy; also without the fused CUDA kernels), PyTorch CPU, PyTorch GPU
(cuDNN LSTM/RNN). Columns: ms/iter and the speed-up over recaffe CPU. Rows
whose backend is missing (no CuPy, no CUDA device, no PyTorch) are reported as
skipped.

    python benchmarks/gpu_bench.py            # full
    python benchmarks/gpu_bench.py --quick    # a few iterations each
    python benchmarks/gpu_bench.py --only lstm --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recaffe import backend
from recaffe.io.prototxt import parse_prototxt
from recaffe.proto import caffe_pb2

MODELS = {
    "rnn": {"kind": "rnn", "T": 9, "N": 50, "D": 2, "H": 16, "V": None},
    "lstm": {"kind": "lstm", "T": 50, "N": 64, "D": 64, "H": 512, "V": 65},
}


# -- data ------------------------------------------------------------------------------
def make_batch(cfg, seed=0):
    r = np.random.default_rng(seed)
    t, n = cfg["T"], cfg["N"]
    cont = np.ones((t, n), np.float32)
    cont[0] = 0
    if cfg["kind"] == "rnn":
        x = r.integers(0, 2, (t, n, cfg["D"])).astype(np.float32)
        y = r.integers(0, 2, (t, n, 1)).astype(np.float32)
        return {"x": x, "cont": cont, "target": y}
    ids = r.integers(0, cfg["V"], (t, n)).astype(np.float32)
    y = r.integers(0, cfg["V"], (t, n)).astype(np.float32)
    return {"ids": ids, "cont": cont, "target": y}


# -- recaffe ---------------------------------------------------------------------------
def recaffe_net_text(cfg) -> str:
    t, n, h = cfg["T"], cfg["N"], cfg["H"]
    fill = 'weight_filler { type: "uniform" min: -0.08 max: 0.08 }'
    if cfg["kind"] == "rnn":
        return f"""
name: "binary_addition"
layer {{ name: "in" type: "Input" top: "x" top: "cont" top: "target"
  input_param {{ shape {{ dim: {t} dim: {n} dim: {cfg['D']} }}
                 shape {{ dim: {t} dim: {n} }}
                 shape {{ dim: {t} dim: {n} dim: 1 }} }} }}
layer {{ name: "rnn" type: "RNN" bottom: "x" bottom: "cont" top: "h"
  recurrent_param {{ num_output: {h} {fill} }} }}
layer {{ name: "out" type: "InnerProduct" bottom: "h" top: "logit"
  inner_product_param {{ num_output: 1 axis: 2 {fill} }} }}
layer {{ name: "loss" type: "SigmoidCrossEntropyLoss" bottom: "logit" bottom: "target"
  top: "loss" }}
"""
    return f"""
name: "char_lstm"
layer {{ name: "in" type: "Input" top: "ids" top: "cont" top: "target"
  input_param {{ shape {{ dim: {t} dim: {n} }} shape {{ dim: {t} dim: {n} }}
                 shape {{ dim: {t} dim: {n} }} }} }}
layer {{ name: "emb" type: "Embed" bottom: "ids" top: "e"
  embed_param {{ num_output: {cfg['D']} input_dim: {cfg['V']} {fill} }} }}
layer {{ name: "lstm" type: "LSTM" bottom: "e" bottom: "cont" top: "h"
  recurrent_param {{ num_output: {h} {fill} }} }}
layer {{ name: "out" type: "InnerProduct" bottom: "h" top: "logits"
  inner_product_param {{ num_output: {cfg['V']} axis: 2 {fill} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "logits" bottom: "target"
  top: "loss" softmax_param {{ axis: 2 }} }}
"""


def bench_recaffe(cfg, gpu: bool, warmup: int, iters: int) -> float:
    from recaffe.solvers import get_solver

    backend.set_mode_cpu()
    if gpu:
        backend.set_mode_gpu()
    try:
        p = caffe_pb2.SolverParameter()
        p.type = "SGD"
        p.base_lr = 0.01
        p.momentum = 0.9
        p.lr_policy = "fixed"
        p.max_iter = 10**9
        p.display = 0
        p.random_seed = 1
        text = recaffe_net_text(cfg)
        p.net_param.CopyFrom(parse_prototxt(text, caffe_pb2.NetParameter))
        solver = get_solver(p)
        for name, arr in make_batch(cfg).items():
            backend.copy_into(solver.net.blobs[name].data, arr)
        solver.step(warmup)
        backend.synchronize()
        t0 = time.perf_counter()
        solver.step(iters)
        backend.synchronize()
        return (time.perf_counter() - t0) / iters * 1e3
    finally:
        backend.set_mode_cpu()


# -- PyTorch ---------------------------------------------------------------------------
def bench_torch(cfg, cuda: bool, warmup: int, iters: int) -> float:
    import torch

    dev = torch.device("cuda" if cuda else "cpu")
    torch.manual_seed(1)
    batch = {k: torch.from_numpy(v).to(dev) for k, v in make_batch(cfg).items()}
    h = cfg["H"]
    if cfg["kind"] == "rnn":
        rnn = torch.nn.RNN(cfg["D"], h, nonlinearity="tanh").to(dev)
        head = torch.nn.Linear(h, 1).to(dev)
        params = list(rnn.parameters()) + list(head.parameters())
        loss_fn = torch.nn.BCEWithLogitsLoss()

        def loss_of():
            out, _ = rnn(batch["x"])
            return loss_fn(head(out), batch["target"])
    else:
        emb = torch.nn.Embedding(cfg["V"], cfg["D"]).to(dev)
        lstm = torch.nn.LSTM(cfg["D"], h).to(dev)
        head = torch.nn.Linear(h, cfg["V"]).to(dev)
        params = [*emb.parameters(), *lstm.parameters(), *head.parameters()]
        loss_fn = torch.nn.CrossEntropyLoss()
        ids = batch["ids"].long()
        target = batch["target"].long()

        def loss_of():
            out, _ = lstm(emb(ids))
            return loss_fn(head(out).reshape(-1, cfg["V"]), target.reshape(-1))
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_of()
        loss.backward()
        opt.step()
        return loss

    def sync():
        if cuda:
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    sync()
    return (time.perf_counter() - t0) / iters * 1e3


# -- driver ----------------------------------------------------------------------------
def available():
    have = {"cupy": backend.gpu_available()}
    try:
        import torch

        have["torch"] = True
        have["torch_cuda"] = bool(torch.cuda.is_available())
    except ImportError:
        have["torch"] = have["torch_cuda"] = False
    return have


def run(models, quick: bool, iters_override: int | None):
    have = available()
    results = []
    for name in models:
        cfg = MODELS[name]
        heavy = cfg["kind"] == "lstm"
        # (label, runner, needs, cpu?)
        rows = [
            ("recaffe CPU", lambda c, w, i: bench_recaffe(c, False, w, i), None, True),
            ("recaffe GPU", lambda c, w, i: bench_recaffe(c, True, w, i), "cupy",
             False),
        ]
        if heavy:
            rows.append(("recaffe GPU, no fused kernels",
                         lambda c, w, i: _no_kernels(bench_recaffe, c, True, w, i),
                         "cupy", False))
        rows += [
            ("PyTorch CPU", lambda c, w, i: bench_torch(c, False, w, i), "torch", True),
            ("PyTorch GPU (cuDNN)", lambda c, w, i: bench_torch(c, True, w, i),
             "torch_cuda", False),
        ]
        for label, fn, need, on_cpu in rows:
            if need is not None and not have.get(need):
                results.append({"model": name, "impl": label, "ms": None,
                                "note": f"skipped: no {need}"})
                continue
            if iters_override:
                warm, iters = 1, iters_override
            elif quick:
                warm, iters = (1, 2) if (heavy and on_cpu) else (3, 10)
            else:
                warm, iters = (2, 10) if (heavy and on_cpu) else (10, 50)
            try:
                ms = fn(cfg, warm, iters)
                results.append({"model": name, "impl": label, "ms": ms, "iters": iters})
            except Exception as exc:  # noqa: BLE001 - report and go on
                results.append({"model": name, "impl": label, "ms": None,
                                "note": f"failed: {type(exc).__name__}: {exc}"[:200]})
            print(_fmt_row(results[-1], None), flush=True)
    return results


def _no_kernels(fn, *args):
    old = os.environ.get("RECAFFE_CUDA_KERNELS")
    os.environ["RECAFFE_CUDA_KERNELS"] = "0"
    try:
        return fn(*args)
    finally:
        if old is None:
            os.environ.pop("RECAFFE_CUDA_KERNELS", None)
        else:
            os.environ["RECAFFE_CUDA_KERNELS"] = old


def _fmt_row(r, base):
    ms = f"{r['ms']:10.2f}" if r["ms"] is not None else f"{'-':>10}"
    ratio = ""
    if base and r["ms"]:
        ratio = f"{base / r['ms']:8.2f}x"
    return f"{r['model']:6} {r['impl']:32} {ms} {ratio:>9} {r.get('note', '')}"


def table(results) -> str:
    lines = [f"{'model':6} {'implementation':32} {'ms/iter':>10} {'vs rc CPU':>9}"]
    for name in dict.fromkeys(r["model"] for r in results):
        rows = [r for r in results if r["model"] == name]
        base = next((r["ms"] for r in rows if r["impl"] == "recaffe CPU"), None)
        lines += [_fmt_row(r, base) for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few iterations per row")
    ap.add_argument("--only", choices=sorted(MODELS), action="append",
                    help="run only this model (repeatable)")
    ap.add_argument("--iters", type=int, default=None, help="timed iterations per row")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    models = args.only or list(MODELS)
    print("; ".join(backend.device_query()), flush=True)
    results = run(models, args.quick, args.iters)
    print()
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
