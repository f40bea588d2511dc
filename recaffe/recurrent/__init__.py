"""Recurrent nets in Caffe's way: unroll one step, share weights by name.

- :func:`unroll` — write one time step with NetSpec, get the unrolled net.
- cells — :class:`RNNCell`, :class:`LSTMCell` (Caffe's ``LSTM`` layer as an
  unrolled net), :class:`GRUCell`; helpers :func:`rnn`, :func:`lstm`,
  :func:`gru`, :func:`stack`, :func:`bidirectional`.
- :func:`sequence_cont`, :func:`cont_from_starts` — ``cont`` indicators.

See ``docs/unroll.md``.
"""

from recaffe.recurrent.cell import Cell, find_param
from recaffe.recurrent.cells import (
    GRUCell,
    LSTMCell,
    RNNCell,
    bidirectional,
    gru,
    lstm,
    rnn,
    stack,
)
from recaffe.recurrent.cont import cont_from_starts, sequence_cont
from recaffe.recurrent.unroll import (
    Sequence,
    Unrolled,
    name_tops,
    named_layer,
    num_params,
    state_input,
    unroll,
    zeros,
)

__all__ = ["Cell", "GRUCell", "LSTMCell", "RNNCell", "Sequence", "Unrolled",
           "bidirectional", "cont_from_starts", "find_param", "gru", "lstm",
           "name_tops", "named_layer", "num_params", "rnn", "sequence_cont", "stack",
           "state_input", "unroll", "zeros"]
