"""Every member of recaffe's pycaffe surface, with pycaffe's test_net checks.

Every test runs in CPU mode and in GPU mode (the ``mode`` fixture of
tests/conftest.py: the CPU stand-in device everywhere, CuPy where a device is
present): the surface is host numpy in both, as pycaffe's is.
"""

import collections
import importlib
import sys

import numpy as np
import pytest
from shared_nets import DEPLOY, deploy_net, deploy_ref

import recaffe
import recaffe as caffe
from recaffe.proto import caffe_pb2

SIMPLE_NET = """name: 'testnet' force_backward: true
layer { type: 'DummyData' name: 'data' top: 'data' top: 'label'
  dummy_data_param { num: 5 channels: 2 height: 3 width: 4
    num: 5 channels: 1 height: 1 width: 1
    data_filler { type: 'gaussian' std: 1 }
    data_filler { type: 'constant' } } }
layer { type: 'Convolution' name: 'conv' bottom: 'data' top: 'conv'
  convolution_param { num_output: 11 kernel_size: 2 pad: 3
    weight_filler { type: 'gaussian' std: 1 }
    bias_filler { type: 'constant' value: 2 } }
    param { decay_mult: 1 } param { decay_mult: 0 } }
layer { type: 'InnerProduct' name: 'ip' bottom: 'conv' top: 'ip_blob'
  inner_product_param { num_output: 13
    weight_filler { type: 'gaussian' std: 2.5 }
    bias_filler { type: 'constant' value: -3 } } }
layer { type: 'SoftmaxWithLoss' name: 'loss' bottom: 'ip_blob' bottom: 'label'
  top: 'loss' }
"""


@pytest.fixture(autouse=True)
def _in_each_mode(mode):
    """Run every test of this module in CPU mode and in GPU mode."""
    return mode


@pytest.fixture
def net_file(tmp_path):
    path = tmp_path / "simple.prototxt"
    path.write_text(SIMPLE_NET)
    return str(path)


@pytest.fixture
def net(net_file):
    n = caffe.Net(net_file, caffe.TRAIN)
    rng = np.random.default_rng(0)
    n.blobs["label"].data[...] = rng.integers(0, 13, n.blobs["label"].data.shape)
    return n


# -- package contents ---------------------------------------------------------------

def test_package_names():
    for name in ["Net", "NetSpec", "layers", "params", "to_proto", "TRAIN", "TEST",
                 "Layer", "Blob", "set_mode_cpu", "set_mode_gpu", "set_device",
                 "set_random_seed", "init_log", "log", "layer_type_list", "has_nccl",
                 "solver_count", "set_solver_count", "solver_rank", "set_solver_rank",
                 "set_multiprocess", "Timer", "io", "net_spec", "proto", "Classifier",
                 "Detector", "draw", "coord_map"]:
        assert hasattr(recaffe, name), name
    assert recaffe.__version__ == "1.0.0"
    assert caffe.TRAIN == 0 and caffe.TEST == 1
    assert recaffe.proto.caffe_pb2.NetParameter is caffe_pb2.NetParameter
    assert recaffe.Layer is importlib.import_module("recaffe.layer").Layer


def test_lazy_solver_and_unroll_names():
    for name in ["get_solver", "SGDSolver", "NesterovSolver", "AdaGradSolver",
                 "RMSPropSolver", "AdaDeltaSolver", "AdamSolver", "unroll"]:
        assert callable(getattr(recaffe, name)), name
    with pytest.raises(AttributeError):
        recaffe.no_such_name  # noqa: B018


def test_layers_is_package_and_netspec_factory():
    from recaffe import layers as L

    top = L.InnerProduct(L.Input(), num_output=3)
    assert top.fn.type_name == "InnerProduct"
    # still the package of layer implementations
    assert importlib.import_module("recaffe.layers.inner_product").__name__ == (
        "recaffe.layers.inner_product")
    assert L is sys.modules["recaffe.layers"]
    with pytest.raises(AttributeError):
        L.not_a_layer_type  # noqa: B018


def test_layer_type_list():
    types = caffe.layer_type_list()
    assert types == sorted(types)
    for t in ("Data", "Convolution", "InnerProduct", "Python", "LSTM", "RNN"):
        assert t in types


def test_multiprocess_stubs():
    assert caffe.has_nccl() is False
    assert caffe.solver_count() == 1 and caffe.solver_rank() == 0
    caffe.set_solver_count(4)
    caffe.set_solver_rank(2)
    caffe.set_multiprocess(True)
    try:
        assert caffe.solver_count() == 4 and caffe.solver_rank() == 2
    finally:
        caffe.set_solver_count(1)
        caffe.set_solver_rank(0)
        caffe.set_multiprocess(False)


def test_timer():
    t = caffe.Timer()
    t.start()
    sum(range(10000))
    t.stop()
    ms = t.ms
    assert ms >= 0 and t.ms == ms


def test_mode_seed_and_log():
    caffe.set_mode_cpu()
    caffe.set_device(0)
    caffe.set_random_seed(1701)
    caffe.init_log()
    caffe.init_log(0)
    caffe.init_log(0, True)
    caffe.log("hello from the test")


def test_blob_api():
    b = caffe.Blob((2, 3))
    assert list(b.shape) == [2, 3] and b.count == 6
    assert (b.num, b.channels, b.height, b.width) == (2, 3, 1, 1)
    b.reshape(4, 5)
    assert b.data.shape == (4, 5) and b.diff.shape == (4, 5)
    with pytest.raises(RuntimeError):
        b.reshape(4, 5, foo=1)
    b.reshape()
    assert b.count == 1 and b.data.shape == ()


# -- pycaffe's test_net.py -------------------------------------------------------------

def test_memory(net):
    params = [b for p in net.params.values() for b in p]
    blobs = list(net.blobs.values())
    del net
    total = 0
    for p in params:
        total += p.data.sum() + p.diff.sum()
    for bl in blobs:
        total += bl.data.sum() + bl.diff.sum()
    assert np.isfinite(total)


def test_layer_dict(net):
    layer_dict = net.layer_dict
    assert list(layer_dict.keys()) == list(net._layer_names)
    for i, name in enumerate(net._layer_names):
        assert layer_dict[name].type == net.layers[i].type


def test_forward_backward(net):
    out = net.forward()
    assert set(out) == {"loss"}
    diffs = net.backward()
    assert diffs == {}


def test_forward_start_end(net):
    conv_blob = net.blobs["conv"]
    ip_blob = net.blobs["ip_blob"]
    sample = np.random.default_rng(1).standard_normal(conv_blob.data.shape)
    conv_blob.data[...] = sample
    forward_blob = net.forward(start="ip", end="ip")
    assert "ip_blob" in forward_blob
    w = net.params["ip"][0].data
    b = net.params["ip"][1].data
    manual = sample.reshape(sample.shape[0], -1) @ w.T + b
    np.testing.assert_allclose(ip_blob.data, manual, rtol=1e-3, atol=1e-5)


def test_backward_start_end(net):
    conv_blob = net.blobs["conv"]
    ip_blob = net.blobs["ip_blob"]
    sample = np.random.default_rng(2).standard_normal(ip_blob.data.shape)
    ip_blob.diff[...] = sample
    backward_blob = net.backward(start="ip", end="ip")
    assert "conv" in backward_blob
    manual = (sample @ net.params["ip"][0].data).reshape(conv_blob.diff.shape)
    np.testing.assert_allclose(conv_blob.diff, manual, rtol=1e-3, atol=1e-5)


def test_clear_param_diffs(net):
    net.forward()
    net.backward()
    diff = net.params["conv"][0].diff
    assert np.abs(diff).max() > 0
    net.clear_param_diffs()
    assert not np.any(diff)


def test_inputs_outputs(net):
    assert net.inputs == []
    assert net.outputs == ["loss"]


def test_top_bottom_names(net):
    assert net.top_names == collections.OrderedDict([
        ("data", ["data", "label"]), ("conv", ["conv"]), ("ip", ["ip_blob"]),
        ("loss", ["loss"])])
    assert net.bottom_names == collections.OrderedDict([
        ("data", []), ("conv", ["data"]), ("ip", ["conv"]),
        ("loss", ["ip_blob", "label"])])


def test_private_names_and_ids(net):
    assert list(net._blob_names) == list(net.blobs)
    assert list(net._layer_names) == ["data", "conv", "ip", "loss"]
    assert net._top_ids(2) == [net._blob_names.index("ip_blob")]
    assert net._bottom_ids(2) == [net._blob_names.index("conv")]
    assert net._inputs == [] and [net._blob_names[i] for i in net._outputs] == ["loss"]
    assert net.blob_loss_weights["loss"] == 1 and net.blob_loss_weights["conv"] == 0


def test_save_and_read(net, net_file, tmp_path):
    weights = str(tmp_path / "w.caffemodel")
    net.save(weights)
    for net2 in (caffe.Net(net_file, weights, caffe.TRAIN),
                 caffe.Net(net_file, caffe.TRAIN, weights=weights)):
        for name in net.params:
            for i in range(len(net.params[name])):
                np.testing.assert_array_equal(net.params[name][i].data,
                                              net2.params[name][i].data)


def test_save_hdf5(net, net_file, tmp_path):
    weights = str(tmp_path / "w.caffemodel.h5")
    net.save_hdf5(weights)
    net2 = caffe.Net(net_file, caffe.TRAIN)
    net2.load_hdf5(weights)
    for name in net.params:
        for i in range(len(net.params[name])):
            np.testing.assert_array_equal(net.params[name][i].data,
                                          net2.params[name][i].data)


def test_callbacks(net):
    seen = []
    net.before_forward(lambda i: seen.append(("bf", i)))
    net.after_forward(lambda i: seen.append(("af", i)))
    net.before_backward(lambda i: seen.append(("bb", i)))
    net.after_backward(lambda i: seen.append(("ab", i)))
    net.forward()
    net.backward()
    n = len(net.layers)
    fwd = [x for i in range(n) for x in (("bf", i), ("af", i))]
    bwd = [x for i in reversed(range(n)) for x in (("bb", i), ("ab", i))]
    assert seen == fwd + bwd


# -- forward/backward with inputs, batching ------------------------------------------



@pytest.fixture
def deploy(tmp_path):
    return deploy_net(tmp_path)



def test_forward_kwargs_checks(deploy):
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    out = deploy.forward(x=x)
    assert set(out) == {"y"}
    np.testing.assert_allclose(out["y"], deploy_ref(deploy, x), rtol=1e-5)
    assert out["y"] is deploy.blobs["y"].data  # a live view
    with pytest.raises(Exception, match="Input blob arguments do not match net inputs"):
        deploy.forward(z=x)
    with pytest.raises(Exception, match="Input is not batch sized"):
        deploy.forward(x=x[:3])
    out = deploy.forward(blobs=["x"], x=x)
    assert set(out) == {"x", "y"}


def test_backward_kwargs_checks(deploy):
    deploy.forward()
    d = np.ones((4, 2), dtype=np.float32)
    with pytest.raises(Exception, match="Top diff arguments do not match net outputs"):
        deploy.backward(x=d)
    with pytest.raises(Exception, match="Diff is not batch sized"):
        deploy.backward(y=d[:1])
    out = deploy.backward(y=d)
    assert set(out) == {"x"}


def test_forward_all_pads_and_strips(deploy):
    x = np.random.default_rng(3).standard_normal((10, 3)).astype(np.float32)
    out = deploy.forward_all(x=x)
    assert out["y"].shape == (10, 2)
    np.testing.assert_allclose(out["y"], deploy_ref(deploy, x), rtol=1e-5, atol=1e-5)
    out = deploy.forward_all(blobs=["x"], x=x)
    np.testing.assert_allclose(out["x"], x)


def test_forward_backward_all(deploy):
    x = np.random.default_rng(4).standard_normal((6, 3)).astype(np.float32)
    dy = np.ones((6, 2), dtype=np.float32)
    outs, diffs = deploy.forward_backward_all(x=x, y=dy)
    assert outs["y"].shape == (6, 2) and diffs["x"].shape == (6, 3)
    np.testing.assert_allclose(diffs["x"], dy @ deploy.params["ip"][0].data, rtol=1e-5)
    # without top diffs (pycaffe fails here; recaffe runs the backward anyway)
    outs, diffs = deploy.forward_backward_all(x=x)
    assert outs["y"].shape == (6, 2) and diffs["x"].shape == (6, 3)


def test_set_input_arrays(tmp_path):
    path = tmp_path / "mem.prototxt"
    path.write_text("""layer { name: 'm' type: 'MemoryData' top: 'data' top: 'label'
      memory_data_param { batch_size: 2 channels: 1 height: 2 width: 2 } }""")
    net = caffe.Net(str(path), caffe.TEST)
    data = np.arange(16, dtype=np.float32).reshape(4, 1, 2, 2)
    labels = np.array([0, 1, 2, 3], dtype=np.float32)
    net.set_input_arrays(data, labels)
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, data[:2])
    np.testing.assert_array_equal(net.blobs["label"].data.ravel(), labels[:2])
    other = tmp_path / "other.prototxt"
    other.write_text(DEPLOY)
    with pytest.raises(RuntimeError, match="MemoryData"):
        caffe.Net(str(other), caffe.TEST).set_input_arrays(data, labels)


def test_levels_and_stages(tmp_path):
    path = tmp_path / "rules.prototxt"
    path.write_text("""
    layer { name: 'data' type: 'DummyData' top: 'data'
      dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
    layer { name: 'NoLevel' type: 'InnerProduct' bottom: 'data' top: 'NoLevel'
      inner_product_param { num_output: 1 } }
    layer { name: 'Level0Only' type: 'InnerProduct' bottom: 'data' top: 'Level0Only'
      include { min_level: 0 max_level: 0 } inner_product_param { num_output: 1 } }
    layer { name: 'Level1Only' type: 'InnerProduct' bottom: 'data' top: 'Level1Only'
      include { min_level: 1 max_level: 1 } inner_product_param { num_output: 1 } }
    layer { name: 'A' type: 'InnerProduct' bottom: 'data' top: 'A'
      include { stage: 'A' } inner_product_param { num_output: 1 } }
    layer { name: 'AandB' type: 'InnerProduct' bottom: 'data' top: 'AandB'
      include { stage: 'A' stage: 'B' } inner_product_param { num_output: 1 } }
    """)
    names = lambda n: [b for b in n.blobs if "data" not in b]  # noqa: E731
    assert names(caffe.Net(str(path), caffe.TEST, level=0)) == ["NoLevel", "Level0Only"]
    assert names(caffe.Net(str(path), caffe.TEST, level=1)) == ["NoLevel", "Level1Only"]
    assert names(caffe.Net(str(path), caffe.TEST, stages=["A"])) == [
        "NoLevel", "Level0Only", "A"]
    assert names(caffe.Net(str(path), caffe.TEST, stages=["A", "B"])) == [
        "NoLevel", "Level0Only", "A", "AandB"]


CLASSIFIER_NET = """name: 'cls'
layer { name: 'data' type: 'Input' top: 'data'
  input_param { shape { dim: 10 dim: 3 dim: 4 dim: 4 } } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
  inner_product_param { num_output: 5 weight_filler { type: 'gaussian' std: 0.1 } } }
layer { name: 'prob' type: 'Softmax' bottom: 'ip' top: 'prob' }
"""


def test_classifier_predict(tmp_path):
    path = tmp_path / "cls.prototxt"
    path.write_text(CLASSIFIER_NET)
    clf = caffe.Classifier(str(path), None, image_dims=(6, 6), raw_scale=255,
                           mean=np.array([1.0, 2.0, 3.0]), channel_swap=(2, 1, 0))
    ims = [np.random.default_rng(k).random((8, 8, 3)).astype(np.float32)
           for k in range(3)]
    p = clf.predict(ims)
    assert p.shape == (3, 5)
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-5)
    p_center = clf.predict(ims, oversample=False)
    assert p_center.shape == (3, 5)


def test_detector_crop_and_windows(tmp_path):
    path = tmp_path / "det.prototxt"
    path.write_text(CLASSIFIER_NET)
    det = caffe.Detector(str(path), None, context_pad=1, mean=np.zeros(3))
    assert list(det.crop_dims) == [4, 4, 3]
    im = np.random.default_rng(0).random((20, 20, 3)).astype(np.float32)
    out = det.crop(im, np.array([2, 3, 10, 12]))
    assert out.shape == (4, 4, 3)
    det.context_pad = None
    np.testing.assert_array_equal(det.crop(im, np.array([2, 3, 10, 12])),
                                  im[2:10, 3:12])
