"""Sequence-continuation indicators (``cont``) for packed sequences.

Caffe's recurrent layers read ``cont`` of shape ``(T, N)``: ``cont[t, n] = 0``
when time step t of stream n starts a new sequence, 1 when it continues the
sequence of step t-1 (spec §5.2). Several sequences can be packed one after
another into a stream, so no padding is needed.
"""

from __future__ import annotations

from collections.abc import Sequence as _SeqABC

import numpy as np

from recaffe.errors import DataError

__all__ = ["cont_from_starts", "sequence_cont"]


def sequence_cont(lengths, T: int, N: int, dtype=np.float32,
                  continued=False) -> np.ndarray:
    """cont for sequences packed back to back into N streams of T steps.

    Args:
        lengths: per stream, the lengths of the sequences packed into it in
            order (a list of lists); or one flat list with one length per
            stream (one sequence per stream). Steps after the last sequence
            of a stream are padding: they are marked as starts (0), so no
            state leaks into them.
        T, N: the window shape.
        continued: per stream (a bool or a list of N bools): the first
            sequence continues from the previous window (its first step is
            1), for streaming truncated backprop-through-time.

    Returns:
        ``(T, N)`` array of 0/1.
    """
    T, N = int(T), int(N)
    if len(lengths) != N:
        raise DataError(f"sequence_cont: {N} streams need {N} length lists, got "
                        f"{len(lengths)}")
    if isinstance(continued, bool):
        continued = [continued] * N
    if len(continued) != N:
        raise DataError(f"sequence_cont: continued needs {N} entries, got "
                        f"{len(continued)}")
    cont = np.zeros((T, N), dtype=dtype)
    for n, lens in enumerate(lengths):
        if not isinstance(lens, _SeqABC) and not isinstance(lens, np.ndarray):
            lens = [lens]
        t = 0
        for k, length in enumerate(lens):
            length = int(length)
            if length < 1:
                raise DataError(f"sequence_cont: stream {n} sequence {k} has length "
                                f"{length}; lengths must be >= 1")
            if t + length > T:
                raise DataError(f"sequence_cont: stream {n} holds "
                                f"{sum(map(int, lens))} steps, more than T={T}")
            cont[t:t + length, n] = 1
            if not (k == 0 and continued[n]):
                cont[t, n] = 0
            t += length
    return cont


def cont_from_starts(starts, T: int, N: int | None = None,
                     dtype=np.float32) -> np.ndarray:
    """cont from sequence starts.

    ``starts`` is either a ``(T, N)`` boolean array (True where a sequence
    starts) or, per stream, a list of start time indices. Returns ``(T, N)``
    with 0 at the starts and 1 elsewhere.
    """
    if isinstance(starts, np.ndarray) and starts.dtype == bool:
        if starts.ndim != 2 or starts.shape[0] != T:
            raise DataError(f"cont_from_starts: expected a (T={T}, N) boolean array, "
                            f"got shape {starts.shape}")
        return np.where(starts, 0, 1).astype(dtype)
    N = len(starts) if N is None else int(N)
    if len(starts) != N:
        raise DataError(f"cont_from_starts: {N} streams need {N} start lists, got "
                        f"{len(starts)}")
    cont = np.ones((T, N), dtype=dtype)
    for n, idx in enumerate(starts):
        for t in idx:
            t = int(t)
            if not 0 <= t < T:
                raise DataError(f"cont_from_starts: stream {n} start {t} is outside "
                                f"0..{T - 1}")
            cont[t, n] = 0
    return cont
