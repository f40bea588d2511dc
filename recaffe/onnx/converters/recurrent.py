"""RNN, LSTM and LSTMUnit, with Caffe's semantics.

The recurrent layers are unrolled over their fixed T inside the graph: one
MatMul projects every step's input at once (plus the static input, projected
once and broadcast over time), then each step multiplies the carried state by
``cont_t`` before the recurrent product, so a 0 anywhere in ``cont`` restarts
that stream at that step. The weights are stored once and used by every step.

Initial states: with ``expose_hidden`` they are the layer's bottoms and the
final states its tops, as in Caffe. Otherwise the layer carries its state from
one forward to the next; the graph then starts from zeros, or, exported with
``carry_state``, takes the state as extra inputs ``<layer>_h_0`` (and
``<layer>_c_0``) and returns it as extra outputs ``<layer>_h_T`` (``_c_T``),
each (1, N, H), so that a runtime can carry it across calls.
"""

from __future__ import annotations

import numpy as np

from recaffe.onnx.registry import converter


def _params(v) -> dict[str, int]:
    return {name: j for j, (name, _, _) in enumerate(v.layer.param_specs())}


def _zeros_state(g, ref: str, h: int) -> str:
    """Zeros (N, H), N read from ``ref``'s axis 1 (``cont``, (T, N))."""
    n = g.node("Shape", [ref], start=1, end=2, hint="n")
    shape = g.node("Concat", [n, g.ints([h])], axis=0)
    zero = g.onnx.numpy_helper.from_array(np.zeros(1, np.float32))
    return g.node("ConstantOfShape", [shape], value=zero, hint="zeros")


def _initial_states(g, v, names: tuple[str, ...]) -> list[str]:
    layer = v.layer
    h = layer.H
    if layer.expose_hidden:
        first = 3 if layer.static_input else 2
        return [g.squeeze(b, [0]) for b in v.bottoms[first:first + len(names)]]
    if g.carry_state:
        out = []
        for s in names:
            name = g.reserve(f"{v.name}_{s}_0")
            v.extra_inputs.append((name, (1, layer.N, h)))
            out.append(g.squeeze(name, [0]))
        return out
    return [_zeros_state(g, v.bottoms[1], h) for _ in names]


def _final_states(g, v, names: tuple[str, ...], states: list[str]) -> None:
    layer = v.layer
    if layer.expose_hidden:
        for top, s in zip(v.tops[1:], states, strict=True):
            g.unsqueeze(s, [0], top)
    elif g.carry_state:
        for s_name, s in zip(names, states, strict=True):
            name = g.reserve(f"{v.name}_{s_name}_T")
            v.extra_outputs.append((name, (1, layer.N, layer.H)))
            g.unsqueeze(s, [0], name)


def _steps(g, v, wx: str, bx: str, ws: str | None):
    """Per-step input projections (each (N, G)) and cont columns (each (N, 1))."""
    layer = v.layer
    x3 = g.node("Reshape", [v.bottoms[0], g.ints([0, 0, -1])], hint="x")
    proj = g.node("Add", [g.node("MatMul", [x3, wx]), bx], hint="x_proj")
    if ws is not None:
        xs = g.node("Flatten", [v.bottoms[2]], axis=1)
        proj = g.node("Add", [proj, g.node("MatMul", [xs, ws])], hint="x_proj_s")
    cont = g.unsqueeze(v.bottoms[1], [2])
    t = layer.T
    if t == 1:
        return [g.squeeze(proj, [0])], [g.squeeze(cont, [0])]
    projs = [g.squeeze(p, [0]) for p in g.split(proj, [1] * t, 0)]
    conts = [g.squeeze(c, [0]) for c in g.split(cont, [1] * t, 0)]
    return projs, conts


def _stack(g, hs: list[str], output: str | None = None) -> str:
    parts = [g.unsqueeze(h, [0]) for h in hs]
    if len(parts) == 1:
        return g.identity(parts[0], output) if output else parts[0]
    return g.node("Concat", parts, output, axis=0)


def _lstm_cell(g, a: str, c_prev: str, cont: str, h: int, axis: int):
    """Caffe's LSTMUnit on pre-activations ``a`` (gates [i, f, o, g])."""
    i, f, o, cand = g.split(a, [h] * 4, axis)
    i = g.node("Sigmoid", [i])
    f = g.node("Mul", [g.node("Sigmoid", [f]), cont])
    o = g.node("Sigmoid", [o])
    cand = g.node("Tanh", [cand])
    c = g.node("Add", [g.node("Mul", [f, c_prev]), g.node("Mul", [i, cand])],
               hint="c")
    h_new = g.node("Mul", [o, g.node("Tanh", [c])], hint="h")
    return c, h_new


def _inputs_and_recurrent_weight(g, v, x_name: str, b_name: str, h_name: str):
    """(per-step input projections, per-step cont, transposed recurrent weight,
    parameter index by name) of a Caffe recurrent layer, from its named
    parameters (``<x_name>_static`` is the static input's weight)."""
    p = _params(v)
    wx = g.param_view(v, p[x_name], transpose=True)
    ws = (g.param_view(v, p[x_name + "_static"], transpose=True)
          if v.layer.static_input else None)
    wh = g.param_view(v, p[h_name], transpose=True)
    projs, conts = _steps(g, v, wx, g.param(v, p[b_name]), ws)
    return projs, conts, wh, p


@converter("LSTM")
def lstm(g, v):
    layer = v.layer
    projs, conts, wh, _ = _inputs_and_recurrent_weight(g, v, "W_xc", "b_c", "W_hc")
    h, c = _initial_states(g, v, ("h", "c"))
    hs = []
    for proj, cont in zip(projs, conts, strict=True):
        a = g.node("Add", [proj, g.node("MatMul", [g.node("Mul", [h, cont]), wh])])
        c, h = _lstm_cell(g, a, c, cont, layer.H, axis=1)
        hs.append(h)
    _stack(g, hs, v.tops[0])
    _final_states(g, v, ("h", "c"), [h, c])


@converter("RNN")
def rnn(g, v):
    projs, conts, wh, p = _inputs_and_recurrent_weight(g, v, "W_xh", "b_h", "W_hh")
    (h,) = _initial_states(g, v, ("h",))
    hs = []
    for proj, cont in zip(projs, conts, strict=True):
        rec = g.node("MatMul", [g.node("Mul", [h, cont]), wh])
        h = g.node("Tanh", [g.node("Add", [proj, rec])], hint="h")
        hs.append(h)
    # o_t = tanh(W_ho h_t + b_o), for all steps at once.
    hcat = _stack(g, hs)
    wo = g.param_view(v, p["W_ho"], transpose=True)
    o = g.node("Add", [g.node("MatMul", [hcat, wo]), g.param(v, p["b_o"])])
    g.node("Tanh", [o], v.tops[0])
    _final_states(g, v, ("h",), [h])


@converter("LSTMUnit")
def lstm_unit(g, v):
    c_prev, x, cont = v.bottoms
    h = v.bottom_shapes[0][2]
    cont3 = g.unsqueeze(cont, [2])
    c, h_new = _lstm_cell(g, x, c_prev, cont3, h, axis=2)
    g.identity(c, v.tops[0])
    g.identity(h_new, v.tops[1])
