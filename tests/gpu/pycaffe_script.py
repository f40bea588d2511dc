"""A plain pycaffe script: every input written and every output read through
``.data``, a Python layer, in-place parameter edits, a solver loop.

    python tests/gpu/pycaffe_script.py [--gpu] [--json OUT.json]

The only difference between its CPU and GPU runs is the mode switch at the
top, as in the talk's CPU-vs-GPU experiment. It prints (and with ``--json``
writes) the losses of its training loop and the outputs of its evaluation net,
so the two runs can be compared (tools/gpu_check.sh; tests/gpu/
test_host_device.py on the CPU stand-in device).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import numpy as np

import recaffe as caffe
from recaffe import layers as L

N = 16  # batch
ITERS = 60


class Double(caffe.Layer):
    """y = 2 x, written the way pycaffe users write Python layers."""

    def setup(self, bottom, top):
        if len(bottom) != 1:
            raise Exception("Double takes one bottom")

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = 2 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = 2 * top[0].diff


def train_net(batch: int, deploy: bool = False):
    ns = caffe.NetSpec()
    if deploy:
        ns.data = L.Input(shape=dict(dim=[batch, 4]))
    else:
        ns.data, ns.label = L.Input(shape=[dict(dim=[batch, 4]), dict(dim=[batch, 1])],
                                    ntop=2)
    ns.ip1 = L.InnerProduct(ns.data, num_output=16, weight_filler=dict(type="xavier"),
                            bias_filler=dict(type="constant", value=0.1))
    ns.act = L.TanH(ns.ip1)
    ns.dbl = L.Python(ns.act, module="pycaffe_script", layer="Double")
    ns.ip2 = L.InnerProduct(ns.dbl, num_output=1, weight_filler=dict(type="xavier"))
    if deploy:
        ns.prob = L.Sigmoid(ns.ip2)
    else:
        ns.loss = L.SigmoidCrossEntropyLoss(ns.ip2, ns.label)
    return ns.to_proto()


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--gpu" in argv:
        caffe.set_mode_gpu()
    else:
        caffe.set_mode_cpu()
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)  # the Python layer's module
    caffe.set_random_seed(3)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((128, 4)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] > 0).astype(np.float32)

    work = tempfile.mkdtemp(prefix="pycaffe_script_")
    train_file = os.path.join(work, "train.prototxt")
    deploy_file = os.path.join(work, "deploy.prototxt")
    solver_file = os.path.join(work, "solver.prototxt")
    with open(train_file, "w") as f:
        f.write(str(train_net(N)))
    with open(deploy_file, "w") as f:
        f.write(str(train_net(len(X), deploy=True)))
    with open(solver_file, "w") as f:
        f.write(f'net: "{train_file}"\nbase_lr: 0.2\nmomentum: 0.9\n'
                'lr_policy: "fixed"\nmax_iter: 1000\ndisplay: 0\nrandom_seed: 3\n'
                'snapshot_after_train: false\n')

    solver = caffe.SGDSolver(solver_file)
    losses = []
    for it in range(ITERS):
        idx = rng.integers(0, len(X), N)
        solver.net.blobs["data"].data[...] = X[idx]
        solver.net.blobs["label"].data[...] = y[idx, None]
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
        if it == ITERS // 2:
            # in-place edits of parameters, between two steps
            solver.net.params["ip1"][1].data[...] += 0.05
            w = solver.net.params["ip2"][0].data
            np.copyto(w, w * 0.9)
    weights = os.path.join(work, "trained.caffemodel")
    solver.net.save(weights)

    net = caffe.Net(deploy_file, caffe.TEST, weights=weights)
    net.blobs["data"].data[...] = X
    net.forward()
    prob = net.blobs["prob"].data
    accuracy = float(((prob > 0.5) == (y[:, None] > 0.5)).mean())
    again = net.forward(data=X)["prob"]
    result = {
        "mode": "gpu" if "--gpu" in argv else "cpu",
        "losses": losses,
        "accuracy": accuracy,
        "prob": prob.ravel().tolist(),
        "forward_kwargs_equal": bool(np.array_equal(again, prob)),
        # numpy arrays (recaffe's HostArray is a numpy subclass), or the
        # module of whatever else came back
        "types": sorted({_kind(a) for a in (
            prob, solver.net.blobs["loss"].data, net.params["ip1"][0].data)}),
    }
    if "--json" in argv:
        with open(argv[argv.index("--json") + 1], "w") as f:
            json.dump(result, f)
    return result


def _kind(a) -> str:
    mod = type(a).__module__.split(".")[0]
    return "numpy" if mod in ("numpy", "recaffe") else mod


def compare(cpu: dict, gpu: dict, rtol: float = 1e-4, atol: float = 1e-5) -> list[str]:
    """Differences between a CPU and a GPU run ([] when they agree)."""
    problems = []
    for key in ("losses", "prob"):
        a, b = np.asarray(cpu[key]), np.asarray(gpu[key])
        if a.shape != b.shape or not np.allclose(a, b, rtol=rtol, atol=atol):
            worst = float(np.max(np.abs(a - b))) if a.shape == b.shape else None
            problems.append(f"{key} differ (max abs difference {worst})")
    if cpu["accuracy"] != gpu["accuracy"]:
        problems.append(f"accuracy {cpu['accuracy']} != {gpu['accuracy']}")
    for r in (cpu, gpu):
        if not r["forward_kwargs_equal"]:
            problems.append(f"{r['mode']}: forward(data=X) differs from .data writes")
        if r["types"] != ["numpy"]:
            problems.append(f"{r['mode']}: pycaffe arrays are {r['types']}, not numpy")
    return problems


if __name__ == "__main__":
    out = main()
    print(json.dumps({k: out[k] for k in ("mode", "accuracy")}
                     | {"final_loss": out["losses"][-1]}))
