"""NetSpec: pycaffe's test_net_spec checks and golden prototxt texts.

Golden files: tests/golden/netspec_*.prototxt. To regenerate them after an
intended change, run with RECAFFE_REGEN_GOLDEN=1 and inspect the diff.
"""

import os
import pathlib
import re
import sys

import pytest

import recaffe as caffe
from recaffe import layers as L
from recaffe import params as P
from recaffe.net_spec import Function, NetSpec, Top, param_name_dict, to_proto
from recaffe.proto import caffe_pb2

GOLDEN = pathlib.Path(__file__).parent / "golden"
ROOT = pathlib.Path(__file__).resolve().parents[1]


def lenet(batch_size):
    n = caffe.NetSpec()
    n.data, n.label = L.DummyData(shape=[dict(dim=[batch_size, 1, 28, 28]),
                                         dict(dim=[batch_size, 1, 1, 1])],
                                  transform_param=dict(scale=1. / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20,
                            weight_filler=dict(type='xavier'))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50,
                            weight_filler=dict(type='xavier'))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.ip1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type='xavier'))
    n.relu1 = L.ReLU(n.ip1, in_place=True)
    n.ip2 = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type='xavier'))
    n.loss = L.SoftmaxWithLoss(n.ip2, n.label)
    return n.to_proto()


def anon_lenet(batch_size):
    data, label = L.DummyData(shape=[dict(dim=[batch_size, 1, 28, 28]),
                                     dict(dim=[batch_size, 1, 1, 1])],
                              transform_param=dict(scale=1. / 255), ntop=2)
    conv1 = L.Convolution(data, kernel_size=5, num_output=20,
                          weight_filler=dict(type='xavier'))
    pool1 = L.Pooling(conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    conv2 = L.Convolution(pool1, kernel_size=5, num_output=50,
                          weight_filler=dict(type='xavier'))
    pool2 = L.Pooling(conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    ip1 = L.InnerProduct(pool2, num_output=500, weight_filler=dict(type='xavier'))
    relu1 = L.ReLU(ip1, in_place=True)
    ip2 = L.InnerProduct(relu1, num_output=10, weight_filler=dict(type='xavier'))
    loss = L.SoftmaxWithLoss(ip2, label)
    return loss.to_proto()


def silent_net():
    n = caffe.NetSpec()
    n.data, n.data2 = L.DummyData(shape=dict(dim=3), ntop=2)
    n.silence_data = L.Silence(n.data, ntop=0)
    n.silence_data2 = L.Silence(n.data2, ntop=0)
    return n.to_proto()


def misc_net():
    """In-place ReLU, ntop=2, a Python layer, include/exclude rules, loss weights."""
    n = caffe.NetSpec()
    n.x, n.y = L.Input(shape=[dict(dim=[2, 6]), dict(dim=[2, 3])], ntop=2)
    n.train_x = L.Power(n.x, scale=2.0, include=dict(phase=caffe.TRAIN))
    n.test_x = L.Power(n.x, scale=0.5, include=[dict(phase=caffe.TEST, stage=['val']),
                                                  dict(min_level=1)])
    left, right = L.Slice(n.x, slice_param=dict(axis=1, slice_point=[3]), ntop=2)
    n.relu = L.ReLU(left, in_place=True)
    n.py = L.Python(n.relu, right, module='my_layers', layer='AddLayer',
                    param_str='{"alpha": 0.5}', exclude=dict(phase=caffe.TEST))
    n.ip = L.InnerProduct(n.py, num_output=3, bias_term=False,
                          weight_filler=dict(type='gaussian', std=0.01),
                          param=dict(lr_mult=1, decay_mult=0), propagate_down=[True])
    n.loss = L.EuclideanLoss(n.ip, n.y, loss_weight=0.25)
    return n.to_proto()


def seed_rnn():
    sys.path.insert(0, str(ROOT / "examples" / "binary_addition"))
    try:
        import manual_unroll
    finally:
        sys.path.pop(0)
    return manual_unroll.binary_addition_train(3, 2, source="train.txt")


GOLDEN_NETS = {"lenet": lambda: lenet(64), "seed_rnn": seed_rnn, "misc": misc_net}


@pytest.mark.parametrize("name", sorted(GOLDEN_NETS))
def test_golden_text(name):
    path = GOLDEN / f"netspec_{name}.prototxt"
    text = str(GOLDEN_NETS[name]())
    if os.environ.get("RECAFFE_REGEN_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


# -- pycaffe's test_net_spec.py ----------------------------------------------------

def test_lenet_names_and_in_place(tmp_path):
    net_proto = lenet(50)
    # the in-place ReLU keeps its assigned name and reuses ip1
    assert net_proto.layer[6].name == "relu1"
    assert net_proto.layer[6].bottom == net_proto.layer[6].top == ["ip1"]
    assert net_proto.layer[7].bottom == ["ip1"]
    assert [lp.name for lp in net_proto.layer] == [
        "data", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "loss"]
    path = tmp_path / "lenet.prototxt"
    path.write_text(str(net_proto))
    net = caffe.Net(str(path), caffe.TEST)
    assert len(net.layers) == 9


def test_anon_lenet(tmp_path):
    net_proto = anon_lenet(50)
    assert net_proto.layer[6].bottom == net_proto.layer[6].top
    assert [lp.name for lp in net_proto.layer] == [
        "DummyData1", "Convolution1", "Pooling1", "Convolution2", "Pooling2",
        "InnerProduct1", "ReLU1", "InnerProduct2", "SoftmaxWithLoss1"]
    assert list(net_proto.layer[0].top) == ["DummyData1", "DummyData2"]
    assert list(net_proto.layer[8].bottom) == ["InnerProduct2", "DummyData2"]
    path = tmp_path / "anon.prototxt"
    path.write_text(str(net_proto))
    net = caffe.Net(str(path), caffe.TEST)
    assert len(net.layers) == 9


def test_zero_tops(tmp_path):
    net_proto = silent_net()
    assert [lp.name for lp in net_proto.layer] == ["data", "silence_data",
                                                   "silence_data2"]
    assert list(net_proto.layer[1].top) == []
    path = tmp_path / "silent.prototxt"
    path.write_text(str(net_proto))
    net = caffe.Net(str(path), caffe.TRAIN)
    assert net.forward() == {}


def test_type_error():
    data = L.DummyData(ntop=2)
    r = r"^Silence input 0 is not a Top \(type is <(type|class) 'tuple'>\)$"
    with pytest.raises(TypeError, match=r):
        L.Silence(data, ntop=0)
    L.Silence(*data, ntop=0)


# -- behaviour of spec §2 ----------------------------------------------------------

def test_return_values_by_ntop():
    fn = L.Silence(L.Input(), ntop=0)
    assert isinstance(fn, Function) and fn.ntop == 0
    top = L.ReLU(L.Input())
    assert isinstance(top, Top) and top.n == 0
    tops = L.Slice(L.Input(), ntop=3)
    assert isinstance(tops, tuple) and [t.n for t in tops] == [0, 1, 2]
    assert all(t.fn is tops[0].fn for t in tops)
    assert "ntop" not in tops[0].fn.params and "in_place" not in top.fn.params


def test_params_enum_constants():
    assert P.Pooling.MAX == 0 and P.Pooling.AVE == 1
    assert P.Data.LMDB == 1
    assert P.Eltwise.SUM == 1 and P.Eltwise.PROD == 0
    assert P.Loss.VALID == 1
    with pytest.raises(AttributeError):
        _ = P.Pooling.NOT_A_CONSTANT


def test_param_name_table():
    table = param_name_dict()
    assert table["InnerProduct"] == "inner_product"
    assert table["Transformation"] == "transform"
    assert table["Loss"] == "loss"
    assert table["HDF5Data"] == "hdf5_data"
    assert table["Recurrent"] == "recurrent"
    for t in ("LSTM", "RNN", "Deconvolution", "SoftmaxWithLoss", "EuclideanLoss"):
        assert t not in table


def test_netspec_mapping_protocol():
    n = NetSpec()
    n.a = L.Input()
    n["b"] = L.ReLU(n.a)
    n.c = L.TanH(n.b)
    n.a = n.a  # re-assigning keeps the position
    assert n.keys() == ["a", "b", "c"]
    assert n["c"] is n.c and n.vals()[2] is n.c
    del n["c"]
    assert n.keys() == ["a", "b"]
    with pytest.raises(KeyError):
        n.missing  # noqa: B018


def test_kwarg_fallback_and_errors():
    # unknown to the type's param message -> LayerParameter field
    p = to_proto(L.InnerProduct(L.Input(), num_output=2, loss_weight=[1.0], name="fc",
                                propagate_down=False, phase=caffe.TEST))
    lp = p.layer[1]
    assert lp.name == "fc" and list(lp.loss_weight) == [1.0]
    assert list(lp.propagate_down) == [False] and lp.phase == caffe.TEST
    # unknown everywhere -> AttributeError
    with pytest.raises(AttributeError):
        to_proto(L.InnerProduct(L.Input(), no_such_field=1))
    # a type without a param message needs its *_param explicitly
    with pytest.raises(AttributeError):
        to_proto(L.LSTM(L.Input(), L.Input(), num_output=3))
    p = to_proto(L.LSTM(L.Input(), L.Input(), recurrent_param=dict(num_output=3)))
    assert p.layer[-1].recurrent_param.num_output == 3
    # tuples are not lists, empty lists fail
    with pytest.raises(TypeError):
        to_proto(L.Convolution(L.Input(), kernel_size=(3, 3), num_output=1))
    with pytest.raises(IndexError):
        to_proto(L.Convolution(L.Input(), kernel_size=[], num_output=1))


def test_repeated_and_nested_values():
    p = to_proto(L.Convolution(L.Input(), kernel_size=[3, 5], num_output=4, pad=1,
                               param=[dict(lr_mult=1), dict(lr_mult=2)],
                               include=dict(phase=caffe.TRAIN), weight_filler={}))
    lp = p.layer[1]
    assert list(lp.convolution_param.kernel_size) == [3, 5]
    assert list(lp.convolution_param.pad) == [1]
    assert [q.lr_mult for q in lp.param] == [1, 2]
    assert len(lp.include) == 1 and lp.include[0].phase == caffe.TRAIN
    assert not lp.convolution_param.HasField("weight_filler")


def test_to_proto_of_several_tops_and_unreached_layers():
    x = L.Input()
    a = L.ReLU(x)
    b = L.TanH(x)
    L.Sigmoid(x)  # never reached: not emitted
    p = to_proto(a, b)
    assert [lp.name for lp in p.layer] == ["Input1", "ReLU1", "TanH1"]
    assert not p.HasField("name")


def test_automatic_names_of_in_place_layers():
    x = L.Input()
    r = L.ReLU(x, in_place=True)
    p = to_proto(L.TanH(r))
    assert [(lp.name, list(lp.bottom), list(lp.top)) for lp in p.layer] == [
        ("Input1", [], ["Input1"]), ("ReLU1", ["Input1"], ["Input1"]),
        ("TanH1", ["Input1"], ["TanH1"])]


def test_object_under_two_names_takes_the_later():
    n = NetSpec()
    n.first = L.Input()
    n.second = n.first
    p = n.to_proto()
    assert p.layer[0].name == "second" and list(p.layer[0].top) == ["second"]


def test_golden_texts_are_valid_prototxt():
    for path in GOLDEN.glob("netspec_*.prototxt"):
        text = path.read_text()
        from google.protobuf import text_format
        text_format.Parse(text, caffe_pb2.NetParameter())
        assert not re.search(r"\n\n", text)
