"""The unroll API: naming scheme, parameter sharing, forms, options, errors."""

from __future__ import annotations

import os

import numpy as np
import pytest

import recaffe
from recaffe import recurrent
from recaffe.backend import dtype_scope
from recaffe.errors import NetError
from recaffe.net_spec import NetSpec
from recaffe.net_spec import layers as L

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "golden")


def _step(x, h):
    z = L.InnerProduct(x, name="zX", num_output=3, axis=2)
    zh = L.InnerProduct(h, name="zH", num_output=3, axis=2, bias_term=False,
                        param=dict(lr_mult=2, decay_mult=0))
    a = L.TanH(L.Eltwise(z, zh))
    return a, a


def _inputs(T=3, N=2, D=4):
    ns = NetSpec()
    ns.x, ns.cont = L.Input(shape=[dict(dim=[T, N, D]), dict(dim=[T, N])], ntop=2)
    return ns


def _layers(net_param):
    return {layer.name: layer for layer in net_param.layer}


def test_naming_scheme_and_shared_param_names():
    ns = _inputs()
    r = recaffe.unroll(_step, ns.x, 3, states=[(1, 2, 3)], ns=ns)
    layers = _layers(ns.to_proto())
    for t in (1, 2, 3):
        assert layers[f"zX_t{t}"].top == [f"zX_t{t}"]
        assert [p.name for p in layers[f"zX_t{t}"].param] == ["zX_w", "zX_b"]
        spec = layers[f"zH_t{t}"].param[0]
        assert (spec.name, spec.lr_mult, spec.decay_mult) == ("zH_w", 2, 0)
        assert layers[f"Eltwise1_t{t}"].bottom == [f"zX_t{t}", f"zH_t{t}"]
        # the unnamed TanH produces the state: it is named after it
        assert layers[f"h_t{t}"].type == "TanH"
        assert layers[f"h_t{t}"].top == [f"h_t{t}"]
    assert layers["x_slice"].top == ["x_t1", "x_t2", "x_t3"]
    assert layers["zH_t1"].bottom == ["h_0"]
    assert layers["zH_t2"].bottom == ["h_t1"]
    assert layers["y"].type == "Concat"
    assert layers["y"].bottom == ["h_t1", "h_t2", "h_t3"]
    assert r.final_state_names == ["h_t3"] and r.output_blob_names == ["y"]


def test_prefix_keeps_user_param_names():
    ns = _inputs()

    def step(x, h):
        a = L.Sigmoid(L.InnerProduct(x, name="ip", num_output=3, axis=2,
                                     param=[dict(name="W", lr_mult=1),
                                            dict(lr_mult=2)]))
        return a, a

    recaffe.unroll(step, ns.x, 3, states=[(1, 2, 3)], name="enc", ns=ns)
    layers = _layers(ns.to_proto())
    assert [(p.name, p.lr_mult) for p in layers["enc_ip_t2"].param] == [
        ("W", 1), ("enc_ip_b", 2)]
    assert layers["enc_h_t3"].type == "Sigmoid"
    assert layers["enc_h_t3"].top == ["enc_h_t3"]


def test_unrolled_net_runs_and_shares_one_copy_of_each_weight():
    ns = _inputs()
    recaffe.unroll(_step, ns.x, 3, states=[(1, 2, 3)], cont=ns.cont, ns=ns)
    net = recaffe.Net(ns.to_proto(), recaffe.TEST)
    assert len(net.learnable_params) == 3  # zX_w, zX_b, zH_w
    out = net.forward(x=np.ones((3, 2, 4), np.float32),
                      cont=np.ones((3, 2), np.float32))
    assert out["y"].shape == (3, 2, 3)


def test_dict_form_and_several_states_and_outputs():
    ns = _inputs()

    def step(x, h, c):
        a = L.TanH(L.InnerProduct(x, num_output=3, axis=2))
        c2 = L.Eltwise(c, a, name="acc")
        return {"a": a, "c_out": c2}, {"h": a, "c": c2}

    r = recaffe.unroll(step, {"x": ns.x}, 2, states={"h": (1, 2, 3), "c": (1, 2, 3)},
                       ns=ns)
    assert r.output_names == ["a", "c_out"] and r.state_names == ["h", "c"]
    layers = _layers(ns.to_proto())
    assert layers["acc_t2"].bottom == ["c_t1", "h_t2"]
    assert layers["acc_t2"].top == ["c_t2"]
    assert layers["c_out"].bottom == ["c_t1", "c_t2"]
    assert r["c"] is r.states[1]


def test_axis_width_concat_axis_and_return_last():
    ns = NetSpec()
    ns.data = L.Input(shape=dict(dim=[5, 1, 1, 8]))

    def step(x, h):
        a = L.Sigmoid(L.InnerProduct(x, num_output=2))
        return L.InnerProduct(a, num_output=1, name="out"), a

    recaffe.unroll(step, ns.data, 4, states=[(5, 2)], axis=3, width=2, concat_axis=1,
                   ns=ns)
    net_param = ns.to_proto()
    layers = _layers(net_param)
    assert list(layers["x_slice"].slice_param.slice_point) == [2, 4, 6]
    assert layers["x_slice"].slice_param.axis == 3
    assert layers["y"].concat_param.axis == 1
    net = recaffe.Net(net_param, recaffe.TEST)
    assert net.forward()["y"].shape == (5, 4)
    last = recaffe.unroll(step, ns.data, 4, states=[(5, 2)], axis=3,
                          slice_points=[1, 2, 3], return_last=True, name="b")
    assert last.output_blob_names == ["b_y_t4"]


def test_constant_layers_in_the_step_are_emitted_once():
    ns = _inputs()
    ns.static = L.Input(shape=dict(dim=[1, 2, 3]))

    def step(x, h):
        s = L.InnerProduct(ns.static, name="static_proj", num_output=3, axis=2)
        a = L.TanH(L.Eltwise(L.InnerProduct(x, num_output=3, axis=2), s, h))
        return a, a

    recaffe.unroll(step, ns.x, 3, states=[(1, 2, 3)], ns=ns)
    names = [layer.name for layer in ns.to_proto().layer]
    assert names.count("static_proj") == 1
    assert "static_proj_t1" not in names


def test_sequence_inputs_chain_unrolled_nets_per_step():
    ns = _inputs()
    first = recaffe.unroll(_step, ns.x, 3, states=[(1, 2, 3)], name="l1", ns=ns)
    second = recaffe.unroll(_step, first.steps[0], 3, states=[(1, 2, 3)], name="l2",
                            ns=ns)
    layers = _layers(ns.to_proto())
    assert layers["l2_zX_t2"].bottom == ["l1_h_t2"]
    assert second.output_blob_names == ["l2_y"]


def test_reverse_runs_from_the_end_with_shifted_cont():
    ns = _inputs()
    recaffe.unroll(_step, ns.x, 3, states=[(1, 2, 3)], cont=ns.cont, reverse=True,
                   ns=ns)
    layers = _layers(ns.to_proto())
    assert layers["zH_t3"].bottom == ["h_conted_t3"]
    assert layers["h_conted_t3"].bottom == ["h_0", "cont_end"]
    assert layers["h_conted_t2"].bottom == ["h_t3", "cont_t3"]
    assert layers["y"].bottom == ["h_t1", "h_t2", "h_t3"]
    net = recaffe.Net(ns.to_proto(), recaffe.TEST)
    net.forward(x=np.ones((3, 2, 4), np.float32), cont=np.zeros((3, 2), np.float32))
    np.testing.assert_array_equal(net.blobs["cont_end"].data, 1)


def test_stack_and_bidirectional_build_and_run():
    T, N, D = 3, 2, 4
    ns = _inputs(T, N, D)
    cells = [recurrent.LSTMCell(5, "l1"), recurrent.GRUCell(3, "l2")]
    results = recurrent.stack(cells, ns.x, T, cont=ns.cont, N=N, ns=ns)
    bi = recurrent.bidirectional(recurrent.LSTMCell(2, "fw"),
                                 recurrent.RNNCell(2, "bw"), results[-1].output, T,
                                 cont=ns.cont, N=N, ns=ns)
    assert len(bi.states) == 3
    with dtype_scope(np.float64):
        net = recaffe.Net(ns.to_proto(), recaffe.TEST)
    rng = np.random.default_rng(0)
    out = net.forward(x=rng.normal(size=(T, N, D)), cont=np.ones((T, N)))
    assert out["bi"].shape == (T, N, 4)
    assert net.blobs["l1_h"].shape == (T, N, 5)
    with pytest.raises(NetError, match="distinct names"):
        recurrent.stack([recurrent.RNNCell(2, "a"), recurrent.RNNCell(2, "a")], ns.x, T,
                        N=N)


def test_lstm_without_cont_uses_ones():
    ns = _inputs()
    h, (h_T, c_T) = recurrent.lstm(ns.x, None, 3, 4, N=2, ns=ns)
    assert recurrent.unroll(lambda x, s: (x, s), ns.x, 1, states=[h_T]).states == [h_T]
    assert c_T is not h
    layers = _layers(ns.to_proto())
    assert layers["lstm_cont_ones"].dummy_data_param.data_filler[0].value == 1


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_golden_prototxt(cell):
    from recaffe.cli.unroll import build

    with open(os.path.join(GOLDEN, f"unrolled_{cell}_T3.prototxt")) as f:
        golden = f.read()
    assert str(build(cell, 3, 4, 2, 1)) == golden


def test_errors():
    ns = _inputs()
    with pytest.raises(NetError, match="T must be >= 1"):
        recaffe.unroll(_step, ns.x, 0, states=[(1, 2, 3)])
    with pytest.raises(NetError, match=r"\(outputs, new_states\)"):
        recaffe.unroll(lambda x, h: x, ns.x, 2, states=[(1, 2, 3)])
    with pytest.raises(NetError, match="2 new states for 1 states"):
        recaffe.unroll(lambda x, h: (x, [x, h]), ns.x, 2, states=[(1, 2, 3)])
    with pytest.raises(NetError, match="named 'a'"):
        recaffe.unroll(lambda x, h: (L.TanH(L.TanH(x, name="a"), name="a"), h), ns.x, 2,
                       states=[(1, 2, 3)])
    with pytest.raises(NetError, match="slice points"):
        recaffe.unroll(_step, ns.x, 3, states=[(1, 2, 3)], slice_points=[1])
    with pytest.raises(NetError, match="initial state 'h'"):
        recaffe.unroll(_step, ns.x, 3, states=["zeros"])
    with pytest.raises(NetError, match="cont_states"):
        recaffe.unroll(_step, ns.x, 3, states=[(1, 2, 3)], cont=ns.cont,
                       cont_states=["c"])
    with pytest.raises(NetError, match="pass_cont"):
        recaffe.unroll(_step, ns.x, 3, states=[(1, 2, 3)], pass_cont=True)
    ns.y = L.Input(shape=dict(dim=[1]))
    with pytest.raises(NetError, match="already has a top named 'y'"):
        recaffe.unroll(_step, ns.x, 3, states=[(1, 2, 3)], ns=ns)
    with pytest.raises(NetError, match="give N"):
        recurrent.lstm(ns.x, ns.cont, 3, 4)
    with pytest.raises(NetError, match="nonlinearity"):
        recurrent.RNNCell(3, nonlinearity="softsign")
