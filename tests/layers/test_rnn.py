"""RNN: Caffe's semantics, both implementations (fused and internal net)."""

import numpy as np
import pytest

from recaffe import backend
from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.net import TEST, TRAIN, Net
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

H = 7
FILL = ('weight_filler { type: "gaussian" std: 0.2 } '
        'bias_filler { type: "gaussian" std: 0.1 }')
IMPLS = ("fused", "net")
rng = np.random.default_rng(11)


def rnn_text(extra="", name="rnn1"):
    return (f'name: "{name}" type: "RNN" recurrent_param {{ num_output: {H} {FILL} '
            f'{extra} }}')


def ux(t, n, low=-1.0, high=1.0):
    return rng.uniform(low, high, (t, n, 3, 2))


def rnn_reference(x, cont, blobs, x_static=None, h0=None):
    """Plain loop over t and streams: returns (o, h_T)."""
    t_, n = cont.shape
    w = [np.asarray(b, dtype=np.float64) for b in blobs]
    if x_static is None:
        w_xh, b_h, w_hh, w_ho, b_o = w
    else:
        w_xh, b_h, w_s, w_hh, w_ho, b_o = w
    hdim = b_h.shape[0]
    xf = x.reshape(t_, n, -1).astype(np.float64)
    h = np.zeros((n, hdim)) if h0 is None else h0.reshape(n, hdim).astype(np.float64)
    out = np.zeros((t_, n, hdim))
    for t in range(t_):
        new_h = np.zeros_like(h)
        for s in range(n):
            pre = w_hh @ (cont[t, s] * h[s]) + w_xh @ xf[t, s] + b_h
            if x_static is not None:
                pre = pre + w_s @ x_static[s].reshape(-1)
            new_h[s] = np.tanh(pre)
            out[t, s] = np.tanh(w_ho @ new_h[s] + b_o)
        h = new_h
    return out, h[None]


def _layer(text, impl, bottoms, dtype=np.float64, seed=1701, num_tops=1):
    backend.set_random_seed(seed)
    with backend.dtype_scope(dtype):
        layer = make_layer(text)
        layer.impl = impl
        bottom = make_blobs(bottoms, dtype)
        top = [Blob((), dtype=dtype) for _ in range(num_tops)]
        layer.SetUp(bottom, top)
    return layer, bottom, top


CONT_T3N3 = np.array([[0, 0, 0], [1, 1, 0], [1, 0, 1]], dtype=float)


class TestRNN(LayerTestCase):
    layer_type = "RNN"
    impl = "fused"
    cases = [
        # Caffe's TestGradient: T=1, N=3, cont all 0.
        Case(rnn_text(), [ux(1, 3), np.zeros((1, 3))], check_bottom=[0],
             rtol=1e-4, atol=1e-5),
        # Non-zero cont with resets inside the window (T=3, N=3).
        Case(rnn_text(), [ux(3, 3), CONT_T3N3], check_bottom=[0], rtol=1e-4,
             atol=1e-5),
        # Caffe's BufferSize2: T=2, N=2, cont [0,0,0,1], x in [0, 1].
        Case(rnn_text(), [ux(2, 2, 0.0, 1.0), np.array([[0, 0], [0, 1.0]])],
             check_bottom=[0], rtol=1e-4, atol=1e-5),
        # Static input (Caffe's WithStaticInput adds x_static (N, 2, 3, 4)).
        Case(rnn_text(), [ux(3, 2), np.array([[0, 0], [1, 1], [0, 1.0]]),
                          rng.uniform(-1, 1, (2, 2, 3, 4))],
             check_bottom=[0, 2], rtol=1e-4, atol=1e-5),
        # expose_hidden: initial state from a bottom, cont non-zero at t=0; the
        # h_T top gets no gradient (Caffe), so only top[0] enters the objective.
        Case(rnn_text("expose_hidden: true"),
             [ux(3, 2), np.array([[1, 0], [1, 1], [0, 1.0]]),
              rng.uniform(-1, 1, (1, 2, H))],
             num_tops=2, check_bottom=[0], top_mask=[True, False], rtol=1e-4,
             atol=1e-5),
        # expose_hidden with static input.
        Case(rnn_text("expose_hidden: true"),
             [ux(3, 3), np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1.0]]),
              rng.uniform(-1, 1, (3, 4)), rng.uniform(-1, 1, (1, 3, H))],
             num_tops=2, check_bottom=[0, 2], top_mask=[True, False], rtol=1e-4,
             atol=1e-5),
    ]

    def build(self, case, dtype, seed=1701):
        return _layer(case.text, self.impl, case.bottoms, dtype, seed, case.num_tops)

    def reference(self, case, bottoms, layer):
        blobs = [backend.to_host(b.data) for b in layer.blobs]
        expose = layer.layer_param.recurrent_param.expose_hidden
        nb = len(bottoms)
        static = nb == (4 if expose else 3)
        xs = bottoms[2] if static else None
        h0 = bottoms[-1] if expose else None
        o, h_t = rnn_reference(bottoms[0], bottoms[1], blobs, xs, h0)
        return [o, h_t] if expose else [o]


class TestRNNNet(TestRNN):
    """The same battery through Caffe's internal unrolled net."""

    impl = "net"


# -- shapes and blob order (§5.1) -----------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("static", [False, True])
def test_setup_shapes_and_blob_order(impl, static):
    bottoms = [ux(3, 2), np.zeros((3, 2))]
    if static:
        bottoms.append(rng.uniform(-1, 1, (2, 5)))
    layer, _, top = _layer(rnn_text(), impl, bottoms)
    assert top[0].shape == (3, 2, H)
    want = [(H, 6), (H,)] + ([(H, 5)] if static else []) + [(H, H), (H, H), (H,)]
    assert [b.shape for b in layer.blobs] == want
    assert layer.impl_used == impl


def test_internal_net_construction():
    layer, _, _ = _layer(rnn_text(), "net", [ux(2, 2), np.zeros((2, 2)),
                                                  rng.uniform(-1, 1, (2, 4))])
    net = layer.net
    names = net.layer_names
    for n in ("rnn1_", "rnn1_cont_slice", "rnn1_x_transform", "rnn1_W_xh_x_static",
              "rnn1_W_xh_x_static_reshape", "rnn1_W_xh_x_slice", "rnn1_h_conted_0",
              "rnn1_W_hh_h_0", "rnn1_h_input_sum_1", "rnn1_h_neuron_1", "rnn1_W_ho_h_1",
              "rnn1_o_neuron_2", "rnn1_o_concat", "o_pseudoloss"):
        assert n in names, n
    for b in ("x", "cont", "x_static", "h_0", "cont_1", "W_xh_x_2", "h_conted_1",
              "W_hh_h_1", "h_neuron_input_2", "h_2", "W_ho_h_2", "o_2", "o"):
        assert net.has_blob(b), b
    lp = net.param.layer[names.index("rnn1_x_transform")]
    assert list(lp.propagate_down) == [True]
    assert [p.name for p in lp.param] == ["W_xh", "b_h"]
    assert lp.inner_product_param.axis == 2
    assert lp.inner_product_param.weight_filler.std == pytest.approx(0.2)
    pl = net.param.layer[-1]
    assert pl.type == "Reduction" and list(pl.loss_weight) == [1.0]
    assert net.phase == TEST
    owned = [net.param_display_names[i] for i in net.learnable_param_ids]
    assert owned == ["W_xh", "b_h", "W_xh_static", "W_hh", "W_ho", "b_o"]
    for i, b in enumerate(layer.blobs):
        assert b is net.learnable_params[i]


# -- Caffe's TestForward ---------------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
def test_forward_sequence_equals_single_steps(impl):
    t_, n = 3, 3
    x = ux(t_, n)
    cont = np.ones((t_, n))
    cont[0] = 0
    full, b, top = _layer(rnn_text(), impl, [x, cont], np.float32, seed=5)
    full.Forward(b, top)
    seq = top[0].data.copy()
    step, sb, stop = _layer(rnn_text(), impl, [x[:1], cont[:1]], np.float32, seed=5)
    for j in range(4):
        np.testing.assert_array_equal(step.blobs[j].data, full.blobs[j].data)
    for t in range(t_):
        sb[0].data[...] = x[t:t + 1]
        sb[1].data[...] = 0 if t == 0 else 1
        step.Forward(sb, stop)
        np.testing.assert_allclose(stop[0].data[0], seq[t], rtol=1e-5, atol=1e-5)
    # cont always 0: each step starts afresh, so only t=0 matches.
    step.reset_state()
    for t in range(t_):
        sb[0].data[...] = x[t:t + 1]
        sb[1].data[...] = 0
        step.Forward(sb, stop)
        if t == 0:
            np.testing.assert_allclose(stop[0].data[0], seq[t], rtol=1e-5, atol=1e-5)
        else:
            assert np.abs(stop[0].data[0] - seq[t]).max() > 1e-4


@pytest.mark.parametrize("impl", IMPLS)
def test_state_carried_across_forward_calls(impl):
    x = ux(2, 2)
    cont = np.array([[1.0, 0.0], [1.0, 1.0]])
    layer, b, top = _layer(rnn_text(), impl, [x, cont])
    blobs = [bb.data.copy() for bb in layer.blobs]
    layer.Forward(b, top)
    o1, h1 = rnn_reference(x, cont, blobs)
    np.testing.assert_allclose(top[0].data, o1, rtol=1e-10)
    layer.Forward(b, top)
    # Stream 0 continues (cont 1 at t=0) from h_T of the first call; stream 1 resets.
    h0 = h1.copy()
    h0[0, 1] = 0
    o2, _ = rnn_reference(x, cont, blobs, h0=h0)
    np.testing.assert_allclose(top[0].data, o2, rtol=1e-10)


# -- equivalence: internal net == fused == numpy ----------------------------------
def _run(impl, bottoms, text, pd, ppd=None, steps=2, dtype=np.float32):
    layer, b, top = _layer(text, impl, bottoms, dtype, seed=3,
                           num_tops=2 if "expose" in text else 1)
    if ppd is not None:
        layer.param_propagate_down = list(ppd)
    outs = []
    for k in range(steps):
        if k == 1 and not layer.expose_hidden:
            # A smaller N on the second call (streams 0..N-2 carry their state).
            small = [a[:, :-1] if i < 2 else a[:-1] for i, a in enumerate(bottoms)]
            b = make_blobs(small, dtype)
        layer.Forward(b, top)
        dr = np.random.default_rng(k)
        top[0].diff[...] = dr.standard_normal(top[0].shape)
        for p in layer.blobs:
            p.diff[...] = 0
        for bb in b:
            bb.diff[...] = 0
        layer.Backward(top, pd, b)
        outs.append([t.data.copy() for t in top] + [p.diff.copy() for p in layer.blobs]
                    + [bb.diff.copy() for bb in b])
    return outs


@pytest.mark.parametrize("extra,bottoms,pd", [
    ("", [ux(4, 3), np.array([[0, 1, 0], [1, 1, 1], [1, 0, 1], [0, 1, 1.0]])],
     [True, False]),
    ("", [ux(3, 3), CONT_T3N3, rng.uniform(-1, 1, (3, 2, 2))], [True, False, True]),
    ("expose_hidden: true", [ux(3, 2), np.ones((3, 2)), rng.uniform(-1, 1, (1, 2, H))],
     [True, False, True]),
    ("", [ux(1, 2), np.array([[1.0, 0.0]])], [True, False]),
])
def test_net_and_fused_agree(extra, bottoms, pd):
    text = rnn_text(extra)
    a = _run("net", bottoms, text, pd)
    f = _run("fused", bottoms, text, pd)
    for step_a, step_f in zip(a, f, strict=True):
        for x, y in zip(step_a, step_f, strict=True):
            np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6)


def test_fused_matches_numpy_reference_after_n_change():
    x = ux(3, 3)
    layer, b, top = _layer(rnn_text(), "fused", [x, CONT_T3N3])
    blobs = [bb.data.copy() for bb in layer.blobs]
    layer.Forward(b, top)
    _, h_t = rnn_reference(x, CONT_T3N3, blobs)
    b2 = make_blobs([x[:, :2], np.ones((3, 2))], np.float64)
    layer.Forward(b2, top)
    o, _ = rnn_reference(x[:, :2], np.ones((3, 2)), blobs, h0=h_t[:, :2])
    np.testing.assert_allclose(top[0].data, o, rtol=1e-10)
    b3 = make_blobs([ux(3, 4), np.ones((3, 4))], np.float64)
    layer.Forward(b3, top)  # N grows: the state restarts from zeros
    o, _ = rnn_reference(b3[0].data, np.ones((3, 4)), blobs)
    np.testing.assert_allclose(top[0].data, o, rtol=1e-10)


# -- expose_hidden -------------------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
def test_expose_hidden_no_carry_no_state_gradient(impl):
    x = ux(3, 2)
    h0 = rng.uniform(-1, 1, (1, 2, H))
    cont = np.ones((3, 2))
    layer, b, top = _layer(rnn_text("expose_hidden: true"), impl, [x, cont, h0],
                           num_tops=2)
    blobs = [bb.data.copy() for bb in layer.blobs]
    layer.Forward(b, top)
    first = top[0].data.copy()
    layer.Forward(b, top)
    np.testing.assert_array_equal(top[0].data, first)
    o, h_t = rnn_reference(x, cont, blobs, h0=h0)
    np.testing.assert_allclose(top[0].data, o, rtol=1e-10)
    np.testing.assert_allclose(top[1].data, h_t, rtol=1e-10)
    b[2].diff[...] = 5
    top[0].diff[...] = 1
    top[1].diff[...] = 1
    layer.Backward(top, [True, False, True], b)
    assert np.all(b[2].diff == 0)


# -- weights through .caffemodel, lr_mult 0 --------------------------------------------
NET = """
name: "r"
layer {{ name: "x" type: "Input" top: "x"
  input_param {{ shape {{ dim: 3 dim: 2 dim: 4 }} }} }}
layer {{ name: "cont" type: "Input" top: "cont"
  input_param {{ shape {{ dim: 3 dim: 2 }} }} }}
layer {{ name: "rnn" type: "RNN" bottom: "x" bottom: "cont" top: "o" {params}
  recurrent_param {{ num_output: 5 {fill} }} }}
layer {{ name: "loss" type: "Reduction" bottom: "o" top: "loss" loss_weight: 1
  reduction_param {{ operation: SUMSQ }} }}
"""


def _net(tmp_path, impl, monkeypatch, params="", name="net.prototxt"):
    monkeypatch.setenv("RECAFFE_RECURRENT_IMPL", impl)
    path = tmp_path / name
    path.write_text(NET.format(params=params, fill=FILL))
    return Net(str(path), TRAIN)


def _feed(net):
    r = np.random.default_rng(4)
    net.blobs["x"].data[...] = r.uniform(-1, 1, (3, 2, 4))
    net.blobs["cont"].data[...] = np.array([[0, 0], [1, 1], [1, 0]])


@pytest.mark.parametrize("src_impl,dst_impl", [("fused", "fused"), ("net", "fused"),
                                               ("fused", "net")])
def test_caffemodel_round_trip(tmp_path, monkeypatch, src_impl, dst_impl):
    backend.set_random_seed(1)
    src = _net(tmp_path, src_impl, monkeypatch)
    _feed(src)
    out = src.forward()["loss"].copy()
    src.save(str(tmp_path / "w.caffemodel"))
    backend.set_random_seed(99)
    dst = _net(tmp_path, dst_impl, monkeypatch)
    assert not np.allclose(dst.params["rnn"][0].data, src.params["rnn"][0].data)
    dst.copy_from(str(tmp_path / "w.caffemodel"))
    for a, b in zip(src.params["rnn"], dst.params["rnn"], strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    _feed(dst)
    np.testing.assert_allclose(dst.forward()["loss"], out, rtol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_lr_mult_zero_is_honoured(tmp_path, monkeypatch, impl):
    params = "param { lr_mult: 1 } param { lr_mult: 1 } param { lr_mult: 0 }"
    net = _net(tmp_path, impl, monkeypatch, params)
    _feed(net)
    net.clear_param_diffs()
    net.forward()
    net.backward()
    diffs = [np.abs(p.diff).sum() for p in net.params["rnn"]]
    assert diffs[2] == 0  # W_hh frozen
    assert all(d > 0 for i, d in enumerate(diffs) if i != 2)


@pytest.mark.parametrize("impl", IMPLS)
def test_cont_gets_no_gradient_under_force_backward(tmp_path, monkeypatch, impl):
    monkeypatch.setenv("RECAFFE_RECURRENT_IMPL", impl)
    p = tmp_path / "f.prototxt"
    p.write_text("force_backward: true\n" + NET.format(params="", fill=FILL))
    net = Net(str(p), TRAIN)
    i = net.layer_index("rnn")
    assert net.bottom_need_backward[i] == [True, False]
    assert not net.layers_list[i].allow_force_backward(1)


def test_debug_info_reaches_internal_net():
    layer, _, _ = _layer(rnn_text("debug_info: true"), "net",
                         [ux(2, 1), np.zeros((2, 1))])
    assert layer.net.debug_info


def test_env_var_selects_impl(monkeypatch):
    bottoms = [ux(2, 1), np.zeros((2, 1))]
    for impl in IMPLS:
        monkeypatch.setenv("RECAFFE_RECURRENT_IMPL", impl)
        layer, _, _ = _layer(rnn_text(), None, bottoms)
        assert layer.impl_used == impl
    monkeypatch.setenv("RECAFFE_RECURRENT_IMPL", "magic")
    with pytest.raises(LayerSetupError, match="unknown recurrent implementation"):
        _layer(rnn_text(), None, bottoms)


# -- typed errors -------------------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
def test_shape_errors(impl):
    def setup(bottoms, extra="", num_tops=1):
        return _layer(rnn_text(extra), impl, bottoms, num_tops=num_tops)

    msg = (r"RNN layer 'rnn1': bottom\[0\] 'x' must have at least 3 axes "
           r"\(T x N x features...\), got shape \(320, 1\)")
    with pytest.raises(ShapeError, match=msg):
        setup([np.zeros((320, 1)), np.zeros((320, 1))])
    with pytest.raises(ShapeError, match=r"RNN layer 'rnn1': bottom\[1\] 'cont' must "
                       r"have 2 axes \(T x N\), got shape \(3, 2, 1\)"):
        setup([ux(3, 2), np.zeros((3, 2, 1))])
    with pytest.raises(ShapeError, match=r"bottom\[1\] 'cont' must have shape"):
        setup([ux(3, 2), np.zeros((3, 3))])
    with pytest.raises(ShapeError, match=r"bottom\[2\] 'x_static' must have shape"):
        setup([ux(3, 2), np.zeros((3, 2)), np.zeros((3, 4))])
    with pytest.raises(ShapeError, match=r"bottom\[2\] 'h_0' .* must have shape "
                       r"\(1, N, H\) = \(1, 2, 7\), got \(2, 7\)"):
        setup([ux(3, 2), np.zeros((3, 2)), np.zeros((2, H))], "expose_hidden: true", 2)
    with pytest.raises(LayerSetupError, match="at least 2 bottom"):
        setup([ux(3, 2)])
    with pytest.raises(LayerSetupError, match="num_output must be > 0"):
        _layer('name: "r" type: "RNN" recurrent_param { num_output: 0 }', impl,
               [ux(3, 2), np.zeros((3, 2))])
    layer, _, top = setup([ux(3, 2), np.zeros((3, 2))])
    b2 = make_blobs([ux(4, 2), np.zeros((4, 2))], np.float64)
    with pytest.raises(ShapeError, match="input number of timesteps changed"):
        layer.Forward(b2, top)


def test_net_level_error_names_layer(tmp_path):
    p = tmp_path / "bad.prototxt"
    p.write_text("""
layer { name: "x" type: "Input" top: "x"
  input_param { shape { dim: 20 dim: 4 dim: 3 } } }
layer { name: "c" type: "Input" top: "c"
  input_param { shape { dim: 20 dim: 4 dim: 1 } } }
layer { name: "lstm1" type: "RNN" bottom: "x" bottom: "c" top: "y"
  recurrent_param { num_output: 2 } }
""")
    with pytest.raises(ShapeError, match=r"^RNN layer 'lstm1': bottom\[1\] 'cont' must "
                       r"have 2 axes \(T x N\), got shape \(20, 4, 1\)$"):
        Net(str(p), TRAIN)


def test_fused_is_default(monkeypatch):
    monkeypatch.delenv("RECAFFE_RECURRENT_IMPL", raising=False)
    layer, _, _ = _layer(rnn_text(), None, [ux(2, 1), np.zeros((2, 1))])
    assert layer.impl_used == "fused"
    assert layer.net is None


def test_param_spec_names_match_internal_net():
    layer, _, _ = _layer(rnn_text(), "net", [ux(2, 1), np.zeros((2, 1))])
    names = [n for n, _, _ in layer.param_specs()]
    net = layer.net
    assert names == [net.param_display_names[i] for i in net.learnable_param_ids]
    assert net.phase == caffe_pb2.TEST
