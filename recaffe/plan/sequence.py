"""Whole-sequence LSTMs: an unrolled LSTM recurrence run as one step.

An LSTM unrolled the Caffe way (Caffe's own internal net, or a
:mod:`recaffe.recurrent` cell) is, per step ``t``, a Scale (``cont_t h_{t-1}``),
an InnerProduct with the shared weight ``W_hc``, an Eltwise SUM with the
step's row of the input projection and an ``LSTMUnit``, fed by one
InnerProduct over the whole input (``W_xc``, ``b_c``, ``axis: 2``) and a
Slice along T, with every step's ``h_t`` gathered by a Concat along T. That is
exactly the ``LSTM`` layer's math (spec §5.6-5.7), so :func:`find_sequences`
recognises the pattern in a net and :class:`LSTMSequence` runs it through
the ``LSTM`` layer's own engine (oneDNN's LSTM primitives, or the compiled
whole-sequence loop): one call for the T steps of the forward and one for
the backward, instead of about ten small layers per step.

What the step writes: the Concat's top (every ``h_t``: the Concat's bottoms
are views of its rows), or in a net that reads only the last ``h_T`` (no
Concat: a sequence classifier) that one; the last ``c_T``, the input's diff
and the three parameters' diffs (added, as the layers would). What it does
not: the per-step blobs in between (gate inputs, ``W_hc h_{t-1}``, ``c_t``
before the last, the input projection). It is therefore used only where a plan may
drop intermediate values, with ``Net.share_buffers`` on: those blobs then
count as shared (their arrays are dropped, a script looking one up gets a
NetError once and keeps it from the next pass on, which leaves that
recurrence to the per-step layers).

Gradients flow through the states as the per-step layers pass them: into
``h_0`` and ``c_0`` where they need one (a decoder started from an
encoder's final states), and from ``c_T`` and from other readers of ``h_T``
into the last step (:meth:`recaffe.layers.lstm.LSTMLayer.
backward_through_states`). A recurrence is taken only where the engine
computes what the layers would: no gradient into ``cont``; every
intermediate blob read only inside the recurrence; the Concat's bottoms
viewed as its top's rows. A reversed cell (steps from T down to 1, step t
reading cont_{t+1}) runs as the same engine over the reversed input, with
cont shifted by one step. Anything else runs step by step, as before.
"""

from __future__ import annotations

import numpy as np

from recaffe.backend import cpu_kernels, onednn
from recaffe.blob import Blob, BlobVec
from recaffe.proto import caffe_pb2


class LSTMSequence:
    """One recognised recurrence (see the module text)."""

    def __init__(self, net, members, internal, parts):
        self.net = net
        #: Layer indices the step replaces (run as one contiguous block).
        self.members = members
        #: Blob ids whose values the step does not produce.
        self.internal = internal
        self.first, self.last = parts["x_transform"], parts["last_unit"]
        self.T, self.N, self.H = parts["T"], parts["N"], parts["H"]
        self._parts = parts
        self.engine = None

    @property
    def name(self) -> str:
        names = self.net.layer_names
        return f"{names[self.first]} .. {names[self.last]}"

    def external_ids(self) -> set[int]:
        """Blob ids the step reads or writes (kept out of buffer sharing)."""
        return set(self._parts["external"])

    def rows_ok(self) -> bool:
        """Whether the Concat's bottoms are its top's rows (data, and diff
        where its backward runs; else nothing writes either diff), as the
        plan's layout made them: the step writes and reads the top only."""
        p = self._parts
        if p["y"] is None:
            return True
        blobs = self.net.blob_list
        y = blobs[p["y"]]
        step = self.N * self.H * y.data.itemsize
        for k, b in enumerate(p["rows"]):
            if _address(blobs[b].data) != _address(y.data) + k * step:
                return False
        return all(_address(blobs[b].diff) == _address(y.diff) + k * step
                   for k, b in enumerate(p["rows_diff"]))

    def build(self) -> None:
        """Make the engine: an ``LSTM`` layer (fused implementation, exposed
        states) on the recurrence's blobs and the net's parameter blobs."""
        from recaffe.layers.lstm import LSTMLayer  # noqa: PLC0415

        net, p = self.net, self._parts
        lp = caffe_pb2.LayerParameter(name=f"LSTM sequence {self.name}", type="LSTM")
        lp.recurrent_param.num_output = self.H
        lp.recurrent_param.expose_hidden = True
        # Constant fillers: the engine's own blobs are replaced by the net's
        # below, and making them must not draw from the random generator.
        lp.recurrent_param.weight_filler.type = "constant"
        lp.recurrent_param.bias_filler.type = "constant"
        eng = LSTMLayer(lp, net.phase)
        eng.impl = "fused"
        blobs = net.blob_list
        T, N, H = self.T, self.N, self.H
        x, cont, h_t = blobs[p["x"]], blobs[p["cont"]], blobs[p["hT"]]
        self._x, self._cont = x, cont
        self._c_t = blobs[p["cT"]]
        self._h_extra = [blobs[b] for b in p["h_extra"]]
        self._reverse = p["reverse"]
        if self._reverse:
            # The engine runs forward in time: it gets the input and cont
            # reversed (a reversed step at t reads cont_{t+1}, the first 1).
            x, cont = Blob(x.shape, dtype=x.dtype), Blob(cont.shape, dtype=cont.dtype)
            cont.data[0] = 1
        self.bottoms = [x, cont, blobs[p["h0"]], blobs[p["c0"]]]
        #: The Concat's top (None: only h_T is read), and whether the engine
        #: writes into it and reads its diff itself.
        self._concat = blobs[p["y"]] if p["y"] is not None else None
        self._direct = self._concat is not None and not self._reverse and \
            not self._h_extra
        self.need_backward = any(net.layer_need_backward[m] for m in self.members)
        if self._direct:
            y = self._concat
        else:
            y = Blob((T, N, H), dtype=h_t.dtype)
            if self.need_backward:
                y.diff[...] = 0  # (h_T alone: only the last row gets a gradient)
            if self._concat is not None and not self._reverse:
                y.share_data(self._concat)
        top_h = h_t if self._concat is None else Blob((1, N, H), dtype=y.dtype)
        self.tops = [y, top_h, self._c_t]
        eng.SetUp(self.bottoms, self.tops)
        eng.blobs = BlobVec([_owner_blob(net, p["x_transform"], 0),
                             _owner_blob(net, p["x_transform"], 1),
                             _owner_blob(net, p["transforms"][0], 0)])
        ppd_x = net.layers_list[p["x_transform"]].param_propagate_down
        ppd_h = net.layers_list[p["transforms"][0]].param_propagate_down
        eng.param_propagate_down = [bool(ppd_x[0]), bool(ppd_x[1]), bool(ppd_h[0])]
        eng.forward_only = not self.need_backward
        self.propagate_down = [p["need_dx"], False, False, False]
        self.engine = eng

    def forward(self, _b, _t) -> None:
        if self._reverse:
            np.copyto(self.bottoms[0].data, self._x.data[::-1])
            self.bottoms[1].data[1:] = self._cont.data[:0:-1]
        self.engine.forward(self.bottoms, self.tops)
        if self._reverse and self._concat is not None:
            np.copyto(self._concat.data, self.tops[0].data[::-1])

    def backward(self, _t, _pd, _b) -> None:
        tops, p = self.tops, self._parts
        dy = tops[0].diff
        if self._concat is None:
            dy[-1] = tops[1].diff[0]
        elif not self._direct:
            cd = self._concat.diff
            np.copyto(dy, cd[::-1] if self._reverse else cd)
            for b in self._h_extra:
                dy[-1] += b.diff[0]
        initial = p["want_h0"] or p["want_c0"]
        # As the per-step units do, the last one reads c_T's diff as it is.
        self.engine.backward_through_states(tops, self.propagate_down, self.bottoms,
                                            self._c_t.diff[0], initial)
        if self._reverse and self.propagate_down[0]:
            np.copyto(self._x.diff, self.bottoms[0].diff[::-1])
        if initial:
            dh0, dc0 = self.engine.initial_state_diffs
            if p["want_h0"]:
                self.bottoms[2].diff[0] = dh0
            if p["want_c0"]:
                self.bottoms[3].diff[0] = dc0


def usable(xp) -> bool:
    """Whether the engine beats the per-step layers here: NumPy arrays and
    oneDNN or the compiled loops available."""
    return xp is np and (onednn.available() or cpu_kernels.enabled(np))


def _owner_blob(net, u: int, j: int):
    return net.param_blobs[net.param_owner(u, j)]


def _only_reader(graph, bid, want_type=None, net=None):
    rs = graph.readers.get(bid, [])
    if len(rs) != 1:
        return None
    if want_type is not None and net.layers_list[rs[0]].type != want_type:
        return None
    return rs[0]


def _address(arr) -> int:
    return arr.__array_interface__["data"][0]


def find_sequences(net, graph, keep=frozenset()) -> list[LSTMSequence]:
    """The LSTM recurrences of ``net`` the engine can run (see the module
    text; their Concat's rows are checked once the plan's layout is made:
    :meth:`LSTMSequence.rows_ok`); a recurrence with one of the blob ids in
    ``keep`` (looked up by a script) inside stays with the per-step layers."""
    out = []
    for u, layer in enumerate(net.layers_list):
        if layer.type != "InnerProduct":
            continue
        seq = _match(net, graph, u)
        if seq is None or keep.intersection(seq.internal):
            continue
        out.append(seq)
    return out


def _match(net, graph, u):
    """The recurrence whose input projection is InnerProduct ``u``, running
    forward in time or (a reversed cell) backward, or None."""
    return _match_direction(net, graph, u, False) or \
        _match_direction(net, graph, u, True)


def _constant_one(layer) -> bool:
    """A Power layer whose output is 1 whatever its input (the reversed
    cell's cont for its first step)."""
    p = layer.layer_param.power_param
    return layer.type == "Power" and p.scale == 0 and p.shift == 1


def _match_direction(net, graph, u, reverse):  # noqa: C901, PLR0911, PLR0912, PLR0915
    """:func:`_match` for one direction: the steps take the Slice's rows
    0, 1, ... or (``reverse``) T-1, T-2, ...; a reversed step at time t
    reads cont_{t+1}, and the first one (t = T) a constant 1."""
    layers, blobs = net.layers_list, net.blob_list
    bnb, lnb = net.bottom_need_backward, net.layer_need_backward
    proj = layers[u]
    if not proj.bias_term or proj.transpose or proj.axis != 2 or \
            len(net.bottom_ids[u]) != 1 or len(proj.blobs) != 2 or \
            any(w != 0 for w in proj.loss_weights):
        return None
    x_id, xg_id = net.bottom_ids[u][0], net.top_ids[u][0]
    x, xg = blobs[x_id], blobs[xg_id]
    if x.num_axes < 3 or xg.num_axes != 3 or xg.shape[2] % 4:
        return None
    T, N, H = x.shape[0], x.shape[1], xg.shape[2] // 4
    dtype = xg.dtype
    sl = _only_reader(graph, xg_id, "Slice", net)
    if sl is None or layers[sl].axis != 0 or len(net.top_ids[sl]) != T or T < 2:
        return None
    members = [u, sl]
    internal = {xg_id}
    transforms = []
    cont_slice = None
    h_prev = c_prev = None
    h0 = c0 = None
    concat_bottoms = []
    w_owner = None
    ppd = None
    last_unit = None
    mode = None
    want_h0 = want_c0 = False
    h_extra: list[int] = []
    for i, k in enumerate(range(T - 1, -1, -1) if reverse else range(T)):
        xk = net.top_ids[sl][k]
        internal.add(xk)
        e = _only_reader(graph, xk, "Eltwise", net)
        if e is None or layers[e].op != caffe_pb2.EltwiseParameter.SUM or \
                len(net.bottom_ids[e]) != 2 or layers[e].coeffs != [1.0, 1.0]:
            return None
        other = [b for b in net.bottom_ids[e] if b != xk]
        if len(other) != 1:
            return None
        r_id = other[0]
        r = graph.producer.get(r_id)
        if r is None or layers[r].type != "InnerProduct" or \
                _only_reader(graph, r_id) != e:
            return None
        ip = layers[r]
        if ip.bias_term or ip.transpose or len(net.bottom_ids[r]) != 1 or \
                len(ip.blobs) != 1 or tuple(ip.blobs[0].shape) != (4 * H, H) or \
                blobs[r_id].shape != (1, N, 4 * H):
            return None
        owner = net.param_owner(r, 0)
        if w_owner is None:
            w_owner, ppd = owner, list(ip.param_propagate_down)
        elif owner != w_owner or list(ip.param_propagate_down) != ppd:
            return None
        hc_id = net.bottom_ids[r][0]
        s = graph.producer.get(hc_id)
        if s is None or layers[s].type != "Scale" or _only_reader(graph, hc_id) != r:
            return None
        sc = layers[s]
        if len(net.bottom_ids[s]) != 2 or sc.bias_term or sc.blobs or \
                sc.dims != (1, N, H) or blobs[hc_id].shape != (1, N, H):
            return None
        g_id = net.top_ids[e][0]
        unit = _only_reader(graph, g_id, "LSTMUnit", net)
        if unit is None or net.bottom_ids[unit][1] != g_id:
            return None
        hp_id, cn_id = net.bottom_ids[s]
        cp_id, _, cu_id = net.bottom_ids[unit]
        # One cont: the same row of one Slice along T of a (T, N) blob.
        root = graph.data_root(cn_id)
        if graph.data_root(cu_id) != root or bnb[s][1]:
            return None
        cs = graph.producer.get(root)
        if reverse and i == 0:
            if cs is None or not _constant_one(layers[cs]) or \
                    blobs[root].shape != (1, N):
                return None
        else:
            row = k + 1 if reverse else k
            if cs is None or layers[cs].type != "Slice" or layers[cs].axis != 0 or \
                    net.top_ids[cs].index(root) != row or len(net.top_ids[cs]) != T:
                return None
            if cont_slice is None:
                cont_slice = cs
            elif cs != cont_slice:
                return None
        c_id, h_id = net.top_ids[unit]
        if i == 0:
            # The initial states as the first Scale and unit read them (a
            # Split's tops: their diffs are these layers' to write).
            h0, c0 = hp_id, cp_id
            if blobs[h0].shape != (1, N, H) or blobs[c0].shape != (1, N, H):
                return None
            want_h0 = bool(lnb[s] and bnb[s][0])
            want_c0 = bool(lnb[unit] and bnb[unit][0])
        else:
            if graph.data_root(hp_id) != h_prev or cp_id != c_prev:
                return None
        members += [s, r, e, unit]
        internal.update((hc_id, r_id, g_id))
        transforms.append(r)
        # h_t: the next step's Scale and the Concat (through a two-top Split),
        # or the Concat alone at the last step ("concat"); or the next
        # step's Scale alone, and anything at the last step ("last": a
        # many-to-one net reading h_T only). c_t: the next unit alone.
        if i < T - 1:
            nxt = _only_reader(graph, h_id, "Scale", net)
            if nxt is not None and mode in (None, "last"):
                mode = "last"
                internal.add(h_id)
            else:
                sp = _only_reader(graph, h_id, "Split", net)
                if mode == "last" or sp is None or len(net.top_ids[sp]) != 2:
                    return None
                mode = "concat"
                a, b = net.top_ids[sp]
                if _only_reader(graph, b, "Concat", net) is None:
                    a, b = b, a
                c_reader = _only_reader(graph, b, "Concat", net)
                nxt = _only_reader(graph, a, "Scale", net)
                if c_reader is None or nxt is None or net.bottom_ids[nxt][0] != a:
                    return None
                members.append(sp)
                internal.add(a)
                concat_bottoms.append(b)
            c_next = _only_reader(graph, c_id)
            if c_next is None or layers[c_next].type != "LSTMUnit":
                return None
            internal.add(c_id)
        else:
            if mode == "concat" and \
                    _only_reader(graph, h_id, "Concat", net) is not None:
                concat_bottoms.append(h_id)
            elif mode == "concat":
                # h_T also read elsewhere (a state carried on): the Split's
                # other tops bring their gradients to the last step.
                sp = _only_reader(graph, h_id, "Split", net)
                if sp is None:
                    return None
                to_concat = [b for b in net.top_ids[sp]
                             if _only_reader(graph, b, "Concat", net) is not None]
                if len(to_concat) != 1:
                    return None
                members.append(sp)
                concat_bottoms.append(to_concat[0])
                h_extra = [b for b in net.top_ids[sp] if b != to_concat[0]]
            last_unit = unit
        h_prev, c_prev = h_id, c_id
    if blobs[graph.producer[root]].dtype != dtype:
        return None
    cont_id = net.bottom_ids[cont_slice][0]
    if blobs[cont_id].shape != (T, N):
        return None
    need_bwd = any(lnb[m] for m in members)
    y_id = None
    rows_diff = False
    if reverse:
        concat_bottoms.reverse()  # (time order)
    if mode == "concat":
        concat = graph.readers[concat_bottoms[0]][0]
        if list(net.bottom_ids[concat]) != concat_bottoms or layers[concat].axis != 0:
            return None
        y_id = net.top_ids[concat][0]
        y = blobs[y_id]
        if y.shape != (T, N, H):
            return None
        rows_diff = need_bwd and lnb[concat]
    need_dx = bool(lnb[u] and bnb[u][0])
    external = {x_id, cont_id, h0, c0, h_prev, c_prev, *concat_bottoms, *h_extra}
    if y_id is not None:
        external.add(y_id)
    parts = dict(x_transform=u, last_unit=last_unit, T=T, N=N, H=H, x=x_id,
                 cont=cont_id, h0=h0, c0=c0, y=y_id, hT=h_prev, cT=c_prev,
                 h_extra=h_extra, want_h0=want_h0, want_c0=want_c0,
                 reverse=reverse, rows=[graph.data_root(b) for b in concat_bottoms],
                 rows_diff=concat_bottoms if rows_diff else [],
                 transforms=transforms, need_dx=need_dx, external=external)
    return LSTMSequence(net, members, internal - external, parts)
