"""``python -m benchmarks.worker MODULE FUNC JSON_KWARGS THREADS``: one measurement."""

from __future__ import annotations

import importlib
import json
import sys

from benchmarks.common import peak_rss_mb


def main() -> int:
    module, func, kwargs, threads = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), \
        int(sys.argv[4])
    if "torch" in func:  # never import torch into the other frameworks' workers
        import torch  # noqa: PLC0415

        torch.set_num_threads(threads)
    mod = importlib.import_module(f"benchmarks.{module}")
    result = getattr(mod, func)(**kwargs)
    result["rss_mb"] = round(peak_rss_mb(), 1)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
