"""``recaffe pycaffe script.py [args…]``: run an unmodified pycaffe script.

For the duration of the run, ``import caffe`` (and ``caffe.proto.caffe_pb2``,
``caffe.io``, ``caffe.draw``, ``caffe.net_spec``, ``caffe.coord_map``,
``caffe.classifier``, ``caffe.detector``) resolves to recaffe through
``sys.modules`` aliases; nothing is written to disk, and the aliases, ``sys.argv``
and ``sys.path`` are restored afterwards.
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys

from recaffe.caffe_alias import ALIASES, caffe_alias

__all__ = ["ALIASES", "caffe_alias", "main", "run_script"]


def run_script(script: str, args: list[str]) -> int:
    """Run ``script`` as ``__main__`` with ``sys.argv = [script, *args]``."""
    if not os.path.isfile(script):
        from recaffe.errors import RecaffeError  # noqa: PLC0415

        raise RecaffeError(f"pycaffe: no such script: {script}")
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    try:
        with caffe_alias():
            runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        parser = argparse.ArgumentParser(
            prog="recaffe pycaffe",
            description="Run an unmodified pycaffe script with `caffe` = recaffe.")
        parser.add_argument("script", help="the Python script")
        parser.add_argument("args", nargs="*", help="arguments of the script")
        parser.print_help()
        return 0 if argv else 2
    return run_script(argv[0], argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
