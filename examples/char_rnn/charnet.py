"""The char-RNN nets, written with NetSpec in two equivalent ways.

``--impl layer``: Caffe's ``LSTM`` layer. Without ``expose_hidden`` it is
stateful: each forward starts from the final (h, c) of the previous forward,
so consecutive windows of a stream continue each other; ``cont = 0`` resets.

``--impl unroll``: one LSTM step written once (:class:`recaffe.recurrent.LSTMCell`)
and unrolled over T steps by :func:`recaffe.unroll`. The initial states are
``Input`` blobs (``lstm1_h_0``, ``lstm1_c_0``) and the final-state tops
(``lstm1_h_t<T>``, ``lstm1_c_t<T>``) are copied into them before each forward
(:class:`StateCarry`), which is what the ``LSTM`` layer does internally.

Both nets: ``data`` (T, N) character ids -> ``Embed`` (T, N, E) -> 1 or 2
LSTMs (T, N, H) -> ``InnerProduct`` over axis 2 (T, N, V) -> ``SoftmaxWithLoss``
over axis 2 with ``label`` (T, N). The test net turns the loss (nats/char)
into bits/char with a ``Power`` layer; the deploy net ends in a ``Softmax``.
"""

from __future__ import annotations

import math

from recaffe import layers as L
from recaffe.net_spec import NetSpec
from recaffe.recurrent import lstm, state_input

UNIFORM = {"type": "uniform", "min": -0.08, "max": 0.08}


def build(impl: str, T: int, N: int, vocab_size: int, hidden: int, num_layers: int,
          embed: int, stage: str):
    """The NetParameter of one net and its state pairs.

    Args:
        impl: "layer" (Caffe's LSTM layer) or "unroll" (recaffe.unroll).
        stage: "train" (loss), "test" (bits/char) or "deploy" (probabilities).

    Returns:
        ``(net_param, carry)`` where ``carry`` lists ``(final_state_blob,
        initial_state_blob)`` names to copy before each forward (empty for
        the LSTM layer, which carries its state itself).
    """
    ns = NetSpec()
    if stage == "deploy":
        ns.data, ns.cont = L.Input(shape=[dict(dim=[T, N]), dict(dim=[T, N])], ntop=2)
    else:
        ns.data, ns.cont, ns.label = L.Input(
            shape=[dict(dim=[T, N]), dict(dim=[T, N]), dict(dim=[T, N])], ntop=3)
    ns.embed = L.Embed(ns.data, input_dim=vocab_size, num_output=embed,
                       bias_term=False, weight_filler=UNIFORM)
    x = ns.embed
    carry: list[tuple[str, str]] = []
    silenced = []
    for k in range(1, num_layers + 1):
        name = f"lstm{k}"
        if impl == "layer":
            x = L.LSTM(x, ns.cont, recurrent_param=dict(
                num_output=hidden, weight_filler=UNIFORM,
                bias_filler=dict(type="constant", value=0.0)))
            ns[name] = x
        elif impl == "unroll":
            h0 = state_input((1, N, hidden), name=f"{name}_h_0")
            c0 = state_input((1, N, hidden), name=f"{name}_c_0")
            r = lstm(x, ns.cont, T, hidden, name=name, states=[h0, c0],
                     weight_filler=UNIFORM,
                     bias_filler=dict(type="constant", value=0.0),
                     ns=ns)
            h_T, c_T = r.final_state_names
            carry += [(h_T, f"{name}_h_0"), (c_T, f"{name}_c_0")]
            # c_T feeds nothing inside the window: silence it so that it is no
            # net output (its value is still read to carry the state).
            silenced.append(r.states[1])
            x = r.output
        else:
            raise ValueError(f"impl must be 'layer' or 'unroll', got {impl!r}")
    ns.logits = L.InnerProduct(x, num_output=vocab_size, axis=2, weight_filler=UNIFORM)
    if silenced:
        ns.silence_states = L.Silence(*silenced, ntop=0)
    if stage == "train":
        ns.loss = L.SoftmaxWithLoss(ns.logits, ns.label, softmax_param=dict(axis=2))
    elif stage == "test":
        ns.loss = L.SoftmaxWithLoss(ns.logits, ns.label, softmax_param=dict(axis=2))
        ns.bpc = L.Power(ns.loss, power=1.0, scale=1.0 / math.log(2.0), shift=0.0)
    elif stage == "deploy":
        ns.prob = L.Softmax(ns.logits, axis=2)
    else:
        raise ValueError(f"stage must be train, test or deploy, got {stage!r}")
    param = ns.to_proto()
    param.name = f"char_rnn_{impl}_{stage}"
    return param, carry


class StateCarry:
    """Before each forward of ``net``, copy the final-state blobs of the last
    forward into the initial-state ``Input`` blobs (truncated BPTT).

    On the first forward the final-state blobs are still zeros, so the first
    window starts from zero states.
    """

    def __init__(self, net, carry):
        self.pairs = [(net.blobs[src], net.blobs[dst]) for src, dst in carry]

    def __call__(self) -> None:
        for src, dst in self.pairs:
            dst.data[...] = src.data
