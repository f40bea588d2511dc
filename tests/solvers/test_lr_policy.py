"""Every learning-rate policy against its formula (Caffe's GetLearningRate)."""

from __future__ import annotations

import math

import pytest
from solver_test_util import LogCapture

from recaffe.errors import SolverError
from recaffe.io.prototxt import parse_prototxt
from recaffe.proto import caffe_pb2
from recaffe.solvers.lr_policy import POLICIES, learning_rate


def _param(text):
    return parse_prototxt(text, caffe_pb2.SolverParameter)


def _f(x):  # proto floats are float32
    import numpy as np

    return float(np.float32(x))


CASES = {
    "fixed": ('base_lr: 0.1 lr_policy: "fixed"', lambda it: _f(0.1)),
    "step": ('base_lr: 0.1 lr_policy: "step" gamma: 0.5 stepsize: 3',
             lambda it: _f(0.1) * 0.5 ** (it // 3)),
    "exp": ('base_lr: 0.1 lr_policy: "exp" gamma: 0.9',
            lambda it: _f(0.1) * _f(0.9) ** it),
    "inv": ('base_lr: 0.01 lr_policy: "inv" gamma: 0.0001 power: 0.75',
            lambda it: _f(0.01) * (1 + _f(0.0001) * it) ** -0.75),
    "poly": ('base_lr: 0.1 lr_policy: "poly" power: 2 max_iter: 20',
             lambda it: _f(0.1) * (1 - it / 20) ** 2),
    "sigmoid": ('base_lr: 0.3 lr_policy: "sigmoid" gamma: 0.5 stepsize: 3',
                lambda it: _f(0.3) / (1 + math.exp(-0.5 * (it - 3)))),
}


@pytest.mark.parametrize("policy", sorted(CASES))
def test_policy_formula(policy):
    text, formula = CASES[policy]
    p = _param(text)
    step = 0
    for it in range(20):
        rate, step = learning_rate(p, it, step)
        assert rate == pytest.approx(formula(it), rel=1e-12), (policy, it)


def test_step_sets_current_step():
    p = _param('base_lr: 1 lr_policy: "step" gamma: 0.1 stepsize: 4')
    assert learning_rate(p, 9, 0)[1] == 2


def test_multistep_without_the_log_line():
    """A caller that only reads the rate (the TensorBoard logger) gets the same
    rate and step without a second "MultiStep Status" line."""
    p = _param('base_lr: 1 lr_policy: "multistep" gamma: 0.5 stepvalue: 2')
    with LogCapture() as caplog:
        quiet = learning_rate(p, 2, 0, log=False)
    assert "MultiStep Status" not in caplog.text
    assert quiet == learning_rate(p, 2, 0) == (0.5, 1)


def test_multistep_advances_once_per_call_and_logs():
    p = _param('base_lr: 1 lr_policy: "multistep" gamma: 0.5 '
               'stepvalue: 2 stepvalue: 3 stepvalue: 10')
    step = 0
    rates = []
    with LogCapture() as caplog:
        for it in range(12):
            rate, step = learning_rate(p, it, step)
            rates.append(rate)
    assert rates == [1, 1, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.125, 0.125]
    assert "MultiStep Status: Iteration 2, step = 1" in caplog.text
    assert "MultiStep Status: Iteration 10, step = 3" in caplog.text
    # Restoring at a late iteration: one increment per call, as in Caffe.
    step = 0
    rate, step = learning_rate(p, 50, step)
    assert (rate, step) == (0.5, 1)
    rate, step = learning_rate(p, 50, step)
    assert (rate, step) == (0.25, 2)


def test_all_policies_listed():
    assert set(POLICIES) == set(CASES) | {"multistep"}


@pytest.mark.parametrize("text, match", [
    ('base_lr: 1 lr_policy: "cosine"', "Unknown learning rate policy: 'cosine'"),
    ("base_lr: 1", "Unknown learning rate policy"),
    ('base_lr: 1 lr_policy: "step" gamma: 0.1', "stepsize > 0"),
    ('base_lr: 1 lr_policy: "exp" gamma: -1', "gamma >= 0"),
    ('base_lr: 1 lr_policy: "poly" power: 1', "max_iter > 0"),
])
def test_bad_policy(text, match):
    with pytest.raises(SolverError, match=match):
        learning_rate(_param(text), 1, 0)
