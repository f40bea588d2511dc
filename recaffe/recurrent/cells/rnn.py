"""Elman RNN cell, and Caffe's ``RNN`` layer as an unrolled net.

Per stream, t = 1..T (``~h`` = the previous state reset by cont)::

    h_t = f(W_hh ~h_{t-1} + W_xh x_t + b_h)        f = tanh | sigmoid | relu
    o_t = tanh(W_ho h_t + b_o)                       only with output_layer=True

With ``output_layer=True`` and ``nonlinearity="tanh"`` the unrolled net is the
one Caffe's ``RNN`` layer builds internally (spec §5.5/§5.7): the same layers,
the same parameter names ``W_xh, b_h, W_hh, W_ho, b_o`` (prefixed by the cell
name) and the same blob order, so its weights round-trip with an ``RNN``
layer's ``.caffemodel`` blobs. The output is then ``o``; otherwise ``h``.
"""

from __future__ import annotations

from recaffe.errors import NetError
from recaffe.net_spec import layers as L
from recaffe.recurrent.cell import Cell

__all__ = ["RNNCell", "rnn"]

_NEURONS = {"tanh": "TanH", "sigmoid": "Sigmoid", "relu": "ReLU"}


class RNNCell(Cell):
    """Elman RNN: ``h_t = f(W_hh h_{t-1} + W_xh x_t + b_h)``."""

    state_names = ("h",)
    cont_states = ("h",)

    def __init__(self, H: int, name: str = "rnn", nonlinearity: str = "tanh",
                 output_layer: bool = False, weight_filler=None, bias_filler=None):
        super().__init__(H, name, weight_filler, bias_filler)
        if nonlinearity not in _NEURONS:
            raise NetError(f"RNNCell '{name}': nonlinearity must be one of "
                           f"{sorted(_NEURONS)}, got {nonlinearity!r}")
        self.neuron = _NEURONS[nonlinearity]
        self.output_layer = bool(output_layer)
        self.output_name = "o" if output_layer else "h"
        self.blob_names = ("W_xh", "b_h", "W_hh") + (("W_ho", "b_o") if output_layer
                                                     else ())

    def input_transform(self, x):
        return self._x_transform(x, "W_xh", "b_h")

    def step(self, x_t, h, cont=None):
        W_hh_h = L.InnerProduct(h, name="W_hh_h", num_output=self.H, bias_term=False,
                                axis=2, param=dict(name=self.pname("W_hh")),
                                **self.fillers(bias=False))
        pre = L.Eltwise(W_hh_h, x_t, name="h_input_sum", operation=1)  # SUM
        h_t = getattr(L, self.neuron)(pre, name="h_neuron")
        if not self.output_layer:
            return h_t, h_t
        W_ho_h = L.InnerProduct(h_t, name="W_ho_h", num_output=self.H, axis=2,
                                param=[dict(name=self.pname("W_ho")),
                                       dict(name=self.pname("b_o"))],
                                **self.fillers())
        o_t = L.TanH(W_ho_h, name="o_neuron")
        return o_t, h_t


def rnn(x, cont, T: int, H: int, *, N: int | None = None, name: str = "rnn",
        nonlinearity: str = "tanh", output_layer: bool = False, states=None,
        weight_filler=None, bias_filler=None, reverse: bool = False,
        return_last: bool = False, ns=None):
    """Unroll an Elman RNN over ``x`` ``(T, N, D…)``; returns an Unrolled
    (``h, [h_T] = rnn(...)``)."""
    cell = RNNCell(H, name, nonlinearity, output_layer, weight_filler, bias_filler)
    r = cell(x, T, cont=cont, N=N, states=states, reverse=reverse,
             return_last=return_last, ns=ns)
    r.cell = cell
    return r
