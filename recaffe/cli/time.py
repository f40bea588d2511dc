"""``recaffe time``: per-layer forward/backward timing (Caffe's ``caffe time``).

``recaffe time -model M [-iterations 50] [-phase TRAIN] [-level L] [-stage a,b]
[-gpu 0]``: one warm-up forward/backward, then ``iterations`` timed passes;
logs each iteration's time, every layer's average forward and backward time,
the averages and the total, in Caffe's layout. Then the execution plan's
steps, and in GPU mode the time of a forward-backward replayed as CUDA graphs
(or why the net runs eagerly).
"""

from __future__ import annotations

from time import perf_counter

from recaffe.backend import synced
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
    synchronize,
)
from recaffe.log import close_log_file, fmt, logger
from recaffe.proto import caffe_pb2


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="recaffe time", description="Benchmark a model.")
    p.add_argument("--model", default="", help="the model definition prototxt")
    p.add_argument("--iterations", type=int, default=50, help="timed iterations")
    p.add_argument("--phase", default="", help="TRAIN or TEST (default TRAIN)")
    p.add_argument("--weights", default="", help="optional .caffemodel to load")
    add_state_flags(p)
    add_gpu_flag(p)
    add_log_flags(p)
    return p


def _time_plan(net, iterations: int) -> None:
    """Where the time goes in the execution plan that training uses."""
    net.forward_prefilled()
    plan = net.plan
    if plan is None:
        logger.info("Execution plan: off (RECAFFE_PLAN=0, debug_info or callbacks)")
        return
    net.backward_all()
    labels = plan.describe().splitlines()
    fwd = [0.0] * len(labels)
    bwd = [0.0] * len(labels)
    for _ in range(iterations):
        f, b = plan.timed_pass(synchronize)
        fwd = [x + y for x, y in zip(fwd, f, strict=True)]
        bwd = [x + y for x, y in zip(bwd, b, strict=True)]
    batched = sum(1 for line in labels if line.startswith("batched"))
    logger.info(f"Execution plan: {len(labels)} steps for {len(net.layers_list)} "
                f"layers ({batched} time-batched groups); average per step:")
    for k, label in enumerate(labels):
        logger.info(f"  plan step {k}: {label}\tforward: "
                    f"{fmt(fwd[k] * 1e3 / iterations)} ms.\tbackward: "
                    f"{fmt(bwd[k] * 1e3 / iterations)} ms.")
    per_iter = (sum(fwd) + sum(bwd)) * 1e3 / iterations
    logger.info(f"Plan Forward-Backward: {fmt(per_iter)} ms.")


def _log_copies(iterations: int) -> None:
    """Host<->device copies made by the timed passes (SyncedMemory's; none in
    CPU mode, and none on the device when no blob is read on the host)."""
    c = synced.copy_counts()
    logger.info(f"Host-device copies in {iterations} iterations: "
                f"{c['host_to_device']} host->device "
                f"({c['host_to_device_bytes']} bytes), {c['device_to_host']} "
                f"device->host ({c['device_to_host_bytes']} bytes).")


def _time_graphs(net, iterations: int) -> None:
    """Forward-backward replayed as CUDA graphs (GPU mode): the time per
    iteration, or the reason the net runs eagerly."""
    from recaffe import backend, graph_runner

    if not backend.is_gpu():
        return
    # The per-layer loop above ran layers outside the net: state is re-synced
    # and the graphs are recorded afresh (warm-up, capture, first replay).
    net._plain_ran()
    for _ in range(3):
        net.forward_prefilled()
        net.backward_all()
    st = graph_runner.status(net)
    if not {"forward", "backward"} <= set(st["graphs"]):
        logger.info(f"CUDA graphs: not used, the net runs eagerly: "
                    f"{st['eager_reason'] or 'unknown reason'}")
        return
    synchronize()
    start = perf_counter()
    for _ in range(iterations):
        net.forward_prefilled()
        net.backward_all()
    synchronize()
    per_iter = (perf_counter() - start) * 1e3 / iterations
    st = graph_runner.status(net)
    logger.info(f"CUDA graph replay Forward-Backward: {fmt(per_iter)} ms. "
                f"({len(st['graphs'])} graphs, {st['captures']} captures, "
                f"{fmt(st['kept_bytes'] / 2**20)} MiB kept for them)")


def main(argv: list[str]) -> int:
    from recaffe.net import Net

    args = build_parser().parse_args(argv)
    if not args.model:
        raise UsageError("Need a model definition to time (-model)")
    if args.iterations <= 0:
        raise UsageError(f"-iterations must be > 0, got {args.iterations}")
    setup_logging(args.log_file)
    try:
        select_device(args.gpu)
        select_blas(args)
        phase = parse_phase(args.phase, caffe_pb2.TRAIN)
        net = Net(args.model, phase, level=args.level, stages=stages(args.stage))
        if args.weights:
            net.copy_from(args.weights)
        layers = net.layers_list
        n = len(layers)
        logger.info("Performing Forward")
        initial_loss = net.forward_prefilled()
        logger.info(f"Initial loss: {fmt(initial_loss)}")
        logger.info("Performing Backward")
        net.backward_all()
        # The timed loop calls layers directly, as Caffe's does: it runs on the
        # device side (no per-layer host/device bookkeeping).
        with synced.device_side():
            synced.reset_copy_counts()
            logger.info("*** Benchmark begins ***")
            logger.info(f"Testing for {args.iterations} iterations.")
            fwd_layer = [0.0] * n
            bwd_layer = [0.0] * n
            fwd_total = bwd_total = 0.0
            synchronize()
            total_start = perf_counter()
            for j in range(args.iterations):
                iter_start = perf_counter()
                for i in range(n):
                    t = perf_counter()
                    layers[i].Forward(net.bottom_vecs[i], net.top_vecs[i])
                    synchronize()
                    fwd_layer[i] += perf_counter() - t
                mid = perf_counter()
                fwd_total += mid - iter_start
                for i in range(n - 1, -1, -1):
                    t = perf_counter()
                    if net.layer_need_backward[i]:
                        layers[i].Backward(net.top_vecs[i], net.bottom_need_backward[i],
                                           net.bottom_vecs[i])
                        synchronize()
                    bwd_layer[i] += perf_counter() - t
                end = perf_counter()
                bwd_total += end - mid
                logger.info(f"Iteration: {j + 1} forward-backward time: "
                            f"{fmt((end - iter_start) * 1e3)} ms.")
            total = perf_counter() - total_start
            its = args.iterations
            logger.info("Average time per layer: ")
            for i in range(n):
                name = net.layer_names[i]
                logger.info(f"{name:>10}\tforward: {fmt(fwd_layer[i] * 1e3 / its)} ms.")
                logger.info(
                    f"{name:>10}\tbackward: {fmt(bwd_layer[i] * 1e3 / its)} ms.")
            logger.info(f"Average Forward pass: {fmt(fwd_total * 1e3 / its)} ms.")
            logger.info(f"Average Backward pass: {fmt(bwd_total * 1e3 / its)} ms.")
            logger.info(f"Average Forward-Backward: {fmt(total * 1e3 / its)} ms.")
            logger.info(f"Total Time: {fmt(total * 1e3)} ms.")
            logger.info("*** Benchmark ends ***")
            _log_copies(its)
            _time_plan(net, its)
        # Graphs replay through the net's own entry points, which keep the
        # host/device heads in step themselves (outside device_side()).
        _time_graphs(net, its)
    finally:
        close_log_file()
    return 0
