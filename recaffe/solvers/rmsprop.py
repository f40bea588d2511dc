"""RMSProp (Caffe's ``RMSProp``); ``momentum`` must be 0, ``0 <= rms_decay < 1``.

``h <- rms_decay * h + (1 - rms_decay) * g^2``; the step is
``lr * g / (sqrt(h) + delta)``.
"""

from __future__ import annotations

from recaffe.backend import get_array_module
from recaffe.errors import SolverError
from recaffe.solvers.solver import Solver


class RMSPropSolver(Solver):
    type = "RMSProp"

    def check_param(self) -> None:
        p = self.param
        if p.momentum != 0:
            raise SolverError(
                f"Momentum cannot be used with RMSProp (momentum: {p.momentum}); "
                "remove it or set it to 0"
            )
        if not 0 <= p.rms_decay < 1:
            raise SolverError(
                f"rms_decay should lie between 0 and 1 (0 <= rms_decay < 1), got "
                f"{p.rms_decay}"
            )

    def compute_update_value(self, param_id: int, rate: float) -> None:
        g = self.net.learnable_params[param_id].diff
        dt = g.dtype.type
        xpm = get_array_module(g)
        lr = self.local_rate(param_id, rate)
        decay = dt(self.param.rms_decay)
        h = self.history[param_id]
        u = self.update[param_id]
        xpm.multiply(g, g, out=u)
        u *= dt(1) - decay
        h *= decay
        h += u
        xpm.sqrt(h, out=u)
        u += dt(self.param.delta)
        xpm.divide(g, u, out=u)
        xpm.multiply(u, lr, out=g)
