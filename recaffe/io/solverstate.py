"""Solver state files: binary ``.solverstate`` and HDF5 ``.solverstate.h5``.

Binary files hold a ``SolverState`` message: ``iter``, ``learned_net`` (the
model file written with it), ``history`` (one ``BlobProto`` per history blob,
shape and data) and ``current_step``. HDF5 files hold the datasets ``iter``
(int32[1]), ``learned_net`` (string), ``current_step`` (int32[1]) and a group
``history`` with datasets ``"0"`` .. ``"k-1"``. Both are what BVLC Caffe writes
and reads. Writes are atomic.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from google.protobuf.message import DecodeError

from recaffe.errors import SolverError
from recaffe.io.atomic import atomic_open, atomic_write
from recaffe.io.caffemodel import array_to_blobproto, blobproto_to_array
from recaffe.proto import caffe_pb2

__all__ = [
    "SolverStateData",
    "is_hdf5_state",
    "read_solverstate",
    "write_solverstate",
    "write_solverstate_hdf5",
]


@dataclass
class SolverStateData:
    """The contents of a solver state file, independent of its format."""

    iter: int = 0
    learned_net: str | None = None
    current_step: int = 0
    history: list[np.ndarray] = field(default_factory=list)


def is_hdf5_state(path: str | os.PathLike[str]) -> bool:
    """Caffe picks the state format by the file name: HDF5 when it ends in .h5."""
    return os.fspath(path).endswith(".h5")


def _history_blob(arr: np.ndarray) -> caffe_pb2.BlobProto:
    arr = np.asarray(arr)
    if arr.dtype == np.float64:
        blob = caffe_pb2.BlobProto()
        if arr.ndim:
            blob.shape.dim.extend(int(d) for d in arr.shape)
        blob.double_data.extend(arr.reshape(-1).tolist())
        return blob
    return array_to_blobproto(arr)


def write_solverstate(path: str | os.PathLike[str], state: SolverStateData) -> None:
    """Atomically write a binary ``SolverState`` to ``path``."""
    msg = caffe_pb2.SolverState()
    msg.iter = int(state.iter)
    if state.learned_net is not None:
        msg.learned_net = state.learned_net
    msg.current_step = int(state.current_step)
    for arr in state.history:
        msg.history.add().CopyFrom(_history_blob(arr))
    atomic_write(path, msg.SerializeToString())


def write_solverstate_hdf5(
    path: str | os.PathLike[str], state: SolverStateData
) -> None:
    """Atomically write an HDF5 solver state to ``path``."""
    import h5py

    with atomic_open(path, "wb") as fh, h5py.File(fh, "w") as f:
        f.create_dataset("iter", data=np.array([state.iter], dtype=np.int32))
        f.create_dataset("learned_net", data=np.bytes_(state.learned_net or ""))
        f.create_dataset("current_step", data=np.array([state.current_step],
                                                       dtype=np.int32))
        g = f.create_group("history")
        for i, arr in enumerate(state.history):
            g.create_dataset(str(i), data=np.asarray(arr))


def _read_binary(path: str) -> SolverStateData:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise SolverError(f"{path}: cannot open solver state "
                          f"({exc.strerror or exc})") from exc
    msg = caffe_pb2.SolverState()
    try:
        msg.ParseFromString(data)
    except DecodeError as exc:
        raise SolverError(f"{path}: not a valid binary SolverState ({exc})") from None
    history = []
    for i, bp in enumerate(msg.history):
        try:
            history.append(blobproto_to_array(bp))
        except ValueError as exc:
            raise SolverError(f"{path}: history blob {i}: {exc}") from None
    return SolverStateData(
        iter=int(msg.iter),
        learned_net=msg.learned_net if msg.HasField("learned_net") else None,
        current_step=int(msg.current_step),
        history=history,
    )


def _read_hdf5(path: str) -> SolverStateData:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise SolverError(f"{path}: cannot open HDF5 solver state ({exc})") from exc
    with f:
        for key in ("iter", "history"):
            if key not in f:
                raise SolverError(f"{path}: HDF5 solver state has no '{key}'")
        learned = None
        if "learned_net" in f:
            raw = f["learned_net"][()]
            learned = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            learned = learned or None
        step = int(np.asarray(f["current_step"]).reshape(-1)[0]) \
            if "current_step" in f else 0
        g = f["history"]
        history = []
        for i in range(len(g)):
            if str(i) not in g:
                raise SolverError(f"{path}: HDF5 solver state lacks history/{i}")
            history.append(np.asarray(g[str(i)]))
        return SolverStateData(
            iter=int(np.asarray(f["iter"]).reshape(-1)[0]),
            learned_net=learned,
            current_step=step,
            history=history,
        )


def read_solverstate(path: str | os.PathLike[str]) -> SolverStateData:
    """Read a solver state, HDF5 when the name ends in ``.h5``, else binary."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SolverError(f"{path}: solver state file not found")
    return _read_hdf5(path) if is_hdf5_state(path) else _read_binary(path)
