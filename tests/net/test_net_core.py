"""Net construction semantics: splits, sharing, loss weights, backward flags, errors."""

from __future__ import annotations

import numpy as np
import pytest

import recaffe
from recaffe.errors import NetError, RecaffeError, UnknownLayerTypeError, WeightsError
from recaffe.io.prototxt import parse_prototxt
from recaffe.net import Net
from recaffe.proto import caffe_pb2

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def net_from(text: str, phase=TRAIN, **kw) -> Net:
    return Net(parse_prototxt(text, caffe_pb2.NetParameter), phase, **kw)


IP = (
    'inner_product_param { num_output: %d weight_filler { type: "gaussian" std: 0.3 } '
    'bias_filler { type: "gaussian" std: 0.1 } }'
)

FANOUT = f"""
name: "fanout"
layer {{ name: "data" type: "Input" top: "data"
  input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
layer {{ name: "a" type: "InnerProduct" bottom: "data" top: "a" {IP % 2} }}
layer {{ name: "b" type: "InnerProduct" bottom: "data" top: "b" {IP % 2} }}
layer {{ name: "c" type: "InnerProduct" bottom: "data" top: "c" {IP % 2} }}
layer {{ name: "t" type: "Input" top: "t" input_param {{ shape {{ dim: 2 dim: 2 }} }} }}
layer {{ name: "la" type: "EuclideanLoss" bottom: "a" bottom: "t" top: "la" }}
"""


def test_split_insertion_names():
    net = net_from(FANOUT)
    names = list(net.blobs)
    assert "data_data_0_split_0" in names and "data_data_0_split_2" in names
    assert "data_data_0_split" in net._layer_names
    assert net.layer_dict["data_data_0_split"].type == "Split"
    # b and c are not under any loss: they are outputs and need no backward.
    assert net.outputs == ["b", "c", "la"]
    assert net.inputs == ["data", "t"]
    bn = net.bottom_names
    assert bn["a"] == ["data_data_0_split_0"] and bn["c"] == ["data_data_0_split_2"]


def test_backward_flags_follow_loss():
    net = net_from(FANOUT)
    need = dict(zip(net._layer_names, net.layer_need_backward, strict=True))
    assert need["a"] and need["la"]
    assert not need["b"] and not need["c"]


def test_split_backward_sums_diffs():
    text = """
    force_backward: true
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "p" type: "Power" bottom: "x" top: "p" power_param { scale: 2 } }
    layer { name: "q" type: "Power" bottom: "x" top: "q" power_param { scale: 3 } }
    layer { name: "s" type: "Eltwise" bottom: "p" bottom: "q" top: "s" }
    layer { name: "r" type: "Reduction" bottom: "s" top: "r" loss_weight: 1 }
    """
    net = net_from(text)
    net.blobs["x"].data[...] = 1.0
    net.forward()
    net.backward()
    np.testing.assert_allclose(net.blobs["x"].diff, 5.0)


SHARED = f"""
layer {{ name: "x" type: "Input" top: "x" input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "x" top: "h"
  param {{ name: "W" }} param {{ name: "b" }} {IP % 3} }}
layer {{ name: "ip2" type: "InnerProduct" bottom: "h" top: "y"
  param {{ name: "W" }} param {{ name: "b" }} {IP % 3} }}
layer {{ name: "r" type: "Reduction" bottom: "y" top: "r" loss_weight: 1
  reduction_param {{ operation: SUMSQ }} }}
"""


def test_shared_params_alias_data_and_diff():
    net = net_from(SHARED)
    w1, w2 = net.params["ip1"][0], net.params["ip2"][0]
    assert np.shares_memory(w1.data, w2.data)
    assert np.shares_memory(w1.diff, w2.diff)
    assert len(net.learnable_params) == 2
    assert net.param_owners == [-1, -1, 0, 1]


def test_shared_gradient_is_sum_of_uses():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    net = net_from(SHARED)
    net.blobs["x"].data[...] = x
    net.forward()
    net.clear_param_diffs()
    net.backward()
    shared = net.params["ip1"][0].diff.copy()
    # The same net with unshared (but equal) weights: gradient = sum of both.
    unshared = net_from(SHARED.replace('param { name: "W" } param { name: "b" }', ""))
    for name in ("ip1", "ip2"):
        for j in range(2):
            unshared.params[name][j].data[...] = net.params["ip1"][j].data
    unshared.blobs["x"].data[...] = x
    unshared.forward()
    unshared.clear_param_diffs()
    unshared.backward()
    total = unshared.params["ip1"][0].diff + unshared.params["ip2"][0].diff
    np.testing.assert_allclose(shared, total, rtol=1e-5, atol=1e-6)


def test_shared_shape_mismatch_is_an_error():
    text = SHARED.replace(IP % 3 + " }\nlayer { name: \"r\"", "X")  # unchanged guard
    bad = f"""
    layer {{ name: "x" type: "Input" top: "x"
      input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
    layer {{ name: "ip1" type: "InnerProduct" bottom: "x" top: "h" param {{ name: "W" }}
      {IP % 3} }}
    layer {{ name: "ip2" type: "InnerProduct" bottom: "h" top: "y" param {{ name: "W" }}
      {IP % 4} }}
    """
    assert text
    with pytest.raises(NetError, match=r"ip2.*'W'.*shape mismatch"):
        net_from(bad)


def test_shared_lr_mult_mismatch():
    bad = f"""
    layer {{ name: "x" type: "Input" top: "x"
      input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
    layer {{ name: "ip1" type: "InnerProduct" bottom: "x" top: "h"
      param {{ name: "W" lr_mult: 1 }} {IP % 3} }}
    layer {{ name: "ip2" type: "InnerProduct" bottom: "h" top: "y"
      param {{ name: "W" lr_mult: 2 }} {IP % 3} }}
    """
    with pytest.raises(NetError, match="mismatched lr_mult"):
        net_from(bad)


def test_sharer_lr_mult_adopted_by_owner():
    text = f"""
    layer {{ name: "x" type: "Input" top: "x"
      input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
    layer {{ name: "ip1" type: "InnerProduct" bottom: "x" top: "h" param {{ name: "W" }}
      {IP % 3} }}
    layer {{ name: "ip2" type: "InnerProduct" bottom: "h" top: "y"
      param {{ name: "W" lr_mult: 3 }} {IP % 3} }}
    """
    net = net_from(text)
    assert net.params_lr[0] == 3.0


def test_permissive_share_mode():
    text = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 4 } } }
    layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "h" param { name: "W" }
      inner_product_param { num_output: 2 bias_term: false } }
    layer { name: "ip2" type: "InnerProduct" bottom: "x" top: "y"
      param { name: "W" share_mode: PERMISSIVE }
      inner_product_param { num_output: 4 bias_term: false transpose: false } }
    """
    with pytest.raises(NetError, match="count mismatch"):
        net_from(text)


def test_loss_weight_scales_loss_and_diff():
    text = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "l" type: "EuclideanLoss" bottom: "x" bottom: "t" top: "l"
      loss_weight: 2.5 }
    """
    net = net_from(text)
    net.blobs["x"].data[...] = 1.0
    assert float(net.blobs["l"].diff) == 2.5
    loss = net.forward_prefilled()
    np.testing.assert_allclose(loss, 2.5 * 6 / (2 * 2), rtol=1e-6)
    assert net.blob_loss_weights["l"] == 2.5


def test_default_loss_weight_written_into_param():
    text = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "l" type: "EuclideanLoss" bottom: "x" bottom: "x" top: "l" }
    """
    net = net_from(text)
    proto = net.to_proto()
    losses = [lp for lp in proto.layer if lp.name == "l"]
    assert list(losses[0].loss_weight) == [1.0]


def test_errors_name_layer_and_blob():
    with pytest.raises(NetError, match=r"layer 'ip'.*unknown bottom blob 'nope'"):
        net_from(f'layer {{ name: "ip" type: "InnerProduct" bottom: "nope" top: "y" '
                 f'{IP % 2} }}')
    two_tops = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 } } }
    layer { name: "y" type: "Input" top: "x" input_param { shape { dim: 2 } } }
    """
    with pytest.raises(NetError, match="multiple sources"):
        net_from(two_tops)
    with pytest.raises(UnknownLayerTypeError, match="InnerProduct"):
        net_from('layer { name: "ip" type: "InnerProdcut" }')
    too_many = f"""
    layer {{ name: "x" type: "Input" top: "x"
      input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
    layer {{ name: "ip" type: "InnerProduct" bottom: "x" top: "y" param {{}} param {{}}
      param {{}} {IP % 2} }}
    """
    with pytest.raises(NetError, match="too many params"):
        net_from(too_many)
    both = ('layer { name: "x" type: "Input" top: "x" include { phase: TRAIN } '
            'exclude { phase: TEST } input_param { shape { dim: 1 } } }')
    with pytest.raises(NetError, match="both include and exclude"):
        net_from(both)


def test_propagate_down_false_stops_gradient():
    text = f"""
    force_backward: false
    layer {{ name: "x" type: "Input" top: "x"
      input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
    layer {{ name: "ip1" type: "InnerProduct" bottom: "x" top: "h" {IP % 3} }}
    layer {{ name: "ip2" type: "InnerProduct" bottom: "h" top: "y" propagate_down: false
      {IP % 3} }}
    layer {{ name: "r" type: "Reduction" bottom: "y" top: "r" loss_weight: 1 }}
    """
    net = net_from(text)
    need = dict(zip(net._layer_names, net.layer_need_backward, strict=True))
    assert need["ip2"] and not need["ip1"]
    net.forward()
    net.clear_param_diffs()
    net.backward()
    assert np.all(net.params["ip1"][0].diff == 0)
    assert np.any(net.params["ip2"][0].diff != 0)


def test_lr_mult_zero_params_and_force_backward():
    text = f"""
    layer {{ name: "x" type: "Input" top: "x"
      input_param {{ shape {{ dim: 2 dim: 3 }} }} }}
    layer {{ name: "ip" type: "InnerProduct" bottom: "x" top: "y"
      param {{ lr_mult: 0 }} param {{ lr_mult: 0 }} {IP % 3} }}
    layer {{ name: "r" type: "Reduction" bottom: "y" top: "r" loss_weight: 1 }}
    """
    net = net_from(text)
    assert not dict(zip(net._layer_names, net.layer_need_backward, strict=True))["ip"]
    forced = net_from("force_backward: true\n" + text)
    assert forced.layers[1].param_propagate_down == [True, True]
    forced.blobs["x"].data[...] = 1
    forced.forward()
    forced.backward()
    assert np.any(forced.blobs["x"].diff != 0)


def test_save_and_reload_binary_and_hdf5(tmp_path):
    net = net_from(SHARED)
    x = np.random.default_rng(1).standard_normal((2, 3))
    net.blobs["x"].data[...] = x
    out = net.forward()["r"].copy()
    net.save(str(tmp_path / "w.caffemodel"))
    net.save_hdf5(str(tmp_path / "w.caffemodel.h5"))
    for path in ("w.caffemodel", "w.caffemodel.h5"):
        again = net_from(SHARED, weights=str(tmp_path / path))
        again.blobs["x"].data[...] = x
        np.testing.assert_array_equal(again.forward()["r"], out)
    # A .caffemodel written here is a plain BVLC NetParameter.
    msg = caffe_pb2.NetParameter()
    msg.ParseFromString((tmp_path / "w.caffemodel").read_bytes())
    assert [lp.name for lp in msg.layer] == ["x", "ip1", "ip2", "r"]
    assert list(msg.layer[1].blobs[0].shape.dim) == [3, 3]


def test_wrong_weights_are_typed_errors(tmp_path):
    net = net_from(SHARED)
    net.save(str(tmp_path / "w.caffemodel"))
    other = SHARED.replace("num_output: 3", "num_output: 4")
    with pytest.raises(WeightsError, match="shape mismatch"):
        net_from(other.replace('param { name: "W" } param { name: "b" }', ""),
                 weights=str(tmp_path / "w.caffemodel"))
    data = (tmp_path / "w.caffemodel").read_bytes()
    (tmp_path / "trunc.caffemodel").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError):
        net_from(SHARED, weights=str(tmp_path / "trunc.caffemodel"))
    (tmp_path / "garbage.caffemodel").write_bytes(b"\xff\x00garbage" * 10)
    with pytest.raises(WeightsError):
        net_from(SHARED, weights=str(tmp_path / "garbage.caffemodel"))
    with pytest.raises(RecaffeError):
        net_from(SHARED, weights=str(tmp_path / "missing.caffemodel"))


LEVELS = """
layer { name: "data" type: "DummyData" top: "data"
  dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
layer { name: "NoLevel" type: "InnerProduct" bottom: "data" top: "NoLevel"
  inner_product_param { num_output: 1 } }
layer { name: "Level0Only" type: "InnerProduct" bottom: "data" top: "Level0Only"
  include { min_level: 0 max_level: 0 } inner_product_param { num_output: 1 } }
layer { name: "Level1Only" type: "InnerProduct" bottom: "data" top: "Level1Only"
  include { min_level: 1 max_level: 1 } inner_product_param { num_output: 1 } }
layer { name: "Level>=0" type: "InnerProduct" bottom: "data" top: "Level>=0"
  include { min_level: 0 } inner_product_param { num_output: 1 } }
layer { name: "Level>=1" type: "InnerProduct" bottom: "data" top: "Level>=1"
  include { min_level: 1 } inner_product_param { num_output: 1 } }
"""

STAGES = """
layer { name: "data" type: "DummyData" top: "data"
  dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
layer { name: "A" type: "InnerProduct" bottom: "data" top: "A"
  include { stage: "A" } inner_product_param { num_output: 1 } }
layer { name: "B" type: "InnerProduct" bottom: "data" top: "B"
  include { stage: "B" } inner_product_param { num_output: 1 } }
layer { name: "AorB" type: "InnerProduct" bottom: "data" top: "AorB"
  include { stage: "A" } include { stage: "B" } inner_product_param { num_output: 1 } }
layer { name: "AandB" type: "InnerProduct" bottom: "data" top: "AandB"
  include { stage: "A" stage: "B" } inner_product_param { num_output: 1 } }
"""


def _blob_names(net):
    return [n for n in net.blobs if "data" not in n]


def test_levels(tmp_path):
    p = tmp_path / "levels.prototxt"
    p.write_text(LEVELS)
    assert _blob_names(recaffe.Net(str(p), TEST)) == [
        "NoLevel", "Level0Only", "Level>=0"]
    assert _blob_names(recaffe.Net(str(p), TEST, level=1)) == [
        "NoLevel", "Level1Only", "Level>=0", "Level>=1"]


def test_stages(tmp_path):
    p = tmp_path / "stages.prototxt"
    p.write_text(STAGES)
    assert _blob_names(recaffe.Net(str(p), TEST, stages=["A"])) == ["A", "AorB"]
    assert _blob_names(recaffe.Net(str(p), TEST, stages=["B"])) == ["B", "AorB"]
    assert _blob_names(recaffe.Net(str(p), TEST, stages=["A", "B"])) == [
        "A", "B", "AorB", "AandB"]
