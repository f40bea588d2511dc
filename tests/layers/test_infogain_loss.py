import numpy as np
import pytest

from recaffe.blob import Blob
from recaffe.errors import DataError, LayerSetupError, ShapeError
from recaffe.io.caffemodel import array_to_blobproto
from recaffe.testing.layer_test import Case, LayerTestCase, make_blobs, make_layer

rng = np.random.default_rng(31)
FLT_MIN = np.finfo(np.float32).tiny
X2 = rng.standard_normal((4, 3))
L2 = np.array([0, 2, 1, 2], dtype=float)
H3 = rng.uniform(0.0, 2.0, (3, 3))
X3 = rng.standard_normal((3, 4, 2))
L3 = np.array([0, 2, 3, 1, 2, 2], dtype=float).reshape(3, 1, 2)
H4 = rng.uniform(0.0, 2.0, (1, 1, 4, 4))
XT = rng.standard_normal((3, 2, 5))  # (T, N, V), class axis 2
LT = np.array([[0, 4], [-1, 3], [2, -1]], dtype=float)
H5 = rng.uniform(0.0, 2.0, (5, 5))


def infogain_ref(x, labels, h, axis=1, ignore=None, mode="VALID"):
    x = np.asarray(x, dtype=np.float64)
    outer = int(np.prod(x.shape[:axis]))
    c = x.shape[axis]
    inner = int(np.prod(x.shape[axis + 1:]))
    h = np.asarray(h, dtype=np.float64).reshape(c, c)
    x = x.reshape(outer, c, inner)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    lab = np.asarray(labels).reshape(outer, inner).astype(int)
    total, valid = 0.0, 0
    for o in range(outer):
        for i in range(inner):
            if ignore is not None and lab[o, i] == ignore:
                continue
            for k in range(c):
                total -= h[lab[o, i], k] * np.log(max(p[o, k, i], FLT_MIN))
            valid += 1
    n = {"FULL": outer * inner, "VALID": valid if ignore is not None else outer * inner,
         "BATCH_SIZE": outer, "NONE": 1}[mode]
    return total / max(1, n), p


class TestInfogainLoss(LayerTestCase):
    layer_type = "InfogainLoss"
    cases = [
        Case('type: "InfogainLoss"', [X2, L2, H3], check_bottom=0,
             extra={"mode": "VALID"}),
        Case('type: "InfogainLoss" '
             'loss_param { ignore_label: 2 normalization: VALID }', [X3, L3, H4],
             check_bottom=0, extra={"mode": "VALID", "ignore": 2}),
        Case('type: "InfogainLoss" '
             'loss_param { ignore_label: 2 normalization: FULL }', [X3, L3, H4],
             check_bottom=0, extra={"mode": "FULL", "ignore": 2}),
        Case('type: "InfogainLoss" loss_weight: 2.5 '
             'loss_param { normalization: BATCH_SIZE }',
             [X2, L2, H3], check_bottom=0, extra={"mode": "BATCH_SIZE"}),
        Case('type: "InfogainLoss" loss_param { normalization: NONE }',
             [X3, L3, H4], check_bottom=0, extra={"mode": "NONE"}),
        Case('type: "InfogainLoss" loss_param { normalize: false }',
             [X3, L3, H4], check_bottom=0, extra={"mode": "BATCH_SIZE"}),
        Case('type: "InfogainLoss" infogain_loss_param { axis: 2 } '
             'loss_param { ignore_label: -1 }',
             [XT, LT, H5], check_bottom=0,
             extra={"mode": "VALID", "ignore": -1, "axis": 2}),
        Case('type: "InfogainLoss" infogain_loss_param { axis: -1 } '
             'loss_param { ignore_label: -1 }',
             [XT, LT, H5], check_bottom=0,
             extra={"mode": "VALID", "ignore": -1, "axis": 2}),
        Case('type: "InfogainLoss" loss_weight: 1 loss_weight: 0',
             [X2, L2, H3], num_tops=2, check_bottom=0, top_mask=[True, False],
             extra={"mode": "VALID", "prob": True}),
    ]

    def reference(self, case, bottoms, layer):
        e = case.extra
        loss, p = infogain_ref(bottoms[0], bottoms[1], bottoms[2], e.get("axis", 1),
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


def _write_h(tmp_path, arr, name="h.binaryproto"):
    path = tmp_path / name
    path.write_bytes(array_to_blobproto(np.asarray(arr)).SerializeToString())
    return path


def test_identity_matrix_equals_softmax_with_loss():
    layer, bottom, top = _setup('type: "InfogainLoss"', [X2, L2, np.eye(3)])
    layer.Forward(bottom, top)
    soft, sb, st = _setup('type: "SoftmaxWithLoss"', [X2, L2])
    soft.Forward(sb, st)
    assert float(top[0].data) == pytest.approx(float(st[0].data), rel=1e-12)
    layer.Backward(top, [True, False, False], bottom)
    soft.Backward(st, [True, False], sb)
    np.testing.assert_allclose(bottom[0].diff, sb[0].diff, rtol=1e-12, atol=1e-15)


def test_gradient_formula_scaled_by_loss_weight():
    layer, bottom, top = _setup('type: "InfogainLoss" loss_weight: 3', [X2, L2, H3])
    layer.Forward(bottom, top)
    layer.Backward(top, [True, False, False], bottom)
    _, p = infogain_ref(X2, L2, H3)
    p = p.reshape(4, 3)
    lab = L2.astype(int)
    want = H3.sum(axis=1)[lab][:, None] * p - H3[lab]
    np.testing.assert_allclose(bottom[0].diff, 3 * want / 4, rtol=1e-12)


def test_matrix_from_source(tmp_path):
    path = _write_h(tmp_path, H3.reshape(1, 1, 3, 3))
    text = f'type: "InfogainLoss" infogain_loss_param {{ source: "{path}" }}'
    for dtype in (np.float32, np.float64):
        layer, bottom, top = _setup(text, [X2, L2], dtype=dtype)
        layer.Forward(bottom, top)
        want, _ = infogain_ref(X2, L2, H3.astype(np.float32))
        assert float(top[0].data) == pytest.approx(want, rel=1e-5)
        layer.Backward(top, [True, False], bottom)
        assert np.all(np.isfinite(bottom[0].diff))


def test_missing_source_is_setup_error():
    with pytest.raises(LayerSetupError, match="source"):
        _setup('type: "InfogainLoss"', [X2, L2])


def test_unreadable_source_is_setup_error(tmp_path):
    with pytest.raises(LayerSetupError, match="cannot open"):
        _setup(f'type: "InfogainLoss" infogain_loss_param {{ source: '
               f'"{tmp_path / "nope.binaryproto"}" }}', [X2, L2])
    bad = tmp_path / "bad.binaryproto"
    bad.write_bytes(b"\xff\xff\xff")
    with pytest.raises(LayerSetupError, match="BlobProto"):
        _setup(f'type: "InfogainLoss" infogain_loss_param {{ source: "{bad}" }}',
               [X2, L2])


def test_source_matrix_of_wrong_shape_is_shape_error(tmp_path):
    path = _write_h(tmp_path, np.eye(4))
    with pytest.raises(ShapeError, match="C \\* C = 9"):
        _setup(f'type: "InfogainLoss" infogain_loss_param {{ source: "{path}" }}',
               [X2, L2])


def test_bottom_matrix_of_wrong_shape_is_shape_error():
    with pytest.raises(ShapeError, match="bottom\\[2\\]"):
        _setup('type: "InfogainLoss"', [X2, L2, np.eye(4)])


def test_probability_floored_at_flt_min():
    x = np.array([[0.0, -1000.0]])
    h = np.array([[0.0, 0.0], [0.0, 1.0]])
    layer, bottom, top = _setup('type: "InfogainLoss"', [x, [1.0], h],
                                dtype=np.float32)
    layer.Forward(bottom, top)
    assert float(top[0].data) == pytest.approx(-np.log(FLT_MIN), rel=1e-6)


def test_ignored_positions_get_zero_gradient():
    layer, bottom, top = _setup(
        'type: "InfogainLoss" loss_param { ignore_label: 2 }', [X3, L3, H4])
    layer.Forward(bottom, top)
    layer.Backward(top, [True, False, False], bottom)
    ignored = L3.reshape(3, 2) == 2
    d = bottom[0].diff.transpose(0, 2, 1)  # (outer, inner, C)
    assert np.all(d[ignored] == 0)
    assert np.all(np.abs(d[~ignored]).sum(axis=-1) > 0)


def test_label_out_of_range_is_data_error():
    layer, bottom, top = _setup('type: "InfogainLoss"', [X2, [0, 1, 3, 0], H3])
    with pytest.raises(DataError, match="\\[0, 3\\)"):
        layer.Forward(bottom, top)


def test_label_count_mismatch_is_shape_error():
    with pytest.raises(ShapeError, match="bottom\\[1\\]"):
        _setup('type: "InfogainLoss"', [rng.standard_normal((4, 3, 2)), L2, H3])


def test_axis_out_of_range():
    with pytest.raises(ShapeError, match="axis"):
        _setup('type: "InfogainLoss" infogain_loss_param { axis: 2 }', [X2, L2, H3])


def test_no_gradient_to_labels_or_matrix():
    layer, bottom, top = _setup('type: "InfogainLoss"', [X2, L2, H3])
    layer.Forward(bottom, top)
    with pytest.raises(LayerSetupError, match="label"):
        layer.Backward(top, [True, True, False], bottom)
    with pytest.raises(LayerSetupError, match="infogain matrix"):
        layer.Backward(top, [True, False, True], bottom)
    assert layer.allow_force_backward(0)
    assert not layer.allow_force_backward(1)
    assert not layer.allow_force_backward(2)


def test_two_tops_need_two_loss_weights():
    with pytest.raises(LayerSetupError, match="loss_weight"):
        _setup('type: "InfogainLoss"', [X2, L2, H3], ntop=2)
