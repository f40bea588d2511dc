"""Representative Caffe model definitions build, run and draw.

Each prototxt under tests/golden/ is parsed, its database-backed data layers are
swapped for Input layers of the same tops (so no dataset is needed), and the net
is built in every phase it defines, run forward/backward on random inputs, and
drawn to DOT text.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import recaffe
from recaffe import draw
from recaffe.io.prototxt import read_prototxt
from recaffe.net_filter import filter_net
from recaffe.proto import caffe_pb2

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "golden")
TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST
DATA_TYPES = ("Data", "HDF5Data", "ImageData", "WindowData")

MODELS = (
    "cifar10_quick_train_test.prototxt",
    "mnist_siamese_train_test.prototxt",
    "mnist_autoencoder.prototxt",
    "caffenet_deploy.prototxt",
    "lrcn_lstm_lm.prototxt",
)


@pytest.fixture(autouse=True)
def _seed():
    recaffe.set_random_seed(1234)


def load(name: str) -> caffe_pb2.NetParameter:
    return read_prototxt(os.path.join(GOLDEN, name), caffe_pb2.NetParameter)


def with_inputs(param: caffe_pb2.NetParameter, shapes: dict) -> caffe_pb2.NetParameter:
    """A copy of ``param`` whose data layers are Input layers of ``shapes[top]``.

    The name and include/exclude rules of each replaced layer are kept, so phase
    and stage filtering still select the same layers.
    """
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    for lp in out.layer:
        if lp.type not in DATA_TYPES:
            continue
        repl = caffe_pb2.LayerParameter(name=lp.name, type="Input", top=list(lp.top))
        repl.include.extend(lp.include)
        repl.exclude.extend(lp.exclude)
        for top in lp.top:
            repl.input_param.shape.add(dim=list(shapes[top]))
        lp.CopyFrom(repl)
    return out


def nonzero(arr) -> bool:
    return bool(np.any(np.asarray(arr) != 0))


def run_train_step(net, fill: dict, loss_name: str) -> float:
    for name, make in fill.items():
        blob = net.blobs[name]
        blob.data[...] = make(blob.data.shape)
    out = net.forward()
    loss = float(out[loss_name])
    assert np.isfinite(loss), f"{loss_name} = {loss}"
    net.backward()
    return loss


def uniform(lo=0.0, hi=1.0):
    return lambda shape: np.random.default_rng(7).uniform(lo, hi, size=shape)


def labels(num_classes: int):
    return lambda shape: np.random.default_rng(8).integers(0, num_classes, size=shape)


# -- parsing and drawing -------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_parses_and_draws(name):
    param = load(name)
    assert param.name and len(param.layer) >= 5
    dot = draw.get_dot_source(param, "LR")
    assert dot.startswith("digraph ")
    for lp in param.layer:
        assert f'"{lp.name}_{lp.type}"' in dot
    as_bytes = draw.draw_net(param, "TB", ext="dot")
    assert as_bytes.decode() == draw.get_dot_source(param, "TB")
    # Phase-filtered drawings keep only that phase's layers.
    for phase in (TRAIN, TEST):
        dot = draw.get_dot_source(param, "LR", phase=phase)
        for lp in param.layer:
            if lp.type == "Accuracy":
                assert (f'"{lp.name}_{lp.type}"' in dot) == (phase == TEST)


# -- CIFAR-10 quick -------------------------------------------------------------------

CIFAR_SHAPES = {"data": (4, 3, 32, 32), "label": (4,)}


@pytest.mark.parametrize("phase", [TRAIN, TEST])
def test_cifar10_quick(phase):
    param = with_inputs(load("cifar10_quick_train_test.prototxt"), CIFAR_SHAPES)
    net = recaffe.Net(param, phase)
    assert ("accuracy" in net.blobs) == (phase == TEST)
    assert net.blobs["pool1"].data.shape == (4, 32, 16, 16)
    assert net.blobs["pool3"].data.shape == (4, 64, 4, 4)
    assert net.params["ip1"][0].data.shape == (64, 1024)
    loss = run_train_step(net, {"data": uniform(-1, 1), "label": labels(10)}, "loss")
    assert loss > 0
    if phase == TEST:
        acc = float(net.blobs["accuracy"].data)
        assert 0.0 <= acc <= 1.0
    for name in ("conv1", "conv3", "ip1", "ip2"):
        assert nonzero(net.params[name][0].diff), name
    assert nonzero(net.params["ip2"][1].diff)


def test_cifar10_quick_data_layers_per_phase():
    param = load("cifar10_quick_train_test.prototxt")
    for phase, source in ((TRAIN, "train"), (TEST, "test")):
        p = caffe_pb2.NetParameter()
        p.CopyFrom(param)
        p.state.phase = phase
        data = [lp for lp in filter_net(p).layer if lp.type == "Data"]
        assert len(data) == 1
        assert data[0].data_param.source.endswith(f"cifar10_{source}_lmdb")
        assert data[0].data_param.backend == caffe_pb2.DataParameter.LMDB
        assert data[0].transform_param.mean_file.endswith("mean.binaryproto")


# -- siamese --------------------------------------------------------------------------

SIAMESE_SHAPES = {"pair_data": (4, 2, 28, 28), "sim": (4,)}
SIAMESE_PARAMS = ("conv1", "conv2", "ip1", "ip2", "feat")


@pytest.mark.parametrize("phase", [TRAIN, TEST])
def test_mnist_siamese(phase):
    param = with_inputs(load("mnist_siamese_train_test.prototxt"), SIAMESE_SHAPES)
    net = recaffe.Net(param, phase)
    assert net.blobs["data"].data.shape == (4, 1, 28, 28)
    assert net.blobs["data_p"].data.shape == (4, 1, 28, 28)
    assert net.blobs["feat"].data.shape == (4, 2)
    assert net.blobs["feat_p"].data.shape == (4, 2)
    fill = {"pair_data": uniform(), "sim": lambda shape: np.array([0, 1, 0, 1])}
    loss = run_train_step(net, fill, "loss")
    assert loss >= 0
    for name in SIAMESE_PARAMS:
        for j in range(2):
            a, b = net.params[name][j], net.params[name + "_p"][j]
            assert np.shares_memory(a.data, b.data), (name, j)
            assert np.shares_memory(a.diff, b.diff), (name, j)
        assert nonzero(net.params[name][0].diff), name
    # Only the first tower's blobs are learnable; the second tower aliases them.
    assert len(net.learnable_params) == 2 * len(SIAMESE_PARAMS)
    # The two towers see different halves of the pair.
    assert not np.array_equal(net.blobs["feat"].data, net.blobs["feat_p"].data)


# -- autoencoder ----------------------------------------------------------------------

AE_SHAPES = {"data": (4, 1, 28, 28)}
AE_SOURCES = {
    (TRAIN, ()): "mnist_train_lmdb",
    (TEST, ()): "mnist_test_lmdb",
    (TEST, ("test-on-train",)): "mnist_train_lmdb",
    (TEST, ("test-on-test",)): "mnist_test_lmdb",
}


@pytest.mark.parametrize(("phase", "stages"), list(AE_SOURCES))
def test_autoencoder_stage_filtering(phase, stages):
    param = load("mnist_autoencoder.prototxt")
    param.state.phase = phase
    param.state.stage.extend(stages)
    kept = filter_net(param).layer
    data = [lp for lp in kept if lp.type == "Data"]
    assert len(data) == 1
    assert data[0].data_param.source.endswith(AE_SOURCES[(phase, stages)])
    # Everything but the data layers is shared by all phases and stages.
    assert len(kept) == len(param.layer) - 2
    assert [lp.name for lp in kept][-3:] == ["loss", "decode1neuron", "l2_error"]


@pytest.mark.parametrize(("phase", "stages"), [(TRAIN, ()), (TEST, ("test-on-train",))])
def test_mnist_autoencoder(phase, stages):
    param = with_inputs(load("mnist_autoencoder.prototxt"), AE_SHAPES)
    net = recaffe.Net(param, phase, stages=list(stages))
    assert net.layer_names.count("data") == 1
    assert net.blobs["flatdata"].data.shape == (4, 784)
    assert net.blobs["encode4"].data.shape == (4, 30)
    assert net.blobs["decode1"].data.shape == (4, 784)
    assert net.blob_loss_weights["cross_entropy_loss"] == 1
    assert net.blob_loss_weights["l2_error"] == 0
    loss = run_train_step(net, {"data": uniform()}, "cross_entropy_loss")
    assert loss > 0
    assert np.isfinite(float(net.blobs["l2_error"].data))
    for name in ("encode1", "encode4", "decode4", "decode1"):
        assert nonzero(net.params[name][0].diff), name
    # The sparse gaussian filler leaves about 15 non-zeros per output row.
    w = net.params["encode1"][0].data
    assert 0 < np.count_nonzero(w) < w.size / 10


# -- CaffeNet -------------------------------------------------------------------------


def caffenet(batch: int, size: int) -> caffe_pb2.NetParameter:
    """The deploy net with input (batch, 3, size, size) and gaussian weights."""
    param = load("caffenet_deploy.prototxt")
    shape = param.layer[0].input_param.shape[0]
    del shape.dim[:]
    shape.dim.extend([batch, 3, size, size])
    for lp in param.layer:
        sub = {"Convolution": lp.convolution_param,
               "InnerProduct": lp.inner_product_param}.get(lp.type)
        if sub is not None:
            sub.weight_filler.type = "gaussian"
            sub.weight_filler.std = 0.01
            sub.bias_filler.type = "constant"
            sub.bias_filler.value = 0.1
    param.force_backward = True
    return param


def test_caffenet_deploy_as_written():
    param = load("caffenet_deploy.prototxt")
    assert list(param.layer[0].input_param.shape[0].dim) == [10, 3, 227, 227]
    by_name = {lp.name: lp for lp in param.layer}
    conv1 = by_name["conv1"].convolution_param
    assert (list(conv1.kernel_size), list(conv1.stride)) == ([11], [4])
    assert by_name["conv2"].convolution_param.group == 2
    assert by_name["norm1"].lrn_param.local_size == 5
    assert by_name["fc8"].inner_product_param.num_output == 1000


def test_caffenet_shapes_full_size():
    # Shapes only: reshape-time checks on the real 227x227 geometry, no fillers.
    net = recaffe.Net(load("caffenet_deploy.prototxt"), TEST)
    assert net.blobs["conv1"].data.shape == (10, 96, 55, 55)
    assert net.blobs["pool1"].data.shape == (10, 96, 27, 27)
    assert net.blobs["conv2"].data.shape == (10, 256, 27, 27)
    assert net.params["conv2"][0].data.shape == (256, 48, 5, 5)
    assert net.blobs["pool5"].data.shape == (10, 256, 6, 6)
    assert net.params["fc6"][0].data.shape == (4096, 9216)
    assert net.blobs["prob"].data.shape == (10, 1000)


def test_caffenet_forward_backward():
    # 99x99 keeps every layer (conv1 23, pool1 11, pool2 5, pool5 2) but is fast.
    net = recaffe.Net(caffenet(2, 99), TEST)
    assert net.blobs["pool5"].data.shape == (2, 256, 2, 2)
    rng = np.random.default_rng(3)
    data = rng.uniform(-100, 100, size=(2, 3, 99, 99))
    out = net.forward(data=data)
    prob = out["prob"]
    assert prob.shape == (2, 1000)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(prob >= 0)
    # Dropout is the identity at TEST: the same input gives the same output.
    np.testing.assert_allclose(net.forward(data=data)["prob"], prob, rtol=1e-6)
    diffs = net.backward(prob=rng.standard_normal(prob.shape))
    assert diffs["data"].shape == data.shape and nonzero(diffs["data"])
    for name in ("conv1", "conv2", "conv5", "fc6", "fc8"):
        assert nonzero(net.params[name][0].diff), name


# -- LRCN language model -------------------------------------------------------------

T, N, V = 5, 3, 8801
LRCN_TOPS = ("cont_sentence", "input_sentence", "target_sentence")
LRCN_SHAPES = dict.fromkeys(LRCN_TOPS, (T, N))


def _cont(shape):
    cont = np.ones(shape)
    cont[0] = 0
    cont[3, 1] = 0  # a second sentence starts mid-sequence in stream 1
    return cont


def _targets(shape):
    tgt = np.random.default_rng(9).integers(0, V, size=shape).astype(float)
    tgt[-1, 2] = -1  # padding
    tgt[-2, 2] = -1
    return tgt


@pytest.mark.parametrize("phase", [TRAIN, TEST])
def test_lrcn_lstm_language_model(phase):
    param = with_inputs(load("lrcn_lstm_lm.prototxt"), LRCN_SHAPES)
    net = recaffe.Net(param, phase)
    assert ("accuracy" in net.blobs) == (phase == TEST)
    fill = {"cont_sentence": _cont, "input_sentence": labels(V),
            "target_sentence": _targets}
    loss = run_train_step(net, fill, "cross_entropy_loss")
    assert loss > 0
    assert net.blob_loss_weights["cross_entropy_loss"] == 20
    assert net.blobs["embedded_input_sentence"].data.shape == (T, N, 1000)
    assert net.blobs["lstm1"].data.shape == (T, N, 1000)
    assert net.blobs["predict"].data.shape == (T, N, V)
    assert net.params["predict"][0].data.shape == (V, 1000)
    # Near-uniform predictions at init: about log(V) per word. The top holds the
    # unweighted loss; the weight 20 scales the gradient.
    assert loss == pytest.approx(np.log(V), rel=0.05)
    if phase == TEST:
        acc = float(net.blobs["accuracy"].data)
        assert 0.0 <= acc <= 1.0
    for name in ("embedding", "lstm1", "predict"):
        assert nonzero(net.params[name][0].diff), name
    # Padded targets produce no gradient at their predictions; the others get
    # 20 * (softmax - onehot) / (number of valid targets).
    pdiff = net.blobs["predict"].diff
    assert not nonzero(pdiff[-2:, 2])
    logits = net.blobs["predict"].data[1, 0].astype(np.float64)
    expect = np.exp(logits - logits.max())
    expect /= expect.sum()
    expect[int(net.blobs["target_sentence"].data[1, 0])] -= 1
    valid = T * N - 2
    np.testing.assert_allclose(pdiff[1, 0], 20 * expect / valid, rtol=1e-3, atol=1e-9)
