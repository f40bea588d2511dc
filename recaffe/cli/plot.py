"""``recaffe plot LOG -o curves.png``: training and test curves of a log.

Parses the log as ``recaffe parse-log`` does and plots every train and test
output against the iteration (one panel per output name). Needs matplotlib
(``pip install 'recaffe[plot]'``).
"""

from __future__ import annotations

from recaffe.cli.common import ArgumentParser
from recaffe.cli.parse_log import parse_log
from recaffe.errors import DataError, RecaffeError

_FIXED = ("NumIters", "Seconds", "LearningRate")


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RecaffeError("recaffe plot needs matplotlib, which is not installed: "
                           "pip install 'recaffe[plot]'") from None
    return plt


def plot_log(logfile: str, output: str, x: str = "NumIters") -> None:
    train, test = parse_log(logfile)
    if not train and not test:
        raise DataError(f"{logfile}: no train or test outputs to plot")
    names = []
    for rows in (train, test):
        for row in rows[:1]:
            names += [k for k in row if k not in _FIXED and k not in names]
    plt = _pyplot()
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 3 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        for label, rows, style in (("train", train, "-"), ("test", test, "o-")):
            pts = [(r[x], r[name]) for r in rows if name in r]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, style, label=f"{label} {name}", markersize=3)
        ax.set_xlabel("iterations" if x == "NumIters" else "seconds")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(output)
    plt.close(fig)


def main(argv: list[str]) -> int:
    p = ArgumentParser(prog="recaffe plot", description="Plot a training log.")
    p.add_argument("logfile", help="the training log")
    p.add_argument("-o", "--output", default="curves.png", help="image file to write")
    p.add_argument("--x", default="NumIters", choices=("NumIters", "Seconds"),
                   help="x axis")
    args = p.parse_args(argv)
    plot_log(args.logfile, args.output, args.x)
    print(f"wrote {args.output}")
    return 0
