"""Buffer sharing (``Net.share_buffers``, recaffe.plan.sharing).

Each net is built twice from one seed, once with sharing off and once on;
losses, parameters and parameter gradients after several SGD steps (and the
outputs of forward-only nets) must be equal bit for bit: sharing changes
where values live, never the operations. (Running a recognised LSTM
recurrence as one step, which sharing also allows, changes the operations:
it is off here and tested in test_plan_sequence.py.)
"""

from __future__ import annotations

import numpy as np
import pytest
from shared_nets import FILLER, sgd_steps
from shared_nets import feed_lm as _feed
from shared_nets import unrolled_lm as lm_net

import recaffe as caffe
from recaffe import layers as L
from recaffe.errors import NetError
from recaffe.plan import ExecutionPlan, sharing
from recaffe.recurrent.cells import bidirectional, stack
from recaffe.recurrent.cells.lstm import LSTMCell, lstm


@pytest.fixture(autouse=True)
def _no_sequences(monkeypatch):
    monkeypatch.setattr(ExecutionPlan, "fuse_sequences", False)


def _train(param, share, steps=3, lr=0.5):
    caffe.set_random_seed(0)
    net = caffe.Net(param, caffe.TRAIN)
    net.share_buffers = share
    return net, sgd_steps(net, steps, lr)


def _assert_same_training(param, steps=3):
    a, la = _train(param, False, steps)
    b, lb = _train(param, True, steps)
    assert la == lb
    for pa, pb in zip(a.learnable_params, b.learnable_params, strict=True):
        np.testing.assert_array_equal(pa.diff, pb.diff)
        np.testing.assert_array_equal(pa.data, pb.data)
    assert a.shared_blob_names == []
    assert b.shared_blob_names, "nothing was shared"
    return a, b


def _blob(net, name):
    """A blob without looking it up in ``net.blobs`` (which keeps it unshared)."""
    return net.blob_list[net.blob_names.index(name)]


def _shared(net, kind):
    """Names of the blobs whose data (or diff) shares an array."""
    sh = net._sharing
    ids = sh.data_ids if kind == "data" else sh.diff_ids
    return {net.blob_names[b] for b in ids}


def _distinct_arrays(net, kind="data"):
    """Number of distinct buffers behind the net's blobs."""
    return len({id(getattr(b, "_dbuf" if kind == "data" else "_gbuf"))
                for b in net.blob_list if (b._dbuf if kind == "data" else b._gbuf)
                is not None})


@pytest.mark.parametrize("layers", [1, 2])
def test_unrolled_lstm_training_is_bitwise_unchanged(layers):
    a, b = _assert_same_training(lm_net(layers=layers))
    data, diff = _shared(b, "data"), _shared(b, "diff")
    # Every step's gate input and h W_hc^T (data), the h and c diffs.
    assert {f"lstm1_gate_input_t{t}" for t in range(1, 7)} <= data
    assert {f"lstm1_transform_t{t}" for t in range(1, 7)} <= data
    assert {f"lstm1_c_t{t}" for t in range(1, 6)} <= diff
    assert {f"lstm1_h_t{t}" for t in range(1, 6)} <= diff
    assert _distinct_arrays(b) < _distinct_arrays(a)
    assert _distinct_arrays(b, "diff") < _distinct_arrays(a, "diff")
    # Never shared: inputs, outputs, losses, what a backward reads.
    for name in ("x", "cont", "label", "loss", "logits"):
        assert name not in data | diff
    assert f"h{layers}" not in data  # the decoder's weight gradient reads it
    for t in range(1, 7):
        assert f"lstm1_h_conted_t{t}" not in data  # the W_hc gradient's input
        assert f"lstm1_c_t{t}" not in data  # the next unit's backward reads it
    assert _blob(b, "lstm1_transform_t2")._dbuf is _blob(b, "lstm1_transform_t5")._dbuf


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_other_cells_training_is_bitwise_unchanged(cell):
    _assert_same_training(lm_net(cell=cell, layers=2))


def test_stacked_and_bidirectional_cells():
    T, N, V, H = 5, 2, 4, 6
    ns = caffe.NetSpec()
    ns.x, ns.cont, ns.label = L.Input(
        shape=[dict(dim=[T, N, V]), dict(dim=[T, N]), dict(dim=[T, N])], ntop=3)
    rs = stack([LSTMCell(H, "a", FILLER), LSTMCell(H, "b", FILLER)], ns.x, T,
               cont=ns.cont, N=N, ns=ns)
    bi = bidirectional(LSTMCell(H, "f", FILLER), LSTMCell(H, "r", FILLER),
                       rs[-1].output, T, cont=ns.cont, N=N, ns=ns)
    ns.logits = L.InnerProduct(bi.output, axis=2, num_output=V, weight_filler=FILLER)
    ns.loss = L.SoftmaxWithLoss(ns.logits, ns.label, softmax_param=dict(axis=2))
    _assert_same_training(ns.to_proto())


def test_talk_net_with_fused_sum_sigmoid():
    from shared_nets import talk_manual_net  # noqa: PLC0415

    param = talk_manual_net(6, 4, 5)

    def run(share):
        caffe.set_random_seed(0)
        net = caffe.Net(param, caffe.TRAIN)
        net.share_buffers = share
        rng = np.random.default_rng(3)
        out = []
        for _ in range(3):
            net.blobs["data"].data[...] = rng.integers(0, 2, net.blobs["data"].shape)
            net.blobs["label"].data[...] = rng.integers(0, 2, net.blobs["label"].shape)
            net.clear_param_diffs()
            out.append(net.forward_prefilled())
            net.backward_all()
            for p in net.learnable_params:
                p.data -= 0.3 * p.diff
        return out, [p.data.copy() for p in net.learnable_params], net
    la, pa, _ = run(False)
    lb, pb, net = run(True)
    assert la == lb
    for x, y in zip(pa, pb, strict=True):
        np.testing.assert_array_equal(x, y)
    assert net.shared_blob_names


def test_forward_only_net_outputs_unchanged_and_smaller():
    param = lm_net(T=8, layers=2, train=False)
    outs, nets = [], []
    for share in (False, True):
        caffe.set_random_seed(0)
        net = caffe.Net(param, caffe.TEST)
        net.share_buffers = share
        _feed(net)
        for _ in range(2):
            outs.append(net.forward()["prob"].copy())
        nets.append(net)
    np.testing.assert_array_equal(outs[1], outs[3])
    np.testing.assert_array_equal(outs[0], outs[2])
    shared = _shared(nets[1], "data")
    # No backward: h W^T, the gate inputs, c and h*cont all share.
    assert "lstm2_h_conted_t4" in shared and "lstm2_c_t4" in shared
    assert not shared & {"prob", "x", "cont"}
    assert _distinct_arrays(nets[1]) < _distinct_arrays(nets[0]) - 4 * 8


def test_second_backward_sees_the_same_values():
    param = lm_net(layers=2)
    grads = []
    for share in (False, True):
        caffe.set_random_seed(0)
        net = caffe.Net(param, caffe.TRAIN)
        net.share_buffers = share
        _feed(net)
        net.clear_param_diffs()
        net.forward_prefilled()
        net.backward_all()
        net.backward_all()  # accumulates the same gradients again
        grads.append([p.diff.copy() for p in net.learnable_params])
    for x, y in zip(*grads, strict=True):
        np.testing.assert_array_equal(x, y)


def test_partial_passes_reading_shared_blobs_are_refused():
    caffe.set_random_seed(0)
    net = caffe.Net(lm_net(), caffe.TRAIN)
    net.share_buffers = True
    _feed(net)
    net.forward()
    net.backward()
    assert "lstm1_gate_input_t3" in net.shared_blob_names
    # Starting at the unit reads the gate input the last pass left there.
    with pytest.raises(NetError, match=r"lstm1_gate_input_t3.*share_buffers"):
        net.forward(start="lstm1_unit_t3")
    net.forward()
    net.backward()
    with pytest.raises(NetError, match="diff of blob 'lstm1_c_t3'"):
        net.backward(start="lstm1_unit_t3")
    # Passes that read only unshared blobs run; a partial pass from the
    # start gives the whole net's values.
    loss = net.forward()["loss"].copy()
    assert net.forward(end="loss")["loss"] == loss
    # Turning sharing off gives every blob its own array again.
    net.share_buffers = False
    net.forward()
    assert net.shared_blob_names == []
    out = net.forward(start="lstm1_unit_t3", blobs=["lstm1_transform_t2"])
    assert out["loss"] == loss


def _reference(param, names):
    caffe.set_random_seed(0)
    ref = caffe.Net(param, caffe.TEST)
    ref.share_buffers = False
    _feed(ref)
    ref.forward()
    return {n: _blob(ref, n).data.copy() for n in names}


def test_blobs_a_script_reads_keep_their_arrays():
    param = lm_net(train=False)
    ref = _reference(param, ["lstm1_h_t6", "lstm1_transform_t2", "lstm1_c_t3"])
    caffe.set_random_seed(0)
    net = caffe.Net(param, caffe.TEST)
    net.share_buffers = True
    # Looked up before the pass (a state carry's final state): never shared.
    h_last = net.blobs["lstm1_h_t6"]
    _feed(net)
    net.forward()
    assert "lstm1_h_t6" not in net.shared_blob_names
    assert "lstm1_h_t6" in net.pinned_blob_names
    np.testing.assert_array_equal(h_last.data, ref["lstm1_h_t6"])
    # Looked up after a pass that shared it: a clear error, then its own
    # array from the next pass on.
    assert "lstm1_c_t3" in net.shared_blob_names
    with pytest.raises(NetError, match=r"lstm1_c_t3.*another blob's values"):
        net.blobs["lstm1_c_t3"]  # noqa: B018
    net.forward()
    np.testing.assert_array_equal(net.blobs["lstm1_c_t3"].data, ref["lstm1_c_t3"])
    assert "lstm1_c_t3" not in net.shared_blob_names and net.shared_blob_names
    # forward(blobs=...) keeps what it returns before running.
    assert "lstm1_transform_t2" in net.shared_blob_names
    out = net.forward(blobs=["lstm1_transform_t2"])
    np.testing.assert_array_equal(out["lstm1_transform_t2"], ref["lstm1_transform_t2"])
    # Iterating the blobs with their values keeps them all.
    with pytest.raises(NetError, match="shared its array"):
        net.blobs.items()
    net.forward()
    assert net.shared_blob_names == []
    assert len(net.pinned_blob_names) == len(net.blob_names)


def test_turning_off_keeps_live_values_and_separates_arrays():
    caffe.set_random_seed(0)
    net = caffe.Net(lm_net(train=False), caffe.TEST)
    net.share_buffers = True
    _feed(net)
    prob = net.forward()["prob"].copy()
    h = net.blobs["h1"].data.copy()
    net.share_buffers = False
    np.testing.assert_array_equal(net.blobs["prob"].data, prob)
    np.testing.assert_array_equal(net.blobs["h1"].data, h)
    owners = {}
    for name, b in net.blobs.items():
        owners.setdefault(id(b._dbuf), []).append(name)
    # Only Split tops (and the Slice views) keep sharing their bottom's array.
    for names in owners.values():
        assert all("split" in n for n in names[1:]), names


def _mlp(depth=4, width=6, classes=3):
    ns = caffe.NetSpec()
    ns.x = L.Input(shape=dict(dim=[4, width]))
    h = ns.x
    for k in range(depth):
        h = L.Sigmoid(L.InnerProduct(h, num_output=width, weight_filler=FILLER,
                                     bias_filler=FILLER))
        setattr(ns, f"a{k}", h)
    ns.prob = L.Softmax(L.InnerProduct(h, num_output=classes, weight_filler=FILLER))
    return ns.to_proto()


def test_shape_change_rebuilds_with_fresh_sharing():
    def make():
        caffe.set_random_seed(0)
        return caffe.Net(_mlp(), caffe.TEST)
    rng = np.random.default_rng(0)
    x4, x7 = rng.normal(size=(4, 6)), rng.normal(size=(7, 6))
    net = make()
    net.share_buffers = True
    p4 = net.forward(x=x4)["prob"].copy()
    first = net.plan
    assert "a1" in net.shared_blob_names
    net.blobs["x"].reshape(7, 6)
    net.reshape()
    p7 = net.forward(x=x7)["prob"].copy()
    assert net.plan is not first and "a1" in net.shared_blob_names
    ref = make()
    np.testing.assert_array_equal(ref.forward(x=x4)["prob"], p4)
    ref.blobs["x"].reshape(7, 6)
    ref.reshape()
    np.testing.assert_array_equal(ref.forward(x=x7)["prob"], p7)


def test_environment_default(monkeypatch):
    monkeypatch.setenv("RECAFFE_SHARE_BUFFERS", "1")
    net = caffe.Net(lm_net(train=False), caffe.TEST)
    assert net.share_buffers
    monkeypatch.setenv("RECAFFE_SHARE_BUFFERS", "0")
    assert not caffe.Net(lm_net(train=False), caffe.TEST).share_buffers


def test_plain_lstm_unit_backward_reads_its_gate_input(monkeypatch):
    # Without the compiled kernels the LSTMUnit backward recomputes from its
    # gate input: that blob must keep its own array.
    monkeypatch.setenv("RECAFFE_CPU_KERNELS", "0")
    _, b = _assert_same_training(lm_net())
    assert "lstm1_gate_input_t3" not in _shared(b, "data")
    assert "lstm1_transform_t3" in _shared(b, "data")


def test_unknown_layers_keep_their_blobs():
    T, N, V, H = 4, 2, 3, 5
    ns = caffe.NetSpec()
    ns.x, ns.cont, ns.label = L.Input(
        shape=[dict(dim=[T, N, V]), dict(dim=[T, N]), dict(dim=[T, N])], ntop=3)
    r = lstm(ns.x, ns.cont, T, H, N=N, name="l", weight_filler=FILLER, ns=ns)
    ns.p = L.Power(r.output, power=2.0, scale=0.5)
    ns.logits = L.InnerProduct(ns.p, axis=2, num_output=V, weight_filler=FILLER)
    ns.loss = L.SoftmaxWithLoss(ns.logits, ns.label, softmax_param=dict(axis=2))
    _, b = _assert_same_training(ns.to_proto())
    assert "p" not in b.shared_blob_names


def test_a_wrong_reads_table_is_caught(monkeypatch):
    # The comparison above can fail: claiming that the LSTMUnit backward
    # reads no c_prev lets c share an array it still needs.
    monkeypatch.setitem(sharing.BACKWARD_READS, "LSTMUnit",
                        lambda layer, net, u: (frozenset({2}), frozenset()))
    a, _ = _train(lm_net(), False)
    b, _ = _train(lm_net(), True)
    assert any(not np.array_equal(pa.diff, pb.diff)
               for pa, pb in zip(a.learnable_params, b.learnable_params, strict=True))


def test_deferred_weight_gradient_path(monkeypatch):
    from recaffe.plan import ExecutionPlan  # noqa: PLC0415

    monkeypatch.setattr(ExecutionPlan, "defer_weight_grads", True)
    monkeypatch.setattr(ExecutionPlan, "_chain_rows_backward",
                        lambda self, members: None)
    _assert_same_training(lm_net(layers=2))


def test_blob_dict_is_pycaffes_ordered_mapping():
    net = caffe.Net(lm_net(train=False), caffe.TEST)
    assert list(net.blobs)[:2] == ["x", "cont"]
    assert net.blobs.get("missing") is None
    assert net.blobs.get("x") is _blob(net, "x")
    assert net.pinned_blob_names == ["x"]
    copied = net.blobs.copy()
    assert type(copied).__name__ == "OrderedDict" and list(copied) == list(net.blobs)
    assert len(net.pinned_blob_names) == len(net.blob_names)
    with pytest.raises(KeyError):
        net.blobs["missing"]  # noqa: B018
