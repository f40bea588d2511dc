#!/usr/bin/env python
"""Regenerate ``recaffe/proto/caffe_pb2.py`` from ``recaffe/proto/caffe.proto``.

Uses the protoc compiler bundled with ``grpcio-tools`` (``grpc_tools.protoc``),
emitting plain protobuf Python code only (no gRPC stubs).

Usage::

    python tools/gen_proto.py              # rewrite recaffe/proto/caffe_pb2.py
    python tools/gen_proto.py --out-dir D  # write D/caffe_pb2.py instead
    python tools/gen_proto.py --check      # exit 1 if the committed file is stale

The generated file embeds the protoc version it was produced with and checks
at import time that the installed ``protobuf`` runtime is at least that
version; keep ``pyproject.toml``'s ``protobuf>=`` pin in step with it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTO_DIR = os.path.join(REPO_ROOT, "recaffe", "proto")
PROTO_NAME = "caffe.proto"
OUTPUT_NAME = "caffe_pb2.py"


def generate(out_dir: str, proto_dir: str = PROTO_DIR) -> str:
    """Compile ``caffe.proto`` into ``out_dir``; return the path of the output.

    The proto is passed to protoc by its bare name with ``proto_dir`` as the
    only include path, so the descriptor is registered as ``caffe.proto``
    regardless of where the repository lives (output is byte-reproducible).
    """
    try:
        from grpc_tools import protoc
    except ImportError as exc:  # pragma: no cover - depends on environment
        raise SystemExit(
            "grpcio-tools is required to regenerate the bindings "
            "(pip install grpcio-tools)"
        ) from exc

    os.makedirs(out_dir, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"--proto_path={proto_dir}",
        f"--python_out={out_dir}",
        PROTO_NAME,
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise SystemExit(f"protoc failed with exit status {rc}")
    return os.path.join(out_dir, OUTPUT_NAME)


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out-dir",
        default=None,
        help="directory to write caffe_pb2.py into (default: recaffe/proto)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit with status 1 if the committed bindings are stale",
    )
    args = parser.parse_args(argv)

    committed = os.path.join(PROTO_DIR, OUTPUT_NAME)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = _read(generate(tmp))
        if not os.path.exists(committed) or _read(committed) != fresh:
            print(f"{committed} is stale; run tools/gen_proto.py", file=sys.stderr)
            return 1
        print(f"{committed} is up to date")
        return 0

    if args.out_dir is not None:
        path = generate(args.out_dir)
        print(f"wrote {path}")
        return 0

    # Generate into a temporary directory next to the target, then move the
    # result into place so an interrupted run never leaves a partial file.
    with tempfile.TemporaryDirectory(dir=PROTO_DIR) as tmp:
        fresh = generate(tmp)
        os.replace(fresh, committed)
    print(f"wrote {committed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
