"""Whole nets: LeNet from a Caffe prototxt over an LMDB, and one net that uses
every core layer type; each builds, runs forward/backward, saves and reloads its
weights with identical outputs (binary and HDF5)."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

import recaffe
from recaffe.tools.convert import arrays_to_lmdb

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "golden")


def _lenet_with_lmdb(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(130, 1, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=130)
    for name in ("train", "test"):
        arrays_to_lmdb(images, labels, str(tmp_path / f"{name}_lmdb"))
    with open(os.path.join(GOLDEN, "lenet_train_test.prototxt")) as fh:
        text = fh.read()
    text = text.replace("examples/mnist/mnist_train_lmdb", str(tmp_path / "train_lmdb"))
    text = text.replace("examples/mnist/mnist_test_lmdb", str(tmp_path / "test_lmdb"))
    path = tmp_path / "lenet.prototxt"
    path.write_text(text)
    return str(path), images, labels


def test_lenet_from_lmdb_forward_backward_save_reload(tmp_path):
    path, images, labels = _lenet_with_lmdb(tmp_path)
    recaffe.set_random_seed(1)
    net = recaffe.Net(path, recaffe.TRAIN)
    assert net.blobs["data"].data.shape == (64, 1, 28, 28)
    np.testing.assert_allclose(net.forward()["loss"], net.blobs["loss"].data)
    # The Data layer reads the LMDB in key order, scaled by 1/256.
    np.testing.assert_allclose(net.blobs["data"].data, images[:64] / 256.0,
                               rtol=1e-6)
    np.testing.assert_array_equal(net.blobs["label"].data, labels[:64])
    net.backward()
    assert np.any(net.params["conv1"][0].diff != 0)
    weights = str(tmp_path / "lenet.caffemodel")
    net.save(weights)
    test_a = recaffe.Net(path, recaffe.TEST, weights=weights)
    test_b = recaffe.Net(path, recaffe.TEST, weights=weights)
    out_a, out_b = test_a.forward(), test_b.forward()
    assert set(out_a) == {"accuracy", "loss"}
    for k in out_a:
        np.testing.assert_array_equal(out_a[k], out_b[k])


EVERY_LAYER = """
name: "every_layer"
force_backward: true
layer { name: "mem" type: "MemoryData" top: "mem" top: "memlabel"
  memory_data_param { batch_size: 4 channels: 1 height: 2 width: 3 } }
layer { name: "x" type: "Input" top: "x"
  input_param { shape { dim: 4 dim: 3 dim: 8 dim: 8 } } }
layer { name: "ids" type: "DummyData" top: "ids" dummy_data_param {
  shape { dim: 4 dim: 2 } data_filler { type: "constant" value: 3 } } }
layer { name: "h5" type: "HDF5Data" top: "h5x" top: "h5y"
  hdf5_data_param { source: "LIST" batch_size: 4 } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "conv" convolution_param {
  num_output: 4 kernel_size: 3 pad: 1 group: 1 weight_filler { type: "xavier" } } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "bn" }
layer { name: "scale" type: "Scale" bottom: "bn" top: "scale"
  scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "scale" top: "scale" }
layer { name: "lrn" type: "LRN" bottom: "scale" top: "lrn" lrn_param { local_size: 3 } }
layer { name: "pool" type: "Pooling" bottom: "lrn" top: "pool"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "deconv" type: "Deconvolution" bottom: "pool" top: "deconv"
  convolution_param { num_output: 2 kernel_size: 2 stride: 2
    weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "apool" type: "Pooling" bottom: "deconv" top: "apool"
  pooling_param { pool: AVE global_pooling: true } }
layer { name: "flat" type: "Flatten" bottom: "apool" top: "flat" }
layer { name: "emb" type: "Embed" bottom: "ids" top: "emb" embed_param {
  num_output: 3 input_dim: 5 weight_filler { type: "uniform" min: -1 max: 1 } } }
layer { name: "embflat" type: "Reshape" bottom: "emb" top: "embflat"
  reshape_param { shape { dim: 0 dim: -1 } } }
layer { name: "cat" type: "Concat" bottom: "flat" bottom: "embflat" bottom: "h5x"
  top: "cat" }
layer { name: "ip" type: "InnerProduct" bottom: "cat" top: "ip" inner_product_param {
  num_output: 6 weight_filler { type: "gaussian" std: 0.3 }
  bias_filler { type: "constant" value: 0.1 } } }
layer { name: "prelu" type: "PReLU" bottom: "ip" top: "prelu" }
layer { name: "sl" type: "Slice" bottom: "prelu" top: "s1" top: "s2" top: "s3"
  slice_param { slice_point: 2 slice_point: 4 } }
layer { name: "sig" type: "Sigmoid" bottom: "s1" top: "sig" }
layer { name: "tanh" type: "TanH" bottom: "s2" top: "tanh" }
layer { name: "elu" type: "ELU" bottom: "s3" top: "elu" }
layer { name: "prod" type: "Eltwise" bottom: "sig" bottom: "tanh" top: "prod"
  eltwise_param { operation: PROD } }
layer { name: "max" type: "Eltwise" bottom: "prod" bottom: "elu" top: "max"
  eltwise_param { operation: MAX } }
layer { name: "sum" type: "Eltwise" bottom: "max" bottom: "sig" top: "sum"
  eltwise_param { coeff: 1 coeff: -0.5 } }
layer { name: "bias" type: "Bias" bottom: "sum" top: "bias" }
layer { name: "pow" type: "Power" bottom: "bias" top: "pow"
  power_param { power: 2 shift: 1 } }
layer { name: "exp" type: "Exp" bottom: "pow" top: "exp" exp_param { scale: -0.1 } }
layer { name: "log" type: "Log" bottom: "exp" top: "log" log_param { shift: 1 } }
layer { name: "abs" type: "AbsVal" bottom: "log" top: "abs" }
layer { name: "bnll" type: "BNLL" bottom: "abs" top: "bnll" }
layer { name: "drop" type: "Dropout" bottom: "bnll" top: "drop"
  dropout_param { dropout_ratio: 0.2 } }
layer { name: "tile" type: "Tile" bottom: "drop" top: "tile" tile_param { tiles: 2 } }
layer { name: "red" type: "Reduction" bottom: "tile" top: "red"
  reduction_param { operation: SUMSQ axis: 1 } loss_weight: 0.01 }
layer { name: "score" type: "InnerProduct" bottom: "prelu" top: "score"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "sm" type: "Softmax" bottom: "score" top: "sm" }
layer { name: "am" type: "ArgMax" bottom: "sm" top: "am" }
layer { name: "thr" type: "Threshold" bottom: "h5y" top: "thr"
  threshold_param { threshold: 1 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "h5y"
  top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "score" bottom: "h5y" top: "acc" }
layer { name: "eu" type: "EuclideanLoss" bottom: "sig" bottom: "tanh" top: "eu" }
layer { name: "sce" type: "SigmoidCrossEntropyLoss" bottom: "s3" bottom: "tanh01"
  top: "sce" }
layer { name: "t01" type: "DummyData" top: "tanh01"
  dummy_data_param { shape { dim: 4 dim: 2 } data_filler { type: "uniform" } } }
layer { name: "silence" type: "Silence" bottom: "thr" bottom: "mem"
  bottom: "memlabel" }
layer { name: "out" type: "HDF5Output" bottom: "sm" bottom: "am"
  hdf5_output_param { file_name: "OUT" } }
"""


def _every_layer_net(tmp_path, weights=None, phase=recaffe.TRAIN):
    h5 = tmp_path / "d.h5"
    if not h5.exists():
        with h5py.File(h5, "w") as f:
            h5x = np.random.default_rng(0).standard_normal((8, 5))
            f["h5x"] = h5x.astype(np.float32)
            f["h5y"] = np.array([0, 1, 2, 0, 1, 2, 2, 1], dtype=np.float32)
        (tmp_path / "list.txt").write_text(str(h5) + "\n")
    text = EVERY_LAYER.replace("LIST", str(tmp_path / "list.txt"))
    # The SigmoidCrossEntropyLoss target must exist before the loss reads it.
    lines = text.splitlines()
    t01 = next(i for i, ln in enumerate(lines) if '"t01"' in ln)
    block = lines[t01:t01 + 2]
    del lines[t01:t01 + 2]
    sce = next(i for i, ln in enumerate(lines) if '"sce"' in ln)
    lines[sce:sce] = block
    text = "\n".join(lines).replace("OUT", str(tmp_path / "out.h5"))
    path = tmp_path / "every.prototxt"
    path.write_text(text)
    net = recaffe.Net(str(path), phase, weights=weights)
    rng = np.random.default_rng(1)
    net.set_input_arrays(rng.standard_normal((4, 1, 2, 3)).astype(np.float32),
                         np.arange(4, dtype=np.float32))
    net.blobs["x"].data[...] = rng.standard_normal((4, 3, 8, 8))
    return net


def test_net_using_every_core_layer(tmp_path):
    recaffe.set_random_seed(3)
    net = _every_layer_net(tmp_path)
    used = {layer.type for layer in net.layers}
    core = {"Input", "DummyData", "HDF5Data", "MemoryData", "Convolution", "BatchNorm",
            "Scale", "ReLU", "LRN", "Pooling", "Deconvolution", "Flatten", "Embed",
            "Reshape", "Concat", "InnerProduct", "PReLU", "Slice", "Sigmoid", "TanH",
            "ELU", "Eltwise", "Bias", "Power", "Exp", "Log", "AbsVal", "BNLL",
            "Dropout", "Tile", "Reduction", "Softmax", "ArgMax", "Threshold",
            "SoftmaxWithLoss", "Accuracy", "EuclideanLoss", "SigmoidCrossEntropyLoss",
            "Silence", "HDF5Output", "Split"}
    assert core <= used, core - used
    recaffe.set_random_seed(5)
    loss = net.forward_prefilled()
    assert np.isfinite(loss)
    net.clear_param_diffs()
    net.backward()
    for name, blobs in net.params.items():
        for j, b in enumerate(blobs):
            assert np.all(np.isfinite(b.diff)), (name, j)
    assert np.any(net.params["conv"][0].diff != 0)
    assert np.any(net.params["emb"][0].diff != 0)
    assert np.any(net.blobs["x"].diff != 0)
    # Save, reload into a fresh net, same outputs (Dropout reseeded).
    for fmt in ("caffemodel", "caffemodel.h5"):
        path = str(tmp_path / f"w.{fmt}")
        (net.save if fmt == "caffemodel" else net.save_hdf5)(path)
        again = _every_layer_net(tmp_path, weights=path)
        for a, b in zip(net.params.values(), again.params.values(), strict=True):
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x.data, y.data)


@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
def test_every_layer_net_runs_in_both_phases(tmp_path, phase):
    net = _every_layer_net(tmp_path, phase=getattr(recaffe, phase))
    assert all(layer.phase == getattr(recaffe, phase) for layer in net.layers)
    assert np.isfinite(net.forward_prefilled())
    dropped = net.blobs["drop"].data
    if phase == "TEST":  # Dropout is the identity in TEST
        np.testing.assert_array_equal(dropped, net.blobs["bnll"].data)
