"""Each solver type against a numpy re-derivation of Caffe's update, over
several iterations (momentum and history included), in float64."""

from __future__ import annotations

import numpy as np
import pytest
from solver_test_util import DIM, K, data_pool, grads, solver_param

from recaffe.backend import dtype_scope
from recaffe.solvers import SOLVER_TYPES, get_solver

ITERS = 6
LR_MULT = (1.0, 2.0)
DECAY_MULT = (1.0, 0.0)

CONFIGS = {
    "sgd_momentum_l2": 'type: "SGD" base_lr: 0.1 momentum: 0.9 weight_decay: 0.01 '
                       'lr_policy: "fixed"',
    "sgd_l1_step": 'type: "SGD" base_lr: 0.2 momentum: 0.5 weight_decay: 0.05 '
                   'regularization_type: "L1" lr_policy: "step" gamma: 0.5 stepsize: 2',
    "sgd_clip": 'type: "SGD" base_lr: 0.3 momentum: 0.8 clip_gradients: 0.05 '
                'lr_policy: "fixed"',
    "nesterov": 'type: "Nesterov" base_lr: 0.1 momentum: 0.9 weight_decay: 0.005 '
                'lr_policy: "inv" gamma: 0.1 power: 0.75',
    "adagrad": 'type: "AdaGrad" base_lr: 0.3 delta: 1e-7 weight_decay: 0.002 '
               'lr_policy: "fixed"',
    "rmsprop": 'type: "RMSProp" base_lr: 0.02 rms_decay: 0.9 delta: 1e-7 '
               'lr_policy: "exp" gamma: 0.9',
    "adadelta": 'type: "AdaDelta" base_lr: 1.0 momentum: 0.95 delta: 1e-6 '
                'lr_policy: "fixed"',
    "adam": 'type: "Adam" base_lr: 0.05 momentum: 0.9 momentum2: 0.999 delta: 1e-8 '
            'lr_policy: "poly" power: 1.5',
}


def _lr(p, it):
    if p.lr_policy == "fixed":
        return p.base_lr
    if p.lr_policy == "step":
        return p.base_lr * p.gamma ** (it // p.stepsize)
    if p.lr_policy == "inv":
        return p.base_lr * (1 + p.gamma * it) ** -p.power
    if p.lr_policy == "exp":
        return p.base_lr * p.gamma ** it
    if p.lr_policy == "poly":
        return p.base_lr * (1 - it / p.max_iter) ** p.power
    raise AssertionError(p.lr_policy)


def reference(p, w, b, x, t, iters):
    """Caffe's ApplyUpdate, written out in plain numpy."""
    params = [w.copy(), b.copy()]
    h1 = [np.zeros_like(q) for q in params]
    h2 = [np.zeros_like(q) for q in params]
    losses = []
    for it in range(iters):
        loss, gw, gb = grads(params[0], params[1], x, t)
        losses.append(loss)
        g = [gw, gb]
        rate = _lr(p, it)
        if p.clip_gradients >= 0:
            norm = np.sqrt(sum((gi ** 2).sum() for gi in g))
            if norm > p.clip_gradients:
                g = [gi * (p.clip_gradients / norm) for gi in g]
        for i in range(2):
            decay = p.weight_decay * DECAY_MULT[i]
            if p.regularization_type == "L1":
                g[i] = g[i] + decay * np.sign(params[i])
            else:
                g[i] = g[i] + decay * params[i]
            lr = rate * LR_MULT[i]
            gi = g[i]
            if p.type == "SGD":
                h1[i] = p.momentum * h1[i] + lr * gi
                step = h1[i]
            elif p.type == "Nesterov":
                old = h1[i]
                h1[i] = p.momentum * h1[i] + lr * gi
                step = (1 + p.momentum) * h1[i] - p.momentum * old
            elif p.type == "AdaGrad":
                h1[i] = h1[i] + gi ** 2
                step = lr * gi / (np.sqrt(h1[i]) + p.delta)
            elif p.type == "RMSProp":
                h1[i] = p.rms_decay * h1[i] + (1 - p.rms_decay) * gi ** 2
                step = lr * gi / (np.sqrt(h1[i]) + p.delta)
            elif p.type == "AdaDelta":
                rho = p.momentum
                h1[i] = rho * h1[i] + (1 - rho) * gi ** 2
                d = gi * np.sqrt((h2[i] + p.delta) / (h1[i] + p.delta))
                h2[i] = rho * h2[i] + (1 - rho) * d ** 2
                step = lr * d
            elif p.type == "Adam":
                b1, b2, tt = p.momentum, p.momentum2, it + 1
                h1[i] = b1 * h1[i] + (1 - b1) * gi
                h2[i] = b2 * h2[i] + (1 - b2) * gi ** 2
                corr = np.sqrt(1 - b2 ** tt) / (1 - b1 ** tt)
                step = lr * corr * h1[i] / (np.sqrt(h2[i]) + p.delta)
            params[i] = params[i] - step
    return params, losses, h1, h2


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_update_rule_matches_reference(name):
    with dtype_scope(np.float64):
        p = solver_param(CONFIGS[name] + " max_iter: 20 random_seed: 3")
        solver = get_solver(p)
        assert type(solver) is SOLVER_TYPES[p.type]
        w0 = solver.net.params["ip"][0].data.copy()
        b0 = solver.net.params["ip"][1].data.copy()
        x, t = data_pool(DIM, K, 4, 0)
        (w, b), losses, h1, h2 = reference(solver.param, w0, b0, x, t, ITERS)
        for it in range(ITERS):
            solver.step(1)
            assert solver.iter == it + 1
            assert float(solver.net.blobs["loss"].data) == pytest.approx(
                losses[it], rel=1e-10)
        np.testing.assert_allclose(solver.net.params["ip"][0].data, w, rtol=1e-9,
                                   atol=1e-12)
        np.testing.assert_allclose(solver.net.params["ip"][1].data, b, rtol=1e-9,
                                   atol=1e-12)
        nhist = 2 if p.type in ("AdaDelta", "Adam") else 1
        assert len(solver.history) == 2 * nhist
        np.testing.assert_allclose(solver.history[0], h1[0], rtol=1e-9, atol=1e-12)
        if nhist == 2:
            np.testing.assert_allclose(solver.history[2], h2[0], rtol=1e-9,
                                       atol=1e-12)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_update_rule_float32_close_to_reference(name):
    p = solver_param(CONFIGS[name] + " max_iter: 20 random_seed: 3")
    solver = get_solver(p)
    w0 = solver.net.params["ip"][0].data.astype(np.float64)
    b0 = solver.net.params["ip"][1].data.astype(np.float64)
    x, t = data_pool(DIM, K, 4, 0)
    (w, b), _, _, _ = reference(solver.param, w0, b0, x, t, ITERS)
    solver.step(ITERS)
    assert solver.net.params["ip"][0].data.dtype == np.float32
    np.testing.assert_allclose(solver.net.params["ip"][0].data, w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(solver.net.params["ip"][1].data, b, rtol=1e-4, atol=1e-5)
