"""Helpers to train a recaffe net with an SGD solver for benchmarks."""

from __future__ import annotations

import os
import tempfile

import numpy as np


def make_solver(net_param, lr=0.1, momentum=0.9):
    import recaffe as caffe  # noqa: PLC0415

    d = tempfile.mkdtemp(prefix="recaffe_bench_")
    net_file = os.path.join(d, "net.prototxt")
    with open(net_file, "w") as f:
        f.write(str(net_param))
    solver_file = os.path.join(d, "solver.prototxt")
    with open(solver_file, "w") as f:
        f.write(f'net: "{net_file}"\nbase_lr: {lr}\nmomentum: {momentum}\n'
                'lr_policy: "fixed"\ndisplay: 0\nmax_iter: 1000000\n'
                'snapshot_after_train: false\n')
    caffe.set_random_seed(0)
    return caffe.get_solver(solver_file)


def feed(net, arrays: dict) -> None:
    for name, arr in arrays.items():
        net.blobs[name].data[...] = arr


def set_plan(on: bool) -> None:
    os.environ["RECAFFE_PLAN"] = "1" if on else "0"


def rng(seed=0):
    return np.random.default_rng(seed)
