"""Solvers: Caffe's SGD family and the pycaffe solver API.

``SGDSolver(path)``, ``NesterovSolver``, ``AdaGradSolver``, ``RMSPropSolver``,
``AdaDeltaSolver`` and ``AdamSolver`` fix the update rule whatever the file's
``type`` says; :func:`get_solver` picks the class from ``type``.
"""

from __future__ import annotations

import os

from recaffe.errors import SolverError
from recaffe.proto import caffe_pb2
from recaffe.solvers.adadelta import AdaDeltaSolver
from recaffe.solvers.adagrad import AdaGradSolver
from recaffe.solvers.adam import AdamSolver
from recaffe.solvers.lr_policy import POLICIES, learning_rate
from recaffe.solvers.nesterov import NesterovSolver
from recaffe.solvers.rmsprop import RMSPropSolver
from recaffe.solvers.sgd import SGDSolver
from recaffe.solvers.solver import Solver, load_solver_param
from recaffe.solvers.validate import validate_solver_param

__all__ = [
    "POLICIES",
    "SOLVER_TYPES",
    "AdaDeltaSolver",
    "AdaGradSolver",
    "AdamSolver",
    "NesterovSolver",
    "RMSPropSolver",
    "SGDSolver",
    "Solver",
    "get_solver",
    "learning_rate",
    "load_solver_param",
]

#: Solver ``type`` string -> class.
SOLVER_TYPES: dict[str, type[Solver]] = {
    cls.type: cls
    for cls in (SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver,
                AdaDeltaSolver, AdamSolver)
}


def get_solver(solver: str | os.PathLike | caffe_pb2.SolverParameter) -> Solver:
    """Build the solver named by the file's ``type`` (default ``"SGD"``).

    Raises:
        SolverError: the ``type`` is not a known solver.
    """
    param = load_solver_param(solver, validate=False)
    path = None if isinstance(solver, caffe_pb2.SolverParameter) else \
        os.fspath(solver)
    cls = SOLVER_TYPES.get(param.type)
    if cls is None:
        where = f"{path}: " if path is not None else ""
        raise SolverError(
            f"{where}unknown solver type '{param.type}'; known types: "
            f"{', '.join(SOLVER_TYPES)}"
        )
    if path is not None:  # the type first, then the fields, naming the file
        validate_solver_param(param, path)
    return cls(param, _validated=path is not None)
