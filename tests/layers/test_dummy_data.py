import numpy as np
import pytest

from recaffe import backend
from recaffe.blob import Blob
from recaffe.errors import LayerSetupError
from recaffe.filler import fill_array
from recaffe.testing.layer_test import Case, LayerTestCase, make_layer

NO_GRAD = "DummyData has no bottoms, so there is nothing to differentiate"


def _case(body, num_tops=1):
    return Case(f'type: "DummyData" dummy_data_param {{ {body} }}', [],
                num_tops=num_tops, gradient=False, why=NO_GRAD)


class TestDummyData(LayerTestCase):
    layer_type = "DummyData"
    cases = [
        _case("shape { dim: 2 dim: 3 }"),
        _case('shape { dim: 2 dim: 3 } data_filler { type: "constant" value: 2.5 }'),
        _case('shape { dim: 3 dim: 4 } data_filler { type: "gaussian" std: 2 }'),
        _case('shape { dim: 2 dim: 2 } shape { dim: 5 } '
              'data_filler { type: "uniform" min: -1 max: 3 }', num_tops=2),
        _case('shape { dim: 2 dim: 3 } shape { dim: 4 } '
              'data_filler { type: "gaussian" } '
              'data_filler { type: "constant" value: -1 }', num_tops=2),
        _case("num: 5 channels: 2 height: 3 width: 4 "
              'num: 5 channels: 1 height: 1 width: 1 '
              'data_filler { type: "gaussian" std: 1 } '
              'data_filler { type: "constant" }',
              num_tops=2),
        _case("num: 2 channels: 3 channels: 1 height: 2 width: 2", num_tops=2),
    ]

    def reference(self, case, bottoms, layer):
        p = layer.layer_param.dummy_data_param
        n = case.num_tops
        if len(p.shape):
            shapes = [tuple(p.shape[0 if len(p.shape) == 1 else i].dim)
                      for i in range(n)]
        else:
            def pick(f, i):
                return f[0] if len(f) == 1 else f[i]
            shapes = [(pick(p.num, i), pick(p.channels, i), pick(p.height, i),
                       pick(p.width, i)) for i in range(n)]
        fillers = list(p.data_filler)
        backend.set_random_seed(7)  # the seed the forward check runs under
        out = []
        for i in range(n):
            f = fillers[i if len(fillers) > 1 else 0] if fillers else None
            if f is None:
                out.append(np.zeros(shapes[i]))
            elif f.type == "constant":
                out.append(np.full(shapes[i], f.value))
            else:
                out.append(fill_array(f, shapes[i], np.float64))
        return out


def test_refill_rule():
    text = ('type: "DummyData" dummy_data_param { shape { dim: 3 } shape { dim: 3 } '
            'data_filler { type: "gaussian" } data_filler { type: "constant" value: 1 '
            '} }')
    layer = make_layer(text)
    top = [Blob(()), Blob(())]
    layer.SetUp([], top)
    layer.Forward([], top)
    first = top[0].data.copy()
    top[1].data[...] = 9.0  # constant tops are filled once, at setup
    layer.Forward([], top)
    assert not np.array_equal(first, top[0].data)
    assert np.all(top[1].data == 9.0)


@pytest.mark.parametrize("body, match", [
    ("shape { dim: 2 } shape { dim: 3 } shape { dim: 4 }", "once per top"),
    ("shape { dim: 2 } num: 2 channels: 1 height: 1 width: 1", "both"),
    ("num: 2 num: 3 num: 4 channels: 1 height: 1 width: 1", "num"),
    ('shape { dim: 2 } data_filler { type: "constant" } data_filler { '
     'type: "constant" } data_filler { type: "constant" }', "data_filler"),
    ('shape { dim: 2 } data_filler { type: "nope" }', "unknown"),
])
def test_bad_params(body, match):
    layer = make_layer(f'type: "DummyData" name: "dd" dummy_data_param {{ {body} }}')
    with pytest.raises(LayerSetupError, match=match) as info:
        layer.SetUp([], [Blob(()), Blob(())])
    assert "DummyData layer 'dd'" in str(info.value)
