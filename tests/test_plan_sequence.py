"""Unrolled LSTM recurrences run as one step (recaffe.plan.sequence).

With ``share_buffers`` on, the plan hands an unrolled LSTM (a recurrent
cell, or any net with the same layers) to the ``LSTM`` layer's engine. Each
net is trained with the recurrence recognised and with it left to the
per-step layers (both with sharing on); losses, outputs, parameters and
gradients must agree to float32 rounding, with every engine path taken:
oneDNN's primitives (cont 1 after the first step), the layer's own loop
(a sequence boundary inside the batch), and the forward-only paths.
"""

from __future__ import annotations

import numpy as np
import pytest
from shared_nets import FILLER, feed_lm, sgd_steps
from shared_nets import unrolled_lm as lm_net

import recaffe as caffe
from recaffe import layers as L
from recaffe.backend import onednn
from recaffe.errors import NetError
from recaffe.plan import ExecutionPlan, sequence
from recaffe.recurrent.cells.lstm import lstm

pytestmark = pytest.mark.skipif(
    not sequence.usable(np), reason="needs oneDNN or numba (the engine's fast paths)")


@pytest.fixture(params=["onednn", "own loop"])
def engine(request, monkeypatch):
    """Which engine path runs a boundary-free batch."""
    if request.param == "onednn":
        if not onednn.available():
            pytest.skip("oneDNN is not installed")
        onednn.set_enabled(True)
    else:
        onednn.set_enabled(False)
    yield request.param
    onednn.set_enabled(True)


def _feed(net, seed=0, boundary=False):
    feed_lm(net, seed, boundary)


def _net(param, fuse, monkeypatch, phase=caffe.TRAIN, seed=0):
    """``param`` built with the recurrence recognised (``fuse``) or left to
    the per-step layers, from one seed, with sharing on."""
    monkeypatch.setattr(ExecutionPlan, "fuse_sequences", fuse)
    caffe.set_random_seed(seed)
    net = caffe.Net(param, phase)
    net.share_buffers = True
    return net


def _train(param, fuse, monkeypatch, steps=3, lr=0.5, boundary=False):
    net = _net(param, fuse, monkeypatch, caffe.TRAIN, 0)
    return net, sgd_steps(net, steps, lr, lambda n, it: _feed(n, it, boundary))


def _assert_close_training(param, monkeypatch, boundary=False, steps=3):
    a, la = _train(param, False, monkeypatch, steps, boundary=boundary)
    b, lb = _train(param, True, monkeypatch, steps, boundary=boundary)
    np.testing.assert_allclose(lb, la, rtol=2e-5)
    for pa, pb in zip(a.learnable_params, b.learnable_params, strict=True):
        scale = float(np.abs(pa.diff).max()) + 1e-12
        np.testing.assert_allclose(pb.diff, pa.diff, rtol=0, atol=1e-4 * scale)
        np.testing.assert_allclose(pb.data, pa.data, rtol=0, atol=1e-5)
    assert a.plan.sequences == []
    return a, b


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("boundary", [False, True], ids=["no-reset", "reset"])
def test_training_matches_the_per_step_layers(layers, boundary, engine, monkeypatch):
    _, b = _assert_close_training(lm_net(T=7, N=4, V=5, H=8, layers=layers),
                                  monkeypatch, boundary)
    seqs = b.plan.sequences
    assert [s.name for s in seqs] == [
        f"lstm{k}_x_transform .. lstm{k}_unit_t7" for k in range(1, layers + 1)]
    dnnl = engine == "onednn" and not boundary
    assert all(s.engine._by_onednn == dnnl for s in seqs)
    # What the step does not compute counts as shared; what it writes does not.
    shared = set(b.shared_blob_names)
    assert {"lstm1_gate_input_t3", "lstm1_c_t2", "lstm1_W_xc_x"} <= shared
    assert not {"h1", "lstm1_c_t7", "x", "loss"} & shared
    assert "LSTM sequence x7: lstm1_x_transform .. lstm1_unit_t7" in \
        b.plan.describe().splitlines()


def test_forward_only_net_outputs(engine, monkeypatch):
    param = lm_net(T=6, N=3, V=5, H=8, layers=2, train=False)
    outs = []
    for fuse in (False, True):
        net = _net(param, fuse, monkeypatch, caffe.TEST, 1)
        prob = net.blobs["prob"]
        _feed(net, 2)
        net.forward()
        outs.append(prob.data.copy())
        if fuse:
            assert len(net.plan.sequences) == 2
            assert all(s.engine.forward_only for s in net.plan.sequences)
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-5, atol=1e-7)


def test_solver_trajectory(monkeypatch, tmp_path):
    path = tmp_path / "lm.prototxt"
    path.write_text(str(lm_net(T=5, N=3, V=5, H=6)))
    losses = []
    for fuse in (False, True):
        monkeypatch.setattr(ExecutionPlan, "fuse_sequences", fuse)
        caffe.set_random_seed(2)
        sp = tmp_path / "solver.prototxt"
        sp.write_text(f'net: "{path}" base_lr: 0.3 momentum: 0.9 lr_policy: "fixed" '
                      'max_iter: 10 display: 0 random_seed: 2')
        s = caffe.SGDSolver(str(sp))
        s.net.share_buffers = True
        run = []
        for it in range(6):
            _feed(s.net, it)
            s.step(1)
            run.append(float(s.net.blobs["loss"].data))
        losses.append(run)
        assert bool(s.net.plan.sequences) == fuse
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)


def test_a_looked_up_intermediate_blob_keeps_the_per_step_layers(monkeypatch):
    param = lm_net(T=5, N=2, V=4, H=6)
    monkeypatch.setattr(ExecutionPlan, "fuse_sequences", True)
    vals = []
    for share in (False, True):
        caffe.set_random_seed(0)
        net = caffe.Net(param, caffe.TRAIN)
        net.share_buffers = share
        c2 = net.blobs["lstm1_c_t2"]  # looked up before the first pass: kept
        _feed(net, 0)
        net.forward_prefilled()
        assert net.plan.sequences == []
        vals.append(c2.data.copy())
    np.testing.assert_array_equal(vals[1], vals[0])
    assert np.abs(vals[0]).max() > 0


def test_looking_up_a_blob_the_step_skipped_raises_once(monkeypatch):
    monkeypatch.setattr(ExecutionPlan, "fuse_sequences", True)
    net = caffe.Net(lm_net(T=5, N=2, V=4, H=6), caffe.TRAIN)
    net.share_buffers = True
    _feed(net)
    net.forward()
    assert net.plan.sequences
    with pytest.raises(NetError, match="lstm1_gate_input_t3"):
        net.blobs["lstm1_gate_input_t3"]  # noqa: B018
    net.forward()  # per-step layers for that recurrence from now on
    assert net.plan.sequences == []
    g = net.blobs["lstm1_gate_input_t3"].data
    assert np.abs(g).max() > 0
    # A partial pass that would read a skipped blob is refused too.
    net2 = caffe.Net(lm_net(T=5, N=2, V=4, H=6), caffe.TRAIN)
    net2.share_buffers = True
    _feed(net2)
    net2.forward()
    with pytest.raises(NetError, match="shares its array"):
        net2.forward(start="lstm1_unit_t3")


def test_outputs_written_by_the_step(monkeypatch):
    """h (every step, through the Concat) and the last c are the engine's."""
    param = lm_net(T=6, N=3, V=4, H=5)
    vals = []
    for fuse in (False, True):
        net = _net(param, fuse, monkeypatch, caffe.TRAIN, 4)
        h, c, h3 = net.blobs["h1"], net.blobs["lstm1_c_t6"], net.blobs["lstm1_h_t3"]
        _feed(net, 1)
        net.forward()
        vals.append((h.data.copy(), c.data.copy(), h3.data.copy()))
        assert bool(net.plan.sequences) == fuse
    for x, y in zip(*vals, strict=True):
        np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-7)


def _states_net(T=5, N=2, V=4, H=6, reverse=False, force=False):
    ns = caffe.NetSpec()
    ns.x, ns.cont, ns.label, ns.h0, ns.c0 = L.Input(
        shape=[dict(dim=[T, N, V]), dict(dim=[T, N]), dict(dim=[T, N]),
               dict(dim=[1, N, H]), dict(dim=[1, N, H])], ntop=5)
    r = lstm(ns.x, ns.cont, T, H, N=N, name="lstm1", weight_filler=FILLER,
             states=[ns.h0, ns.c0], reverse=reverse, ns=ns)
    ns.h1 = r.output
    ns.logits = L.InnerProduct(ns.h1, axis=2, num_output=V, weight_filler=FILLER)
    ns.loss = L.SoftmaxWithLoss(ns.logits, ns.label, softmax_param=dict(axis=2))
    p = ns.to_proto()
    p.force_backward = force
    return p


@pytest.mark.parametrize("case", ["states", "force-backward", "reverse"])
def test_given_states_reversed_cells_and_forced_gradients(case, monkeypatch):
    """Given states and a reversed cell run as one step; ``force_backward``
    (a gradient into cont, which the engine has not) stays per step."""
    param = _states_net(reverse=case == "reverse", force=case == "force-backward")
    nets = []
    for fuse in (False, True):
        net = _net(param, fuse, monkeypatch, caffe.TRAIN, 0)
        for k, name in enumerate(("h0", "c0")):
            net.blobs[name].data[...] = 0.1 * (k + 1)
        _feed(net, 3)
        net.blobs["cont"].data[0] = 1  # the given states count
        net.forward()
        net.backward()
        nets.append(net)
    a, b = nets
    assert bool(b.plan.sequences) == (case != "force-backward")
    for name in ("h1", "loss"):
        np.testing.assert_allclose(b.blobs[name].data, a.blobs[name].data, rtol=1e-5,
                                   atol=1e-7)
    if case == "force-backward":
        assert np.abs(a.blobs["c0"].diff).max() > 0
        for name in ("h0", "c0"):
            np.testing.assert_allclose(b.blobs[name].diff, a.blobs[name].diff,
                                       rtol=1e-5, atol=1e-8)
    for pa, pb in zip(a.learnable_params, b.learnable_params, strict=True):
        np.testing.assert_allclose(pb.diff, pa.diff, rtol=1e-4, atol=1e-7)


def test_plan_building_draws_no_random_numbers(monkeypatch):
    """A Dropout after the LSTM draws the same masks with and without the
    recurrence recognised."""
    T, N, V, H = 5, 3, 4, 6
    ns = caffe.NetSpec()
    ns.x, ns.cont, ns.label = L.Input(
        shape=[dict(dim=[T, N, V]), dict(dim=[T, N]), dict(dim=[T, N])], ntop=3)
    r = lstm(ns.x, ns.cont, T, H, N=N, name="lstm1", weight_filler=FILLER, ns=ns)
    ns.d = L.Dropout(r.output, dropout_ratio=0.5)
    ns.logits = L.InnerProduct(ns.d, axis=2, num_output=V, weight_filler=FILLER)
    ns.loss = L.SoftmaxWithLoss(ns.logits, ns.label, softmax_param=dict(axis=2))
    _assert_close_training(ns.to_proto(), monkeypatch)


def test_without_a_fast_engine_nothing_is_recognised(monkeypatch):
    monkeypatch.setattr(sequence, "usable", lambda xp: False)
    net = caffe.Net(lm_net(), caffe.TRAIN)
    net.share_buffers = True
    _feed(net)
    net.forward()
    assert net.plan.sequences == []


def test_sharing_off_leaves_the_layers_alone():
    net = caffe.Net(lm_net(), caffe.TRAIN)
    net.share_buffers = False
    _feed(net)
    net.forward()
    assert net.plan.sequences == []
    assert net.shared_blob_names == []


def test_a_new_batch_size_makes_a_new_engine(monkeypatch):
    """N changes with the inputs: the plan (and its engine) is made again and
    still matches the per-step layers."""
    T, V, H = 5, 4, 6
    param = _states_net(T=T, N=2, V=V, H=H)
    outs = []
    for fuse in (False, True):
        net = _net(param, fuse, monkeypatch, caffe.TRAIN, 6)
        h = net.blobs["h1"]
        run = []
        for n in (2, 3):
            for name, shape in (("x", (T, n, V)), ("cont", (T, n)), ("label", (T, n)),
                                ("h0", (1, n, H)), ("c0", (1, n, H))):
                net.blobs[name].reshape(*shape)
            net.blobs["h0"].data[...] = 0.2
            net.blobs["c0"].data[...] = -0.1
            _feed(net, n)
            net.forward()
            net.backward()
            assert bool(net.plan.sequences) == fuse
            assert [s.N for s in net.plan.sequences] == ([n] if fuse else [])
            run.append((h.data.copy(), [p.diff.copy() for p in net.learnable_params]))
        outs.append(run)
    for (ha, ga), (hb, gb) in zip(*outs, strict=True):
        np.testing.assert_allclose(hb, ha, rtol=1e-5, atol=1e-7)
        for x, y in zip(ga, gb, strict=True):
            np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-7)


def test_the_unroll_commands_prototxt(monkeypatch):
    """A net read from prototxt (``recaffe unroll --cell lstm``'s output):
    the pattern is found by the layers, not by their names."""
    from pathlib import Path  # noqa: PLC0415

    path = str(Path(__file__).parent / "golden" / "unrolled_lstm_T3.prototxt")
    outs = []
    for fuse in (False, True):
        net = _net(path, fuse, monkeypatch, caffe.TEST, 1)
        rng = np.random.default_rng(0)
        net.blobs["x"].data[...] = rng.normal(size=net.blobs["x"].shape)
        net.blobs["cont"].data[...] = 1
        out = net.forward()
        assert len(net.plan.sequences) == int(fuse)
        outs.append({k: v.copy() for k, v in out.items()})
    assert set(outs[0]) == {"lstm_h", "lstm_c_t3"}
    for k, v in outs[0].items():
        np.testing.assert_allclose(outs[1][k], v, rtol=1e-5, atol=1e-7)


def _classifier(T=6, N=3, V=5, H=7, C=4):
    """Many-to-one: the last step's h only (no Concat) -> InnerProduct ->
    SoftmaxWithLoss over N labels."""
    ns = caffe.NetSpec()
    ns.x, ns.cont, ns.label = L.Input(
        shape=[dict(dim=[T, N, V]), dict(dim=[T, N]), dict(dim=[1, N])], ntop=3)
    r = lstm(ns.x, ns.cont, T, H, N=N, name="lstm1", weight_filler=FILLER,
             return_last=True, ns=ns)
    ns.h_T = r.output
    ns.logits = L.InnerProduct(ns.h_T, axis=2, num_output=C, weight_filler=FILLER)
    ns.loss = L.SoftmaxWithLoss(ns.logits, ns.label, softmax_param=dict(axis=2))
    return ns.to_proto()


def _feed_classifier(net, seed, boundary=False):
    feed_lm(net, seed, boundary)
    rng = np.random.default_rng(seed)
    net.blobs["label"].data[...] = rng.integers(0, 4, net.blobs["label"].shape)


@pytest.mark.parametrize("boundary", [False, True], ids=["no-reset", "reset"])
def test_a_classifier_reading_only_the_last_h(boundary, engine, monkeypatch):
    param = _classifier()
    runs = []
    for fuse in (False, True):
        net = _net(param, fuse, monkeypatch)
        losses = sgd_steps(net, 3, 0.5, lambda n, it: _feed_classifier(n, it, boundary))
        # a second backward after one forward sees the same gradients
        net.clear_param_diffs()
        net.backward()
        grads = [p.diff.copy() for p in net.learnable_params]
        net.clear_param_diffs()
        net.backward()
        for g, p in zip(grads, net.learnable_params, strict=True):
            np.testing.assert_array_equal(p.diff, g)
        runs.append((losses, grads, [p.data.copy() for p in net.learnable_params]))
        assert [s.name for s in net.plan.sequences] == (
            ["lstm1_x_transform .. lstm1_unit_t6"] if fuse else [])
    (la, ga, pa), (lb, gb, pb) = runs
    np.testing.assert_allclose(lb, la, rtol=2e-5)
    for x, y in zip(ga + pa, gb + pb, strict=True):
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-6)


def _seq2seq(T=5, T2=4, N=3, V=5, H=6, enc_output=True):
    """An encoder LSTM whose final states start a decoder LSTM: gradients
    flow into the decoder's initial states and out of the encoder's final
    ones (its h_T through a Split; with ``enc_output`` its every h feeds a
    loss of its own too)."""
    ns = caffe.NetSpec()
    ns.x, ns.cont, ns.x2, ns.cont2, ns.label = L.Input(
        shape=[dict(dim=[T, N, V]), dict(dim=[T, N]), dict(dim=[T2, N, V]),
               dict(dim=[T2, N]), dict(dim=[T2, N])], ntop=5)
    enc = lstm(ns.x, ns.cont, T, H, N=N, name="enc", weight_filler=FILLER, ns=ns)
    dec = lstm(ns.x2, ns.cont2, T2, H, name="dec", weight_filler=FILLER,
               states=list(enc.states), ns=ns)
    ns.h_dec = dec.output
    ns.logits = L.InnerProduct(ns.h_dec, axis=2, num_output=V, weight_filler=FILLER)
    ns.loss = L.SoftmaxWithLoss(ns.logits, ns.label, softmax_param=dict(axis=2))
    if enc_output:
        ns.h_enc = enc.output
        ns.enc_loss = L.Reduction(ns.h_enc, operation=4, loss_weight=0.5)  # MEAN
    return ns.to_proto()


def _feed_seq2seq(net, seed, boundary=False):
    rng = np.random.default_rng(seed)
    for x, cont in (("x", "cont"), ("x2", "cont2")):
        net.blobs[x].data[...] = rng.normal(size=net.blobs[x].shape)
        c = np.ones(net.blobs[cont].shape, np.float32)
        if x == "x":
            c[0] = 0
        if boundary:
            c[c.shape[0] // 2, 0] = 0
        net.blobs[cont].data[...] = c
    net.blobs["label"].data[...] = rng.integers(0, 5, net.blobs["label"].shape)


@pytest.mark.parametrize("enc_output", [True, False], ids=["enc-h-used", "states-only"])
@pytest.mark.parametrize("boundary", [False, True], ids=["no-reset", "reset"])
def test_gradients_through_the_states_of_a_seq2seq(enc_output, boundary, engine,
                                                   monkeypatch):
    param = _seq2seq(enc_output=enc_output)
    runs = []
    for fuse in (False, True):
        net = _net(param, fuse, monkeypatch)
        losses = sgd_steps(net, 3, 0.3, lambda n, it: _feed_seq2seq(n, it, boundary))
        runs.append((losses, [p.diff.copy() for p in net.learnable_params],
                     [p.data.copy() for p in net.learnable_params]))
        names = [s.name for s in net.plan.sequences]
        assert names == (["enc_x_transform .. enc_unit_t5",
                          "dec_x_transform .. dec_unit_t4"] if fuse else [])
    (la, ga, pa), (lb, gb, pb) = runs
    np.testing.assert_allclose(lb, la, rtol=2e-5)
    for x, y in zip(ga + pa, gb + pb, strict=True):
        scale = float(np.abs(x).max()) + 1e-12
        np.testing.assert_allclose(y, x, rtol=0, atol=1e-4 * scale)


def _bidirectional_lm(T=6, N=3, V=5, H=6):
    """Two stacked bidirectional LSTM layers (the second one's input needs a
    gradient, which the reversed engine hands back in time order)."""
    from recaffe.recurrent.cells import bidirectional  # noqa: PLC0415
    from recaffe.recurrent.cells.lstm import LSTMCell  # noqa: PLC0415

    ns = caffe.NetSpec()
    ns.x, ns.cont, ns.label = L.Input(
        shape=[dict(dim=[T, N, V]), dict(dim=[T, N]), dict(dim=[T, N])], ntop=3)
    b1 = bidirectional(LSTMCell(H, "f1", FILLER), LSTMCell(H, "r1", FILLER), ns.x, T,
                       cont=ns.cont, N=N, name="bi1", ns=ns)
    b2 = bidirectional(LSTMCell(H, "f2", FILLER), LSTMCell(H, "r2", FILLER),
                       b1.output, T, cont=ns.cont, N=N, name="bi2", ns=ns)
    ns.logits = L.InnerProduct(b2.output, axis=2, num_output=V, weight_filler=FILLER)
    ns.loss = L.SoftmaxWithLoss(ns.logits, ns.label, softmax_param=dict(axis=2))
    return ns.to_proto()


@pytest.mark.parametrize("boundary", [False, True], ids=["no-reset", "reset"])
def test_stacked_bidirectional_lstms(boundary, engine, monkeypatch):
    _, b = _assert_close_training(_bidirectional_lm(), monkeypatch, boundary)
    names = [s.name for s in b.plan.sequences]
    assert sorted(names) == [f"{c}_x_transform .. {c}_unit_t{t}"
                             for c, t in (("f1", 6), ("f2", 6), ("r1", 1), ("r2", 1))]
    dnnl = engine == "onednn" and not boundary
    assert all(s.engine._by_onednn == dnnl for s in b.plan.sequences)


def test_reversed_classifier_and_forward_only(monkeypatch):
    """A reversed cell read only at its last step (t = 1), trained; and the
    bidirectional net forward-only."""
    T, N, V, H = 5, 3, 4, 6
    ns = caffe.NetSpec()
    ns.x, ns.cont, ns.label = L.Input(
        shape=[dict(dim=[T, N, V]), dict(dim=[T, N]), dict(dim=[1, N])], ntop=3)
    r = lstm(ns.x, ns.cont, T, H, N=N, name="lstm1", weight_filler=FILLER,
             reverse=True, return_last=True, ns=ns)
    ns.logits = L.InnerProduct(r.output, axis=2, num_output=V, weight_filler=FILLER)
    ns.loss = L.SoftmaxWithLoss(ns.logits, ns.label, softmax_param=dict(axis=2))
    _, b = _assert_close_training(ns.to_proto(), monkeypatch, boundary=True)
    assert [s.name for s in b.plan.sequences] == ["lstm1_x_transform .. lstm1_unit_t1"]

    param = _bidirectional_lm()
    param.layer[0].input_param.shape.pop()  # no label: TEST phase, no loss
    param.layer[0].top.pop()
    del param.layer[-1]
    outs = []
    for fuse in (False, True):
        net = _net(param, fuse, monkeypatch, caffe.TEST, 3)
        logits = net.blobs["logits"]
        _feed(net, 1, boundary=True)
        net.forward()
        outs.append(logits.data.copy())
        assert len(net.plan.sequences) == 4 * fuse
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-5, atol=1e-6)


def test_forward_asked_for_an_intermediate_blob(monkeypatch):
    """``net.forward(blobs=[...])`` naming a blob the step skips gets its
    values: the recurrence runs step by step for that pass on."""
    param = lm_net(T=5, N=2, V=4, H=6)
    ref = _net(param, False, monkeypatch)
    ref.share_buffers = False
    _feed(ref, 0)
    want = ref.forward(blobs=["lstm1_c_t2"])["lstm1_c_t2"].copy()
    net = _net(param, True, monkeypatch)
    _feed(net, 0)
    net.forward()
    assert net.plan.sequences
    got = net.forward(blobs=["lstm1_c_t2"])["lstm1_c_t2"]
    assert net.plan.sequences == []
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
