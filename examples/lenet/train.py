"""LeNet, the talk's "Caffe Net Example": digits -> LMDB -> Data layer -> train.

    python examples/lenet/train.py

1. Reads scikit-learn's bundled 8x8 digits (``sklearn.datasets.load_digits``,
   no download), upscales them to 28x28 (bilinear) so that LeNet's MNIST shapes
   hold, and writes ``digits_train_lmdb`` / ``digits_test_lmdb`` (360 held-out
   images) into ``--out`` with :func:`recaffe.tools.convert.arrays_to_lmdb`,
   plus ``digits_mean.binaryproto`` with
   :func:`recaffe.tools.convert.compute_image_mean`.
2. Trains ``lenet_train_test.prototxt`` with ``lenet_solver.prototxt`` (both
   plain Caffe files in this folder): a ``Data`` layer reading the LMDB with
   ``transform_param { scale: 0.00392156862745 }``, conv 20x5x5 (xavier), MAX
   pool 2x2 stride 2, conv 50, pool, ip 500, ReLU, ip 10, SoftmaxWithLoss and,
   in TEST, Accuracy.

Writes into ``--out`` (default ``lenet_out/``, the folder the shipped prototxt
files name): the LMDBs, the resolved ``lenet_solver.prototxt`` and
``lenet_train_test.prototxt``, the Caffe-format log ``lenet.log``, its plot
``lenet_loss.png`` and the final snapshot. Needs scikit-learn
(``pip install 'recaffe[examples]'``).
"""

from __future__ import annotations

import argparse
import os
import time

# On a small or busy machine BLAS threads cost LeNet's GEMMs more than they
# give: one thread unless the user asks otherwise (set before numpy loads).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import recaffe  # noqa: E402
from recaffe.io.prototxt import read_prototxt, to_text  # noqa: E402
from recaffe.proto import caffe_pb2  # noqa: E402
from recaffe.tools.convert import arrays_to_lmdb, compute_image_mean  # noqa: E402
from recaffe.tools.script import last_test_output, plot_curve, run_main  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE = 28
NUM_TEST = 360


def load_digits():
    """(images (1797, 8, 8) in [0, 16], labels) from scikit-learn."""
    try:
        from sklearn.datasets import load_digits as sk_load  # noqa: PLC0415
    except ImportError:
        raise SystemExit("lenet: this example needs scikit-learn for its bundled "
                         "digits data set: pip install scikit-learn (or pip install "
                         "'recaffe[examples]')") from None
    d = sk_load()
    return d.images.astype(np.float64), d.target.astype(np.int64)


def _resize_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) bilinear interpolation weights (pixel centres aligned)."""
    pos = np.clip((np.arange(dst) + 0.5) * src / dst - 0.5, 0, src - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, src - 1)
    frac = pos - lo
    m = np.zeros((dst, src))
    m[np.arange(dst), lo] += 1 - frac
    m[np.arange(dst), hi] += frac
    return m


def upscale(images: np.ndarray, size: int = SIZE) -> np.ndarray:
    """(N, 8, 8) in [0, 16] -> (N, 1, size, size) uint8 in [0, 255]."""
    r = _resize_matrix(images.shape[1], size)
    c = _resize_matrix(images.shape[2], size)
    big = np.einsum("ij,njk,lk->nil", r, images, c) * (255.0 / 16.0)
    return np.clip(np.rint(big), 0, 255).astype(np.uint8)[:, None]


def convert(out: str, seed: int) -> tuple[str, str, int]:
    """Write the train/test LMDBs (and the mean image); returns the paths and
    the number of training images."""
    images, labels = load_digits()
    order = np.random.default_rng(seed).permutation(len(labels))
    test, train = order[:NUM_TEST], order[NUM_TEST:]
    big = upscale(images)
    train_db = os.path.join(out, "digits_train_lmdb")
    test_db = os.path.join(out, "digits_test_lmdb")
    arrays_to_lmdb(big[train], labels[train], train_db, overwrite=True)
    arrays_to_lmdb(big[test], labels[test], test_db, overwrite=True)
    compute_image_mean(train_db, os.path.join(out, "digits_mean.binaryproto"))
    return train_db, test_db, len(train)


def resolve(args, train_db: str, test_db: str) -> str:
    """Copies of the shipped solver and net with the paths pointed at --out."""
    net = read_prototxt(os.path.join(HERE, "lenet_train_test.prototxt"),
                        caffe_pb2.NetParameter)
    for layer in net.layer:
        if layer.type == "Data":
            phases = [r.phase for r in layer.include]
            layer.data_param.source = test_db if caffe_pb2.TEST in phases else train_db
    net_path = os.path.join(args.out, "lenet_train_test.prototxt")
    with open(net_path, "w") as f:
        f.write(to_text(net))
    solver = read_prototxt(os.path.join(HERE, "lenet_solver.prototxt"),
                           caffe_pb2.SolverParameter)
    solver.net = net_path
    solver.snapshot_prefix = os.path.join(args.out, "lenet")
    if args.iters is not None:
        solver.max_iter = args.iters
    if args.test_interval is not None:
        solver.test_interval = args.test_interval
    if args.display is not None:
        solver.display = args.display
    solver_path = os.path.join(args.out, "lenet_solver.prototxt")
    with open(solver_path, "w") as f:
        f.write(to_text(solver))
    return solver_path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="lenet_out", help="output folder")
    p.add_argument("--iters", type=int, help="max_iter (default: the solver file's)")
    p.add_argument("--test-interval", type=int, help="default: the solver file's")
    p.add_argument("--display", type=int, help="default: the solver file's")
    p.add_argument("--seed", type=int, default=1, help="seed of the train/test split")
    p.add_argument("--quiet", action="store_true", help="log to the file only")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    train_db, test_db, n_train = convert(args.out, args.seed)
    logfile = os.path.join(args.out, "lenet.log")
    recaffe.init_log(0, to_stderr=not args.quiet, log_file=logfile)
    recaffe.log(f"lenet: wrote {train_db} ({n_train} images) and {test_db} "
                f"({NUM_TEST} images), 1x{SIZE}x{SIZE} uint8")
    solver = recaffe.get_solver(resolve(args, train_db, test_db))
    start = time.perf_counter()
    solver.solve()
    if solver.param.test_interval and solver.iter % solver.param.test_interval:
        solver.test(0)
    elapsed = time.perf_counter() - start
    acc = last_test_output(logfile, "accuracy")
    recaffe.log(f"lenet: held-out accuracy {acc:.4f} after {solver.iter} iterations "
                f"({elapsed:.1f} s)")
    print(f"held-out accuracy: {acc:.4f} ({solver.iter} iterations, {elapsed:.1f} s)")
    plot_curve(logfile, os.path.join(args.out, "lenet_loss.png"), "lenet")
    return 0


if __name__ == "__main__":
    run_main(main, "lenet")
