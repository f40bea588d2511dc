"""``python -m recaffe.examples binary_addition [DIR]``: a runnable copy.

Writes the example's data (held-out pairs disjoint from the training pairs),
its train and test nets and its solver into ``DIR`` (default
``binary_addition_work`` in the current directory) with absolute paths, and
prints the solver's path, so that from any directory::

    recaffe train -solver "$(python -m recaffe.examples binary_addition)"

trains the talk's RNN from an installed recaffe, without a checkout.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from recaffe.examples import EXAMPLES
from recaffe.io.prototxt import parse_prototxt, write_prototxt
from recaffe.proto import caffe_pb2


def prepare_binary_addition(outdir: str, num_train: int = 4000,
                            num_test: int = 1000) -> Path:
    """Write data, nets and solver into ``outdir``; the solver's path."""
    from recaffe.examples.binary_addition import data

    files = resources.files("recaffe.examples.binary_addition")
    out = Path(outdir).resolve()
    paths = data.write_data(str(out), num_train, num_test)
    nets = {}
    for split in ("train", "test"):
        net = parse_prototxt(files.joinpath(f"{split}.prototxt").read_text(),
                             caffe_pb2.NetParameter)
        for layer in net.layer:
            if layer.type == "HDF5Data":
                layer.hdf5_data_param.source = paths[f"{split}_source"]
        nets[split] = out / f"{split}.prototxt"
        write_prototxt(net, nets[split])
    solver = parse_prototxt(files.joinpath("solver.prototxt").read_text(),
                            caffe_pb2.SolverParameter)
    solver.train_net = str(nets["train"])
    del solver.test_net[:]
    solver.test_net.append(str(nets["test"]))
    solver.snapshot_prefix = str(out / "binary_addition")
    path = out / "solver.prototxt"
    write_prototxt(solver, path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recaffe.examples",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("example", choices=EXAMPLES)
    p.add_argument("dir", nargs="?", default="binary_addition_work",
                   help="where to write (default: binary_addition_work)")
    args = p.parse_args(argv)
    print(prepare_binary_addition(args.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
