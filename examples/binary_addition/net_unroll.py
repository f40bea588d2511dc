"""The talk's binary-addition RNN, built with ``recaffe.unroll``.

The talk writes the time loop by hand (``manual_unroll.py``): slice the input,
name every step's layers ``zX1``, ``zX2``, …, keep the parameter names ``WX``,
``bX``, ``WH``, ``WO``, ``bO``, concatenate the outputs. Here one step is
written once and :func:`recaffe.unroll` does the rest; the net is the same
(layer names ``zX_t1``, ``zX_t2``, … instead of ``zX1``, ``zX2``, …)::

    zX = InnerProduct(x_t)      zH = InnerProduct(H_{t-1}, no bias)
    H_t = Sigmoid(zX + zH)      out_t = InnerProduct(H_t) (1 output)
    output = Concat(out_1 … out_T, axis 1)  ->  EuclideanLoss(output, label)

Data (see ``data.py``): ``data`` is ``N x 1 x 1 x 2T`` (two bits per step,
axis 3), ``label`` is ``N x T``.
"""

from __future__ import annotations

import recaffe as caffe
from recaffe import layers as L
from recaffe import params as P

__all__ = ["binary_addition_net", "binary_addition_step"]


def binary_addition_step(num_hu: int, neuron: str = "Sigmoid"):
    """The talk's time step, as a function of (x_t, H_{t-1})."""

    def step(x_t, H):
        zX = L.InnerProduct(x_t, name="zX",
                            param=[dict(name="WX", lr_mult=1),
                                   dict(name="bX", lr_mult=1)],
                            num_output=num_hu, weight_filler=dict(type="xavier"),
                            bias_filler=dict(type="constant"))
        zH = L.InnerProduct(H, name="zH", param=dict(name="WH", lr_mult=1),
                            bias_term=False, num_output=num_hu,
                            weight_filler=dict(type="xavier"))
        z = L.Eltwise(zX, zH, name="z", eltwise_param=dict(operation=P.Eltwise.SUM))
        a = getattr(L, neuron)(z, name="a")
        out = L.InnerProduct(a, name="out",
                             param=[dict(name="WO", lr_mult=1),
                                    dict(name="bO", lr_mult=1)],
                             num_output=1, weight_filler=dict(type="xavier"),
                             bias_filler=dict(type="constant"))
        return out, a

    return step


def binary_addition_net(num_steps: int, batch_size: int, source: str | None = None,
                        num_hu: int = 3, phase: int | None = None,
                        neuron: str = "Sigmoid", with_loss: bool = True):
    """The unrolled net as a NetParameter.

    Args:
        num_steps: T (bits of the sum).
        batch_size: N.
        source: HDF5 list file; None gives ``Input`` layers (deploy net).
        num_hu: hidden units (the talk uses 3).
        phase: ``caffe.TRAIN``/``caffe.TEST`` to add an ``include`` rule to the
            data layer (None: no rule).
        neuron: ``"Sigmoid"`` (the talk) or ``"TanH"``.
        with_loss: add the EuclideanLoss.
    """
    ns = caffe.NetSpec()
    if source is None:
        ns.data, ns.label = L.Input(
            shape=[dict(dim=[batch_size, 1, 1, 2 * num_steps]),
                   dict(dim=[batch_size, num_steps])], ntop=2)
    else:
        kw = {} if phase is None else {"include": dict(phase=phase)}
        ns.data, ns.label = L.HDF5Data(name="HDF5", ntop=2,
                                       hdf5_data_param=dict(source=source,
                                                            batch_size=batch_size),
                                       **kw)
    caffe.unroll(binary_addition_step(num_hu, neuron), ns.data, num_steps,
                 states=[(batch_size, 1, num_hu)], state_names=["H"],
                 output_names=["output"], axis=3, width=2, concat_axis=1, ns=ns)
    if with_loss:
        ns.loss = L.EuclideanLoss(ns.output, ns.label)
    return ns.to_proto()


if __name__ == "__main__":
    print(binary_addition_net(9, 50, "train.txt", phase=caffe.TRAIN))
