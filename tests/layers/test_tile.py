import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(9)
X = rng.standard_normal((2, 3, 2))


class TestTile(LayerTestCase):
    layer_type = "Tile"
    cases = [
        Case('type: "Tile" tile_param { tiles: 3 }', [X], extra={"axis": 1, "t": 3}),
        Case('type: "Tile" tile_param { axis: 0 tiles: 2 }', [X],
             extra={"axis": 0, "t": 2}),
        Case('type: "Tile" tile_param { axis: -1 tiles: 2 }', [X],
             extra={"axis": 2, "t": 2}),
        Case('type: "Tile" tile_param { axis: 1 tiles: 1 }', [X],
             extra={"axis": 1, "t": 1}),
    ]

    def reference(self, case, bottoms, layer):
        x = bottoms[0]
        axis, t = case.extra["axis"], case.extra["t"]
        reps = [1] * x.ndim
        reps[axis] = t
        # Caffe repeats the whole block of axes >= axis, i.e. np.tile on that axis.
        return [np.tile(x, reps)]


def _setup(text):
    layer = make_layer(text)
    bottom = make_blobs([X])
    top = [Blob(())]
    layer.SetUp(bottom, top)
    return layer, bottom, top


def test_repeats_whole_block():
    layer, bottom, top = _setup('type: "Tile" tile_param { axis: 1 tiles: 2 }')
    layer.Forward(bottom, top)
    np.testing.assert_array_equal(top[0].data[:, 3:], top[0].data[:, :3])


def test_tiles_must_be_positive():
    with pytest.raises(LayerSetupError, match="tiles"):
        _setup('type: "Tile" tile_param { tiles: 0 }')
    with pytest.raises(LayerSetupError, match="tiles"):
        _setup('type: "Tile"')


def test_axis_out_of_range():
    with pytest.raises(ShapeError, match="axis"):
        _setup('type: "Tile" tile_param { axis: 3 tiles: 2 }')
