"""Learning-rate policies of Caffe's SGD-family solvers.

``iter`` is the number of updates applied so far; ``base_lr``, ``gamma``,
``power``, ``stepsize``, ``stepvalue`` and ``max_iter`` come from the
``SolverParameter``:

=========  =====================================================================
fixed      ``base_lr``
step       ``base_lr * gamma ^ floor(iter / stepsize)``
exp        ``base_lr * gamma ^ iter``
inv        ``base_lr * (1 + gamma * iter) ^ (-power)``
multistep  ``base_lr * gamma ^ current_step``; before computing, ``current_step``
           advances by at most one when ``iter >= stepvalue[current_step]``
poly       ``base_lr * (1 - iter / max_iter) ^ power``
sigmoid    ``base_lr / (1 + exp(-gamma * (iter - stepsize)))``
=========  =====================================================================

The rate is computed in double precision; the solver casts it to each
parameter's dtype (float32 in Caffe) when it forms the local rate.
"""

from __future__ import annotations

import math

from recaffe.errors import SolverError
from recaffe.log import logger
from recaffe.proto import caffe_pb2

POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")


def _need_gamma(param: caffe_pb2.SolverParameter, policy: str) -> float:
    if param.gamma < 0:
        raise SolverError(
            f"lr_policy '{policy}' needs gamma >= 0, got {param.gamma}"
        )
    return float(param.gamma)


def _need_stepsize(param: caffe_pb2.SolverParameter, policy: str) -> int:
    if param.stepsize <= 0:
        raise SolverError(
            f"lr_policy '{policy}' needs stepsize > 0, got {param.stepsize}"
        )
    return int(param.stepsize)


def learning_rate(
    param: caffe_pb2.SolverParameter, it: int, current_step: int, *, log: bool = True
) -> tuple[float, int]:
    """The rate for update number ``it`` and the (possibly advanced) step count.
    ``log``: say so when ``multistep`` advances (Caffe's "MultiStep Status"
    line; a caller that only looks at the rate passes False).

    Raises:
        SolverError: unknown policy or a parameter out of its range.
    """
    policy = param.lr_policy
    base_lr = float(param.base_lr)
    if policy == "fixed":
        rate = base_lr
    elif policy == "step":
        current_step = it // _need_stepsize(param, policy)
        rate = base_lr * _need_gamma(param, policy) ** current_step
    elif policy == "exp":
        rate = base_lr * _need_gamma(param, policy) ** it
    elif policy == "inv":
        gamma = _need_gamma(param, policy)
        rate = base_lr * (1.0 + gamma * it) ** (-float(param.power))
    elif policy == "multistep":
        if current_step < len(param.stepvalue) and it >= param.stepvalue[current_step]:
            current_step += 1
            if log:
                logger.info(f"MultiStep Status: Iteration {it}, step = {current_step}")
        rate = base_lr * _need_gamma(param, policy) ** current_step
    elif policy == "poly":
        if param.max_iter <= 0:
            raise SolverError(
                f"lr_policy 'poly' needs max_iter > 0, got {param.max_iter}"
            )
        rate = base_lr * (1.0 - it / float(param.max_iter)) ** float(param.power)
    elif policy == "sigmoid":
        gamma = _need_gamma(param, policy)
        stepsize = _need_stepsize(param, policy)
        try:
            rate = base_lr * (1.0 / (1.0 + math.exp(-gamma * (it - stepsize))))
        except OverflowError:  # exp(+large): the sigmoid is 0
            rate = 0.0
    else:
        shown = f"'{policy}'" if policy else "(none given)"
        raise SolverError(
            f"Unknown learning rate policy: {shown}; lr_policy must be one of "
            f"{', '.join(POLICIES)}"
        )
    if isinstance(rate, complex):  # (negative base) ** fractional power
        raise SolverError(
            f"lr_policy '{policy}' gives no real learning rate at iteration {it}"
        )
    return float(rate), current_step
