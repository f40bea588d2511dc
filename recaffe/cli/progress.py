"""A live progress line for training on a terminal.

Written to stderr with ``\\r`` and cleared before every log line and at the
end; nothing at all when stderr is not a TTY (logs and pipes stay clean).
"""

from __future__ import annotations

import logging
import sys
import time


def _hms(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressLine:
    """Shows ``iter i/max  loss L  lr r  x it/s  ETA h:mm:ss`` while a solver runs."""

    def __init__(self, stream=None, min_interval: float = 0.1):
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval = min_interval
        self._shown = False
        self._last = 0.0
        self._t0 = None
        self._it0 = 0
        self._handlers: list[logging.Handler] = []

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self._shown = True

    def attach(self, solver) -> None:
        """Update after every iteration of ``solver``; clear before log lines."""
        if not self.enabled:
            return
        for h in logging.getLogger("recaffe").handlers:
            if getattr(h, "stream", None) is self.stream:
                h.addFilter(self._filter)
                self._handlers.append(h)
        solver.add_callback(None, lambda: self._update(solver))

    def detach(self) -> None:
        for h in self._handlers:
            h.removeFilter(self._filter)
        self._handlers = []
        self.clear()

    def _filter(self, record) -> bool:
        self.clear()
        return True

    def _update(self, solver) -> None:
        now = time.perf_counter()
        if self._t0 is None:
            self._t0, self._it0 = now, solver.iter
        if now - self._last < self.min_interval:
            return
        self._last = now
        done = solver.iter + 1 - self._it0
        rate = done / max(now - self._t0, 1e-9)
        total = solver.param.max_iter
        parts = [f"iter {solver.iter + 1}/{total}",
                 f"loss {solver.smoothed_loss:.4g}"]
        lr = solver.last_lr
        if lr is not None:
            parts.append(f"lr {lr:.3g}")
        parts.append(f"{rate:.1f} it/s")
        if total > solver.iter + 1 and rate > 0:
            parts.append(f"ETA {_hms((total - solver.iter - 1) / rate)}")
        self.show("  ".join(parts))
