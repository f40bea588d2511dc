"""CPU vs GPU: training iterations and inference of recurrent models, recaffe
(eager and CUDA graphs), PyTorch (eager, cuDNN, CUDA graph) and JAX (jit).

Models (the same shapes in every framework, time-major):

- ``rnn``: binary addition, an Elman RNN (T=9 steps, batch 50, 2 inputs,
  16 hidden units) -> 1 logit per step, sigmoid cross-entropy;
- ``lstm``, ``lstm2``: a character LSTM language model (vocab 65, T=50,
  batch 64, embedding 64, hidden 512; 1 or 2 LSTM layers) -> 65 logits per
  step, softmax loss;
- ``infer1``, ``infer64``: the 1-layer LSTM LM's forward pass alone (T=50,
  batch 1 or 64), as a deployed model runs.

A training iteration is forward, backward and an SGD update (momentum 0.9);
recaffe's reads the loss each iteration, as Caffe's solver does. Rows:
recaffe CPU; recaffe GPU with CUDA graphs (the default), with graphs off
(``RECAFFE_CUDA_GRAPH=0``) and, for the LSTM, also without the fused kernels;
PyTorch CPU; PyTorch GPU eager (cuDNN for the LSTM/RNN); PyTorch GPU with
the whole iteration captured as a CUDA graph (``torch.cuda.graph`` around
forward, backward and ``opt.step()``); JAX's jitted step (``lax.scan`` cell).
Each row runs in a fresh process, so that its peak device memory is its own:
CuPy's pools (recaffe's default pool plus the graphs' private pools: the
memory held, which is the pools' peak), ``torch.cuda.max_memory_reserved``,
JAX's ``peak_bytes_in_use``. Columns: ms per iteration, the ratio to the
reference row of the model (recaffe CPU for training, graphed PyTorch for
inference) and peak device MiB. Rows whose framework or device is missing
are reported as skipped.

    python benchmarks/gpu_bench.py            # full
    python benchmarks/gpu_bench.py --quick    # a few iterations per row
    python benchmarks/gpu_bench.py --only lstm --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# Run as a script, Python puts benchmarks/ first on sys.path, where
# benchmarks/profile.py would hide the standard library's profile (which torch
# imports): the repository root takes its place.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from benchmarks.common import ROOT, result_of, root_env  # noqa: E402

MODELS = {
    "rnn": {"kind": "rnn", "T": 9, "N": 50, "D": 2, "H": 16, "V": None, "layers": 1},
    "lstm": {"kind": "lstm", "T": 50, "N": 64, "D": 64, "H": 512, "V": 65,
             "layers": 1},
    "lstm2": {"kind": "lstm", "T": 50, "N": 64, "D": 64, "H": 512, "V": 65,
              "layers": 2},
    "infer1": {"kind": "lstm", "T": 50, "N": 1, "D": 64, "H": 512, "V": 65,
               "layers": 1, "infer": True},
    "infer64": {"kind": "lstm", "T": 50, "N": 64, "D": 64, "H": 512, "V": 65,
                "layers": 1, "infer": True},
}

#: row label -> (runner name, keyword arguments, requirement, runs on the CPU)
ROWS = {
    "recaffe CPU": ("recaffe", {"gpu": False}, None, True),
    "recaffe GPU, CUDA graphs": ("recaffe", {"gpu": True, "graphs": True}, "cupy",
                                 False),
    "recaffe GPU, graphs off": ("recaffe", {"gpu": True, "graphs": False}, "cupy",
                                False),
    "recaffe GPU, graphs off, no fused kernels": (
        "recaffe", {"gpu": True, "graphs": False, "kernels": False}, "cupy", False),
    "PyTorch CPU": ("torch", {"cuda": False}, "torch", True),
    "PyTorch GPU (cuDNN)": ("torch", {"cuda": True}, "torch_cuda", False),
    "PyTorch GPU, CUDA graph": ("torch", {"cuda": True, "graph": True}, "torch_cuda",
                                False),
    "JAX GPU (jit, lax.scan)": ("jax", {}, "jax_gpu", False),
}


def rows_for(model: str) -> list[str]:
    cfg = MODELS[model]
    if cfg.get("infer"):
        return ["recaffe GPU, CUDA graphs", "recaffe GPU, graphs off",
                "PyTorch GPU (cuDNN)", "PyTorch GPU, CUDA graph",
                "JAX GPU (jit, lax.scan)"]
    rows = list(ROWS)
    if cfg["kind"] != "lstm":
        rows.remove("recaffe GPU, graphs off, no fused kernels")
    if model == "lstm2":  # the CPU rows of the 1-layer model say enough
        rows = [r for r in rows if not ROWS[r][3]]
    return rows


def reference_row(model: str) -> str:
    return "PyTorch GPU, CUDA graph" if MODELS[model].get("infer") else "recaffe CPU"


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
    lstms, bottom = [], "e"
    for k in range(cfg["layers"]):
        top = "h" if k == cfg["layers"] - 1 else f"h{k + 1}"
        lstms.append(f"""layer {{ name: "lstm{k + 1}" type: "LSTM" bottom: "{bottom}"
  bottom: "cont" top: "{top}" recurrent_param {{ num_output: {h} {fill} }} }}""")
        bottom = top
    loss = "" if cfg.get("infer") else """
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "logits" bottom: "target"
  top: "loss" softmax_param { axis: 2 } }"""
    return f"""
name: "char_lstm"
layer {{ name: "in" type: "Input" top: "ids" top: "cont" top: "target"
  input_param {{ shape {{ dim: {t} dim: {n} }} shape {{ dim: {t} dim: {n} }}
                 shape {{ dim: {t} dim: {n} }} }} }}
layer {{ name: "emb" type: "Embed" bottom: "ids" top: "e"
  embed_param {{ num_output: {cfg['D']} input_dim: {cfg['V']} {fill} }} }}
{chr(10).join(lstms)}
layer {{ name: "out" type: "InnerProduct" bottom: "h" top: "logits"
  inner_product_param {{ num_output: {cfg['V']} axis: 2 {fill} }} }}{loss}
"""


def _cupy_pool_bytes() -> int:
    import cupy  # noqa: PLC0415

    from recaffe import graph_runner  # noqa: PLC0415

    total = cupy.get_default_memory_pool().total_bytes()
    for table in (graph_runner._nets, graph_runner._solvers):
        for g in list(table.values()):
            if g.pool is not None:
                total += g.pool.total_bytes()
    return total


def bench_recaffe(cfg, warmup, iters, gpu, graphs=True, kernels=True):
    os.environ["RECAFFE_CUDA_GRAPH"] = "1" if graphs else "0"
    os.environ["RECAFFE_CUDA_KERNELS"] = "1" if kernels else "0"
    from recaffe import backend  # noqa: PLC0415
    from recaffe.io.prototxt import parse_prototxt  # noqa: PLC0415
    from recaffe.net import Net  # noqa: PLC0415
    from recaffe.proto import caffe_pb2  # noqa: PLC0415
    from recaffe.solvers import get_solver  # noqa: PLC0415

    if gpu:
        backend.set_mode_gpu()
    net_param = parse_prototxt(recaffe_net_text(cfg), caffe_pb2.NetParameter)
    if cfg.get("infer"):
        net = Net(net_param, caffe_pb2.TEST)
        target = net

        def run(k):
            for _ in range(k):
                net.forward()
    else:
        p = caffe_pb2.SolverParameter()
        p.type = "SGD"
        p.base_lr = 0.01
        p.momentum = 0.9
        p.lr_policy = "fixed"
        p.max_iter = 10**9
        p.display = 0
        p.random_seed = 1
        p.net_param.CopyFrom(net_param)
        solver = get_solver(p)
        target = solver.net

        def run(k):
            solver.step(k)
    for name, arr in make_batch(cfg).items():
        backend.copy_into(target.blobs[name].data, arr)
    run(warmup)
    backend.synchronize()
    t0 = time.perf_counter()
    run(iters)
    backend.synchronize()
    ms = (time.perf_counter() - t0) / iters * 1e3
    out = {"ms": ms}
    if gpu:
        from recaffe import graph_runner  # noqa: PLC0415

        st = graph_runner.status(target)
        out["peak_mib"] = _cupy_pool_bytes() / 2**20
        out["note"] = (f"graphs: {','.join(st['graphs'])}" if st["graphs"] else
                       f"eager: {st['eager_reason']}")[:70]
    return out


# -- PyTorch ---------------------------------------------------------------------------
def bench_torch(cfg, warmup, iters, cuda, graph=False):
    import torch  # noqa: PLC0415

    dev = torch.device("cuda" if cuda else "cpu")
    torch.manual_seed(1)
    batch = {k: torch.from_numpy(v).to(dev) for k, v in make_batch(cfg).items()}
    h = cfg["H"]
    infer = bool(cfg.get("infer"))
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
        lstm = torch.nn.LSTM(cfg["D"], h, num_layers=cfg["layers"]).to(dev)
        head = torch.nn.Linear(h, cfg["V"]).to(dev)
        params = [*emb.parameters(), *lstm.parameters(), *head.parameters()]
        loss_fn = torch.nn.CrossEntropyLoss()
        ids = batch["ids"].long()
        target = batch["target"].long()

        def logits():
            out, _ = lstm(emb(ids))
            return head(out)

        def loss_of():
            return loss_fn(logits().reshape(-1, cfg["V"]), target.reshape(-1))
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)

    def step():
        if infer:
            with torch.no_grad():
                return logits()
        opt.zero_grad(set_to_none=not graph)
        loss = loss_of()
        loss.backward()
        opt.step()
        return loss

    def sync():
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    run = step
    if graph:
        # The recipe of torch.cuda.graphs' whole-network capture: warm up on a
        # side stream, then capture forward, backward and the optimizer step.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        if not infer:
            opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(g):
            step()
        run = g.replay
    for _ in range(warmup):
        run()
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        run()
    sync()
    out = {"ms": (time.perf_counter() - t0) / iters * 1e3}
    if cuda:
        out["peak_mib"] = torch.cuda.max_memory_reserved() / 2**20
    return out


# -- JAX -------------------------------------------------------------------------------
def bench_jax(cfg, warmup, iters):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    batch = {k: jnp.asarray(v) for k, v in make_batch(cfg).items()}
    key = jax.random.PRNGKey(1)
    h, t_, n = cfg["H"], cfg["T"], cfg["N"]

    def uni(k, shape):
        return jax.random.uniform(k, shape, jnp.float32, -0.08, 0.08)

    keys = jax.random.split(key, 16)
    if cfg["kind"] == "rnn":
        params = {"wx": uni(keys[0], (cfg["D"], h)), "wh": uni(keys[1], (h, h)),
                  "b": jnp.zeros(h), "wo": uni(keys[2], (h, 1)), "bo": jnp.zeros(1)}

        def loss_fn(p, b):
            def cell(hp, x):
                hn = jnp.tanh(x @ p["wx"] + hp @ p["wh"] + p["b"])
                return hn, hn
            _, hs = jax.lax.scan(cell, jnp.zeros((n, h)), b["x"])
            z = hs @ p["wo"] + p["bo"]
            y = b["target"]
            return jnp.mean(jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z))))
    else:
        layers = cfg["layers"]
        params = {"emb": uni(keys[0], (cfg["V"], cfg["D"])),
                  "wo": uni(keys[1], (h, cfg["V"])), "bo": jnp.zeros(cfg["V"])}
        for k in range(layers):
            d_in = cfg["D"] if k == 0 else h
            params[f"wx{k}"] = uni(keys[2 + 2 * k], (d_in, 4 * h))
            params[f"wh{k}"] = uni(keys[3 + 2 * k], (h, 4 * h))
            params[f"b{k}"] = jnp.zeros(4 * h)

        def logits_of(p, b):
            x = p["emb"][b["ids"].astype(jnp.int32)]
            for k in range(layers):
                gx = x @ p[f"wx{k}"] + p[f"b{k}"]

                def cell(carry, g, k=k):
                    hp, cp = carry
                    z = g + hp @ p[f"wh{k}"]
                    i, f, o, gg = jnp.split(z, 4, axis=-1)
                    c = jax.nn.sigmoid(f) * cp + jax.nn.sigmoid(i) * jnp.tanh(gg)
                    hn = jax.nn.sigmoid(o) * jnp.tanh(c)
                    return (hn, c), hn
                zeros = jnp.zeros((n, h))
                _, x = jax.lax.scan(cell, (zeros, zeros), gx)
            return x @ p["wo"] + p["bo"]

        def loss_fn(p, b):
            z = logits_of(p, b).reshape(t_ * n, cfg["V"])
            y = b["target"].reshape(-1).astype(jnp.int32)
            logp = jax.nn.log_softmax(z)
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    if cfg.get("infer"):
        fwd = jax.jit(logits_of)

        def run():
            return fwd(params, batch)
    else:
        mom = jax.tree_util.tree_map(jnp.zeros_like, params)

        @jax.jit
        def step(p, m, b):
            loss, g = jax.value_and_grad(loss_fn)(p, b)
            m = jax.tree_util.tree_map(lambda mi, gi: 0.9 * mi + 0.01 * gi, m, g)
            p = jax.tree_util.tree_map(lambda pi, mi: pi - mi, p, m)
            return p, m, loss

        state = [params, mom]

        def run():
            state[0], state[1], loss = step(state[0], state[1], batch)
            return loss
    for _ in range(max(warmup, 1)):
        run()
    jax.block_until_ready(run())
    t0 = time.perf_counter()
    for _ in range(iters):
        last = run()
    jax.block_until_ready(last)
    out = {"ms": (time.perf_counter() - t0) / iters * 1e3}
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        out["peak_mib"] = stats["peak_bytes_in_use"] / 2**20
    return out


# -- driver ----------------------------------------------------------------------------
def available() -> dict:
    """Which frameworks and devices this machine has (each probed in a child
    process, so that none of them initialises a device here)."""
    probes = {
        "cupy": "from recaffe import backend; print(backend.gpu_available())",
        "torch": "import torch; print(True)",
        "torch_cuda": "import torch; print(torch.cuda.is_available())",
        "jax_gpu": "import jax; print(any(d.platform == 'gpu' for d in jax.devices()))",
    }
    have = {}
    for name, code in probes.items():
        try:
            p = subprocess.run([sys.executable, "-c", code], capture_output=True,
                               text=True, timeout=120, env=_env(), cwd=ROOT,
                               check=False)
            have[name] = p.stdout.strip().endswith("True")
        except subprocess.TimeoutExpired:
            have[name] = False
    return have


def _env() -> dict:
    env = root_env()
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX: measure peak
    return env


def run_row(model: str, label: str, warmup: int, iters: int) -> dict:
    """One row in this process (the child side of :func:`run`)."""
    runner, kwargs, _need, _cpu = ROWS[label]
    cfg = MODELS[model]
    fn = {"recaffe": bench_recaffe, "torch": bench_torch, "jax": bench_jax}[runner]
    return fn(cfg, warmup, iters, **kwargs)


def iterations(model: str, label: str, quick: bool, override: int | None):
    heavy_cpu = MODELS[model]["kind"] == "lstm" and ROWS[label][3]
    if override:
        return 1, override
    if quick:
        return (1, 2) if heavy_cpu else (3, 10)
    return (2, 10) if heavy_cpu else (10, 50)


def run(models, quick: bool, iters_override: int | None, timeout: float) -> list:
    have = available()
    print("available: " + ", ".join(f"{k}={v}" for k, v in have.items()), flush=True)
    results = []
    for model in models:
        for label in rows_for(model):
            need = ROWS[label][2]
            row = {"model": model, "impl": label, "ms": None}
            if need is not None and not have.get(need):
                row["note"] = f"skipped: no {need}"
                results.append(row)
                print(_fmt_row(row, None), flush=True)
                continue
            warm, iters = iterations(model, label, quick, iters_override)
            cmd = [sys.executable, str(Path(__file__).resolve()), "--row", model,
                   label, "--warmup", str(warm), "--iters", str(iters)]
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, env=_env(),
                                   timeout=timeout, cwd=ROOT, check=False)
                res = result_of(p, limit=112)  # the note: 120 characters in all
                if "error" in res:
                    row["note"] = f"failed: {res['error']}"
                else:
                    row.update(res)
                    row["iters"] = iters
            except subprocess.TimeoutExpired:
                row["note"] = f"failed: timed out after {timeout:.0f}s"
            results.append(row)
            print(_fmt_row(row, None), flush=True)
    return results


def _fmt_row(r, base):
    ms = f"{r['ms']:10.3f}" if r["ms"] is not None else f"{'-':>10}"
    ratio = f"{r['ms'] / base:8.2f}x" if base and r["ms"] else ""
    peak = f"{r['peak_mib']:9.0f}" if r.get("peak_mib") is not None else f"{'':>9}"
    return f"{r['model']:7} {r['impl']:42} {ms} {ratio:>9} {peak} {r.get('note', '')}"


def table(results) -> str:
    lines = [f"{'model':7} {'implementation':42} {'ms/iter':>10} {'vs ref':>9} "
             f"{'peak MiB':>9}"]
    for model in dict.fromkeys(r["model"] for r in results):
        rows = [r for r in results if r["model"] == model]
        ref = reference_row(model)
        base = next((r["ms"] for r in rows if r["impl"] == ref), None)
        lines += [_fmt_row(r, base) for r in rows]
    lines.append("vs ref: time / the reference row's time (recaffe CPU for training, "
                 "'PyTorch GPU, CUDA graph' for inference)")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few iterations per row")
    ap.add_argument("--only", choices=sorted(MODELS), action="append",
                    help="run only this model (repeatable)")
    ap.add_argument("--iters", type=int, default=None, help="timed iterations per row")
    ap.add_argument("--warmup", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--row", nargs=2, metavar=("MODEL", "ROW"), help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=300, help="seconds per row")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if args.row:  # child process: one row, one RESULT line
        model, label = args.row
        out = run_row(model, label, args.warmup or 1, args.iters or 10)
        print("RESULT " + json.dumps(out), flush=True)
        return 0
    models = args.only or list(MODELS)
    results = run(models, args.quick, args.iters, args.timeout)
    print()
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
