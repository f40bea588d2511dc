"""Stochastic gradient descent with momentum (Caffe's ``SGD``).

``v <- momentum * v + lr * g``; the step subtracted from the weights is ``v``.
"""

from __future__ import annotations

from recaffe.solvers.solver import Solver


class SGDSolver(Solver):
    type = "SGD"

    def compute_update_value(self, param_id: int, rate: float) -> None:
        blob = self.net.learnable_params[param_id]
        g = blob.diff
        lr = self.local_rate(param_id, rate)
        momentum = g.dtype.type(self.param.momentum)
        h = self.history[param_id]
        tmp = self.update[param_id]
        h *= momentum
        tmp[...] = g
        tmp *= lr
        h += tmp
        g[...] = h
