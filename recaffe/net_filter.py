"""Phase / level / stage filtering of a NetParameter's layers (Caffe's rules).

A layer may have include rules or exclude rules, not both. Without include
rules it is kept unless the state meets any exclude rule; with include rules it
is kept iff the state meets any of them. A state meets a rule iff the rule's
phase (if set) equals the state's, the level is within min_level/max_level (if
set), every ``stage`` of the rule is in the state and no ``not_stage`` is.
"""

from __future__ import annotations

from recaffe.errors import NetError
from recaffe.proto import caffe_pb2


def state_meets_rule(state, rule) -> bool:
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(s not in stages for s in rule.stage):
        return False
    return not any(s in stages for s in rule.not_stage)


def layer_included(layer, state) -> bool:
    if layer.include and layer.exclude:
        raise NetError(
            f"layer '{layer.name}' ({layer.type}) specifies both include and exclude "
            "rules; use one or the other"
        )
    if layer.include:
        return any(state_meets_rule(state, r) for r in layer.include)
    return not any(state_meets_rule(state, r) for r in layer.exclude)


def filter_net(param):
    """A copy of ``param`` with only the layers that ``param.state`` includes."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    del out.layer[:]
    for layer in param.layer:
        if layer_included(layer, param.state):
            out.layer.add().CopyFrom(layer)
    return out
