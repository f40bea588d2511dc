import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import DataError, LayerSetupError
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_test import Case, LayerTestCase, make_layer

NO_GRAD = "MemoryData has no bottoms, so there is nothing to differentiate"
rng = np.random.default_rng(0)
DATA = rng.standard_normal((6, 2, 3, 4)).astype(np.float32)
LABELS = np.arange(6, dtype=np.float32)


def text(batch=2, c=2, h=3, w=4, extra=""):
    return (f'type: "MemoryData" name: "mem" top: "data" top: "label" '
            f"memory_data_param {{ batch_size: {batch} channels: {c} height: {h} "
            f"width: {w} }} {extra}")


class TestMemoryData(LayerTestCase):
    layer_type = "MemoryData"
    cases = [
        Case(text(2), [], num_tops=2, gradient=False, why=NO_GRAD),
        Case(text(3), [], num_tops=2, gradient=False, why=NO_GRAD),
        Case(text(6), [], num_tops=2, gradient=False, why=NO_GRAD),
    ]

    def build(self, case, dtype, seed=1701):
        layer, bottom, top = super().build(case, dtype, seed)
        layer.reset(DATA, LABELS)
        return layer, bottom, top

    def reference(self, case, bottoms, layer):
        b = layer.batch_size
        return [DATA[:b], LABELS[:b]]


def setup(txt=None):
    layer = make_layer(txt or text(2))
    top = [Blob(()), Blob(())]
    layer.SetUp([], top)
    return layer, top


def test_consecutive_batches_wrap_around():
    layer, top = setup()
    layer.reset(DATA, LABELS[:, None, None, None].copy())  # pycaffe's label shape
    seen = []
    for _ in range(5):
        layer.Forward([], top)
        seen.append(top[1].data.copy())
        assert top[0].shape == (2, 2, 3, 4) and top[1].shape == (2,)
    np.testing.assert_array_equal(np.concatenate(seen), [0, 1, 2, 3, 4, 5, 0, 1, 2, 3])
    np.testing.assert_array_equal(top[0].data, DATA[2:4])


def test_forward_before_reset():
    layer, top = setup()
    with pytest.raises(DataError, match="reset"):
        layer.Forward([], top)


@pytest.mark.parametrize("data, labels, match", [
    (DATA.astype(np.float64), LABELS, "float32"),
    (np.asfortranarray(DATA), LABELS, "C-contiguous"),
    (DATA[:, :, :, :2].copy(), LABELS, r"\(2, 3, 4\)"),
    (DATA.reshape(6, 24), LABELS, "4 axes"),
    (DATA, LABELS[:4], "same first dimension"),
    (DATA[:5], LABELS[:5], "multiple of batch_size"),
    (DATA, np.zeros((6, 1, 2, 1), np.float32), r"\(N,\)"),
    (DATA, LABELS.reshape(3, 2), "labels must have shape"),
    (DATA.tolist(), LABELS, "numpy array"),
])
def test_reset_validation(data, labels, match):
    layer, _ = setup()
    with pytest.raises(DataError, match=match) as info:
        layer.reset(data, labels)
    assert "MemoryData layer 'mem'" in str(info.value)


def test_bad_params():
    with pytest.raises(LayerSetupError, match="positive"):
        setup(text(2, c=0))


def test_float64_top():
    layer = make_layer(text(3))
    top = [Blob((), dtype=np.float64), Blob((), dtype=np.float64)]
    layer.SetUp([], top)
    layer.reset(DATA, LABELS)
    layer.Forward([], top)
    assert top[0].data.dtype == np.float64
    np.testing.assert_array_equal(top[0].data, DATA[:3])


def test_add_array_vector_applies_transform():
    layer, top = setup(text(2, c=2, h=2, w=2,
                            extra="transform_param { scale: 0.5 crop_size: 2 "
                                  "mean_value: 1 mean_value: 2 }"))
    layer.phase = caffe_pb2.TEST
    layer.add_array_vector(list(DATA[:4]), LABELS[:4])
    layer.Forward([], top)
    mean = np.array([1.0, 2.0]).reshape(2, 1, 1)
    want = ((DATA[:2] - mean) * 0.5)[:, :, 0:2, 1:3]  # centre crop of 3 x 4
    np.testing.assert_allclose(top[0].data, want, rtol=1e-6)
    np.testing.assert_array_equal(top[1].data, LABELS[:2])


def test_add_datum_vector():
    layer, top = setup(text(2, c=1, h=2, w=2, extra="transform_param { scale: 2 }"))
    datums = []
    for i in range(2):
        d = caffe_pb2.Datum(channels=1, height=2, width=2, label=7 + i)
        d.data = bytes([i, 1, 2, 3])
        datums.append(d)
    layer.add_datum_vector(datums)
    layer.Forward([], top)
    np.testing.assert_array_equal(top[0].data[:, 0].reshape(2, 4),
                                  [[0, 2, 4, 6], [2, 2, 4, 6]])
    np.testing.assert_array_equal(top[1].data, [7, 8])


def test_set_input_arrays_through_net(tmp_path):
    from recaffe.net import Net  # noqa: PLC0415

    p = tmp_path / "net.prototxt"
    p.write_text('layer { name: "mem" type: "MemoryData" top: "data" top: "label" '
                 "memory_data_param { batch_size: 3 channels: 2 height: 3 width: 4 } }")
    net = Net(str(p), caffe_pb2.TEST)
    net.set_input_arrays(DATA, LABELS)
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, DATA[:3])
    np.testing.assert_array_equal(net.blobs["label"].data, LABELS[:3])
    net.forward()
    np.testing.assert_array_equal(net.blobs["label"].data, LABELS[3:])
