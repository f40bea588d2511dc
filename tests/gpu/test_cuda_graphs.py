"""CUDA graphs: what is captured, when it falls back, and graph == eager.

Tests with the ``dev`` fixture run on ``cupy`` (a real device; skipped without
one) and on ``fake``, the CPU stand-in of tests/gpu/fake_device.py, whose
capture records operations without running them and replays the tape, as
CUDA does; tests with the ``fake`` fixture check what only the stand-in can
show (allocations counted by its pool, its refusals).

- the capture machinery (:mod:`recaffe.backend.cuda_graph`): recorded, not
  run; replay by address; GEMMs through the capturable BLAS; host reads and
  host random draws fail a capture with a reason; deferred input checks;
- the runner's decisions (:mod:`recaffe.graph_runner`): capture after one
  eager warm-up, replay, no allocation per replay, capture again when
  buffers or shapes change or a pass ran outside the graphs, eager with a
  reason (environment, CPU mode, Python layer, a layer that cannot be
  captured, Adam, clip_gradients), ``recaffe time``;
- equality of graph and eager results: forward, every gradient, 100 solver
  steps with a changing learning rate, the time-batched plan, and a pycaffe
  script that writes inputs and reads outputs only through ``.data`` (the
  host side of the SyncedMemory model), with the same copies per pass.
"""

from __future__ import annotations

import numpy as np
import pytest
from fake_device import FAKE, CaptureViolation
from shared_nets import char_lstm_text, talk_manual_net

import recaffe as caffe
from recaffe import backend, graph_runner
from recaffe.backend import blas, cuda_graph
from recaffe.errors import DataError
from recaffe.io.prototxt import parse_prototxt
from recaffe.net import Net
from recaffe.proto import caffe_pb2

NO_GPU = "no CUDA device / CuPy not installed"


@pytest.fixture(params=["cupy", "fake"])
def dev(request):
    backend.set_mode_cpu()
    if request.param == "cupy":
        if not backend.gpu_available():
            pytest.skip(NO_GPU)
        backend.set_mode_gpu()
        try:
            yield "cupy"
        finally:
            backend.set_mode_cpu()
        return
    with backend.device_module_scope(FAKE):
        backend.set_mode_gpu()
        try:
            yield "fake"
        finally:
            backend.set_mode_cpu()


@pytest.fixture
def fake():
    backend.set_mode_cpu()
    with backend.device_module_scope(FAKE):
        backend.set_mode_gpu()
        try:
            yield FAKE
        finally:
            backend.set_mode_cpu()


def host(a):
    return np.array(backend.to_host(a), dtype=np.float64, copy=True)


# -- nets ------------------------------------------------------------------------------
def _rnn_text(t=5, n=4, hidden=6) -> str:
    return f"""
name: "binary_addition"
layer {{ name: "in" type: "Input" top: "x" top: "cont" top: "target"
  input_param {{ shape {{ dim: {t} dim: {n} dim: 2 }} shape {{ dim: {t} dim: {n} }}
                 shape {{ dim: {t} dim: {n} dim: 1 }} }} }}
layer {{ name: "rnn" type: "RNN" bottom: "x" bottom: "cont" top: "h"
  recurrent_param {{ num_output: {hidden}
    weight_filler {{ type: "uniform" min: -0.5 max: 0.5 }} }} }}
layer {{ name: "out" type: "InnerProduct" bottom: "h" top: "logit"
  inner_product_param {{ num_output: 1 axis: 2
    weight_filler {{ type: "uniform" min: -0.5 max: 0.5 }} }} }}
layer {{ name: "loss" type: "SigmoidCrossEntropyLoss" bottom: "logit"
  bottom: "target" top: "loss" }}
"""


def _feed(net, seed=0, vocab=7):
    r = np.random.default_rng(seed)
    blobs = net.blobs
    if "ids" in blobs:
        shape = blobs["ids"].data.shape
        values = {"ids": r.integers(0, vocab, shape), "target": r.integers(0, vocab,
                                                                           shape)}
        cont = np.ones(shape)
        cont[0] = 0
        values["cont"] = cont
    elif "x" in blobs:
        shape = blobs["x"].data.shape
        values = {"x": r.integers(0, 2, shape), "target": r.integers(
            0, 2, blobs["target"].data.shape)}
        cont = np.ones(shape[:2])
        cont[0] = 0
        values["cont"] = cont
    else:
        values = {"data": r.normal(size=blobs["data"].data.shape),
                  "label": r.normal(size=blobs["label"].data.shape)}
    for k, v in values.items():
        backend.copy_into(blobs[k].data, v.astype(np.float32))


def _net(param, seed=3):
    backend.set_random_seed(seed)
    if isinstance(param, str):
        param = parse_prototxt(param, caffe_pb2.NetParameter)
    return Net(param, caffe.TRAIN)


def _snapshot(net):
    out = {f"data:{n}": host(net.blobs[n].data) for n in net.blobs}
    out.update({f"diff:{n}": host(net.blobs[n].diff) for n in net.blobs})
    for lname, ps in net.params.items():
        for j, p in enumerate(ps):
            out[f"param:{lname}:{j}"] = host(p.data)
            out[f"grad:{lname}:{j}"] = host(p.diff)
    return out


def _assert_same(a, b, rtol=1e-4, atol=1e-5):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=atol, err_msg=k)


def _passes(param, monkeypatch, graphs: bool, n=4, feed_every=True):
    monkeypatch.setenv("RECAFFE_CUDA_GRAPH", "1" if graphs else "0")
    net = _net(param)
    losses = []
    for i in range(n):
        if feed_every or i == 0:
            _feed(net, seed=i)
        for ps in net.params.values():
            for p in ps:
                p.diff[...] = 0
        out = net.forward()
        net.backward()
        losses.append(float(next(iter(out.values())).reshape(-1)[0]))
    return net, losses


# -- the capture machinery (stand-in) ----------------------------------------------
def test_capture_records_without_running_and_replays_by_address(dev):
    fake = backend.xp()
    x = fake.asarray(np.arange(4, dtype=np.float32))
    y = fake.zeros(4, dtype=np.float32)

    def body():
        fake.multiply(x, 2, out=y)
        return [(x * y).sum()]

    g = cuda_graph.capture(body, fake)
    assert host(y).tolist() == [0, 0, 0, 0]  # recorded, not run
    g.launch()
    assert host(y).tolist() == [0, 2, 4, 6]
    (total,) = g.readback()
    assert total.tolist() == [28.0]  # 0*0 + 1*2 + 2*4 + 3*6
    x[...] = fake.asarray(np.ones(4, dtype=np.float32))  # new values, same address
    g.launch()
    assert host(y).tolist() == [2, 2, 2, 2]
    assert g.readback()[0].tolist() == [8.0]
    assert g.keep and g.kept_bytes > 0  # temporaries of the capture stay alive


def test_gemms_go_through_the_capturable_blas(dev):
    fake = backend.xp()
    a = fake.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    b = fake.asarray(np.ones((3, 2), dtype=np.float32))
    c = fake.zeros((2, 2), dtype=np.float32)
    g = cuda_graph.capture(lambda: [blas.matmul(a, b, out=c)], fake)
    g.launch()
    np.testing.assert_array_equal(host(c), host(a) @ host(b))
    with pytest.raises(cuda_graph.CaptureError, match="cuBLAS"):
        cuda_graph.capture(lambda: [fake.matmul(a, b, out=c)], fake)
    assert blas._state["device_gemm"] is None  # restored after the capture


def test_host_reads_and_random_draws_fail_the_capture_with_a_reason(dev):
    fake = backend.xp()
    x = fake.ones(3, dtype=np.float32)
    with pytest.raises(cuda_graph.CaptureError, match="capturing"):
        cuda_graph.capture(lambda: [x * float(x.sum())], fake)
    before = backend.rng().bit_generator.state
    with pytest.raises(cuda_graph.CaptureError, match="random numbers"):
        cuda_graph.capture(lambda: [backend.random_uniform((3,), 0, 1, np.float32)],
                           fake)
    assert backend.rng().bit_generator.state == before  # nothing was drawn
    assert not cuda_graph.capturing()
    # After a failed capture, work runs eagerly again.
    assert float(x.sum()) == 3.0


def test_stand_in_refuses_host_reads_while_capturing(fake):
    x = fake.ones(2, dtype=np.float32)
    s = fake.cuda.Stream(non_blocking=True)
    s.begin_capture()
    try:
        with pytest.raises(CaptureViolation):
            x.get()
        with pytest.raises(NotImplementedError):
            fake.dot(x, x)
    finally:
        s.end_capture()


def test_deferred_input_check_raises_the_layers_error_after_a_replay(dev, monkeypatch):
    fake = backend.xp()
    monkeypatch.setenv("RECAFFE_CUDA_GRAPH", "1")
    net = _net(char_lstm_text())
    for i in range(3):  # warm-up, capture + replay, replay
        _feed(net, seed=i)
        net.forward()
    assert graph_runner.status(net)["graphs"] == ["forward"]
    ids = host(net.blobs["ids"].data)
    ids[2, 1] = 9  # outside input_dim 7
    net.blobs["ids"].data[...] = fake.asarray(ids.astype(np.float32))
    with pytest.raises(DataError, match=r"Embed layer 'emb'.*position \(2, 1\)"):
        net.forward()


# -- the runner's decisions ----------------------------------------------------------
def test_forward_backward_are_captured_once_and_replayed(fake, monkeypatch):
    net, _ = _passes(char_lstm_text(), monkeypatch, graphs=True, n=6)
    st = graph_runner.status(net)
    assert st["graphs"] == ["backward", "forward"]
    assert st["captures"] == 2  # one each, after one eager warm-up each
    assert st["replays"] == 10  # passes 2..6, forward and backward
    assert st["eager_reason"] is None
    pool = graph_runner.net_graphs(net).pool
    blocks = pool.blocks
    _feed(net, seed=9)
    net.forward()
    net.backward()
    assert pool.blocks == blocks  # replays allocate nothing: buffers are reused


@pytest.mark.parametrize("text", [char_lstm_text(), _rnn_text()], ids=["lstm", "rnn"])
def test_graph_passes_equal_eager(dev, monkeypatch, text):
    a, la = _passes(text, monkeypatch, graphs=False)
    b, lb = _passes(text, monkeypatch, graphs=True)
    assert graph_runner.status(b)["replays"] >= 6
    np.testing.assert_allclose(la, lb, rtol=1e-5)
    _assert_same(_snapshot(a), _snapshot(b))


def test_time_batched_plan_and_source_layer_compose_with_graphs(dev, monkeypatch):
    param = talk_manual_net(4, 3, 5)
    a, la = _passes(param, monkeypatch, graphs=False)
    b, lb = _passes(param, monkeypatch, graphs=True)
    assert b.plan is not None and b.plan.groups  # time batching is in the graph
    assert graph_runner.status(b)["graphs"] == ["backward", "forward"]
    np.testing.assert_allclose(la, lb, rtol=1e-5)
    _assert_same(_snapshot(a), _snapshot(b))


def test_new_shapes_and_partial_passes_capture_again(fake, monkeypatch):
    net, _ = _passes(char_lstm_text(), monkeypatch, graphs=True, n=3)
    g = graph_runner.net_graphs(net)
    assert g.captures == 2
    # A partial forward runs outside the graphs: they are dropped.
    net.forward(end="lstm")
    assert not g.slots
    # New input shapes (another batch size): new arrays, warm-up, capture.
    for name in ("ids", "cont", "target"):
        net.blobs[name].reshape(6, 5)
    net.reshape()
    ref = _net(char_lstm_text(n=5))
    monkeypatch.setenv("RECAFFE_CUDA_GRAPH", "0")
    for i in range(3):
        _feed(ref, seed=10 + i)
        want = float(ref.forward()["loss"].reshape(-1)[0])
        monkeypatch.setenv("RECAFFE_CUDA_GRAPH", "1")
        ref_params = {k: [host(p.data) for p in v] for k, v in ref.params.items()}
        for k, v in ref_params.items():
            for p, arr in zip(net.params[k], v, strict=True):
                backend.copy_into(p.data, arr.astype(np.float32))
        _feed(net, seed=10 + i)
        got = float(net.forward()["loss"].reshape(-1)[0])
        monkeypatch.setenv("RECAFFE_CUDA_GRAPH", "0")
        assert got == pytest.approx(want, rel=1e-5)
    assert g.captures >= 3 and "forward" in graph_runner.status(net)["graphs"]


def test_fallback_reasons(fake, monkeypatch):
    monkeypatch.setenv("RECAFFE_CUDA_GRAPH", "0")
    net = _net(_rnn_text())
    _feed(net)
    net.forward()
    assert graph_runner.status(net)["eager_reason"] == "RECAFFE_CUDA_GRAPH=0"
    monkeypatch.setenv("RECAFFE_CUDA_GRAPH", "1")
    for _ in range(3):
        net.forward()
    assert graph_runner.status(net)["graphs"] == ["forward"]
    # debug_info runs the plain per-layer loop: the graphs are dropped.
    net.debug_info = True
    net.forward()
    assert graph_runner.status(net)["graphs"] == []
    net.debug_info = False
    backend.set_mode_cpu()
    net.forward()
    assert graph_runner.status(net)["eager_reason"] == "CPU mode"


def test_python_layer_keeps_the_net_eager(fake, monkeypatch, tmp_path):
    monkeypatch.setenv("RECAFFE_CUDA_GRAPH", "1")
    mod = tmp_path / "graph_pylayer.py"
    mod.write_text(
        "import recaffe as caffe\n"
        "class Twice(caffe.Layer):\n"
        "    def setup(self, bottom, top): pass\n"
        "    def reshape(self, bottom, top): top[0].reshape(*bottom[0].data.shape)\n"
        "    def forward(self, bottom, top): top[0].data[...] = 2 * bottom[0].data\n"
        "    def backward(self, top, pd, bottom): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = _rnn_text().replace(
        'layer { name: "loss"',
        'layer { name: "twice" type: "Python" bottom: "logit" top: "l2"\n'
        '  python_param { module: "graph_pylayer" layer: "Twice" } }\n'
        'layer { name: "loss"')
    net = _net(text)
    _feed(net)
    for _ in range(3):
        net.forward()
    st = graph_runner.status(net)
    assert st["graphs"] == []
    assert st["eager_reason"] == "Python layer 'twice' runs on the host"


def _solver_param(text, kind="SGD", clip=-1.0, policy="step"):
    p = caffe_pb2.SolverParameter()
    from google.protobuf import text_format

    extra = {"SGD": "momentum: 0.9 weight_decay: 0.001", "AdaGrad": "",
             "Adam": "momentum: 0.9 momentum2: 0.999"}[kind]
    text_format.Merge(f'type: "{kind}" base_lr: 0.1 lr_policy: "{policy}" '
                      f'gamma: 0.5 stepsize: 30 max_iter: 1000 random_seed: 5 '
                      f'display: 0 clip_gradients: {clip} {extra}', p)
    p.net_param.CopyFrom(parse_prototxt(text, caffe_pb2.NetParameter))
    return p


def _train(text, monkeypatch, graphs, iters, **kw):
    from recaffe.solvers import get_solver

    monkeypatch.setenv("RECAFFE_CUDA_GRAPH", "1" if graphs else "0")
    solver = get_solver(_solver_param(text, **kw))
    _feed(solver.net)
    losses = []
    for _ in range(iters):
        solver.step(1)
        losses.append(solver.smoothed_loss)
    return solver, losses


def test_100_solver_steps_equal_eager(dev, monkeypatch):
    """SGD with momentum, weight decay and a step learning-rate schedule (the
    rate changes at 30, 60, 90: read from the device vector, no re-capture)."""
    a, la = _train(char_lstm_text(), monkeypatch, False, 100)
    b, lb = _train(char_lstm_text(), monkeypatch, True, 100)
    st_net, st_upd = graph_runner.status(b.net), graph_runner.status(b)
    assert st_net["graphs"] == ["train"] and st_net["captures"] == 1
    assert st_upd["graphs"] == ["update"] and st_upd["captures"] == 1
    assert st_upd["replays"] == 99
    np.testing.assert_allclose(la, lb, rtol=2e-4, atol=1e-6)
    for p, q in zip(a.net.learnable_params, b.net.learnable_params, strict=True):
        np.testing.assert_allclose(host(q.data), host(p.data), rtol=2e-3, atol=2e-5)


@pytest.mark.parametrize(("kind", "clip", "reason"), [
    ("Adam", -1.0, "Adam update uses per-iteration host values"),
    ("SGD", 1.0, "clip_gradients decides on the host"),
    ("AdaGrad", -1.0, None),
])
def test_update_graph_or_reason(dev, monkeypatch, kind, clip, reason):
    a, la = _train(_rnn_text(), monkeypatch, False, 8, kind=kind, clip=clip)
    b, lb = _train(_rnn_text(), monkeypatch, True, 8, kind=kind, clip=clip)
    st = graph_runner.status(b)
    if reason is None:
        assert st["graphs"] == ["update"]
    else:
        assert st["graphs"] == [] and reason in st["eager_reason"]
    assert graph_runner.status(b.net)["graphs"] == ["train"]
    np.testing.assert_allclose(la, lb, rtol=1e-5)
    for p, q in zip(a.net.learnable_params, b.net.learnable_params, strict=True):
        np.testing.assert_allclose(host(q.data), host(p.data), rtol=1e-4, atol=1e-6)


def test_divergence_is_still_detected_from_the_graph_flag(dev, monkeypatch):
    fake = backend.xp()
    from recaffe.errors import DivergenceError

    b, _ = _train(_rnn_text(), monkeypatch, True, 3)
    assert graph_runner.status(b.net)["graphs"] == ["train"]
    w = b.net.learnable_params[0]
    w.data[...] = fake.asarray(np.full(w.shape, np.nan, dtype=np.float32))
    with pytest.raises(DivergenceError, match="iteration 3"):
        b.step(1)


def test_time_reports_replay_and_eager_per_layer_times(fake, tmp_path, monkeypatch):
    from recaffe.cli.__main__ import main

    monkeypatch.setenv("RECAFFE_CUDA_GRAPH", "1")
    (tmp_path / "net.prototxt").write_text(_rnn_text())
    log = tmp_path / "time.log"
    backend.set_mode_cpu()
    assert main(["time", "-model", str(tmp_path / "net.prototxt"), "-gpu", "0",
                 "-iterations", "3", "-log_file", str(log)]) == 0
    text = log.read_text()
    assert "       rnn\tforward: " in text  # the eager per-layer table
    assert "CUDA graph replay Forward-Backward: " in text
    monkeypatch.setenv("RECAFFE_CUDA_GRAPH", "0")
    backend.set_mode_cpu()
    assert main(["time", "-model", str(tmp_path / "net.prototxt"), "-gpu", "0",
                 "-iterations", "2", "-log_file", str(log)]) == 0
    assert "the net runs eagerly: RECAFFE_CUDA_GRAPH=0" in log.read_text()


def test_test_nets_keep_their_graph_across_test_phases(dev, monkeypatch):
    """The test net re-shares the train net's parameters at each test (the
    same memory): its forward graph is captured once and replayed after."""
    from recaffe.solvers import get_solver

    monkeypatch.setenv("RECAFFE_CUDA_GRAPH", "1")
    p = _solver_param(_rnn_text())
    p.test_net_param.add().CopyFrom(p.net_param)
    p.test_iter.append(3)
    p.test_interval = 4
    solver = get_solver(p)
    _feed(solver.net)
    _feed(solver.test_nets[0])
    solver.step(17)  # tests at iterations 0, 4, 8, 12, 16
    st = graph_runner.status(solver.test_nets[0])
    assert st["graphs"] == ["forward"] and st["captures"] == 1
    assert st["replays"] == 5 * 3 - 1  # every test forward but the warm-up


def test_inference_replay_reads_nothing_back_without_losses(fake, monkeypatch):
    monkeypatch.setenv("RECAFFE_CUDA_GRAPH", "1")
    text = _rnn_text().split('layer { name: "loss"')[0]
    net = _net(text)
    _feed(net)
    outs = [host(net.forward()["logit"]) for _ in range(3)]
    graph = graph_runner.net_graphs(net).slots["forward"].graph
    assert graph is not None and graph._readback is None  # no synchronisation
    np.testing.assert_array_equal(outs[2], outs[0])
    monkeypatch.setenv("RECAFFE_CUDA_GRAPH", "0")
    np.testing.assert_array_equal(host(net.forward()["logit"]), outs[0])


def test_a_layer_that_cannot_be_captured_is_named_and_results_stay_eager(
        dev, monkeypatch):
    text = _rnn_text().replace(
        'layer { name: "loss"',
        'layer { name: "drop" type: "Dropout" bottom: "logit" top: "logit"\n'
        '  dropout_param { dropout_ratio: 0.3 } }\n'
        'layer { name: "loss"')
    _, la = _train(text, monkeypatch, False, 6)
    b, lb = _train(text, monkeypatch, True, 6)
    st = graph_runner.status(b.net)
    assert st["graphs"] == []
    assert st["eager_reason"].startswith(
        "the train pass cannot be captured: Dropout layer 'drop', forward: a layer "
        "draws random numbers on the host")
    np.testing.assert_allclose(la, lb, rtol=1e-6)  # the same masks were drawn


# -- pycaffe scripts: inputs written and outputs read through .data --------------------
def _script_net(monkeypatch, graphs: bool, n=5):
    """A pycaffe inference/gradient script: every input written through
    ``.data`` (host numpy), outputs and gradients read back through ``.data``
    and ``.diff``; returns what it read and the copies SyncedMemory made."""
    from recaffe.backend import synced

    monkeypatch.setenv("RECAFFE_CUDA_GRAPH", "1" if graphs else "0")
    net = _net(char_lstm_text())
    r = np.random.default_rng(11)
    shape = net.blobs["ids"].data.shape
    cont = np.ones(shape)
    cont[0] = 0
    seen = []
    for i in range(n):
        if i == 1:
            # From the second pass on: the first graphed pass allocates every
            # blob's diff (the graphs bind their addresses), so diffs no layer
            # writes (the inputs') are copied down once more than eagerly.
            synced.reset_copy_counts()
        net.blobs["ids"].data[...] = r.integers(0, 7, shape)
        net.blobs["cont"].data[...] = cont
        net.blobs["target"].data[...] = r.integers(0, 7, shape)
        for ps in net.params.values():
            for p in ps:
                p.diff[...] = 0
        net.forward()
        loss, logits = net.blobs["loss"].data, net.blobs["logits"].data
        assert type(logits).__module__.startswith("recaffe")  # HostArray
        assert isinstance(logits, np.ndarray) and not isinstance(logits, FAKE.ndarray)
        seen += [float(loss), logits.copy()]
        net.backward()
        seen += [net.params["out"][0].diff.copy(), net.params["emb"][0].diff.copy(),
                 net.blobs["e"].diff.copy()]
    return net, seen, synced.copy_counts()


def _script_solver(monkeypatch, graphs: bool, iters=8):
    """The pycaffe training idiom: inputs through .data, step(1), the loss read
    through .data, and once a parameter edited in place from the script."""
    from recaffe.solvers import get_solver

    monkeypatch.setenv("RECAFFE_CUDA_GRAPH", "1" if graphs else "0")
    solver = get_solver(_solver_param(char_lstm_text()))
    net = solver.net
    r = np.random.default_rng(12)
    shape = net.blobs["ids"].data.shape
    losses = []
    for it in range(iters):
        net.blobs["ids"].data[...] = r.integers(0, 7, shape)
        net.blobs["target"].data[...] = r.integers(0, 7, shape)
        cont = net.blobs["cont"].data
        cont[...] = 1
        cont[0] = 0
        if it == 5:  # replays must see a parameter changed on the host
            net.params["out"][1].data[...] *= 0.5
        solver.step(1)
        losses.append(float(net.blobs["loss"].data))
    params = [p.data.copy() for p in net.learnable_params]
    return solver, losses, params


def test_pycaffe_script_reads_and_writes_through_data_graph_equals_eager(
        dev, monkeypatch):
    """Graph replays follow the host/device rules of eager passes: inputs
    written on the host reach the device buffers before each replay, outputs
    read on the host afterwards are the replay's, with the same copies per
    pass."""
    a, eager, eager_copies = _script_net(monkeypatch, graphs=False)
    b, graphed, graph_copies = _script_net(monkeypatch, graphs=True)
    st = graph_runner.status(b)
    assert st["graphs"] == ["backward", "forward"] and st["replays"] >= 6
    assert graph_runner.status(a)["graphs"] == []
    assert len(eager) == len(graphed)
    for k, (x, y) in enumerate(zip(eager, graphed, strict=True)):
        np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-6, err_msg=f"read {k}")
    assert graph_copies == eager_copies

    _, l_eager, p_eager = _script_solver(monkeypatch, graphs=False)
    s_graph, l_graph, p_graph = _script_solver(monkeypatch, graphs=True)
    assert graph_runner.status(s_graph.net)["graphs"] == ["train"]
    assert graph_runner.status(s_graph)["graphs"] == ["update"]
    assert graph_runner.status(s_graph)["replays"] >= 5
    np.testing.assert_allclose(l_graph, l_eager, rtol=1e-5, atol=1e-6)
    for x, y in zip(p_eager, p_graph, strict=True):
        np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-6)
