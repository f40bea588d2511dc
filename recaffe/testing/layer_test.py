"""A pytest base class giving each layer type the standard test battery.

Subclass :class:`LayerTestCase` in a ``Test*`` class and set:

- ``layer_type``: the type string the class tests (the meta-test counts these);
- ``cases``: a list of :class:`Case` (layer parameter text, bottom arrays);
- ``reference(case, bottoms, layer)``: plain-numpy tops for the forward check.

Inherited tests: ``test_forward`` (float32 and float64 against the reference),
``test_gradient`` (float64 central differences), ``test_param_diff_accumulates``
and ``test_propagate_down_false``. Set ``gradient = False`` on a Case for layers
without a gradient (data layers, Accuracy), with the reason in ``why``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recaffe import backend
from recaffe.blob import Blob
from recaffe.io.prototxt import parse_prototxt
from recaffe.layer import create_layer
from recaffe.proto import caffe_pb2
from recaffe.testing.gradient_check import check_gradient


def make_layer(text: str, phase: int = caffe_pb2.TRAIN):
    """A layer from LayerParameter text, e.g. ``'type: "ReLU"'``."""
    param = parse_prototxt(text, caffe_pb2.LayerParameter)
    if not param.name:
        param.name = "test"
    if not param.HasField("phase"):
        param.phase = phase
    return create_layer(param, phase)


def make_blobs(arrays, dtype=np.float32) -> list[Blob]:
    out = []
    for a in arrays:
        a = np.asarray(a)
        b = Blob(a.shape, dtype=dtype)
        backend.copy_into(b.data, a)
        out.append(b)
    return out


@dataclass
class Case:
    """One configuration of a layer under test."""

    text: str
    bottoms: list[Any]
    num_tops: int = 1
    gradient: bool = True
    check_bottom: Any = -1
    stepsize: float = 1e-2
    threshold: float = 1e-3
    kink: float = 0.0
    kink_range: float = -1.0
    why: str = ""
    phase: int = caffe_pb2.TRAIN
    rtol: float = 1e-5
    atol: float = 1e-6
    top_mask: Any = None
    extra: dict = field(default_factory=dict)


class LayerTestCase:
    layer_type: str = ""
    cases: list[Case] = []

    def reference(self, case: Case, bottoms: list[np.ndarray], layer) -> list:
        raise NotImplementedError

    # -- machinery -----------------------------------------------------------
    def build(self, case: Case, dtype, seed: int = 1701):
        backend.set_random_seed(seed)
        with backend.dtype_scope(dtype):
            layer = make_layer(case.text, case.phase)
            bottom = make_blobs(case.bottoms, dtype)
            top = [Blob((), dtype=dtype) for _ in range(case.num_tops)]
            layer.SetUp(bottom, top)
        assert layer.type == self.layer_type
        return layer, bottom, top

    def test_forward(self):
        for case in self.cases:
            for dtype in (np.float32, np.float64):
                layer, bottom, top = self.build(case, dtype)
                backend.set_random_seed(7)
                layer.Forward(bottom, top)
                ref = self.reference(case, [np.asarray(c) for c in case.bottoms], layer)
                tol = (case.rtol, case.atol) if dtype == np.float32 else (1e-9, 1e-10)
                for i, r in enumerate(ref):
                    if r is None:
                        continue
                    got = backend.to_host(top[i].data)
                    np.testing.assert_allclose(
                        got, np.asarray(r), rtol=tol[0], atol=tol[1],
                        err_msg=f"{self.layer_type} top[{i}] for {case.text!r}",
                    )
                    assert got.shape == np.asarray(r).shape, (got.shape, np.shape(r))

    def test_gradient(self):
        for case in self.cases:
            if not case.gradient:
                continue
            layer, bottom, top = self.build(case, np.float64)
            check_gradient(
                layer, bottom, top, case.check_bottom, stepsize=case.stepsize,
                threshold=case.threshold, kink=case.kink, kink_range=case.kink_range,
                top_mask=case.top_mask, setup=False,
            )

    def _run_backward(self, case, layer, bottom, top, pd):
        backend.set_random_seed(3)
        layer.Forward(bottom, top)
        rng = np.random.default_rng(5)
        for t in top:
            backend.copy_into(t.diff, rng.standard_normal(t.shape))
        layer.Backward(top, pd, bottom)

    def test_param_diff_accumulates(self):
        for case in self.cases:
            if not case.gradient:
                continue
            layer, bottom, top = self.build(case, np.float64)
            if not layer.blobs:
                continue
            pd = [False] * len(bottom)
            for b in layer.blobs:
                b.diff[...] = 0
            self._run_backward(case, layer, bottom, top, pd)
            once = [backend.to_host(b.diff).copy() for b in layer.blobs]
            self._run_backward(case, layer, bottom, top, pd)
            for j, b in enumerate(layer.blobs):
                if not layer.param_propagate_down or layer.param_propagate_down[j]:
                    np.testing.assert_allclose(backend.to_host(b.diff), 2 * once[j],
                                               rtol=1e-10,
                                               atol=1e-12)

    def test_propagate_down_false(self):
        for case in self.cases:
            if not case.gradient:
                continue
            layer, bottom, top = self.build(case, np.float64)
            for b in bottom:
                b.diff[...] = 123.0
            self._run_backward(case, layer, bottom, top, [False] * len(bottom))
            for i, b in enumerate(bottom):
                if b in top or any(b.shares_diff_with(t) for t in top):
                    continue  # in-place, or the top aliases the bottom's diff
                assert np.all(backend.to_host(b.diff) == 123.0), (
                    f"{self.layer_type}: bottom[{i}].diff written with "
                    "propagate_down=False"
                )
