"""LSTM cell: Caffe's ``LSTM`` layer as an unrolled net.

Equations (spec §5.6; gate order i, f, o, g; ``~h`` = cont_t · h_{t-1})::

    a_t = W_hc ~h_{t-1} + W_xc x_t + b_c              (4H: [i', f', o', g'])
    i = σ(i'), f = cont_t · σ(f'), o = σ(o'), g = tanh(g')
    c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)

Layers (names prefixed ``<name>_``, ``S`` = step suffix): ``x_transform``
(InnerProduct 4H, axis 2, params ``W_xc``, ``b_c``, on the whole sequence,
sliced per step), then per step ``h_conted`` (Scale of h by cont_t, axis 0),
``transform`` (InnerProduct 4H, no bias, ``W_hc``), ``gate_input`` (Eltwise
SUM) and ``unit`` (``LSTMUnit``, bottoms c_{t-1}, gates, cont_t; tops c_t, h_t).
This is the net Caffe's ``LSTM`` layer builds (§5.7), so with
:meth:`~recaffe.recurrent.cell.Cell.set_caffe_blobs` the blobs
``[W_xc (4H, D), b_c (4H), W_hc (4H, H)]`` of an ``LSTM`` layer load directly.
"""

from __future__ import annotations

from recaffe.net_spec import layers as L
from recaffe.recurrent.cell import Cell

__all__ = ["LSTMCell", "lstm"]


class LSTMCell(Cell):
    """LSTM with Caffe's gate order and parameters ``W_xc, b_c, W_hc``."""

    state_names = ("h", "c")
    cont_states = ("h",)  # c is reset inside LSTMUnit (f = cont · σ(f'))
    pass_cont = True
    output_name = "h"
    blob_names = ("W_xc", "b_c", "W_hc")
    gates = 4

    def __init__(self, H: int, name: str = "lstm", weight_filler=None,
                 bias_filler=None):
        super().__init__(H, name, weight_filler, bias_filler)

    def input_transform(self, x):
        return self._x_transform(x, "W_xc", "b_c")

    def step(self, x_t, h, c, cont=None):
        W_hc_h = L.InnerProduct(h, name="transform", num_output=4 * self.H,
                                bias_term=False, axis=2,
                                param=dict(name=self.pname("W_hc")),
                                **self.fillers(bias=False))
        gates = L.Eltwise(W_hc_h, x_t, name="gate_input", operation=1)  # SUM
        c_t, h_t = L.LSTMUnit(c, gates, cont, name="unit", ntop=2)
        return h_t, (h_t, c_t)


def lstm(x, cont, T: int, H: int, *, N: int | None = None, name: str = "lstm",
         states=None, weight_filler=None, bias_filler=None, reverse: bool = False,
         return_last: bool = False, ns=None):
    """Unroll an LSTM over ``x`` ``(T, N, D…)`` with ``cont`` ``(T, N)`` (or None:
    no resets, needs ``N``); returns an Unrolled (``h, (h_T, c_T) = lstm(...)``)."""
    cell = LSTMCell(H, name, weight_filler, bias_filler)
    r = cell(x, T, cont=cont, N=N, states=states, reverse=reverse,
             return_last=return_last, ns=ns)
    r.cell = cell
    return r
