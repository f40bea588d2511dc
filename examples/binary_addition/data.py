"""Binary-addition data: pairs of 8-bit numbers and the bits of their sums.

Each sample is one addition ``a + b`` read least significant bit first over
``T = bits + 1`` time steps (the extra step carries the last carry out):

- ``data``: ``N x 1 x 1 x 2T`` float32; columns ``2t`` and ``2t+1`` hold bit t
  of ``a`` and of ``b`` (0 at the last step);
- ``label``: ``N x T`` float32; column t holds bit t of ``a + b``.

This is the layout of ``manual_unroll.py`` (the talk's net slices ``data``
along axis 3 two columns per step). Train and test pairs are disjoint and the
split is seeded, so the test set measures generalisation to unseen additions.

Run ``python examples/binary_addition/data.py --outdir work`` to write
``train.h5``, ``test.h5`` and the list files ``train.txt``/``test.txt`` that
``HDF5Data`` layers read.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

__all__ = ["decode", "encode", "make_pairs", "write_data"]


def encode(a: np.ndarray, b: np.ndarray, bits: int = 8):
    """(data, label) arrays for the additions ``a + b`` (LSB first)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    T = bits + 1
    pos = np.arange(T)
    data = np.zeros((len(a), 1, 1, 2 * T), dtype=np.float32)
    data[:, 0, 0, 0::2] = (a[:, None] >> pos) & 1
    data[:, 0, 0, 1::2] = (b[:, None] >> pos) & 1
    label = (((a + b)[:, None] >> pos) & 1).astype(np.float32)
    return data, label


def decode(bits_lsb_first: np.ndarray) -> np.ndarray:
    """Integers from rows of bits (LSB first); values are thresholded at 0.5."""
    b = (np.asarray(bits_lsb_first) > 0.5).astype(np.int64)
    return (b << np.arange(b.shape[-1])).sum(axis=-1)


def make_pairs(num_train: int, num_test: int, bits: int = 8, seed: int = 0):
    """Disjoint random train and test pairs ``(a, b)`` of ``bits``-bit numbers."""
    total = 4 ** bits
    if num_train + num_test > total:
        raise ValueError(f"only {total} distinct {bits}-bit pairs exist, asked for "
                         f"{num_train + num_test}")
    rng = np.random.default_rng(seed)
    idx = rng.choice(total, num_train + num_test, replace=False)
    a, b = idx >> bits, idx & ((1 << bits) - 1)
    return (a[:num_train], b[:num_train]), (a[num_train:], b[num_train:])


def write_data(outdir: str, num_train: int = 4000, num_test: int = 1000,
               bits: int = 8, seed: int = 0) -> dict:
    """Write the HDF5 files and list files; returns their paths.

    Keys: ``train_source``, ``test_source`` (list files for ``HDF5Data``),
    ``train_h5``, ``test_h5``, and ``T`` (time steps).
    """
    import h5py

    os.makedirs(outdir, exist_ok=True)
    (ta, tb), (sa, sb) = make_pairs(num_train, num_test, bits, seed)
    paths: dict = {"T": bits + 1}
    for split, (a, b) in (("train", (ta, tb)), ("test", (sa, sb))):
        data, label = encode(a, b, bits)
        h5 = os.path.abspath(os.path.join(outdir, f"{split}.h5"))
        tmp = h5 + ".tmp"
        with h5py.File(tmp, "w") as f:
            f["data"] = data
            f["label"] = label
        os.replace(tmp, h5)
        source = os.path.abspath(os.path.join(outdir, f"{split}.txt"))
        with open(source, "w") as f:
            f.write(h5 + "\n")
        paths[f"{split}_h5"] = h5
        paths[f"{split}_source"] = source
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write binary-addition HDF5 data.")
    parser.add_argument("--outdir", default="binary_addition_work")
    parser.add_argument("--train", type=int, default=4000, help="training pairs")
    parser.add_argument("--test", type=int, default=1000, help="held-out pairs")
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = write_data(args.outdir, args.train, args.test, args.bits, args.seed)
    for key in ("train_source", "test_source"):
        print(f"{key}: {paths[key]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
