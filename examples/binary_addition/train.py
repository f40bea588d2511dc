"""Train the talk's RNN to add binary numbers, in one command.

    python examples/binary_addition/train.py [--iters 3000] [--hidden 16]
                                             [--manual] [--outdir DIR] [--gpu]

Steps: write the data (``data.py``) into the work directory, write the train
and test nets (built with ``recaffe.unroll``, or with ``--manual`` the talk's
hand-written loop of ``manual_unroll.py``) and the solver, then train with
recaffe's solver, evaluating the held-out additions every ``--check-every``
iterations; stop at 100% bit accuracy. Prints a few sums and the accuracy;
exits 0 when every held-out bit is right. ``--gpu`` is the talk's CPU-vs-GPU
experiment: the same script with ``set_mode_gpu()`` (nothing else changes).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time

import numpy as np

import recaffe as caffe
from recaffe.io.prototxt import read_prototxt
from recaffe.proto import caffe_pb2

HERE = os.path.dirname(os.path.abspath(__file__))


def sibling(name: str):
    """Import ``<name>.py`` of this folder as ``binary_addition_<name>`` (unique
    module names, so the example imports cleanly from anywhere)."""
    mod_name = f"binary_addition_{name}"
    if mod_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            mod_name, os.path.join(HERE, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
    return sys.modules[mod_name]


ba_data = sibling("data")
binary_addition_net = sibling("net_unroll").binary_addition_net


def build_nets(args, paths: dict, T: int):
    """(train, test) NetParameters."""
    if args.manual:
        binary_addition_train = sibling("manual_unroll").binary_addition_train
        train = binary_addition_train(T, args.batch, paths["train_source"])
        test = binary_addition_train(T, args.num_test, paths["test_source"])
        for net in (train, test):
            # the talk's data layer is TRAIN-only; the test net needs it too
            net.layer[0].ClearField("include")
    else:
        train = binary_addition_net(T, args.batch, paths["train_source"],
                                    num_hu=args.hidden)
        test = binary_addition_net(T, args.num_test, paths["test_source"],
                                   num_hu=args.hidden)
    train.name, test.name = "binary_addition_train", "binary_addition_test"
    return train, test


def export_prototxt(args) -> int:
    """Write the nets `recaffe train -solver .../solver.prototxt` uses."""
    T = args.bits + 1
    sources = {f"{split}_source": f"{args.outdir}/{split}.txt"
               for split in ("train", "test")}
    train, test = build_nets(args, sources, T)
    for net, name in ((train, "train.prototxt"), (test, "test.prototxt")):
        with open(os.path.join(HERE, name), "w") as f:
            f.write(EXPORT_HEADER + str(net))
    return 0


EXPORT_HEADER = (
    "# Written by `python examples/binary_addition/train.py --export`; the data\n"
    "# comes from `python examples/binary_addition/data.py` (binary_addition_work/).\n"
)


def evaluate(net) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(bit accuracy, sum accuracy, predicted bits, label bits) on one batch."""
    net.forward()
    pred = net.blobs["output"].data > 0.5
    label = net.blobs["label"].data > 0.5
    return (float((pred == label).mean()), float((pred == label).all(axis=1).mean()),
            pred, label)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train an RNN to add binary numbers.")
    parser.add_argument("--iters", type=int, default=3000,
                        help="most training iterations (stops earlier at 100%%)")
    parser.add_argument("--hidden", type=int, default=16, help="hidden units")
    parser.add_argument("--manual", action="store_true",
                        help="use the talk's hand-unrolled net (3 hidden units)")
    parser.add_argument("--outdir", default="binary_addition_work",
                        help="work directory for data, nets and solver")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--num-train", type=int, default=4000)
    parser.add_argument("--num-test", type=int, default=1000)
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--lr", type=float, default=None, help="override base_lr")
    parser.add_argument("--check-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--gpu", action="store_true",
                        help="train on the GPU (caffe.set_mode_gpu(); needs CuPy)")
    parser.add_argument("--export", action="store_true",
                        help="write train.prototxt/test.prototxt next to "
                             "solver.prototxt (data read from --outdir, relative to "
                             "the working directory, as `recaffe train` resolves "
                             "it) and exit")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    if args.export:
        return export_prototxt(args)
    if args.gpu:
        caffe.set_mode_gpu()
    else:
        caffe.set_mode_cpu()
    outdir = os.path.abspath(args.outdir)
    paths = ba_data.write_data(outdir, args.num_train, args.num_test, args.bits,
                               seed=args.seed)
    T = paths["T"]
    train, test = build_nets(args, paths, T)
    train_file = os.path.join(outdir, "train.prototxt")
    test_file = os.path.join(outdir, "test.prototxt")
    for net, path in ((train, train_file), (test, test_file)):
        with open(path, "w") as f:
            f.write(str(net))
    solver_param = read_prototxt(os.path.join(HERE, "solver.prototxt"),
                                 caffe_pb2.SolverParameter)
    # The shipped solver is for `recaffe train` (display, tests, snapshots);
    # here the held-out check below replaces its test passes.
    solver_param.ClearField("snapshot_prefix")
    solver_param.display = 0
    solver_param.snapshot = 0
    solver_param.test_interval = 1_000_000
    solver_param.test_initialization = False
    solver_param.snapshot_after_train = False
    solver_param.train_net = train_file
    del solver_param.test_net[:]
    solver_param.test_net.append(test_file)
    solver_param.max_iter = args.iters
    solver_param.random_seed = args.seed
    if args.lr is not None:
        solver_param.base_lr = args.lr
    solver_file = os.path.join(outdir, "solver.prototxt")
    with open(solver_file, "w") as f:
        f.write(str(solver_param))

    solver = caffe.get_solver(solver_file)
    test_net = solver.test_nets[0]
    test_net.share_with(solver.net)
    done, bit_acc, sum_acc = 0, 0.0, 0.0
    while done < args.iters:
        n = min(args.check_every, args.iters - done)
        solver.step(n)
        done += n
        bit_acc, sum_acc, pred, _ = evaluate(test_net)
        if not args.quiet:
            loss = float(solver.net.blobs["loss"].data)
            print(f"iter {done:5d}  train loss {loss:.4f}  held-out bit accuracy "
                  f"{bit_acc:.4f}  sums right {sum_acc:.4f}", flush=True)
        if bit_acc == 1.0:
            break
    elapsed = time.perf_counter() - start

    data = test_net.blobs["data"].data
    a = ba_data.decode(data[:, 0, 0, 0::2])
    b = ba_data.decode(data[:, 0, 0, 1::2])
    s = ba_data.decode(pred)
    for i in range(5):
        mark = "" if s[i] == a[i] + b[i] else f"   (wrong, {a[i] + b[i]})"
        print(f"{a[i]} + {b[i]} = {s[i]}{mark}")
    print(f"held-out bit accuracy {bit_acc * 100:.2f}% ({sum_acc * 100:.2f}% of "
          f"{len(a)} sums right) after {done} iterations, {elapsed:.1f} s")
    return 0 if bit_acc == 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
