"""``recaffe <command> [-flag value ...]``: Caffe's command-line tool.

Each command lives in its own module (imported only when used) with a
``main(argv) -> int``. Flags are accepted in Caffe's gflags spellings
(``-solver x``, ``-solver=x``, ``--solver=x``, ``--solver x``). A recaffe
error is printed as one line, ``recaffe: error: <message>``, with exit status 1.
"""

from __future__ import annotations

import importlib
import sys

from recaffe.errors import RecaffeError

#: command -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("recaffe.cli.train", "main", "train or finetune a model"),
    "test": ("recaffe.cli.test", "main", "score a model"),
    "time": ("recaffe.cli.time", "main", "benchmark model execution time"),
    "device_query": ("recaffe.cli.device_query", "main",
                     "show the compute backend, BLAS and devices"),
    "parse-log": ("recaffe.cli.parse_log", "main",
                  "turn a training log into train/test CSV tables"),
    "plot": ("recaffe.cli.plot", "main", "plot the curves of a training log"),
    "draw": ("recaffe.cli.draw", "main", "draw a net as a graph"),
    "pycaffe": ("recaffe.cli.pycaffe", "main", "run a pycaffe script with recaffe"),
    "unroll": ("recaffe.cli.unroll", "main", "unroll a recurrent cell into a net"),
    "export-onnx": ("recaffe.cli.export_onnx", "main",
                    "export a net and its weights to ONNX"),
    "convert": ("recaffe.tools.convert", "main", "convert images to a database"),
    "compute_image_mean": ("recaffe.tools.convert", "main_mean",
                           "compute the mean image of a database"),
}

_ALIASES = {"parse_log": "parse-log", "device-query": "device_query",
            "compute-image-mean": "compute_image_mean",
            "export_onnx": "export-onnx"}


def usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = ["usage: recaffe <command> [-flag value ...]",
             "       recaffe --version", "", "commands:"]
    lines += [f"  {c:<{width}}  {h}" for c, (_, _, h) in COMMANDS.items()]
    lines += ["", "Run 'recaffe <command> --help' for the flags of a command."]
    return "\n".join(lines)


def version_line() -> str:
    """What ``recaffe --version`` prints (as ``caffe --version`` does)."""
    import recaffe  # noqa: PLC0415

    return f"recaffe version {recaffe.__version__}"


def error_line(exc: BaseException) -> str:
    """An error as the single line the command line prints."""
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return f"recaffe: error: {msg}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("--version", "-version", "version"):
        print(version_line())
        return 0
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 1
    command = _ALIASES.get(argv[0], argv[0])
    entry = COMMANDS.get(command)
    if entry is None:
        print(f"recaffe: unknown command '{argv[0]}'\n\n{usage()}", file=sys.stderr)
        return 1
    module_name, func_name, _ = entry
    try:
        module = importlib.import_module(module_name)
        func = getattr(module, func_name)
    except (ImportError, AttributeError) as exc:
        print(error_line(f"command '{command}' is not available ({exc})"),
              file=sys.stderr)
        return 1
    try:
        rc = func(argv[1:])
    except RecaffeError as exc:
        print(error_line(exc), file=sys.stderr)
        return 1
    except OSError as exc:
        print(error_line(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("recaffe: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
