"""Adam (Caffe's ``Adam``): beta1 = ``momentum``, beta2 = ``momentum2``,
eps = ``delta``.

With ``m`` in history set 0, ``v`` in history set 1 and ``t = iter + 1``:
``m <- beta1 m + (1 - beta1) g``; ``v <- beta2 v + (1 - beta2) g^2``; the step
is ``lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)``.
"""

from __future__ import annotations

import math

from recaffe.backend import get_array_module
from recaffe.solvers.solver import Solver


class AdamSolver(Solver):
    type = "Adam"
    history_sets = 2

    def compute_update_value(self, param_id: int, rate: float) -> None:
        g = self.net.learnable_params[param_id].diff
        dt = g.dtype.type
        xpm = get_array_module(g)
        lr = self.local_rate(param_id, rate)
        b1 = dt(self.param.momentum)
        b2 = dt(self.param.momentum2)
        t = self.iter + 1
        correction = dt(math.sqrt(1.0 - float(b2) ** t) / (1.0 - float(b1) ** t))
        m = self.history[param_id]
        v = self.history[len(self.net.learnable_params) + param_id]
        tmp = self.temp[param_id]
        u = self.update[param_id]
        xpm.multiply(g, dt(1) - b1, out=u)
        m *= b1
        m += u
        xpm.multiply(g, g, out=tmp)
        tmp *= dt(1) - b2
        v *= b2
        v += tmp
        xpm.sqrt(v, out=tmp)
        tmp += dt(self.param.delta)
        xpm.divide(m, tmp, out=tmp)
        xpm.multiply(tmp, lr * correction, out=g)
