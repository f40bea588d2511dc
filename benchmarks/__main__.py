"""``python -m benchmarks [rnn|lstm|infer|profile|blas|dist|all] [--quick]``
[``--threads N``] [``--rounds N``]."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import sys
import time

from benchmarks import blas, dist, infer, lstm, profile, rnn

SUITES = {"rnn": rnn, "lstm": lstm, "infer": infer, "profile": profile, "blas": blas,
          "dist": dist}


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from importlib import metadata  # noqa: PLC0415 - no import of torch here

    versions = []
    for mod in ("numpy", "torch"):
        try:
            versions.append(f"{mod} {metadata.version(mod)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{mod} not installed")
    return (f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            + ", ".join(versions))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("which", nargs="?", default="all", choices=[*SUITES, "all"])
    ap.add_argument("--quick", action="store_true", help="fewer iterations")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="BLAS/PyTorch threads in every worker (default: all CPUs)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="lstm and infer suites: run the implementations of a row "
                         "in turn this many times and report each one's median "
                         "(machine speed drift then reaches all alike)")
    ap.add_argument("--json", help="also write all measurements to this file")
    ap.add_argument("--blas", default=os.environ.get("RECAFFE_BLAS", "numpy"),
                    help="BLAS for recaffe's layers in every worker (RECAFFE_BLAS): "
                         "numpy, openblas, mkl, atlas, blis or a library path")
    args = ap.parse_args(argv)
    names = list(SUITES) if args.which == "all" else [args.which]
    os.environ["RECAFFE_BLAS"] = args.blas
    from recaffe.backend import blas as rblas  # noqa: PLC0415

    info = rblas.set_blas(args.blas)
    where = (info.get("path")
             or f"numpy's {info['library']} {info['numpy_blas_version']}")
    from recaffe.backend import onednn  # noqa: PLC0415

    dnnl = onednn.info()
    if not dnnl["available"]:
        dnnl_text = f"no oneDNN ({dnnl['why']})"
    elif rblas.routed():  # the LSTM layer then runs its own loop on that BLAS
        dnnl_text = "oneDNN not used (another BLAS selected)"
    else:
        dnnl_text = f"oneDNN {dnnl['version']} for the LSTM layer"
    print(f"machine: {machine()}; threads: {args.threads}; recaffe BLAS: "
          f"{info['selected']} ({where}); {dnnl_text}\n")
    records = []
    for name in names:
        t0 = time.perf_counter()
        run = SUITES[name].run
        takes_rounds = "rounds" in inspect.signature(run).parameters
        extra = {"rounds": args.rounds} if takes_rounds else {}
        text, recs = run(args.quick, args.threads, **extra)
        records += recs
        print(text)
        print(f"\n({name}: {time.perf_counter() - t0:.0f} s)\n", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "threads": args.threads,
                       "records": records}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
