"""LSTM: Caffe's semantics, both implementations (fused and internal net)."""

import numpy as np
import pytest

from recaffe import backend
from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.net import TRAIN, Net
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

H = 7
FILL = ('weight_filler { type: "gaussian" std: 0.2 } '
        'bias_filler { type: "gaussian" std: 0.1 }')
IMPLS = ("fused", "net")
rng = np.random.default_rng(12)


@pytest.fixture(autouse=True, params=["ride", "project", "onednn"])
def _step_form(request, monkeypatch):
    """Every test with both forms of recaffe's own CPU forward step (the input
    riding along in the step's GEMM, and projected for all steps first), and
    with oneDNN's primitives where they apply (float32, cont 1 after the
    first step; skipped where oneDNN is not installed)."""
    from recaffe.backend import onednn  # noqa: PLC0415
    from recaffe.layers.lstm import LSTMLayer  # noqa: PLC0415

    if request.param == "onednn":
        if not onednn.available():
            pytest.skip(f"oneDNN: {onednn.info()['why']}")
        return
    monkeypatch.setitem(onednn._state, "enabled", False)
    ride = request.param == "ride"
    monkeypatch.setattr(LSTMLayer, "RIDE_MIN_N", 1 if ride else 1 << 30)


def lstm_text(extra="", name="lstm1"):
    return (f'name: "{name}" type: "LSTM" recurrent_param {{ num_output: {H} {FILL} '
            f'{extra} }}')


def ux(t, n, low=-1.0, high=1.0):
    return rng.uniform(low, high, (t, n, 3, 2))


def sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def lstm_reference(x, cont, blobs, x_static=None, h0=None, c0=None):
    """Plain loop over t and streams: returns (h, h_T, c_T)."""
    t_, n = cont.shape
    w = [np.asarray(b, dtype=np.float64) for b in blobs]
    if x_static is None:
        w_xc, b_c, w_hc = w
    else:
        w_xc, b_c, w_s, w_hc = w
    hd = w_hc.shape[1]
    xf = x.reshape(t_, n, -1).astype(np.float64)
    h = np.zeros((n, hd)) if h0 is None else h0.reshape(n, hd).astype(np.float64)
    c = np.zeros((n, hd)) if c0 is None else c0.reshape(n, hd).astype(np.float64)
    out = np.zeros((t_, n, hd))
    for t in range(t_):
        nh, nc = np.zeros_like(h), np.zeros_like(c)
        for s in range(n):
            a = w_hc @ (cont[t, s] * h[s]) + w_xc @ xf[t, s] + b_c
            if x_static is not None:
                a = a + w_s @ x_static[s].reshape(-1)
            i = sig(a[:hd])
            f = 0.0 if cont[t, s] == 0 else cont[t, s] * sig(a[hd:2 * hd])
            o = sig(a[2 * hd:3 * hd])
            g = np.tanh(a[3 * hd:])
            nc[s] = f * c[s] + i * g
            nh[s] = o * np.tanh(nc[s])
            out[t, s] = nh[s]
        h, c = nh, nc
    return out, h[None], c[None]


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
CONT0_T3N3 = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1]], dtype=float)


class TestLSTM(LayerTestCase):
    layer_type = "LSTM"
    impl = "fused"
    cases = [
        # Caffe's TestGradient: T=1, N=3, cont all 0.
        Case(lstm_text(), [ux(1, 3), np.zeros((1, 3))], check_bottom=[0],
             rtol=1e-4, atol=1e-5),
        # Non-zero cont with resets inside the window (T=3, N=3).
        Case(lstm_text(), [ux(3, 3), CONT_T3N3], check_bottom=[0], rtol=1e-4,
             atol=1e-5),
        # Caffe's BufferSize2: T=2, N=2, cont [0,0,0,1], x in [0, 1].
        Case(lstm_text(), [ux(2, 2, 0.0, 1.0), np.array([[0, 0], [0, 1.0]])],
             check_bottom=[0], rtol=1e-4, atol=1e-5),
        # Static input (Caffe's WithStaticInput adds x_static (N, 2, 3, 4)).
        Case(lstm_text(), [ux(3, 2), np.array([[0, 0], [1, 1], [0, 1.0]]),
                           rng.uniform(-1, 1, (2, 2, 3, 4))],
             check_bottom=[0, 2], rtol=1e-4, atol=1e-5),
        # expose_hidden: h_0, c_0 from bottoms, cont non-zero at t=0; the final
        # state tops get no gradient (Caffe), so only top[0] enters the objective.
        Case(lstm_text("expose_hidden: true"),
             [ux(3, 2), np.array([[1, 0], [1, 1], [0, 1.0]]),
              rng.uniform(-1, 1, (1, 2, H)), rng.uniform(-1, 1, (1, 2, H))],
             num_tops=3, check_bottom=[0], top_mask=[True, False, False], rtol=1e-4,
             atol=1e-5),
        # expose_hidden with static input.
        Case(lstm_text("expose_hidden: true"),
             [ux(3, 3), CONT0_T3N3, rng.uniform(-1, 1, (3, 4)),
              rng.uniform(-1, 1, (1, 3, H)), rng.uniform(-1, 1, (1, 3, H))],
             num_tops=3, check_bottom=[0, 2], top_mask=[True, False, False],
             rtol=1e-4, atol=1e-5),
    ]

    def build(self, case, dtype, seed=1701):
        return _layer(case.text, self.impl, case.bottoms, dtype, seed, case.num_tops)

    def reference(self, case, bottoms, layer):
        blobs = [backend.to_host(b.data) for b in layer.blobs]
        expose = layer.layer_param.recurrent_param.expose_hidden
        nb = len(bottoms)
        static = nb == (5 if expose else 3)
        xs = bottoms[2] if static else None
        h0, c0 = (bottoms[-2], bottoms[-1]) if expose else (None, None)
        h, h_t, c_t = lstm_reference(bottoms[0], bottoms[1], blobs, xs, h0, c0)
        return [h, h_t, c_t] if expose else [h]


class TestLSTMNet(TestLSTM):
    """The same battery through Caffe's internal unrolled net."""

    impl = "net"


# -- shapes and blob order (§5.1) -----------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("static", [False, True])
def test_setup_shapes_and_blob_order(impl, static):
    bottoms = [ux(3, 2), np.zeros((3, 2))]
    if static:
        bottoms.append(rng.uniform(-1, 1, (2, 5)))
    layer, _, top = _layer(lstm_text(), impl, bottoms)
    assert top[0].shape == (3, 2, H)
    want = [(4 * H, 6), (4 * H,)] + ([(4 * H, 5)] if static else []) + [(4 * H, H)]
    assert [b.shape for b in layer.blobs] == want


def test_internal_net_construction():
    layer, _, _ = _layer(lstm_text(), "net", [ux(2, 2), np.zeros((2, 2)),
                                              rng.uniform(-1, 1, (2, 4))])
    net = layer.net
    names = net.layer_names
    for n in ("lstm1_", "lstm1_cont_slice", "lstm1_x_transform", "lstm1_W_xc_x_static",
              "lstm1_W_xc_x_static_reshape", "lstm1_W_xc_x_slice", "lstm1_h_conted_0",
              "lstm1_transform_1", "lstm1_gate_input_1", "lstm1_unit_2",
              "lstm1_h_concat", "h_pseudoloss"):
        assert n in names, n
    for b in ("x", "cont", "x_static", "c_0", "h_0", "W_xc_x_1", "h_conted_1",
              "W_hc_h_1", "gate_input_2", "c_2", "h_2", "c_T", "h"):
        assert net.has_blob(b), b
    # Input tops in Caffe's order: c_0 before h_0.
    assert list(net.param.layer[1].top) == ["c_0", "h_0"]
    lp = net.param.layer[names.index("lstm1_x_transform")]
    assert list(lp.propagate_down) == [True]
    assert [p.name for p in lp.param] == ["W_xc", "b_c"]
    assert lp.inner_product_param.num_output == 4 * H
    owned = [net.param_display_names[i] for i in net.learnable_param_ids]
    assert owned == ["W_xc", "b_c", "W_xc_static", "W_hc"]
    assert [n for n, _, _ in layer.param_specs()] == owned
    pl = net.param.layer[-1]
    assert pl.name == "h_pseudoloss" and list(pl.loss_weight) == [1.0]


# -- Caffe's TestForward ---------------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
def test_forward_sequence_equals_single_steps(impl):
    t_, n = 3, 3
    x = ux(t_, n)
    cont = np.ones((t_, n))
    cont[0] = 0
    full, b, top = _layer(lstm_text(), impl, [x, cont], np.float32, seed=5)
    full.Forward(b, top)
    seq = top[0].data.copy()
    step, sb, stop = _layer(lstm_text(), impl, [x[:1], cont[:1]], np.float32, seed=5)
    for t in range(t_):
        sb[0].data[...] = x[t:t + 1]
        sb[1].data[...] = 0 if t == 0 else 1
        step.Forward(sb, stop)
        np.testing.assert_allclose(stop[0].data[0], seq[t], rtol=1e-5, atol=1e-5)
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
    layer, b, top = _layer(lstm_text(), impl, [x, cont])
    blobs = [bb.data.copy() for bb in layer.blobs]
    layer.Forward(b, top)
    h1, h_t, c_t = lstm_reference(x, cont, blobs)
    np.testing.assert_allclose(top[0].data, h1, rtol=1e-10)
    layer.Forward(b, top)
    h2, _, _ = lstm_reference(x, cont, blobs, h0=h_t, c0=c_t)
    np.testing.assert_allclose(top[0].data, h2, rtol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
def test_cont_zero_resets_mid_window(impl):
    """A stream restarted at t behaves exactly like a fresh sequence from t."""
    x = ux(4, 2)
    cont = np.array([[0, 0], [1, 1], [0, 1], [1, 1.0]])
    layer, b, top = _layer(lstm_text(), impl, [x, cont])
    layer.Forward(b, top)
    full = top[0].data.copy()
    fresh, fb, ftop = _layer(lstm_text(), impl, [x[2:], np.array([[0, 0], [1, 1.0]])])
    fresh.Forward(fb, ftop)
    np.testing.assert_allclose(full[2:, 0], ftop[0].data[:, 0], rtol=1e-12)


# -- equivalence: internal net == fused == numpy ----------------------------------
def _run(impl, bottoms, text, pd, ppd=None, steps=2, dtype=np.float32):
    expose = "expose" in text
    layer, b, top = _layer(text, impl, bottoms, dtype, seed=3,
                           num_tops=3 if expose else 1)
    if ppd is not None:
        layer.param_propagate_down = list(ppd)
    outs = []
    for k in range(steps):
        if k == 1 and not expose:
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


@pytest.mark.parametrize("extra,bottoms,pd,ppd", [
    ("", [ux(4, 3), np.array([[0, 1, 0], [1, 1, 1], [1, 0, 1], [0, 1, 1.0]])],
     [True, False], None),
    ("", [ux(3, 3), CONT_T3N3, rng.uniform(-1, 1, (3, 2, 2))], [True, False, True],
     None),
    ("expose_hidden: true", [ux(3, 2), np.ones((3, 2)), rng.uniform(-1, 1, (1, 2, H)),
                             rng.uniform(-1, 1, (1, 2, H))],
     [True, False, True, True], None),
    ("", [ux(1, 2), np.array([[1.0, 0.0]])], [True, False], None),
    ("", [ux(3, 2), np.ones((3, 2))], [False, False], [True, False, True]),
])
def test_net_and_fused_agree(extra, bottoms, pd, ppd):
    text = lstm_text(extra)
    a = _run("net", bottoms, text, pd, ppd)
    f = _run("fused", bottoms, text, pd, ppd)
    for step_a, step_f in zip(a, f, strict=True):
        for x, y in zip(step_a, step_f, strict=True):
            np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6)
    if ppd is not None:
        assert np.all(a[0][2] == 0) and np.all(f[0][2] == 0)  # b_c frozen


# -- expose_hidden -------------------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
def test_expose_hidden(impl):
    x = ux(3, 2)
    h0 = rng.uniform(-1, 1, (1, 2, H))
    c0 = rng.uniform(-1, 1, (1, 2, H))
    cont = np.array([[1, 1], [1, 0], [1, 1.0]])
    layer, b, top = _layer(lstm_text("expose_hidden: true"), impl, [x, cont, h0, c0],
                           num_tops=3)
    blobs = [bb.data.copy() for bb in layer.blobs]
    layer.Forward(b, top)
    first = top[0].data.copy()
    layer.Forward(b, top)
    np.testing.assert_array_equal(top[0].data, first)  # no carry-over
    h, h_t, c_t = lstm_reference(x, cont, blobs, h0=h0, c0=c0)
    np.testing.assert_allclose(top[0].data, h, rtol=1e-10)
    np.testing.assert_allclose(top[1].data, h_t, rtol=1e-10)
    np.testing.assert_allclose(top[2].data, c_t, rtol=1e-10)
    np.testing.assert_array_equal(top[1].data[0], top[0].data[-1])
    b[2].diff[...] = 5
    b[3].diff[...] = 5
    for t in top:
        t.diff[...] = 1
    layer.Backward(top, [True, False, True, True], b)
    assert np.all(b[2].diff == 0) and np.all(b[3].diff == 0)


@pytest.mark.parametrize("impl", IMPLS)
def test_exposed_state_tops_get_no_gradient(impl):
    """Caffe shares only data with h_T/c_T: their diffs do not reach x."""
    bottoms = [ux(2, 2), np.ones((2, 2)), np.zeros((1, 2, H)), np.zeros((1, 2, H))]
    layer, b, top = _layer(lstm_text("expose_hidden: true"), impl, bottoms,
                           num_tops=3)
    layer.Forward(b, top)
    top[0].diff[...] = 0
    top[1].diff[...] = 1
    top[2].diff[...] = 1
    layer.Backward(top, [True, False, False, False], b)
    assert np.all(b[0].diff == 0)


# -- weights through .caffemodel, lr_mult 0 --------------------------------------------
NET = """
name: "l"
layer {{ name: "x" type: "Input" top: "x"
  input_param {{ shape {{ dim: 3 dim: 2 dim: 4 }} }} }}
layer {{ name: "cont" type: "Input" top: "cont"
  input_param {{ shape {{ dim: 3 dim: 2 }} }} }}
layer {{ name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h" {params}
  recurrent_param {{ num_output: 5 {fill} }} }}
layer {{ name: "loss" type: "Reduction" bottom: "h" top: "loss" loss_weight: 1
  reduction_param {{ operation: SUMSQ }} }}
"""


def _net(tmp_path, impl, monkeypatch, params=""):
    monkeypatch.setenv("RECAFFE_RECURRENT_IMPL", impl)
    path = tmp_path / "net.prototxt"
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
    dst.copy_from(str(tmp_path / "w.caffemodel"))
    for a, b in zip(src.params["lstm"], dst.params["lstm"], strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    _feed(dst)
    np.testing.assert_allclose(dst.forward()["loss"], out, rtol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_lr_mult_zero_is_honoured(tmp_path, monkeypatch, impl):
    net = _net(tmp_path, impl, monkeypatch, "param { lr_mult: 1 } param { lr_mult: 1 } "
               "param { lr_mult: 0 }")
    _feed(net)
    net.clear_param_diffs()
    net.forward()
    net.backward()
    diffs = [np.abs(p.diff).sum() for p in net.params["lstm"]]
    assert diffs[2] == 0 and diffs[0] > 0 and diffs[1] > 0  # W_hc frozen


# -- typed errors -------------------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
def test_shape_errors(impl):
    def setup(bottoms, extra="", num_tops=1):
        return _layer(lstm_text(extra), impl, bottoms, num_tops=num_tops)

    msg = (r"^LSTM layer 'lstm1': bottom\[1\] 'cont' must have 2 axes \(T x N\), "
           r"got shape \(20, 4, 1\)$")
    with pytest.raises(ShapeError, match=msg):
        setup([rng.uniform(size=(20, 4, 3)), np.zeros((20, 4, 1))])
    with pytest.raises(ShapeError, match=r"bottom\[0\] 'x' must have at least 3 axes"):
        setup([np.zeros((320, 1)), np.zeros((320, 1))])
    with pytest.raises(ShapeError, match=r"bottom\[3\] 'c_0' .* must have shape "
                       r"\(1, N, H\) = \(1, 2, 7\), got \(1, 3, 7\)"):
        setup([ux(3, 2), np.zeros((3, 2)), np.zeros((1, 2, H)), np.zeros((1, 3, H))],
              "expose_hidden: true", 3)
    with pytest.raises(LayerSetupError, match="exactly 3 top"):
        setup([ux(3, 2), np.zeros((3, 2)), np.zeros((1, 2, H)), np.zeros((1, 2, H))],
              "expose_hidden: true", 1)
    with pytest.raises(ShapeError, match=r"bottom\[2\] 'x_static' must have at least"):
        setup([ux(3, 2), np.zeros((3, 2)), np.zeros(2)])
    layer, _, top = setup([ux(3, 2), np.zeros((3, 2))])
    with pytest.raises(ShapeError, match="input number of timesteps changed"):
        layer.Forward(make_blobs([ux(2, 2), np.zeros((2, 2))], np.float64), top)
    with pytest.raises(ShapeError, match="features per step"):
        layer.Forward(make_blobs([rng.uniform(size=(3, 2, 5)), np.zeros((3, 2))],
                                 np.float64), top)


def test_allow_force_backward():
    layer, _, _ = _layer(lstm_text(), "fused", [ux(1, 1), np.zeros((1, 1))])
    assert [layer.allow_force_backward(i) for i in range(2)] == [True, False]


class TestLSTMForwardOnly(TestLSTM):
    """The battery with ``forward_only`` set (a layer no backward pass reaches):
    the forward keeps one step's arrays; a backward still called recomputes."""

    def build(self, case, dtype, seed=1701):
        layer, bottom, top = super().build(case, dtype, seed)
        layer.forward_only = True
        return layer, bottom, top


@pytest.mark.parametrize("kernels", ["1", "0"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_only_equals_training_forward(monkeypatch, kernels, dtype):
    """Bit for bit, with the numba kernels and with the numpy fallback; nothing
    per step is kept; the carried state advances the same."""
    monkeypatch.setenv("RECAFFE_CPU_KERNELS", kernels)
    x, cont = ux(6, 4), np.array([[0, 1, 1, 0]] + [[1, 1, 0, 1]] * 5, dtype=float)
    outs = []
    for fo in (False, True):
        layer, bottom, top = _layer(lstm_text(), "fused", [x, cont], dtype)
        layer.forward_only = fo
        got = []
        for _ in range(2):  # the second call starts from the carried state
            layer.forward(bottom, top)
            got.append(top[0].data.copy())
        assert (layer._kept is None) == fo
        outs.append(got)
    for a, b in zip(*outs, strict=True):
        assert a.dtype == dtype
        np.testing.assert_array_equal(a, b)


def test_test_phase_net_marks_layers_forward_only():
    from recaffe.net import TEST  # noqa: PLC0415

    text = ('layer { name: "in" type: "Input" top: "x" top: "cont" top: "y" '
            'input_param { shape { dim: 3 dim: 2 dim: 4 } shape { dim: 3 dim: 2 } '
            'shape { dim: 3 dim: 2 dim: 7 } } } '
            f'layer {{ {lstm_text()} bottom: "x" bottom: "cont" top: "h" }} '
            'layer { name: "loss" type: "EuclideanLoss" bottom: "h" bottom: "y" '
            'top: "loss" include { phase: TRAIN } }')
    from recaffe.io.prototxt import parse_prototxt  # noqa: PLC0415
    from recaffe.proto import caffe_pb2  # noqa: PLC0415

    param = parse_prototxt(text, caffe_pb2.NetParameter)
    train, test = Net(param, TRAIN), Net(param, TEST)
    assert [layer.forward_only for layer in train.layers_list] == [True, False, False]
    assert [layer.forward_only for layer in test.layers_list] == [True, True]
