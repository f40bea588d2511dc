"""Caffe's host/device memory model (SyncedMemory) and pycaffe idioms in GPU mode.

The GPU tests run on ``gpu-fake`` (the CPU stand-in of fake_device.py, which
refuses host arrays where CuPy does and counts its own transfers) and on
``gpu-cupy`` (skipped without a CUDA device).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pycaffe_script
import pytest
from fake_device import COPIES, FAKE, reset_copies
from shared_nets import DEPLOY, char_lstm_text, deploy_net
from shared_nets import deploy_ref as ref

import recaffe as caffe
from recaffe import backend
from recaffe.backend import synced
from recaffe.backend.synced import (
    HEAD_AT_DEVICE,
    HEAD_AT_HOST,
    SYNCED,
    UNINITIALIZED,
    SyncedMemory,
    device_side,
)
from recaffe.blob import HostArray
from recaffe.errors import ShapeError, StaleHostWriteError

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]



def counts() -> tuple[int, int]:
    c = synced.copy_counts()
    return c["host_to_device"], c["device_to_host"]


def device_array(blob, diff=False):
    """What layers compute on."""
    with device_side():
        return blob.diff if diff else blob.data


@pytest.fixture
def deploy(tmp_path):
    return deploy_net(tmp_path)



# -- the state machine ---------------------------------------------------------------
def test_synced_memory_heads_and_copies():
    synced.flush()  # host changes other tests left pending
    synced.reset_copy_counts()
    reset_copies()
    m = SyncedMemory(FAKE.zeros(6, dtype=np.float32))
    assert m.head == UNINITIALIZED
    h = m.host_array(mutable=False)
    assert type(h) is np.ndarray and not h.any()
    assert m.head == SYNCED and counts() == (0, 0)  # zeros on both: no copy
    m.host_array()[:] = 1.5  # pycaffe's mutable host access
    assert m.head == HEAD_AT_HOST
    d = m.device_array()
    assert m.head == SYNCED and counts() == (1, 0)
    np.testing.assert_array_equal(d.view(np.ndarray), np.full(6, 1.5))  # no get()
    m.device_array()
    m.host_array(mutable=False)
    assert counts() == (1, 0)  # nothing changed: nothing copied
    with device_side():  # a device pass may write it
        d += 1
    assert m.head == HEAD_AT_DEVICE
    np.testing.assert_array_equal(m.host_array(mutable=False), np.full(6, 2.5))
    assert m.head == SYNCED and counts() == (1, 1)
    m.host_array(mutable=False)
    m.device_array()
    assert counts() == (1, 1)
    # the stand-in device saw exactly the copies recaffe counted
    assert (COPIES["host_to_device"], COPIES["device_to_host"]) == (1, 1)


def test_host_changes_reach_the_device_once_per_change():
    synced.flush()
    synced.reset_copy_counts()
    m = SyncedMemory(FAKE.zeros(3, dtype=np.float32))
    m.host_array()[:] = 7
    with device_side():  # the pass start copies pending host changes
        assert counts() == (1, 0)
        np.testing.assert_array_equal(m.device.get(), [7, 7, 7])
    with device_side():
        pass
    assert counts() == (1, 0)


# -- the pycaffe surface in GPU mode ------------------------------------------------
def test_surface_is_host_numpy_and_layers_see_device_arrays(gpu_mode, deploy):
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    deploy.blobs["x"].data[...] = x  # the line that failed on CuPy
    out = deploy.forward()
    for a in (out["y"], deploy.blobs["x"].data, deploy.blobs["y"].diff,
              deploy.params["ip"][0].data, deploy.params["ip"][1].diff):
        assert isinstance(a, np.ndarray) and not backend.is_device_array(a)
        assert type(a) is HostArray
    assert backend.is_device_array(device_array(deploy.blobs["x"]))
    assert backend.is_device_array(device_array(deploy.params["ip"][0]))
    np.testing.assert_allclose(out["y"], ref(deploy, x), rtol=1e-5, atol=1e-5)
    assert out["y"] is deploy.blobs["y"].data  # a live view, as pycaffe's
    # reads mix freely with numpy
    labels = np.zeros((4, 2), dtype=bool)
    acc = ((deploy.blobs["y"].data > 0.5) == labels).mean()
    assert 0.0 <= float(acc) <= 1.0
    # a device array written through the surface works too
    deploy.blobs["x"].data[...] = backend.xp().asarray(2 * x)
    np.testing.assert_allclose(deploy.forward()["y"], ref(deploy, 2 * x), rtol=1e-5,
                               atol=1e-5)


def test_copy_counts_follow_caffe(gpu_mode, deploy):
    last = len(deploy.layers) - 1
    x = np.ones((4, 3), dtype=np.float32)
    deploy.blobs["x"].data[...] = x
    deploy._forward(0, last)
    synced.reset_copy_counts()
    reset_copies()
    deploy._forward(0, last)
    deploy._backward(last, 0)
    assert counts() == (0, 0)  # nothing asked for on the host: nothing copied
    y = deploy.blobs["y"].data
    assert counts() == (0, 1)
    assert deploy.blobs["y"].data is y
    deploy.blobs["y"].data.sum()
    assert counts() == (0, 1)  # asking again copies nothing
    deploy.blobs["x"].data[...] = 2 * x  # x changed on the device: one copy back
    assert counts() == (0, 2)
    assert deploy.blobs["x"].heads[0] == HEAD_AT_HOST
    deploy._forward(0, last)
    # pycaffe's .data is mutable_cpu_data: both x and y go back, once each
    assert counts() == (2, 2)
    deploy._forward(0, last)
    assert counts() == (2, 2)
    assert deploy.blobs["x"].heads[0] == HEAD_AT_DEVICE
    # forward() returns .data of the outputs: one copy down per call, and one
    # up at the next pass (as pycaffe's forward does on Caffe)
    deploy.forward()
    assert counts() == (2, 3)
    deploy.forward()
    assert counts() == (3, 4)
    if gpu_mode == "gpu-fake":  # the stand-in saw the same transfers
        assert (COPIES["host_to_device"], COPIES["device_to_host"]) == (3, 4)


def test_param_edits_in_place_are_seen_by_the_next_pass(gpu_mode, deploy):
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    deploy.blobs["x"].data[...] = x
    w = deploy.params["ip"][0].data
    b = deploy.params["ip"][1].data
    w[...] = np.arange(6, dtype=np.float32).reshape(2, 3)
    deploy.forward()
    np.testing.assert_allclose(deploy.blobs["y"].data, ref(deploy, x), rtol=1e-5)
    deploy.params["ip"][0].data[0, :] = -1  # slicing
    deploy.params["ip"][1].data += 3  # in-place arithmetic
    np.copyto(deploy.params["ip"][0].data[1], np.ones(3, dtype=np.float32))
    deploy.params["ip"][1].data = np.array([0.5, 0.25], dtype=np.float32)  # setter
    deploy.forward()
    want = x @ np.array([[-1, -1, -1], [1, 1, 1]], np.float32).T + [0.5, 0.25]
    np.testing.assert_allclose(deploy.blobs["y"].data, want, rtol=1e-5, atol=1e-6)
    assert deploy.params["ip"][1].data is b


def test_reshape_input_then_forward(gpu_mode, deploy):
    """The deploy-script idiom: reshape the input blob, net.reshape(), fill."""
    x = np.random.default_rng(3).standard_normal((6, 3)).astype(np.float32)
    deploy.blobs["x"].reshape(6, 3)
    deploy.reshape()
    assert deploy.blobs["y"].data.shape == (6, 2)
    deploy.blobs["x"].data[...] = x
    out = deploy.forward()
    np.testing.assert_allclose(out["y"], ref(deploy, x), rtol=1e-5, atol=1e-5)
    assert backend.is_device_array(device_array(deploy.blobs["y"]))


def test_stale_reference_across_a_gpu_pass(gpu_mode, deploy):
    """The footgun Caffe has, and what recaffe keeps of it (docs/gpu.md)."""
    last = len(deploy.layers) - 1
    x = np.ones((4, 3), dtype=np.float32)
    deploy.blobs["x"].data[...] = x
    y = deploy.forward()["y"]
    first = y.copy()
    deploy.blobs["x"].data[...] = 3 * x
    deploy._forward(0, last)  # a pass that reads nothing back (as solver.step)
    # The reference kept across the pass still shows the old values ...
    np.testing.assert_array_equal(y, first)
    # ... until .data is asked for again (net.forward() does it for the
    # outputs): recaffe keeps one host buffer per blob, so the old reference
    # sees the fresh values from then on.
    fresh = deploy.blobs["y"].data
    assert fresh is y
    np.testing.assert_allclose(y, ref(deploy, 3 * x), rtol=1e-5, atol=1e-5)
    # A write through a reference kept across a pass is lost, as in Caffe:
    # re-read .data (or assign through it) after each pass.
    held = deploy.blobs["x"].data
    deploy._forward(0, last)
    held[...] = 5
    deploy._forward(0, last)
    np.testing.assert_allclose(deploy.blobs["x"].data, 3 * x)


def test_stale_write_check(gpu_mode, deploy):
    last = len(deploy.layers) - 1
    synced.set_stale_check(True)
    try:
        x = np.ones((4, 3), dtype=np.float32)
        for k in range(3):  # the right idiom never trips it
            deploy.blobs["x"].data[...] = k * x
            deploy._forward(0, last)
            np.testing.assert_allclose(deploy.blobs["y"].data, ref(deploy, k * x),
                                       rtol=1e-5, atol=1e-5)
        held = deploy.blobs["x"].data
        deploy._forward(0, last)
        held[...] = 5  # lost: the device side is newer
        with pytest.raises(StaleHostWriteError, match=r"blob 'x' data: its host "
                                                      r"array was written after"):
            deploy.blobs["x"].data  # noqa: B018
    finally:
        synced.set_stale_check(False)


def test_python_layer_runs_on_host_arrays(gpu_mode, tmp_path, monkeypatch):
    (tmp_path / "host_layers.py").write_text('''
import numpy as np
import recaffe as caffe

SEEN = []


class Square(caffe.Layer):
    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[...] = 1.0

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        SEEN.extend(type(a) for a in (bottom[0].data, top[0].data,
                                      self.blobs[0].data))
        top[0].data[...] = self.blobs[0].data * bottom[0].data ** 2

    def backward(self, top, propagate_down, bottom):
        SEEN.extend(type(a) for a in (top[0].diff, bottom[0].diff))
        bottom[0].diff[...] = 2 * self.blobs[0].data * bottom[0].data * top[0].diff
''')
    monkeypatch.syspath_prepend(str(tmp_path))
    net_file = tmp_path / "net.prototxt"
    net_file.write_text("""force_backward: true
layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 } } }
layer { name: 'sq' type: 'Python' bottom: 'x' top: 's'
  python_param { module: 'host_layers' layer: 'Square' } }
layer { name: 'scale' type: 'Power' bottom: 's' top: 'y' power_param { scale: 3 } }
""")
    net = caffe.Net(str(net_file), caffe.TRAIN)
    mod = sys.modules["host_layers"]
    x = np.array([[1, 2, 3], [-1, 0.5, 2]], dtype=np.float32)
    net.blobs["x"].data[...] = x
    out = net.forward()
    np.testing.assert_allclose(out["y"], 3 * x ** 2, rtol=1e-6)  # top synced back
    net.params["sq"][0].data[...] = 2.0  # param edit seen by the Python layer
    net.forward()
    net.blobs["y"].diff[...] = 1
    diffs = net.backward()
    np.testing.assert_allclose(diffs["x"], 3 * 2 * 2 * x, rtol=1e-6)
    assert mod.SEEN and all(t is HostArray for t in mod.SEEN), mod.SEEN


SOLVER_NET = """name: 'small'
layer { name: 'in' type: 'Input' top: 'data' top: 'label'
  input_param { shape { dim: 8 dim: 3 } shape { dim: 8 dim: 1 } } }
layer { name: 'ip1' type: 'InnerProduct' bottom: 'data' top: 'h'
  inner_product_param { num_output: 5 weight_filler { type: 'xavier' } } }
layer { name: 'act' type: 'Sigmoid' bottom: 'h' top: 'a' }
layer { name: 'ip2' type: 'InnerProduct' bottom: 'a' top: 'out'
  inner_product_param { num_output: 1 weight_filler { type: 'xavier' } } }
layer { name: 'loss' type: 'EuclideanLoss' bottom: 'out' bottom: 'label' top: 'loss' }
"""


def _solver_loop(tmp_path, iters=8):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "net.prototxt").write_text(SOLVER_NET)
    (tmp_path / "solver.prototxt").write_text(
        f'net: "{tmp_path / "net.prototxt"}"\nbase_lr: 0.1\nmomentum: 0.9\n'
        'lr_policy: "fixed"\nrandom_seed: 1\ndisplay: 0\n')
    solver = caffe.SGDSolver(str(tmp_path / "solver.prototxt"))
    return solver, _steps(solver, np.random.default_rng(1), iters)


def _steps(solver, rng, iters):
    """``iters`` pycaffe-style steps on fresh inputs from ``rng``; the losses."""
    losses = []
    for _ in range(iters):
        x = rng.standard_normal((8, 3)).astype(np.float32)
        solver.net.blobs["data"].data[...] = x
        solver.net.blobs["label"].data[...] = x.sum(1, keepdims=True)
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
    return losses


def test_solver_loop_with_step_1_matches_cpu(gpu_mode, tmp_path):
    _, losses = _solver_loop(tmp_path / "gpu")
    backend.set_mode_cpu()
    _, want = _solver_loop(tmp_path / "cpu")
    backend.set_mode_gpu()
    np.testing.assert_allclose(losses, want, rtol=1e-5, atol=1e-6)
    assert losses[-1] < losses[0]


def _char_lstm_losses(tmp_path, iters=6):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "net.prototxt").write_text(char_lstm_text())
    (tmp_path / "solver.prototxt").write_text(
        f'net: "{tmp_path / "net.prototxt"}"\ntype: "Adam"\nbase_lr: 0.05\n'
        'momentum: 0.9\nmomentum2: 0.999\nlr_policy: "fixed"\nrandom_seed: 4\n'
        'display: 0\nclip_gradients: 5\n')
    solver = caffe.get_solver(str(tmp_path / "solver.prototxt"))
    rng = np.random.default_rng(4)
    text = rng.integers(0, 7, 200)
    losses = []
    for it in range(iters):
        # the script: inputs written through .data, the loss read back
        window = text[it * 18:(it + 1) * 18 + 1]
        solver.net.blobs["ids"].data[...] = window[:-1].reshape(6, 3)
        solver.net.blobs["target"].data[...] = window[1:].reshape(6, 3)
        cont = solver.net.blobs["cont"].data
        cont[...] = 1
        cont[0] = 0 if it == 0 else 1
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
    return losses


def test_char_lstm_through_pycaffe_matches_cpu(gpu_mode, tmp_path):
    gpu = _char_lstm_losses(tmp_path / "gpu")
    backend.set_mode_cpu()
    cpu = _char_lstm_losses(tmp_path / "cpu")
    backend.set_mode_gpu()
    np.testing.assert_allclose(gpu, cpu, rtol=1e-5, atol=1e-6)


def test_share_with_save_and_load(gpu_mode, tmp_path, deploy):
    path = tmp_path / "deploy.prototxt"
    other = caffe.Net(str(path), caffe.TEST)
    other.share_with(deploy)
    deploy.params["ip"][0].data[...] = 0.25  # seen through the other net
    x = np.ones((4, 3), dtype=np.float32)
    other.blobs["x"].data[...] = x
    np.testing.assert_allclose(other.forward()["y"], ref(deploy, x), rtol=1e-6)
    weights = str(tmp_path / "w.caffemodel")
    deploy.save(weights)
    deploy.save_hdf5(weights + ".h5")
    backend.set_mode_cpu()
    cpu = caffe.Net(str(path), caffe.TEST, weights=weights)
    cpu5 = caffe.Net(str(path), caffe.TEST)
    cpu5.load_hdf5(weights + ".h5")
    for net in (cpu, cpu5):
        for k in range(2):
            np.testing.assert_array_equal(net.params["ip"][k].data,
                                          deploy.params["ip"][k].data)
    backend.set_mode_gpu()
    fresh = caffe.Net(str(path), caffe.TEST)
    fresh.copy_from(weights)
    fresh.blobs["x"].data[...] = x
    np.testing.assert_allclose(fresh.forward()["y"], ref(deploy, x), rtol=1e-6)


def test_classifier_in_gpu_mode_matches_cpu(gpu_mode, tmp_path):
    path = tmp_path / "cls.prototxt"
    path.write_text("""name: 'cls'
layer { name: 'data' type: 'Input' top: 'data'
  input_param { shape { dim: 10 dim: 3 dim: 4 dim: 4 } } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
  inner_product_param { num_output: 5 weight_filler { type: 'gaussian' std: 0.1 } } }
layer { name: 'prob' type: 'Softmax' bottom: 'ip' top: 'prob' }
""")
    ims = [np.random.default_rng(k).random((8, 8, 3)).astype(np.float32)
           for k in range(3)]
    kw = dict(image_dims=(6, 6), raw_scale=255, mean=np.array([1.0, 2.0, 3.0]),
              channel_swap=(2, 1, 0))
    caffe.set_random_seed(2)
    gpu = caffe.Classifier(str(path), None, **kw)
    weights = str(tmp_path / "cls.caffemodel")
    gpu.save(weights)
    p_gpu = gpu.predict(ims)
    backend.set_mode_cpu()
    p_cpu = caffe.Classifier(str(path), weights, **kw).predict(ims)
    backend.set_mode_gpu()
    assert type(p_gpu) is np.ndarray
    np.testing.assert_allclose(p_gpu, p_cpu, rtol=1e-5, atol=1e-6)


def test_mode_flip_in_one_script(tmp_path):
    """CPU -> GPU -> CPU between solver steps equals an all-CPU run; a host
    view taken in CPU mode stays the blob's host side on the device."""
    backend.set_mode_cpu()
    ref_solver, ref_losses = _solver_loop(tmp_path / "ref", iters=6)
    solver, losses = _solver_loop(tmp_path / "flip", iters=2)
    w_host = solver.net.params["ip1"][0].data
    rng = np.random.default_rng(1)
    for _ in range(2):  # the inputs _solver_loop consumed
        rng.standard_normal((8, 3))
    with backend.device_module_scope(FAKE):
        backend.set_mode_gpu()
        losses += _steps(solver, rng, 2)
        assert backend.is_device_array(device_array(solver.net.params["ip1"][0]))
        assert solver.net.params["ip1"][0].data is w_host
        backend.set_mode_cpu()
    losses += _steps(solver, rng, 2)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(solver.net.params["ip1"][0].data,
                               ref_solver.net.params["ip1"][0].data, rtol=1e-5)


def test_cpu_mode_copies_nothing(tmp_path):
    backend.set_mode_cpu()
    synced.flush()  # host changes other tests' GPU nets left pending
    synced.reset_copy_counts()
    solver, _ = _solver_loop(tmp_path, iters=3)
    solver.net.params["ip1"][0].data[...] *= 1.0
    solver.net.forward()
    assert counts() == (0, 0)
    assert all(b.heads == (None, None) for b in solver.net.blob_list)
    # host view and layer array are one buffer
    b = solver.net.blobs["h"]
    assert np.shares_memory(b.data, device_array(b))


# -- bad input ------------------------------------------------------------------------
def test_wrong_shape_assignment_names_the_blob(mode, deploy):
    bad = np.zeros((3, 3), dtype=np.float32)
    with pytest.raises(ShapeError, match=r"blob 'x' data: cannot assign an array of "
                                         r"shape \(3, 3\) to shape \(4, 3\)"):
        deploy.blobs["x"].data[...] = bad
    with pytest.raises(ShapeError, match=r"blob 'x' data: .*\(3, 3\).*\(4, 3\)"):
        deploy.blobs["x"].data = bad
    with pytest.raises(ShapeError, match=r"blob 'y' diff: .*\(3, 3\).*\(4, 2\)"):
        deploy.blobs["y"].diff[...] = bad
    with pytest.raises(ShapeError, match=r"blob 'ip\[0\]' data: .*\(3, 3\).*\(2, 3\)"):
        deploy.params["ip"][0].data[...] = bad
    with pytest.raises(ShapeError, match=r"a slice of shape \(3,\)"):
        deploy.blobs["x"].data[0] = np.zeros(4, dtype=np.float32)
    with pytest.raises(ShapeError, match=r"blob 'x' data: .*\(4, 5\).*\(4, 3\)"):
        deploy.forward(x=np.zeros((4, 5), dtype=np.float32))
    # broadcasting that numpy allows still works
    deploy.blobs["x"].data[...] = np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(deploy.blobs["x"].data[2], [0, 1, 2])


# -- whole scripts, unchanged ---------------------------------------------------------
def _load(name: str, path: Path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def test_pycaffe_script_gpu_run_equals_cpu_run(gpu_mode):
    script = pycaffe_script
    gpu = script.main(["--gpu"])
    cpu = script.main([])
    backend.set_mode_gpu()
    assert gpu["mode"] == "gpu" and cpu["mode"] == "cpu"
    assert script.compare(cpu, gpu) == []
    assert cpu["losses"][-1] < cpu["losses"][0]


def test_binary_addition_example_with_its_gpu_switch(gpu_mode, tmp_path, capsys):
    train = _load("binary_addition_train_script",
                  REPO / "examples" / "binary_addition" / "train.py")
    compare = _load("compare_gpu_runs", REPO / "tools" / "compare_gpu_runs.py")
    args = ["--iters", "200", "--check-every", "100", "--num-train", "400",
            "--num-test", "100"]
    train.main([*args, "--outdir", str(tmp_path / "gpu"), "--gpu"])
    gpu_out = capsys.readouterr().out
    train.main([*args, "--outdir", str(tmp_path / "cpu")])
    cpu_out = capsys.readouterr().out
    backend.set_mode_gpu()
    ok, line = compare.compare_binary_addition(cpu_out, gpu_out)
    assert ok, line
    assert "EQUALS" in line and len(compare.progress(gpu_out)) == 2
    # and the comparison can fail: a different loss is reported as such
    changed = gpu_out.replace("train loss ", "train loss 9", 1)
    assert not compare.compare_binary_addition(cpu_out, changed)[0]




def test_recaffe_time_reports_copies(mode, tmp_path, monkeypatch):
    from recaffe.cli.__main__ import main  # noqa: PLC0415

    monkeypatch.syspath_prepend(str(HERE))  # the Python layer's module
    (tmp_path / "net.prototxt").write_text(DEPLOY + """
layer { name: 'dbl' type: 'Python' bottom: 'y' top: 'z'
  python_param { module: 'pycaffe_script' layer: 'Double' } }
""")
    monkeypatch.chdir(tmp_path)
    gpu = [] if mode == "cpu" else ["-gpu", "0"]
    assert main(["time", "-model", "net.prototxt", "-iterations", "3",
                 "-log_file", "time.log", *gpu]) == 0
    lines = [ln.split("] ", 1)[1] for ln in
             (tmp_path / "time.log").read_text().splitlines() if "] " in ln]
    report = [ln for ln in lines if ln.startswith("Host-device copies in 3 ")]
    assert len(report) == 1, lines[-5:]
    words = report[0].split()
    h2d, d2h = int(words[5]), int(words[9])
    if mode == "cpu":
        assert (h2d, d2h) == (0, 0)
    else:
        # the Python layer runs on host arrays: its bottom and top go to the
        # host and back in every forward and backward (the Caffe cost of a
        # Python layer in a GPU net)
        assert h2d > 0 and d2h > 0 and h2d % 3 == 0 and d2h % 3 == 0
