"""``recaffe test``: score a model (Caffe's ``caffe test``).

``recaffe test -model M -weights W [-iterations 50] [-phase TEST] [-level L]
[-stage a,b] [-gpu 0]``: runs ``iterations`` forward passes and logs
``Batch i, <blob> = v`` per output element, then ``Loss: <mean>`` and the mean
of every output element (with the loss-weight suffix for loss blobs).
"""

from __future__ import annotations

from recaffe import backend
from recaffe.cli.common import (
    ArgumentParser,
    UsageError,
    add_gpu_flag,
    add_log_flags,
    add_state_flags,
    parse_phase,
    select_blas,
    select_device,
    setup_logging,
    stages,
)
from recaffe.log import close_log_file, fmt, logger
from recaffe.proto import caffe_pb2


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="recaffe test", description="Score a model.")
    p.add_argument("--model", default="", help="the model definition prototxt")
    p.add_argument("--weights", default="", help="comma-separated .caffemodel files")
    p.add_argument("--iterations", type=int, default=50, help="batches to run")
    p.add_argument("--phase", default="", help="TRAIN or TEST (default TEST)")
    add_state_flags(p)
    add_gpu_flag(p)
    add_log_flags(p)
    return p


def main(argv: list[str]) -> int:
    from recaffe.net import Net

    args = build_parser().parse_args(argv)
    if not args.model:
        raise UsageError("Need a model definition to score (-model)")
    if not args.weights:
        raise UsageError("Need model weights to score (-weights)")
    if args.iterations <= 0:
        raise UsageError(f"-iterations must be > 0, got {args.iterations}")
    setup_logging(args.log_file)
    try:
        select_device(args.gpu)
        select_blas(args)
        phase = parse_phase(args.phase, caffe_pb2.TEST)
        net = Net(args.model, phase, level=args.level, stages=stages(args.stage))
        net.copy_from(args.weights)
        logger.info(f"Running for {args.iterations} iterations.")
        scores: list[float] = []
        owner: list[int] = []
        loss = 0.0
        for i in range(args.iterations):
            loss += net.forward_prefilled()
            idx = 0
            for j, bid in enumerate(net.output_blob_ids):
                name = net.blob_names[bid]
                for v in backend.to_host(net.blob_list[bid].data).reshape(-1):
                    if i == 0:
                        scores.append(float(v))
                        owner.append(j)
                    else:
                        scores[idx] += float(v)
                    idx += 1
                    logger.info(f"Batch {i}, {name} = {fmt(v)}")
        logger.info(f"Loss: {fmt(loss / args.iterations)}")
        for i, total in enumerate(scores):
            bid = net.output_blob_ids[owner[i]]
            w = net.blob_loss_weight_list[bid]
            mean = total / args.iterations
            suffix = f" (* {fmt(w)} = {fmt(w * mean)} loss)" if w else ""
            logger.info(f"{net.blob_names[bid]} = {fmt(mean)}{suffix}")
    finally:
        close_log_file()
    return 0
