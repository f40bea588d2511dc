"""Compare the CPU and GPU runs of the unmodified pycaffe scripts that
tools/gpu_check.sh runs, and print one summary line per script.

    python tools/compare_gpu_runs.py DIR

``DIR`` holds ``data_script_{cpu,gpu}.json`` (tests/gpu/pycaffe_script.py
``--json``) and ``binary_addition_{cpu,gpu}.log`` (the output of
examples/binary_addition/train.py without and with ``--gpu``). Exit status 0
when every GPU run equals its CPU run (float32 tolerance), 1 otherwise.
"""

from __future__ import annotations

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def progress(text: str) -> list[list[float]]:
    """The numbers of binary addition's ``iter ...`` progress lines."""
    return [[float(x) for x in _NUMBER.findall(ln)] for ln in text.splitlines()
            if ln.startswith("iter ")]


def sums(text: str) -> list[str]:
    """The printed additions (``a + b = s``)."""
    return [ln for ln in text.splitlines() if " + " in ln and " = " in ln]


def compare_binary_addition(cpu: str | None, gpu: str | None,
                            rtol: float = 1e-3) -> tuple[bool, str]:
    if not cpu or not progress(cpu):
        return False, "FAILED (the CPU run printed no progress)"
    if not gpu or not progress(gpu):
        tail = (gpu or "no output").strip().splitlines()[-1:]
        return False, f"FAILED (the GPU run: {' '.join(tail)})"
    pc, pg = progress(cpu), progress(gpu)
    if len(pc) != len(pg):
        return False, (f"GPU run DIFFERS ({len(pg)} progress lines, CPU "
                       f"{len(pc)}: {pg[-1]} vs {pc[-1]})")
    worst = 0.0
    for rc, rg in zip(pc, pg, strict=True):
        for a, b in zip(rc, rg, strict=True):
            worst = max(worst, abs(a - b) / max(1.0, abs(a)))
    if worst > rtol or sums(cpu) != sums(gpu):
        return False, f"GPU run DIFFERS (progress to {worst:.1e}; sums equal: " \
                      f"{sums(cpu) == sums(gpu)})"
    final = [ln for ln in gpu.splitlines() if "held-out bit accuracy" in ln
             and not ln.startswith("iter ")][-1:]
    return True, (f"GPU run EQUALS CPU run ({len(pg)} progress lines to "
                  f"{worst:.1e}; {final[0] if final else 'no final line'})")


def compare_data_script(cpu: dict | None, gpu: dict | None,
                        why: str = "") -> tuple[bool, str]:
    if cpu is None or gpu is None:
        which = "the CPU run" if cpu is None else "the GPU run"
        return False, f"FAILED ({which} wrote no result{': ' + why if why else ''})"
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "gpu"))
    try:
        import pycaffe_script  # noqa: PLC0415
    finally:
        sys.path.pop(0)
    problems = pycaffe_script.compare(cpu, gpu)
    if problems:
        return False, "GPU run DIFFERS: " + "; ".join(problems)
    worst = max(abs(a - b) for a, b in zip(cpu["losses"], gpu["losses"], strict=True))
    return True, (f"GPU run EQUALS CPU run ({len(gpu['losses'])} losses to "
                  f"{worst:.1e}, accuracy {gpu['accuracy']})")


def _last_line(d: str, *names: str) -> str:
    """The last line of the first of ``names`` that ends in an error."""
    for name in names:
        lines = (_read(os.path.join(d, name)) or "").strip().splitlines()
        if lines and ("Error" in lines[-1] or "rror:" in lines[-1]):
            return lines[-1]
    return ""


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__)
        return 2
    d = argv[0]

    def load_json(name):
        text = _read(os.path.join(d, name))
        return json.loads(text) if text else None

    results = [
        (".data-only pycaffe script", compare_data_script(
            load_json("data_script_cpu.json"), load_json("data_script_gpu.json"),
            why=_last_line(d, "data_script_cpu.log", "data_script_gpu.log"))),
        ("binary_addition --gpu", compare_binary_addition(
            _read(os.path.join(d, "binary_addition_cpu.log")),
            _read(os.path.join(d, "binary_addition_gpu.log")))),
    ]
    for name, (_ok, line) in results:
        print(f"script {name}: {line}")
    return 0 if all(ok for _, (ok, _line) in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
