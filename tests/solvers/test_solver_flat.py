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
