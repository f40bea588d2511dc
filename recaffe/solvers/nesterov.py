"""Nesterov's accelerated gradient (Caffe's ``Nesterov``).

``v_old <- v``; ``v <- momentum * v + lr * g``; the step is
``(1 + momentum) * v - momentum * v_old``.
"""

from __future__ import annotations

from recaffe.solvers.solver import Solver


class NesterovSolver(Solver):
    type = "Nesterov"

    def compute_update_value(self, param_id: int, rate: float) -> None:
        g = self.net.learnable_params[param_id].diff
        dt = g.dtype.type
        lr = self.local_rate(param_id, rate)
        momentum = dt(self.param.momentum)
        h = self.history[param_id]
        u = self.update[param_id]
        tmp = self.temp[param_id]
        u[...] = h
        h *= momentum
        tmp[...] = g
        tmp *= lr
        h += tmp
        u *= -momentum
        tmp[...] = h
        tmp *= dt(1) + momentum
        u += tmp
        g[...] = u
