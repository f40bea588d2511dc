"""The generated caffe_pb2 matches caffe.proto and BVLC Caffe's schema facts."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from google.protobuf.descriptor import FieldDescriptor as FD

from recaffe.proto import caffe_pb2

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PB2 = os.path.join(REPO, "recaffe", "proto", "caffe_pb2.py")
GEN = os.path.join(REPO, "tools", "gen_proto.py")


def _field(message: str, name: str):
    return getattr(caffe_pb2, message).DESCRIPTOR.fields_by_name[name]


def _label(field) -> str:
    if field.is_repeated:
        return "r"
    if field.is_required:
        return "q"
    return "o"


# ---------------------------------------------------------------------------
# Bindings are up to date
# ---------------------------------------------------------------------------


def test_generated_bindings_are_not_stale(tmp_path):
    pytest.importorskip("grpc_tools")
    subprocess.run(
        [sys.executable, GEN, "--out-dir", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = (tmp_path / "caffe_pb2.py").read_bytes()
    with open(PB2, "rb") as fh:
        committed = fh.read()
    assert fresh == committed, "caffe_pb2.py is stale: run tools/gen_proto.py"


def test_proto_package_and_syntax():
    assert caffe_pb2.DESCRIPTOR.package == "caffe"
    assert caffe_pb2.DESCRIPTOR.name == "caffe.proto"
    with open(os.path.join(REPO, "recaffe", "proto", "caffe.proto")) as fh:
        text = fh.read()
    assert 'syntax = "proto2";' in text


# ---------------------------------------------------------------------------
# LayerParameter: every *_param sub-message
# ---------------------------------------------------------------------------

LAYER_PARAM_NUMBERS = {
    "transform_param": (100, "TransformationParameter"),
    "loss_param": (101, "LossParameter"),
    "accuracy_param": (102, "AccuracyParameter"),
    "argmax_param": (103, "ArgMaxParameter"),
    "concat_param": (104, "ConcatParameter"),
    "contrastive_loss_param": (105, "ContrastiveLossParameter"),
    "convolution_param": (106, "ConvolutionParameter"),
    "data_param": (107, "DataParameter"),
    "dropout_param": (108, "DropoutParameter"),
    "dummy_data_param": (109, "DummyDataParameter"),
    "eltwise_param": (110, "EltwiseParameter"),
    "exp_param": (111, "ExpParameter"),
    "hdf5_data_param": (112, "HDF5DataParameter"),
    "hdf5_output_param": (113, "HDF5OutputParameter"),
    "hinge_loss_param": (114, "HingeLossParameter"),
    "image_data_param": (115, "ImageDataParameter"),
    "infogain_loss_param": (116, "InfogainLossParameter"),
    "inner_product_param": (117, "InnerProductParameter"),
    "lrn_param": (118, "LRNParameter"),
    "memory_data_param": (119, "MemoryDataParameter"),
    "mvn_param": (120, "MVNParameter"),
    "pooling_param": (121, "PoolingParameter"),
    "power_param": (122, "PowerParameter"),
    "relu_param": (123, "ReLUParameter"),
    "sigmoid_param": (124, "SigmoidParameter"),
    "softmax_param": (125, "SoftmaxParameter"),
    "slice_param": (126, "SliceParameter"),
    "tanh_param": (127, "TanHParameter"),
    "threshold_param": (128, "ThresholdParameter"),
    "window_data_param": (129, "WindowDataParameter"),
    "python_param": (130, "PythonParameter"),
    "prelu_param": (131, "PReLUParameter"),
    "spp_param": (132, "SPPParameter"),
    "reshape_param": (133, "ReshapeParameter"),
    "log_param": (134, "LogParameter"),
    "flatten_param": (135, "FlattenParameter"),
    "reduction_param": (136, "ReductionParameter"),
    "embed_param": (137, "EmbedParameter"),
    "tile_param": (138, "TileParameter"),
    "batch_norm_param": (139, "BatchNormParameter"),
    "elu_param": (140, "ELUParameter"),
    "bias_param": (141, "BiasParameter"),
    "scale_param": (142, "ScaleParameter"),
    "input_param": (143, "InputParameter"),
    "crop_param": (144, "CropParameter"),
    "parameter_param": (145, "ParameterParameter"),
    "recurrent_param": (146, "RecurrentParameter"),
    "swish_param": (147, "SwishParameter"),
    "clip_param": (148, "ClipParameter"),
}


def test_layer_parameter_has_exactly_the_bvlc_param_fields():
    fields = caffe_pb2.LayerParameter.DESCRIPTOR.fields
    params = {f.name for f in fields if f.name.endswith("_param")}
    assert params == set(LAYER_PARAM_NUMBERS)
    assert len(params) == 49


@pytest.mark.parametrize("name", sorted(LAYER_PARAM_NUMBERS))
def test_layer_param_field(name):
    number, type_name = LAYER_PARAM_NUMBERS[name]
    f = _field("LayerParameter", name)
    assert f.number == number
    assert _label(f) == "o"
    assert f.type == FD.TYPE_MESSAGE
    assert f.message_type.full_name == f"caffe.{type_name}"


def test_layer_parameter_core_fields():
    expected = {
        "name": (1, "o", FD.TYPE_STRING),
        "type": (2, "o", FD.TYPE_STRING),
        "bottom": (3, "r", FD.TYPE_STRING),
        "top": (4, "r", FD.TYPE_STRING),
        "loss_weight": (5, "r", FD.TYPE_FLOAT),
        "param": (6, "r", FD.TYPE_MESSAGE),
        "blobs": (7, "r", FD.TYPE_MESSAGE),
        "include": (8, "r", FD.TYPE_MESSAGE),
        "exclude": (9, "r", FD.TYPE_MESSAGE),
        "phase": (10, "o", FD.TYPE_ENUM),
        "propagate_down": (11, "r", FD.TYPE_BOOL),
    }
    for name, (number, label, ftype) in expected.items():
        f = _field("LayerParameter", name)
        assert (f.number, _label(f), f.type) == (number, label, ftype), name
    assert not _field("LayerParameter", "phase").has_default_value


# ---------------------------------------------------------------------------
# Spot checks: (message, field, number, label, type, default or None)
# ---------------------------------------------------------------------------

SPOT_CHECKS = [
    ("BlobShape", "dim", 1, "r", FD.TYPE_INT64, None),
    ("BlobProto", "shape", 7, "o", FD.TYPE_MESSAGE, None),
    ("BlobProto", "data", 5, "r", FD.TYPE_FLOAT, None),
    ("BlobProto", "diff", 6, "r", FD.TYPE_FLOAT, None),
    ("BlobProto", "double_data", 8, "r", FD.TYPE_DOUBLE, None),
    ("BlobProto", "double_diff", 9, "r", FD.TYPE_DOUBLE, None),
    ("BlobProto", "num", 1, "o", FD.TYPE_INT32, 0),
    ("BlobProto", "width", 4, "o", FD.TYPE_INT32, 0),
    ("BlobProtoVector", "blobs", 1, "r", FD.TYPE_MESSAGE, None),
    ("Datum", "data", 4, "o", FD.TYPE_BYTES, None),
    ("Datum", "float_data", 6, "r", FD.TYPE_FLOAT, None),
    ("Datum", "encoded", 7, "o", FD.TYPE_BOOL, False),
    ("FillerParameter", "type", 1, "o", FD.TYPE_STRING, "constant"),
    ("FillerParameter", "max", 4, "o", FD.TYPE_FLOAT, 1.0),
    ("FillerParameter", "std", 6, "o", FD.TYPE_FLOAT, 1.0),
    ("FillerParameter", "sparse", 7, "o", FD.TYPE_INT32, -1),
    ("FillerParameter", "variance_norm", 8, "o", FD.TYPE_ENUM, 0),
    ("NetParameter", "name", 1, "o", FD.TYPE_STRING, None),
    ("NetParameter", "layers", 2, "r", FD.TYPE_MESSAGE, None),
    ("NetParameter", "input", 3, "r", FD.TYPE_STRING, None),
    ("NetParameter", "input_dim", 4, "r", FD.TYPE_INT32, None),
    ("NetParameter", "force_backward", 5, "o", FD.TYPE_BOOL, False),
    ("NetParameter", "state", 6, "o", FD.TYPE_MESSAGE, None),
    ("NetParameter", "debug_info", 7, "o", FD.TYPE_BOOL, False),
    ("NetParameter", "input_shape", 8, "r", FD.TYPE_MESSAGE, None),
    ("NetParameter", "layer", 100, "r", FD.TYPE_MESSAGE, None),
    ("NetState", "phase", 1, "o", FD.TYPE_ENUM, caffe_pb2.TEST),
    ("NetState", "level", 2, "o", FD.TYPE_INT32, 0),
    ("NetState", "stage", 3, "r", FD.TYPE_STRING, None),
    ("NetStateRule", "phase", 1, "o", FD.TYPE_ENUM, None),
    ("NetStateRule", "min_level", 2, "o", FD.TYPE_INT32, None),
    ("NetStateRule", "not_stage", 5, "r", FD.TYPE_STRING, None),
    ("ParamSpec", "name", 1, "o", FD.TYPE_STRING, None),
    ("ParamSpec", "share_mode", 2, "o", FD.TYPE_ENUM, None),
    ("ParamSpec", "lr_mult", 3, "o", FD.TYPE_FLOAT, 1.0),
    ("ParamSpec", "decay_mult", 4, "o", FD.TYPE_FLOAT, 1.0),
    ("TransformationParameter", "scale", 1, "o", FD.TYPE_FLOAT, 1.0),
    ("TransformationParameter", "crop_size", 3, "o", FD.TYPE_UINT32, 0),
    ("TransformationParameter", "mean_value", 5, "r", FD.TYPE_FLOAT, None),
    ("TransformationParameter", "force_gray", 7, "o", FD.TYPE_BOOL, False),
    ("LossParameter", "ignore_label", 1, "o", FD.TYPE_INT32, None),
    ("LossParameter", "normalize", 2, "o", FD.TYPE_BOOL, None),
    ("LossParameter", "normalization", 3, "o", FD.TYPE_ENUM, 1),
    ("RecurrentParameter", "num_output", 1, "o", FD.TYPE_UINT32, 0),
    ("RecurrentParameter", "weight_filler", 2, "o", FD.TYPE_MESSAGE, None),
    ("RecurrentParameter", "bias_filler", 3, "o", FD.TYPE_MESSAGE, None),
    ("RecurrentParameter", "debug_info", 4, "o", FD.TYPE_BOOL, False),
    ("RecurrentParameter", "expose_hidden", 5, "o", FD.TYPE_BOOL, False),
    ("InnerProductParameter", "num_output", 1, "o", FD.TYPE_UINT32, None),
    ("InnerProductParameter", "bias_term", 2, "o", FD.TYPE_BOOL, True),
    ("InnerProductParameter", "axis", 5, "o", FD.TYPE_INT32, 1),
    ("InnerProductParameter", "transpose", 6, "o", FD.TYPE_BOOL, False),
    ("ConvolutionParameter", "bias_term", 2, "o", FD.TYPE_BOOL, True),
    ("ConvolutionParameter", "pad", 3, "r", FD.TYPE_UINT32, None),
    ("ConvolutionParameter", "kernel_size", 4, "r", FD.TYPE_UINT32, None),
    ("ConvolutionParameter", "group", 5, "o", FD.TYPE_UINT32, 1),
    ("ConvolutionParameter", "stride", 6, "r", FD.TYPE_UINT32, None),
    ("ConvolutionParameter", "pad_h", 9, "o", FD.TYPE_UINT32, 0),
    ("ConvolutionParameter", "stride_w", 14, "o", FD.TYPE_UINT32, None),
    ("ConvolutionParameter", "engine", 15, "o", FD.TYPE_ENUM, 0),
    ("ConvolutionParameter", "axis", 16, "o", FD.TYPE_INT32, 1),
    ("ConvolutionParameter", "force_nd_im2col", 17, "o", FD.TYPE_BOOL, False),
    ("ConvolutionParameter", "dilation", 18, "r", FD.TYPE_UINT32, None),
    ("PoolingParameter", "pool", 1, "o", FD.TYPE_ENUM, 0),
    ("PoolingParameter", "kernel_size", 2, "o", FD.TYPE_UINT32, None),
    ("PoolingParameter", "stride", 3, "o", FD.TYPE_UINT32, 1),
    ("PoolingParameter", "pad", 4, "o", FD.TYPE_UINT32, 0),
    ("PoolingParameter", "engine", 11, "o", FD.TYPE_ENUM, 0),
    ("PoolingParameter", "global_pooling", 12, "o", FD.TYPE_BOOL, False),
    ("PoolingParameter", "round_mode", 13, "o", FD.TYPE_ENUM, 0),
    ("SliceParameter", "slice_dim", 1, "o", FD.TYPE_UINT32, 1),
    ("SliceParameter", "slice_point", 2, "r", FD.TYPE_UINT32, None),
    ("SliceParameter", "axis", 3, "o", FD.TYPE_INT32, 1),
    ("ConcatParameter", "concat_dim", 1, "o", FD.TYPE_UINT32, 1),
    ("ConcatParameter", "axis", 2, "o", FD.TYPE_INT32, 1),
    ("EltwiseParameter", "operation", 1, "o", FD.TYPE_ENUM, 1),
    ("EltwiseParameter", "stable_prod_grad", 3, "o", FD.TYPE_BOOL, True),
    ("ReshapeParameter", "num_axes", 3, "o", FD.TYPE_INT32, -1),
    ("EmbedParameter", "input_dim", 2, "o", FD.TYPE_UINT32, None),
    ("EmbedParameter", "bias_term", 3, "o", FD.TYPE_BOOL, True),
    ("HDF5DataParameter", "batch_size", 2, "o", FD.TYPE_UINT32, None),
    ("HDF5DataParameter", "shuffle", 3, "o", FD.TYPE_BOOL, False),
    ("DummyDataParameter", "data_filler", 1, "r", FD.TYPE_MESSAGE, None),
    ("DummyDataParameter", "num", 2, "r", FD.TYPE_UINT32, None),
    ("DummyDataParameter", "shape", 6, "r", FD.TYPE_MESSAGE, None),
    ("InputParameter", "shape", 1, "r", FD.TYPE_MESSAGE, None),
    ("DataParameter", "batch_size", 4, "o", FD.TYPE_UINT32, None),
    ("DataParameter", "backend", 8, "o", FD.TYPE_ENUM, 0),
    ("DataParameter", "prefetch", 10, "o", FD.TYPE_UINT32, 4),
    ("ImageDataParameter", "batch_size", 4, "o", FD.TYPE_UINT32, 1),
    ("ImageDataParameter", "is_color", 11, "o", FD.TYPE_BOOL, True),
    ("ImageDataParameter", "root_folder", 12, "o", FD.TYPE_STRING, ""),
    ("DropoutParameter", "dropout_ratio", 1, "o", FD.TYPE_FLOAT, 0.5),
    ("SoftmaxParameter", "engine", 1, "o", FD.TYPE_ENUM, 0),
    ("SoftmaxParameter", "axis", 2, "o", FD.TYPE_INT32, 1),
    ("AccuracyParameter", "top_k", 1, "o", FD.TYPE_UINT32, 1),
    ("AccuracyParameter", "ignore_label", 3, "o", FD.TYPE_INT32, None),
    ("ScaleParameter", "bias_term", 4, "o", FD.TYPE_BOOL, False),
    ("BiasParameter", "filler", 3, "o", FD.TYPE_MESSAGE, None),
    ("BatchNormParameter", "use_global_stats", 1, "o", FD.TYPE_BOOL, None),
    ("BatchNormParameter", "moving_average_fraction", 2, "o", FD.TYPE_FLOAT, 0.999),
    ("BatchNormParameter", "eps", 3, "o", FD.TYPE_FLOAT, 1e-5),
    ("PythonParameter", "param_str", 3, "o", FD.TYPE_STRING, ""),
    ("PythonParameter", "share_in_parallel", 4, "o", FD.TYPE_BOOL, False),
    ("ReLUParameter", "negative_slope", 1, "o", FD.TYPE_FLOAT, 0.0),
    ("ReLUParameter", "engine", 2, "o", FD.TYPE_ENUM, 0),
    ("SigmoidParameter", "engine", 1, "o", FD.TYPE_ENUM, 0),
    ("TanHParameter", "engine", 1, "o", FD.TYPE_ENUM, 0),
    ("ReductionParameter", "operation", 1, "o", FD.TYPE_ENUM, 1),
    ("ReductionParameter", "coeff", 3, "o", FD.TYPE_FLOAT, 1.0),
    ("FlattenParameter", "end_axis", 2, "o", FD.TYPE_INT32, -1),
    ("ArgMaxParameter", "axis", 3, "o", FD.TYPE_INT32, None),
    ("LRNParameter", "local_size", 1, "o", FD.TYPE_UINT32, 5),
    ("LRNParameter", "beta", 3, "o", FD.TYPE_FLOAT, 0.75),
    ("LRNParameter", "norm_region", 4, "o", FD.TYPE_ENUM, 0),
    ("LRNParameter", "k", 5, "o", FD.TYPE_FLOAT, 1.0),
    ("LRNParameter", "engine", 6, "o", FD.TYPE_ENUM, 0),
    ("ExpParameter", "base", 1, "o", FD.TYPE_FLOAT, -1.0),
    ("LogParameter", "shift", 3, "o", FD.TYPE_FLOAT, 0.0),
    ("PowerParameter", "power", 1, "o", FD.TYPE_FLOAT, 1.0),
    ("ELUParameter", "alpha", 1, "o", FD.TYPE_FLOAT, 1.0),
    ("PReLUParameter", "channel_shared", 2, "o", FD.TYPE_BOOL, False),
    ("ThresholdParameter", "threshold", 1, "o", FD.TYPE_FLOAT, 0.0),
    ("TileParameter", "axis", 1, "o", FD.TYPE_INT32, 1),
    ("TileParameter", "tiles", 2, "o", FD.TYPE_INT32, None),
    ("CropParameter", "axis", 1, "o", FD.TYPE_INT32, 2),
    ("CropParameter", "offset", 2, "r", FD.TYPE_UINT32, None),
    ("ClipParameter", "min", 1, "q", FD.TYPE_FLOAT, None),
    ("ClipParameter", "max", 2, "q", FD.TYPE_FLOAT, None),
    ("SwishParameter", "beta", 1, "o", FD.TYPE_FLOAT, 1.0),
    ("ParameterParameter", "shape", 1, "o", FD.TYPE_MESSAGE, None),
    ("MVNParameter", "normalize_variance", 1, "o", FD.TYPE_BOOL, True),
    ("MVNParameter", "eps", 3, "o", FD.TYPE_FLOAT, 1e-9),
    ("HingeLossParameter", "norm", 1, "o", FD.TYPE_ENUM, 1),
    ("InfogainLossParameter", "axis", 2, "o", FD.TYPE_INT32, 1),
    ("ContrastiveLossParameter", "margin", 1, "o", FD.TYPE_FLOAT, 1.0),
    ("ContrastiveLossParameter", "legacy_version", 2, "o", FD.TYPE_BOOL, False),
    ("SPPParameter", "pyramid_height", 1, "o", FD.TYPE_UINT32, None),
    ("SPPParameter", "pool", 2, "o", FD.TYPE_ENUM, 0),
    ("SPPParameter", "engine", 6, "o", FD.TYPE_ENUM, 0),
    ("WindowDataParameter", "fg_fraction", 9, "o", FD.TYPE_FLOAT, 0.25),
    ("WindowDataParameter", "context_pad", 10, "o", FD.TYPE_UINT32, 0),
    ("WindowDataParameter", "crop_mode", 11, "o", FD.TYPE_STRING, "warp"),
    ("WindowDataParameter", "root_folder", 13, "o", FD.TYPE_STRING, ""),
    ("MemoryDataParameter", "width", 4, "o", FD.TYPE_UINT32, None),
    ("HDF5OutputParameter", "file_name", 1, "o", FD.TYPE_STRING, None),
    # SolverParameter
    ("SolverParameter", "train_net", 1, "o", FD.TYPE_STRING, None),
    ("SolverParameter", "test_net", 2, "r", FD.TYPE_STRING, None),
    ("SolverParameter", "test_iter", 3, "r", FD.TYPE_INT32, None),
    ("SolverParameter", "test_interval", 4, "o", FD.TYPE_INT32, 0),
    ("SolverParameter", "base_lr", 5, "o", FD.TYPE_FLOAT, None),
    ("SolverParameter", "display", 6, "o", FD.TYPE_INT32, None),
    ("SolverParameter", "max_iter", 7, "o", FD.TYPE_INT32, None),
    ("SolverParameter", "lr_policy", 8, "o", FD.TYPE_STRING, None),
    ("SolverParameter", "gamma", 9, "o", FD.TYPE_FLOAT, None),
    ("SolverParameter", "power", 10, "o", FD.TYPE_FLOAT, None),
    ("SolverParameter", "momentum", 11, "o", FD.TYPE_FLOAT, None),
    ("SolverParameter", "weight_decay", 12, "o", FD.TYPE_FLOAT, None),
    ("SolverParameter", "stepsize", 13, "o", FD.TYPE_INT32, None),
    ("SolverParameter", "snapshot", 14, "o", FD.TYPE_INT32, 0),
    ("SolverParameter", "snapshot_prefix", 15, "o", FD.TYPE_STRING, None),
    ("SolverParameter", "snapshot_diff", 16, "o", FD.TYPE_BOOL, False),
    ("SolverParameter", "solver_mode", 17, "o", FD.TYPE_ENUM, 1),
    ("SolverParameter", "device_id", 18, "o", FD.TYPE_INT32, 0),
    ("SolverParameter", "test_compute_loss", 19, "o", FD.TYPE_BOOL, False),
    ("SolverParameter", "random_seed", 20, "o", FD.TYPE_INT64, -1),
    ("SolverParameter", "train_net_param", 21, "o", FD.TYPE_MESSAGE, None),
    ("SolverParameter", "test_net_param", 22, "r", FD.TYPE_MESSAGE, None),
    ("SolverParameter", "debug_info", 23, "o", FD.TYPE_BOOL, False),
    ("SolverParameter", "net", 24, "o", FD.TYPE_STRING, None),
    ("SolverParameter", "net_param", 25, "o", FD.TYPE_MESSAGE, None),
    ("SolverParameter", "train_state", 26, "o", FD.TYPE_MESSAGE, None),
    ("SolverParameter", "test_state", 27, "r", FD.TYPE_MESSAGE, None),
    ("SolverParameter", "snapshot_after_train", 28, "o", FD.TYPE_BOOL, True),
    ("SolverParameter", "regularization_type", 29, "o", FD.TYPE_STRING, "L2"),
    ("SolverParameter", "solver_type", 30, "o", FD.TYPE_ENUM, 0),
    ("SolverParameter", "delta", 31, "o", FD.TYPE_FLOAT, 1e-8),
    ("SolverParameter", "test_initialization", 32, "o", FD.TYPE_BOOL, True),
    ("SolverParameter", "average_loss", 33, "o", FD.TYPE_INT32, 1),
    ("SolverParameter", "stepvalue", 34, "r", FD.TYPE_INT32, None),
    ("SolverParameter", "clip_gradients", 35, "o", FD.TYPE_FLOAT, -1.0),
    ("SolverParameter", "iter_size", 36, "o", FD.TYPE_INT32, 1),
    ("SolverParameter", "snapshot_format", 37, "o", FD.TYPE_ENUM, 1),
    ("SolverParameter", "rms_decay", 38, "o", FD.TYPE_FLOAT, 0.99),
    ("SolverParameter", "momentum2", 39, "o", FD.TYPE_FLOAT, 0.999),
    ("SolverParameter", "type", 40, "o", FD.TYPE_STRING, "SGD"),
    ("SolverParameter", "layer_wise_reduce", 41, "o", FD.TYPE_BOOL, True),
    ("SolverParameter", "weights", 42, "r", FD.TYPE_STRING, None),
    ("SolverState", "iter", 1, "o", FD.TYPE_INT32, None),
    ("SolverState", "learned_net", 2, "o", FD.TYPE_STRING, None),
    ("SolverState", "history", 3, "r", FD.TYPE_MESSAGE, None),
    ("SolverState", "current_step", 4, "o", FD.TYPE_INT32, 0),
    # V1 / V0
    ("V1LayerParameter", "layer", 1, "o", FD.TYPE_MESSAGE, None),
    ("V1LayerParameter", "bottom", 2, "r", FD.TYPE_STRING, None),
    ("V1LayerParameter", "top", 3, "r", FD.TYPE_STRING, None),
    ("V1LayerParameter", "name", 4, "o", FD.TYPE_STRING, None),
    ("V1LayerParameter", "type", 5, "o", FD.TYPE_ENUM, None),
    ("V1LayerParameter", "blobs", 6, "r", FD.TYPE_MESSAGE, None),
    ("V1LayerParameter", "blobs_lr", 7, "r", FD.TYPE_FLOAT, None),
    ("V1LayerParameter", "weight_decay", 8, "r", FD.TYPE_FLOAT, None),
    ("V1LayerParameter", "include", 32, "r", FD.TYPE_MESSAGE, None),
    ("V1LayerParameter", "exclude", 33, "r", FD.TYPE_MESSAGE, None),
    ("V1LayerParameter", "loss_weight", 35, "r", FD.TYPE_FLOAT, None),
    ("V1LayerParameter", "param", 1001, "r", FD.TYPE_STRING, None),
    ("V1LayerParameter", "blob_share_mode", 1002, "r", FD.TYPE_ENUM, None),
    ("V1LayerParameter", "transform_param", 36, "o", FD.TYPE_MESSAGE, None),
    ("V1LayerParameter", "loss_param", 42, "o", FD.TYPE_MESSAGE, None),
    ("V0LayerParameter", "name", 1, "o", FD.TYPE_STRING, None),
    ("V0LayerParameter", "type", 2, "o", FD.TYPE_STRING, None),
    ("V0LayerParameter", "kernelsize", 8, "o", FD.TYPE_UINT32, None),
    ("V0LayerParameter", "pool", 11, "o", FD.TYPE_ENUM, 0),
    ("V0LayerParameter", "blobs", 50, "r", FD.TYPE_MESSAGE, None),
    ("V0LayerParameter", "rand_skip", 53, "o", FD.TYPE_UINT32, 0),
]


@pytest.mark.parametrize(
    "message,name,number,label,ftype,default",
    SPOT_CHECKS,
    ids=[f"{m}.{n}" for m, n, *_ in SPOT_CHECKS],
)
def test_field_spot_check(message, name, number, label, ftype, default):
    f = _field(message, name)
    assert f.number == number
    assert _label(f) == label
    assert f.type == ftype
    if default is None:
        if label == "o" and ftype not in (FD.TYPE_MESSAGE,):
            assert not f.has_default_value, f"{message}.{name} must declare no default"
    else:
        assert f.has_default_value, f"{message}.{name} must declare a default"
        if ftype in (FD.TYPE_FLOAT,):
            assert f.default_value == pytest.approx(float(np.float32(default)),
                                                    rel=1e-7)
        else:
            assert f.default_value == default


def test_packed_fields_are_exactly_blobshape_dim_and_blobproto_values():
    packed = set()
    for msg in caffe_pb2.DESCRIPTOR.message_types_by_name.values():
        for f in msg.fields:
            if f.is_packed:
                packed.add(f"{msg.name}.{f.name}")
    assert packed == {
        "BlobShape.dim",
        "BlobProto.data",
        "BlobProto.diff",
        "BlobProto.double_data",
        "BlobProto.double_diff",
    }


def test_v1_layer_param_field_numbers():
    expected = {
        "accuracy_param": 27, "argmax_param": 23, "concat_param": 9,
        "contrastive_loss_param": 40, "convolution_param": 10, "data_param": 11,
        "dropout_param": 12, "dummy_data_param": 26, "eltwise_param": 24,
        "exp_param": 41, "hdf5_data_param": 13, "hdf5_output_param": 14,
        "hinge_loss_param": 29, "image_data_param": 15, "infogain_loss_param": 16,
        "inner_product_param": 17, "lrn_param": 18, "memory_data_param": 22,
        "mvn_param": 34, "pooling_param": 19, "power_param": 21, "relu_param": 30,
        "sigmoid_param": 38, "softmax_param": 39, "slice_param": 31,
        "tanh_param": 37, "threshold_param": 25, "window_data_param": 20,
        "transform_param": 36, "loss_param": 42,
    }
    fields = caffe_pb2.V1LayerParameter.DESCRIPTOR.fields_by_name
    got = {n: f.number for n, f in fields.items() if n.endswith("_param")}
    assert got == expected


# ---------------------------------------------------------------------------
# Enums
# ---------------------------------------------------------------------------


def test_enum_values():
    p = caffe_pb2
    assert (p.TRAIN, p.TEST) == (0, 1)
    assert p.Phase.Name(1) == "TEST"
    assert (p.PoolingParameter.MAX, p.PoolingParameter.AVE,
            p.PoolingParameter.STOCHASTIC) == (0, 1, 2)
    assert (p.PoolingParameter.CEIL, p.PoolingParameter.FLOOR) == (0, 1)
    assert (p.EltwiseParameter.PROD, p.EltwiseParameter.SUM,
            p.EltwiseParameter.MAX) == (0, 1, 2)
    assert (p.DataParameter.LEVELDB, p.DataParameter.LMDB) == (0, 1)
    assert (p.LossParameter.FULL, p.LossParameter.VALID, p.LossParameter.BATCH_SIZE,
            p.LossParameter.NONE) == (0, 1, 2, 3)
    assert (p.ParamSpec.STRICT, p.ParamSpec.PERMISSIVE) == (0, 1)
    assert (p.FillerParameter.FAN_IN, p.FillerParameter.FAN_OUT,
            p.FillerParameter.AVERAGE) == (0, 1, 2)
    assert (p.ReductionParameter.SUM, p.ReductionParameter.ASUM,
            p.ReductionParameter.SUMSQ, p.ReductionParameter.MEAN) == (1, 2, 3, 4)
    assert (p.HingeLossParameter.L1, p.HingeLossParameter.L2) == (1, 2)
    assert (p.LRNParameter.ACROSS_CHANNELS, p.LRNParameter.WITHIN_CHANNEL) == (0, 1)
    assert (p.SolverParameter.HDF5, p.SolverParameter.BINARYPROTO) == (0, 1)
    assert (p.SolverParameter.CPU, p.SolverParameter.GPU) == (0, 1)
    assert [p.SolverParameter.SolverType.Name(i) for i in range(6)] == [
        "SGD", "NESTEROV", "ADAGRAD", "RMSPROP", "ADADELTA", "ADAM"]
    assert (p.V1LayerParameter.STRICT, p.V1LayerParameter.PERMISSIVE) == (0, 1)
    for msg in ("ConvolutionParameter", "PoolingParameter", "LRNParameter",
                "ReLUParameter", "SigmoidParameter", "SoftmaxParameter",
                "TanHParameter", "SPPParameter"):
        enum = getattr(p, msg).DESCRIPTOR.enum_types_by_name["Engine"]
        assert enum.full_name == f"caffe.{msg}.Engine"
        assert [(v.name, v.number) for v in enum.values] == [
            ("DEFAULT", 0), ("CAFFE", 1), ("CUDNN", 2)]


def test_v1_layer_type_enum():
    expected = {
        "NONE": 0, "ABSVAL": 35, "ACCURACY": 1, "ARGMAX": 30, "BNLL": 2, "CONCAT": 3,
        "CONTRASTIVE_LOSS": 37, "CONVOLUTION": 4, "DATA": 5, "DECONVOLUTION": 39,
        "DROPOUT": 6, "DUMMY_DATA": 32, "EUCLIDEAN_LOSS": 7, "ELTWISE": 25, "EXP": 38,
        "FLATTEN": 8, "HDF5_DATA": 9, "HDF5_OUTPUT": 10, "HINGE_LOSS": 28,
        "IM2COL": 11, "IMAGE_DATA": 12, "INFOGAIN_LOSS": 13, "INNER_PRODUCT": 14,
        "LRN": 15, "MEMORY_DATA": 29, "MULTINOMIAL_LOGISTIC_LOSS": 16, "MVN": 34,
        "POOLING": 17, "POWER": 26, "RELU": 18, "SIGMOID": 19,
        "SIGMOID_CROSS_ENTROPY_LOSS": 27, "SILENCE": 36, "SOFTMAX": 20,
        "SOFTMAX_LOSS": 21, "SPLIT": 22, "SLICE": 33, "TANH": 23, "WINDOW_DATA": 24,
        "THRESHOLD": 31,
    }
    enum = caffe_pb2.V1LayerParameter.DESCRIPTOR.enum_types_by_name["LayerType"]
    assert {v.name: v.number for v in enum.values} == expected


def test_defaults_through_message_api():
    conv = caffe_pb2.ConvolutionParameter()
    assert conv.bias_term is True and conv.group == 1
    solver = caffe_pb2.SolverParameter()
    assert solver.type == "SGD"
    assert solver.clip_gradients == -1
    assert solver.momentum2 == pytest.approx(0.999)
    assert solver.delta == pytest.approx(1e-8)
    assert solver.random_seed == -1
    assert solver.solver_mode == caffe_pb2.SolverParameter.GPU
    assert caffe_pb2.FillerParameter().std == 1
    assert caffe_pb2.PoolingParameter().round_mode == caffe_pb2.PoolingParameter.CEIL
    assert caffe_pb2.NetState().phase == caffe_pb2.TEST
    assert caffe_pb2.WindowDataParameter().crop_mode == "warp"
