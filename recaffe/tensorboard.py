"""Training curves in TensorBoard: a solver callback writing event files.

``TensorBoardLogger(logdir).attach(solver)`` (or ``recaffe train ...
-tensorboard DIR``) writes, through tensorboardX (``pip install
'recaffe[tensorboard]'``):

- at every display iteration (every iteration when ``display`` is 0):
  ``train/<output>`` for each train net output as displayed (``Train net
  output #i: loss = ...``; ``train/<output>/<i>`` for a blob of several
  values), ``train/smoothed_loss`` (the ``loss =`` of Caffe's ``Iteration N``
  line, averaged over ``average_loss`` iterations), ``train/lr`` (the rate of
  this iteration's update) and ``train/iters_per_sec`` (iterations since the
  previous point over the wall time between them);
- after each test pass: ``test<k>/<output>`` for each output of test net k,
  the mean the log prints (``Test net output #i: name = value``, here at
  full precision; the solver hands them over, whatever the log's level);
- every ``histogram_interval`` iterations (0: never): histograms
  ``params/<layer>/<j>`` of each learnable blob and ``grads/<layer>/<j>`` of
  its gradient (as backward left it, before normalisation and decay); a
  parameter shared by name is tagged ``params/<name>``, ``grads/<name>``.

The step is the solver's iteration, as in the log. A resumed run (the solver
restored at iteration S) opens its writer with tensorboardX's ``purge_step=S``:
TensorBoard hides whatever an earlier run wrote from step S on, so the curves
continue without duplicates. :func:`read_scalars` reads the curves back with the
same rule.
"""

from __future__ import annotations

import glob
import os
import struct
import time

from recaffe import backend
from recaffe.errors import RecaffeError
from recaffe.solvers.lr_policy import learning_rate


def _require_tensorboardx():
    try:
        from tensorboardX import SummaryWriter
    except ImportError as exc:
        raise RecaffeError(
            "TensorBoard logging needs tensorboardX: pip install "
            "'recaffe[tensorboard]'") from exc
    return SummaryWriter


class TensorBoardLogger:
    """Writes a solver's curves to ``logdir`` (see the module docstring).

    Args:
        logdir: the TensorBoard run folder (created if missing).
        histogram_interval: write parameter/gradient histograms every this
            many iterations (0: never).
        flush_secs: how often tensorboardX flushes to disk.
    """

    def __init__(self, logdir: str | os.PathLike, histogram_interval: int = 0,
                 flush_secs: int = 10):
        self._writer_cls = _require_tensorboardx()
        if histogram_interval < 0:
            raise RecaffeError(f"histogram interval must be >= 0, got "
                               f"{histogram_interval}")
        self.logdir = os.fspath(logdir)
        self.histogram_interval = int(histogram_interval)
        self.flush_secs = int(flush_secs)
        self.solver = None
        self.writer = None
        self._listening = False
        self._last: tuple[int, float] | None = None

    # -- wiring ------------------------------------------------------------------
    def attach(self, solver) -> TensorBoardLogger:
        """Register on ``solver``'s callbacks; returns self."""
        self.solver = solver
        solver.add_callback(None, self._on_gradients_ready)
        solver.add_test_callback(self._on_test)
        self._listening = True
        return self

    def close(self) -> None:
        """Stop writing test means and flush and close the event file."""
        self._listening = False
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------
    def _get_writer(self):
        if self.writer is None:
            step = self.solver.iter if self.solver is not None else 0
            # A resumed run hides what an earlier run wrote from here on.
            # tensorboardX names files by the second and the host; a run
            # resumed within the same second must not overwrite the first one.
            suffix = f".{os.getpid()}.{time.time_ns() % 10**9:09d}"
            self.writer = self._writer_cls(
                self.logdir, purge_step=step if step > 0 else None,
                flush_secs=self.flush_secs, filename_suffix=suffix)
        return self.writer

    def scalar(self, tag: str, value: float, step: int | None = None) -> None:
        """Write one scalar at ``step`` (default: the solver's iteration)."""
        if step is None:
            step = self.solver.iter if self.solver is not None else 0
        self._get_writer().add_scalar(tag, float(value), int(step))

    def _on_test(self, k: int, outputs) -> None:
        if self._listening:
            for name, mean in outputs:
                self.scalar(f"test{k}/{name}", mean)

    def _on_gradients_ready(self) -> None:
        solver = self.solver
        it = solver.iter
        display = solver.param.display
        if display <= 0 or it % display == 0:
            self._write_train(solver, it)
        k = self.histogram_interval
        if k > 0 and it % k == 0:
            self._write_histograms(solver, it)

    def _write_train(self, solver, it: int) -> None:
        net = solver.net
        for bid in net.output_blob_ids:
            name = net.blob_names[bid]
            values = backend.to_host(net.blob_list[bid].data).reshape(-1)
            for i, v in enumerate(values):
                tag = f"train/{name}" if values.size == 1 else f"train/{name}/{i}"
                self.scalar(tag, v, it)
        self.scalar("train/smoothed_loss", solver.smoothed_loss, it)
        # the rate this iteration's update uses (the solver itself logs a step)
        rate, _ = learning_rate(solver.param, it, solver.current_step, log=False)
        self.scalar("train/lr", rate, it)
        now = time.perf_counter()
        if self._last is not None and it > self._last[0]:
            per_s = (it - self._last[0]) / max(now - self._last[1], 1e-9)
            self.scalar("train/iters_per_sec", per_s, it)
        self._last = (it, now)

    def _write_histograms(self, solver, it: int) -> None:
        net = solver.net
        writer = self._get_writer()
        for pid in net.learnable_param_ids:
            li, j = net.param_layer_indices[pid]
            lp = net.layers_list[li].layer_param
            # A parameter shared by name (the steps of an unrolled net) is
            # tagged by that name, others by layer and blob index.
            shared = lp.param[j].name if j < len(lp.param) else ""
            tag = shared or f"{net.layer_names[li]}/{j}"
            blob = net.param_blobs[pid]
            writer.add_histogram(f"params/{tag}", backend.to_host(blob.data), it)
            writer.add_histogram(f"grads/{tag}", backend.to_host(blob.diff), it)


def attach_tensorboard(solver, logdir, histogram_interval: int = 0):
    """pycaffe-level helper: ``attach_tensorboard(solver, "runs/x")``."""
    return TensorBoardLogger(logdir, histogram_interval).attach(solver)


# -- reading back ------------------------------------------------------------------
def _records(path: str):
    """The records of a TFRecord file (length, crc, data, crc)."""
    with open(path, "rb") as f:
        while True:
            head = f.read(12)
            if len(head) < 12:
                return
            (length,) = struct.unpack("<Q", head[:8])
            data = f.read(length)
            f.read(4)
            if len(data) < length:
                return  # a file still being written
            yield data


def _events(path: str):
    """The parsed ``Event`` records of one event file."""
    from tensorboardX.proto.event_pb2 import Event

    for data in _records(path):
        ev = Event()
        ev.ParseFromString(data)
        yield ev


def read_scalars(logdir: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """Every scalar curve of a run folder, as TensorBoard shows it: the event
    files in the order they were written, each purge (a resumed run's
    ``SessionLog START`` at step S) dropping earlier points from step S on.

    Returns:
        tag -> [(step, value), ...] in step order.
    """
    from tensorboardX.proto.event_pb2 import SessionLog

    files = []
    for path in glob.glob(os.path.join(os.fspath(logdir), "*tfevents*")):
        events = list(_events(path))
        if events:
            files.append((events[0].wall_time, path, events))
    curves: dict[str, list[tuple[int, float]]] = {}
    for _, _, events in sorted(files):
        for ev in events:
            if ev.HasField("session_log") and ev.session_log.status == SessionLog.START:
                for tag, points in curves.items():
                    curves[tag] = [(s, v) for s, v in points if s < ev.step]
            for value in ev.summary.value:
                if value.HasField("simple_value"):
                    curves.setdefault(value.tag, []).append(
                        (int(ev.step), float(value.simple_value)))
    return {tag: sorted(points, key=lambda p: p[0]) for tag, points in curves.items()}


def read_histogram_tags(logdir: str | os.PathLike) -> dict[str, list[int]]:
    """tag -> steps of every histogram in a run folder."""
    out: dict[str, list[int]] = {}
    for path in sorted(glob.glob(os.path.join(os.fspath(logdir), "*tfevents*"))):
        for ev in _events(path):
            for value in ev.summary.value:
                if value.HasField("histo"):
                    out.setdefault(value.tag, []).append(int(ev.step))
    return out


__all__ = ["TensorBoardLogger", "attach_tensorboard", "read_histogram_tags",
           "read_scalars"]

