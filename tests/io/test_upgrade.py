"""Legacy net / solver upgrades (Caffe's upgrade_proto rules)."""

from __future__ import annotations

import os

import pytest

from recaffe.errors import PrototxtError
from recaffe.io.prototxt import parse_prototxt, read_prototxt
from recaffe.io.upgrade import (
    V1_LAYER_TYPE_NAMES,
    net_needs_upgrade,
    upgrade_net_param,
    upgrade_solver_param,
)
from recaffe.proto import caffe_pb2

GOLDEN = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden"
)


def _net(text: str) -> caffe_pb2.NetParameter:
    return parse_prototxt(text, caffe_pb2.NetParameter)


def _solver(text: str) -> caffe_pb2.SolverParameter:
    return parse_prototxt(text, caffe_pb2.SolverParameter)


# ---------------------------------------------------------------------------
# V1 -> current
# ---------------------------------------------------------------------------

V1_CONV = """
name: "v1"
layers {
  name: "conv1"
  type: CONVOLUTION
  bottom: "data"
  top: "conv1"
  blobs_lr: 1
  blobs_lr: 2
  weight_decay: 1
  weight_decay: 0
  param: "w_shared"
  blob_share_mode: PERMISSIVE
  loss_weight: 0
  include { phase: TRAIN }
  convolution_param { num_output: 8 kernel_size: 3 }
}
layers { name: "loss" type: SOFTMAX_LOSS bottom: "conv1" bottom: "label" top: "loss"
         loss_param { ignore_label: 255 } }
layers { name: "t" type: TANH bottom: "loss" top: "t" }
"""


def test_v1_conv_layer_upgrade():
    net = _net(V1_CONV)
    assert upgrade_net_param(net) is True
    assert len(net.layers) == 0
    assert len(net.layer) == 3
    conv = net.layer[0]
    assert conv.name == "conv1"
    assert conv.type == "Convolution"
    assert list(conv.bottom) == ["data"] and list(conv.top) == ["conv1"]
    assert len(conv.param) == 2
    assert conv.param[0].name == "w_shared"
    assert conv.param[0].share_mode == caffe_pb2.ParamSpec.PERMISSIVE
    assert conv.param[0].lr_mult == 1 and conv.param[0].decay_mult == 1
    assert conv.param[1].lr_mult == 2 and conv.param[1].decay_mult == 0
    assert not conv.param[1].HasField("name")
    assert not conv.param[1].HasField("share_mode")
    assert list(conv.loss_weight) == [0]
    assert conv.include[0].phase == caffe_pb2.TRAIN
    assert conv.convolution_param.num_output == 8
    assert list(conv.convolution_param.kernel_size) == [3]
    loss = net.layer[1]
    assert loss.type == "SoftmaxWithLoss"
    assert loss.loss_param.ignore_label == 255
    assert net.layer[2].type == "TanH"
    # A second pass finds nothing to do.
    assert upgrade_net_param(net) is False
    assert not net_needs_upgrade(net)


def test_v1_blobs_are_kept():
    net = caffe_pb2.NetParameter()
    v1 = net.layers.add(name="ip", type=caffe_pb2.V1LayerParameter.INNER_PRODUCT)
    blob = v1.blobs.add()
    blob.shape.dim.extend([2])
    blob.data.extend([1.0, 2.0])
    upgrade_net_param(net)
    assert list(net.layer[0].blobs[0].data) == [1.0, 2.0]


def test_v1_type_map_is_complete():
    enum = caffe_pb2.V1LayerParameter.DESCRIPTOR.enum_types_by_name["LayerType"]
    assert set(V1_LAYER_TYPE_NAMES) == {v.number for v in enum.values}
    v1 = caffe_pb2.V1LayerParameter
    assert V1_LAYER_TYPE_NAMES[v1.NONE] == ""
    assert V1_LAYER_TYPE_NAMES[v1.HDF5_DATA] == "HDF5Data"
    assert V1_LAYER_TYPE_NAMES[v1.SOFTMAX_LOSS] == "SoftmaxWithLoss"
    assert V1_LAYER_TYPE_NAMES[v1.TANH] == "TanH"
    assert V1_LAYER_TYPE_NAMES[v1.IM2COL] == "Im2col"
    assert (V1_LAYER_TYPE_NAMES[v1.SIGMOID_CROSS_ENTROPY_LOSS]
            == "SigmoidCrossEntropyLoss")
    assert V1_LAYER_TYPE_NAMES[v1.ABSVAL] == "AbsVal"


def test_v1_every_param_field_is_copied():
    v1_fields = [f.name for f in caffe_pb2.V1LayerParameter.DESCRIPTOR.fields
                 if f.name.endswith("_param")]
    net = caffe_pb2.NetParameter()
    layer = net.layers.add(name="all")
    for name in v1_fields:
        getattr(layer, name).SetInParent()
    upgrade_net_param(net)
    for name in v1_fields:
        assert net.layer[0].HasField(name), name


def test_golden_v1_lenet_upgrades_like_current_lenet():
    v1 = read_prototxt(os.path.join(GOLDEN, "v1_lenet.prototxt"),
                       caffe_pb2.NetParameter)
    cur = read_prototxt(os.path.join(GOLDEN, "lenet_train_test.prototxt"),
                        caffe_pb2.NetParameter)
    assert upgrade_net_param(v1)
    assert ([(lp.name, lp.type) for lp in v1.layer]
            == [(lp.name, lp.type) for lp in cur.layer])
    for a, b in zip(v1.layer, cur.layer, strict=True):
        assert list(a.bottom) == list(b.bottom) and list(a.top) == list(b.top)
        assert [p.lr_mult for p in a.param] == [p.lr_mult for p in b.param]
    # Legacy data_param.scale moved into transform_param.
    data = v1.layer[0]
    assert data.transform_param.scale == pytest.approx(0.00390625)
    assert not data.data_param.HasField("scale")
    assert data.data_param.backend == caffe_pb2.DataParameter.LMDB
    assert data.include[0].phase == caffe_pb2.TRAIN


def test_legacy_transform_fields_of_v1_image_and_window_data():
    net = _net("""
      layers { name: "img" type: IMAGE_DATA top: "d" top: "l"
               image_data_param { source: "list.txt" mirror: true crop_size: 227
                                  mean_file: "m.binaryproto" } }
      layers { name: "win" type: WINDOW_DATA top: "d2" top: "l2"
               window_data_param { scale: 2 } }
    """)
    upgrade_net_param(net)
    img = net.layer[0]
    assert img.transform_param.mirror is True
    assert img.transform_param.crop_size == 227
    assert img.transform_param.mean_file == "m.binaryproto"
    assert img.image_data_param.source == "list.txt"
    assert not img.image_data_param.HasField("mirror")
    assert net.layer[1].transform_param.scale == 2


def test_layer_and_layers_together_is_an_error():
    net = _net('layer { name: "a" type: "ReLU" } layers { name: "b" type: RELU }')
    with pytest.raises(PrototxtError, match="both 'layer' and 'layers'"):
        upgrade_net_param(net)


# ---------------------------------------------------------------------------
# V0 -> current (best effort)
# ---------------------------------------------------------------------------


def test_v0_net_upgrade_with_padding_layer():
    net = _net("""
      name: "v0"
      input: "data"
      input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
      layers { layer { name: "pad1" type: "padding" pad: 2 }
               bottom: "data" top: "pad1" }
      layers { layer { name: "conv1" type: "conv" num_output: 4 kernelsize: 3
                       stride: 1 biasterm: false blobs_lr: 1 blobs_lr: 2
                       weight_filler { type: "gaussian" std: 0.01 } }
               bottom: "pad1" top: "conv1" }
      layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 2 stride: 2 }
               bottom: "conv1" top: "pool1" }
      layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.3 }
               bottom: "pool1" top: "pool1" }
      layers { layer { name: "fc" type: "innerproduct" num_output: 10 }
               bottom: "pool1" top: "fc" }
      layers { layer { name: "loss" type: "softmax_loss" }
               bottom: "fc" bottom: "label" }
    """)
    assert upgrade_net_param(net)
    assert len(net.layers) == 0
    names = [lp.name for lp in net.layer]
    assert names == ["input", "conv1", "pool1", "drop", "fc", "loss"]
    types = [lp.type for lp in net.layer]
    assert types == ["Input", "Convolution", "Pooling", "Dropout", "InnerProduct",
                     "SoftmaxWithLoss"]
    conv = net.layer[1]
    assert list(conv.bottom) == ["data"]  # padding layer folded away
    cp = conv.convolution_param
    assert list(cp.pad) == [2] and list(cp.kernel_size) == [3]
    assert list(cp.stride) == [1]
    assert cp.num_output == 4 and cp.bias_term is False
    assert cp.weight_filler.type == "gaussian"
    assert [p.lr_mult for p in conv.param] == [1, 2]
    pool = net.layer[2].pooling_param
    assert pool.pool == caffe_pb2.PoolingParameter.AVE and pool.kernel_size == 2
    assert net.layer[3].dropout_param.dropout_ratio == pytest.approx(0.3)
    assert net.layer[4].inner_product_param.num_output == 10
    assert list(net.layer[0].input_param.shape[0].dim) == [1, 3, 8, 8]


def test_v0_data_layer_fields():
    net = _net("""
      layers { layer { name: "d" type: "data" source: "db" batchsize: 32
                       meanfile: "mean" cropsize: 20 mirror: true scale: 0.5
                       rand_skip: 7 }
               top: "data" top: "label" }
    """)
    upgrade_net_param(net)
    d = net.layer[0]
    assert d.type == "Data"
    assert d.data_param.source == "db" and d.data_param.batch_size == 32
    assert d.data_param.rand_skip == 7
    tp = d.transform_param
    assert (tp.mean_file, tp.crop_size, tp.mirror, tp.scale) == ("mean", 20, True, 0.5)


# ---------------------------------------------------------------------------
# Deprecated inputs
# ---------------------------------------------------------------------------


def test_input_dim_becomes_first_input_layer():
    net = read_prototxt(os.path.join(GOLDEN, "deploy_input_dim.prototxt"),
                        caffe_pb2.NetParameter)
    n_layers = len(net.layer)
    assert upgrade_net_param(net)
    assert len(net.layer) == n_layers + 1
    first = net.layer[0]
    assert (first.name, first.type) == ("input", "Input")
    assert list(first.top) == ["data"]
    assert len(first.input_param.shape) == 1
    assert list(first.input_param.shape[0].dim) == [64, 1, 28, 28]
    assert net.layer[1].name == "conv1"
    assert len(net.input) == 0 and len(net.input_dim) == 0


def test_two_inputs_with_input_shape():
    net = _net("""
      input: "a" input_shape { dim: 2 dim: 3 }
      input: "b" input_shape { dim: 5 }
      layer { name: "s" type: "Silence" bottom: "a" bottom: "b" }
    """)
    upgrade_net_param(net)
    first = net.layer[0]
    assert list(first.top) == ["a", "b"]
    assert [list(s.dim) for s in first.input_param.shape] == [[2, 3], [5]]
    assert len(net.input_shape) == 0


def test_input_without_shape_is_dropped():
    net = _net('input: "a" layer { name: "s" type: "Silence" bottom: "a" }')
    assert upgrade_net_param(net)
    assert len(net.input) == 0
    assert [lp.name for lp in net.layer] == ["s"]


def test_bad_input_dim_count():
    net = _net('input: "a" input_dim: 1 input_dim: 2')
    with pytest.raises(PrototxtError, match="input_dim"):
        upgrade_net_param(net)


# ---------------------------------------------------------------------------
# BatchNorm
# ---------------------------------------------------------------------------


def test_batchnorm_with_three_params_is_frozen():
    net = _net("""
      layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x"
              param { lr_mult: 1 name: "m" } param { lr_mult: 1 } param { lr_mult: 1 } }
      layer { name: "bn2" type: "BatchNorm" bottom: "x" top: "x"
              param { lr_mult: 1 } }
    """)
    assert upgrade_net_param(net)
    bn = net.layer[0]
    assert [(p.lr_mult, p.decay_mult) for p in bn.param] == [(0, 0)] * 3
    assert bn.param[0].name == "m"
    assert bn.param[0].HasField("decay_mult")
    # Only layers with exactly three params are touched.
    assert net.layer[1].param[0].lr_mult == 1
    assert not net.layer[1].param[0].HasField("decay_mult")


def test_current_net_is_untouched():
    net = read_prototxt(os.path.join(GOLDEN, "lstm_lrcn_style.prototxt"),
                        caffe_pb2.NetParameter)
    before = net.SerializeToString()
    assert upgrade_net_param(net) is False
    assert net.SerializeToString() == before


# ---------------------------------------------------------------------------
# Solver
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("enum_name,type_name", [
    ("SGD", "SGD"), ("NESTEROV", "Nesterov"), ("ADAGRAD", "AdaGrad"),
    ("RMSPROP", "RMSProp"), ("ADADELTA", "AdaDelta"), ("ADAM", "Adam"),
])
def test_solver_type_upgrade(enum_name, type_name):
    s = _solver(f"base_lr: 0.1 solver_type: {enum_name}")
    assert upgrade_solver_param(s) is True
    assert s.type == type_name
    assert not s.HasField("solver_type")


def test_solver_type_and_type_conflict():
    s = _solver('solver_type: ADAM type: "Nesterov"')
    with pytest.raises(PrototxtError, match="solver_type"):
        upgrade_solver_param(s)


def test_solver_type_and_matching_type_is_accepted():
    s = _solver('solver_type: ADAM type: "Adam"')
    upgrade_solver_param(s)
    assert s.type == "Adam" and not s.HasField("solver_type")


def test_modern_solver_unchanged_without_path():
    s = _solver('type: "Adam" base_lr: 0.001')
    assert upgrade_solver_param(s) is False
    assert s.type == "Adam"


def test_snapshot_prefix_default(tmp_path):
    path = tmp_path / "models" / "my_solver.prototxt"
    s = _solver("base_lr: 0.1")
    assert upgrade_solver_param(s, path) is True
    assert s.snapshot_prefix == str(tmp_path / "models" / "my_solver")


def test_snapshot_prefix_directory(tmp_path):
    snapdir = tmp_path / "snaps"
    snapdir.mkdir()
    s = _solver(f'snapshot_prefix: "{snapdir}"')
    assert upgrade_solver_param(s, "cfg/lenet_solver.prototxt") is True
    assert s.snapshot_prefix == os.path.join(str(snapdir), "lenet_solver")


def test_snapshot_prefix_plain_prefix_kept(tmp_path):
    prefix = str(tmp_path / "snaps" / "lenet")
    s = _solver(f'snapshot_prefix: "{prefix}"')
    assert upgrade_solver_param(s, "lenet_solver.prototxt") is False
    assert s.snapshot_prefix == prefix


def test_golden_solver_upgrade():
    path = os.path.join(GOLDEN, "lenet_solver.prototxt")
    s = read_prototxt(path, caffe_pb2.SolverParameter)
    upgrade_solver_param(s, path)
    assert s.type == "SGD"
    assert s.snapshot_prefix == "examples/mnist/lenet"
