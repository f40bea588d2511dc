"""Training cases for the data-parallel equivalence tests.

Each case writes its data under a work folder and returns a solver parameter
whose train net reads ``batch`` items per rank. ``run_case`` trains it for
``iters`` iterations in the current process's parallel context and returns
the learnable parameters. Run as a script (under ``mpirun -n 2``) it trains
every named case with half the batch on each rank and writes rank 0's weights
to ``<out>/<case>.npz``::

    mpirun -n 2 python tests/parallel/dist_cases.py WORK OUT case1 case2 ...
"""

from __future__ import annotations

import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import h5py  # noqa: E402

from recaffe.io.prototxt import parse_prototxt  # noqa: E402
from recaffe.proto import caffe_pb2  # noqa: E402

#: Global batch of every case (one rank: all of it; N ranks: batch / N each).
BATCH = 8
ITERS = 20


def _write_hdf5(work: str, batch: int) -> str:
    """80 rows (10 global batches) in two files of 50 and 30 rows."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((80, 6)).astype(np.float32)
    y = (np.abs(x[:, 0]) * 2 + x[:, 1] > 1.2).astype(np.float32) + \
        (x[:, 2] > 0.8).astype(np.float32)
    paths = []
    for i, (a, b) in enumerate(((0, 50), (50, 80))):
        p = os.path.join(work, f"part{i}.h5")
        if not os.path.exists(p):
            with h5py.File(p, "w") as fh:
                fh["data"] = x[a:b]
                fh["label"] = y[a:b]
        paths.append(p)
    src = os.path.join(work, "h5list.txt")
    with open(src, "w") as fh:
        fh.write("\n".join(paths) + "\n")
    return src


def _mlp(data_layer: str) -> str:
    return data_layer + """
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  inner_product_param { num_output: 16 weight_filler { type: "gaussian" std: 0.3 }
    bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label"
  top: "loss" }
"""


def _hdf5_net(work: str, batch: int) -> str:
    src = _write_hdf5(work, batch)
    return _mlp(f"""name: "mlp"
layer {{ name: "d" type: "HDF5Data" top: "data" top: "label"
  hdf5_data_param {{ source: "{src}" batch_size: {batch} }} }}""")


def _lmdb_net(work: str, batch: int) -> str:
    from recaffe.io.db import LMDBWriter

    path = os.path.join(work, "items_lmdb")
    if not os.path.exists(path):
        rng = np.random.default_rng(11)
        with LMDBWriter(path) as w:
            for k in range(40):
                d = caffe_pb2.Datum(channels=2, height=2, width=2, label=k % 3)
                d.data = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
                w.put(f"{k:08d}".encode(), d.SerializeToString())
    return _mlp(f"""name: "lmdb_mlp"
layer {{ name: "d" type: "Data" top: "data" top: "label"
  transform_param {{ scale: 0.0078125 mean_value: 128 }}
  data_param {{ source: "{path}" batch_size: {batch} backend: LMDB }} }}""")


def _binary_addition_net(work: str, batch: int) -> str:
    sys.path.insert(0, os.path.join(ROOT, "examples", "binary_addition"))
    from data import write_data

    if not os.path.exists(os.path.join(work, "train.txt")):
        write_data(work, num_train=80, num_test=8)
    with open(os.path.join(ROOT, "examples", "binary_addition",
                           "train.prototxt")) as fh:
        text = fh.read()
    text = text.replace("batch_size: 50", f"batch_size: {batch}")
    text = text.replace("dim: 50", f"dim: {batch}")
    return text.replace('source: "binary_addition_work/train.txt"',
                        f'source: "{os.path.join(work, "train.txt")}"')


SOLVERS = {
    "sgd": """type: "SGD" base_lr: 0.2 momentum: 0.9 weight_decay: 0.001
lr_policy: "step" gamma: 0.5 stepsize: 7 clip_gradients: 2.0""",
    "adam": """type: "Adam" base_lr: 0.02 momentum: 0.9 momentum2: 0.999
lr_policy: "fixed" iter_size: 2""",
    "rnn": """type: "Adam" base_lr: 0.05 momentum: 0.9 momentum2: 0.999
lr_policy: "fixed" """,
    "lmdb": """type: "Nesterov" base_lr: 0.1 momentum: 0.9 lr_policy: "inv"
gamma: 0.1 power: 0.75""",
    "adagrad": """type: "AdaGrad" base_lr: 0.1 lr_policy: "multistep" gamma: 0.5
stepvalue: 5 stepvalue: 12 weight_decay: 0.01 regularization_type: "L1" """,
    "rmsprop": """type: "RMSProp" base_lr: 0.01 rms_decay: 0.9 lr_policy: "poly"
power: 2 """,
    "adadelta": """type: "AdaDelta" base_lr: 1.0 momentum: 0.95 delta: 1e-6
lr_policy: "sigmoid" gamma: 0.5 stepsize: 10""",
    "exp": """type: "SGD" base_lr: 0.1 momentum: 0.5 lr_policy: "exp" gamma: 0.95
iter_size: 3 clip_gradients: 0.5""",
}

NETS = {"sgd": _hdf5_net, "adam": _hdf5_net, "rnn": _binary_addition_net,
        "lmdb": _lmdb_net, "adagrad": _hdf5_net, "rmsprop": _hdf5_net,
        "adadelta": _hdf5_net, "exp": _hdf5_net}


def prepare(case: str, work: str, batch: int) -> str:
    """Write the case's data and net file (once); returns the net's path."""
    os.makedirs(work, exist_ok=True)
    net_text = NETS[case](work, batch)
    net_path = os.path.join(work, f"{case}_b{batch}.prototxt")
    with open(net_path, "w") as fh:
        fh.write(net_text)
    return net_path


def solver_param(case: str, work: str, batch: int, iters: int = ITERS,
                 **extra) -> caffe_pb2.SolverParameter:
    net_path = os.path.join(work, f"{case}_b{batch}.prototxt")
    if not os.path.exists(net_path):
        prepare(case, work, batch)
    text = SOLVERS[case] + f'\nnet: "{net_path}"\nmax_iter: {iters}\n' \
        'display: 0\nrandom_seed: 5\nsnapshot_after_train: false\n'
    param = parse_prototxt(text, caffe_pb2.SolverParameter)
    for k, v in extra.items():
        setattr(param, k, v)
    return param


def run_case(case: str, work: str, batch: int, iters: int = ITERS) -> list:
    """Train ``case`` in the current parallel context; the learnable params."""
    from recaffe import parallel
    from recaffe.solvers import get_solver

    solver = get_solver(solver_param(case, work, batch, iters))
    if parallel.size() > 1:
        parallel.DataParallel(solver)
    solver.solve()
    return [np.array(b.data) for b in solver.net.learnable_params]


def main(argv: list[str]) -> int:
    from recaffe import parallel

    work, out, *cases = argv
    ctx = parallel.init()
    batch = BATCH // ctx.size
    if ctx.rank == 0:
        for case in cases:
            prepare(case, os.path.join(work, case), batch)
    ctx.comm.allreduce(np.zeros(1, dtype=np.float32))  # the files are written
    for case in cases:
        params = run_case(case, os.path.join(work, case), batch)
        np.savez(os.path.join(out, f"{case}.n{ctx.size}.rank{ctx.rank}.npz"),
                 *params)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
