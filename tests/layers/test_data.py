import importlib.util

import numpy as np
import pytest

from recaffe import backend
from recaffe.blob import Blob
from recaffe.errors import DataError, LayerSetupError
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_test import Case, LayerTestCase, make_layer
from recaffe.tools.convert import arrays_to_lmdb, compute_image_mean

pytest.importorskip("lmdb")

NO_GRAD = "Data has no bottoms, so there is nothing to differentiate"
HAVE_PIL = importlib.util.find_spec("PIL") is not None
rng = np.random.default_rng(0)
IMAGES = rng.integers(0, 256, (5, 3, 4, 5)).astype(np.uint8)
LABELS = np.array([3, 1, 4, 1, 5])
FLOATS = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)


def text(source, batch, transform="", tops=("data", "label")):
    t = " ".join(f'top: "{n}"' for n in tops)
    return (f'type: "Data" name: "d" {t} data_param {{ source: "{source}" '
            f"batch_size: {batch} backend: LMDB }} {transform}")


def reference_batch(images, labels, batch, param, phase, seed=7):
    """Caffe's transform, written out plainly: per item, mirror coin then crop
    offsets, (x - mean) * scale on the full item, then crop and mirror."""
    backend.set_random_seed(seed)
    r = backend.rng()
    n = images.shape[0]
    out, labs = [], []
    for i in range(batch):
        x = images[i % n].astype(np.float64)
        lab = labels[i % n]
        mirror = param.mirror and phase == caffe_pb2.TRAIN and bool(r.integers(2))
        c, h, w = x.shape
        cs = param.crop_size
        ho = wo = 0
        if cs:
            if phase == caffe_pb2.TRAIN:
                ho, wo = int(r.integers(h - cs + 1)), int(r.integers(w - cs + 1))
            else:
                ho, wo = (h - cs) // 2, (w - cs) // 2
        if param.mean_file:
            x = x - MEANS[param.mean_file][0]
        elif len(param.mean_value) == 1:
            x = x - param.mean_value[0]
        elif len(param.mean_value):
            x = x - np.array(param.mean_value).reshape(c, 1, 1)
        x = x * param.scale
        if cs:
            x = x[:, ho:ho + cs, wo:wo + cs]
        if mirror:
            x = x[:, :, ::-1]
        out.append(x)
        labs.append(lab)
    return np.stack(out), np.array(labs, dtype=np.float64)


MEANS = {}  # mean_file path -> mean array


@pytest.fixture(scope="module")
def dbs(tmp_path_factory):
    d = tmp_path_factory.mktemp("lmdb")
    arrays_to_lmdb(IMAGES, LABELS, str(d / "u8"))
    arrays_to_lmdb(FLOATS, np.arange(4), str(d / "f32"))
    mean_path = str(d / "mean.binaryproto")
    MEANS[mean_path] = compute_image_mean(str(d / "u8"), mean_path)
    return {"u8": str(d / "u8"), "f32": str(d / "f32"), "mean": mean_path,
            "dir": d}


class TestData(LayerTestCase):
    layer_type = "Data"

    @pytest.fixture(autouse=True)
    def _cases(self, dbs, request):
        u8, f32, mean = dbs["u8"], dbs["f32"], dbs["mean"]

        def case(src, batch, transform="", tops=("data", "label"),
                 phase=caffe_pb2.TRAIN):
            return Case(text(src, batch, transform, tops), [], num_tops=len(tops),
                        gradient=False, why=NO_GRAD, phase=phase,
                        extra={"arrays": (IMAGES, LABELS) if src == u8 else
                               (FLOATS, np.arange(4))})

        request.cls.cases = [
            case(u8, 2),
            case(u8, 7),  # wraps around
            case(u8, 3, "transform_param { scale: 0.00390625 }", tops=("data",)),
            case(u8, 4, "transform_param { scale: 0.5 mean_value: 10 mean_value: 20 "
                        "mean_value: 30 crop_size: 3 }", phase=caffe_pb2.TEST),
            case(u8, 5, "transform_param { crop_size: 3 mirror: true mean_value: 100 "
                        "}", phase=caffe_pb2.TRAIN),
            case(u8, 5, "transform_param { mirror: true }", phase=caffe_pb2.TEST),
            case(u8, 3, f'transform_param {{ mean_file: "{mean}" scale: 2 }}'),
            case(f32, 3, "transform_param { scale: 3 crop_size: 2 }",
                 phase=caffe_pb2.TEST),
        ]

    def reference(self, case, bottoms, layer):
        images, labels = case.extra["arrays"]
        p = layer.layer_param
        data, labs = reference_batch(images, labels, p.data_param.batch_size,
                                     p.transform_param, case.phase)
        return [data, labs][:case.num_tops]


def run(txt, n=1, phase=caffe_pb2.TRAIN, ntop=2):
    layer = make_layer(txt, phase)
    top = [Blob(()) for _ in range(ntop)]
    layer.SetUp([], top)
    for _ in range(n):
        layer.Forward([], top)
    return layer, top


def test_consecutive_batches(dbs):
    _, top = run(text(dbs["u8"], 2), n=3)  # records 4, 0
    np.testing.assert_array_equal(top[0].data, IMAGES[[4, 0]])
    np.testing.assert_array_equal(top[1].data, LABELS[[4, 0]])
    assert top[0].dtype == np.float32 and top[1].shape == (2,)


def test_rand_skip(dbs):
    backend.set_random_seed(11)
    skip = int(np.random.default_rng(11).integers(4))
    _, top = run(text(dbs["u8"], 1).replace("backend:", "rand_skip: 4 backend:"))
    np.testing.assert_array_equal(top[0].data[0], IMAGES[skip])


def test_legacy_data_param_transform_fields(dbs):
    txt = text(dbs["u8"], 1).replace("backend:", "scale: 0.5 backend:")
    _, top = run(txt)
    np.testing.assert_allclose(top[0].data[0], IMAGES[0] * 0.5)


@pytest.mark.skipif(not HAVE_PIL, reason="Pillow not installed")
def test_encoded_images(tmp_path):
    path = str(tmp_path / "enc")
    arrays_to_lmdb(IMAGES, LABELS, path, encoded=True)
    _, top = run(text(path, 5))
    np.testing.assert_array_equal(top[0].data, IMAGES)
    np.testing.assert_array_equal(top[1].data, LABELS)
    gray = IMAGES[:, :1]
    arrays_to_lmdb(gray, LABELS, str(tmp_path / "g"), encoded=True)
    _, top = run(text(str(tmp_path / "g"), 2, "transform_param { force_color: true }"))
    assert top[0].shape == (2, 3, 4, 5)
    np.testing.assert_array_equal(top[0].data[:, 2], gray[:2, 0])


@pytest.mark.skipif(HAVE_PIL, reason="Pillow installed")
def test_encoded_without_pillow(tmp_path):
    from recaffe.io.db import LMDBWriter  # noqa: PLC0415

    d = caffe_pb2.Datum(channels=3, height=2, width=2, encoded=True, data=b"\x89PNG")
    with LMDBWriter(str(tmp_path / "enc")) as w:
        w.put(b"00000000", d.SerializeToString())
    with pytest.raises(DataError, match="Pillow"):
        run(text(str(tmp_path / "enc"), 1))


def test_errors(dbs, tmp_path):
    with pytest.raises(DataError, match=r"Data layer 'd'.*nowhere.*does not exist"):
        run(text(str(tmp_path / "nowhere"), 1))
    arrays_to_lmdb(np.zeros((0, 1, 1, 1), np.uint8), [], str(tmp_path / "empty"))
    with pytest.raises(DataError, match=r"empty"):
        run(text(str(tmp_path / "empty"), 1))
    with pytest.raises(LayerSetupError, match="batch_size"):
        run(text(dbs["u8"], 0))
    with pytest.raises(LayerSetupError, match="source"):
        run('type: "Data" top: "data" data_param { batch_size: 1 }')
    with pytest.raises(DataError, match="crop_size 9"):
        run(text(dbs["u8"], 1, "transform_param { crop_size: 9 }"))
    with pytest.raises(DataError, match="mean_value"):
        run(text(dbs["u8"], 1, "transform_param { mean_value: 1 mean_value: 2 }"))
    with pytest.raises(DataError, match="mean_file"):
        run(text(dbs["f32"], 1, f'transform_param {{ mean_file: "{dbs["mean"]}" }}'))
    with pytest.raises(LayerSetupError, match="at the same time"):
        run(text(dbs["u8"], 1, f'transform_param {{ mean_file: "{dbs["mean"]}" '
                                'mean_value: 1 }'))
    with pytest.raises(DataError, match=r"missing\.binaryproto"):
        run(text(dbs["u8"], 1, 'transform_param { mean_file: "missing.binaryproto" }'))


@pytest.mark.skipif(importlib.util.find_spec("plyvel") is not None,
                    reason="plyvel installed")
def test_leveldb_without_plyvel(dbs):
    txt = text(dbs["u8"], 1).replace("backend: LMDB", "backend: LEVELDB")
    with pytest.raises(DataError, match=r"plyvel.*backend: LMDB"):
        run(txt)
