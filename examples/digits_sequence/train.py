"""Classify 8x8 handwritten digits read one row at a time by an LSTM or a GRU.

    python examples/digits_sequence/train.py              # Caffe's LSTM layer
    python examples/digits_sequence/train.py --cell gru   # GRU unrolled by recaffe

Each image of scikit-learn's bundled digits (``sklearn.datasets.load_digits``,
1797 images, no download) becomes a sequence of T = 8 steps of 8 pixel values
(rows, top to bottom). The recurrent layer reads the rows; the hidden state
after the last row goes to an ``InnerProduct`` with 10 outputs,
``SoftmaxWithLoss`` and, in the test net, ``Accuracy``. Every image is its own
sequence: ``cont`` is 0 at the first row and 1 at the others.

``--cell lstm`` uses Caffe's ``LSTM`` layer and takes its last time step with a
``Slice``; ``--cell gru`` unrolls :class:`recaffe.recurrent.GRUCell` over the 8
rows with :func:`recaffe.recurrent.gru` (``return_last=True``).

360 images are held out. Written into ``--out`` (default
``digits_sequence_out/``): the prototxt files, the Caffe-format log
``digits_sequence.log``, its plot ``digits_sequence_loss.png`` and the final
snapshot. Needs scikit-learn (``pip install 'recaffe[examples]'``).
"""

from __future__ import annotations

import argparse
import os
import time

# Small GEMMs: BLAS threads cost more than they give (set before numpy loads).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import recaffe  # noqa: E402
from recaffe import layers as L  # noqa: E402
from recaffe.io.prototxt import to_text  # noqa: E402
from recaffe.net_spec import NetSpec  # noqa: E402
from recaffe.proto import caffe_pb2  # noqa: E402
from recaffe.recurrent import gru  # noqa: E402
from recaffe.tools.script import last_test_output, plot_curve, run_main  # noqa: E402

ROWS = COLS = 8
NUM_TEST = 360
TEST_BATCH = 90


def load_digits():
    """(images (1797, 8, 8) in [0, 1], labels (1797,)) from scikit-learn."""
    try:
        from sklearn.datasets import load_digits as sk_load  # noqa: PLC0415
    except ImportError:
        raise SystemExit("digits_sequence: this example needs scikit-learn for its "
                         "bundled digits data set: pip install scikit-learn (or pip "
                         "install 'recaffe[examples]')") from None
    d = sk_load()
    return d.images.astype(np.float32) / 16.0, d.target.astype(np.int64)


def split(images, labels, seed: int):
    order = np.random.default_rng(seed).permutation(len(labels))
    test, train = order[:NUM_TEST], order[NUM_TEST:]
    return images[train], labels[train], images[test], labels[test]


def build(cell: str, N: int, hidden: int, test: bool):
    ns = NetSpec()
    ns.data, ns.cont, ns.label = L.Input(
        shape=[dict(dim=[ROWS, N, COLS]), dict(dim=[ROWS, N]), dict(dim=[N])], ntop=3)
    uniform = dict(type="uniform", min=-0.1, max=0.1)
    if cell == "lstm":
        ns.lstm = L.LSTM(ns.data, ns.cont, recurrent_param=dict(
            num_output=hidden, weight_filler=uniform,
            bias_filler=dict(type="constant", value=0.0)))
        # Keep only the last step: (T, N, H) -> (T-1, N, H) + (1, N, H).
        ns.first_rows, ns.last = L.Slice(ns.lstm, axis=0, slice_point=[ROWS - 1],
                                         ntop=2)
        ns.silence_first_rows = L.Silence(ns.first_rows, ntop=0)
        last = ns.last
    elif cell == "gru":
        r = gru(ns.data, ns.cont, ROWS, hidden, N=N, name="gru", return_last=True,
                weight_filler=uniform, ns=ns)
        last = r.output
    else:
        raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")
    ns.features = L.Reshape(last, shape=dict(dim=[N, hidden]))
    ns.score = L.InnerProduct(ns.features, num_output=10,
                              weight_filler=dict(type="xavier"))
    ns.loss = L.SoftmaxWithLoss(ns.score, ns.label)
    if test:
        ns.accuracy = L.Accuracy(ns.score, ns.label)
    param = ns.to_proto()
    param.name = f"digits_sequence_{cell}"
    return param


class Feeder:
    """Puts batch k into the net before each forward: shuffled every epoch for
    training, in order for testing (test_iter batches = the held-out set)."""

    def __init__(self, net, images, labels, N: int, shuffle_seed: int | None,
                 position=None):
        self.net, self.images, self.labels, self.N = net, images, labels, N
        self.shuffle_seed, self.position, self.k = shuffle_seed, position, 0
        self.per_epoch = max(1, len(labels) // N)
        cont = np.ones((ROWS, N), dtype=np.float32)
        cont[0] = 0.0  # every image starts a new sequence
        self.cont = cont

    def indices(self, k: int) -> np.ndarray:
        epoch, j = divmod(int(k), self.per_epoch)
        if self.shuffle_seed is None:
            order = np.arange(len(self.labels))
        else:
            order = np.random.default_rng([self.shuffle_seed, epoch]).permutation(
                len(self.labels))
        return order[j * self.N:(j + 1) * self.N]

    def on_layer(self, i: int) -> None:
        if i != 0:
            return
        k = self.k if self.position is None else self.position()
        self.k += 1
        idx = self.indices(k)
        blobs = self.net.blobs
        # (N, rows, cols) -> time-major (rows, N, cols)
        blobs["data"].data[...] = self.images[idx].transpose(1, 0, 2)
        blobs["cont"].data[...] = self.cont
        blobs["label"].data[...] = self.labels[idx]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="digits_sequence_out", help="output folder")
    p.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    p.add_argument("--hidden", type=int, default=64, help="hidden size H")
    p.add_argument("--batch", type=int, default=64, help="training batch size N")
    p.add_argument("--iters", type=int, default=1500, help="training iterations")
    p.add_argument("--lr", type=float, default=0.01, help="Adam base_lr")
    p.add_argument("--test-interval", type=int, default=250)
    p.add_argument("--display", type=int, default=50)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--quiet", action="store_true", help="log to the file only")
    return p.parse_args(argv)


def solver_param(args, train_net: str, test_net: str):
    s = caffe_pb2.SolverParameter()
    s.train_net = train_net
    s.test_net.append(test_net)
    s.test_iter.append(NUM_TEST // TEST_BATCH)
    s.test_interval = args.test_interval
    s.type = "Adam"
    s.base_lr = args.lr
    s.momentum, s.momentum2 = 0.9, 0.999
    s.lr_policy = "step"
    s.gamma = 0.2
    s.stepsize = max(1, (2 * args.iters) // 3)
    s.weight_decay = 1e-4
    s.clip_gradients = 10.0
    s.display = args.display
    s.average_loss = max(1, args.display)
    s.max_iter = args.iters
    s.snapshot_prefix = os.path.join(args.out, "digits_sequence")
    s.random_seed = args.seed
    return s


def main(argv=None) -> int:
    args = parse_args(argv)
    images, labels = load_digits()
    x_train, y_train, x_test, y_test = split(images, labels, args.seed)
    os.makedirs(args.out, exist_ok=True)
    logfile = os.path.join(args.out, "digits_sequence.log")
    recaffe.init_log(0, to_stderr=not args.quiet, log_file=logfile)
    recaffe.set_random_seed(args.seed)
    recaffe.log(f"digits_sequence: {len(y_train)} training and {len(y_test)} held-out "
                f"images, each {ROWS} steps of {COLS} values; cell = {args.cell}")

    files = {k: os.path.join(args.out, f"digits_sequence_{k}.prototxt")
             for k in ("train", "test", "solver")}
    with open(files["train"], "w") as f:
        f.write(to_text(build(args.cell, args.batch, args.hidden, test=False)))
    with open(files["test"], "w") as f:
        f.write(to_text(build(args.cell, TEST_BATCH, args.hidden, test=True)))
    with open(files["solver"], "w") as f:
        f.write(to_text(solver_param(args, files["train"], files["test"])))

    solver = recaffe.get_solver(files["solver"])
    train_feed = Feeder(solver.net, x_train, y_train, args.batch, args.seed,
                        position=lambda: solver.iter)
    test_feed = Feeder(solver.test_nets[0], x_test, y_test, TEST_BATCH, None)
    solver.net.before_forward(train_feed.on_layer)
    solver.test_nets[0].before_forward(test_feed.on_layer)
    start = time.perf_counter()
    solver.solve()
    if solver.iter % args.test_interval:
        solver.test(0)
    elapsed = time.perf_counter() - start
    acc = last_test_output(logfile, "accuracy")
    recaffe.log(f"digits_sequence: held-out accuracy {acc:.4f} after {solver.iter} "
                f"iterations ({elapsed:.1f} s)")
    print(f"held-out accuracy: {acc:.4f} ({args.cell}, {solver.iter} iterations, "
          f"{elapsed:.1f} s)")
    plot_curve(logfile, os.path.join(args.out, "digits_sequence_loss.png"),
               "digits_sequence")
    return 0


if __name__ == "__main__":
    run_main(main, "digits_sequence")
