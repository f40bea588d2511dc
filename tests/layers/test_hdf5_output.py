import h5py
import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import DataError, LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

NO_GRAD = "HDF5Output only writes its bottoms to a file; Caffe's backward is empty"
rng = np.random.default_rng(0)
X = rng.standard_normal((3, 2, 2))
Y = np.arange(3.0)


def text(path):
    return f'type: "HDF5Output" name: "out" hdf5_output_param {{ file_name: "{path}" }}'


class TestHDF5Output(LayerTestCase):
    layer_type = "HDF5Output"

    @pytest.fixture(autouse=True)
    def _cases(self, tmp_path, request):
        request.cls.cases = [Case(text(tmp_path / "o.h5"), [X, Y], num_tops=0,
                                  gradient=False, why=NO_GRAD)]

    def reference(self, case, bottoms, layer):
        with h5py.File(layer.file_name, "r") as fh:
            np.testing.assert_allclose(fh["data"][...], bottoms[0], rtol=1e-6)
            np.testing.assert_allclose(fh["label"][...], bottoms[1])
        return []


def test_appends_per_forward_and_file_is_readable_between(tmp_path):
    path = tmp_path / "o.h5"
    layer = make_layer(text(path))
    bottom = make_blobs([X, Y])
    layer.SetUp(bottom, [])
    with h5py.File(path, "r") as fh:
        assert list(fh.keys()) == []
    layer.Forward(bottom, [])
    with h5py.File(path, "r") as fh:  # readable while the layer lives
        assert fh["data"].shape == (3, 2, 2)
    bottom[0].data[...] *= 2
    layer.Forward(bottom, [])
    with h5py.File(path, "r") as fh:
        np.testing.assert_allclose(fh["data"][...], np.concatenate([X, 2 * X]),
                                   rtol=1e-6)
        np.testing.assert_allclose(fh["label"][...], np.concatenate([Y, Y]))
        assert fh["data"].dtype == np.float32
    # setup of a new layer truncates the file, as Caffe
    make_layer(text(path)).SetUp(bottom, [])
    with h5py.File(path, "r") as fh:
        assert list(fh.keys()) == []


def test_errors(tmp_path):
    with pytest.raises(LayerSetupError, match="file_name"):
        make_layer('type: "HDF5Output"').SetUp(make_blobs([X, Y]), [])
    layer = make_layer(text(tmp_path / "o.h5"))
    with pytest.raises(ShapeError, match="same first dimension"):
        layer.SetUp(make_blobs([X, np.arange(2.0)]), [])
    layer = make_layer(text(tmp_path / "o.h5"))
    bottom = make_blobs([X, Y])
    layer.SetUp(bottom, [])
    layer.Forward(bottom, [])
    with pytest.raises(ShapeError, match="rows of shape"):
        layer.Forward(make_blobs([np.zeros((3, 5)), Y]), [])
    with pytest.raises(DataError, match="does not exist"):
        make_layer(text(tmp_path / "nodir" / "o.h5")).SetUp(make_blobs([X, Y]), [])
    with pytest.raises(LayerSetupError, match="top"):
        make_layer(text(tmp_path / "o.h5")).SetUp(make_blobs([X, Y]), [Blob(())])
