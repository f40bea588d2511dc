"""GRU cell (Cho et al. 2014), built from standard Caffe layers.

Equations (``~h`` = cont_t · h_{t-1}; gates ordered r, z, n)::

    [r', z', n'] = W_xg x_t + b_g                       (3H, one projection)
    r = σ(r' + W_hr ~h),  z = σ(z' + W_hz ~h)           (W_hrz = [W_hr; W_hz])
    n = tanh(n' + W_hn (r ⊙ ~h))
    h_t = (1 − z) ⊙ n + z ⊙ ~h  =  n + z ⊙ (~h − n)

Layers: ``x_transform`` (InnerProduct 3H on the whole sequence, params
``W_xg``, ``b_g``); per step ``x_split`` (Slice axis 2 at 2H), ``W_hrz_h``
(InnerProduct 2H, no bias), ``rz_input`` (Eltwise SUM), ``rz`` (Sigmoid),
``rz_split`` (Slice at H: r, z), ``rh`` (Eltwise PROD), ``W_hn_rh``
(InnerProduct H, no bias), ``n_input`` (Eltwise SUM), ``n`` (TanH),
``h_minus_n`` (Eltwise SUM, coeff 1, −1), ``z_h_minus_n`` (Eltwise PROD) and
``h_new`` (Eltwise SUM, top ``h``). Parameter blob order: ``W_xg, b_g, W_hrz, W_hn``.
"""

from __future__ import annotations

from recaffe.net_spec import layers as L
from recaffe.recurrent.cell import Cell
from recaffe.recurrent.unroll import name_tops

__all__ = ["GRUCell", "gru"]

_SUM, _PROD = 1, 0  # EltwiseParameter.SUM, PROD


class GRUCell(Cell):
    """Gated recurrent unit; output and state are ``h``."""

    state_names = ("h",)
    cont_states = ("h",)
    output_name = "h"
    blob_names = ("W_xg", "b_g", "W_hrz", "W_hn")
    gates = 3

    def __init__(self, H: int, name: str = "gru", weight_filler=None, bias_filler=None):
        super().__init__(H, name, weight_filler, bias_filler)

    def input_transform(self, x):
        return self._x_transform(x, "W_xg", "b_g")

    def step(self, x_t, h, cont=None):
        H = self.H
        x_rz, x_n = name_tops(L.Slice(x_t, name="x_split", ntop=2, axis=2,
                                      slice_point=[2 * H]), "x_rz", "x_n")
        W_hrz_h = L.InnerProduct(h, name="W_hrz_h", num_output=2 * H, bias_term=False,
                                 axis=2, param=dict(name=self.pname("W_hrz")),
                                 **self.fillers(bias=False))
        rz = L.Sigmoid(L.Eltwise(x_rz, W_hrz_h, name="rz_input", operation=_SUM),
                       name="rz")
        r, z = name_tops(L.Slice(rz, name="rz_split", ntop=2, axis=2, slice_point=[H]),
                         "r", "z")
        rh = L.Eltwise(r, h, name="rh", operation=_PROD)
        W_hn_rh = L.InnerProduct(rh, name="W_hn_rh", num_output=H, bias_term=False,
                                 axis=2, param=dict(name=self.pname("W_hn")),
                                 **self.fillers(bias=False))
        n = L.TanH(L.Eltwise(x_n, W_hn_rh, name="n_input", operation=_SUM), name="n")
        d = L.Eltwise(h, n, name="h_minus_n", operation=_SUM, coeff=[1.0, -1.0])
        zd = L.Eltwise(z, d, name="z_h_minus_n", operation=_PROD)
        h_t = L.Eltwise(n, zd, name="h_new", operation=_SUM)
        return h_t, h_t


def gru(x, cont, T: int, H: int, *, N: int | None = None, name: str = "gru",
        states=None, weight_filler=None, bias_filler=None, reverse: bool = False,
        return_last: bool = False, ns=None):
    """Unroll a GRU over ``x`` ``(T, N, D…)``; returns an Unrolled
    (``h, [h_T] = gru(...)``)."""
    cell = GRUCell(H, name, weight_filler, bias_filler)
    r = cell(x, T, cont=cont, N=N, states=states, reverse=reverse,
             return_last=return_last, ns=ns)
    r.cell = cell
    return r
