"""Logging in glog's line format, which Caffe's log parsers read.

``I1128 20:10:22.381027 25210 solver.py:204] message`` — severity letter, month
and day, time with microseconds, thread id, source file and line.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

logger = logging.getLogger("recaffe")
_LETTERS = {logging.DEBUG: "I", logging.INFO: "I", logging.WARNING: "W",
            logging.ERROR: "E", logging.CRITICAL: "F"}


class GlogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        t = record.created
        lt = time.localtime(t)
        micro = int((t - int(t)) * 1e6)
        letter = _LETTERS.get(record.levelno, "I")
        tid = threading.get_native_id() % 100000
        src = os.path.basename(record.pathname)
        prefix = (
            f"{letter}{lt.tm_mon:02d}{lt.tm_mday:02d} {lt.tm_hour:02d}:{lt.tm_min:02d}:"
            f"{lt.tm_sec:02d}.{micro:06d} {tid:5d} {src}:{record.lineno}] "
        )
        msg = record.getMessage()
        # Never emit blank lines: Caffe's parse_log aborts on them.
        lines = [ln for ln in msg.split("\n") if ln.strip()] or ["."]
        return "\n".join(prefix + ln for ln in lines)


_handlers: dict[str, logging.Handler] = {}


def init_log(
    level: int = 0, to_stderr: bool = True, log_file: str | None = None
) -> None:
    """pycaffe's init_log: level 0 = INFO, 1 = WARNING, 2 = ERROR, 3 = FATAL."""
    levels = [logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]
    logger.setLevel(levels[max(0, min(int(level), 3))])
    logger.propagate = False
    if to_stderr and "stderr" not in _handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(GlogFormatter())
        logger.addHandler(h)
        _handlers["stderr"] = h
    if log_file:
        old = _handlers.pop("file", None)
        if old is not None:
            logger.removeHandler(old)
            old.close()
        h = logging.FileHandler(log_file, mode="a", encoding="utf-8")
        h.setFormatter(GlogFormatter())
        logger.addHandler(h)
        _handlers["file"] = h


def close_log_file() -> None:
    old = _handlers.pop("file", None)
    if old is not None:
        logger.removeHandler(old)
        old.close()


def log(msg: str) -> None:
    """pycaffe's caffe.log: one INFO line."""
    logger.info(msg, stacklevel=2)


def fmt(x: float) -> str:
    """C++ ostream default formatting of a float (6 significant digits)."""
    return f"{float(x):.6g}"
