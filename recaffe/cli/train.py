"""``recaffe train``: train or finetune a model (Caffe's ``caffe train``).

``recaffe train -solver S [-weights W | -snapshot S.solverstate] [-iterations N]
[-level L] [-stage a,b] [-sigint_effect stop] [-sighup_effect snapshot]
[-log_file F] [-gpu 0] [-tensorboard DIR [-tensorboard_histograms K]]``

SIGINT and SIGHUP set the solver's requested action (``stop``, ``snapshot`` or
``none``), checked once per iteration as Caffe does; with ``stop`` training
ends early and, as ``snapshot_after_train`` is on by default, the weights and
solver state are snapshotted. A second SIGINT while a stop is pending aborts.

Beyond one process (docs/distributed.md): under ``mpirun -n N`` every rank
trains its shard of the data and the gradients are averaged over MPI; with
``-gpu 0,1`` (or ``-gpu all`` on a machine with several GPUs) one process per
GPU is started and the gradients are averaged over NCCL. Rank 0 alone logs,
tests and snapshots; an error on any rank stops every rank.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time

from recaffe.cli.common import (
    ArgumentParser,
    UsageError,
    add_gpu_flag,
    add_log_flags,
    add_state_flags,
    select_blas,
    select_device,
    setup_logging,
    stages,
)
from recaffe.cli.progress import ProgressLine
from recaffe.log import close_log_file, logger

EFFECTS = ("stop", "snapshot", "none")


class SignalActions:
    """Turn SIGINT/SIGHUP into solver actions (Caffe's SignalHandler)."""

    def __init__(self, sigint_effect: str = "stop", sighup_effect: str = "snapshot",
                 usr_aliases: bool = False):
        self.effects = {signal.SIGINT: sigint_effect}
        if hasattr(signal, "SIGHUP"):
            self.effects[signal.SIGHUP] = sighup_effect
        if usr_aliases and hasattr(signal, "SIGUSR1"):
            # mpirun passes SIGUSR1/SIGUSR2 on to the ranks (not SIGINT/SIGHUP).
            self.effects[signal.SIGUSR1] = sighup_effect
            self.effects[signal.SIGUSR2] = sigint_effect
        self.got: dict[int, bool] = dict.fromkeys(self.effects, False)
        self._old: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.got[signum] and \
                self.effects[signum] == "stop":
            raise KeyboardInterrupt
        self.got[signum] = True

    def __enter__(self):
        for sig in self.effects:
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def __call__(self) -> str:
        """The requested action; each signal is reported once."""
        for sig in self.effects:
            if self.got[sig]:
                self.got[sig] = False
                return self.effects[sig]
        return "none"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="recaffe train", description="Train or finetune a model.")
    p.add_argument("--solver", default="", help="the solver definition prototxt")
    p.add_argument("--weights", default="",
                   help="comma-separated .caffemodel files to finetune from")
    p.add_argument("--snapshot", default="",
                   help="a .solverstate (or .solverstate.h5) to resume from")
    p.add_argument("--iterations", type=int, default=None,
                   help="train for this many iterations (overrides max_iter)")
    p.add_argument("--sigint_effect", default="stop", choices=EFFECTS,
                   help="what SIGINT (Ctrl-C) does (default: stop, which snapshots "
                        "when snapshot_after_train is on)")
    p.add_argument("--sighup_effect", default="snapshot", choices=EFFECTS,
                   help="what SIGHUP does")
    p.add_argument("--tensorboard", default="",
                   help="write TensorBoard curves to this folder (needs tensorboardX)")
    p.add_argument("--tensorboard_histograms", type=int, default=0,
                   help="with -tensorboard: parameter/gradient histograms every K "
                        "iterations (0 = none)")
    add_state_flags(p)
    add_gpu_flag(p)
    add_log_flags(p)
    return p


def main(argv: list[str]) -> int:
    from recaffe import parallel

    args = build_parser().parse_args(argv)
    if not args.solver:
        raise UsageError("Need a solver definition to train (-solver)")
    if args.weights and args.snapshot:
        raise UsageError("Give a snapshot to resume training or weights to finetune "
                         "but not both.")
    by_mpi = parallel.launched_by_mpi()
    ids = None
    if args.gpu and (args.gpu == "all" or "," in args.gpu):
        from recaffe.parallel.launch import gpu_ids, launch_gpus  # noqa: PLC0415

        ids = gpu_ids(args.gpu)
        if (len(ids) > 1 and by_mpi is None
                and "RECAFFE_NCCL_UID" not in os.environ):
            return launch_gpus(argv, ids)
    ctx = parallel.init()
    if ctx.size == 1:
        return _train(args, ids, ctx)
    try:
        return _train(args, ids, ctx)
    except (Exception, KeyboardInterrupt) as exc:
        # One rank's error stops the job: say which rank, then abort every rank
        # (the others may be waiting in a collective).
        from recaffe.cli.__main__ import error_line  # noqa: PLC0415
        from recaffe.errors import RecaffeError  # noqa: PLC0415

        if not isinstance(exc, (RecaffeError, OSError)):
            exc = f"{type(exc).__name__}: {exc}"
        line = error_line(exc)
        if f"rank {ctx.rank}" not in line:
            line = line.replace("recaffe: error: ",
                                f"recaffe: error: rank {ctx.rank}: ", 1)
        print(line, file=sys.stderr, flush=True)
        # A moment for the other ranks to print their own error (an error in
        # the set-up usually happens on every rank), then stop the job.
        time.sleep(0.5)
        ctx.comm.abort(1)
        return 1


def _device_for_rank(args, ids, ctx) -> str:
    """The -gpu value of this rank: ``ids[rank]`` in a multi-GPU job."""
    if ids is None or len(ids) == 1:
        return args.gpu if ids is None else str(ids[0])
    n = ctx.size
    if n != len(ids):
        raise UsageError(f"-gpu {args.gpu} lists {len(ids)} GPUs for {n} rank(s); "
                         f"start one rank per GPU (mpirun -n {len(ids)}) or list "
                         f"{n} GPU(s)")
    return str(ids[ctx.rank])


def _train(args, ids, ctx) -> int:
    from recaffe import parallel
    from recaffe.solvers import get_solver, load_solver_param

    setup_logging(args.log_file)
    if ctx.rank != 0:
        logger.setLevel(logging.WARNING)  # rank 0 alone prints Caffe's log
    try:
        param = load_solver_param(args.solver)
        param.train_state.level = args.level
        param.train_state.stage.extend(stages(args.stage))
        if args.iterations is not None:
            param.max_iter = args.iterations
        select_device(_device_for_rank(args, ids, ctx), param)
        if ids:
            ctx = parallel.context.use_nccl_between_gpus(ctx)
        select_blas(args)
        if args.snapshot or args.weights:
            param.ClearField("weights")
        if args.weights:
            param.weights.append(args.weights)
        actions = SignalActions(args.sigint_effect, args.sighup_effect,
                                usr_aliases=ctx.size > 1)
        solver = get_solver(param)
        if ctx.size > 1:
            parallel.DataParallel(solver, ctx)
        solver.action_request = actions
        progress = ProgressLine()
        progress.attach(solver)
        board = None
        if args.tensorboard and ctx.rank == 0:  # rank 0 writes
            from recaffe.tensorboard import TensorBoardLogger  # noqa: PLC0415

            board = TensorBoardLogger(args.tensorboard,
                                      args.tensorboard_histograms).attach(solver)
        logger.info("Starting Optimization")
        try:
            with actions:
                if args.snapshot:
                    logger.info(f"Resuming from {args.snapshot}")
                    solver.solve(args.snapshot)
                else:
                    solver.solve()
        finally:
            progress.detach()
            if board is not None:
                board.close()
        logger.info("Optimization Done.")
    finally:
        close_log_file()
    return 0
