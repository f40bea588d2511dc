"""Small helpers for training scripts (the examples use them).

- :func:`run_main`: run ``main()`` and turn a recaffe error into one line on
  stderr and exit status 1, as the ``recaffe`` command does;
- :func:`plot_curve`: the loss/accuracy curves of a Caffe-format log as a PNG,
  or one line saying why not (matplotlib is an optional extra);
- :func:`last_test_output`: the last ``Test net output`` value of a blob in a log.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from recaffe.errors import RecaffeError


def run_main(main: Callable[[], int], name: str) -> None:
    """``sys.exit(main())``; a RecaffeError becomes ``<name>: <message>``, exit 1."""
    try:
        code = main()
    except RecaffeError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code)


def plot_curve(logfile: str, png: str, name: str) -> bool:
    """Plot ``logfile`` into ``png``; print where it went (or why not)."""
    from recaffe.cli.plot import plot_log  # noqa: PLC0415

    try:
        plot_log(logfile, png)
    except RecaffeError as exc:
        print(f"{name}: no loss-curve PNG: {exc}")
        return False
    print(f"loss curve: {png}")
    return True


def last_test_output(logfile: str, blob: str) -> float | None:
    """The last ``Test net output #k: <blob> = v`` value in ``logfile``."""
    value = None
    key = f": {blob} = "
    with open(logfile, encoding="utf-8") as f:
        for line in f:
            if "Test net output #" in line and key in line:
                value = float(line.split(key)[1].split()[0])
    return value
