"""Stochastic gradient descent with momentum (Caffe's ``SGD``).

``v <- momentum * v + lr * g``; the step subtracted from the weights is ``v``.
"""

from __future__ import annotations

from recaffe.backend import get_array_module
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

    def update_params(self, rate: float) -> None:
        """The same update for all params at once: the momentum decay and the
        accumulation run over the flat history buffer (the same element-wise
        operations as :meth:`compute_update_value`)."""
        flat = self.flat_buffers()
        if flat is None or type(self).compute_update_value is not \
                SGDSolver.compute_update_value:
            super().update_params(rate)
            return
        (h_all, *_), u_all, _ = flat
        params, rates = self._prepare_all(rate)
        xpm = get_array_module(h_all)
        multiply, subtract, copyto = xpm.multiply, xpm.subtract, xpm.copyto
        h_all *= h_all.dtype.type(self.param.momentum)
        net_flat = self.net.flat_params()
        # the params' data and diffs may be flat too, in the same order
        flat_net = net_flat is not None and net_flat[1].size == u_all.size
        if flat_net and all(r == rates[0] for r in rates):
            multiply(net_flat[1], rates[0], out=u_all)
        else:
            for b, lr, u in zip(params, rates, self.update, strict=True):
                multiply(b.diff, lr, out=u)
        h_all += u_all
        if flat_net:
            data_all, diff_all = net_flat
            copyto(diff_all, h_all)
            subtract(data_all, h_all, out=data_all)
            return
        for b, h in zip(params, self.history, strict=False):
            copyto(b.diff, h)
            d = b.data
            subtract(d, h, out=d)
