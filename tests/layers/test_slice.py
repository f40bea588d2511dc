import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(4)
X = rng.standard_normal((5, 3))
X4 = rng.standard_normal((2, 6, 3, 2))


class TestSlice(LayerTestCase):
    layer_type = "Slice"
    cases = [
        Case('type: "Slice" slice_param { axis: 0 slice_point: 1 slice_point: 3 }',
             [X], num_tops=3, extra={"axis": 0, "points": [1, 3]}),
        Case('type: "Slice"', [X4], num_tops=3, extra={"axis": 1, "points": [2, 4]}),
        Case('type: "Slice" slice_param { axis: -1 }', [X4], num_tops=2,
             extra={"axis": 3, "points": [1]}),
        Case('type: "Slice" slice_param { slice_dim: 2 axis: 0 slice_point: 1 }', [X4],
             num_tops=2, extra={"axis": 2, "points": [1]}),
        Case('type: "Slice" slice_param { axis: 1 }', [X4], num_tops=1,
             extra={"axis": 1, "points": []}),
    ]

    def reference(self, case, bottoms, layer):
        return np.split(bottoms[0], case.extra["points"], axis=case.extra["axis"])


def _setup(text, arrays, ntop):
    layer = make_layer(text)
    bottom = make_blobs(arrays)
    top = [Blob(()) for _ in range(ntop)]
    layer.SetUp(bottom, top)
    return layer, bottom, top


def test_one_top_copies():
    layer, bottom, top = _setup('type: "Slice"', [X4], 1)
    layer.Forward(bottom, top)
    assert not top[0].shares_data_with(bottom[0])
    np.testing.assert_array_equal(top[0].data, bottom[0].data)


@pytest.mark.parametrize("points", ["slice_point: 3 slice_point: 2",
                                    "slice_point: 0 slice_point: 2",
                                    "slice_point: 2 slice_point: 6",
                                    "slice_point: 2 slice_point: 2"])
def test_bad_slice_points(points):
    with pytest.raises(ShapeError, match="slice_point"):
        _setup(f'type: "Slice" slice_param {{ axis: 1 {points} }}', [X4], 3)


def test_slice_point_count_must_match_tops():
    with pytest.raises(LayerSetupError, match="slice_point"):
        _setup('type: "Slice" slice_param { axis: 1 slice_point: 2 }', [X4], 3)


def test_uneven_split_is_error():
    with pytest.raises(ShapeError, match="evenly divide"):
        _setup('type: "Slice" slice_param { axis: 1 }', [X4], 4)


def test_axis_out_of_range():
    with pytest.raises(ShapeError, match="axis"):
        _setup('type: "Slice" slice_param { axis: 4 }', [X4], 2)
    with pytest.raises(ShapeError, match="slice_dim"):
        _setup('type: "Slice" slice_param { slice_dim: 4 }', [X4], 2)
