import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import DataError, LayerSetupError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

IDS = np.array([[3, 0, 1], [3, 6, 4], [2, 5, 2], [4, 0, 1]], dtype=float)
IDS1 = np.array([1, 1, 0, 2], dtype=float)
FILL = ('weight_filler { type: "uniform" min: -1 max: 1 } '
        'bias_filler { type: "uniform" min: -1 max: 1 }')


class TestEmbed(LayerTestCase):
    layer_type = "Embed"
    cases = [
        Case(f'type: "Embed" embed_param {{ num_output: 3 input_dim: 7 {FILL} }}',
             [IDS], check_bottom=None),
        Case(f'type: "Embed" embed_param {{ num_output: 5 input_dim: 3 '
             f'bias_term: false {FILL} }}', [IDS1], check_bottom=None),
    ]

    def reference(self, case, bottoms, layer):
        y = layer.blobs[0].data[bottoms[0].astype(int)]
        if len(layer.blobs) > 1:
            y = y + layer.blobs[1].data
        return [y]


def _setup(text, arrays, dtype=np.float64):
    layer = make_layer(text)
    bottom = make_blobs(arrays, dtype)
    top = [Blob((), dtype=dtype)]
    layer.SetUp(bottom, top)
    return layer, bottom, top


TEXT = f'type: "Embed" embed_param {{ num_output: 3 input_dim: 7 {FILL} }}'


def test_shapes_and_weight_gradient_scatter_adds():
    layer, bottom, top = _setup(TEXT, [IDS])
    assert layer.blobs[0].shape == (7, 3) and layer.blobs[1].shape == (3,)
    assert top[0].shape == (4, 3, 3)
    layer.Forward(bottom, top)
    top[0].diff[...] = 1.0
    for b in layer.blobs:
        b.diff[...] = 0
    layer.Backward(top, [False], bottom)
    counts = np.bincount(IDS.astype(int).ravel(), minlength=7)
    np.testing.assert_allclose(layer.blobs[0].diff, np.repeat(counts[:, None], 3, 1))
    np.testing.assert_allclose(layer.blobs[1].diff, np.full(3, 12.0))


def test_no_filler_means_zero():
    text = 'type: "Embed" embed_param { num_output: 2 input_dim: 3 }'
    layer, _, _ = _setup(text, [IDS1])
    assert np.all(layer.blobs[0].data == 0) and np.all(layer.blobs[1].data == 0)


@pytest.mark.parametrize("bad", [7.0, -1.0, 2.5])
def test_bad_id_is_data_error(bad):
    ids = IDS.copy()
    ids[2, 1] = bad
    layer, bottom, top = _setup(TEXT, [ids])
    with pytest.raises(DataError) as exc:
        layer.Forward(bottom, top)
    msg = str(exc.value)
    assert "Embed layer 'test'" in msg and str(bad) in msg and "(2, 1)" in msg


def test_no_gradient_to_ids():
    layer, bottom, top = _setup(TEXT, [IDS])
    layer.Forward(bottom, top)
    with pytest.raises(LayerSetupError, match="backpropagate"):
        layer.Backward(top, [True], bottom)
    assert not layer.allow_force_backward(0)


@pytest.mark.parametrize("text", ["num_output: 0 input_dim: 3",
                                  "num_output: 3 input_dim: 0"])
def test_bad_params(text):
    with pytest.raises(LayerSetupError):
        _setup(f'type: "Embed" embed_param {{ {text} }}', [IDS1])
