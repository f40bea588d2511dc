"""``recaffe draw NET.prototxt OUT.(dot|png|svg) [--rankdir LR] [--phase ALL]``.

Caffe's ``python/draw_net.py``: draws a net definition; ``.dot`` output needs no
extra software, image formats need Graphviz's ``dot`` program.
"""

from __future__ import annotations

import argparse

from recaffe.cli.common import DefaultsHelpFormatter
from recaffe.io.prototxt import read_prototxt
from recaffe.proto import caffe_pb2

_PHASES = {"TRAIN": caffe_pb2.TRAIN, "TEST": caffe_pb2.TEST, "ALL": None}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        formatter_class=DefaultsHelpFormatter,
        prog="recaffe draw", description="Draw a network graph (Caffe's draw_net.py).")
    parser.add_argument("input_net_proto_file", help="net definition (.prototxt)")
    parser.add_argument("output_image_file",
                        help="output file; the extension picks the format "
                             "(.dot needs nothing, .png/.svg/.pdf need Graphviz)")
    parser.add_argument("--rankdir", default="LR", choices=["LR", "RL", "TB", "BT"],
                        help="direction of the graph layout (default LR)")
    parser.add_argument("--phase", default="ALL", type=str.upper,
                        choices=sorted(_PHASES),
                        help="draw only the layers of this phase (default ALL)")
    parser.add_argument("--display_lrm", action="store_true",
                        help="show the learning-rate multipliers of layers")
    return parser


def main(argv: list[str] | None = None) -> int:
    from recaffe import draw  # noqa: PLC0415

    args = build_parser().parse_args(argv)
    net = read_prototxt(args.input_net_proto_file, caffe_pb2.NetParameter)
    print(f"Drawing net to {args.output_image_file}")
    draw.draw_net_to_file(net, args.output_image_file, args.rankdir,
                          _PHASES[args.phase], args.display_lrm)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
