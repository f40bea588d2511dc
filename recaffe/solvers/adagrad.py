"""AdaGrad (Caffe's ``AdaGrad``); ``momentum`` must be 0.

``h <- h + g^2``; the step is ``lr * g / (sqrt(h) + delta)``.
"""

from __future__ import annotations

from recaffe.backend import get_array_module
from recaffe.errors import SolverError
from recaffe.solvers.solver import Solver


class AdaGradSolver(Solver):
    type = "AdaGrad"

    def check_param(self) -> None:
        if self.param.momentum != 0:
            raise SolverError(
                f"Momentum cannot be used with AdaGrad (momentum: "
                f"{self.param.momentum}); remove it or set it to 0"
            )

    def compute_update_value(self, param_id: int, rate: float) -> None:
        g = self.net.learnable_params[param_id].diff
        xpm = get_array_module(g)
        lr = self.local_rate(param_id, rate)
        h = self.history[param_id]
        u = self.update[param_id]
        xpm.multiply(g, g, out=u)
        h += u
        xpm.sqrt(h, out=u)
        u += g.dtype.type(self.param.delta)
        xpm.divide(g, u, out=u)
        xpm.multiply(u, lr, out=g)
