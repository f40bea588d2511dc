"""GPU mode: every layer's test cases, solvers, snapshots and weights on the device.

Each test runs against two devices:

- ``cupy``: a real CUDA device through CuPy (skipped without one);
- ``fake``: :mod:`fake_device`, a CPU stand-in that refuses host arrays mixed
  into device arrays as CuPy does (runs everywhere; it checks the device
  plumbing, not CUDA).

For every ``LayerTestCase`` subclass under tests/layers and every case: build
the layer on the CPU, run forward and backward; build it again with the same
seed, move it to the device (:func:`recaffe.device.to_current_device`), run the
same forward and backward there, and compare tops, bottom diffs and param diffs
(float32 tolerance). The first gradient case of each class is also checked
numerically on the device (float64; ``RECAFFE_GPU_GRADCHECK=all`` checks every
case, ``=0`` none).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from fake_device import FAKE
from shared_nets import char_lstm_text

from recaffe import backend, device
from recaffe.backend import synced
from recaffe.io.prototxt import parse_prototxt
from recaffe.net import Net
from recaffe.proto import caffe_pb2
from recaffe.testing.gradient_check import check_gradient
from recaffe.testing.layer_test import LayerTestCase

NO_GPU_REASON = "no CUDA device / CuPy not installed"
LAYER_TESTS = Path(__file__).resolve().parent.parent / "layers"


# -- devices -------------------------------------------------------------------------
class Dev:
    """Switches between CPU mode and the device under test."""

    def __init__(self, kind: str):
        self.kind = kind

    def gpu(self) -> None:
        backend.set_mode_gpu()

    def cpu(self) -> None:
        backend.set_mode_cpu()


@pytest.fixture(params=["cupy", "fake"])
def dev(request):
    backend.set_mode_cpu()
    if request.param == "cupy":
        if not backend.gpu_available():
            pytest.skip(NO_GPU_REASON)
        try:
            yield Dev("cupy")
        finally:
            backend.set_mode_cpu()
        return
    with backend.device_module_scope(FAKE):
        try:
            yield Dev("fake")
        finally:
            backend.set_mode_cpu()


def on_device(blob) -> bool:
    """Whether the device side of ``blob`` (what layers compute on) is a
    device array."""
    with synced.device_side():
        return backend.is_device_array(blob.data)


def host(a):
    return np.array(backend.to_host(a), copy=True)


def close(got, want, what, rtol=1e-4, atol=1e-5):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * scale, err_msg=what)


# -- every layer's cases -------------------------------------------------------------
def _layer_test_classes():
    sys.path.insert(0, str(LAYER_TESTS))
    try:
        found = []
        for path in sorted(LAYER_TESTS.glob("test_*.py")):
            name = f"_gpu_src_{path.stem}"
            mod = sys.modules.get(name)
            if mod is None:
                spec = importlib.util.spec_from_file_location(name, path)
                mod = importlib.util.module_from_spec(spec)
                sys.modules[name] = mod
                spec.loader.exec_module(mod)
            for attr, obj in vars(mod).items():
                if (isinstance(obj, type) and issubclass(obj, LayerTestCase)
                        and attr.startswith("Test") and obj.layer_type
                        and obj.__module__ == name):
                    found.append(obj)
        return found
    finally:
        sys.path.remove(str(LAYER_TESTS))


CLASSES = _layer_test_classes()


def _pd(case, nbottom):
    cb = case.check_bottom
    if cb is None:
        return [False] * nbottom
    if isinstance(cb, int):
        return [True] * nbottom if cb < 0 else [i == cb for i in range(nbottom)]
    return [i in cb for i in range(nbottom)]


def _run(tc, case, dev, dtype=np.float32):
    backend.set_mode_cpu()
    layer, bottom, top = tc.build(case, dtype)
    if dev is not None:
        dev.gpu()
        device.to_current_device([layer, bottom, top])
        for b in list(bottom) + list(top) + list(layer.blobs):
            assert on_device(b), "a blob stayed on the host"
    try:
        backend.set_random_seed(7)
        layer.Forward(bottom, top)
        out = {"top": [host(t.data) for t in top]}
        if case.gradient:
            pd = _pd(case, len(bottom))
            rng = np.random.default_rng(5)
            for t in top:
                backend.copy_into(t.diff, rng.standard_normal(t.shape).astype(t.dtype))
            layer.Backward(top, pd, bottom)
            out["bottom"] = [host(b.diff) if pd[i] else None
                             for i, b in enumerate(bottom)]
            out["param"] = [host(b.diff) for b in layer.blobs]
        return out
    finally:
        backend.set_mode_cpu()


def _gradcheck_cases(cases):
    how = os.environ.get("RECAFFE_GPU_GRADCHECK", "first").strip().lower()
    grad = [c for c in cases if c.gradient]
    if how in ("0", "none", "off"):
        return []
    return grad if how == "all" else grad[:1]


@pytest.mark.parametrize("cls", CLASSES, ids=[f"{c.__module__[9:]}.{c.__name__}"
                                               for c in CLASSES])
def test_layer_cases_match_cpu(dev, cls):
    tc = cls()
    cases = list(cls.cases)
    if not cases:
        pytest.skip("cases are made by a fixture (data files); see "
                    "test_data_layers_on_device")
    for k, case in enumerate(cases):
        want = _run(tc, case, None)
        got = _run(tc, case, dev)
        what = f"{cls.layer_type} case {k} ({case.text.strip()[:60]!r})"
        for i, (g, w) in enumerate(zip(got["top"], want["top"], strict=True)):
            close(g, w, f"{what} top[{i}]", max(case.rtol, 1e-4), max(case.atol, 1e-5))
        if case.gradient:
            for i, (g, w) in enumerate(zip(got["bottom"], want["bottom"], strict=True)):
                if w is not None:
                    close(g, w, f"{what} bottom[{i}].diff")
            for j, (g, w) in enumerate(zip(got["param"], want["param"], strict=True)):
                close(g, w, f"{what} param[{j}].diff")
    for case in _gradcheck_cases(cases):
        backend.set_mode_cpu()
        layer, bottom, top = tc.build(case, np.float64)
        dev.gpu()
        try:
            device.to_current_device([layer, bottom, top])
            check_gradient(layer, bottom, top, case.check_bottom,
                           stepsize=case.stepsize, threshold=case.threshold,
                           kink=case.kink, kink_range=case.kink_range,
                           top_mask=case.top_mask, setup=False)
        finally:
            dev.cpu()


# -- nets, solvers, snapshots ---------------------------------------------------------
def _h5_source(tmp_path: Path, n=8, dim=5, classes=3, seed=0) -> str:
    import h5py

    r = np.random.default_rng(seed)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["x"] = r.uniform(-1, 1, (n, dim)).astype(np.float32)
        f["t"] = r.integers(0, classes, n).astype(np.float32)
    lst = tmp_path / "d.txt"
    lst.write_text(f"{tmp_path / 'd.h5'}\n")
    return str(lst)


def _mlp_text(source: str, dropout: bool = True) -> str:
    drop = ('layer { name: "drop" type: "Dropout" bottom: "h" top: "h" '
            'dropout_param { dropout_ratio: 0.3 } }') if dropout else ""
    return f"""
name: "mlp"
layer {{ name: "data" type: "HDF5Data" top: "x" top: "t"
  hdf5_data_param {{ source: "{source}" batch_size: 4 }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "x" top: "h"
  inner_product_param {{ num_output: 6 weight_filler {{ type: "gaussian" std: 0.5 }}
    bias_filler {{ type: "constant" value: 0.1 }} }} }}
layer {{ name: "relu" type: "ReLU" bottom: "h" top: "h" }}
{drop}
layer {{ name: "ip2" type: "InnerProduct" bottom: "h" top: "y"
  inner_product_param {{ num_output: 3
    weight_filler {{ type: "gaussian" std: 0.5 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "y" bottom: "t" top: "loss" }}
layer {{ name: "acc" type: "Accuracy" bottom: "y" bottom: "t" top: "acc"
  include {{ phase: TEST }} }}
"""


def _solver_param(
    net_text: str, kind: str, prefix: str = ""
) -> caffe_pb2.SolverParameter:
    p = caffe_pb2.SolverParameter()
    extra = {"SGD": "momentum: 0.9 weight_decay: 0.001", "Adam": "momentum: 0.9 "
             "momentum2: 0.999", "RMSProp": "rms_decay: 0.9", "AdaGrad": "",
             "Nesterov": "momentum: 0.9", "AdaDelta": "momentum: 0.95"}[kind]
    from google.protobuf import text_format

    text_format.Merge(f'type: "{kind}" base_lr: 0.05 lr_policy: "fixed" '
                      'max_iter: 100 '
                      f'random_seed: 5 display: 0 {extra} '
                      + (f'snapshot_prefix: "{prefix}"' if prefix else ""), p)
    p.net_param.CopyFrom(parse_prototxt(net_text, caffe_pb2.NetParameter))
    return p


def _weights(solver):
    return [host(b.data) for b in solver.net.learnable_params]


def _fill_lstm_inputs(net, seed=3, vocab=7):
    r = np.random.default_rng(seed)
    t, n = net.blobs["ids"].shape
    backend.copy_into(net.blobs["ids"].data,
                      r.integers(0, vocab, (t, n)).astype(np.float32))
    cont = np.ones((t, n), np.float32)
    cont[0] = 0
    backend.copy_into(net.blobs["cont"].data, cont)
    backend.copy_into(net.blobs["target"].data,
                      r.integers(0, vocab, (t, n)).astype(np.float32))


@pytest.mark.parametrize("kind", ["SGD", "Adam", "RMSProp", "AdaGrad", "Nesterov",
                                  "AdaDelta"])
def test_solver_matches_cpu(dev, kind, tmp_path):
    from recaffe.solvers import get_solver

    text = _mlp_text(_h5_source(tmp_path))
    backend.set_mode_cpu()
    cpu = get_solver(_solver_param(text, kind))
    cpu.step(6)
    dev.gpu()
    try:
        gpu = get_solver(_solver_param(text, kind))
        assert all(on_device(b) for b in gpu.net.learnable_params)
        gpu.step(6)
        for j, (g, w) in enumerate(zip(_weights(gpu), _weights(cpu), strict=True)):
            close(g, w, f"{kind} param {j} after 6 iterations", 1e-3, 1e-4)
    finally:
        dev.cpu()


def test_solver_follows_mode_switches(dev, tmp_path):
    """CPU 2 iterations, device 3, CPU 3 == CPU 8 (history and nets move)."""
    from recaffe.solvers import get_solver

    text = _mlp_text(_h5_source(tmp_path))
    backend.set_mode_cpu()
    ref = get_solver(_solver_param(text, "Adam"))
    ref.step(8)
    s = get_solver(_solver_param(text, "Adam"))
    s.step(2)
    dev.gpu()
    try:
        s.step(3)
        assert all(backend.is_device_array(h) for h in s.history)
        assert all(on_device(b) for b in s.net.learnable_params)
    finally:
        dev.cpu()
    s.step(3)
    assert all(type(h) is np.ndarray for h in s.history)
    for j, (g, w) in enumerate(zip(_weights(s), _weights(ref), strict=True)):
        close(g, w, f"param {j}", 1e-3, 1e-4)


@pytest.mark.parametrize("fmt", ["BINARYPROTO", "HDF5"])
def test_snapshot_restore_on_device(dev, fmt, tmp_path):
    from recaffe.solvers import get_solver

    # No Dropout and one batch of data: a restored run draws other masks and
    # restarts the data (as Caffe), unlike an uninterrupted one.
    text = _mlp_text(_h5_source(tmp_path, n=4), dropout=False)
    prefix = str(tmp_path / "snap")
    dev.gpu()
    try:
        full = get_solver(_solver_param(text, "SGD"))
        full.step(6)
        p = _solver_param(text, "SGD", prefix)
        p.snapshot_format = getattr(caffe_pb2.SolverParameter, fmt)
        a = get_solver(p)
        a.step(3)
        state = a.snapshot()
        b = get_solver(_solver_param(text, "SGD"))
        b.restore(state)
        b.step(3)
        for j, (g, w) in enumerate(zip(_weights(b), _weights(full), strict=True)):
            close(g, w, f"device restore param {j}", 1e-5, 1e-6)
    finally:
        dev.cpu()
    # The same snapshot continues on the CPU.
    c = get_solver(_solver_param(text, "SGD"))
    c.restore(state)
    c.step(3)
    for j, (g, w) in enumerate(zip(_weights(c), _weights(full), strict=True)):
        close(g, w, f"CPU restore of a device snapshot, param {j}", 1e-3, 1e-4)


def _net(text, phase=caffe_pb2.TRAIN):
    return Net(parse_prototxt(text, caffe_pb2.NetParameter), phase)


def test_net_weights_round_trip(dev, tmp_path):
    backend.set_random_seed(11)
    dev.gpu()
    try:
        net = _net(char_lstm_text(t=5, embed=6, shared_out=True))
        _fill_lstm_inputs(net)
        device.ensure_device(net)
        loss_dev = net.forward_prefilled()
        net.save(str(tmp_path / "w.caffemodel"))
        net.save_hdf5(str(tmp_path / "w.h5"))
        params_dev = [host(b.data) for b in net.learnable_params]
    finally:
        dev.cpu()
    for path in ("w.caffemodel", "w.h5"):
        cpu = _net(char_lstm_text(t=5, embed=6, shared_out=True))
        if path.endswith(".h5"):
            cpu.load_hdf5(str(tmp_path / path))
        else:
            cpu.copy_from(str(tmp_path / path))
        for j, (g, w) in enumerate(zip([host(b.data) for b in cpu.learnable_params],
                                       params_dev, strict=True)):
            np.testing.assert_array_equal(g, w, err_msg=f"{path} param {j}")
        _fill_lstm_inputs(cpu)
        close(cpu.forward_prefilled(), loss_dev, f"loss after loading {path}")
    # And back onto the device.
    dev.gpu()
    try:
        again = _net(char_lstm_text(t=5, embed=6, shared_out=True))
        again.copy_from(str(tmp_path / "w.caffemodel"))
        for g, w in zip(again.learnable_params, params_dev, strict=True):
            assert on_device(g)
            np.testing.assert_array_equal(host(g.data), w)
    finally:
        dev.cpu()


@pytest.mark.parametrize("impl", ["fused", "net"])
def test_net_follows_the_mode(dev, impl, monkeypatch):
    """A net made on the CPU runs on the device after ensure_device, and back;
    shared parameters stay shared; results equal the CPU's."""
    monkeypatch.setenv("RECAFFE_RECURRENT_IMPL", impl)
    backend.set_random_seed(2)
    net = _net(char_lstm_text(t=5, embed=6, shared_out=True))
    _fill_lstm_inputs(net)
    loss_cpu = net.forward_prefilled()
    net.backward_all()
    grads_cpu = [host(b.diff) for b in net.learnable_params]
    net.clear_param_diffs()
    dev.gpu()
    try:
        device.ensure_device(net)
        assert all(on_device(b) for b in net.blob_list)
        assert all(on_device(b) for b in net.param_blobs)
        for i, owner in enumerate(net.param_owners):
            if owner >= 0:
                assert net.param_blobs[i].shares_data_with(net.param_blobs[owner])
        loss_dev = net.forward_prefilled()
        net.backward_all()
        grads_dev = [host(b.diff) for b in net.learnable_params]
        assert not device.ensure_device(net)  # nothing changed: no walk
    finally:
        dev.cpu()
    close(loss_dev, loss_cpu, "loss")
    for j, (g, w) in enumerate(zip(grads_dev, grads_cpu, strict=True)):
        close(g, w, f"param {j} diff")
    device.ensure_device(net)
    assert all(type(b._data) is np.ndarray for b in net.blob_list)
    net.clear_param_diffs()
    close(net.forward_prefilled(), loss_cpu, "loss back on the CPU", 1e-6, 1e-7)


def test_data_layers_on_device(dev, tmp_path):
    text = _mlp_text(_h5_source(tmp_path))
    backend.set_mode_cpu()
    backend.set_random_seed(1)
    cpu = _net(text, caffe_pb2.TEST)
    cpu.forward_prefilled()
    want = {n: host(cpu.blobs[n].data) for n in ("x", "t", "y")}
    dev.gpu()
    try:
        backend.set_random_seed(1)
        net = _net(text, caffe_pb2.TEST)
        net.forward_prefilled()
        for n, w in want.items():
            assert on_device(net.blobs[n])
            close(host(net.blobs[n].data), w, f"blob {n}")
        # MemoryData copies its batches to the device.
        mem = _net("""
layer { name: "m" type: "MemoryData" top: "d" top: "l"
  memory_data_param { batch_size: 2 channels: 3 height: 1 width: 1 } }
""")
        data = np.arange(12, dtype=np.float32).reshape(4, 3, 1, 1)
        mem.set_input_arrays(data, np.arange(4, dtype=np.float32))
        device.ensure_device(mem)
        mem.forward_prefilled()
        np.testing.assert_array_equal(host(mem.blobs["d"].data), data[:2])
    finally:
        dev.cpu()


def test_device_query_names_the_device(dev):
    dev.gpu()
    try:
        lines = backend.device_query()
    finally:
        dev.cpu()
    assert any(line.startswith("Device 0:") and "(current)" in line for line in lines)
