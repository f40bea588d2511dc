import os

import h5py
import numpy as np
import pytest

from recaffe import backend
from recaffe.blob import Blob
from recaffe.errors import DataError, LayerSetupError
from recaffe.testing.layer_test import Case, LayerTestCase, make_layer

NO_GRAD = "HDF5Data has no bottoms, so there is nothing to differentiate"
rng = np.random.default_rng(0)
FILE_A = {"data": rng.standard_normal((5, 2, 3)), "label": np.arange(5.0)}
FILE_B = {"data": rng.standard_normal((3, 2, 3)), "label": 10 + np.arange(3.0)}


def write_h5(path, arrays):
    with h5py.File(path, "w") as fh:
        for k, v in arrays.items():
            fh.create_dataset(k, data=v)


def write_list(path, names):
    with open(path, "w") as fh:
        fh.write("\n".join(names) + "\n")


def text(source, batch, shuffle=False, tops=("data", "label")):
    t = " ".join(f'top: "{n}"' for n in tops)
    s = "shuffle: true" if shuffle else ""
    return (f'type: "HDF5Data" name: "h5" {t} hdf5_data_param {{ source: "{source}" '
            f"batch_size: {batch} {s} }}")


def rows(files, order):
    """Concatenated rows of ``files`` (dicts) in ``order``."""
    return {k: np.concatenate([files[i][k] for i in order]) for k in ("data", "label")}


@pytest.fixture(scope="module")
def h5dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("h5")
    write_h5(d / "a.h5", FILE_A)
    write_h5(d / "b.h5", FILE_B)
    write_list(d / "two.txt", [str(d / "a.h5"), str(d / "b.h5")])
    write_list(d / "one.txt", [str(d / "a.h5")])
    return d


class TestHDF5Data(LayerTestCase):
    layer_type = "HDF5Data"

    @pytest.fixture(autouse=True)
    def _cases(self, h5dir, request):
        request.cls.cases = [
            Case(text(h5dir / "one.txt", 2), [], num_tops=2, gradient=False,
                 why=NO_GRAD),
            Case(text(h5dir / "two.txt", 4), [], num_tops=2, gradient=False,
                 why=NO_GRAD),
            Case(text(h5dir / "two.txt", 3, tops=("label",)), [], num_tops=1,
                 gradient=False, why=NO_GRAD),
        ]

    def reference(self, case, bottoms, layer):
        p = layer.layer_param.hdf5_data_param
        with open(p.source) as fh:
            n = len([ln for ln in fh if ln.strip()])
        r = rows([FILE_A, FILE_B], range(n))
        return [r[name][:p.batch_size] for name in layer.layer_param.top]


def forward_n(layer, top, n):
    out = []
    for _ in range(n):
        layer.Forward([], top)
        out.append([t.data.copy() for t in top])
    return out


def test_wraps_around_files_and_end(h5dir):
    layer = make_layer(text(h5dir / "two.txt", 3))
    top = [Blob(()), Blob(())]
    layer.SetUp([], top)
    got = forward_n(layer, top, 6)  # 18 rows = 2 passes over 8 rows + 2
    want = rows([FILE_A, FILE_B], [0, 1, 0, 1, 0])
    np.testing.assert_allclose(np.concatenate([g[1] for g in got]), want["label"][:18])
    np.testing.assert_allclose(np.concatenate([g[0] for g in got]), want["data"][:18],
                               rtol=1e-6)
    assert top[0].shape == (3, 2, 3) and top[1].shape == (3,)


def test_shuffle_serves_every_row_once_per_pass(h5dir):
    backend.set_random_seed(3)
    layer = make_layer(text(h5dir / "two.txt", 4, shuffle=True))
    top = [Blob((), dtype=np.float64), Blob((), dtype=np.float64)]
    layer.SetUp([], top)
    got = forward_n(layer, top, 2)
    labels = np.concatenate([g[1] for g in got])
    data = np.concatenate([g[0] for g in got])
    assert sorted(labels) == sorted(np.concatenate([FILE_A["label"], FILE_B["label"]]))
    # rows stay paired with their labels
    everything = rows([FILE_A, FILE_B], [0, 1])
    for lab, d in zip(labels, data, strict=True):
        i = int(np.flatnonzero(everything["label"] == lab)[0])
        np.testing.assert_allclose(d, everything["data"][i])


def test_relative_paths(h5dir, tmp_path, monkeypatch):
    # relative to the working directory, as Caffe
    monkeypatch.chdir(h5dir)
    write_list(tmp_path / "rel_cwd.txt", ["a.h5"])
    layer = make_layer(text(tmp_path / "rel_cwd.txt", 5))
    top = [Blob(()), Blob(())]
    layer.SetUp([], top)
    layer.Forward([], top)
    np.testing.assert_allclose(top[1].data, FILE_A["label"])
    # else relative to the list file's directory
    monkeypatch.chdir(tmp_path)
    layer = make_layer(text(h5dir / "rel_list.txt", 3))
    write_list(h5dir / "rel_list.txt", ["b.h5"])
    layer.SetUp([], top)
    layer.Forward([], top)
    np.testing.assert_allclose(top[1].data, FILE_B["label"])


def test_integer_datasets_are_converted(tmp_path):
    write_h5(tmp_path / "i.h5", {"x": np.arange(6, dtype=np.int32).reshape(3, 2)})
    write_list(tmp_path / "l.txt", [str(tmp_path / "i.h5")])
    layer = make_layer(text(tmp_path / "l.txt", 2, tops=("x",)))
    top = [Blob(())]
    layer.SetUp([], top)
    layer.Forward([], top)
    assert top[0].data.dtype == np.float32
    np.testing.assert_array_equal(top[0].data, [[0, 1], [2, 3]])


def test_errors(tmp_path):
    top = [Blob(()), Blob(())]
    with pytest.raises(DataError, match=r"HDF5Data layer 'h5'.*missing\.txt"):
        make_layer(text(tmp_path / "missing.txt", 2)).SetUp([], top)
    write_list(tmp_path / "gone.txt", [str(tmp_path / "gone.h5")])
    with pytest.raises(DataError, match=r"gone\.h5"):
        make_layer(text(tmp_path / "gone.txt", 2)).SetUp([], top)
    write_list(tmp_path / "empty.txt", [])
    with pytest.raises(DataError, match="lists no files"):
        make_layer(text(tmp_path / "empty.txt", 2)).SetUp([], top)
    write_h5(tmp_path / "nolabel.h5", {"data": np.zeros((2, 1))})
    write_list(tmp_path / "nolabel.txt", [str(tmp_path / "nolabel.h5")])
    with pytest.raises(DataError, match=r"no dataset 'label'.*"):
        make_layer(text(tmp_path / "nolabel.txt", 2)).SetUp([], top)
    write_h5(tmp_path / "mism.h5", {"data": np.zeros((2, 1)), "label": np.zeros(3)})
    write_list(tmp_path / "mism.txt", [str(tmp_path / "mism.h5")])
    with pytest.raises(DataError, match=r"same number of rows.*'data' has 2.*"
                                        r"'label' has 3"):
        make_layer(text(tmp_path / "mism.txt", 2)).SetUp([], top)
    with pytest.raises(LayerSetupError, match="batch_size"):
        make_layer(text(tmp_path / "mism.txt", 0)).SetUp([], top)


def test_no_file_left_open(h5dir):
    layer = make_layer(text(h5dir / "two.txt", 3))
    top = [Blob(()), Blob(())]
    layer.SetUp([], top)
    forward_n(layer, top, 4)
    # h5py tracks open files; none of ours may stay open
    open_names = {os.path.basename(h5py.File(i).filename)
                  for i in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE)}
    assert not open_names & {"a.h5", "b.h5"}
