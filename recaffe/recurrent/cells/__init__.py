"""Recurrent cells (RNN, LSTM, GRU) and their composition (stack, bidirectional)."""

from __future__ import annotations

from collections.abc import Sequence as _SeqABC

from recaffe.errors import NetError
from recaffe.recurrent.cell import Cell
from recaffe.recurrent.cells.gru import GRUCell, gru
from recaffe.recurrent.cells.lstm import LSTMCell, lstm
from recaffe.recurrent.cells.rnn import RNNCell, rnn
from recaffe.recurrent.unroll import Unrolled, named_layer

__all__ = ["GRUCell", "LSTMCell", "RNNCell", "bidirectional", "gru", "lstm", "rnn",
           "stack"]


def stack(cells: _SeqABC[Cell], x, T: int, *, cont=None, N: int | None = None,
          ns=None) -> list[Unrolled]:
    """Unroll ``cells`` on top of each other: cell k reads cell k-1's output.

    Every cell needs its own ``name`` (its parameters are named after it).
    Returns the list of Unrolled results; ``[-1].output`` is the top ``(T, N,
    H_last)``.
    """
    names = [c.name for c in cells]
    if len(set(names)) != len(names):
        raise NetError(f"stack: cells need distinct names, got {names}")
    results = []
    for cell in cells:
        r = cell(x, T, cont=cont, N=N, ns=ns)
        results.append(r)
        x = r.output
    return results


def bidirectional(forward: Cell, backward: Cell, x, T: int, *, cont=None,
                  N: int | None = None, name: str = "bi", ns=None) -> Unrolled:
    """A forward and a reversed cell over ``x``, outputs concatenated on axis 2.

    Output ``t`` is ``[h_fwd_t, h_bwd_t]`` where ``h_bwd_t`` has read
    ``x_T … x_t``. Returns an Unrolled whose ``states`` are the forward cell's
    final states then the backward cell's; ``.forward``/``.backward`` hold the
    two results.
    """
    if forward.name == backward.name:
        raise NetError(f"bidirectional: the two cells need distinct names, got "
                       f"'{forward.name}' twice")
    fwd = forward(x, T, cont=cont, N=N, ns=ns)
    bwd = backward(x, T, cont=cont, N=N, reverse=True, ns=ns)
    out = named_layer("Concat", fwd.output, bwd.output, name=name,
                      concat_param=dict(axis=2))
    if ns is not None:
        ns[name] = out
    r = Unrolled(outputs=[out], states=list(fwd.states) + list(bwd.states),
                 initial_states=list(fwd.initial_states) + list(bwd.initial_states),
                 steps=[], state_steps=[], output_names=[name],
                 state_names=[f"{forward.name}_{s}" for s in fwd.state_names]
                 + [f"{backward.name}_{s}" for s in bwd.state_names],
                 input_names=list(fwd.input_names), ns=fwd.ns)
    r.forward, r.backward = fwd, bwd
    return r
