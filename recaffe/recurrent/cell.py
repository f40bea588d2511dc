"""Recurrent cells: one time step of a recurrent layer, ready to unroll.

A :class:`Cell` owns the parameter names of one recurrent layer and knows how
to write one step with NetSpec layers. Calling it unrolls it over a sequence::

    cell = LSTMCell(H=64, name="lstm1")
    r = cell(x, T, cont=cont, N=N)         # x: (T, N, D), cont: (T, N)
    h, (h_T, c_T) = r                      # h: (T, N, H)

Like Caffe's recurrent layers, a cell projects the whole input sequence once
(``<name>_x_transform``, an InnerProduct with ``axis: 2``) before the loop,
then unrolls only the recurrent part. Inputs are time-major ``(T, N, D…)``,
``cont`` is ``(T, N)``, states are ``(1, N, H)``.

Parameter names are ``<name>_<Caffe name>`` (``lstm1_W_xc``), so two cells
never share weights unless they share a name. :meth:`Cell.caffe_blobs` and
:meth:`Cell.set_caffe_blobs` move the weights to and from the blob order of
Caffe's ``LSTM``/``RNN`` layer (§5.1 of the spec: ``W_xc, b_c, W_hc``;
``W_xh, b_h, W_hh, W_ho, b_o``), so weights round-trip with their
``.caffemodel`` files.
"""

from __future__ import annotations

from collections.abc import Sequence as _SeqABC

from recaffe.errors import NetError
from recaffe.net_spec import Top
from recaffe.recurrent.unroll import Unrolled, named_layer, unroll

__all__ = ["DEFAULT_WEIGHT_FILLER", "Cell", "find_param"]

DEFAULT_WEIGHT_FILLER = {"type": "uniform", "min": -0.08, "max": 0.08}


def find_param(net, name: str):
    """The parameter Blob named ``name`` (ParamSpec.name) in a built Net."""
    for layer in net.layers:
        for j, spec in enumerate(layer.layer_param.param):
            if spec.name == name and j < len(layer.blobs):
                return layer.blobs[j]
    raise NetError(f"net has no parameter named '{name}'")


class Cell:
    """Base class of recurrent cells.

    Subclasses set ``state_names``, ``cont_states`` (states reset by a Scale
    with cont), ``pass_cont`` (the step needs cont_t itself), ``output_name``
    and ``blob_names`` (parameter names in Caffe's blob order), and implement
    :meth:`input_transform` and :meth:`step`.
    """

    state_names: tuple[str, ...] = ("h",)
    cont_states: tuple[str, ...] = ("h",)
    pass_cont = False
    output_name = "h"
    blob_names: tuple[str, ...] = ()
    gates = 1  # width of the input projection in units of H

    def __init__(self, H: int, name: str = "", weight_filler=None, bias_filler=None):
        if int(H) < 1:
            raise NetError(
                f"{type(self).__name__}: H (num_output) must be >= 1, got {H}")
        self.H = int(H)
        self.name = name
        self.weight_filler = (dict(DEFAULT_WEIGHT_FILLER) if weight_filler is None
                              else weight_filler)
        self.bias_filler = bias_filler

    # -- names ------------------------------------------------------------------
    @property
    def prefix(self) -> str:
        return f"{self.name}_" if self.name else ""

    def pname(self, base: str) -> str:
        """The full (shared) parameter name of ``base``: ``<name>_<base>``."""
        return self.prefix + base

    def fillers(self, bias: bool = True) -> dict:
        kw = {"weight_filler": self.weight_filler} if self.weight_filler else {}
        if bias and self.bias_filler:
            kw["bias_filler"] = self.bias_filler
        return kw

    # -- the recurrence ---------------------------------------------------------
    def input_transform(self, x: Top) -> Top:
        """Project the whole ``(T, N, D)`` sequence once, before the loop."""
        raise NotImplementedError

    def step(self, x_t: Top, *states: Top, cont: Top | None = None):
        """One step: ``(output_t, new_states)``."""
        raise NotImplementedError

    def _x_transform(self, x: Top, weight: str, bias: str) -> Top:
        return named_layer(
            "InnerProduct", x, name=self.prefix + "x_transform",
            top_names=[self.prefix + weight + "_x"],
            param=[dict(name=self.pname(weight)), dict(name=self.pname(bias))],
            num_output=self.gates * self.H, axis=2, **self.fillers())

    def __call__(self, x: Top, T: int, *, cont: Top | None = None, N: int | None = None,
                 states: _SeqABC | None = None, reverse: bool = False,
                 return_last: bool = False, ns=None) -> Unrolled:
        """Unroll the cell over ``x`` ``(T, N, D…)``; see :func:`unroll`.

        ``states``: initial states (Tops, in ``state_names`` order); default
        zeros of shape ``(1, N, H)`` (needs ``N``).
        """
        if states is None:
            if N is None:
                raise NetError(f"{type(self).__name__} '{self.name}': give N (the "
                               "batch size) for zero initial states, or states=")
            states = [(1, int(N), self.H)] * len(self.state_names)
        if len(states) != len(self.state_names):
            raise NetError(f"{type(self).__name__} '{self.name}': "
                           f"{len(self.state_names)} initial states "
                           f"{list(self.state_names)} needed, got {len(states)}")
        if cont is None and self.pass_cont:
            if N is None:
                raise NetError(f"{type(self).__name__} '{self.name}': without cont, "
                               "give N so that an all-ones cont can be made")
            cont = named_layer("DummyData", name=self.prefix + "cont_ones",
                               shape=dict(dim=[int(T), int(N)]),
                               data_filler=dict(type="constant", value=1.0))
        xt = self.input_transform(x)
        return unroll(self.step, xt, T, states=list(states),
                      input_names=[self.blob_names[0] + "_x"],
                      state_names=list(self.state_names),
                      output_names=[self.output_name], name=self.name, cont=cont,
                      cont_states=list(self.cont_states), pass_cont=self.pass_cont,
                      reverse=reverse, return_last=return_last, ns=ns)

    # -- weights in Caffe's layer blob order -----------------------------------------
    def caffe_blobs(self, net) -> list:
        """Copies of this cell's parameters in Caffe's layer blob order."""
        return [find_param(net, self.pname(b)).data.copy() for b in self.blob_names]

    def set_caffe_blobs(self, net, arrays) -> None:
        """Set this cell's parameters from arrays in Caffe's layer blob order
        (e.g. ``caffe_net.params['lstm1']`` of a net with an ``LSTM`` layer)."""
        arrays = list(arrays)
        if len(arrays) != len(self.blob_names):
            raise NetError(f"{type(self).__name__} '{self.name}': expected "
                           f"{len(self.blob_names)} blobs {list(self.blob_names)}, got "
                           f"{len(arrays)}")
        for b, arr in zip(self.blob_names, arrays, strict=True):
            blob = find_param(net, self.pname(b))
            data = getattr(arr, "data", arr)
            if tuple(data.shape) != tuple(blob.shape):
                raise NetError(f"{type(self).__name__} '{self.name}': blob {b} has "
                               f"shape {tuple(blob.shape)}, got {tuple(data.shape)}")
            blob.data[...] = data
