"""Helpers shared by the command-line commands: gflags-style flags, logging,
device selection and NetState flags."""

from __future__ import annotations

import argparse
import re
import sys

from recaffe import backend
from recaffe.errors import BackendError, RecaffeError
from recaffe.log import init_log, logger
from recaffe.proto import caffe_pb2

_GFLAG = re.compile(r"^-([A-Za-z_][\w-]+)(=.*)?$")


def normalize_gflags(argv: list[str]) -> list[str]:
    """Rewrite Caffe's single-dash long flags (``-solver x``, ``-solver=x``) as
    ``--solver x`` / ``--solver=x`` so argparse reads them.

    Single-letter flags (``-o``) and everything after ``--`` are left alone.
    """
    out = []
    rest = False
    for tok in argv:
        if rest:
            out.append(tok)
            continue
        if tok == "--":
            rest = True
        elif _GFLAG.match(tok):
            tok = "-" + tok
        out.append(tok)
    return out


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """``--help`` shows every flag's default (``''`` for an empty one)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not action.option_strings or "default" in text:
            return text
        if action.required:
            return text + " (required)"
        if action.nargs == 0:  # an on/off switch
            return text + (" (default: off)" if action.default is False else "")
        if action.default is None:
            return text + " (default: none)"
        if action.default == "":
            return text + " (default: '')"
        return text + " (default: %(default)s)"


class ArgumentParser(argparse.ArgumentParser):
    """argparse that accepts gflags spellings and raises on bad flags."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        args = normalize_gflags(list(sys.argv[1:] if args is None else args))
        return super().parse_args(args, namespace)

    def error(self, message):  # argparse would exit 2; keep the CLI's one rule
        raise UsageError(f"{self.prog}: {message}")


class UsageError(RecaffeError):
    """Bad command-line flags."""


def add_log_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log_file", default="",
                   help="also write the log to this file (glog format)")


def add_state_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--level", type=int, default=0, help="NetState level")
    p.add_argument("--stage", default="", help="comma-separated NetState stages")


def add_gpu_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpu", default="",
                   help="GPU id to use (e.g. 0), or 'all'; empty = CPU")
    p.add_argument("--blas", default="",
                   help="BLAS for the layers' matrix products: numpy (default), "
                        "openblas, mkl, atlas, blis or a CBLAS library path")
    p.add_argument("--blas_threads", type=int, default=0,
                   help="BLAS threads (0 = the library's default)")


def select_blas(args) -> None:
    """Apply -blas / -blas_threads and log the BLAS in use."""
    from recaffe.backend import blas  # noqa: PLC0415

    if getattr(args, "blas", ""):
        blas.set_blas(args.blas)
    if getattr(args, "blas_threads", 0):
        blas.set_num_threads(args.blas_threads)
    info = blas.info()
    where = f" ({info['path']})" if info.get("path") else ""
    logger.info(f"BLAS: {info['library']}{where} (selected '{info['selected']}'), "
                f"threads: {info.get('threads')}")


def stages(flag: str) -> list[str]:
    return [s.strip() for s in flag.split(",") if s.strip()]


def parse_phase(flag: str, default: int) -> int:
    if not flag:
        return default
    try:
        return {"TRAIN": caffe_pb2.TRAIN, "TEST": caffe_pb2.TEST}[flag.upper()]
    except KeyError:
        raise UsageError(f"-phase must be TRAIN or TEST, got '{flag}'") from None


def setup_logging(log_file: str = "") -> None:
    init_log(0, to_stderr=True, log_file=log_file or None)


def select_device(gpu_flag: str = "", solver_param=None) -> None:
    """CPU, or the GPU named by ``-gpu`` (else by an explicit solver_mode: GPU)."""
    if gpu_flag:
        if gpu_flag == "all":
            ids = [0]
        else:
            try:
                ids = [int(x) for x in gpu_flag.split(",") if x.strip()]
            except ValueError:
                raise UsageError(f"-gpu must be device ids like 0 or 0,1 or 'all', "
                                 f"got '{gpu_flag}'") from None
        if len(ids) > 1:
            logger.warning(f"Training on several GPUs is not supported; using GPU "
                           f"{ids[0]} only")
        backend.set_mode_gpu()
        backend.set_device(ids[0])
        logger.info(f"Use GPU with device ID {ids[0]}")
        return
    if (solver_param is not None and solver_param.HasField("solver_mode")
            and solver_param.solver_mode == caffe_pb2.SolverParameter.GPU):
        try:
            backend.set_mode_gpu()
            backend.set_device(solver_param.device_id)
            logger.info(f"Use GPU with device ID {solver_param.device_id}")
            return
        except BackendError as exc:
            logger.warning(f"solver_mode is GPU, but {exc}; using the CPU")
    backend.set_mode_cpu()
    logger.info("Use CPU.")


def synchronize() -> None:
    """Wait for the GPU (timings); nothing on the CPU."""
    backend.synchronize()
