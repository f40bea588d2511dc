"""``recaffe unroll``: print the prototxt of an unrolled recurrent cell.

Example::

    recaffe unroll --cell lstm --T 3 --hidden 4 --input-dim 2 --batch 1

prints a net with an ``Input`` layer (tops ``x`` of shape ``(T, N, D)`` and
``cont`` of shape ``(T, N)``) and the cell unrolled over it, as BVLC Caffe
could run it.
"""

from __future__ import annotations

import argparse
import sys

from recaffe.cli.common import DefaultsHelpFormatter
from recaffe.errors import RecaffeError

__all__ = ["build", "main"]


def build(cell: str, T: int, hidden: int, input_dim: int, batch: int = 1,
          name: str | None = None, reverse: bool = False, nonlinearity: str = "tanh"):
    """The ``NetParameter`` that ``recaffe unroll`` prints."""
    from recaffe import recurrent
    from recaffe.net_spec import NetSpec
    from recaffe.net_spec import layers as L

    ns = NetSpec()
    ns.x, ns.cont = L.Input(shape=[dict(dim=[T, batch, input_dim]),
                                   dict(dim=[T, batch])],
                            ntop=2)
    name = cell if name is None else name
    if cell == "lstm":
        recurrent.lstm(ns.x, ns.cont, T, hidden, N=batch, name=name, reverse=reverse,
                       ns=ns)
    elif cell == "gru":
        recurrent.gru(ns.x, ns.cont, T, hidden, N=batch, name=name, reverse=reverse,
                      ns=ns)
    else:
        recurrent.rnn(ns.x, ns.cont, T, hidden, N=batch, name=name, reverse=reverse,
                      nonlinearity=nonlinearity, ns=ns)
    net = ns.to_proto()
    net.name = f"{name}_T{T}"
    return net


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        formatter_class=DefaultsHelpFormatter,
        prog="recaffe unroll",
        description="Print the prototxt of a recurrent cell unrolled over T steps.")
    parser.add_argument("--cell", choices=["lstm", "rnn", "gru"], default="lstm",
                        help="the recurrent cell")
    parser.add_argument("--T", type=int, required=True, help="number of time steps")
    parser.add_argument("--hidden", type=int, required=True, help="hidden size H")
    parser.add_argument("--input-dim", type=int, required=True, help="input size D")
    parser.add_argument("--batch", type=int, default=1, help="number of streams N")
    parser.add_argument("--name", default=None, help="prefix of names (default: cell)")
    parser.add_argument("--nonlinearity", choices=["tanh", "sigmoid", "relu"],
                        default="tanh", help="RNN cell non-linearity")
    parser.add_argument("--reverse", action="store_true", help="run from t=T to 1")
    parser.add_argument("--output", "-o", default=None, help="write to a file")
    args = parser.parse_args(argv)
    for flag, value in (("--T", args.T), ("--hidden", args.hidden),
                        ("--input-dim", args.input_dim), ("--batch", args.batch)):
        if value < 1:
            print(f"recaffe unroll: {flag} must be >= 1, got {value}", file=sys.stderr)
            return 1
    try:
        net = build(args.cell, args.T, args.hidden, args.input_dim, args.batch,
                    args.name, args.reverse, args.nonlinearity)
    except RecaffeError as e:
        print(f"recaffe unroll: {e}", file=sys.stderr)
        return 1
    text = str(net)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
