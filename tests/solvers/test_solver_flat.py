"""The solvers' flat history buffers, the all-params SGD update and the cheap
finite check of the gradients: same results as the per-param path."""

from __future__ import annotations

import numpy as np
import pytest
from solver_test_util import solver_param

from recaffe.backend import dtype_scope
from recaffe.errors import DivergenceError
from recaffe.solvers import AdamSolver, SGDSolver

BASE = ('base_lr: 0.1 momentum: 0.9 lr_policy: "step" gamma: 0.5 stepsize: 2 '
        'max_iter: 10 random_seed: 5 ')


class PerParamSGD(SGDSolver):
    """Overrides the per-param rule (with the same maths), which turns the
    all-params update off."""

    def compute_update_value(self, param_id, rate):
        super().compute_update_value(param_id, rate)


def test_history_arrays_are_views_of_flat_buffers():
    s = AdamSolver(solver_param(BASE + 'type: "Adam"'))
    hist, upd, tmp = s.flat_buffers()
    n = len(s.net.learnable_params)
    assert len(hist) == 2 and len(s.history) == 2 * n
    total = sum(b.count for b in s.net.learnable_params)
    assert hist[0].shape == (total,) and upd.shape == tmp.shape == (total,)
    for i, b in enumerate(s.net.learnable_params):
        assert s.history[i].shape == b.shape
        assert np.shares_memory(s.history[i], hist[0])
        assert np.shares_memory(s.history[n + i], hist[1])
        assert np.shares_memory(s.update[i], upd)
        assert np.shares_memory(s.temp[i], tmp)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("extra", ["", "weight_decay: 0.01 ",
                                   'weight_decay: 0.02 regularization_type: "L1" ',
                                   "iter_size: 2 ", "clip_gradients: 0.05 "])
def test_all_params_sgd_equals_per_param_path(dtype, extra):
    with dtype_scope(dtype):
        fast = SGDSolver(solver_param(BASE + extra, batch=2, pool=6))
        slow = PerParamSGD(solver_param(BASE + extra, batch=2, pool=6))
        for _ in range(5):
            fast.step(1)
            slow.step(1)
    for a, b in zip(fast.net.learnable_params, slow.net.learnable_params,
                    strict=True):
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(a.diff, b.diff)  # diff holds the step
    for a, b in zip(fast.history, slow.history, strict=True):
        np.testing.assert_array_equal(a, b)
    assert fast.iter == slow.iter == 5


def test_flat_buffers_rebuilt_when_history_arrays_are_replaced():
    s = SGDSolver(solver_param(BASE))
    s.step(2)
    before = [h.copy() for h in s.history]
    # What a device move does: every per-param array replaced by a copy.
    s.history[:] = [h.copy() for h in s.history]
    hist, _upd, _tmp = s.flat_buffers()
    for h, old in zip(s.history, before, strict=True):
        np.testing.assert_array_equal(h, old)
        assert np.shares_memory(h, hist[0])
    ref = PerParamSGD(solver_param(BASE))
    ref.step(3)
    s.step(1)
    for a, b in zip(s.net.learnable_params, ref.net.learnable_params, strict=True):
        np.testing.assert_array_equal(a.data, b.data)


def test_local_rates_follow_lr_mult_changes():
    s = SGDSolver(solver_param(BASE))
    r1 = s._local_rates(0.1)
    assert [float(r) for r in r1] == pytest.approx([0.1, 0.2])
    s.net.params_lr[1] = 3.0
    assert [float(r) for r in s._local_rates(0.1)] == pytest.approx([0.1, 0.3])


def test_finite_check_confirms_overflow_and_catches_nan():
    s = SGDSolver(solver_param(BASE))
    s.net.forward_prefilled()
    s.net.backward_all()
    assert s._grads_finite()
    g = s.net.learnable_params[0].diff
    g[...] = 3e30  # finite, but its square sum overflows float32
    assert s._grads_finite()
    s._check_divergence(1.0)
    g.flat[0] = np.nan
    assert not s._grads_finite()
    with pytest.raises(DivergenceError, match="training diverged at iteration 0"):
        s._check_divergence(1.0)


# -- the params' own data and diffs, flat --------------------------------------------
SHARED_NET = """
name: "shared"
layer { name: "in" type: "Input" top: "x" top: "t"
  input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 3 } } }
layer { name: "a" type: "InnerProduct" bottom: "x" top: "y1"
  param { name: "w" } param { name: "b" }
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 }
    bias_filler { type: "gaussian" std: 0.2 } } }
layer { name: "s" type: "TanH" bottom: "y1" top: "z" }
layer { name: "c" type: "InnerProduct" bottom: "z" top: "y2"
  param { name: "w" } param { name: "b" }
  inner_product_param { num_output: 3 } }
layer { name: "d" type: "InnerProduct" bottom: "y2" top: "y"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
"""


def _shared_solver(monkeypatch, flat: bool, extra=""):
    from recaffe.net import Net

    if not flat:
        monkeypatch.setattr(Net, "flatten_params", lambda self: False)
    s = SGDSolver(solver_param(BASE + extra, net=SHARED_NET))
    r = np.random.default_rng(3)
    s.net.blobs["x"].data[...] = r.uniform(-1, 1, (4, 3))
    s.net.blobs["t"].data[...] = r.uniform(-1, 1, (4, 3))
    monkeypatch.undo()
    return s


def test_params_are_views_of_two_flat_arrays(monkeypatch):
    s = _shared_solver(monkeypatch, True)
    ref = _shared_solver(monkeypatch, False)
    data, diff = s.net.flat_params()
    params = s.net.learnable_params
    assert data.size == diff.size == sum(b.count for b in params)
    for b, r in zip(params, ref.net.learnable_params, strict=True):
        assert np.shares_memory(b.data, data) and np.shares_memory(b.diff, diff)
        np.testing.assert_array_equal(b.data, r.data)  # values kept
    # the sharer's blobs ("c") alias the owner's ("a") in the flat arrays
    a, c = s.net.params["a"], s.net.params["c"]
    assert np.shares_memory(c[0].data, data) and c[0].shares_data_with(a[0])
    assert c[0].shares_diff_with(a[0])
    assert ref.net.flat_params() is None


@pytest.mark.parametrize("extra", ["", "weight_decay: 0.01 ", "iter_size: 2 "])
def test_flat_params_update_equals_per_param_update(monkeypatch, extra):
    s = _shared_solver(monkeypatch, True, extra)
    ref = _shared_solver(monkeypatch, False, extra)
    w = s.net.params["a"][0].data  # taken after the solver was built
    for _ in range(4):
        s.step(1)
        ref.step(1)
    for a, b in zip(s.net.learnable_params, ref.net.learnable_params, strict=True):
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(a.diff, b.diff)
    np.testing.assert_array_equal(w, ref.net.params["a"][0].data)
    np.testing.assert_array_equal(s.net.params["c"][0].data, w)


def test_flat_params_drop_out_when_a_param_is_reallocated(monkeypatch):
    s = _shared_solver(monkeypatch, True)
    ref = _shared_solver(monkeypatch, False)
    s.step(1)
    ref.step(1)
    b = s.net.params["d"][0]
    b.set_buffers(diff=b.diff.reshape(-1).copy())  # what a device move does
    assert s.net.flat_params() is None
    s.step(2)
    ref.step(2)
    for a, r in zip(s.net.learnable_params, ref.net.learnable_params, strict=True):
        np.testing.assert_array_equal(a.data, r.data)


def test_flat_clear_and_finite_check(monkeypatch):
    s = _shared_solver(monkeypatch, True)
    s.net.forward_prefilled()
    s.net.backward_all()
    assert any(np.any(b.diff != 0) for b in s.net.learnable_params)
    assert s._grads_finite()
    s.net.learnable_params[-1].diff.flat[0] = np.inf
    assert not s._grads_finite()
    s.net.clear_param_diffs()
    assert all(np.all(b.diff == 0) for b in s.net.learnable_params)
