"""Binary NetParameter files and BlobProto <-> numpy conversion."""

from __future__ import annotations

import os

import numpy as np
import pytest

from recaffe.errors import WeightsError
from recaffe.io.caffemodel import (
    HDF5_SIGNATURE,
    array_to_blobproto,
    blobproto_to_array,
    is_hdf5,
    read_net_param_binary,
    write_net_param_binary,
)
from recaffe.proto import caffe_pb2


def _small_net() -> caffe_pb2.NetParameter:
    rng = np.random.default_rng(0)
    net = caffe_pb2.NetParameter(name="tiny")
    ip = net.layer.add(name="ip", type="InnerProduct", bottom=["data"], top=["ip"])
    ip.inner_product_param.num_output = 3
    ip.blobs.append(array_to_blobproto(rng.standard_normal((3, 4)).astype(np.float32)))
    ip.blobs.append(array_to_blobproto(rng.standard_normal(3).astype(np.float32)))
    net.layer.add(name="relu", type="ReLU", bottom=["ip"], top=["ip"])
    return net


# ---------------------------------------------------------------------------
# Binary files
# ---------------------------------------------------------------------------


def test_binary_round_trip(tmp_path):
    net = _small_net()
    path = tmp_path / "tiny.caffemodel"
    write_net_param_binary(net, path)
    assert sorted(os.listdir(tmp_path)) == ["tiny.caffemodel"]
    back = read_net_param_binary(path)
    assert back == net
    w = blobproto_to_array(back.layer[0].blobs[0])
    np.testing.assert_array_equal(w, blobproto_to_array(net.layer[0].blobs[0]))
    assert w.shape == (3, 4) and w.dtype == np.float32


def test_binary_round_trip_keeps_unknown_fields(tmp_path):
    net = _small_net()
    # Field 9999 (varint 7) is unknown to the schema, as a fork's field would be.
    data = net.SerializeToString() + b"\xf8\xf0\x04\x07"
    src = tmp_path / "fork.caffemodel"
    src.write_bytes(data)
    parsed = read_net_param_binary(src)
    dst = tmp_path / "copy.caffemodel"
    write_net_param_binary(parsed, dst)
    assert dst.read_bytes() == data


def test_missing_file(tmp_path):
    with pytest.raises(WeightsError, match="could not open") as info:
        read_net_param_binary(tmp_path / "missing.caffemodel")
    assert "missing.caffemodel" in str(info.value)


def test_truncated_file(tmp_path):
    data = _small_net().SerializeToString()
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError) as info:
        read_net_param_binary(path)
    assert str(path) in str(info.value)


def test_garbage_file(tmp_path):
    path = tmp_path / "garbage.caffemodel"
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(WeightsError) as info:
        read_net_param_binary(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes_never_pass_silently(tmp_path, seed):
    rng = np.random.default_rng(seed)
    path = tmp_path / "random.caffemodel"
    path.write_bytes(rng.integers(0, 256, size=int(rng.integers(1, 4096)),
                                  dtype=np.uint8).tobytes())
    try:
        net = read_net_param_binary(path)
    except WeightsError as exc:
        assert str(path) in str(exc)
    else:  # pragma: no cover - astronomically unlikely
        assert len(net.layer) or len(net.layers)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.caffemodel"
    path.write_bytes(b"")
    with pytest.raises(WeightsError, match="empty"):
        read_net_param_binary(path)


def test_text_file_given_as_weights(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text('name: "x"\nlayer { name: "a" }\n')
    with pytest.raises(WeightsError, match="text file"):
        read_net_param_binary(path)


def test_hdf5_detection(tmp_path):
    h5 = tmp_path / "w.caffemodel.h5"
    h5.write_bytes(HDF5_SIGNATURE + b"\x00" * 100)
    assert is_hdf5(h5)
    with pytest.raises(WeightsError, match="HDF5"):
        read_net_param_binary(h5)
    binary = tmp_path / "w.caffemodel"
    write_net_param_binary(_small_net(), binary)
    assert not is_hdf5(binary)
    assert not is_hdf5(tmp_path / "missing")
    userblock = tmp_path / "ub.h5"
    userblock.write_bytes(b"\x00" * 512 + HDF5_SIGNATURE + b"\x00" * 64)
    assert is_hdf5(userblock)


def test_real_h5py_file_is_hdf5(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "real.h5"
    with h5py.File(path, "w") as f:
        f.create_group("data")
    assert is_hdf5(path)


def test_message_over_64mb(tmp_path):
    n = 17 * 1024 * 1024  # 68 MiB of float32
    arr = np.arange(n, dtype=np.float32)
    net = caffe_pb2.NetParameter(name="big")
    net.layer.add(name="p", type="Parameter").blobs.append(array_to_blobproto(arr))
    path = tmp_path / "big.caffemodel"
    write_net_param_binary(net, path)
    assert os.path.getsize(path) > 64 * 1024 * 1024
    back = read_net_param_binary(path)
    out = blobproto_to_array(back.layer[0].blobs[0])
    assert out.shape == (n,)
    assert out[-1] == n - 1 and out[12345] == 12345


# ---------------------------------------------------------------------------
# BlobProto <-> numpy
# ---------------------------------------------------------------------------


def test_array_to_blobproto_round_trip():
    arr = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7
    blob = array_to_blobproto(arr)
    assert list(blob.shape.dim) == [2, 3, 4]
    assert len(blob.data) == 24 and len(blob.diff) == 0
    assert not blob.HasField("num")
    out = blobproto_to_array(blob)
    assert out.dtype == np.float32 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, arr.astype(np.float32))


def test_array_to_blobproto_with_diff():
    arr = np.ones((2, 2), np.float32)
    blob = array_to_blobproto(arr, diff=np.full((2, 2), 3.0))
    np.testing.assert_array_equal(blobproto_to_array(blob, return_diff=True),
                                  np.full((2, 2), 3.0, np.float32))
    with pytest.raises(ValueError):
        array_to_blobproto(arr, diff=np.ones(3))


def test_array_to_blobproto_same_bytes_as_extend():
    arr = np.linspace(-1, 1, 10, dtype=np.float32).reshape(2, 5)
    ref = caffe_pb2.BlobProto()
    ref.shape.dim.extend([2, 5])
    ref.data.extend(arr.flat)
    assert array_to_blobproto(arr).SerializeToString() == ref.SerializeToString()


def test_zero_axis_blob():
    blob = array_to_blobproto(np.float32(2.5))
    assert not blob.HasField("shape")
    assert list(blob.data) == [2.5]
    out = blobproto_to_array(blob)
    assert out.shape == () and out.dtype == np.float32 and out == 2.5


def test_empty_array_has_shape_but_no_data():
    blob = array_to_blobproto(np.zeros((0, 3), np.float32))
    assert list(blob.shape.dim) == [0, 3]
    assert blobproto_to_array(blob).shape == (0, 3)


def test_legacy_4d_dims():
    blob = caffe_pb2.BlobProto(num=1, channels=2, height=1, width=3)
    blob.data.extend(range(6))
    blob.shape.dim.extend([6])  # ignored: legacy dims take precedence
    out = blobproto_to_array(blob)
    assert out.shape == (1, 2, 1, 3)


def test_legacy_dim_presence_not_value():
    # `num` explicitly set (to its default 0) still selects the legacy 4-D shape.
    blob = caffe_pb2.BlobProto()
    blob.num = 0
    assert blobproto_to_array(blob).shape == (0, 0, 0, 0)
    blob.data.append(1.0)
    with pytest.raises(ValueError):
        blobproto_to_array(blob)
    blob.ClearField("num")
    assert blobproto_to_array(blob).shape == ()


def test_count_mismatch_raises_value_error():
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([2, 2])
    blob.data.extend([1, 2, 3])
    with pytest.raises(ValueError):
        blobproto_to_array(blob)


def test_double_data_preferred():
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([3])
    blob.data.extend([9, 9, 9])
    blob.double_data.extend([0.1, 0.2, 0.3])
    out = blobproto_to_array(blob)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [0.1, 0.2, 0.3])
    blob.double_diff.extend([1e-300, 2.0, 3.0])
    diff = blobproto_to_array(blob, return_diff=True)
    assert diff.dtype == np.float64 and diff[0] == 1e-300


def test_diff_from_float_diff():
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([2])
    blob.data.extend([1, 2])
    blob.diff.extend([3, 4])
    np.testing.assert_array_equal(blobproto_to_array(blob, return_diff=True), [3, 4])
