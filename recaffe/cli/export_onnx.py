"""``recaffe export-onnx``: write a net and its weights as an ONNX model.

``recaffe export-onnx -model deploy.prototxt [-weights w.caffemodel] -o model.onnx
[-opset 18] [-dynamic_batch] [-batch_axis 0] [-carry_state] [-outputs a,b] [-check]
[-level L] [-stage a,b]``

The graph keeps the net's input and output blob names and shapes; ``-check``
runs the model with ONNX Runtime on random inputs and compares every output with
recaffe's forward (relative error at most 1e-4). See docs/onnx.md.
"""

from __future__ import annotations

from recaffe.cli.common import (
    ArgumentParser,
    UsageError,
    add_log_flags,
    add_state_flags,
    setup_logging,
    stages,
)
from recaffe.log import close_log_file, logger


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="recaffe export-onnx",
                       description="Export a net and its weights to ONNX.")
    p.add_argument("--model", default="", help="the net definition prototxt")
    p.add_argument("--weights", default="",
                   help="comma-separated .caffemodel files (none: the fillers' "
                        "initial weights)")
    p.add_argument("-o", "--output", default="", help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=None,
                   help="ONNX opset (default: 18)")
    p.add_argument("--dynamic_batch", action="store_true",
                   help="make the batch axis of inputs and outputs symbolic")
    p.add_argument("--batch_axis", type=int, default=0,
                   help="the batch axis (1 for time-major recurrent nets)")
    p.add_argument("--carry_state", action="store_true",
                   help="RNN/LSTM state as extra inputs/outputs (<layer>_h_0 ... "
                        "<layer>_h_T)")
    p.add_argument("--outputs", default="",
                   help="comma-separated blobs to output as well although layers "
                        "read them (e.g. an unrolled net's final states)")
    p.add_argument("--check", action="store_true",
                   help="compare ONNX Runtime's outputs with recaffe's on random "
                        "inputs")
    add_state_flags(p)
    add_log_flags(p)
    return p


def main(argv: list[str]) -> int:
    from recaffe import TEST, Net  # noqa: PLC0415
    from recaffe.onnx import DEFAULT_OPSET, check, export  # noqa: PLC0415

    args = build_parser().parse_args(argv)
    if not args.model:
        raise UsageError("Need a net definition to export (-model)")
    if not args.output:
        raise UsageError("Need an output file (-o model.onnx)")
    setup_logging(args.log_file)
    try:
        net = Net(args.model, TEST, level=args.level, stages=stages(args.stage))
        if args.weights:
            net.copy_from(args.weights)
        else:
            logger.warning("No -weights: exporting the fillers' initial weights")
        model = export(net, args.output, opset=args.opset or DEFAULT_OPSET,
                       dynamic_batch=args.dynamic_batch, batch_axis=args.batch_axis,
                       carry_state=args.carry_state,
                       extra_outputs=stages(args.outputs))
        ins = ", ".join(f"{i.name} {_dims(i)}" for i in model.graph.input)
        outs = ", ".join(f"{o.name} {_dims(o)}" for o in model.graph.output)
        logger.info(f"Wrote {args.output} (opset {model.opset_import[0].version}, "
                    f"{len(model.graph.node)} nodes, {len(model.graph.initializer)} "
                    f"initializers); inputs: {ins}; outputs: {outs}")
        if args.check:
            errors = check(net, model)
            worst = max(errors.values(), default=0.0)
            logger.info(f"ONNX Runtime check passed: {len(errors)} output(s), largest "
                        f"relative error {worst:.3g}")
    finally:
        close_log_file()
    return 0


def _dims(vi) -> str:
    dims = [d.dim_param or str(d.dim_value) for d in vi.type.tensor_type.shape.dim]
    return "(" + ", ".join(dims) + ")"
