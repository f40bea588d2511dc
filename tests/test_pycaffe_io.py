"""recaffe.io: pycaffe's caffe.io functions (ports of test_io.py and more)."""

import numpy as np
import pytest

import recaffe as caffe
from recaffe.proto import caffe_pb2


def test_old_format():
    blob = caffe_pb2.BlobProto()
    blob.num, blob.channels, blob.height, blob.width = 1, 1, 10, 10
    blob.data.extend(list(range(100)))
    arr = caffe.io.blobproto_to_array(blob)
    assert arr.shape == (1, 1, 10, 10)


def test_new_format():
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([10, 10])
    blob.data.extend(list(range(100)))
    assert caffe.io.blobproto_to_array(blob).shape == (10, 10)


def test_no_shape():
    blob = caffe_pb2.BlobProto()
    blob.data.extend(list(range(100)))
    with pytest.raises(ValueError):
        caffe.io.blobproto_to_array(blob)


def test_scalar():
    blob = caffe_pb2.BlobProto()
    blob.data.extend([123])
    assert caffe.io.blobproto_to_array(blob) == 123


def test_label_none_size():
    arr = np.ones((10, 10, 3))
    d1 = caffe.io.array_to_datum(arr)
    d2 = caffe.io.array_to_datum(arr, label=1)
    assert len(d1.SerializeToString()) < len(d2.SerializeToString())
    assert not d1.HasField("label") and d2.label == 1


def test_datum_round_trips():
    u8 = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    d = caffe.io.array_to_datum(u8, label=3)
    assert len(d.data) == 24 and len(d.float_data) == 0
    np.testing.assert_array_equal(caffe.io.datum_to_array(d), u8)
    f = np.linspace(0, 1, 24).reshape(2, 3, 4)
    d = caffe.io.array_to_datum(f)
    assert len(d.float_data) == 24
    np.testing.assert_allclose(caffe.io.datum_to_array(d), f, rtol=1e-6)
    with pytest.raises(ValueError, match="Incorrect array shape"):
        caffe.io.array_to_datum(np.ones((2, 2)))


def test_blobproto_vector_round_trip():
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones((4,), np.float32)]
    s = caffe.io.arraylist_to_blobprotovector_str(arrays)
    assert isinstance(s, bytes)
    back = caffe.io.blobprotovector_str_to_arraylist(s)
    assert len(back) == 2
    for a, b in zip(arrays, back, strict=True):
        np.testing.assert_array_equal(a, b)
    bp = caffe.io.array_to_blobproto(arrays[0], diff=arrays[0] * 2)
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(bp, return_diff=True),
                                  arrays[0] * 2)


def test_transformer_round_trip():
    t = caffe.io.Transformer({"data": (1, 3, 4, 5)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255)
    t.set_mean("data", np.array([10.0, 20.0, 30.0]))
    t.set_input_scale("data", 0.5)
    im = np.random.default_rng(0).random((4, 5, 3)).astype(np.float32)
    x = t.preprocess("data", im)
    assert x.shape == (3, 4, 5) and x.dtype == np.float32
    expected = (im.transpose(2, 0, 1)[[2, 1, 0]] * 255
                - np.array([10, 20, 30])[:, None, None]) * 0.5
    np.testing.assert_allclose(x, expected, rtol=1e-5)
    np.testing.assert_allclose(t.deprocess("data", x), im, rtol=1e-5, atol=1e-6)


def test_transformer_errors_and_resize():
    t = caffe.io.Transformer({"data": (1, 3, 4, 5)})
    with pytest.raises(Exception, match="not one of the net inputs"):
        t.preprocess("other", np.zeros((4, 5, 3)))
    with pytest.raises(Exception, match="Transpose order"):
        t.set_transpose("data", (1, 0))
    with pytest.raises(Exception, match="Channel swap"):
        t.set_channel_swap("data", (1, 0))
    with pytest.raises(ValueError, match="Mean channels"):
        t.set_mean("data", np.zeros(2))
    t.set_transpose("data", (2, 0, 1))
    x = t.preprocess("data", np.ones((8, 10, 3), np.float32))  # resized to 4 x 5
    assert x.shape == (3, 4, 5)
    np.testing.assert_allclose(x, 1.0)


def test_resize_image():
    im = np.random.default_rng(1).random((6, 8, 3)).astype(np.float32)
    out = caffe.io.resize_image(im, (3, 4))
    assert out.shape == (3, 4, 3) and out.dtype == np.float32
    assert out.min() >= im.min() - 1e-6 and out.max() <= im.max() + 1e-6
    same = caffe.io.resize_image(im, (6, 8))
    np.testing.assert_allclose(same, im, atol=1e-5)
    const = caffe.io.resize_image(np.full((5, 5, 1), 7.0), (2, 3))
    assert const.shape == (2, 3, 1) and np.all(const == 7.0)


def test_oversample():
    ims = [np.arange(5 * 6 * 1, dtype=np.float32).reshape(5, 6, 1) + 100 * k
           for k in range(2)]
    crops = caffe.io.oversample(ims, (3, 4))
    assert crops.shape == (20, 3, 4, 1)
    np.testing.assert_array_equal(crops[0], ims[0][:3, :4])      # top-left
    np.testing.assert_array_equal(crops[3], ims[0][2:, 2:])      # bottom-right
    np.testing.assert_array_equal(crops[4], ims[0][1:4, 1:5])    # center
    np.testing.assert_array_equal(crops[5], ims[0][:3, :4][:, ::-1])  # mirrored
    np.testing.assert_array_equal(crops[10], ims[1][:3, :4])


def test_load_image_needs_an_image_library_or_works(tmp_path):
    path = tmp_path / "im.png"
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is None:
        try:
            import skimage  # noqa: F401
        except ImportError:
            with pytest.raises(caffe.errors.RecaffeError, match="Pillow"):
                caffe.io.load_image(str(path))
            return
        pytest.skip("scikit-image without Pillow: no writer for the test image")
    Image.fromarray(np.full((4, 5, 3), 255, np.uint8)).save(path)
    im = caffe.io.load_image(str(path))
    assert im.shape == (4, 5, 3) and im.dtype == np.float32
    np.testing.assert_allclose(im, 1.0)
    gray = caffe.io.load_image(str(path), color=False)
    assert gray.shape == (4, 5, 1)
