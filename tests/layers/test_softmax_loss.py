import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import DataError, LayerSetupError, ShapeError
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(0)
X2 = rng.standard_normal((4, 3))
L2 = np.array([0, 2, 1, 2], dtype=float)
X3 = rng.standard_normal((3, 4, 2))
L3 = np.array([0, 2, 3, 1, 2, 2], dtype=float).reshape(3, 1, 2)
XT = rng.standard_normal((3, 2, 5))  # (T, N, V)
LT = np.array([[0, 4], [-1, 3], [2, -1]], dtype=float)
FLT_MIN = np.finfo(np.float32).tiny
IGNORE2 = 'type: "SoftmaxWithLoss" loss_param { ignore_label: 2 }'
IGNORE_M1 = 'type: "SoftmaxWithLoss" loss_param { ignore_label: -1 }'


def softmax_loss_ref(x, labels, axis=1, ignore=None, mode="VALID"):
    x = np.asarray(x, dtype=np.float64)
    outer = int(np.prod(x.shape[:axis]))
    c = x.shape[axis]
    inner = int(np.prod(x.shape[axis + 1:]))
    x = x.reshape(outer, c, inner)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    lab = np.asarray(labels).reshape(outer, inner).astype(int)
    total, valid = 0.0, 0
    for o in range(outer):
        for i in range(inner):
            if ignore is not None and lab[o, i] == ignore:
                continue
            total -= np.log(max(p[o, lab[o, i], i], FLT_MIN))
            valid += 1
    n = {"FULL": outer * inner, "VALID": valid if ignore is not None else outer * inner,
         "BATCH_SIZE": outer, "NONE": 1}[mode]
    return total / max(1, n), p


class TestSoftmaxWithLoss(LayerTestCase):
    layer_type = "SoftmaxWithLoss"
    cases = [
        Case('type: "SoftmaxWithLoss"', [X2, L2], check_bottom=0,
             extra={"mode": "VALID"}),
        Case('type: "SoftmaxWithLoss" '
             'loss_param { ignore_label: 2 normalization: VALID }', [X3, L3],
             check_bottom=0, extra={"mode": "VALID", "ignore": 2}),
        Case('type: "SoftmaxWithLoss" '
             'loss_param { ignore_label: 2 normalization: FULL }', [X3, L3],
             check_bottom=0, extra={"mode": "FULL", "ignore": 2}),
        Case('type: "SoftmaxWithLoss" loss_weight: 2.5 '
             'loss_param { normalization: BATCH_SIZE }',
             [X2, L2], check_bottom=0, extra={"mode": "BATCH_SIZE"}),
        Case('type: "SoftmaxWithLoss" loss_param { normalization: NONE }',
             [X3, L3], check_bottom=0, extra={"mode": "NONE"}),
        Case('type: "SoftmaxWithLoss" loss_param { normalize: false }',
             [X3, L3], check_bottom=0, extra={"mode": "BATCH_SIZE"}),
        Case('type: "SoftmaxWithLoss" loss_param { normalize: true ignore_label: 2 }',
             [X3, L3], check_bottom=0, extra={"mode": "VALID", "ignore": 2}),
        Case('type: "SoftmaxWithLoss" softmax_param { axis: 2 } '
             'loss_param { ignore_label: -1 }',
             [XT, LT], check_bottom=0,
             extra={"mode": "VALID", "ignore": -1, "axis": 2}),
        Case('type: "SoftmaxWithLoss" loss_weight: 0.5 softmax_param { axis: 2 }',
             [XT, np.abs(LT)], check_bottom=0, extra={"mode": "VALID", "axis": 2}),
        Case('type: "SoftmaxWithLoss" softmax_param { axis: -1 } '
             'loss_param { ignore_label: -1 }',
             [XT, LT], check_bottom=0,
             extra={"mode": "VALID", "ignore": -1, "axis": 2}),
        Case('type: "SoftmaxWithLoss" loss_weight: 1 loss_weight: 0',
             [X2, L2], num_tops=2, check_bottom=0, top_mask=[True, False],
             extra={"mode": "VALID", "prob": True}),
    ]

    def reference(self, case, bottoms, layer):
        e = case.extra
        loss, p = softmax_loss_ref(bottoms[0], bottoms[1], e.get("axis", 1),
                                   e.get("ignore"), e["mode"])
        out = [np.array(loss)]
        if e.get("prob"):
            out.append(p.reshape(bottoms[0].shape))
        return out


def _setup(text, arrays, ntop=1, dtype=np.float64):
    layer = make_layer(text)
    bottom = make_blobs(arrays, dtype)
    top = [Blob((), dtype=dtype) for _ in range(ntop)]
    layer.SetUp(bottom, top)
    return layer, bottom, top


def test_loss_top_is_scalar_and_weighted_loss():
    layer, bottom, top = _setup('type: "SoftmaxWithLoss" loss_weight: 2.5', [X2, L2])
    assert top[0].shape == ()
    loss = layer.Forward(bottom, top)
    assert loss == pytest.approx(2.5 * float(top[0].data))


def test_gradient_scaled_by_loss_weight():
    layer, bottom, top = _setup('type: "SoftmaxWithLoss" loss_weight: 3', [X2, L2])
    layer.Forward(bottom, top)
    layer.Backward(top, [True, False], bottom)
    _, p = softmax_loss_ref(X2, L2)
    p = p.reshape(4, 3)
    p[np.arange(4), L2.astype(int)] -= 1
    np.testing.assert_allclose(bottom[0].diff, 3 * p / 4, rtol=1e-12)


def test_ignored_positions_get_zero_gradient():
    layer, bottom, top = _setup(IGNORE2,
                                [X3, L3])
    layer.Forward(bottom, top)
    layer.Backward(top, [True, False], bottom)
    ignored = L3.reshape(3, 2) == 2
    d = bottom[0].diff.transpose(0, 2, 1)  # (outer, inner, C)
    assert np.all(d[ignored] == 0)
    assert np.all(np.abs(d[~ignored]).sum(axis=-1) > 0)


def test_all_ignored_normalizer_is_one():
    lab = np.full((3, 1, 2), 2.0)
    layer, bottom, top = _setup(IGNORE2,
                                [X3, lab])
    layer.Forward(bottom, top)
    assert float(top[0].data) == 0.0


def test_probability_floored_at_flt_min():
    x = np.array([[0.0, -1000.0]])
    layer, bottom, top = _setup('type: "SoftmaxWithLoss"', [x, [1.0]],
                                dtype=np.float32)
    layer.Forward(bottom, top)
    assert float(top[0].data) == pytest.approx(-np.log(FLT_MIN), rel=1e-6)


def test_label_out_of_range_is_data_error():
    layer, bottom, top = _setup('type: "SoftmaxWithLoss"', [X2, [0, 1, 3, 0]])
    with pytest.raises(DataError) as exc:
        layer.Forward(bottom, top)
    msg = str(exc.value)
    assert "'test'" in msg and "SoftmaxWithLoss" in msg
    assert "3" in msg and "(2,)" in msg and "[0, 3)" in msg


def test_negative_label_not_ignored_is_data_error():
    layer, bottom, top = _setup(IGNORE_M1,
                                [X2, [0, -2, 1, 0]])
    with pytest.raises(DataError, match="-2"):
        layer.Forward(bottom, top)


def test_label_count_mismatch_is_shape_error():
    with pytest.raises(ShapeError, match="bottom\\[1\\]"):
        _setup('type: "SoftmaxWithLoss"', [rng.standard_normal((4, 3, 2)), L2])


def test_no_gradient_to_labels():
    layer, bottom, top = _setup('type: "SoftmaxWithLoss"', [X2, L2])
    layer.Forward(bottom, top)
    with pytest.raises(LayerSetupError, match="label"):
        layer.Backward(top, [True, True], bottom)
    assert not layer.allow_force_backward(1)


def test_two_tops_need_two_loss_weights():
    with pytest.raises(LayerSetupError, match="loss_weight"):
        _setup('type: "SoftmaxWithLoss"', [X2, L2], ntop=2)


def test_axis_out_of_range():
    with pytest.raises(ShapeError, match="axis"):
        _setup('type: "SoftmaxWithLoss" softmax_param { axis: 2 }', [X2, L2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_bits_are_caffes_order(dtype):
    """Without an ignore label the gradient is written as p * scale with the
    labelled entries (p - 1) * scale: the same bits as Caffe's copy, subtract
    one, scale."""
    r = np.random.default_rng(5)
    x = r.standard_normal((6, 4, 9))
    labels = r.integers(0, 9, (6, 4)).astype(float)
    layer, bottom, top = _setup('type: "SoftmaxWithLoss" loss_weight: 0.3 '
                                'softmax_param { axis: 2 }', [x, labels], dtype=dtype)
    layer.Forward(bottom, top)
    top[0].diff[...] = 0.3
    layer.Backward(top, [True, False], bottom)
    p = layer.prob.data.copy()
    want = p.copy()
    t, n = np.indices((6, 4))
    want[t, n, labels.astype(int)] -= 1
    want *= top[0].diff / (6 * 4)
    np.testing.assert_array_equal(bottom[0].diff, want)
