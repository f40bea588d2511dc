import numpy as np
import pytest

from recaffe import backend
from recaffe.data_transformer import DataTransformer, datum_to_array
from recaffe.errors import DataError, LayerSetupError
from recaffe.io.caffemodel import array_to_blobproto
from recaffe.proto import caffe_pb2

X = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)


def tp(**kw):
    p = caffe_pb2.TransformationParameter()
    for k, v in kw.items():
        if k == "mean_value":
            p.mean_value.extend(v)
        else:
            setattr(p, k, v)
    return p


def test_identity_and_scale():
    np.testing.assert_array_equal(DataTransformer().transform(X), X)
    assert DataTransformer().is_identity
    t = DataTransformer(tp(scale=0.5, mean_value=[1]))
    np.testing.assert_allclose(t.transform(X), (X - 1) * 0.5)


def test_mean_value_per_channel_and_centre_crop_in_test():
    t = DataTransformer(tp(mean_value=[1, 2], crop_size=3), caffe_pb2.TEST)
    assert t.infer_shape(X.shape) == (2, 3, 3)
    want = (X - np.array([1, 2], np.float32).reshape(2, 1, 1))[:, 0:3, 1:4]
    np.testing.assert_array_equal(t.transform(X), want)


def test_mirror_only_in_train():
    t = DataTransformer(tp(mirror=True), caffe_pb2.TEST)
    for _ in range(5):
        np.testing.assert_array_equal(t.transform(X), X)
    t = DataTransformer(tp(mirror=True), caffe_pb2.TRAIN)
    backend.set_random_seed(0)
    outs = {t.transform(X).tobytes() for _ in range(20)}
    assert outs == {X.tobytes(), X[:, :, ::-1].copy().tobytes()}


def test_random_crop_in_train_covers_offsets():
    t = DataTransformer(tp(crop_size=3), caffe_pb2.TRAIN)
    backend.set_random_seed(0)
    seen = set()
    for _ in range(200):
        y = t.transform(X)
        h, w = np.argwhere(X[0] == y[0, 0, 0])[0]
        np.testing.assert_array_equal(y, X[:, h:h + 3, w:w + 3])
        seen.add((int(h), int(w)))
    assert seen == {(h, w) for h in range(2) for w in range(4)}


def test_mean_file(tmp_path):
    mean = np.full((1, 2, 4, 6), 3.0, np.float32)
    mean[0, 1] = 7
    path = tmp_path / "m.binaryproto"
    path.write_bytes(array_to_blobproto(mean).SerializeToString())
    t = DataTransformer(tp(mean_file=str(path), scale=2))
    np.testing.assert_array_equal(t.transform(X), (X - mean[0]) * 2)
    with pytest.raises(DataError, match="mean_file"):
        t.transform(X[:, :3])
    with pytest.raises(LayerSetupError, match="same time"):
        DataTransformer(tp(mean_file=str(path), mean_value=[1]))
    path.write_bytes(b"\xff\xff\xff")
    with pytest.raises(DataError, match="not a valid BlobProto"):
        DataTransformer(tp(mean_file=str(path)), where="Data layer 'd'")


def test_batch_and_dtype():
    b = np.stack([X, X + 1]).astype(np.uint8)
    out = DataTransformer(tp(scale=2)).transform_batch(b, dtype=np.float64)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, b.astype(np.float64) * 2)
    with pytest.raises(DataError, match="crop_size 9"):
        DataTransformer(tp(crop_size=9)).transform(X)
    with pytest.raises(DataError, match="mean_value"):
        DataTransformer(tp(mean_value=[1, 2, 3])).transform(X)


def test_datum_to_array():
    d = caffe_pb2.Datum(channels=1, height=1, width=3, data=bytes([1, 2, 3]))
    d.float_data.extend([9, 9, 9])  # raw bytes win, as Caffe
    np.testing.assert_array_equal(datum_to_array(d), [[[1, 2, 3]]])
    d = caffe_pb2.Datum(channels=1, height=1, width=2)
    d.float_data.extend([0.5, 1.5])
    np.testing.assert_array_equal(datum_to_array(d), [[[0.5, 1.5]]])
    d = caffe_pb2.Datum(channels=2, height=1, width=2, data=bytes([1, 2]))
    with pytest.raises(DataError, match="has 2 values"):
        datum_to_array(d)
