import importlib.util

import h5py
import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.data_transformer import load_mean_file
from recaffe.errors import DataError
from recaffe.io.db import open_db
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_test import make_layer
from recaffe.tools.convert import (
    arrays_to_lmdb,
    compute_image_mean,
    folder_to_lmdb,
    hdf5_to_lmdb,
    main,
    main_mean,
)

pytest.importorskip("lmdb")
HAVE_PIL = importlib.util.find_spec("PIL") is not None
needs_pil = pytest.mark.skipif(not HAVE_PIL, reason="Pillow not installed")

rng = np.random.default_rng(0)
IMAGES = rng.integers(0, 256, (6, 3, 5, 4)).astype(np.uint8)
LABELS = np.array([0, 2, 1, 2, 0, 1])


def read_all(path, transform="", batch=None, phase=caffe_pb2.TEST):
    n = batch or 1
    layer = make_layer(f'type: "Data" top: "data" top: "label" data_param {{ '
                       f'source: "{path}" batch_size: {n} backend: LMDB }} {transform}',
                       phase)
    top = [Blob(()), Blob(())]
    layer.SetUp([], top)
    layer.Forward([], top)
    layer.close()
    return top[0].data.copy(), top[1].data.copy()


def test_keys_and_records(tmp_path):
    path = str(tmp_path / "db")
    assert arrays_to_lmdb(IMAGES, LABELS, path) == 6
    keys = []
    with open_db(path) as cur:
        for _ in range(6):
            keys.append(cur.key())
            d = caffe_pb2.Datum()
            d.ParseFromString(cur.value())
            assert (d.channels, d.height, d.width) == (3, 5, 4)
            assert not d.float_data and len(d.data) == 60
            cur.next()
        assert cur.key() == b"00000000"  # wrapped around
    assert keys == [b"%08d" % i for i in range(6)]


def test_round_trip_with_transform(tmp_path):
    path = str(tmp_path / "db")
    arrays_to_lmdb(IMAGES, LABELS, path)
    data, labels = read_all(path, batch=6)
    np.testing.assert_array_equal(data, IMAGES)
    np.testing.assert_array_equal(labels, LABELS)
    data, _ = read_all(path, "transform_param { scale: 0.25 mean_value: 3 "
                             "crop_size: 3 }", batch=6)
    want = ((IMAGES.astype(np.float32) - 3) * 0.25)[:, :, 1:4, 0:3]
    np.testing.assert_allclose(data, want, rtol=1e-6)


def test_float_images_and_promoted_shapes(tmp_path):
    f = rng.standard_normal((3, 2, 2, 2)).astype(np.float32)
    arrays_to_lmdb(f, [1, 2, 3], str(tmp_path / "f"))
    data, labels = read_all(str(tmp_path / "f"), batch=3)
    np.testing.assert_array_equal(data, f)
    np.testing.assert_array_equal(labels, [1, 2, 3])
    v = rng.standard_normal((2, 5))
    arrays_to_lmdb(v, np.array([1.0, 0.0]), str(tmp_path / "v"))
    data, _ = read_all(str(tmp_path / "v"), batch=2)
    np.testing.assert_allclose(data, v.reshape(2, 5, 1, 1), rtol=1e-6)


def test_mean_file(tmp_path):
    path = str(tmp_path / "db")
    arrays_to_lmdb(IMAGES, LABELS, path)
    out = str(tmp_path / "mean.binaryproto")
    mean = compute_image_mean(path, out)
    assert mean.shape == (1, 3, 5, 4)
    np.testing.assert_allclose(mean[0], IMAGES.mean(axis=0), rtol=1e-6)
    blob = caffe_pb2.BlobProto()
    with open(out, "rb") as fh:
        blob.ParseFromString(fh.read())
    assert (blob.num, blob.channels, blob.height, blob.width) == (1, 3, 5, 4)
    np.testing.assert_allclose(load_mean_file(out), mean[0])
    data, _ = read_all(path, f'transform_param {{ mean_file: "{out}" }}', batch=6)
    np.testing.assert_allclose(data, IMAGES - mean, rtol=1e-5, atol=1e-4)


def test_hdf5_to_lmdb(tmp_path):
    h5 = str(tmp_path / "x.h5")
    with h5py.File(h5, "w") as fh:
        fh["images"] = IMAGES
        fh["labels"] = LABELS.astype(np.float32)
    assert hdf5_to_lmdb(h5, "images", "labels", str(tmp_path / "db")) == 6
    data, labels = read_all(str(tmp_path / "db"), batch=6)
    np.testing.assert_array_equal(data, IMAGES)
    np.testing.assert_array_equal(labels, LABELS)
    with pytest.raises(DataError, match="no dataset 'nope'"):
        hdf5_to_lmdb(h5, "nope", "labels", str(tmp_path / "db2"))


def test_errors(tmp_path):
    path = str(tmp_path / "db")
    arrays_to_lmdb(IMAGES, LABELS, path)
    with pytest.raises(DataError, match="already exists"):
        arrays_to_lmdb(IMAGES, LABELS, path)
    arrays_to_lmdb(IMAGES[:2], LABELS[:2], path, overwrite=True)
    assert read_all(path, batch=3)[1].tolist() == [0, 2, 0]
    with pytest.raises(DataError, match="one label per image"):
        arrays_to_lmdb(IMAGES, LABELS[:3], str(tmp_path / "a"))
    with pytest.raises(DataError, match="integers"):
        arrays_to_lmdb(IMAGES[:2], [0.5, 1], str(tmp_path / "b"))
    with pytest.raises(DataError, match="uint8"):
        arrays_to_lmdb(IMAGES.astype(np.float32), LABELS, str(tmp_path / "c"),
                       encoded=True)
    with pytest.raises(DataError, match=r"\[0, 255\]"):
        arrays_to_lmdb(IMAGES.astype(np.int32) + 1000, LABELS, str(tmp_path / "d"))
    with pytest.raises(DataError, match="does not exist"):
        compute_image_mean(str(tmp_path / "none"))


def test_cli_npz_and_mean(tmp_path, capsys):
    npz = str(tmp_path / "x.npz")
    np.savez(npz, data=IMAGES, label=LABELS)
    out = str(tmp_path / "db")
    mean = str(tmp_path / "m.binaryproto")
    assert main(["--npz", npz, "--out", out, "--mean", mean]) == 0
    assert "Processed 6" in capsys.readouterr().out
    np.testing.assert_array_equal(read_all(out, batch=6)[0], IMAGES)
    np.testing.assert_allclose(load_mean_file(mean), IMAGES.mean(0), rtol=1e-6)
    assert main(["--npz", npz, "--out", out]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["--npz", npz, "--out", str(tmp_path / "e"), "--data-key", "x"]) == 1
    assert "--data-key" in capsys.readouterr().err
    assert main_mean([out, str(tmp_path / "m2.binaryproto")]) == 0
    assert "mean_value channel [2]" in capsys.readouterr().out
    assert main_mean([str(tmp_path / "none")]) == 1
    with pytest.raises(SystemExit):
        main(["--out", out])  # no source


def test_cli_hdf5(tmp_path):
    h5 = str(tmp_path / "x.h5")
    with h5py.File(h5, "w") as fh:
        fh["data"] = IMAGES
        fh["label"] = LABELS
    assert main(["--hdf5", h5, "--out", str(tmp_path / "db")]) == 0
    np.testing.assert_array_equal(read_all(str(tmp_path / "db"), batch=6)[1], LABELS)


def _write_images(root):
    from PIL import Image  # noqa: PLC0415

    paths = []
    for i, (img, lab) in enumerate(zip(IMAGES, LABELS, strict=True)):
        d = root / f"class{lab}"
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"img{i}.png"
        Image.fromarray(img[::-1].transpose(1, 2, 0)).save(p)  # BGR -> RGB file
        paths.append((f"class{lab}/img{i}.png", int(lab)))
    return paths


@needs_pil
def test_folder_to_lmdb_subfolders(tmp_path):
    _write_images(tmp_path / "imgs")
    n = folder_to_lmdb(str(tmp_path / "imgs"), None, str(tmp_path / "db"))
    assert n == 6
    data, labels = read_all(str(tmp_path / "db"), batch=6)
    order = np.argsort(LABELS, kind="stable")  # class folders in sorted order
    np.testing.assert_array_equal(data, IMAGES[order])
    np.testing.assert_array_equal(labels, LABELS[order])
    with open_db(str(tmp_path / "db")) as cur:
        assert cur.key() == b"00000000_class0/img0.png"


@needs_pil
def test_folder_to_lmdb_list_resize_gray_encoded(tmp_path):
    paths = _write_images(tmp_path / "imgs")
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"{p} {lab}\n" for p, lab in paths))
    folder_to_lmdb(str(tmp_path / "imgs"), str(lst), str(tmp_path / "db"),
                   resize=(2, 3), gray=True, encoded=True)
    data, labels = read_all(str(tmp_path / "db"), batch=6)
    assert data.shape == (6, 1, 2, 3)
    np.testing.assert_array_equal(labels, LABELS)
    assert main(["--images", str(tmp_path / "imgs"), "--list", str(lst), "--out",
                 str(tmp_path / "db2"), "--resize", "4", "4"]) == 0
    assert read_all(str(tmp_path / "db2"))[0].shape == (1, 3, 4, 4)


@pytest.mark.skipif(HAVE_PIL, reason="Pillow installed")
def test_folder_without_pillow(tmp_path):
    with pytest.raises(DataError, match="Pillow"):
        folder_to_lmdb(str(tmp_path), None, str(tmp_path / "db"))
