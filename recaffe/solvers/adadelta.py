"""AdaDelta (Caffe's ``AdaDelta``); ``momentum`` is the decay rho.

With ``E[g^2]`` in history set 0 and ``E[d^2]`` in history set 1:
``E[g^2] <- rho E[g^2] + (1 - rho) g^2``;
``d = g * sqrt((E[d^2] + delta) / (E[g^2] + delta))``;
``E[d^2] <- rho E[d^2] + (1 - rho) d^2``; the step is ``lr * d``.
"""

from __future__ import annotations

from recaffe.backend import get_array_module
from recaffe.solvers.solver import Solver


class AdaDeltaSolver(Solver):
    type = "AdaDelta"
    history_sets = 2

    def compute_update_value(self, param_id: int, rate: float) -> None:
        g = self.net.learnable_params[param_id].diff
        dt = g.dtype.type
        xpm = get_array_module(g)
        lr = self.local_rate(param_id, rate)
        rho = dt(self.param.momentum)
        delta = dt(self.param.delta)
        hg = self.history[param_id]
        hd = self.history[len(self.net.learnable_params) + param_id]
        u = self.update[param_id]
        t = self.temp[param_id]
        xpm.multiply(g, g, out=u)
        u *= dt(1) - rho
        hg *= rho
        hg += u
        xpm.add(hd, delta, out=u)
        xpm.add(hg, delta, out=t)
        u /= t
        xpm.sqrt(u, out=u)
        g *= u
        xpm.multiply(g, g, out=u)
        u *= dt(1) - rho
        hd *= rho
        hd += u
        g *= lr
