"""NetSpec: write a net as Python expressions, print it as Caffe prototxt.

pycaffe's ``caffe.net_spec`` with the same behaviour, so that
``str(ns.to_proto())`` prints the same text as BVLC's pycaffe, byte for byte::

    from recaffe import layers as L, params as P
    n = recaffe.NetSpec()
    n.data, n.label = L.Data(source="train_lmdb", batch_size=64, ntop=2)
    n.ip = L.InnerProduct(n.data, num_output=10, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.ip, n.label)
    print(n.to_proto())

- ``L.<Type>(*bottoms, **kwargs)`` makes a :class:`Function`; it returns the
  Function itself for ``ntop=0``, its single :class:`Top` for ``ntop=1`` (the
  default), else a tuple of Tops. ``in_place=True`` makes the tops the bottoms.
- A keyword goes to the layer's own ``<type>_param`` message when the type has
  one with that field (``num_output`` of InnerProduct), else to the
  ``LayerParameter`` field of that name (``loss_weight``, ``include``, ``name``).
  Keywords ending in ``param`` (``param``, ``recurrent_param``, …) always go to
  the ``LayerParameter``. Types whose message name differs from the type (LSTM,
  RNN, Deconvolution, SoftmaxWithLoss, …) need their ``*_param`` explicitly.
- Values: a dict fills a sub-message, a list of dicts adds one sub-message per
  dict, other lists extend a repeated field, a single value for a repeated field
  becomes one element.
- ``P.<Name>.<CONST>`` reads enum constants of ``<Name>Parameter``
  (``P.Pooling.MAX``).
- Unnamed tops and layers get ``<Type><count>`` names in emission order; a
  NetSpec attribute name becomes the name of the top assigned to it, and of the
  layer whose first top it is.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any

from recaffe.proto import caffe_pb2

__all__ = [
    "Function",
    "NetSpec",
    "Top",
    "assign_proto",
    "layer_type_attr",
    "layers",
    "param_name_dict",
    "params",
    "to_proto",
]


def param_name_dict() -> dict[str, str]:
    """Map a layer type to its ``*_param`` field stem, by the message class name.

    Every ``LayerParameter`` field named ``<stem>_param`` holds a message
    ``<Key>Parameter``; the map is ``<Key> -> <stem>`` (``InnerProduct ->
    inner_product``, ``Loss -> loss``, ``Transformation -> transform``).
    """
    table: dict[str, str] = {}
    for fd in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        if not fd.name.endswith("_param") or fd.message_type is None:
            continue
        msg_name = fd.message_type.name
        msg_name = msg_name.removesuffix("Parameter")
        table[msg_name] = fd.name[: -len("_param")]
    return table


_PARAM_NAMES = param_name_dict()


def _is_repeated(container: Any) -> bool:
    # Repeated fields (scalar or message) are the only field values with extend.
    return hasattr(container, "extend")


def assign_proto(proto, name: str, val) -> None:
    """Assign ``val`` into field ``name`` of message ``proto`` (recursively).

    Unknown field names raise ``AttributeError`` (protobuf's own), which the
    layer builder uses to fall back from the type's param message to the
    ``LayerParameter``.
    """
    field = getattr(proto, name)
    if _is_repeated(field) and not isinstance(val, list):
        val = [val]
    if isinstance(val, list):
        # An empty list is an error here (indexing it raises), as in pycaffe.
        if isinstance(val[0], dict):
            for item in val:
                sub = field.add()
                for k, v in item.items():
                    assign_proto(sub, k, v)
        else:
            field.extend(val)
    elif isinstance(val, dict):
        for k, v in val.items():
            assign_proto(field, k, v)
    else:
        setattr(proto, name, val)


class Top:
    """One output of a :class:`Function` (``fn.tops[n]``)."""

    def __init__(self, fn: Function, n: int):
        self.fn = fn
        self.n = n

    def to_proto(self) -> caffe_pb2.NetParameter:
        """The net of every layer this top depends on, with automatic names."""
        return to_proto(self)

    def _to_proto(self, layers, names, autonames) -> None:
        self.fn._to_proto(layers, names, autonames)

    def __repr__(self) -> str:
        return f"<Top {self.n} of {self.fn.type_name}>"


class Function:
    """A layer not yet named: its type, its input Tops and its keyword params."""

    def __init__(self, type_name: str, inputs, params: dict):
        for i, inp in enumerate(inputs):
            if not isinstance(inp, Top):
                raise TypeError(
                    f"{type_name} input {i} is not a Top (type is {type(inp)})"
                )
        self.type_name = type_name
        self.inputs = tuple(inputs)
        self.params = params
        self.ntop = params.pop("ntop", 1)
        self.in_place = params.pop("in_place", False)
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def __repr__(self) -> str:
        return f"<Function {self.type_name} ntop={self.ntop}>"

    @staticmethod
    def _top_name(top: Top, names: dict, autonames: Counter) -> str:
        name = names.get(top)
        if name is None:
            type_name = top.fn.type_name
            autonames[type_name] += 1
            name = names[top] = f"{type_name}{autonames[type_name]}"
        return name

    def _layer_name(self, names: dict, autonames: Counter) -> str:
        name = names.get(self)
        if name is None:
            if self.ntop > 0:
                name = self._top_name(self.tops[0], names, autonames)
            else:
                autonames[self.type_name] += 1
                name = f"{self.type_name}{autonames[self.type_name]}"
            names[self] = name
        return name

    def _to_proto(self, layers: OrderedDict, names: dict, autonames: Counter) -> None:
        if self in layers:
            return
        bottoms = []
        for inp in self.inputs:
            inp._to_proto(layers, names, autonames)
            # The producer's recorded top name (an in-place producer gives its
            # bottom's name).
            bottoms.append(layers[inp.fn].top[inp.n])
        layer = caffe_pb2.LayerParameter()
        layer.type = self.type_name
        layer.bottom.extend(bottoms)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            for top in self.tops:
                layer.top.append(self._top_name(top, names, autonames))
        layer.name = self._layer_name(names, autonames)
        stem = _PARAM_NAMES.get(self.type_name)
        for k, v in self.params.items():
            if k.endswith("param"):
                assign_proto(layer, k, v)
                continue
            if stem is None:
                assign_proto(layer, k, v)
                continue
            try:
                assign_proto(getattr(layer, stem + "_param"), k, v)
            except AttributeError:
                assign_proto(layer, k, v)
        layers[self] = layer


def to_proto(*tops) -> caffe_pb2.NetParameter:
    """The ``NetParameter`` of the layers that ``tops`` depend on (auto names)."""
    layers: OrderedDict = OrderedDict()
    autonames: Counter = Counter()
    for top in tops:
        top._to_proto(layers, {}, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


class NetSpec:
    """Named tops of a net being written; ``to_proto()`` builds the net.

    Assign tops (or a Function of ``ntop=0``) as attributes or items; the
    names become top and layer names. Re-assigning a name keeps its position.
    """

    def __init__(self):
        object.__setattr__(self, "tops", OrderedDict())

    def __setattr__(self, name: str, value) -> None:
        self.tops[name] = value

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self.tops[name]

    def __setitem__(self, key: str, value) -> None:
        self.__setattr__(key, value)

    def __getitem__(self, item: str):
        return self.__getattr__(item)

    def __delitem__(self, name: str) -> None:
        del self.tops[name]

    def keys(self) -> list[str]:
        return list(self.tops.keys())

    def vals(self) -> list:
        return list(self.tops.values())

    def update(self, name: str, value) -> None:
        self.tops[name] = value

    def to_proto(self) -> caffe_pb2.NetParameter:
        # Inverse map; an object under two names takes the later one.
        names = {v: k for k, v in self.tops.items()}
        autonames: Counter = Counter()
        layers: OrderedDict = OrderedDict()
        for value in self.tops.values():
            value._to_proto(layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


class Layers:
    """``L.<Type>(*bottoms, **params)``: a layer of any type name."""

    def __getattr__(self, type_name: str):
        if type_name.startswith("__") and type_name.endswith("__"):
            raise AttributeError(type_name)

        def layer_fn(*args, **kwargs):
            fn = Function(type_name, args, kwargs)
            if fn.ntop == 0:
                return fn
            if fn.ntop == 1:
                return fn.tops[0]
            return fn.tops

        layer_fn.__name__ = type_name
        return layer_fn


class _ParamConstants:
    """Enum constants of one ``<Name>Parameter`` message."""

    def __init__(self, name: str):
        object.__setattr__(self, "_name", name)

    def __getattr__(self, const: str):
        if const.startswith("__") and const.endswith("__"):
            raise AttributeError(const)
        return getattr(getattr(caffe_pb2, self._name + "Parameter"), const)


class Parameters:
    """``P.<Name>.<CONST>`` = ``caffe_pb2.<Name>Parameter.<CONST>``."""

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _ParamConstants(name)


layers = Layers()
params = Parameters()


def layer_type_attr(name: str):
    """Module ``__getattr__`` giving a package pycaffe's ``layers`` behaviour.

    Names that start with a capital letter are layer types (``InnerProduct``);
    anything else is a missing attribute, so submodule imports keep working.
    """
    if name[:1].isupper():
        return getattr(layers, name)
    raise AttributeError(f"module has no attribute '{name}'")
