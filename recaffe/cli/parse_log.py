"""``recaffe parse-log LOG [-o outdir]``: a training log as CSV tables.

Writes ``<log name>.train.csv`` and ``<log name>.test.csv`` with the columns of
Caffe's ``tools/extra/parse_log.py``: ``NumIters, Seconds, LearningRate`` and
one column per net output, parsed by the same rules (rows grouped by
iteration, a row kept once it has as many columns as the first, the first
row's learning rate taken from the second, seconds counted from the
``Solving`` line, the year from the file's ctime with month rollover).
Unlike Caffe's script, blank or truncated lines are skipped, not fatal.
"""

from __future__ import annotations

import csv
import datetime
import math
import os
import re
from collections import OrderedDict

from recaffe.cli.common import ArgumentParser
from recaffe.errors import DataError

_ITER = re.compile(r"Iteration (\d+)")
_TRAIN = re.compile(r"Train net output #(\d+): (\S+) = ([\.\deE+-]+)")
_TEST = re.compile(r"Test net output #(\d+): (\S+) = ([\.\deE+-]+)")
_LR = re.compile(r"lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)")


def _line_time(line: str, year: int) -> datetime.datetime:
    """The glog timestamp of ``line``; ValueError when it has none."""
    tokens = line.strip().split()
    if len(tokens) < 2 or len(tokens[0]) < 5:
        raise ValueError("no glog prefix")
    month, day = int(tokens[0][1:3]), int(tokens[0][3:5])
    stamp = tokens[1]
    pos = stamp.rfind(".")
    hms = [int(x) for x in stamp[:pos].split(":")]
    if len(hms) != 3:
        raise ValueError("bad time")
    return datetime.datetime(year, month, day, *hms, int(stamp[pos + 1:]))


def _net_output(regex, row, rows, line, iteration, seconds, lr):
    m = regex.search(line)
    if m:
        if not row or row["NumIters"] != iteration:
            if row:
                rows.append(row)
            row = OrderedDict([("NumIters", iteration), ("Seconds", seconds),
                               ("LearningRate", lr)])
        row[m.group(2)] = float(m.group(3))
    if row and rows and len(row) == len(rows[0]):
        rows.append(row)
        row = None
    return rows, row


def parse_log(path: str) -> tuple[list[OrderedDict], list[OrderedDict]]:
    """(train rows, test rows) of a recaffe or Caffe training log."""
    try:
        year = datetime.datetime.fromtimestamp(os.path.getctime(path)).year
        fh = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError as exc:
        raise DataError(f"{path}: cannot read log ({exc.strerror or exc})") from exc
    train: list[OrderedDict] = []
    test: list[OrderedDict] = []
    train_row = test_row = None
    with fh:
        start = None
        for line in fh:
            if "Solving" in line:
                try:
                    start = _line_time(line, year)
                except (ValueError, IndexError):
                    continue
                break
        if start is None:
            raise DataError(f"{path}: no 'Solving' line with a glog timestamp; is "
                            "this a training log?")
        last = start
        iteration = -1.0
        lr = math.nan
        for line in fh:
            m = _ITER.search(line)
            if m:
                iteration = float(m.group(1))
            if iteration == -1:
                continue
            try:
                when = _line_time(line, year)
            except (ValueError, IndexError):
                continue
            if when.month < last.month:
                year += 1
                when = _line_time(line, year)
            last = when
            seconds = (when - start).total_seconds()
            m = _LR.search(line)
            if m:
                lr = float(m.group(1))
            train, train_row = _net_output(_TRAIN, train_row, train, line, iteration,
                                           seconds, lr)
            test, test_row = _net_output(_TEST, test_row, test, line, iteration,
                                         seconds, lr)
    for rows in (train, test):
        if len(rows) > 1:
            rows[0]["LearningRate"] = rows[1]["LearningRate"]
    return train, test


def write_csv(path: str, rows: list[OrderedDict]) -> bool:
    if not rows:
        return False
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return True


def main(argv: list[str]) -> int:
    p = ArgumentParser(prog="recaffe parse-log",
                       description="Parse a training log into train/test CSV files.")
    p.add_argument("logfile", help="the training log")
    p.add_argument("-o", "--output_dir", default=None,
                   help="directory for the CSV files (default: the log's directory)")
    args = p.parse_args(argv)
    train, test = parse_log(args.logfile)
    out_dir = args.output_dir or os.path.dirname(os.path.abspath(args.logfile))
    if not os.path.isdir(out_dir):
        raise DataError(f"output directory '{out_dir}' does not exist")
    base = os.path.join(out_dir, os.path.basename(args.logfile))
    for suffix, rows in ((".train.csv", train), (".test.csv", test)):
        if write_csv(base + suffix, rows):
            print(f"wrote {base + suffix} ({len(rows)} rows)")
        else:
            print(f"not writing {base + suffix}: no rows")
    return 0
