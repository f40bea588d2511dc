"""Check a ``SolverParameter`` when it is loaded, before any net is built.

Caffe finds most of these mistakes only when an iteration reaches them (an
unknown ``lr_policy`` at the first update, a missing ``stepsize`` as a division
by zero); recaffe reports each as a :class:`~recaffe.errors.SolverError` naming
the file, the field and what is allowed, up front.
"""

from __future__ import annotations

import os

from recaffe.errors import SolverError
from recaffe.proto import caffe_pb2

#: lr_policy -> the fields it needs set (Caffe gives them no usable default).
POLICY_FIELDS: dict[str, tuple[str, ...]] = {
    "fixed": (),
    "step": ("gamma", "stepsize"),
    "exp": ("gamma",),
    "inv": ("gamma", "power"),
    "multistep": ("gamma", "stepvalue"),
    "poly": ("power", "max_iter"),
    "sigmoid": ("gamma", "stepsize"),
}
REGULARIZATION_TYPES = ("L1", "L2")
#: Fields that must not be negative.
NON_NEGATIVE = ("base_lr", "momentum", "weight_decay", "max_iter", "gamma",
                "power", "display", "test_interval", "snapshot")


def count_test_nets(param: caffe_pb2.SolverParameter) -> int:
    """How many test nets the solver builds, by Caffe's rules (checked)."""
    n_specific = len(param.test_net_param) + len(param.test_net)
    generic = param.HasField("net") or param.HasField("net_param")
    n_iter = len(param.test_iter)
    return n_specific + (n_iter - n_specific if generic else 0)


def _is_set(param: caffe_pb2.SolverParameter, field: str) -> bool:
    value = getattr(param, field)
    if field == "stepvalue":
        return len(value) > 0
    return param.HasField(field)


def validate_solver_param(param: caffe_pb2.SolverParameter, where: str = "") -> None:
    """Raise a SolverError for the first field that cannot work.

    Args:
        param: the (upgraded) solver parameter.
        where: the solver file, for the message (``""`` for a message object).
    """
    origin = f"solver file '{where}'" if where else "SolverParameter"

    def fail(field: str, problem: str) -> None:
        raise SolverError(f"{origin}: field '{field}': {problem}")

    policy = param.lr_policy
    if policy not in POLICY_FIELDS:
        shown = f"'{policy}'" if policy else "missing"
        fail("lr_policy", f"{shown}; allowed: {', '.join(POLICY_FIELDS)}")
    for field in POLICY_FIELDS[policy]:
        if not _is_set(param, field):
            fail(field, f"lr_policy '{policy}' needs {field} "
                        f"(it needs {', '.join(POLICY_FIELDS[policy])})")
    for field in NON_NEGATIVE:
        value = getattr(param, field)
        if value < 0:
            fail(field, f"must be >= 0, got {value:g}")
    if policy in ("step", "sigmoid") and param.stepsize <= 0:
        fail("stepsize", f"lr_policy '{policy}' needs stepsize > 0, "
                         f"got {param.stepsize}")
    # (poly with max_iter: 0 is a solver that never steps: allowed; a step
    # would need max_iter > 0, which the lr policy checks.)
    values = list(param.stepvalue)
    for i in range(1, len(values)):
        if values[i] < values[i - 1]:
            fail("stepvalue", f"values must not decrease, got {values[i - 1]} then "
                              f"{values[i]} (entries {i - 1} and {i})")
    if values and values[0] < 0:
        fail("stepvalue", f"must be >= 0, got {values[0]}")
    if param.iter_size < 1:
        fail("iter_size", f"must be >= 1, got {param.iter_size}")
    if param.average_loss < 1:
        fail("average_loss", f"must be >= 1, got {param.average_loss}")
    if param.regularization_type not in REGULARIZATION_TYPES:
        fail("regularization_type", f"'{param.regularization_type}'; allowed: "
                                    f"{', '.join(REGULARIZATION_TYPES)}")
    _validate_nets(param, fail)
    _validate_snapshot(param, fail)


def _validate_nets(param: caffe_pb2.SolverParameter, fail) -> None:
    if param.HasField("net") and param.HasField("net_param"):
        fail("net", "give net or net_param, not both")
    generic = param.HasField("net") or param.HasField("net_param")
    n_specific = len(param.test_net_param) + len(param.test_net)
    n_iter = len(param.test_iter)
    if not generic and n_iter != n_specific:
        if n_specific == 0:
            fail("test_iter", f"{n_iter} value(s) given but there is no test net "
                              "(add test_net, or net: to test the train net's TEST "
                              "phase, or remove test_iter)")
        fail("test_iter", f"one value per test net needed: {n_iter} value(s) for "
                          f"{n_specific} test_net/test_net_param")
    if generic and n_iter < n_specific:
        fail("test_iter", f"one value per test net needed: {n_iter} value(s) for "
                          f"{n_specific} test_net/test_net_param")
    n_instances = count_test_nets(param)
    if len(param.test_state) and len(param.test_state) != n_instances:
        fail("test_state", f"give none or one per test net: {len(param.test_state)} "
                           f"for {n_instances} test net(s)")
    for i, n in enumerate(param.test_iter):
        if n <= 0:
            fail("test_iter", f"entry {i} must be > 0, got {n}")
    if n_instances and param.test_interval <= 0:
        fail("test_interval", f"{n_instances} test net(s) need test_interval > 0, "
                              f"got {param.test_interval}")


def _validate_snapshot(param: caffe_pb2.SolverParameter, fail) -> None:
    if param.snapshot <= 0:
        return
    if not param.snapshot_prefix:
        fail("snapshot_prefix", f"snapshot: {param.snapshot} needs a snapshot_prefix")
    folder = os.path.dirname(param.snapshot_prefix) or "."
    if not os.path.isdir(folder):
        fail("snapshot_prefix", f"'{param.snapshot_prefix}': folder '{folder}' does "
                                "not exist (create it, or change snapshot_prefix)")
    if not os.access(folder, os.W_OK):
        fail("snapshot_prefix", f"'{param.snapshot_prefix}': folder '{folder}' is "
                                "not writable")
