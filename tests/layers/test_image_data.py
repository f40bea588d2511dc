import importlib.util

import numpy as np
import pytest

from recaffe import backend
from recaffe.blob import Blob
from recaffe.errors import DataError, LayerSetupError
from recaffe.proto import caffe_pb2
from recaffe.testing.layer_test import Case, LayerTestCase, make_layer

NO_GRAD = "ImageData has no bottoms, so there is nothing to differentiate"
HAVE_PIL = importlib.util.find_spec("PIL") is not None
needs_pil = pytest.mark.skipif(not HAVE_PIL, reason="Pillow not installed")
rng = np.random.default_rng(0)
IMAGES = rng.integers(0, 256, (4, 3, 5, 6)).astype(np.uint8)  # BGR, C x H x W
LABELS = [3, 0, 2, 1]


def text(source, batch, extra="", transform=""):
    return (f'type: "ImageData" name: "img" top: "data" top: "label" '
            f'image_data_param {{ source: "{source}" batch_size: {batch} {extra} }} '
            f"{transform}")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    if not HAVE_PIL:
        pytest.skip("Pillow not installed")
    from PIL import Image  # noqa: PLC0415

    d = tmp_path_factory.mktemp("imgs")
    for i, img in enumerate(IMAGES):
        Image.fromarray(img[::-1].transpose(1, 2, 0)).save(d / f"{i}.png")
    (d / "list.txt").write_text("".join(f"{i}.png {lab}\n"
                                        for i, lab in enumerate(LABELS)))
    return d


class TestImageData(LayerTestCase):
    layer_type = "ImageData"

    @pytest.fixture(autouse=True)
    def _cases(self, images, request):
        src = images / "list.txt"
        root = f'root_folder: "{images}/"'
        request.cls.cases = [
            Case(text(src, 2, root), [], num_tops=2, gradient=False, why=NO_GRAD),
            Case(text(src, 6, root), [], num_tops=2, gradient=False, why=NO_GRAD),
            Case(text(src, 3, root, "transform_param { scale: 0.5 crop_size: 3 "
                                    "mean_value: 5 }"), [], num_tops=2,
                 gradient=False, why=NO_GRAD, phase=caffe_pb2.TEST),
        ]

    def reference(self, case, bottoms, layer):
        p = layer.layer_param
        b = p.image_data_param.batch_size
        tp = p.transform_param
        idx = [i % 4 for i in range(b)]
        x = (IMAGES[idx].astype(np.float64) - (tp.mean_value[0] if tp.mean_value
                                               else 0)) * tp.scale
        if tp.crop_size:
            x = x[:, :, 1:4, 1:4]
        return [x, np.array(LABELS)[idx]]


@needs_pil
def test_gray_resize_shuffle(images, monkeypatch):
    monkeypatch.chdir(images)
    backend.set_random_seed(4)
    layer = make_layer(text("list.txt", 4, "is_color: false new_height: 2 "
                                           "new_width: 3 shuffle: true"))
    top = [Blob(()), Blob(())]
    layer.SetUp([], top)
    layer.Forward([], top)
    assert top[0].shape == (4, 1, 2, 3)
    assert sorted(top[1].data.tolist()) == [0, 1, 2, 3]


@needs_pil
def test_errors(images, tmp_path):
    top = [Blob(()), Blob(())]
    with pytest.raises(DataError, match=r"missing\.txt"):
        make_layer(text(tmp_path / "missing.txt", 1)).SetUp([], top)
    (tmp_path / "bad.txt").write_text("a.png x\n")
    with pytest.raises(DataError, match=r"bad.txt:1"):
        make_layer(text(tmp_path / "bad.txt", 1)).SetUp([], top)
    (tmp_path / "gone.txt").write_text("gone.png 1\n")
    with pytest.raises(DataError, match=r"ImageData layer 'img'.*gone.png"):
        make_layer(text(tmp_path / "gone.txt", 1)).SetUp([], top)
    with pytest.raises(LayerSetupError, match="together"):
        make_layer(text(images / "list.txt", 1, "new_height: 3")).SetUp([], top)


@pytest.mark.skipif(HAVE_PIL, reason="Pillow installed")
def test_without_pillow(tmp_path):
    (tmp_path / "l.txt").write_text("a.png 1\n")
    with pytest.raises(DataError, match="Pillow"):
        make_layer(text(tmp_path / "l.txt", 1)).SetUp([], [Blob(()), Blob(())])
