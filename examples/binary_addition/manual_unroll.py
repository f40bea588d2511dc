"""Binary addition with a hand-unrolled RNN, written as in the talk "RNN with Caffe".

The net adds two binary numbers bit by bit, least significant bit first: at
step t the input is the pair of bits (a_t, b_t) and the target is bit t of
a + b. One time step is written once inside a Python loop; every step's layers
get their own names (``zX1``, ``zX2``, …) while their parameters keep the same
names (``WX``, ``bX``, ``WH``, ``WO``, ``bO``), so Caffe shares them through
time. The slide's code is :func:`binary_addition_train` below, unchanged except
for Python 3's ``range`` and the parts the slide cut off.

Run (writes data/ next to this file; with the default seed it reaches bit accuracy
1.0 in 4000 iterations, a few seconds; with only 3 hidden units some seeds need more)::

    python examples/binary_addition/manual_unroll.py --num-steps 8 --iters 4000

Data: ``data`` is N x 1 x 1 x 2T (bits a_t, b_t at columns 2t, 2t+1), ``label``
is N x T.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import recaffe as caffe
from recaffe import layers as L
from recaffe import params as P

#: HDF5 list file the train net reads (relative to the working directory).
DEFAULT_SOURCE = "data/binary_addition_train.txt"


def binary_addition_train(num_steps, batch_size, source=DEFAULT_SOURCE):
    # number of hidden units
    num_hu = 3

    # net spec
    ns = caffe.NetSpec()

    # inputs
    ns.data, ns.label = L.HDF5Data(name='HDF5', include=dict(phase=caffe.TRAIN), ntop=2,
                                   hdf5_data_param=dict(source=source,
                                                        batch_size=batch_size))

    # slice
    X = L.Slice(ns.data, name='X', ntop=num_steps, slice_param=dict(axis=3, slice_point=
                list(range(2, 2 * num_steps, 2))))

    # initial hidden units
    ns.H = L.DummyData(dummy_data_param=dict(shape=dict(dim=[batch_size, 1, num_hu]),
                                             data_filler=dict(type='constant')))

    output = []
    for t in range(num_steps):
        step = str(t + 1)

        zX = L.InnerProduct(X[t],
                            param=[dict(name='WX', lr_mult=1),
                                   dict(name='bX', lr_mult=1)],
                            num_output=num_hu, weight_filler=dict(type='xavier'),
                            bias_filler=dict(type='constant'))
        ns.__setattr__('zX' + step, zX)

        zH = L.InnerProduct(ns.H, param=dict(name='WH', lr_mult=1), bias_term=False,
                            num_output=num_hu,
                            weight_filler=dict(type='xavier'))
        ns.__setattr__('zH' + step, zH)

        z = L.Eltwise(zX, zH, eltwise_param=dict(operation=P.Eltwise.SUM))
        ns.__setattr__('z' + step, z)

        a = L.Sigmoid(z)
        ns.__setattr__('a' + step, a)

        out = L.InnerProduct(a,
                             param=[dict(name='WO', lr_mult=1),
                                    dict(name='bO', lr_mult=1)],
                             num_output=1, weight_filler=dict(type='xavier'),
                             bias_filler=dict(type='constant'))
        ns.__setattr__('out' + step, out)
        output.append(out)

        ns.__setattr__('H', a)

    ns.output = L.Concat(*output, concat_param=dict(axis=1))
    # ns.accuracy = L.Accuracy(ns.output, ns.label)
    ns.loss = L.EuclideanLoss(ns.output, ns.label)

    return ns.to_proto()


def make_data(num_samples: int, num_steps: int, seed: int = 0):
    """Random pairs of (num_steps - 1)-bit numbers and the bits of their sums."""
    rng = np.random.default_rng(seed)
    high = 2 ** (num_steps - 1)
    a = rng.integers(0, high, num_samples)
    b = rng.integers(0, high, num_samples)
    s = a + b
    bits = np.arange(num_steps)
    a_bits = (a[:, None] >> bits) & 1
    b_bits = (b[:, None] >> bits) & 1
    data = np.zeros((num_samples, 1, 1, 2 * num_steps), dtype=np.float32)
    data[:, 0, 0, 0::2] = a_bits
    data[:, 0, 0, 1::2] = b_bits
    label = ((s[:, None] >> bits) & 1).astype(np.float32)
    return data, label


def write_data(directory: str, num_samples: int, num_steps: int, seed: int = 0) -> str:
    """Write ``train.h5`` and the list file naming it; returns the list file."""
    import h5py  # noqa: PLC0415

    os.makedirs(directory, exist_ok=True)
    data, label = make_data(num_samples, num_steps, seed)
    h5 = os.path.abspath(os.path.join(directory, "binary_addition_train.h5"))
    with h5py.File(h5, "w") as f:
        f["data"] = data
        f["label"] = label
    source = os.path.join(directory, "binary_addition_train.txt")
    with open(source, "w") as f:
        f.write(h5 + "\n")
    return source


SOLVER = """net: "{net}"
base_lr: {lr}
momentum: 0.9
lr_policy: "fixed"
display: {display}
max_iter: {iters}
snapshot_after_train: false
solver_mode: CPU
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--iters", type=int, default=4000)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1701)
    parser.add_argument("--workdir", default=os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "data"))
    args = parser.parse_args(argv)

    caffe.set_random_seed(args.seed)
    source = write_data(args.workdir, 20 * args.batch_size, args.num_steps, args.seed)
    net_file = os.path.join(args.workdir, "manual_unroll_train.prototxt")
    with open(net_file, "w") as f:
        f.write(str(binary_addition_train(args.num_steps, args.batch_size, source)))
    solver_file = os.path.join(args.workdir, "manual_unroll_solver.prototxt")
    with open(solver_file, "w") as f:
        f.write(SOLVER.format(net=net_file, lr=args.lr, iters=args.iters,
                              display=max(args.iters // 10, 1)))
    print(f"net: {net_file}")
    solver = caffe.get_solver(solver_file)
    solver.step(args.iters)
    net = solver.net
    net.forward()
    pred = net.blobs["output"].data > 0.5
    bit_acc = float((pred == (net.blobs["label"].data > 0.5)).mean())
    print(f"loss {float(net.blobs['loss'].data):.4f}  bit accuracy {bit_acc:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
