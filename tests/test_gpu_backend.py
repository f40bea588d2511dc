"""GPU mode plumbing that a CPU can check: errors and hints without CuPy or a
device, device_query, the mode generation, the backend helpers, and the ``xp``
fixture (its cupy half runs only on a GPU machine)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import recaffe
from recaffe import backend, device
from recaffe.backend import cuda_kernels
from recaffe.errors import BackendError
from recaffe.io.prototxt import parse_prototxt
from recaffe.net import Net
from recaffe.proto import caffe_pb2


def test_set_mode_gpu_without_cupy_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    with pytest.raises(BackendError) as exc:
        recaffe.set_mode_gpu()
    msg = str(exc.value)
    assert "CuPy" in msg and "pip install" in msg
    assert "cupy-cuda12x" in msg and "cupy-cuda13x" in msg
    assert backend.mode() == "cpu"
    assert not backend.cupy_available() and not backend.gpu_available()


def _module_without_device(exc=None, count=0):
    def count_fn():
        if exc is not None:
            raise exc
        return count

    mod = types.ModuleType("cupy")
    mod.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=count_fn),
        Device=lambda i: types.SimpleNamespace(use=lambda: None))
    return mod


@pytest.mark.parametrize("mod", [
    _module_without_device(RuntimeError("cudaErrorNoDevice: no CUDA-capable device")),
    _module_without_device(count=0),
])
def test_set_mode_gpu_without_a_device(mod, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", mod)
    with pytest.raises(BackendError, match=r"no (usable )?CUDA device"):
        backend.set_mode_gpu()
    assert backend.mode() == "cpu"


def test_set_device_checks_the_id():
    with pytest.raises(BackendError, match=">= 0"):
        backend.set_device(-1)
    backend.set_device(0)
    assert backend.device_id() == 0


def test_device_query_on_the_cpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    lines = backend.device_query()
    assert lines[0].startswith("Mode: cpu")
    assert any("CuPy: not available" in line for line in lines)


def test_generation_counts_mode_changes():
    g = backend.generation()
    backend.set_mode_cpu()  # no change: no bump
    assert backend.generation() == g


def test_ensure_device_is_a_no_op_without_a_mode_change():
    net = Net(parse_prototxt("""
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
  inner_product_param { num_output: 2 } }
""", caffe_pb2.NetParameter), caffe_pb2.TEST)
    assert device.ensure_device(net)       # first call: walked once
    assert not device.ensure_device(net)   # then a compare
    assert all(type(b._data) is np.ndarray for b in net.blob_list)


def test_helpers_on_host_arrays():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert backend.to_host(a) is a
    assert backend.get_array_module(a) is np
    assert not backend.is_device_array(a)
    dst = np.zeros((2, 3), np.float32)
    backend.copy_into(dst, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(dst, a + 1)
    assert backend.scalar(np.array(2.5)) == 2.5
    assert backend.all_finite([a, dst])
    assert not backend.all_finite([a, np.array([1.0, np.inf])])
    t = np.zeros(3)
    backend.scatter_add(t, np.array([0, 0, 2]), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(t, [3.0, 0.0, 3.0])


def test_fused_kernels_are_only_for_cupy():
    assert not cuda_kernels.enabled(np)
    assert not cuda_kernels.usable(np, np.zeros(3))


def test_xp_fixture_runs_a_net(xp):
    """Runs with numpy here; the cupy parameter runs on a GPU machine."""
    backend.set_random_seed(0)
    net = Net(parse_prototxt("""
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"
  inner_product_param { num_output: 2 weight_filler { type: "constant" value: 1 } } }
""", caffe_pb2.NetParameter), caffe_pb2.TEST)
    assert backend.get_array_module(net.blobs["x"].data) is xp
    backend.copy_into(net.blobs["x"].data, np.ones((2, 3), np.float32))
    net.forward_prefilled()
    np.testing.assert_array_equal(backend.to_host(net.blobs["y"].data),
                                  np.full((2, 2), 3))
